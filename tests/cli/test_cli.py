"""The command line: every subcommand's --help, human output, the --json last line, and clear errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from galaxy_core import cli, tree
from galaxy_core.data import layout
from galaxy_core.discover import similarity

COMMANDS = ["summary", "prepare", "train", "evaluate", "benchmark", "export", "predict", "mergers", "morphology",
            "demo", "models", "runs", "similar", "anomalies"]


def _json_tail(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main([command, "--help"])
    assert e.value.code == 0
    assert "--json" in capsys.readouterr().out


def test_every_option_says_what_it_does():
    import argparse

    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    silent = [f"{name} {opt.option_strings or opt.dest}" for name, sp in sub.choices.items()
              for opt in sp._actions if not opt.help and not isinstance(opt, argparse._HelpAction)]
    assert not silent


def test_morphology_measures_a_sample_and_compares_the_methods(tiny_cache, tmp_path, capsys):
    import shutil

    shutil.copytree(tiny_cache.path, tmp_path / "cache")
    out = tmp_path / "m.csv"
    assert cli.main(["morphology", str(tmp_path / "cache"), "--subset", "labelled", "--sample", "6", "--workers", "1",
                     "--out", str(out), "--json"]) == 0
    r = _json_tail(capsys)
    assert r["n_measured"] == 6 and r["n_compared"] + sum(r["dropped"].values()) == 6
    methods = [f["method"] for f in r["fractions"]]
    assert methods == ["Gini-M20 (Lotz et al. 2008)", "A > 0.35 (Conselice 2003)", "volunteers (Class8.6 > 0.5)"]
    assert len(pd.read_csv(out)) == 6


def test_module_entry_point_runs():
    out = subprocess.run([sys.executable, "-m", "galaxy_core", "models", "--json"], capture_output=True, text=True,
                         check=True).stdout
    names = [m["name"] for m in json.loads(out.splitlines()[-1])["models"]]
    assert {"mean", "seed-cnn", "resnet18", "galaxynet"} <= set(names)


def test_summary_prepare_train_evaluate_predict(tiny_data, tmp_path, capsys):
    assert cli.main(["summary", str(tiny_data), "--json"]) == 0
    s = _json_tail(capsys)
    assert (s["n_full"], s["n_unlabelled"], s["tree_check"]["consistent"]) == (48, 8, True)

    cache = tmp_path / "cache"
    assert cli.main(["prepare", str(tiny_data), "--out", str(cache), "--size", "69", "--val-fraction", "0.25",
                     "--workers", "1", "--json"]) == 0
    p = _json_tail(capsys)
    assert (p["n"], p["n_val"], p["size"]) == (56, 12, 69)

    assert cli.main(["train", str(cache), "--model", "seed-cnn", "--epochs", "1", "--batch-size", "16",
                     "--out", str(tmp_path / "runs"), "--name", "r", "--device", "cpu", "--json"]) == 0
    t = _json_tail(capsys)
    assert t["state"] == "finished" and 0 < t["val_rmse"] < 1

    run = tmp_path / "runs" / "r"
    assert cli.main(["evaluate", str(run), "--json", "--per-answer"]) == 0
    out = capsys.readouterr().out
    e = json.loads(out.strip().splitlines()[-1])  # 12 galaxies: said to be too few, no number
    assert e["n"] == 12 and e["rmse"] is None and "too few galaxies to score" in out
    from galaxy_core.predict import evaluation

    old_minimum, evaluation.MIN_SCORED_GALAXIES = evaluation.MIN_SCORED_GALAXIES, 10
    try:
        assert cli.main(["evaluate", str(run), "--json", "--per-answer"]) == 0
    finally:
        evaluation.MIN_SCORED_GALAXIES = old_minimum
    e = _json_tail(capsys)
    assert set(e) >= {"rmse", "n"} and e["n"] == 12 and e["rmse"] == pytest.approx(t["val_rmse"], rel=1e-5)
    assert set(e["per_answer"]) == set(tree.COLUMNS)

    out = tmp_path / "pred.csv"
    assert cli.main(["predict", str(tiny_data), "--model", str(run), "--out", str(out), "--tta", "2",
                     "--json"]) == 0
    assert _json_tail(capsys)["n"] == 56
    assert list(pd.read_csv(out).columns) == ["GalaxyID", *tree.COLUMNS]

    assert cli.main(["runs", "--root", str(tmp_path / "runs"), "--json"]) == 0
    assert [r["name"] for r in _json_tail(capsys)["runs"]] == ["r"]


def test_predict_without_a_model_takes_the_dashboards_default_and_warns_across_domains(tiny_data, tiny_cache,
                                                                                       tmp_path, capsys, monkeypatch):
    """No checkpoint shipped: ``predict`` takes the newest finished run, as the dashboard does, and says so; a model
    trained on the synthetic demo is used on real images only with a warning."""
    from galaxy_core.predict import modelchoice

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(modelchoice, "CHECKPOINTS", tmp_path / "no_checkpoints")
    assert cli.main(["predict", str(tiny_data)]) == 2
    assert "--model" in capsys.readouterr().err
    assert cli.main(["train", str(tiny_cache.path), "--model", "seed-cnn", "--epochs", "1", "--batch-size", "16",
                     "--name", "r", "--device", "cpu"]) == 0
    capsys.readouterr()
    assert cli.main(["predict", str(tiny_data)]) == 0
    err = capsys.readouterr().err
    assert "model: the newest finished run r" in err and "warning" not in err
    real = tmp_path / "real"
    real.mkdir()
    for image in sorted((tiny_data / layout.LABELLED_DIR).iterdir())[:3]:
        (real / image.name).write_bytes(image.read_bytes())
    (real / layout.FOLDER_CONFIG).write_text('{"source_fov": 1.0}')
    assert cli.main(["predict", str(real), "--model", "runs/r"]) == 0
    assert "warning: this model was trained on the synthetic demo" in capsys.readouterr().err


def test_model_arguments_are_parsed_as_json(tiny_data, tmp_path, capsys):
    cache = tmp_path / "cache"
    cli.main(["prepare", str(tiny_data), "--out", str(cache), "--val-fraction", "0.25", "--workers", "1"])
    assert cli.main(["train", str(cache), "--model", "galaxynet", "--model-arg", "width=8",
                     "--model-arg", "input_size=32", "--epochs", "1", "--batch-size", "16", "--tta", "1",
                     "--out", str(tmp_path / "runs"), "--name", "g", "--device", "cpu", "--json"]) == 0
    cfg = json.loads((tmp_path / "runs" / "g" / "config.json").read_text())
    assert cfg["model"]["width"] == 8 and cfg["model"]["input_size"] == 32


def test_bad_input_is_one_clear_line(tmp_path, capsys):
    assert cli.main(["summary", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "does not exist" in err and "Traceback" not in err
    assert cli.main(["evaluate", str(tmp_path)]) == 2
    assert "error:" in capsys.readouterr().err




def test_a_pickled_checkpoint_is_refused_by_every_command_that_loads_a_model(tmp_path, capsys, monkeypatch):
    """predict, evaluate, export, mergers, morphology and train --teacher, given a .pt file or a folder holding only
    one: exit 2 with the reason (unpickling runs code) and the way out, and nothing is unpickled."""
    import pickle

    import torch

    from galaxy_core.models import registry

    with open(tmp_path / "model.pt", "wb") as f:
        torch.save(registry.build_model("seed-cnn").state_dict(), f)
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "model.ckpt").write_bytes((tmp_path / "model.pt").read_bytes())
    (tmp_path / "images").mkdir()

    def fail(*args, **kwargs):
        pytest.fail("a pickle was loaded")

    for module, name in ((torch, "load"), (pickle, "load"), (pickle, "loads")):
        monkeypatch.setattr(module, name, fail)
    for model in (tmp_path / "model.pt", tmp_path / "folder"):
        for argv in (["predict", str(tmp_path / "images"), "--model", str(model)], ["evaluate", str(model)],
                     ["export", str(model), "--out", str(tmp_path / "out")],
                     ["mergers", "--images", str(tmp_path / "images"), "--model", str(model)],
                     ["mergers", "p.csv", "--calibrate-run", str(model)],
                     ["train", str(tmp_path), "--teacher", str(model)],
                     ["morphology", str(tmp_path), "--model", str(model)]):
            assert cli.main(argv) == 2, argv
            err = capsys.readouterr().err
            assert err.startswith("error:") and "pickle" in err and "runs any code" in err, (argv, err)
            assert "galaxy_core export" in err and "safetensors" in err
    assert not (tmp_path / "out").exists()


def test_one_model_load_looks_for_a_pickle_once(tmp_path, monkeypatch):
    """The command line looks at the model it is given once, before any slow work; loading it does not look again
    (a folder with model.safetensors is no pickle), and a pickle reached another way is still refused by name."""
    import argparse

    from galaxy_core.cli import common
    from galaxy_core.models import registry
    from galaxy_core.predict import modelchoice

    registry.save_model(registry.build_model("seed-cnn"), tmp_path / "ckpt")
    (tmp_path / "run" / "best").mkdir(parents=True)
    registry.save_model(registry.build_model("seed-cnn"), tmp_path / "run" / "best")
    looked, real = [], registry.refuse_pickle
    monkeypatch.setattr(registry, "refuse_pickle", lambda path: looked.append(str(path)) or real(path))
    for folder in (tmp_path / "ckpt", tmp_path / "run"):
        looked.clear()
        common.load_model(argparse.Namespace(model=str(folder), device="cpu"), images_synthetic=False)
        assert looked == [str(folder)]
    looked.clear()
    modelchoice.load_model(tmp_path / "ckpt")  # the dashboard's way: nothing to look at
    assert looked == []
    (tmp_path / "model.pt").write_bytes(b"not opened")
    for load in (modelchoice.load_model, registry.load_model_folder):
        with pytest.raises(ValueError, match="pickled checkpoint"):
            load(tmp_path / "model.pt")


def test_similar_finds_the_galaxy_itself_first_by_id_and_by_image(tiny_data, tiny_cache, tmp_path, capsys):
    import torch

    from galaxy_core.models import registry

    torch.manual_seed(0)
    model = registry.save_model(registry.build_model("galaxynet", width=8, input_size=32), tmp_path / "m")
    shutil.copytree(tiny_cache.path, tmp_path / "cache")
    gid = str(tiny_cache.ids[5])
    assert cli.main(["similar", str(tmp_path / "cache"), gid, "-k", "5", "--model", str(model), "--tta", "1",
                     "--json"]) == 0
    found = _json_tail(capsys)["neighbours"]
    assert found[0]["GalaxyID"] == gid and found[0]["distance"] == pytest.approx(0, abs=1e-5) and len(found) == 5
    image = tiny_data / layout.LABELLED_DIR / f"{gid}.jpg"  # decoded as the cache's galaxies were
    out = tmp_path / "similar.csv"
    assert cli.main(["similar", str(tmp_path / "cache"), str(image), "-k", "5", "--model", str(model), "--tta",
                     "1", "--query-source-fov", "1.0", "--out", str(out)]) == 0
    table = pd.read_csv(out, dtype={"GalaxyID": str})
    assert table["GalaxyID"][0] == gid and table["distance"][0] < 1e-3 and list(table["rank"]) == [1, 2, 3, 4, 5]
    assert cli.main(["anomalies", str(tmp_path / "cache"), "-n", "3", "--model", str(model), "--tta", "1",
                     "--json"]) == 0
    odd = _json_tail(capsys)["anomalies"]
    assert len(odd) == 3 and odd[0]["score"] >= odd[1]["score"] >= odd[2]["score"] > 0
    # On 8 principal components of the 64-d embeddings the galaxy still finds itself first.
    assert cli.main(["similar", str(tmp_path / "cache"), gid, "-k", "3", "--model", str(model), "--tta", "1",
                     "--dims", "8"]) == 0
    out = capsys.readouterr().out
    assert "8 principal components" in out and out.split("\n")[2].split()[1] == gid
    if similarity.faiss_available():
        assert cli.main(["anomalies", str(tmp_path / "cache"), "-n", "3", "--model", str(model), "--tta", "1",
                         "--approximate", "--json"]) == 0
        assert len(_json_tail(capsys)["anomalies"]) == 3


def test_label_learns_a_question_and_says_what_to_label_next(tiny_cache, tmp_path, capsys):
    import torch

    from galaxy_core.models import registry

    torch.manual_seed(0)
    model = registry.save_model(registry.build_model("galaxynet", width=8, input_size=32), tmp_path / "m")
    shutil.copytree(tiny_cache.path, tmp_path / "cache")
    edge_on = tiny_cache.labels[:, tree.column_index("Class2.1")] > 0.5  # a question with an answer in the labels
    rows = np.r_[np.flatnonzero(edge_on)[:3], np.flatnonzero(~edge_on)[:9]]
    (tmp_path / "l.csv").write_text("GalaxyID,label\n" + "".join(
        f"{tiny_cache.ids[r]},{'yes' if edge_on[r] else 'no'}\n" for r in rows) + "999999999,yes\n")
    assert cli.main(["label", str(tmp_path / "cache"), str(tmp_path / "l.csv"), "--name", "edge", "--root",
                     str(tmp_path / "disc"), "--model", str(model), "--tta", "1", "--ask", "5", "--json"]) == 0
    out = capsys.readouterr()
    r = json.loads(out.out.strip().splitlines()[-1])
    assert (r["n_yes"], r["n_no"], r["missing"]) == (3, 9, 1) and "not in" in out.err
    # The penalty chosen by the marks themselves; p(yes) not given as a probability for 3 chosen yes.
    assert r["l2_from"] == "cross-validated" and r["base_rate"] is None
    assert r["probability_shown"] is False and r["why"].startswith("the marks were chosen")
    assert len(r["ask_next"]) == 5 and not set(r["ask_next"]) & set(tiny_cache.ids[rows])
    ranked = pd.read_csv(tmp_path / "disc" / "edge" / "ranked.csv", dtype={"GalaxyID": str})
    assert len(ranked) == len(tiny_cache) and ranked["p_yes"].is_monotonic_decreasing
    assert not (tmp_path / "disc" / "edge" / "model").exists()
    # Fine-tuning the last stage too keeps the tuned copy with the labels; the model itself is unchanged.
    before = (model / "model.safetensors").read_bytes()
    assert cli.main(["label", str(tmp_path / "cache"), str(tmp_path / "l.csv"), "--name", "edge2", "--root",
                     str(tmp_path / "disc"), "--model", str(model), "--tta", "1", "--fine-tune", "--epochs", "2",
                     "--l2", "3", "--base-rate", "0.25", "--random-marks"]) == 0
    out = capsys.readouterr().out
    assert "L2 3 (given), last stage fine-tuned" in out
    assert "by rank, without p(yes): 3 yes and 9 no are too few" in out  # the printed text follows the rule
    head = json.loads((tmp_path / "disc" / "edge2" / "head.json").read_text())["head"]
    assert (head["l2"], head["base_rate"], head["l2_from"]) == (3.0, 0.25, "fine-tuned")
    assert (tmp_path / "disc" / "edge2" / "model" / "model.safetensors").is_file()
    assert (model / "model.safetensors").read_bytes() == before


def test_demo_overwrite_rebuilds_the_cache_a_run_needs(tmp_path, capsys, monkeypatch):
    """A run trained on the demo, then ``demo --overwrite`` (other galaxies): the demo's cache is rebuilt at once
    from the new images, with its settings, so the run still evaluates and nothing has to be rebuilt later (once
    the overwrite deleted the cache and the run failed with "the cache it was trained on is not on this
    machine")."""
    from galaxy_core.data.cache import default_cache_dir
    from galaxy_core.data.prepare import prepare
    from galaxy_core.predict import evaluation

    monkeypatch.setattr(evaluation, "MIN_SCORED_GALAXIES", 2)  # the small demo's few validation galaxies
    folder, small = tmp_path / "demo", ["--n", "24", "--n-unlabelled", "4", "--size", "96"]
    assert cli.main(["demo", "--out", str(folder), *small]) == 0
    assert cli.main(["train", str(folder), "--model", "mean", "--out", str(tmp_path / "runs"), "--name", "m",
                     "--device", "cpu"]) == 0
    cache = default_cache_dir(folder)
    trained = (cache / "meta.json").stat().st_mtime_ns
    capsys.readouterr()
    assert cli.main(["demo", "--out", str(folder), "--overwrite", "--seed", "1", *small, "--json"]) == 0
    out = capsys.readouterr().out
    assert f"its cache {cache} was rebuilt from the new images (28 galaxies at 80 px)" in out
    assert json.loads(out.splitlines()[-1])["rebuilt"] == [str(cache)]
    rebuilt = (cache / "meta.json").stat().st_mtime_ns
    assert rebuilt != trained
    assert prepare(folder).path == cache and (cache / "meta.json").stat().st_mtime_ns == rebuilt  # fresh
    assert cli.main(["evaluate", str(tmp_path / "runs" / "m")]) == 0
    assert "RMSE" in capsys.readouterr().out


def test_prepare_says_when_it_rebuilt_nothing_and_runs_has_a_header(tiny_data, tmp_path, capsys):
    """A second prepare of an unchanged folder builds nothing and says so (once it reported the old build time as
    its own); ``runs`` names its columns."""
    from galaxy_core.atomic import atomic_write_json

    args = ["prepare", str(tiny_data), "--out", str(tmp_path / "cache"), "--size", "16", "--workers", "1", "--json"]
    assert cli.main(args) == 0
    first = capsys.readouterr().out
    assert "built in" in first and json.loads(first.splitlines()[-1])["built"] is True
    assert cli.main(args) == 0
    again = capsys.readouterr().out
    assert "already up to date, nothing rebuilt" in again and "--force rebuilds it" in again
    assert json.loads(again.splitlines()[-1])["built"] is False

    atomic_write_json(tmp_path / "runs" / "ok" / "status.json", {"state": "finished"})
    atomic_write_json(tmp_path / "runs" / "bad" / "status.json", {"state": "failed", "error": "ValueError: no"})
    assert cli.main(["runs", "--root", str(tmp_path / "runs")]) == 0
    header, *rows = capsys.readouterr().out.splitlines()
    assert header.split() == ["run", "model", "status", "val", "RMSE", "error"] and len(rows) == 2
    assert any(r.startswith("bad") and r.endswith("ValueError: no") for r in rows)
