"""Tests for galaxy_core.morphology: the non-parametric morphology (Gini, M20, asymmetry), the segmentation and the
merger criteria, on synthetic images with analytic values; one check on real galaxies from ../shared."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from galaxy_core import catalog, images, morphology
from galaxy_core.mergers import MERGER_COLUMN
from galaxy_core.morphology import (
    asymmetry, asymmetry_merger, connected_region, gini, gini_m20_merger, m20, morphology_table, segment,
)


def gaussian(s: int, cy: float, cx: float, sigma: float, amp: float = 1.0) -> np.ndarray:
    y, x = np.mgrid[:s, :s]
    return amp * np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * sigma ** 2))


# --------------------------------------------------------------------------------------------------------------------
# Non-parametric morphology


@pytest.mark.parametrize("n", [2, 10, 1000])
def test_gini_known_values(n):
    assert gini(np.full(n, 7.0)) == pytest.approx(0.0, abs=1e-12)
    one = np.zeros(n)
    one[n // 2] = 5.0
    assert gini(one) == pytest.approx(1.0, rel=1e-12)  # Glasser's n - 1: exactly 1 for any n
    assert gini(np.arange(1, n + 1)) == pytest.approx(1 / 3, rel=1e-12)


def test_gini_small_cases_and_invariance():
    assert gini([0, 0, 1, 1]) == pytest.approx(2 / 3)
    v = np.random.default_rng(0).exponential(size=500)
    assert gini(v * 123.4) == pytest.approx(gini(v), rel=1e-12)
    assert gini(-v) == pytest.approx(gini(v), rel=1e-12)  # absolute values, as Lotz et al. 2004
    with pytest.raises(ValueError):
        gini([3.0])
    with pytest.raises(ValueError):
        gini([1.0, np.nan])


def test_m20_of_a_gaussian_and_two_blobs():
    # A 2-D Gaussian: log10(1 - 0.8 (1 + ln 1.25)), independent of its width.
    single = m20(gaussian(97, 48, 48, 6.0))
    assert single == pytest.approx(math.log10(1 - 0.8 * (1 + math.log(1.25))), abs=0.01)
    assert m20(gaussian(97, 48, 48, 4.0)) == pytest.approx(single, abs=0.02)
    # Two equal Gaussians (sigma s) at +-d from the centroid: the brightest 20 % is the brightest 20 % of each, so
    # M20 = log10((2 s^2 g + 0.2 d^2) / (2 s^2 + d^2)) with g = 1 - 0.8 (1 + ln 1.25); log10(0.2) when d >> s.
    s, d = 6.0, 20.0
    double = m20(gaussian(97, 48, 28, s) + gaussian(97, 48, 68, s))
    g = 1 - 0.8 * (1 + math.log(1.25))
    assert double == pytest.approx(math.log10((2 * s * s * g + 0.2 * d * d) / (2 * s * s + d * d)), abs=0.01)
    assert double > single + 0.5
    # The mask limits the pixels: masking out one blob gives a single Gaussian again.
    img = gaussian(97, 48, 28, s) + gaussian(97, 48, 68, s)
    mask = np.zeros_like(img, bool)
    mask[:, :48] = True
    assert m20(img, mask) == pytest.approx(single, abs=0.02)


def test_asymmetry_known_values():
    centred = gaussian(65, 32, 32, 5.0)
    assert asymmetry(centred) == pytest.approx(0.0, abs=1e-12)
    assert asymmetry(centred, center="image") == pytest.approx(0.0, abs=1e-12)
    # A blob off centre with nothing at its rotated position: sum |I - I_180| = 2 sum |I| about the image centre.
    off = gaussian(65, 32, 12, 3.0)
    assert asymmetry(off, center="image") == pytest.approx(2.0, abs=1e-6)
    assert asymmetry(off) == pytest.approx(0.0, abs=1e-4)  # about its centroid it is symmetric (up to the cut tail)
    # A galaxy with a companion on one side is asymmetric whatever the centre.
    pair = centred + gaussian(65, 32, 46, 3.0, amp=0.7)
    a = asymmetry(pair)
    assert a > morphology.ASYMMETRY_MERGER and asymmetry_merger(a)
    # The sky correction subtracts background x pixels / flux.
    assert asymmetry(pair, background=0.01) == pytest.approx(a - 0.01 * pair.size / pair.sum())
    with pytest.raises(ValueError, match="center"):
        asymmetry(centred, center="middle")


def test_merger_lines():
    # Lotz et al. 2008: G > -0.14 M20 + 0.33; at M20 = -1 the line is at G = 0.47.
    assert gini_m20_merger(0.5, -1.0) and not gini_m20_merger(0.45, -1.0)
    assert gini_m20_merger(np.array([0.5, 0.45, np.nan]), np.array([-1.0, -1.0, -1.0])).tolist() == [True, False,
                                                                                                     False]
    assert gini_m20_merger(0.62, -2.0) and not gini_m20_merger(0.60, -2.0)
    assert asymmetry_merger(0.36) and not asymmetry_merger(0.35)


def test_connected_region():
    mask = np.zeros((3, 12, 12), bool)
    mask[:, 1:4, 1:4] = True  # blob A
    mask[:, 8:11, 8:11] = True  # blob B
    mask[1, 4, 4] = True  # in image 1 a diagonal step joins A to ...
    mask[1, 5:8, 5:8] = True  # ... a bridge to B (8-connected)
    seed = np.zeros_like(mask)
    seed[:, 2, 2] = True
    seed[2] = False  # no seed: empty region
    r = connected_region(mask, seed)
    assert r[0].sum() == 9 and not r[0, 9, 9]
    assert r[1].sum() == mask[1].sum()
    assert not r[2].any()
    np.testing.assert_array_equal(connected_region(mask[0], seed[0]), r[0])


def synthetic_images(noise: float = 0.0, seed: int = 0) -> np.ndarray:
    """(4, 3, 64, 64) uint8: a centred Gaussian, the same with a companion, a blank sky, a faint centred disc."""
    s = 64
    c = (s - 1) / 2
    single = gaussian(s, c, c, 4.0, 200.0)
    pair = gaussian(s, c, c, 4.0, 200.0) + gaussian(s, c, c + 12, 4.0, 100.0)
    disc = gaussian(s, c, c, 8.0, 60.0)
    out = np.stack([single, pair, np.zeros((s, s)), disc]) + 10.0
    out += noise * np.random.default_rng(seed).standard_normal(out.shape)
    return np.repeat(np.clip(np.rint(out), 0, 255).astype(np.uint8)[:, None], 3, axis=1)


def test_morphology_table_flags_the_double(tmp_path):
    imgs = synthetic_images(noise=2.0)
    mm = np.memmap(tmp_path / "images.u8", dtype=np.uint8, mode="w+", shape=imgs.shape)
    mm[:] = imgs
    t = morphology_table(mm, np.array(["single", "double", "blank", "disc"]))
    assert list(t.columns)[:6] == ["GalaxyID", "gini", "m20", "asymmetry", "gm20_merger", "asym_merger"]
    single, double, blank = t.iloc[0], t.iloc[1], t.iloc[2]
    assert double["m20"] > single["m20"] + 0.3
    assert double["asymmetry"] > morphology.ASYMMETRY_MERGER > single["asymmetry"]
    assert double["asym_merger"] and not single["asym_merger"]
    # Blank sky has nothing to segment: NaN measurements, no flags.
    assert blank["n_pixels"] == 0 and np.isnan(blank[["gini", "m20", "asymmetry"]].astype(float)).all()
    assert not blank["gm20_merger"] and not blank["asym_merger"]
    rows = morphology_table(mm, np.array(["single", "double", "blank", "disc"]), rows=[3, 1])
    assert rows["GalaxyID"].tolist() == ["disc", "double"]
    assert rows.iloc[1]["asymmetry"] == t.iloc[1]["asymmetry"]


def test_morphology_table_matches_the_scalar_functions():
    imgs = synthetic_images(noise=0.0)
    t = morphology_table(imgs, np.arange(4), chunk=3)  # chunks of 3 and 1
    for i in (0, 1, 3):
        x, mask = segment(imgs[i])
        assert t.iloc[i]["n_pixels"] == mask.sum() > 20
        assert t.iloc[i]["gini"] == pytest.approx(gini(x[mask]), rel=1e-9)
        assert t.iloc[i]["m20"] == pytest.approx(m20(x, mask), rel=1e-9)
        # Noise-free sky: the border's sky asymmetry is 0, so no correction either way.
        assert t.iloc[i]["asymmetry"] == pytest.approx(asymmetry(x, mask), rel=1e-9, abs=1e-12)


def test_segment_keeps_the_central_source():
    img = gaussian(64, 31.5, 31.5, 3.0, 100.0) + gaussian(64, 8, 52, 2.0, 100.0) + 5.0
    x, mask = segment(img)
    assert mask[31, 31] and not mask[8, 52]
    assert x[0, 0] == pytest.approx(0.0, abs=1e-9)  # sky subtracted
    with pytest.raises(ValueError):
        segment(np.zeros((4, 5)))


# --------------------------------------------------------------------------------------------------------------------
# Real galaxies


@pytest.mark.shared
def test_volunteer_mergers_are_more_asymmetric(shared_data):
    """100 galaxies that volunteers call mergers (Class8.6 > 0.5) against 100 they do not (Class8.6 < 0.05), the
    first of each in the label file of the 96 px pack: mergers are more asymmetric and have higher M20."""
    root = shared_data / "gz2-kaggle-96"
    labels = pd.read_csv(root / catalog.LABEL_CSV, dtype={"GalaxyID": str})
    p = labels[MERGER_COLUMN]
    pick = pd.concat([labels[p > 0.5].head(100), labels[p < 0.05].head(100)])
    imgs = np.stack([images.load_image(root / catalog.LABELLED_DIR / f"{i}.jpg", crop=1.0, size=80)
                     for i in pick["GalaxyID"]])
    t = morphology_table(imgs, pick["GalaxyID"].to_numpy())
    is_merger = pick[MERGER_COLUMN].to_numpy() > 0.5
    assert t["n_pixels"].min() > 0
    assert t["asymmetry"][is_merger].mean() > t["asymmetry"][~is_merger].mean() + 0.1
    assert t["m20"][is_merger].mean() > t["m20"][~is_merger].mean()
    assert t["asym_merger"][is_merger].mean() > t["asym_merger"][~is_merger].mean()
