"""A catalogue of real galaxies through every command: a table the test writes for ``gz2-kaggle-96`` (the pack's ids,
images and labels, with MADE-UP positions and redshifts, flagged in a ``made_up`` column) goes through prepare,
predict, mergers --by, similar, anomalies and label, in each of the four formats, and the tables that come out keep
its columns, units and provenance."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from galaxy_core import tables, tree
from galaxy_core.cli import main
from galaxy_core.data.cache import open_cache

pytestmark = [pytest.mark.shared, pytest.mark.slow]
PACK_FOV = 256 / 424


def pack_catalogue(pack: Path, folder: Path, ext: str, n: int) -> Path:
    """``n`` labelled galaxies of the pack as a catalogue table in ``folder`` (images named relative to it)."""
    labels = pd.read_csv(pack / "training_solutions_rev1.csv", dtype={"GalaxyID": str}).head(n)
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame({
        "objid": labels["GalaxyID"].astype(np.int64),
        "file_loc": [os.path.relpath(pack / "images_training_rev1" / f"{i}.jpg", folder) for i in labels["GalaxyID"]],
        "ra": rng.uniform(120, 240, n), "dec": rng.uniform(-5, 60, n),  # made up, in an SDSS-like footprint
        "z": rng.uniform(0.01, 0.25, n), "made_up": np.ones(n, bool)})
    frame = pd.concat([frame, labels[list(tree.COLUMNS)]], axis=1)
    (folder / "galaxy_core.json").write_text(json.dumps({"source_fov": PACK_FOV}))
    return tables.write_table(frame, folder / f"catalogue.{ext}", units={"ra": "deg", "dec": "deg"})


def run(capsys, *argv: str) -> dict:
    """``python -m galaxy_core ARGV --json`` in this process: its JSON line."""
    assert main([*argv, "--json"]) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def check_table(path: Path, n: int) -> pd.DataFrame:
    t = tables.read_table(path, text_columns=("GalaxyID",))
    assert len(t.frame) == n
    assert {"GalaxyID", "objid", "ra", "dec", "z", "made_up"} <= set(t.frame.columns)
    if tables.table_format(path) != "csv":
        assert t.units["ra"] == "deg" and t.units["dec"] == "deg"
        assert len(t.meta["CKPTHASH"]) == 16 and "galaxy_core" in t.meta["COMMAND"]
    return t.frame


def test_a_catalogue_goes_through_every_command(shared_data, tmp_path, capsys):
    table = pack_catalogue(shared_data / "gz2-kaggle-96", tmp_path / "cat", "parquet", 600)
    cache_dir = tmp_path / "cache"
    prepared = run(capsys, "prepare", str(table), "--out", str(cache_dir))
    assert prepared["n"] == 600 and prepared["n_val"] == 60
    cache = open_cache(cache_dir)
    assert cache.sky.ra == "ra" and cache.columns["made_up"].all()

    answers = tmp_path / "answers.fits"
    assert run(capsys, "predict", str(table), "--out", str(answers))["n"] == 600
    frame = check_table(answers, 600)
    assert frame["GalaxyID"].tolist() == cache.ids.tolist()
    assert set(tree.COLUMNS) <= set(frame.columns)

    bins = run(capsys, "mergers", str(answers), "--by", "z", "--bins", "0,0.1,0.25", "--out",
               str(tmp_path / "bins.vot"))
    assert bins  # the bins themselves are checked in test_merger_evolution
    per_bin = tables.read_table(tmp_path / "bins.vot").frame
    assert len(per_bin) == 2 and per_bin["n"].sum() == 600

    similar = tmp_path / "similar.vot"
    run(capsys, "similar", str(cache_dir), str(cache.ids[0]), "-k", "5", "--out", str(similar))
    near = check_table(similar, 5)
    assert near["GalaxyID"].iloc[0] == cache.ids[0]  # the galaxy itself first

    run(capsys, "anomalies", str(table), "-n", "10", "--out", str(tmp_path / "unusual.csv"))
    check_table(tmp_path / "unusual.csv", 10)

    smooth = cache.labels[:, 0] > 0.8  # Class1.1: the volunteers' smooth galaxies as "yes"
    marked = pd.DataFrame({"GalaxyID": np.concatenate([cache.ids[smooth][:5], cache.ids[~smooth][:5]]),
                           "label": ["yes"] * 5 + ["no"] * 5})
    marked.to_csv(tmp_path / "marked.csv", index=False)
    run(capsys, "label", str(cache_dir), str(tmp_path / "marked.csv"), "--name", "smooth", "--root",
        str(tmp_path / "discoveries"), "--out", str(tmp_path / "ranked.parquet"))
    check_table(tmp_path / "ranked.parquet", 600)


@pytest.mark.parametrize("ext", ["csv", "fits", "vot"])
def test_every_format_in_and_out(shared_data, tmp_path, capsys, ext):
    table = pack_catalogue(shared_data / "gz2-kaggle-96", tmp_path / "cat", ext, 120)
    out = tmp_path / f"answers.{ext}"
    assert run(capsys, "predict", str(table), "--out", str(out), "--tta", "2")["n"] == 120
    frame = check_table(out, 120)
    # The ids came through as text, in the table's order (the pack's ids, sorted as numbers).
    assert frame["GalaxyID"].tolist() == sorted(frame["GalaxyID"].tolist(), key=int)
