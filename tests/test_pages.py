"""Every dashboard page under Streamlit's AppTest, on a tiny synthetic data set: no exception, the widgets and plots
are there, the merger threshold moves the fraction, and a training launched from the Training page finishes and is
scored on the Evaluation page.

The app reads its data folder from GALAXY_DATA and its runs folder from GALAXY_RUNS, both pointed at tmp_path here,
and may read folders under GALAXY_DATA_ROOTS, here pytest's base temporary folder.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
import streamlit as st
from PIL import Image
from streamlit.testing.v1 import AppTest

from galaxy_core import cli
from galaxy_core.atomic import read_json
from galaxy_core.data import images, layout
from galaxy_core.data.cache import split_rows
from galaxy_core.data.prepare import resolve_cache
from galaxy_core.demo import demo_set
from galaxy_core.models import config, runs
from galaxy_core.predict import metrics, modelchoice
from galaxy_core.training import export

from conftest import ROOT, app, charts, make_tiny, png_bomb_with_data

PAGES = ["dataset", "distributions", "training", "evaluation", "mergers", "predict", "discover"]


@pytest.mark.parametrize("page", ["app"] + [f"pages/{p}" for p in PAGES])
def test_a_page_only_lays_out(page):
    """A page reads its widgets, calls galaxy_core and draws: it imports no numerical or plotting library (numbers,
    tables and figures come from galaxy_core) and defines no class. The shared Streamlit glue (caching, progress
    bars, the sidebar) is in pages/_common.py and pages/_models.py."""
    tree = ast.parse((ROOT / f"{page}.py").read_text())
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert imported & {"numpy", "pandas", "torch", "plotly", "scipy", "PIL"} == set()
    assert not any(isinstance(n, ast.ClassDef) for n in ast.walk(tree))


def test_the_pages_store_keeps_the_newest_and_one_value_per_slot():
    """pages._store.Store, as pages._models and pages._common use it: computed once per key, the oldest dropped past
    ``keep``, a newer value of a slot (a folder) replacing the older, nothing stored for a failed computation."""
    from pages._store import Store

    calls = []
    store = Store(keep=2)
    for key in ("a", "b", "a", "c"):
        assert store.get(key, lambda: calls.append(key) or key.upper()) == key.upper()
    assert calls == ["a", "b", "c"] and "a" not in store and len(store) == 2  # "a" was the oldest stored
    with pytest.raises(ZeroDivisionError):
        store.get("d", lambda: 1 / 0)
    assert "d" not in store

    folders = Store(slot=lambda key: key[0])
    folders.get(("data", 1), lambda: "old")
    folders.get(("other", 1), lambda: "other")
    assert folders.get(("data", 2), lambda: "new") == "new"
    assert ("data", 1) not in folders and ("other", 1) in folders and len(folders) == 2
    with folders.lock:  # held by a caller, computing under it: the lock is re-entrant
        assert folders.get(("data", 3), lambda: "newer") == "newer"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """A tiny data set (prepared by the app itself on first use) and an empty runs folder, set in the environment."""
    base = tmp_path_factory.mktemp("pages")
    root = make_tiny(base / "data")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GALAXY_DATA", str(root))
        mp.setenv("GALAXY_RUNS", str(base / "runs"))
        # Folders typed into the pages (other tests' tmp_path) are all under pytest's base folder.
        mp.setenv("GALAXY_DATA_ROOTS", str(tmp_path_factory.getbasetemp()))
        yield {"data": root, "runs": base / "runs"}


def test_a_start_imports_no_pytorch():
    """The home page, the sidebar and the Dataset and Distributions pages draw without PyTorch (~2 s to import;
    app.py imports it in the background afterwards): what they import, in a fresh interpreter, leaves it out."""
    imported = set()
    for name in ["app.py", "pages/_common.py", "pages/dataset.py", "pages/distributions.py"]:
        for node in ast.walk(ast.parse((ROOT / name).read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                folder = ROOT.joinpath(*node.module.split("."))  # a name that is a module of it, or a name in it
                imported |= {f"{node.module}.{a.name}" if (folder / f"{a.name}.py").is_file()
                             or (folder / a.name / "__init__.py").is_file() else node.module for a in node.names}
            elif isinstance(node, ast.Import):
                imported |= {a.name for a in node.names}
    imported -= {"pages._models"}  # app.py's background import
    code = f"import importlib, sys\nfor m in {sorted(imported)!r}: importlib.import_module(m)\n" \
           "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision')))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert "pages._common" in imported and "galaxy_core.show.figures" in imported
    assert out.stdout.strip() == "[]"


def test_home(env):
    at = app()
    assert at.title[0].value == "Galaxy Zoo 2 morphology"
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["galaxies"] == "56" and metrics["unlabelled"] == "8"
    assert at.sidebar.text_input(key="data_folder").value == str(env["data"])
    assert len(at.get("page_link")) == len(PAGES)
    assert not at.error


def test_the_browser_code_is_preloaded_once_per_session_after_the_first_page(env):
    """app.py draws one hidden element of each lazily loaded kind after a session's first page, and never again."""
    at = app()
    assert at.selectbox(key="_preload_selectbox") and at.get("plotly_chart")
    assert [e for e in at.get("html") if ".st-key-preload {display: none}" in e.proto.body]
    at.switch_page("pages/dataset.py").run()
    assert not at.exception
    assert "_preload_selectbox" not in [w.key for w in at.selectbox]
    at.switch_page("app.py").run()
    assert not at.get("plotly_chart")  # home draws no chart of its own


def test_bad_data_folder_is_reported(env):
    at = app()
    at.sidebar.text_input(key="data_folder").set_value(str(env["data"] / "nowhere")).run()
    assert not at.exception
    assert "does not exist" in at.sidebar.error[0].value
    at.switch_page("pages/dataset.py").run()
    assert not at.exception and "Choose a data folder" in at.info[0].value


def test_default_data_folder_falls_back_to_the_demo(env, tmp_path, monkeypatch):
    """``data/`` without images means the built-in demo; here the demo is the tiny set, declared complete, so that
    nothing is generated."""
    monkeypatch.setattr(demo_set, "DATA_ROOT", tmp_path / "data")
    monkeypatch.setattr(demo_set, "DEFAULT_ROOT", env["data"])
    monkeypatch.setattr(demo_set, "is_complete_demo", lambda root, *a: True)
    (tmp_path / "data").mkdir()
    monkeypatch.setenv("GALAXY_DATA", str(tmp_path / "data"))
    at = app()
    assert "built-in synthetic demo" in at.info[0].value
    assert "Synthetic demo data" in at.sidebar.caption[0].value


def test_a_folder_of_small_images_asks_for_its_field_in_the_main_area(env, tmp_path, monkeypatch):
    """96 px images with no galaxy_core.json: the main area says what to type, and one click sets it."""
    folder = tmp_path / "pack"
    (folder / layout.UNLABELLED_DIR).mkdir(parents=True)
    for image in sorted((env["data"] / layout.UNLABELLED_DIR).iterdir())[:4]:
        Image.open(image).resize((96, 96)).save(folder / layout.UNLABELLED_DIR / image.name)
    monkeypatch.setenv("GALAXY_DATA", str(folder))
    at = app()
    [asked] = at.warning
    assert "96 x 96 px" in asked.value and "0.6038" in asked.value and "Source field of view" in asked.value
    assert "main area" in at.sidebar.error[0].value and not at.info
    at.button(key="fov_pack").click().run()
    assert not at.exception and not at.warning and not at.sidebar.error
    assert at.sidebar.number_input(key="source_fov").value == images.PACK_FOV  # 256 / 424 exactly
    assert next(m.value for m in at.metric if m.label == "galaxies") == "4"


def test_dataset_page(env):
    at = app("dataset")
    assert at.title[0].value == "Dataset browser"
    assert {m.label for m in at.metric} >= {"galaxies", "fully labelled", "unlabelled", "training", "validation"}
    assert "Every question's answers sum" in at.success[0].value  # the tree check passes on demo labels
    assert len(at.get("image")) >= 4  # thumbnails, original, cached, prototypes
    assert len(charts(at)) == 1  # the decision tree of one galaxy
    # No catalogue, no positions: no sky tab, and plain thumbnails without links.
    assert not at.tabs and not [h for h in at.get("html") if "gc-sky-gallery" in h.proto.body]
    at.selectbox(key="ds_sort").set_value("Class1.1")
    at.selectbox(key="ds_filter").set_value("Class8.6").run()
    assert not at.exception
    at.selectbox(key="ds_sort").select_index(0)  # back to GalaxyID order, no filter
    at.selectbox(key="ds_filter").select_index(0)
    at.selectbox(key="ds_subset").set_value("unlabelled").run()
    assert at.selectbox(key="ds_sort").value is None
    assert at.selectbox(key="ds_pick").value == str(demo_set.FIRST_ID + 48)
    assert not at.exception and "unlabelled" in at.info[0].value  # no tree for an unlabelled galaxy
    at.text_input(key="ds_typed").set_value("no-such-galaxy").run()
    assert not at.exception and "not in the cache" in at.error[0].value


def test_dataset_page_lists_the_galaxies_the_model_is_least_sure_of_on_request(env):
    """Off at first (the page draws without a model); switched on, the shipped model's 8-view spread of the chosen
    answer ranks the selection, largest first, each galaxy with its value ± spread and the caption saying what ±
    is (the tiny set has too few labelled galaxies for a scale: raw and said so)."""
    from galaxy_core import tree
    from galaxy_core.predict import doubt, modelchoice, plusminus

    at = app("dataset")
    assert at.toggle(key="ds_sure").value is False and "ds_sure_model" not in [s.key for s in at.selectbox]
    at.toggle(key="ds_sure").set_value(True).run()
    at.selectbox(key="ds_sure_answer").set_value("Class8.6")
    at.number_input(key="ds_sure_n").set_value(5).run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key="ds_sure_model").value == "checkpoint default (shipped)"
    text = " ".join(c.value for c in at.caption)
    assert "The 5 of the 56 galaxies of the thumbnails' selection with the largest spread of Class8.6" in text
    assert "± is the raw spread of the 8 views (the galaxy turned and mirrored), uncalibrated" in text
    cache = at.session_state["dataset"].cache
    spread = doubt.spread_of([modelchoice.load_model(None)], cache, cache.indices("all"), store=False)
    j = tree.column_index("Class8.6")
    order = plusminus.least_sure(spread.spread[:, j], 5)
    expected = [f"{cache.ids[r]} · {plusminus.plus_minus(spread.value[r, j], spread.spread[r, j])}" for r in order]
    shown = [c for c in image_captions(at) if " ± " in c]
    assert shown == expected and spread.spread[order[0], j] >= spread.spread[order[-1], j]


def _sky_points(at) -> list[str]:
    """The GalaxyIDs on the Dataset page's sky map (its first chart in the tab)."""
    spec = json.loads(charts(at)[0].proto.spec)
    return [i for trace in spec["data"] for i in trace["text"]]


def test_dataset_page_on_the_sky(env, tmp_path, monkeypatch):
    """Data whose catalogue has positions (the demo's made-up one): every thumbnail carries its RA/Dec and links to
    the two sky viewers, marked made up; a second tab shows the same selection on the sky, coloured by the
    catalogue's redshift at first, and its filters apply there too."""
    root = make_tiny(tmp_path / "sky", n_labelled=20, n_unlabelled=4, size=64, catalogue=True)
    monkeypatch.setenv("GALAXY_DATA", str(root))
    at = app("dataset")
    assert [t.label for t in at.tabs] == ["Thumbnails", "On the sky"]
    grids = [h.proto.body for h in at.get("html") if "gc-sky-gallery" in h.proto.body]
    assert len(grids) == 2  # the thumbnails and the prototypes
    assert grids[0].count("<figure") == 24 and "Made-up positions" in grids[0]
    assert grids[0].count("legacysurvey.org/viewer?ra=") == grids[0].count("skyserver.sdss.org/dr18") == 24
    one = " ".join(m.value for m in at.markdown)
    assert "made-up RA" in one and "[Legacy Survey](https://www.legacysurvey.org/viewer?ra=" in one
    images = " ".join(img.caption for i in at.get("image") for img in i.proto.imgs)
    assert f"the original image ({demo_set.FIRST_ID}.jpg)" in images  # found through the catalogue's file column
    assert "made up" in " ".join(c.value for c in at.caption)
    at.session_state["ds_view"] = "On the sky"
    at.run()
    assert not at.exception
    assert at.selectbox(key="ds_sky_colour").value == ("catalogue", "z")
    assert len(_sky_points(at)) == 24 and len(charts(at)) == 1  # the map; one galaxy waits for a pick on it
    spec = json.loads(charts(at)[0].proto.spec)
    assert spec["layout"]["xaxis"]["autorange"] == "reversed" and "made up" in spec["layout"]["xaxis"]["title"]["text"]
    captions = " ".join(c.value for c in at.caption)
    assert "24 galaxies of this selection" in captions and "made up" in captions
    # The gallery's filters choose the map's galaxies too; the map is then coloured by the filter's answer.
    at.selectbox(key="ds_subset").set_value("labelled").run()
    assert not at.exception and len(_sky_points(at)) == 20
    at.selectbox(key="ds_sky_colour").set_value(("volunteers", "Class1.1")).run()
    assert not at.exception and "Class1.1" in json.dumps(json.loads(charts(at)[0].proto.spec)["data"])


def test_dataset_page_shows_a_fits_original_as_its_composite(env, tmp_path, monkeypatch):
    """A folder of FITS cutouts: the Dataset page shows each original as the composite it was cached from."""
    from conftest import galaxy, header, write, write_triple

    folder = tmp_path / "fits" / layout.UNLABELLED_DIR
    folder.mkdir(parents=True)
    write(folder / "101.fits", galaxy(seed=1), header(r90=5.0))
    write_triple(folder, "102", galaxy(seed=2), header(r90=5.0))
    monkeypatch.setenv("GALAXY_DATA", str(folder.parent))
    at = app("dataset")
    assert not at.warning, [w.value for w in at.warning]
    assert "No fully labelled galaxies" in at.info[0].value and not at.success  # nothing to check the tree on
    at.selectbox(key="ds_subset").set_value("unlabelled")
    at.selectbox(key="ds_pick").set_value("102").run()
    assert not at.exception and not at.warning
    captions = " ".join(img.caption for i in at.get("image") for img in i.proto.imgs)
    assert "the original image (102_r.fits)" in captions, captions


def test_distributions_page(env):
    at = app("distributions")
    # Three lazy tabs, the first open: the 37 histograms as one heatmap and the first question's panels.
    assert [t.label for t in at.tabs] == ["Histograms", "Correlations", "Training vs validation"]
    assert len(charts(at)) == 2 and len(at.dataframe) == 1
    at.toggle(key="dist_log").set_value(True)
    at.selectbox(key="dist_hist_question").select_index(0)  # all 37 panels
    at.radio(key="dist_subset").set_value("val").run()
    assert not at.exception and len(charts(at)) == 2
    grid = json.loads(charts(at)[1].proto.spec)
    assert len(grid["data"]) == 37 and grid["layout"]["yaxis"]["type"] == "log"
    # The correlation matrix and one question's block; then the split means, the split histogram and the KS table.
    at.session_state["dist_tab"] = "Correlations"
    at.run()
    assert not at.exception and len(charts(at)) == 2 and "dist_log" not in [t.key for t in at.toggle]
    at.selectbox(key="dist_question").set_value("Class11").run()
    block = json.loads(charts(at)[1].proto.spec)["data"][0]
    assert block["x"] and all(c.startswith("Class11.") for c in block["x"])
    at.session_state["dist_tab"] = "Training vs validation"
    at.run()
    assert not at.exception and len(charts(at)) == 2 and len(at.dataframe) == 1


def test_pages_without_a_model(env, tmp_path, monkeypatch):
    monkeypatch.setenv("GALAXY_RUNS", str(tmp_path / "no_runs"))
    monkeypatch.setattr(modelchoice, "CHECKPOINTS", tmp_path / "no_checkpoints")
    at = app("evaluation")
    assert "No run with a checkpoint" in at.info[0].value
    for page in ("mergers", "predict"):
        at = app(page)
        assert "No trained model yet" in at.warning[0].value
    # The command the pages suggest works as shown, on the data in use, from the project folder.
    [command] = re.findall(r"`(python -m galaxy_core [^`]+)`", at.warning[0].value)
    assert str(env["data"]) in command
    monkeypatch.chdir(tmp_path)
    assert cli.main(shlex.split(command)[3:]) == 0
    [run] = runs.list_runs(tmp_path / "runs")
    assert run["status"] == "finished" and run["model"] == "galaxynet"


def test_pages_with_only_the_shipped_checkpoint(trained, env, tmp_path, monkeypatch):
    """No run of one's own: Evaluation, Mergers and Predict use the checkpoint in checkpoints/default."""
    from galaxy_core.predict import evaluation

    monkeypatch.setattr(modelchoice, "CHECKPOINTS", tmp_path / "checkpoints")
    export.export_checkpoint(trained["run"], tmp_path / "checkpoints" / "default", tta=1, device="cpu")
    monkeypatch.setenv("GALAXY_RUNS", str(tmp_path / "no_runs"))
    at = app("evaluation")
    assert at.selectbox(key="ev_run").value == "checkpoint default (shipped)"
    assert "never trained on" in " ".join(c.value for c in at.caption)
    trained_on = len(evaluation.trained_ids(tmp_path / "checkpoints" / "default"))
    assert 0 < trained_on < 48 - 2  # of the tiny set's 48 labelled galaxies
    # A handful of unseen galaxies make no result ...
    assert next(m.value for m in at.metric if m.label == "RMSE over all 37 answers") == "too few to score"
    # ... and the labelled ones leave out, and say so, those it trained on, unless asked for.
    at.selectbox(key="ev_split").set_value("labelled").run()
    assert f"{trained_on} labelled galaxies the model trained on are left out" in " ".join(c.value for c in at.caption)
    assert next(m.value for m in at.metric if m.label == "galaxies") == str(48 - trained_on) and not at.warning
    at.toggle(key="ev_include_trained").set_value(True).run()
    assert next(m.value for m in at.metric if m.label == "galaxies") == "48" and "no test" in at.warning[0].value
    monkeypatch.setattr(evaluation, "MIN_SCORED_GALAXIES", 2)
    at = app("evaluation")
    rmse = next(m.value for m in at.metric if m.label == "RMSE over all 37 answers")
    cache = resolve_cache(read_json(trained["run"] / "config.json")["cache"]["path"])
    expected = evaluation.evaluate(tmp_path / "checkpoints" / "default", cache, device="cpu")
    assert float(rmse) == pytest.approx(expected.rmse(), abs=1e-4)
    assert next(m.value for m in at.metric if m.label == "galaxies") == f"{len(expected):,}"
    for page in ("mergers", "predict"):
        at = app(page)
        assert at.selectbox[0].value == "checkpoint default (shipped)" and not at.warning


def test_training_page_defaults_to_the_cpu_recipe_on_a_cpu(env):
    at = app("training")
    assert at.selectbox(key="tr_model").value == "galaxynet" and at.selectbox(key="tr_device").value == "auto"
    recipe = config.CPU_RECIPES["galaxynet"]
    assert at.number_input(key="tr_epochs_galaxynet_cpu").value == recipe["epochs"]
    assert at.number_input(key="tr_lr_galaxynet_cpu").value == recipe["lr"]
    assert "CPU recipe (width 32, input_size 72)" in " ".join(c.value for c in at.caption)
    processes = at.number_input(key="tr_processes")  # torchrun on this machine; one process unless chosen
    assert processes.value == 1 and processes.max == os.cpu_count()
    processes.set_value(2).run()
    assert not at.exception and "(for one process)" in " ".join(c.value for c in at.caption)


def test_training_page_offers_what_a_model_uses_and_times_it(env):
    at = app("training")
    captions = " ".join(c.value for c in at.caption)
    assert "Estimated duration on this machine (cpu)" in captions and "images/s" in captions
    at.selectbox(key="tr_model").set_value("mean").run()
    assert not at.exception and "closed form" in " ".join(c.value for c in at.caption)
    keys = {w.key for w in at.number_input}
    assert not any(k and k.startswith(("tr_epochs", "tr_lr", "tr_batch")) for k in keys)
    assert "Estimated duration" not in " ".join(c.value for c in at.caption)


def test_training_page_estimates_from_a_speed_measured_here(env, tmp_path, monkeypatch):
    """A checkpoint trained with the default settings on this kind of machine gives the estimate its speed."""
    ckpt = tmp_path / "checkpoints" / "default"
    ckpt.mkdir(parents=True)
    (ckpt / "model.safetensors").write_bytes(b"")  # listed by its file; the page reads only its config here
    train = dataclasses.asdict(config.config_for("galaxynet", device="auto"))
    (ckpt / "config.json").write_text(json.dumps({"name": "galaxynet", "extra": {
        "train_config": train, "machine": runs.machine_description("cpu"),
        "train_summary": {"images_per_s": 123.0, "wall_seconds": 60.0}}}))
    monkeypatch.setattr(modelchoice, "CHECKPOINTS", ckpt.parent)
    st.cache_resource.clear()  # an earlier test's probe of the same settings is kept (pages/_models.result_store)
    captions = " ".join(c.value for c in app("training").caption)
    assert "at 123 images/s, the speed at which the shipped checkpoint `default` trained" in captions
    st.cache_resource.clear()


def test_training_page_shows_one_live_state(env, tmp_path, monkeypatch):
    """A running run (this process stands in for its trainer) reads the same in the header, the table and the
    overlay, and both charts carry the mean baseline as their reference line."""
    import os

    from galaxy_core.atomic import atomic_write_json

    run = tmp_path / "runs" / "live"
    run.mkdir(parents=True)
    cache = app().session_state["dataset"].cache
    atomic_write_json(run / "config.json", {"train": {"model": "galaxynet", "data": str(cache.path)}})
    atomic_write_json(run / "status.json", {"state": "running", "pid": os.getpid(), "host": os.uname().nodename,
                                            "epoch": 2, "epochs": 10, "step": 1, "steps": 4})
    (run / "metrics.csv").write_text("epoch,train_rmse,val_rmse,lr,seconds,images_per_s\n"
                                     "1,0.20,0.19,0.001,1.0,100\n2,0.18,0.17,0.001,1.0,100\n")
    monkeypatch.setenv("GALAXY_RUNS", str(tmp_path / "runs"))
    at = app("training")
    assert "Run live: running" in [h.value for h in at.subheader]
    assert at.dataframe[0].value.set_index("run").loc["live", "status"] == "running"
    live, overlay = (json.loads(c.proto.spec) for c in charts(at))
    assert [t["name"] for t in overlay["data"]] == ["live"]
    baseline = metrics.mean_baseline(cache.labels, cache.mask, *split_rows(cache, config.TrainConfig()))
    for fig in (live, overlay):
        [line] = fig["layout"]["shapes"]
        assert line["y0"] == pytest.approx(baseline) and "mean baseline" in fig["layout"]["annotations"][0]["text"]
    atomic_write_json(run / "status.json", {"state": "failed", "error": "DataError: broken image 7.jpg"})
    at.run()
    assert "Run live: failed" not in [h.value for h in at.subheader]  # no longer followed once it ended
    table = at.dataframe[0].value.set_index("run")
    assert table.loc["live", "status"] == "failed" and "broken image" in table.loc["live", "error"]
    [why] = [e for e in at.expander if e.label.startswith("Why")]  # the whole error, which a table cell cuts short
    assert why.label == "Why 1 run failed" and "DataError: broken image 7.jpg" in why.markdown[0].value


def test_training_page_on_unlabelled_data_says_why_and_offers_no_start(env, tmp_path, monkeypatch):
    """Unlabelled data: the reason instead of an estimate of "0 galaxies at nan images/s", and Start off (once it
    started a run that failed at once and left its folder behind)."""
    import shutil

    folder = tmp_path / "unlabelled"
    shutil.copytree(env["data"], folder, ignore=shutil.ignore_patterns(layout.LABELLED_DIR, "*.csv", ".*"))
    monkeypatch.setenv("GALAXY_DATA", str(folder))
    monkeypatch.setenv("GALAXY_RUNS", str(tmp_path / "runs"))
    at = app("training")
    [warning] = at.warning
    assert warning.value.startswith("Training cannot start: no labelled galaxies to train on: all 8 galaxies of "
                                    "unlabelled are unlabelled")
    assert "Estimated duration" not in " ".join(c.value for c in at.caption)
    start = at.button(key="tr_start")  # a disabled button cannot be clicked (AppTest refuses as a browser does)
    assert start.disabled and "no labelled galaxies" in start.proto.help
    assert "tr_run" not in at.session_state and not (tmp_path / "runs").exists()


def test_training_page_follows_a_run_started_in_a_terminal(env, tmp_path, monkeypatch):
    """A run started as `python -m galaxy_core train <data folder>` (this process stands in for it) on the page's
    data: followed live, its epochs and best RMSE so far in the table, said before a second start; a run on other
    data is left out of the overlay, whose baseline is this data's."""
    import os

    from galaxy_core.atomic import atomic_write_json

    runs_root = tmp_path / "runs"
    cli_run, other = runs_root / "from-terminal", runs_root / "elsewhere"
    for run, data_path in ((cli_run, env["data"]), (other, tmp_path / "other-data")):
        atomic_write_json(run / "config.json", {"train": {"model": "seed-cnn", "data": str(data_path)}})
        (run / "metrics.csv").write_text("epoch,train_rmse,val_rmse,lr,seconds,images_per_s\n"
                                         "1,0.20,0.19,0.001,1.0,100\n2,0.18,0.17,0.001,1.0,100\n")
    atomic_write_json(cli_run / "status.json", {"state": "running", "pid": os.getpid(), "host": os.uname().nodename,
                                                "epoch": 2, "epochs": 10, "step": 1, "steps": 4})
    atomic_write_json(other / "status.json", {"state": "stopped"})
    monkeypatch.setenv("GALAXY_RUNS", str(runs_root))
    at = app("training")
    assert "Run from-terminal: running" in [h.value for h in at.subheader]
    assert at.button(key="tr_start").disabled
    assert any("`from-terminal` is training on this data (followed below" in w.value for w in at.warning)
    table = at.dataframe[0].value.set_index("run")
    assert (table.loc["from-terminal", "epochs"], table.loc["from-terminal", "val RMSE"]) == (2, 0.17)
    assert table.loc["elsewhere", "data"] == "other-data" and table.loc["from-terminal", "data"] == env["data"].name
    overlay = next(m for m in at.multiselect if m.label.startswith("Validation curves to overlay"))
    assert overlay.options == ["from-terminal"] and overlay.value == ["from-terminal"]
    assert "1 run on other data left out of the overlay" in " ".join(c.value for c in at.caption)


@pytest.fixture(scope="module")
def trained(env):
    """One epoch of the seed CNN launched from the Training page, waited for until it finishes."""
    at = app("training")
    at.selectbox(key="tr_model").set_value("seed-cnn").run()
    at.number_input(key="tr_epochs_seed-cnn_cpu").set_value(1)
    at.button(key="tr_start").click().run()
    assert not at.exception and not at.error
    run = Path(at.session_state["tr_run"])
    assert run.parent == env["runs"]
    # While it runs, the page says so before a second start on the same data, which stays off.
    at.run()
    assert at.button(key="tr_start").disabled and any(f"`{run.name}` is training on this data" in w.value
                                                      for w in at.warning)
    deadline = time.time() + 150
    while runs.read_status(run).get("state") in ("starting", "running") and time.time() < deadline:
        time.sleep(0.5)
    status = runs.read_status(run)
    assert status["state"] == "finished", (status, (run / "train.log").read_text()[-2000:])
    return {"at": at, "run": run}


def test_training_page_follows_the_run(trained):
    at = trained["at"].run()
    assert not at.exception
    assert any("finished" in s.value for s in at.subheader)
    assert len(charts(at)) == 2  # the run's curves and the overlay of past runs
    assert trained["run"].name in at.dataframe[0].value["run"].tolist()


def test_evaluation_page_shows_the_runs_rmse(trained, monkeypatch):
    from galaxy_core.predict import evaluation

    monkeypatch.setattr(evaluation, "MIN_SCORED_GALAXIES", 2)  # the tiny set's few validation galaxies
    at = app("evaluation")
    assert at.selectbox(key="ev_run").value == f"run {trained['run'].name}"  # a run on this data comes first
    summary = read_json(trained["run"] / "summary.json")
    rmse = next(m.value for m in at.metric if m.label == "RMSE over all 37 answers")
    assert float(rmse) == pytest.approx(summary["val_rmse"], abs=1e-4)
    assert len(charts(at)) == 3  # per answer, true vs predicted, tree of a worst galaxy
    assert len(at.get("image")) == 3  # top 5 actual, top 5 predicted, worst
    at.selectbox(key="ev_answer").select_index(0)  # all 37 answers
    at.selectbox(key="ev_split").set_value("labelled").run()
    assert not at.exception and len(charts(at)) == 3
    assert at.selectbox(key="ev_answer").value is None
    assert len(json.loads(charts(at)[1].proto.spec)["data"]) == 2 * 37  # 37 panels: points and the y = x line


def image_captions(at: AppTest) -> list[str]:
    return [img.caption for i in at.get("image") for img in i.proto.imgs]


def test_evaluation_page_plots_error_against_spread_and_shows_each_galaxys(trained, monkeypatch):
    """With a floor low enough for the tiny set's held-out galaxies: the plot of error against spread with the
    calibrated and the scaled lines, the rank correlations beside it, and each top-5 galaxy's prediction ± its
    scaled spread under a caption that says what ± is."""
    from galaxy_core.predict import doubt, evaluation, modelchoice, uncertainty

    monkeypatch.setattr(evaluation, "MIN_SCORED_GALAXIES", 2)
    monkeypatch.setattr(uncertainty, "MIN_SCALE_GALAXIES", 2)
    at = app("evaluation")
    spec = next(json.loads(c.proto.spec) for c in charts(at) if "calibrated: error = spread" in c.proto.spec)
    names = [t["name"] for t in spec["data"]]
    assert names[:2] == ["the model's galaxies", "calibrated: error = spread"] and names[2].startswith("error = ")
    text = " ".join(c.value for c in at.caption)
    assert "Spearman's ρ of the error with the spread" in text and "sqrt(v (1 - v)) of the value alone" in text
    cache = at.session_state["dataset"].cache
    cal = doubt.calibrate([modelchoice.load_model(trained["run"])], cache)
    assert f"c = {cal.scale.factor:.3g} fitted on {cal.scale.n_fit} held-out galaxies" in text
    shown = [c for c in image_captions(at) if " · true " in c]
    assert len(shown) == 2 * min(5, len(cal.rows)) and all(re.search(r"pred \d\.\d\d ± >?\d", c) for c in shown)
    # All 37 answers pooled, and an answer of its own: the plot follows the true-vs-predicted choice.
    at.selectbox(key="ev_answer").select_index(0).run()
    assert not at.exception and "All 37 answers of the" in " ".join(c.value for c in at.caption)
    # Below the floor the raw spread is shown and called uncalibrated, with no plot.
    monkeypatch.setattr(uncertainty, "MIN_SCALE_GALAXIES", 10_000)
    at = app("evaluation")
    assert not [c for c in charts(at) if "calibrated: error = spread" in c.proto.spec]
    assert any("No plot of error against spread" in i.value for i in at.info)
    assert "± is the raw spread of the 8 views (the galaxy turned and mirrored), uncalibrated" in " ".join(
        c.value for c in at.caption)
    assert all(" ± " in c for c in image_captions(at) if " · true " in c)


@pytest.fixture
def calibrate_small(monkeypatch):
    """The tiny set's handful of unseen galaxies and volunteer mergers, enough to draw the calibration."""
    from galaxy_core.mergers import calibration

    monkeypatch.setattr(calibration, "MIN_CALIBRATION_GALAXIES", 2)
    monkeypatch.setattr(calibration, "MIN_CALIBRATION_MERGERS", 0)


def test_mergers_threshold_changes_the_fraction(trained, calibrate_small):
    at = app("mergers")

    def fraction() -> str:
        return next(m.value for m in at.metric if m.label.startswith("Merger fraction"))

    at.slider(key="mg_threshold").set_value(0.0).run()
    low = fraction()
    at.slider(key="mg_threshold").set_value(0.99).run()
    assert not at.exception
    assert low == "100.00%" and fraction() == "0.00%"
    assert len(charts(at)) == 3  # histogram, calibration, reliability
    assert any("Expected from R x T" == m.label for m in at.metric)
    at.number_input(key="mg_rate").set_value(0.1).run()
    assert next(m.value for m in at.metric if m.label == "Expected from R x T") == "3.00%"
    at.radio(key="mg_subset").set_value("unlabelled").run()  # calibrated on the labelled galaxies instead
    assert not at.exception and "labelled galaxies of this data that the model never trained on" in " ".join(
        c.value for c in at.caption)


def test_mergers_page_opens_on_the_galaxies_a_folder_has(trained, env, tmp_path, monkeypatch):
    """A folder of unlabelled galaxies only: the page starts on them, not on an empty validation split."""
    import shutil

    shutil.copytree(env["data"] / layout.UNLABELLED_DIR, tmp_path / "only" / layout.UNLABELLED_DIR)
    shutil.copy(env["data"] / layout.FOLDER_CONFIG, tmp_path / "only" / layout.FOLDER_CONFIG)
    monkeypatch.setenv("GALAXY_DATA", str(tmp_path / "only"))
    at = app("mergers")
    assert at.radio(key="mg_subset").value == "unlabelled"
    assert not at.info or "No galaxies" not in at.info[0].value
    assert any(m.label.startswith("Merger fraction") for m in at.metric)


def test_mergers_morphology_check_measures_on_demand(trained, calibrate_small):
    """The morphology section says how many galaxies are not measured yet, measures them when asked (kept with the
    cache), then shows the fractions by each method, their overlap, the Gini-M20 plane and what the cuts select."""
    at = app("mergers")
    assert any("not measured yet" in i.value for i in at.info)
    assert len(charts(at)) == 3  # nothing measured: no Gini-M20 figure yet
    at.button(key="mg_morph_go").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert not any("not measured yet" in i.value for i in at.info)
    compared = next(m for m in at.metric if m.label == "Galaxies compared")
    assert int(compared.value.replace(",", "")) >= 1
    methods = at.dataframe[0].value["method"].tolist()
    assert methods[:2] == ["Gini-M20 (Lotz et al. 2008)", "A > 0.35 (Conselice 2003)"]
    assert "volunteers (Class8.6 > 0.5)" in methods and any(m.startswith("model, calibrated") for m in methods)
    assert at.dataframe[1].value.shape == (len(methods), len(methods))  # the overlap
    assert len(charts(at)) == 4
    at.slider(key="mg_threshold").set_value(0.3).run()  # no new measurement: read back from the cache
    assert not at.exception and not any("not measured yet" in i.value for i in at.info)


def test_predict_page(trained, env):
    at = app("predict")
    assert "Upload some images" in at.info[0].value
    images = sorted((env["data"] / layout.UNLABELLED_DIR).glob("*.jpg"))[:3]
    at.get("file_uploader")[0].set_value([(p.name, p.read_bytes(), "image/jpeg") for p in images]).run()
    # Uploads carry no galaxy_core.json: 128 px images are not taken for 424 px originals without a word, and the
    # page says so in its own words: the box beside the uploader, the uploads by name, no temporary folder.
    error = at.error[0].value
    assert not at.exception and "not a 424 x 424 px Kaggle original" in error
    assert "**Source field of view** beside the uploader" in error and "--source-fov" not in error
    assert "galaxy_upload_" not in error and "/" not in error.replace("a 424 x 424", "")
    assert sum(error.count(p.name) for p in images) == 1
    at.number_input(key="pr_fov").set_value(1.0).run()
    assert not at.exception and not at.error
    assert "Field of view: 1.0000 of the 424 px frame (as given)" in " ".join(c.value for c in at.caption)
    table = at.dataframe[0].value
    assert table["GalaxyID"].tolist() == [p.stem for p in images] and table.shape[1] == 38
    assert len(at.get("download_button")) == 1 and len(charts(at)) == 1
    at.get("file_uploader")[0].set_value(None)
    at.number_input(key="pr_fov").set_value(None)
    at.text_input(key="pr_folder").set_value(str(env["data"])).run()
    assert not at.exception and len(at.dataframe[0].value) == 56
    assert "(from galaxy_core.json)" in " ".join(c.value for c in at.caption)


def test_predict_page_reads_fits_cutouts(trained, env):
    """A folder of FITS cutouts (a g, r, i cube and a band triple, each with its own field in its header) and the
    same files uploaded: both predicted, the field said to come from the headers, the composite shown."""
    from conftest import galaxy, header, write, write_triple

    folder = env["data"].parent / "fits"
    folder.mkdir()
    hdr = header(r90=6.0)  # 128 px at 0.396 arcsec: 0.997 of the frame, enough for the model's field
    write(folder / "101.fits", galaxy(seed=1), hdr)
    write_triple(folder, "102", galaxy(seed=2, bulge=0.8), hdr)
    at = app("predict")
    at.text_input(key="pr_folder").set_value(str(folder)).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.dataframe[0].value["GalaxyID"].tolist() == ["101", "102"]
    assert "each FITS file's own header" in " ".join(c.value for c in at.caption)
    at.selectbox(key="pr_pick").set_value("102").run()
    assert not at.exception and len(at.get("image")) == 1
    at.text_input(key="pr_folder").set_value("")
    files = sorted(folder.iterdir())
    at.get("file_uploader")[0].set_value([(f.name, f.read_bytes(), "application/fits") for f in files]).run()
    assert not at.exception and not at.warning, [w.value for w in at.warning]
    assert at.dataframe[0].value["GalaxyID"].tolist() == ["101", "102"]


def test_predict_page_and_command_line_agree_on_a_pre_cropped_folder(trained, tmp_path):
    """A folder of pre-cropped cutouts that declares its field in galaxy_core.json: the page reads that file as the
    command line does (it once treated every folder as whole 424 px frames), so both give the same answers."""
    import pandas as pd
    from PIL import Image

    from galaxy_core import cli
    from galaxy_core.demo import render, synthetic

    folder = tmp_path / "cutouts"
    folder.mkdir()
    rng = __import__("numpy").random.default_rng(3)
    for i in range(4):  # the central 0.6038 of a synthetic 424 px frame at 96 px, as in the shared packs
        img = render.render_galaxy(synthetic.sample_params(rng), 424, rng)
        Image.fromarray(img).crop((84, 84, 340, 340)).resize((96, 96), Image.Resampling.LANCZOS).save(
            folder / f"{900 + i}.jpg", quality=95)
    (folder / layout.FOLDER_CONFIG).write_text('{"source_fov": 0.6038}')
    out = tmp_path / "cli.csv"
    assert cli.main(["predict", str(folder), "--model", str(trained["run"]), "--out", str(out)]) == 0
    at = app("predict")
    at.selectbox(key="pr_model").set_value(next(o for o in at.selectbox(key="pr_model").options
                                                 if trained["run"].name in o))
    at.text_input(key="pr_folder").set_value(str(folder)).run()
    assert not at.exception and not at.error
    assert "Field of view: 0.6038 of the 424 px frame (from galaxy_core.json)" in " ".join(
        c.value for c in at.caption)
    page = at.dataframe[0].value
    from_cli = pd.read_csv(out, dtype={"GalaxyID": str})
    assert page["GalaxyID"].tolist() == from_cli["GalaxyID"].tolist() == ["900", "901", "902", "903"]
    assert abs(page.iloc[:, 1:].to_numpy() - from_cli.iloc[:, 1:].to_numpy()).max() < 1e-5  # the CSV's 6 decimals


def test_training_page_distils_from_a_finished_run(trained, env):
    import json

    at = app("training")
    at.selectbox(key="tr_model").set_value("seed-cnn").run()
    at.number_input(key="tr_epochs_seed-cnn_cpu").set_value(1)
    at.number_input(key="tr_ema_seed-cnn_cpu").set_value(0.9)
    assert trained["run"].name in at.multiselect(key="tr_teachers").options
    at.multiselect(key="tr_teachers").select(trained["run"].name)
    at.button(key="tr_start").click().run()
    assert not at.exception and not at.error
    run = Path(at.session_state["tr_run"])
    deadline = time.time() + 150
    while runs.read_status(run).get("state") in ("starting", "running") and time.time() < deadline:
        time.sleep(0.5)
    status = runs.read_status(run)
    assert status["state"] == "finished", (status, (run / "train.log").read_text()[-2000:])
    config = json.loads((run / "config.json").read_text())
    assert config["train"]["teacher"] == [str(trained["run"])] and config["train"]["ema"] == 0.9
    assert config["n_train_by_source"]["unlabelled"] == 8  # the demo's unlabelled galaxies, labelled by the teacher


# ------------------------------------------------------------------------------------------- hostile input

def test_a_folder_outside_the_data_roots_is_refused_unread(env, tmp_path, monkeypatch):
    """``/etc``, a symbolic link out of the roots or ``..`` typed into the sidebar: an error naming the roots and
    how to change them, and nothing there is prepared, listed or read."""
    from galaxy_core.data import prepare

    at = app()
    (tmp_path / "link").symlink_to("/etc")

    def fail(*args, **kwargs):
        raise AssertionError(f"prepared a folder outside the data roots: {args}")

    scandir = os.scandir

    def guarded_scandir(path=".", *args):
        if isinstance(path, (str, os.PathLike)) and Path(path).resolve().is_relative_to("/etc"):
            raise AssertionError(f"listed {path}")
        return scandir(path, *args)

    monkeypatch.setattr(prepare, "resolve_cache", fail)
    monkeypatch.setattr(os, "scandir", guarded_scandir)
    for typed in ("/etc", str(tmp_path / "link"), str(env["data"]) + "/../../../../../../etc"):
        at.sidebar.text_input(key="data_folder").set_value(typed).run()
        assert not at.exception, [e.value for e in at.exception]
        [error] = at.sidebar.error
        assert "outside the folders this dashboard may read" in error.value, error.value
        assert str(env["data"].parent.parent) in error.value and "GALAXY_DATA_ROOTS" in error.value
        assert at.session_state["dataset"] is None
    at.switch_page("pages/dataset.py").run()
    assert not at.exception and "Choose a data folder" in at.info[0].value


def test_predict_page_refuses_bad_uploads_and_folders_outside_the_roots(env, tmp_path, monkeypatch):
    """A decompression bomb, a non-image and a truncated JPEG among good uploads: each named with its reason, the
    good ones predicted. A folder outside the data roots is refused before it is read."""
    from galaxy_core.models import registry

    monkeypatch.setattr(modelchoice, "CHECKPOINTS", tmp_path / "checkpoints")
    registry.save_model(registry.build_model("seed-cnn"), tmp_path / "checkpoints" / "default")
    monkeypatch.setenv("GALAXY_RUNS", str(tmp_path / "no_runs"))
    at = app("predict")
    good = sorted((env["data"] / layout.UNLABELLED_DIR).glob("*.jpg"))[:3]
    truncated = good[2].read_bytes()
    uploads = [(p.name, p.read_bytes(), "image/jpeg") for p in good[:2]]
    uploads += [("bomb.png", png_bomb_with_data(30_000, 30_000), "image/png"), ("fake.jpg", b"<html>", "image/jpeg"),
                ("cut.jpg", truncated[:len(truncated) // 2], "image/jpeg")]
    at.number_input(key="pr_fov").set_value(1.0)
    at.get("file_uploader")[0].set_value(uploads).run()
    assert not at.exception, [e.value for e in at.exception]
    warnings = " ".join(w.value for w in at.warning)
    assert "Refused bomb.png" in warnings and "decompression bomb" in warnings
    assert "Refused fake.jpg" in warnings and "Skipped cut.jpg" in warnings
    assert at.dataframe[0].value["GalaxyID"].tolist() == [p.stem for p in good[:2]]

    at.get("file_uploader")[0].set_value(None)
    at.text_input(key="pr_folder").set_value("/etc").run()
    assert not at.exception and "outside the folders this dashboard may read" in at.error[0].value
    assert not at.dataframe


def test_discover_page_finds_neighbours_learns_a_question_and_ranks_the_unusual(env):
    """With the shipped checkpoint: a galaxy is its own nearest neighbour; a yes and a no train a head that ranks
    the galaxies and offers the next to label; the unusual galaxies are shown; each result downloads."""
    from galaxy_core.demo import demo_set

    at = app("discover")
    assert at.title[0].value == "Discover"
    gid = str(demo_set.FIRST_ID + 7)
    at.text_input(key="dc_query").set_value(gid).run()
    assert not at.exception and f"nearest to GalaxyID {gid}" in " ".join(c.value for c in at.caption)
    assert len(at.get("download_button")) == 1  # the neighbours
    at.segmented_control(key="dc_view").set_value("Unusual galaxies").run()
    assert not at.exception and "least like any other" in " ".join(c.value for c in at.caption)
    assert len(at.get("download_button")) == 1  # the unusual galaxies
    oddest = next(b.key for b in at.button if b.key.startswith("dc_odd_yes_"))
    at.button(key=oddest).click().run()  # a Yes in the unusual gallery answers the question too
    assert "1 yes and 0 no so far." in " ".join(c.value for c in at.caption)
    at.button(key=oddest).click().run()  # and a second click takes it back
    assert "0 yes and 0 no so far." in " ".join(c.value for c in at.caption)
    at.segmented_control(key="dc_view").set_value("Your own question").run()
    offered = [b.key for b in at.button if b.key.startswith("dc_ask_yes_")]
    assert len(offered) == 12
    at.button(key=offered[0]).click().run()
    at.button(key=offered[1].replace("_yes_", "_no_")).click().run()
    assert not at.exception
    assert "1 yes and 1 no so far." in " ".join(c.value for c in at.caption)
    assert any("Most likely yes" in m.value for m in at.markdown)
    # Marks chosen from the galleries: the top galaxies by rank, with the reason, never 'p 1.000'.
    ranks = top_captions(at)
    assert ranks and all(c.startswith("rank ") for c in ranks), ranks
    assert ("By rank, without probabilities: the marks were chosen, not drawn at random among the yes and among the "
            "no") in " ".join(c.value for c in at.caption)
    assert len(at.get("download_button")) == 1  # the ranking
    now = {b.key for b in at.button if b.key.startswith("dc_ask_yes_")}
    assert len(now) == 12 and now.isdisjoint(offered[:2])  # asks about others
    assert "head on the frozen embeddings" in " ".join(c.value for c in at.caption)
    at.button(key="dc_tune").click().run()  # fine-tuning the last stage ranks by the tuned copy ...
    assert not at.exception and "fine-tuned last stage" in " ".join(c.value for c in at.caption)
    at.button(key=sorted(b.key for b in at.button if b.key.startswith("dc_ask_yes_"))[-1]).click().run()
    # ... until a new answer
    assert "head on the frozen embeddings" in " ".join(c.value for c in at.caption)
    now = {b.key for b in at.button if b.key.startswith("dc_ask_yes_")}
    liked = sorted(now)[0][len("dc_ask_yes_"):]
    at.button(key=f"dc_ask_like_{liked}").click().run()  # Like: that galaxy's neighbours, itself first
    assert at.segmented_control(key="dc_view").value == "Galaxies like this one"
    assert f"nearest to GalaxyID {liked}" in " ".join(c.value for c in at.caption)
    assert next(b.key for b in at.button if b.key.startswith("dc_near_like_")) == f"dc_near_like_{liked}"
    at.selectbox(key="dc_dims").set_value(32).run()  # on 32 principal components it still finds itself first
    assert "32 principal components" in " ".join(c.value for c in at.caption)
    assert next(b.key for b in at.button if b.key.startswith("dc_near_like_")) == f"dc_near_like_{liked}"
    at.segmented_control(key="dc_view").set_value("Galaxies like this one").run()
    at.text_input(key="dc_query").set_value("no-such-galaxy").run()
    assert not at.exception and "not in the cache" in at.error[0].value
    image = env["data"] / layout.LABELLED_DIR / f"{gid}.jpg"  # an upload: 128 px, so its field must be said
    at.get("file_uploader")[0].set_value([(image.name, image.read_bytes(), "image/jpeg")]).run()
    error = at.error[0].value
    assert not at.exception and "not a 424 x 424 px Kaggle original" in error and "**Its field of view**" in error
    assert "galaxy_query_" not in error and error.count(image.name) == 1
    at.number_input(key="dc_fov").set_value(1.0).run()
    assert not at.exception and f"nearest to {image.name}" in " ".join(c.value for c in at.caption)


def test_discover_page_shows_the_chosen_answer_with_its_spread(env):
    """Under each neighbour: its GalaxyID, its distance and the model's chosen answer ± its spread, with what ± is
    said once above; no answer chosen, no ±."""
    from galaxy_core.demo import demo_set

    at = app("discover")
    at.text_input(key="dc_query").set_value(str(demo_set.FIRST_ID + 7)).run()
    assert at.selectbox(key="dc_answer").value == "Class6.1"
    near = [c for c in image_captions(at) if c.startswith(str(demo_set.FIRST_ID)[:4])]
    assert len(near) == 24 and all(re.fullmatch(r"\d+ · \d\.\d{3} · \d\.\d\d ± >?\d\.\d+", c) for c in near), near
    assert "the model's Class6.1 ± its spread. ± is the raw spread of the 8 views" in " ".join(
        c.value for c in at.caption)
    at.selectbox(key="dc_answer").select_index(0).run()
    assert not at.exception and not [c for c in image_captions(at) if " ± " in c]


def top_captions(at: AppTest) -> list[str]:
    """The captions of the Discover page's "Most likely yes" gallery, whose Yes buttons are keyed dc_top_yes_*: a
    rank or a p(yes) beside the GalaxyID (the other galleries' may name the same galaxies, with a score or only the
    chosen answer ± its spread after the id)."""
    top = {b.key[len("dc_top_yes_"):] for b in at.button if b.key.startswith("dc_top_yes_")}
    captions = [img.caption for i in at.get("image") for img in i.proto.imgs]
    return [c for c in captions if (c.startswith("rank ") or " · p " in c) and c.split(" · ")[c.startswith("rank ")]
            in top]


def test_discover_page_shows_p_yes_only_where_the_rule_allows(env, monkeypatch):
    """Where :func:`own_questions.probability_shown` says p(yes) is calibrated, the top gallery reads
    'GalaxyID · p 0.xyz' and the caption says at what base rate; the page itself never decides."""
    from galaxy_core.discover import own_questions

    reason = "p(yes) at a base rate of 1.00%, from 40 yes and 500 no drawn at random (L2 1, given)"
    monkeypatch.setattr(own_questions, "probability_shown", lambda head: (True, [reason]))
    at = app("discover")
    at.segmented_control(key="dc_view").set_value("Your own question").run()
    offered = [b.key for b in at.button if b.key.startswith("dc_ask_yes_")]
    at.button(key=offered[0]).click().run()
    at.button(key=offered[1].replace("_yes_", "_no_")).click().run()
    assert not at.exception and f"{reason}." in [c.value for c in at.caption]
    captions = top_captions(at)
    assert len(captions) == 24 and all(" · p " in c and not c.startswith("rank ") for c in captions)


def test_every_page_takes_a_catalogue_table_as_its_data(env, tmp_path, monkeypatch):
    """The sidebar's data may be a catalogue table (here Parquet: the tiny set's ids, images and labels with made-up
    positions and redshifts): the home page counts it and every page draws without an error."""
    import numpy as np

    from galaxy_core import tables, tree
    from galaxy_core.data import catalog

    cat = catalog.read_catalog(env["data"])
    frame = {"objid": cat.ids, "file_loc": [os.path.relpath(p, tmp_path) for p in cat.paths],
             "ra": np.linspace(150, 160, len(cat)), "dec": np.linspace(0, 5, len(cat)),
             "z": np.linspace(0.02, 0.2, len(cat))}
    frame.update({c: cat.labels[:, k] for k, c in enumerate(tree.COLUMNS)})
    import pandas as pd  # the test lays out a table, as a user's script would

    table = tables.write_table(pd.DataFrame(frame), tmp_path / "catalogue.parquet", units={"ra": "deg", "dec": "deg"})
    (tmp_path / "galaxy_core.json").write_text(json.dumps({"source_fov": 1.0, "synthetic": True}))
    monkeypatch.setenv("GALAXY_DATA", str(table))
    at = app()
    assert next(m.value for m in at.metric if m.label == "galaxies") == "56" and not at.sidebar.error
    for page in PAGES:
        at.switch_page(f"pages/{page}.py").run()
        assert not at.exception, (page, [e.value for e in at.exception])
        assert not at.error, (page, [e.value for e in at.error])
    # The Predict page takes the table too, and its answers keep the catalogue's columns.
    at.switch_page("pages/predict.py").run()
    at.text_input(key="pr_folder").set_value(str(table)).run()
    assert not at.exception and not at.error
    shown = at.dataframe[0].value
    assert len(shown) == 56 and {"ra", "dec", "z"} <= set(shown.columns)
    at.selectbox(key="pr_format").set_value("FITS").run()
    assert not at.exception
