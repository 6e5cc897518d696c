"""Tests of drawing synthetic galaxies (galaxy_core.demo.render): every kind renders deterministically, centred, and a
full size cutout has a dark sky and few saturated pixels."""

from __future__ import annotations

import numpy as np
import pytest

from galaxy_core.demo import render, synthetic


@pytest.mark.parametrize("kind", list(synthetic.KINDS))
def test_render_each_kind(kind):
    p = synthetic.sample_params(np.random.default_rng(8), kind)
    a = render.render_galaxy(p, 64, np.random.default_rng(9))
    b = render.render_galaxy(p, 64, np.random.default_rng(9))
    assert a.shape == (64, 64, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert a.std() > 2.0
    # the object sits in the middle: the centre is brighter than the frame's edge
    assert a[24:40, 24:40].mean() > np.median(a[:8])


def test_render_full_size_looks_like_a_cutout():
    rng = np.random.default_rng(21)
    img = render.render_galaxy(synthetic.sample_params(rng, "disk"), 424, rng)
    assert img.shape == (424, 424, 3) and img.dtype == np.uint8
    sky = np.median(img, axis=(0, 1))
    assert (sky > 1).all() and (sky < 60).all()   # dark sky, but not pure black
    assert (img == 255).any(axis=2).mean() < 0.05
