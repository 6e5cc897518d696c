"""Per-galaxy uncertainty with known answers: identical ensemble members have no spread; a stub model that looks at
one quadrant sees an image bright in one quadrant differently in each dihedral view (spread sqrt(3)/4) and a uniform
image alike in all (spread 0); ``predict --uncertainty`` adds exactly 37 ``_std`` columns and changes nothing else;
members that expect different images are refused; the scale factor fitted on Gaussian errors of a known size is that
size; the prediction store keeps the views apart from their mean. What the pages show: a zero spread puts a galaxy
above a threshold with probability 0 or 1 and a value on the threshold at 0.5; identical galaxies add up to n times
their probability; the least sure galaxies come in order of spread; the scale is fitted only on galaxies no member
of an ensemble learnt from."""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from galaxy_core import cli, tables, tree
from galaxy_core.atomic import atomic_write_json
from galaxy_core.errors import DataError
from galaxy_core.models import inference, registry
from galaxy_core.predict import doubt, modelchoice, plusminus, prediction, prediction_store, uncertainty

from conftest import small_galaxynet


class QuadrantMean(torch.nn.Module):
    """The mean of the top-left quadrant per channel (output j from channel j % 3): not invariant under the
    dihedral group, each quarter turn bringing another quadrant to the top left."""

    def forward(self, x):
        s = x.shape[-1] // 2
        return x[..., :s, :s].mean(dim=(2, 3)).repeat(1, 13)[:, :37]


def one_bright_quadrant_and_uniform() -> np.ndarray:
    """Two 16 px images: the top-left quadrant white and the rest black; and uniform grey."""
    x = np.zeros((2, 3, 16, 16), np.uint8)
    x[0, :, :8, :8] = 255
    x[1] = 128
    return x


def test_a_galaxy_whose_views_disagree_gets_the_spread_of_its_views():
    """Over the 8 views the bright quadrant is at the top left twice (once turned, once mirrored): the views read
    1, 1 and six 0s, mean 1/4 and standard deviation sqrt(1/4 * 3/4) = sqrt(3)/4; the uniform image reads the same
    in every view, spread 0."""
    x = one_bright_quadrant_and_uniform()
    views = inference.infer(QuadrantMean(), x, crop=1.0, size=16, tta=8, views=True)
    assert views.shape == (2, 8, 37) and sorted(views[0, :, 0]) == [0] * 6 + [1] * 2
    s = uncertainty.from_views(views)
    assert (s.kind, s.members, s.views, s.label) == ("views", 1, 8, "views:8")
    np.testing.assert_allclose(s.value[0], 0.25, atol=1e-7)
    np.testing.assert_allclose(s.spread[0], np.sqrt(3) / 4, atol=1e-7)
    np.testing.assert_allclose(s.value[1], 128 / 255, atol=1e-7)
    assert (s.spread[1] == 0).all() and (s.spread[0] > s.spread[1]).all()


@pytest.mark.parametrize("tta", [2, 3, 8])
def test_the_views_value_is_the_plain_prediction_bit_for_bit(tta):
    model = small_galaxynet()
    x = torch.randint(0, 256, (9, 3, 40, 40), dtype=torch.uint8, generator=torch.Generator().manual_seed(tta)).numpy()
    plain = inference.infer(model, x, 0.9, 32, tta=tta, batch_size=4)
    s = uncertainty.from_views(inference.infer(model, x, 0.9, 32, tta=tta, batch_size=4, views=True))
    assert np.array_equal(s.value, plain) and (s.spread >= 0).all() and s.spread.max() > 0


def test_identical_members_give_exactly_zero_spread():
    p = np.random.default_rng(0).random((5, 37)).astype(np.float32)
    for n in (2, 3, 7):
        s = uncertainty.from_members([p] * n, views=8)
        assert (s.spread == 0).all() and np.array_equal(s.value, p)
        assert (s.kind, s.members, s.label) == ("ensemble", n, f"ensemble:{n}x8")
    s = uncertainty.from_members([np.zeros((1, 37)), np.ones((1, 37))])
    np.testing.assert_array_equal(s.spread, 0.5)  # two members: half their difference (ddof 0)


def test_one_model_and_one_view_have_no_spread():
    with pytest.raises(DataError, match="--tta"):
        uncertainty.label_for(1, 1)
    with pytest.raises(DataError, match="at least 2 views"):
        uncertainty.from_views(np.zeros((3, 1, 37)))
    with pytest.raises(DataError, match="at least 2 members"):
        uncertainty.from_members([np.zeros((3, 37))])
    assert uncertainty.label_for(2, 1) == "ensemble:2x1"


def test_identical_members_of_a_cache_and_of_files_give_zero_spread(tiny_data, cache):
    model = small_galaxynet()
    s = prediction.predict_cache([model, model], cache, cache.indices("val"), tta=2, uncertainty=True)
    assert s.kind == "ensemble" and (s.spread == 0).all()
    assert np.array_equal(s.value, prediction.predict_cache(model, cache, cache.indices("val"), tta=2))
    frame, _ = prediction.predict_paths([model, model], prediction.image_paths(tiny_data)[:3], uncertainty=True)
    assert (frame[[uncertainty.std_column(c) for c in tree.COLUMNS]].to_numpy() == 0).all()


def test_members_that_expect_different_images_are_refused(tiny_data, tmp_path, capsys):
    a = small_galaxynet()
    torch.manual_seed(1)
    b = registry.build_model("galaxynet", width=8, input_size=40).eval()
    assert uncertainty.check_members([a, small_galaxynet()]) == registry.input_geometry(a)
    with pytest.raises(DataError, match="different images"):
        uncertainty.check_members([a, b])
    with pytest.raises(DataError, match="different images"):
        prediction.predict_paths([a, b], prediction.image_paths(tiny_data)[:2])
    folders = [registry.save_model(m, tmp_path / name) for m, name in ((a, "a"), (b, "b"))]
    argv = ["predict", str(tiny_data), "--model", str(folders[0]), "--model", str(folders[1])]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "different images" in err and "32 px" in err and "40 px" in err


def test_uncertainty_adds_exactly_37_std_columns_and_changes_nothing_else(tiny_data, tmp_path, capsys):
    folder = registry.save_model(small_galaxynet(), tmp_path / "m")
    plain, spread = tmp_path / "plain.csv", tmp_path / "spread.csv"
    base = ["predict", str(tiny_data), "--model", str(folder), "--tta", "8", "--workers", "1"]
    assert cli.main(base + ["--out", str(plain)]) == 0
    assert cli.main(base + ["--out", str(spread), "--uncertainty", "--json"]) == 0
    said = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert said["spread"] == "views:8"
    header = plain.read_text().splitlines()[0].split(",")
    assert header == ["GalaxyID", *tree.COLUMNS]  # the Kaggle format, untouched
    with_std = pd.read_csv(spread, dtype={"GalaxyID": str})
    assert list(with_std.columns) == ["GalaxyID", *[c for a in tree.COLUMNS for c in (a, a + "_std")]]
    assert sum(c.endswith("_std") for c in with_std.columns) == 37 == len(with_std.columns) - len(header)
    # Dropping the spreads gives back the plain file byte for byte: same values, same format.
    kept = with_std[header]
    buf = io.StringIO()
    kept.to_csv(buf, index=False, float_format="%.6f", lineterminator="\n")
    assert buf.getvalue() == plain.read_text()
    assert (with_std[[c + "_std" for c in tree.COLUMNS]].to_numpy() >= 0).all()


def test_an_ensemble_folder_and_the_spread_in_a_tables_metadata(tiny_data, tmp_path, capsys):
    """A folder holding several member folders is an ensemble; a FITS or ECSV output records the kind of spread and
    gives the ``_std`` columns the answers' (dimensionless) unit."""
    ensemble = tmp_path / "ensemble"
    for k in range(3):
        torch.manual_seed(k)
        registry.save_model(registry.build_model("galaxynet", width=8, input_size=32).eval(), ensemble / f"seed{k}")
    assert modelchoice.member_folders(ensemble) == [ensemble / f"seed{k}" for k in range(3)]
    assert modelchoice.member_folders(ensemble / "seed0") == [ensemble / "seed0"]
    out = tmp_path / "answers.ecsv"
    assert cli.main(["predict", str(tiny_data), "--model", str(ensemble), "--uncertainty", "--out", str(out),
                     "--workers", "1"]) == 0
    assert "with 3 models" in capsys.readouterr().out
    t = tables.read_table(out)
    assert t.meta["SPREAD"] == "ensemble:3x1" and t.meta["MEMBERS"] == 3  # short keys upper-cased
    assert len(str(t.meta["CKPTHASH"]).split(";")) == 3
    assert t.units["Class8.6_std"] == "" and (t.frame["Class8.6_std"] > 0).any()
    result = prediction.predict_folder(tiny_data, ensemble, workers=1, uncertainty=True)
    gid = result.frame["GalaxyID"].iloc[0]
    assert result.spread == "ensemble:3x1" and result.spreads(gid).shape == (37,)
    plain = prediction.predict_folder(tiny_data, ensemble, workers=1)
    with pytest.raises(ValueError, match="no spreads"):
        plain.spreads(gid)
    np.testing.assert_allclose(plain.answers(gid), result.answers(gid), atol=1e-6)  # the members' mean either way


def test_views_are_stored_apart_from_their_mean(cache, monkeypatch):
    model = small_galaxynet()
    rows = cache.indices("val")
    s = prediction.predict_cache(model, cache, rows, tta=4, uncertainty=True)
    views_key = prediction_store.store_key(model, cache, rows, 4, each_view=True)
    mean_key = prediction_store.store_key(model, cache, rows, 4)
    assert views_key != mean_key
    assert np.load(prediction_store.stored_path(cache, views_key)).shape == (len(rows), 4, 37)
    assert np.array_equal(np.load(prediction_store.stored_path(cache, mean_key)), s.value)

    def no_inference(*a, **k):
        raise AssertionError("predicted again")

    monkeypatch.setattr(inference, "infer", no_inference)
    assert np.array_equal(prediction.predict_cache(model, cache, rows, tta=4), s.value)  # the mean, read back
    again = prediction.predict_cache(model, cache, rows, tta=4, uncertainty=True)
    assert np.array_equal(again.spread, s.spread)
    with pytest.raises(AssertionError, match="predicted again"):
        prediction.predict_cache(model, cache, rows, tta=2, uncertainty=True)


def test_the_scale_fit_recovers_a_known_factor_on_gaussian_errors():
    """Errors drawn as 3 x spread x N(0, 1): the fitted factor is 3, and the scaled spread covers 68.27 % and
    95.45 % of the truths on the held-out half; the raw spread, three times too small, covers far fewer."""
    rng = np.random.default_rng(0)
    n, c = 4000, 3.0
    value = rng.uniform(0.2, 0.8, (n, 37))
    spread = rng.uniform(0.005, 0.05, (n, 37))
    truth = value + c * spread * rng.standard_normal((n, 37))
    mask = rng.random((n, 37)) < 0.7
    assert uncertainty.fit_scale(value, spread, truth, mask) == pytest.approx(c, rel=0.01)
    r = uncertainty.calibration_report(value, spread, truth, mask, seed=1)
    assert r["scale"] == pytest.approx(c, rel=0.02)
    assert r["held_out_scaled"][1] == pytest.approx(0.6827, abs=0.01)
    assert r["held_out_scaled"][2] == pytest.approx(0.9545, abs=0.01)
    assert r["raw"][1] == pytest.approx(0.2611, abs=0.01)  # P(|z| < 1/3) for a standard normal
    assert r["spearman"] > 0.5 and r["n_known"] == int(mask.sum())
    bins = uncertainty.error_by_spread(value, spread, truth, mask)
    np.testing.assert_allclose(bins["rms_error"], c * bins["spread"], rtol=0.05)
    assert bins["n"].sum() == mask.sum()


def test_spearman_and_its_partial_form_known_answers():
    x = np.arange(10.0)
    assert uncertainty.spearman(x, x ** 3) == pytest.approx(1.0)
    assert uncertainty.spearman(x, -x) == pytest.approx(-1.0)
    assert np.isnan(uncertainty.spearman(x, np.ones(10))) and np.isnan(uncertainty.spearman(x[:2], x[:2]))
    rng = np.random.default_rng(0)
    z = rng.standard_normal(5000)
    # x and y both follow z and nothing else: correlated, but not once z is held fixed.
    xs, ys = z + 0.5 * rng.standard_normal(5000), z + 0.5 * rng.standard_normal(5000)
    assert uncertainty.spearman(xs, ys) > 0.6 and abs(uncertainty.partial_spearman(xs, ys, z)) < 0.05


def test_answer_frames_put_each_spread_beside_its_answer():
    s = uncertainty.Spread(np.full((2, 37), 0.5, np.float32), np.full((2, 37), 0.1, np.float32), "views", 1, 8)
    frame = uncertainty.answer_frame(s)
    assert list(frame.columns[:4]) == ["Class1.1", "Class1.1_std", "Class1.2", "Class1.2_std"]
    assert (frame["Class11.6_std"] == np.float32(0.1)).all() and frame.shape == (2, 74)
    assert list(uncertainty.answer_frame(s.value).columns) == list(tree.COLUMNS)
    assert set(tables.answer_units(frame)) == set(frame.columns)
    assert len(s.subset(np.array([1]))) == 1


def test_the_shipped_model_has_a_views_spread(tiny_data):
    """The shipped checkpoint through the Python API: the value with ``uncertainty`` is the plain prediction's."""
    if modelchoice.default_checkpoint() is None:
        pytest.skip("no checkpoint shipped")
    paths = prediction.image_paths(tiny_data)[:4]  # whole frames (source_fov 1.0), as predict_paths takes them
    model = modelchoice.load_model(None)
    with_spread, _ = prediction.predict_paths(model, paths, tta=8, uncertainty=True)
    plain, _ = prediction.predict_paths(model, paths, tta=8)
    assert with_spread[list(tree.COLUMNS)].equals(plain[list(tree.COLUMNS)])
    assert (with_spread[[c + "_std" for c in tree.COLUMNS]].to_numpy() > 0).any()


def test_a_catalogues_columns_and_the_spreads_in_one_table(tiny_data, tmp_path):
    """A catalogue table's own columns go after GalaxyID, then each answer with its spread; a FITS output keeps
    them all, with the kind of spread in its header."""
    images = sorted((tiny_data / "images_training_rev1").glob("*.jpg"))[:3]
    cat = tmp_path / "cat.csv"
    cat.write_text("id,file,z\n" + "".join(f"{p.stem},{p},{0.1 * k:.1f}\n" for k, p in enumerate(images)))
    (tmp_path / "galaxy_core.json").write_text('{"source_fov": 1.0}')
    result = prediction.predict_folder(cat, small_galaxynet(), tta=2, workers=1, uncertainty=True)
    table = result.table()
    assert table.columns[0] == "GalaxyID" and table.columns.get_loc("z") < table.columns.get_loc("Class1.1")
    answers = [c for c in table.columns if c.startswith("Class")]
    assert answers == uncertainty.columns(True) and len(table) == 3
    out = result.write(tmp_path / "answers.fits", tables.provenance(source=str(cat)))
    t = tables.read_table(out)
    assert t.meta["SPREAD"] == "views:2" and list(t.frame.columns) == list(table.columns)


# --------------------------------------------------------------------------------------------------------------------
# What the pages show


def test_a_zero_spread_gives_0_or_1_and_a_value_on_the_threshold_one_half():
    value = np.array([0.2, 0.5, 0.8, 0.5, 0.0, 1.0])
    zero = plusminus.probability_above(value, 0.0, 0.5)
    assert zero.tolist() == [0.0, 0.0, 1.0, 0.0, 0.0, 1.0]  # strictly above, as the all-or-nothing count counts
    # On the threshold: one half whatever the spread, and wherever the threshold lies (clipped, not truncated).
    for t in (0.01, 0.5, 0.97):
        assert plusminus.probability_above(t, [0.001, 0.1, 3.0], t).tolist() == [0.5, 0.5, 0.5]
    # One spread below the threshold: Phi(-1); nothing above 1, everything above a negative threshold.
    assert plusminus.probability_above(0.4, 0.1, 0.5)[()] == pytest.approx(0.158655, abs=1e-6)
    assert plusminus.probability_above(value, 0.1, 1.0).tolist() == [0.0] * 6
    assert plusminus.probability_above(value, 0.1, -0.1).tolist() == [1.0] * 6
    with pytest.raises(ValueError, match="not negative"):
        plusminus.probability_above(0.5, -0.1, 0.5)


def test_a_larger_spread_moves_the_probability_towards_one_half():
    spreads = np.array([0.0, 0.05, 0.1, 0.3, 1.0, 10.0])
    above = plusminus.probability_above(0.7, spreads, 0.5)
    below = plusminus.probability_above(0.3, spreads, 0.5)
    assert above[0] == 1 and below[0] == 0
    assert (np.diff(above) < 0).all() and (np.diff(below) > 0).all()  # strictly towards 1/2, from either side
    assert above[-1] == pytest.approx(0.5, abs=0.01) and np.allclose(above + below, 1)  # symmetric about t


def test_the_expected_count_of_identical_galaxies_and_its_intervals():
    """n galaxies each above with probability P: the expected count is n P; the bootstrap of the mean has nothing
    to resample (one value), and the count among them is Binomial(n, P), whose 95 % range holds n P."""
    n, value, spread, t = 400, 0.55, 0.1, 0.5
    p = plusminus.probability_above(np.full(n, value), spread, t)
    big_p = 1 - 0.5 * math.erfc(0.5 / math.sqrt(2))  # Phi(0.5): half a spread above the threshold
    c = plusminus.probabilistic_count(p)
    assert c["expected_count"] == pytest.approx(n * big_p) and c["fraction"] == pytest.approx(big_p)
    assert c["lo"] == pytest.approx(big_p) and c["hi"] == pytest.approx(big_p)
    assert c["count_sd"] == pytest.approx(math.sqrt(n * big_p * (1 - big_p)))
    sd = c["count_sd"]
    assert c["count_lo"] < c["expected_count"] < c["count_hi"]
    assert c["count_lo"] == pytest.approx(n * big_p - 1.96 * sd, abs=3)
    assert c["count_hi"] == pytest.approx(n * big_p + 1.96 * sd, abs=3)
    # Certain galaxies are counted, not drawn: all 0 or 1 gives a count without any spread.
    certain = plusminus.probabilistic_count(np.r_[np.ones(7), np.zeros(93)])
    assert (certain["expected_count"], certain["count_lo"], certain["count_hi"]) == (7, 7, 7)
    with pytest.raises(ValueError, match="empty"):
        plusminus.probabilistic_count([])


def test_the_intervals_of_a_varied_sample_hold_their_estimates():
    rng = np.random.default_rng(3)
    p = plusminus.probability_above(rng.beta(0.5, 8, 3000), rng.uniform(0.0, 0.2, 3000), 0.3)
    c = plusminus.probabilistic_count(p, seed=1)
    assert c["lo"] < c["fraction"] < c["hi"] and c["count_lo"] < c["expected_count"] < c["count_hi"]
    assert c["n"] == 3000 and c["method"] == "probabilistic"


def test_the_least_sure_come_in_order_of_spread():
    spread = np.array([0.01, 0.3, 0.05, 0.3, 0.2, 0.0])
    assert plusminus.least_sure(spread, 3).tolist() == [1, 3, 4]  # ties in their order
    assert plusminus.least_sure(spread, 10).tolist() == [1, 3, 4, 2, 0, 5]
    assert plusminus.least_sure(spread, 0).tolist() == []


def test_plus_minus_keeps_small_spreads_visible_and_says_what_it_means():
    assert plusminus.plus_minus(0.8349, 0.051) == "0.83 ± 0.05"
    assert plusminus.plus_minus(0.8349, 0.00312) == "0.83 ± 0.0031"
    assert plusminus.plus_minus(0.5, 0.5) == "0.50 ± 0.50" and plusminus.plus_minus(0.5, 1.7) == "0.50 ± >0.5"
    scale = plusminus.Scale(10.5, 372, 373, {1: 0.662, 2: 0.895})
    assert plusminus.plus_minus_texts([0.5, 0.25], [0.01, 0.0008], scale) == ["0.50 ± 0.10", "0.25 ± 0.0084"]
    text = plusminus.plus_minus_meaning(scale, 1, 8)
    assert "c × the spread of the 8 views" in text and "c = 10.5 fitted on 372 held-out galaxies" in text
    assert "66 % lie within ±1 and 90 % within ±2" in text
    raw = plusminus.Scale(None, why="no labelled galaxies here to fit a scale on")
    assert raw.apply([0.01]).tolist() == [0.01]
    text = plusminus.plus_minus_meaning(raw, 3, 8)
    assert text.startswith("± is the raw spread of the 3 members' answers (each averaged over 8 views), "
                           "uncalibrated: no labelled galaxies here")


def test_the_held_out_scale_recovers_three_and_needs_enough_galaxies(monkeypatch):
    """Errors built as 3 x spread x N(0, 1): the factor fitted on one half is about 3, and on the other half the
    scaled spread covers about 68 % and 95 %."""
    rng = np.random.default_rng(0)
    n = 2000
    value, spread = rng.uniform(0.2, 0.8, (n, 37)), rng.uniform(0.005, 0.05, (n, 37))
    truth = value + 3 * spread * rng.standard_normal((n, 37))
    s = uncertainty.held_out_scale(value, spread, truth)
    assert s.factor == pytest.approx(3, rel=0.03) and (s.n_fit, s.n_check) == (1000, 1000)
    assert s.coverage[1] == pytest.approx(0.6827, abs=0.015) and s.coverage[2] == pytest.approx(0.9545, abs=0.01)
    assert s.report["scale"] == s.factor
    few = uncertainty.held_out_scale(value[:49], spread[:49], truth[:49])
    assert few.factor is None and few.report is None and "only 49 galaxies" in few.why and "50 needed" in few.why
    # Volunteers who disagree where the views all agree: no finite factor, and the report is kept.
    flat = uncertainty.held_out_scale(value[:60], np.zeros((60, 37)), truth[:60])
    assert flat.factor is None and flat.report is not None and "spread is 0" in flat.why
    monkeypatch.setattr(uncertainty, "MIN_SCALE_GALAXIES", 10)  # read when called
    assert uncertainty.held_out_scale(value[:49], spread[:49], truth[:49]).factor is not None


def test_an_ensembles_scale_is_fitted_on_galaxies_no_member_learnt_from(cache, tmp_path):
    """Two checkpoints that each list other training galaxies: the calibration galaxies are the labelled ones
    neither learnt from, and the spread is the two members'."""
    labelled = [str(i) for i in cache.ids[cache.indices("labelled")]]
    members = []
    for k, trained in enumerate((labelled[:10], labelled[5:20])):
        torch.manual_seed(k)
        net = registry.build_model("galaxynet", width=8, input_size=32).eval()
        folder = registry.save_model(net, tmp_path / f"m{k}")
        atomic_write_json(folder / modelchoice.GALAXIES_FILE, {"train": trained, "val": []})
        members.append(modelchoice.load_model(folder))
    unseen = doubt.unseen_by_all(members, cache)
    assert sorted(cache.ids[unseen.rows]) == sorted(labelled[20:]) and unseen.known
    assert unseen.n_trained == 20
    cal = doubt.calibrate(members, cache, tta=2)
    assert np.array_equal(cal.rows, unseen.rows) and cal.spread.kind == "ensemble" and cal.spread.members == 2
    assert cal.scale.factor is None and f"only {len(unseen.rows)} labelled galaxies here" in cal.meaning()
    # A model built in memory names no folder: every labelled galaxy, and not known to be unseen.
    alone = doubt.unseen_by_all([small_galaxynet()], cache)
    assert len(alone.rows) == len(labelled) and not alone.known
    shown = doubt.spread_of(members, cache, unseen.rows[:3], tta=2, store=False)
    assert np.array_equal(shown.value, cal.spread.value[:3])
    assert len(doubt.spread_of(members, cache, [], tta=2)) == 0
    # Kept galaxy by galaxy: a second gallery predicts only what the first did not show, in its own order.
    kept = doubt.GalaxySpreads()
    first = unseen.rows[:3]
    kept.add(first, shown)
    assert kept.missing(unseen.rows[1:5]).tolist() == unseen.rows[3:5].tolist()
    again = kept.of(first[::-1])
    assert np.array_equal(again.value, shown.value[::-1]) and (again.kind, again.members) == ("ensemble", 2)


def test_the_calibration_of_one_model_scales_its_views(cache, tmp_path, monkeypatch):
    monkeypatch.setattr(uncertainty, "MIN_SCALE_GALAXIES", 4)
    model = modelchoice.load_model(registry.save_model(small_galaxynet(), tmp_path / "one"))
    cal = doubt.calibrate([model], cache, tta=4)
    assert cal.spread.kind == "views" and cal.spread.views == 4 and len(cal.rows) == len(cache.indices("labelled"))
    assert cal.scale.factor > 0 and cal.scale.n_fit + cal.scale.n_check == len(cal.rows)
    assert "c × the spread of the 4 views" in cal.meaning() and "does not list the galaxies" in cal.meaning()
    bins = cal.error_bins("Class1.1", bins=4)
    assert len(bins) == 4 and bins["n"].sum() == cal.mask[:, 0].sum()
    assert set(cal.ranking()) == {"spread", "value", "partial"} and np.isfinite(cal.ranking()["value"])
    count = doubt.count_above(cal.spread, cal.scale, "Class1.1", 0.5)
    assert 0 <= count["expected_count"] <= len(cal.rows)
