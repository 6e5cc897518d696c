"""Tests for galaxy_core.training.benchmark: the side-by-side table of every model's recipe on one split, through the
command line that prints it (a Markdown table and one JSON object), and its distilled row."""

from __future__ import annotations

import json

import pytest

from galaxy_core import cli


def test_benchmark_prints_one_table(tiny_cache, tmp_path, capsys):
    assert cli.main(["benchmark", str(tiny_cache.path), "--models", "mean,seed-cnn", "--epochs-scale", "0.05",
                     "--device", "cpu", "--out", str(tmp_path / "bench"), "--json"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    rows = json.loads(out[-1])["rows"]
    assert [r["model"] for r in rows] == ["mean", "seed-cnn"]
    assert rows[1]["parameters"] == 2_391_973 and rows[1]["epochs"] == 1
    assert out[1].startswith("| model | val_rmse | val_rmse_tta8 |")
    assert (tmp_path / "bench" / "seed-cnn" / "metrics.csv").is_file()


@pytest.mark.slow
def test_benchmark_adds_the_distilled_row_and_export_ships_it(tiny_cache, tmp_path, capsys):
    assert cli.main(["benchmark", str(tiny_cache.path), "--models", "galaxynet", "--epochs-scale", "0.01",
                     "--max-train", "16", "--unlabelled", str(tiny_cache.path), "--device", "cpu",
                     "--out", str(tmp_path / "bench"), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["rows"]
    assert [r["model"] for r in rows] == ["galaxynet", "galaxynet-distilled"]
    assert rows[1]["train_seconds"] > rows[0]["train_seconds"]  # the teacher's time counts
    student = tmp_path / "bench" / "galaxynet-distilled"
    config = json.loads((student / "config.json").read_text())
    assert config["train"]["teacher"] == [str(tmp_path / "bench" / "galaxynet")]
    assert config["n_train_by_source"]["unlabelled"] == 8  # the cache's own unlabelled galaxies, taken once

    out = tmp_path / "checkpoints" / "default"
    assert cli.main(["export", str(student), "--out", str(out), "--tta", "1", "--device", "cpu", "--json"]) == 0
    r = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert r["weights"] == "float16" and (out / "model.safetensors").stat().st_size == r["bytes"] < 25e6
