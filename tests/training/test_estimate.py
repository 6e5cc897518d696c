"""Tests for galaxy_core.training.estimate: the duration of a training from a probe of its step or a speed measured
before, and the sentences the Training page says it in."""

from __future__ import annotations

import dataclasses
import json

import pytest

from galaxy_core.data import cache
from galaxy_core.models import config, runs
from galaxy_core.training import estimate

from conftest import train_config as _cfg


def test_estimated_duration_comes_from_timed_steps(tiny_cache, tmp_path):
    cfg = _cfg(tiny_cache, tmp_path, epochs=3, tta=8)
    calls = []  # the page's progress bar: the model built, then each of the warm-up and 2 timed steps
    est = estimate.estimate_duration(cfg, steps=2, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]
    n_train, n_val = (len(r) for r in cache.split_rows(tiny_cache, cfg))
    assert (est["n_train"], est["n_val"], est["device"]) == (n_train, n_val, "cpu")
    assert est["images_per_s"] > 0
    # Seconds per image from the probe, times the images an epoch and the final 8-view validation see.
    per_image = 1 / est["images_per_s"]
    assert est["epoch_seconds"] == pytest.approx(per_image * (n_train + n_val / 3))
    assert est["seconds"] == pytest.approx(3 * est["epoch_seconds"] + 7 * n_val / 3 * per_image)
    assert not list(tmp_path.iterdir())  # a probe writes nothing
    assert estimate.estimate_duration(_cfg(tiny_cache, tmp_path, model="mean"))["seconds"] == 0.0
    # A speed measured before replaces the probe, in the same formula.
    known = estimate.estimate_duration(cfg, images_per_s=250.0)
    assert known["images_per_s"] == 250.0
    assert known["seconds"] == pytest.approx(3 * (n_train + n_val / 3) / 250 + 7 * n_val / 3 / 250)


def test_the_estimate_counts_a_smaller_progressive_epoch_by_its_pixels(tiny_cache, tmp_path):
    # A 16 px epoch is a quarter of a 32 px one: 2 of each cost 2.5 full epochs.
    cfg = _cfg(tiny_cache, tmp_path, epochs=4, model="galaxynet", model_args={"width": 8, "input_size": 32},
               sizes=[16, 32])
    est = estimate.estimate_duration(cfg, steps=1)
    assert est["seconds"] == pytest.approx(2.5 * est["epoch_seconds"] + est["final_seconds"])


def test_a_speed_measured_here_by_a_run_with_the_same_settings_replaces_the_probe(tiny_cache, tmp_path):
    cfg = _cfg(tiny_cache, tmp_path / "new", epochs=3)
    run = tmp_path / "runs" / "earlier"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"train": dataclasses.asdict(cfg),
                                                 "machine": runs.machine_description("cpu")}))
    (run / "summary.json").write_text(json.dumps({"images_per_s": 123.0}))
    known = [{"path": run, "name": "earlier", "kind": "run"}]
    est = estimate.estimate_here(cfg, known, tmp_path / "runs")
    assert est["images_per_s"] == 123.0 and est["measured_by"] == "run `earlier`" and not est["busy"]
    probed = estimate.estimate_here(dataclasses.replace(cfg, batch_size=8), known, tmp_path / "runs")
    assert probed["measured_by"] is None and probed["images_per_s"] != 123.0
    # The page's sentence: the speed's source, and the estimate of one epoch scaled to the chosen epochs.
    text = estimate.duration_caption(est, 3, teachers=True, processes=2)
    assert text.startswith("Estimated duration on this machine (cpu): **about")
    assert "for 3 epochs of" in text and "teachers label" in text and "at 123 images/s, the speed at which run " \
        "`earlier` trained" in text and text.endswith("(for one process).")


def test_probes_are_keyed_by_the_settings_that_change_the_speed():
    a, b = config.config_for("galaxynet", epochs=5, name="a"), config.config_for("galaxynet", epochs=50, name="b")
    assert estimate.probe_key(a) == estimate.probe_key(b)
    assert estimate.probe_key(a) != estimate.probe_key(dataclasses.replace(a, batch_size=8))
    assert config.TrainConfig.from_dict(json.loads(estimate.probe_key(a))).epochs == 1


def test_duration_text():
    assert estimate.duration_text(0.2) == "about 1 s"
    assert estimate.duration_text(2460) == "about 41 min"
    assert estimate.duration_text(3 * 3600 + 600) == "about 3 h 10 min"


def test_the_recipe_caption_names_the_shipped_checkpoint_trained_with_it():
    recipe = dataclasses.asdict(config.config_for("galaxynet", device="cpu"))
    shipped = {"name": "default", "train_config": {**recipe, "data": None},
               "summary": {"wall_seconds": 4680, "device": "cpu"}, "data": "gz2-kaggle-96, its seeded 90/10 split"}
    text = estimate.recipe_caption("galaxynet", "cpu", shipped)
    assert text == ("galaxynet: the CPU recipe (width 32, input_size 72). It is the recipe of the shipped checkpoint "
                    "`default`, trained in about 78 min (cpu) on gz2-kaggle-96, its seeded 90/10 split.")
    other = {**shipped, "train_config": {**shipped["train_config"], "lr": 1e-2}}
    assert estimate.recipe_caption("galaxynet", "cpu", other) == "galaxynet: the CPU recipe (width 32, input_size 72)."
    assert estimate.recipe_caption("seed-cnn", "cpu", shipped) is None
