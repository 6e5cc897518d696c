"""Tests for galaxy_core.models.transforms: crops with exact answers on synthetic images, reproducible augmentation
that is the plain crop when switched off and leaves a round blob alone, and the eight exact dihedral views."""

from __future__ import annotations

import pytest
import torch

from galaxy_core.models import transforms


def random_uint8(b: int = 3, s: int = 20, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (b, 3, s, s), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def white_centre(s: int = 64, b: int = 2) -> torch.Tensor:
    """Black images whose central half (s/2 x s/2) is white."""
    x = torch.zeros(b, 3, s, s, dtype=torch.uint8)
    x[..., s // 4:3 * s // 4, s // 4:3 * s // 4] = 255
    return x


def blob(s: int = 48, sigma: float = 4.0, b: int = 4) -> torch.Tensor:
    """A centred circular Gaussian, identical in every image and channel."""
    r = torch.arange(s, dtype=torch.float32) + 0.5 - s / 2
    yy, xx = torch.meshgrid(r, r, indexing="ij")
    return torch.exp(-(xx ** 2 + yy ** 2) / (2 * sigma ** 2)).expand(b, 3, s, s).contiguous()


# ----------------------------------------------------------------------------------------------------------------
# fit_view


def test_to_float():
    x = random_uint8()
    assert torch.equal(transforms.to_float(x), x.float() / 255)
    f = torch.rand(2, 3, 4, 4, dtype=torch.float64)
    assert transforms.to_float(f).dtype == torch.float32
    assert torch.equal(transforms.to_float(f), f.float())


def test_fit_view_identity_is_input_over_255():
    x = random_uint8(s=20)
    out = transforms.fit_view(x, 1.0, 20)
    assert out.dtype == torch.float32
    assert torch.equal(out, x.float() / 255)
    assert torch.equal(x, random_uint8(s=20))  # the input is untouched


@pytest.mark.parametrize("size", [32, 16, 7])
def test_fit_view_central_half_is_all_white(size):
    out = transforms.fit_view(white_centre(64), 0.5, size)
    assert out.shape == (2, 3, size, size)
    torch.testing.assert_close(out, torch.ones_like(out), rtol=0, atol=1e-6)


def test_fit_view_whole_frame_keeps_the_white_fraction():
    out = transforms.fit_view(white_centre(64), 1.0, 32)  # 2x down-sampling of the whole frame
    assert out.shape == (2, 3, 32, 32)
    assert out.mean().item() == pytest.approx(0.25, abs=1e-6)


# ----------------------------------------------------------------------------------------------------------------
# random_view


def test_random_view_reproducible_with_a_generator():
    x = random_uint8(s=24)
    a = transforms.random_view(x, 0.8, 16, generator=torch.Generator().manual_seed(1))
    b = transforms.random_view(x, 0.8, 16, generator=torch.Generator().manual_seed(1))
    c = transforms.random_view(x, 0.8, 16, generator=torch.Generator().manual_seed(2))
    assert a.shape == (3, 3, 16, 16) and a.dtype == torch.float32
    assert torch.equal(a, b)
    assert not torch.allclose(a, c, atol=1e-3)


@pytest.mark.parametrize("crop,size", [(1.0, 20), (0.7, 12), (0.5, 31)])
def test_random_view_without_augmentation_is_fit_view(crop, size):
    x = random_uint8(s=20)
    r = transforms.random_view(x, crop, size, generator=torch.Generator().manual_seed(3), rotate=False, flip=False,
                          zoom=1.0, shift=0.0)
    torch.testing.assert_close(r, transforms.fit_view(x, crop, size), rtol=0, atol=1e-5)


def test_random_view_stays_in_unit_range():
    x = random_uint8(b=16, s=24, seed=5)
    x[0] = 0
    x[1] = 255
    out = transforms.random_view(x, 0.9, 24, generator=torch.Generator().manual_seed(0))
    assert out.min().item() >= 0.0 and out.max().item() <= 1.0
    torch.testing.assert_close(out[0], torch.zeros_like(out[0]))  # a uniform image stays uniform
    torch.testing.assert_close(out[1], torch.ones_like(out[1]))


def test_random_view_leaves_a_round_blob_unchanged():
    """Rotation and mirroring of a circularly symmetric galaxy change nothing (up to bilinear interpolation)."""
    s = 48
    x = blob(s, sigma=4.0, b=8)
    out = transforms.random_view(x, 1.0, s, generator=torch.Generator().manual_seed(0), zoom=1.0, shift=0.0)
    r = torch.arange(s, dtype=torch.float32) + 0.5 - s / 2
    inside = (r[:, None] ** 2 + r[None, :] ** 2) < (s / 2 - 1) ** 2  # corners get reflected sky by design
    diff = (out - x).abs()
    assert diff[..., inside].max().item() < 0.03
    assert diff.mean().item() < 2e-3
    # while an asymmetric image does change under the same views
    y = x.clone()
    y[..., : s // 2, : s // 2] = 0.0
    out_y = transforms.random_view(y, 1.0, s, generator=torch.Generator().manual_seed(0), zoom=1.0, shift=0.0)
    assert (out_y - y).abs().max().item() > 0.3


# ----------------------------------------------------------------------------------------------------------------
# dihedral


def test_dihedral_views():
    x = torch.rand(1, 3, 9, 9, generator=torch.Generator().manual_seed(0))
    v = [transforms.dihedral(x, k) for k in range(8)]
    assert torch.equal(v[0], x)
    for i in range(8):
        for j in range(i):
            assert not torch.equal(v[i], v[j]), (i, j)
    flat = torch.sort(x.flatten()).values
    for k in range(8):
        assert v[k].shape == x.shape
        assert torch.equal(torch.sort(v[k].flatten()).values, flat)  # the same pixels, moved
        # each view is a dihedral element: four quarter turns bring it back, and the mirrored ones are involutions
        y = v[k]
        for _ in range(4):
            y = transforms.dihedral(y, 1)
        assert torch.equal(y, v[k])
    assert torch.equal(transforms.dihedral(v[4], 4), x)
    assert torch.equal(transforms.dihedral(transforms.dihedral(x, 1), 3), x)
