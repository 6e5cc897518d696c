"""Tests for galaxy_core.mergers.morphology: the inversion of the asinh composite, the sky, the segmentation,
statmorph's measurements of synthetic galaxies with known answers, the merger criteria and the stored table; one check
on real galaxies from ../shared."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from astropy.visualization import make_lupton_rgb

from galaxy_core.data import images, layout
from galaxy_core.mergers import morphology
from galaxy_core.mergers.fraction import MERGER_COLUMN
from galaxy_core.mergers.morphology import asymmetry_merger, gini_m20_merger, linear_flux, measure, morphology_table

S = 64
STRETCH = 0.5


def gaussian(cy: float, cx: float, sigma: float, amp: float = 1.0) -> np.ndarray:
    y, x = np.mgrid[:S, :S]
    return amp * np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * sigma ** 2))


def composite(flux: np.ndarray, sky: float = 0.01, noise: float = 0.005, seed: int = 0) -> np.ndarray:
    """(3, S, S) uint8: a grey linear image on a sky with noise through make_lupton_rgb (Q = 8), as SDSS made its
    JPEGs (the sky comes out at about 5 of 255 with a noise of about 2.5, as in the shared pack)."""
    x = flux + sky + noise * np.random.default_rng(seed).standard_normal(flux.shape)
    return make_lupton_rgb(x, x, x, stretch=STRETCH, Q=morphology.LUPTON_Q).transpose(2, 0, 1)


C = (S - 1) / 2
SINGLE = gaussian(C, C, 3.0)
PAIR = gaussian(C, C, 3.0) + gaussian(C, C + 16, 3.0, 0.5)


# --------------------------------------------------------------------------------------------------------------------
# From the composite back to linear flux


def test_linear_flux_inverts_the_lupton_composite():
    rng = np.random.default_rng(1)
    i, r, g = (rng.uniform(0, 0.3, (16, 16)) for _ in range(3))
    rgb = make_lupton_rgb(i, r, g, stretch=STRETCH, Q=8, output_dtype=np.float64).transpose(2, 0, 1)
    got = linear_flux(255 * rgb, q=8) * STRETCH / 8  # the stretch only scales the result
    np.testing.assert_allclose(got, (i + r + g) / 3, rtol=1e-9)
    # Scale-free: doubling every flux (and the stretch with it) leaves the composite, so the inversion, unchanged.
    assert np.array_equal(make_lupton_rgb(2 * i, 2 * r, 2 * g, stretch=2 * STRETCH, Q=8),
                          make_lupton_rgb(i, r, g, stretch=STRETCH, Q=8))
    # Q = 0 is a linear display: the mean of the bands, 0 ... 1.
    u8 = np.full((3, 4, 4), 51, np.uint8)
    np.testing.assert_allclose(linear_flux(u8, q=0), 0.2)
    assert linear_flux(np.stack([u8, u8])).shape == (2, 4, 4)
    with pytest.raises(ValueError, match="RGB"):
        linear_flux(np.zeros((4, 4)))
    with pytest.raises(ValueError, match="q"):
        linear_flux(u8, q=-1)


def test_sky_level_and_noise_from_the_border():
    rng = np.random.default_rng(2)
    img = 5.0 + 0.5 * rng.standard_normal((80, 80))
    img[20:60, 20:60] += 50.0  # the galaxy stays inside the 10 px frame
    level, sigma = morphology.sky(img)
    assert level == pytest.approx(5.0, abs=0.05)
    assert sigma == pytest.approx(0.5, rel=0.1)
    assert morphology.sky(np.zeros((16, 16)))[1] > 0  # a positive weight map even for an empty image


def test_segment_keeps_the_central_source_and_masks_the_others():
    img = gaussian(C, C, 3.0) + gaussian(8, 52, 2.0) + 0.01 * np.random.default_rng(3).standard_normal((S, S))
    segmap = morphology.segment(img, sigma=0.01)
    assert segmap[31, 31] and segmap[8, 52] and segmap[31, 31] != segmap[8, 52]
    assert morphology._central_label(segmap) == segmap[31, 31]
    assert not morphology.segment(np.zeros((S, S)), sigma=1.0).any()


# --------------------------------------------------------------------------------------------------------------------
# statmorph on synthetic galaxies


def test_statmorph_measures_a_gaussian_and_a_pair():
    single, pair = measure(composite(SINGLE)), measure(composite(PAIR))
    assert single["flag"] == 0 and pair["flag"] <= morphology.MAX_FLAG
    # A 2-D Gaussian: M20 = log10(1 - 0.8 (1 + ln 1.25)) = -1.668 whatever its width (Lotz et al. 2004's definition;
    # statmorph counts whole pixels up to the first over 20 %, and the segmentation cuts the wings).
    assert single["m20"] == pytest.approx(math.log10(1 - 0.8 * (1 + math.log(1.25))), abs=0.1)
    assert single["asymmetry"] == pytest.approx(0.0, abs=0.05)
    # The companion makes the pair asymmetric and spreads the brightest 20 %: a merger by both criteria.
    assert pair["asymmetry"] > morphology.ASYMMETRY_MERGER > single["asymmetry"]
    assert pair["m20"] > single["m20"] + 0.5
    assert gini_m20_merger(pair["gini"], pair["m20"]) and not gini_m20_merger(single["gini"], single["m20"])
    # More concentrated light has a higher concentration C = 5 log10(r80 / r20).
    assert measure(composite(gaussian(C, C, 2.0) + gaussian(C, C, 8.0, 0.05)))["concentration"] > \
        single["concentration"]


def test_measure_reports_a_cutout_without_a_galaxy():
    blank = measure(composite(np.zeros((S, S))))
    assert blank["flag"] == -1 and blank["problem"] == "no source at the centre"
    assert np.isnan([blank[k] for k in morphology.STATS]).all()
    off = measure(composite(gaussian(8, 8, 2.0)))  # a source, but in a corner
    assert off["problem"] == "no source at the centre"


def test_merger_lines():
    # Lotz et al. 2008: G > -0.14 M20 + 0.33; at M20 = -1 the line is at G = 0.47.
    assert gini_m20_merger(0.5, -1.0) and not gini_m20_merger(0.45, -1.0)
    assert gini_m20_merger(np.array([0.5, 0.45, np.nan]), np.array([-1.0, -1.0, -1.0])).tolist() == [True, False,
                                                                                                     False]
    assert gini_m20_merger(0.62, -2.0) and not gini_m20_merger(0.60, -2.0)
    assert asymmetry_merger(0.36) and not asymmetry_merger(0.35)


def synthetic_stack() -> np.ndarray:
    """(3, 3, S, S) uint8: a Gaussian, a pair, blank sky."""
    return np.stack([composite(SINGLE), composite(PAIR), composite(np.zeros((S, S)))])


def test_morphology_table_on_a_pool_matches_one_process(tmp_path):
    imgs = synthetic_stack()
    mm = np.memmap(tmp_path / "images.u8", dtype=np.uint8, mode="w+", shape=imgs.shape)
    mm[:] = imgs
    ids = np.array(["single", "pair", "blank"])
    calls = []
    t = morphology_table(mm, ids, workers=2, chunk=1, progress=lambda d, n: calls.append((d, n)))
    assert list(t.columns) == list(morphology.COLUMNS)
    assert calls[-1] == (3, 3)
    one = morphology_table(imgs, ids, rows=[1, 0], workers=1)
    assert one["GalaxyID"].tolist() == ["pair", "single"]
    pd.testing.assert_frame_equal(one.reset_index(drop=True), t.iloc[[1, 0]].reset_index(drop=True))
    assert t["asym_merger"].tolist() == [False, True, False]
    assert t.loc[2, "flag"] == -1 and not t.loc[2, "gm20_merger"]  # never a merger without a measurement
    with pytest.raises(ValueError, match="aligned"):
        morphology_table(imgs, ids[:2])


def test_cache_table_measures_each_galaxy_once(tiny_cache, tmp_path, monkeypatch):
    import shutil

    from galaxy_core.data.cache import open_cache

    shutil.copytree(tiny_cache.path, tmp_path / "cache")
    cache = open_cache(tmp_path / "cache")
    measured = []
    real = morphology.morphology_table

    def counting(images, ids, rows=None, *a, **kw):
        measured.extend(np.asarray(rows).tolist())
        return real(images, ids, rows, *a, **kw)

    monkeypatch.setattr(morphology, "morphology_table", counting)
    first = morphology.cache_table(cache, [3, 1], workers=1)
    assert first["row"].tolist() == [3, 1] and first["GalaxyID"].tolist() == cache.ids[[3, 1]].tolist()
    both = morphology.cache_table(cache, [1, 2, 3], workers=1, save_every=1)
    assert sorted(measured) == [1, 2, 3]  # rows 1 and 3 were read back, not measured again
    pd.testing.assert_frame_equal(both.iloc[[2, 0]].reset_index(drop=True), first)
    assert len(list((cache.path / morphology.STORE_DIR).glob("*.csv"))) == 1
    assert both["flag"].dtype.kind == "i" and both["asym_merger"].dtype == bool


def test_stored_rows_and_the_time_to_measure_the_others():
    table = pd.DataFrame({"row": [5, 2, 9], "GalaxyID": ["e", "b", "i"], "gini": [0.5, 0.4, 0.6]})
    assert morphology.unmeasured(table, [9, 3, 2, 7]).tolist() == [3, 7]
    assert morphology.unmeasured(table.iloc[:0], [1]).tolist() == [1]
    got = morphology.rows_of(table, [9, 5])
    assert got["row"].tolist() == [9, 5] and got["GalaxyID"].tolist() == ["i", "e"] and list(got.columns)[0] == "row"
    with pytest.raises(KeyError):
        morphology.rows_of(table, [3])
    seconds, cores = morphology.measuring_seconds(80, cores=2)
    assert cores == 2 and seconds == pytest.approx(80 / (2 * morphology.GALAXIES_PER_SECOND_PER_CORE))
    assert morphology.measuring_seconds(0)[1] >= 1


# --------------------------------------------------------------------------------------------------------------------
# Real galaxies


@pytest.mark.shared
def test_volunteer_mergers_are_more_asymmetric(shared_data):
    """30 galaxies that volunteers call mergers (Class8.6 > 0.5) against 30 they do not (Class8.6 < 0.05), the
    first of each in the label file of the 96 px pack, measured by statmorph: mergers are more asymmetric."""
    root = shared_data / "gz2-kaggle-96"
    labels = pd.read_csv(root / layout.LABEL_CSV, dtype={"GalaxyID": str})
    p = labels[MERGER_COLUMN]
    pick = pd.concat([labels[p > 0.5].head(30), labels[p < 0.05].head(30)])
    imgs = np.stack([images.load_image(root / layout.LABELLED_DIR / f"{i}.jpg", crop=1.0, size=80)
                     for i in pick["GalaxyID"]])
    t = morphology_table(imgs, pick["GalaxyID"].to_numpy(), workers=2)
    is_merger = pick[MERGER_COLUMN].to_numpy() > 0.5
    good = t["flag"].between(0, morphology.MAX_FLAG).to_numpy()
    assert good.mean() > 0.8
    a = t["asymmetry"].to_numpy()
    assert np.median(a[is_merger & good]) > np.median(a[~is_merger & good]) + 0.05
    assert t["asym_merger"][is_merger].mean() > t["asym_merger"][~is_merger].mean()
