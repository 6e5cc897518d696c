"""Tests of galaxy_core.show.figures: the plotly figures of the labels, of predictions and of the merger fraction, and
the images of the Dataset page, built from small arrays and the tiny synthetic cache."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from galaxy_core import tree
from galaxy_core.mergers.calibration import RELIABILITY_EDGES, calibration_table, reliability_curve
from galaxy_core.show import explore, figures
from galaxy_core.show.figures import calibration_figure, histogram_figure

from conftest import arrays


def with_flagged(n: int, k: int, seed: int = 0) -> np.ndarray:
    """n probabilities of which exactly k are above 0.5, shuffled (as in test_merger_fraction.py)."""
    p = np.r_[np.full(k, 0.9), np.full(n - k, 0.1)]
    return np.random.default_rng(seed).permutation(p)


def shrunk(n: int = 2000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Volunteer fractions spread over [0, 1] and a model that predicts half of each (as in
    test_merger_calibration.py)."""
    p_true = np.random.default_rng(seed).uniform(0, 1, n)
    return 0.5 * p_true, p_true


# --------------------------------------------------------------------------------------------- labels and answers

def test_tree_figure():
    labels, _, _ = arrays(1, seed=5)
    fig = figures.tree_figure(labels[0], labels[0] * 0.5, names=("volunteers", "model"))
    assert isinstance(fig, go.Figure) and len(fig.data[0].x) == 37 and len(fig.data[1].x) == 37
    assert len(fig.layout.annotations) == 37 + 11  # every answer and every question is labelled
    assert fig.data[1].x[0] == pytest.approx(labels[0, 0] * 0.5)


def test_label_figures():
    labels, mask, _ = arrays(30)
    stats, hist = explore.answer_stats(labels, mask), explore.histograms(labels, mask)
    fig = figures.histogram_grid_figure(hist, stats)
    assert len(fig.data) == 37 and "skew" in fig.layout.annotations[0].text
    one = figures.histogram_grid_figure(hist, stats, columns=tree.QUESTIONS[0].columns)
    assert [d.name for d in one.data] == list(tree.QUESTIONS[0].columns)
    assert list(one.data[1].y) == list(hist.loc[hist["column"] == "Class1.2", "count"])
    overview = figures.histogram_overview_figure(hist, stats)
    z = np.asarray(overview.data[0].z, dtype=float)
    assert z.shape == (37, 20) and len(overview.data) == 1
    # The colour is log10 of each bin's share of the answer's known values; empty bins are blank.
    share = hist.loc[hist["column"] == "Class1.1", "fraction"].to_numpy()
    assert np.allclose(z[0][share > 0], np.log10(share[share > 0])) and np.isnan(z[0][share == 0]).all()
    heat = figures.heatmap_figure(explore.correlation(labels, mask))
    assert np.asarray(heat.data[0].z).shape == (37, 37)
    y_true = labels.astype(float)
    y_true[0] = np.nan
    sc = figures.scatter_figure(y_true, labels, list(tree.COLUMNS), max_points=10)
    assert len(sc.data) == 74 and all(len(d.x) <= 10 for d in sc.data[::2])
    one = figures.scatter_figure(y_true, labels, ["Class1.1"])
    assert len(one.data[0].x) == 29  # the galaxy with unknown truth is left out


def test_true_vs_predicted_leaves_out_unknown_answers_and_caps_the_points():
    labels, mask, _ = arrays(30)
    known = np.ones_like(mask)
    known[0, 0] = False
    one = figures.true_vs_predicted_figure(labels, labels, known, "Class1.1")
    assert len(one.data) == 2 and len(one.data[0].x) == 29  # a panel and its y = x line
    assert one.layout.xaxis.title.text == "volunteer vote fraction"
    every = figures.true_vs_predicted_figure(labels, labels, known)
    assert len(every.data) == 2 * 37 and len(every.data[2].x) == 30
    assert figures.TRUE_VS_PREDICTED_POINTS["all"] < figures.TRUE_VS_PREDICTED_POINTS["one"]
    assert not np.isnan(labels).any()  # the caller's array is not touched


def test_split_figures_compare_training_and_validation():
    labels, mask, split = arrays(60)
    comp = explore.split_comparison(labels, mask, split)
    means = figures.split_means_figure(comp)
    assert [t.name for t in means.data] == ["training", "validation"] and means.layout.barmode == "group"
    assert list(means.data[1].y) == list(comp["mean_val"]) and list(means.data[0].x) == list(tree.COLUMNS)
    hist = explore.split_histograms(labels, mask, split, "Class1.1")
    fig = figures.split_histogram_figure(hist, "Class1.1")
    assert [t.name for t in fig.data] == ["train", "val"] and fig.layout.barmode == "overlay"
    assert len(fig.data[0].x) == 20 and fig.layout.xaxis.title.text == explore.label("Class1.1")
    assert fig.layout.yaxis.title.text == "fraction of the split"


# ------------------------------------------------------------------------------------------------------ mergers

def test_merger_figures():
    p = with_flagged(200, 7)
    fig = histogram_figure(p, 0.5)
    assert "7 of 200" in fig.layout.title.text
    p_pred, p_true = shrunk(500)
    assert [t.name for t in calibration_figure(calibration_table(p_pred, p_true)).data] == ["volunteers", "model"]
    assert len(calibration_figure(reliability_curve(p_pred, p_true)).data) == 2
    with pytest.raises(ValueError):
        calibration_figure(pd.DataFrame({"x": [1]}))


def test_merger_calibration_figures_share_the_bins_and_mark_the_threshold():
    """The command line's and the page's pair: the fractions above each threshold (with the page's threshold
    marked) and the reliability diagram on RELIABILITY_EDGES."""
    p_pred, p_true = shrunk(500)
    fractions, reliability = figures.merger_calibration_figures(p_pred, p_true, threshold=0.3)
    assert [t.name for t in fractions.data] == ["volunteers", "model"]
    assert [s.x0 for s in fractions.layout.shapes] == [0.3]
    table = reliability_curve(p_pred, p_true, RELIABILITY_EDGES)
    assert list(reliability.data[1].x) == pytest.approx(table.loc[table["n"] > 0, "mean_predicted"].tolist())
    assert not figures.merger_calibration_figures(p_pred, p_true)[0].layout.shapes


def test_fraction_by_figure_marks_the_bins_too_small_and_draws_the_expectation():
    from galaxy_core.mergers import evolution

    z = np.r_[np.full(200, 0.05), np.full(3, 0.15)]
    p = np.r_[with_flagged(200, 10), 0.1, 0.1, 0.1]
    result = evolution.fraction_by(z, p, [0, 0.1, 0.2, 0.3], calibration=0.4, n_boot=50)
    curve = evolution.expected_curve(0, 0.3, "major-mass", 0.3)
    fig = figures.fraction_by_figure(result, "z", curve, "Lotz")
    measured, small, calibrated, line = fig.data
    assert [t.name for t in fig.data] == ["Class8.6 > 0.5", "too small to measure", "calibrated, > 0.400", "Lotz"]
    assert list(measured.x) == [0.05] and list(measured.y) == [0.05] and measured.marker.symbol == "circle"
    assert measured.error_y.array[0] == pytest.approx(result.bins[0].wilson_hi - 0.05)
    assert small.marker.symbol == "circle-open" and list(small.y) == [0.0, 0.0]  # 3 galaxies, and an empty bin at 0
    assert "too small: fewer than 50 galaxies (3)" in small.hovertext[0] and "no galaxies" in small.hovertext[1]
    assert list(line.y) == pytest.approx(curve["expected"].tolist()) and fig.layout.xaxis.title.text == "z"
    assert len(figures.fraction_by_figure(evolution.fraction_by(z[:200], p[:200], 1), "mass").data) == 1


def test_gini_m20_figure():
    t = pd.DataFrame({"GalaxyID": ["a", "b", "c", "d"], "gini": [0.6, 0.5, 0.4, np.nan],
                      "m20": [-1.0, -2.0, -1.5, np.nan], "asymmetry": [0.5, 0.1, 0.2, np.nan], "flag": [0, 1, 0, 2]})
    fig = figures.gini_m20_figure(t, marked=[True, False, False, True], marked_name="model")
    names = [tr.name for tr in fig.data if tr.type == "scattergl"]
    assert names == ["others (2)", "model (1)"]  # the flag-2 galaxy is left out
    line = next(tr for tr in fig.data if tr.name == "merger line")
    assert list(line.y) == pytest.approx([-0.14 * -3 + 0.33, 0.33])
    assert fig.layout.xaxis.autorange == "reversed"
    assert len([tr for tr in figures.gini_m20_figure(t).data if tr.type == "scattergl"]) == 1


# ----------------------------------------------------------------------------------------------------- training

def test_curves_figure_draws_each_series_over_the_mean_baseline():
    rows = [{"epoch": 1, "train_rmse": 0.2, "val_rmse": 0.19}, {"epoch": 2, "train_rmse": 0.18, "val_rmse": 0.17}]
    fig = figures.curves_figure([("training", rows, "train_rmse"), ("validation", rows, "val_rmse")], 0.16, 320)
    assert [t.name for t in fig.data] == ["training", "validation"] and list(fig.data[1].y) == [0.19, 0.17]
    [line] = fig.layout.shapes
    assert line.y0 == 0.16 and "mean baseline 0.1600" in fig.layout.annotations[0].text
    assert not figures.curves_figure([], float("nan"), 320).layout.shapes


# ------------------------------------------------------------------------------------------------------- images

def test_original_with_crop_and_enlarge(tiny_cache):
    picture = explore.original_image(tiny_cache, explore.original_path(tiny_cache, str(tiny_cache.ids[0])))[0]
    img = figures.original_with_crop(picture, 0.5)
    assert img.shape == (128, 128, 3) and img.dtype == np.uint8
    assert tuple(img[32, 64]) == (255, 210, 0)  # the top edge of the central half is outlined
    assert np.array_equal(figures.original_with_crop(picture, 1.0), picture)  # the whole image: no box
    big = figures.enlarge(tiny_cache.image(0), 300)
    assert big.shape == (300, 300, 3)


def test_a_thumbnail_travels_inside_the_page_as_a_jpeg_data_url(tiny_cache):
    import base64
    import io

    from PIL import Image

    image = tiny_cache.image(0)
    url = figures.image_data_url(image)
    assert url.startswith("data:image/jpeg;base64,")
    back = np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))))
    assert back.shape == image.shape and np.abs(back.astype(int) - image).mean() < 3  # JPEG at quality 92
    assert len(url) < 6000  # a few KB a galaxy thumbnail


def test_per_answer_figure_has_a_bar_per_answer_coloured_by_question():
    pa = pd.DataFrame({"column": tree.COLUMNS, "name": [tree.NAMES[c] for c in tree.COLUMNS],
                       "question": [tree.question_of(c).key for c in tree.COLUMNS], "rmse": np.linspace(0, 0.2, 37)})
    bar = figures.per_answer_figure(pa).data[0]
    assert list(bar.x) == list(tree.COLUMNS) and np.allclose(bar.y, pa["rmse"])
    assert len(set(bar.marker.color)) == len(tree.QUESTIONS)
