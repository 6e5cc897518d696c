"""Tests for galaxy_core.views: crops with exact answers on synthetic images, reproducible augmentation that is
the plain crop when switched off and leaves a round blob alone, the eight exact dihedral views, and batched
inference with stand-in models whose outputs are known in closed form."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from galaxy_core import models, views


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
    assert torch.equal(views.to_float(x), x.float() / 255)
    f = torch.rand(2, 3, 4, 4, dtype=torch.float64)
    assert views.to_float(f).dtype == torch.float32
    assert torch.equal(views.to_float(f), f.float())


def test_fit_view_identity_is_input_over_255():
    x = random_uint8(s=20)
    out = views.fit_view(x, 1.0, 20)
    assert out.dtype == torch.float32
    assert torch.equal(out, x.float() / 255)
    assert torch.equal(x, random_uint8(s=20))  # the input is untouched


@pytest.mark.parametrize("size", [32, 16, 7])
def test_fit_view_central_half_is_all_white(size):
    out = views.fit_view(white_centre(64), 0.5, size)
    assert out.shape == (2, 3, size, size)
    torch.testing.assert_close(out, torch.ones_like(out), rtol=0, atol=1e-6)


def test_fit_view_whole_frame_keeps_the_white_fraction():
    out = views.fit_view(white_centre(64), 1.0, 32)  # 2x down-sampling of the whole frame
    assert out.shape == (2, 3, 32, 32)
    assert out.mean().item() == pytest.approx(0.25, abs=1e-6)


# ----------------------------------------------------------------------------------------------------------------
# random_view


def test_random_view_reproducible_with_a_generator():
    x = random_uint8(s=24)
    a = views.random_view(x, 0.8, 16, generator=torch.Generator().manual_seed(1))
    b = views.random_view(x, 0.8, 16, generator=torch.Generator().manual_seed(1))
    c = views.random_view(x, 0.8, 16, generator=torch.Generator().manual_seed(2))
    assert a.shape == (3, 3, 16, 16) and a.dtype == torch.float32
    assert torch.equal(a, b)
    assert not torch.allclose(a, c, atol=1e-3)


@pytest.mark.parametrize("crop,size", [(1.0, 20), (0.7, 12), (0.5, 31)])
def test_random_view_without_augmentation_is_fit_view(crop, size):
    x = random_uint8(s=20)
    r = views.random_view(x, crop, size, generator=torch.Generator().manual_seed(3), rotate=False, flip=False,
                          zoom=1.0, shift=0.0)
    torch.testing.assert_close(r, views.fit_view(x, crop, size), rtol=0, atol=1e-5)


def test_random_view_stays_in_unit_range():
    x = random_uint8(b=16, s=24, seed=5)
    x[0] = 0
    x[1] = 255
    out = views.random_view(x, 0.9, 24, generator=torch.Generator().manual_seed(0))
    assert out.min().item() >= 0.0 and out.max().item() <= 1.0
    torch.testing.assert_close(out[0], torch.zeros_like(out[0]))  # a uniform image stays uniform
    torch.testing.assert_close(out[1], torch.ones_like(out[1]))


def test_random_view_leaves_a_round_blob_unchanged():
    """Rotation and mirroring of a circularly symmetric galaxy change nothing (up to bilinear interpolation)."""
    s = 48
    x = blob(s, sigma=4.0, b=8)
    out = views.random_view(x, 1.0, s, generator=torch.Generator().manual_seed(0), zoom=1.0, shift=0.0)
    r = torch.arange(s, dtype=torch.float32) + 0.5 - s / 2
    inside = (r[:, None] ** 2 + r[None, :] ** 2) < (s / 2 - 1) ** 2  # corners get reflected sky by design
    diff = (out - x).abs()
    assert diff[..., inside].max().item() < 0.03
    assert diff.mean().item() < 2e-3
    # while an asymmetric image does change under the same views
    y = x.clone()
    y[..., : s // 2, : s // 2] = 0.0
    out_y = views.random_view(y, 1.0, s, generator=torch.Generator().manual_seed(0), zoom=1.0, shift=0.0)
    assert (out_y - y).abs().max().item() > 0.3


# ----------------------------------------------------------------------------------------------------------------
# dihedral


def test_dihedral_views():
    x = torch.rand(1, 3, 9, 9, generator=torch.Generator().manual_seed(0))
    v = [views.dihedral(x, k) for k in range(8)]
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
            y = views.dihedral(y, 1)
        assert torch.equal(y, v[k])
    assert torch.equal(views.dihedral(v[4], 4), x)
    assert torch.equal(views.dihedral(views.dihedral(x, 1), 3), x)


# ----------------------------------------------------------------------------------------------------------------
# infer


class ChannelMean(torch.nn.Module):
    """Mean pixel per channel, repeated over the 37 outputs (channel j % 3 for output j): dihedral-invariant."""

    def forward(self, x):
        return x.mean(dim=(2, 3)).repeat(1, 13)[:, :37]


class QuadrantMean(torch.nn.Module):
    """Mean of the top-left quadrant per channel: not invariant, but its average over the four quarter turns is the
    mean of the whole image (each turn brings another quadrant to the top left)."""

    def forward(self, x):
        s = x.shape[-1] // 2
        return x[..., :s, :s].mean(dim=(2, 3)).repeat(1, 13)[:, :37]


class Fixed(torch.nn.Module):
    """A fixed vector with values outside [0, 1], and a parameter so that the device comes from the model."""

    def __init__(self):
        super().__init__()
        self.v = torch.nn.Parameter(torch.linspace(-1.0, 2.0, 37))

    def forward(self, x):
        return self.v.expand(x.shape[0], 37) * 1.0


def expected_channel_means(images: np.ndarray) -> np.ndarray:
    m = images.astype(np.float64).mean(axis=(2, 3)) / 255.0  # (N, 3)
    return np.tile(m, 13)[:, :37]


def test_infer_known_answer_shape_and_dtype():
    x = random_uint8(b=10, s=16, seed=1).numpy()
    out = views.infer(ChannelMean(), x, crop=1.0, size=16)
    assert out.shape == (10, 37) and out.dtype == np.float32
    np.testing.assert_allclose(out, expected_channel_means(x), rtol=0, atol=1e-6)


def test_infer_clamps_to_unit_range():
    x = random_uint8(b=3, s=8).numpy()
    out = views.infer(Fixed(), x, crop=1.0, size=8)
    expected = np.clip(np.linspace(-1.0, 2.0, 37), 0, 1)
    np.testing.assert_allclose(out, np.tile(expected, (3, 1)), rtol=0, atol=1e-6)
    assert out.min() == 0.0 and out.max() == 1.0


def test_infer_batch_size_does_not_matter_and_progress_is_reported():
    x = random_uint8(b=11, s=16, seed=2).numpy()
    calls = []
    ref = views.infer(ChannelMean(), x, crop=0.75, size=12, batch_size=64)
    for bs in (1, 3, 4, 11):
        out = views.infer(ChannelMean(), x, crop=0.75, size=12, batch_size=bs,
                          progress=lambda d, t: calls.append((d, t)))
        np.testing.assert_allclose(out, ref, rtol=0, atol=1e-6)
        assert calls[-1] == (11, 11)
    assert calls[:4] == [(1, 11), (2, 11), (3, 11), (4, 11)]


def test_infer_indices_select_rows():
    x = random_uint8(b=9, s=16, seed=3).numpy()
    full = views.infer(ChannelMean(), x, crop=1.0, size=16)
    idx = [7, 0, 3, 3]
    out = views.infer(ChannelMean(), x, crop=1.0, size=16, indices=idx, batch_size=3)
    np.testing.assert_array_equal(out, full[idx])
    out = views.infer(ChannelMean(), x, crop=1.0, size=16, indices=np.arange(2, 5))
    np.testing.assert_array_equal(out, full[2:5])
    assert views.infer(ChannelMean(), x, crop=1.0, size=16, indices=[]).shape == (0, 37)


def test_infer_tta_on_an_invariant_model_changes_nothing():
    x = random_uint8(b=5, s=16, seed=4).numpy()
    one = views.infer(ChannelMean(), x, crop=1.0, size=16, tta=1)
    eight = views.infer(ChannelMean(), x, crop=1.0, size=16, tta=8)
    np.testing.assert_allclose(eight, one, rtol=0, atol=1e-6)


@pytest.mark.parametrize("tta", [4, 8])
def test_infer_tta_averages_the_views(tta):
    x = random_uint8(b=5, s=16, seed=5).numpy()
    one = views.infer(QuadrantMean(), x, crop=1.0, size=16, tta=1)
    avg = views.infer(QuadrantMean(), x, crop=1.0, size=16, tta=tta)
    np.testing.assert_allclose(one, np.tile(x[:, :, :8, :8].mean(axis=(2, 3)) / 255, 13)[:, :37], atol=1e-6)
    np.testing.assert_allclose(avg, expected_channel_means(x), rtol=0, atol=1e-6)


@pytest.mark.parametrize("tta", [0, 9, -1])
def test_infer_rejects_bad_tta(tta):
    with pytest.raises(ValueError, match="tta"):
        views.infer(ChannelMean(), np.zeros((1, 3, 8, 8), np.uint8), crop=1.0, size=8, tta=tta)


def test_infer_reads_a_memmap_and_a_tensor(tmp_path):
    x = random_uint8(b=7, s=16, seed=6).numpy()
    mm = np.memmap(tmp_path / "images.u8", dtype=np.uint8, mode="w+", shape=x.shape)
    mm[:] = x
    mm.flush()
    del mm
    ro = np.memmap(tmp_path / "images.u8", dtype=np.uint8, mode="r", shape=x.shape)
    ref = views.infer(ChannelMean(), x, crop=0.5, size=8)
    np.testing.assert_array_equal(views.infer(ChannelMean(), ro, crop=0.5, size=8, batch_size=3), ref)
    np.testing.assert_array_equal(views.infer(ChannelMean(), ro, crop=0.5, size=8, indices=[6, 1]), ref[[6, 1]])
    np.testing.assert_array_equal(views.infer(ChannelMean(), torch.from_numpy(x), crop=0.5, size=8), ref)


def test_infer_restores_training_mode_and_needs_no_grad():
    model = Fixed()
    model.train()
    out = views.infer(model, np.zeros((2, 3, 8, 8), np.uint8), crop=1.0, size=8)
    assert model.training
    assert out.shape == (2, 37)
    model.eval()
    views.infer(model, np.zeros((2, 3, 8, 8), np.uint8), crop=1.0, size=8)
    assert not model.training


def test_fast_math_takes_bf16_only_where_the_hardware_has_it(monkeypatch):
    assert views.fast_math("cuda") == (True, True)
    assert views.fast_math("cuda", amp=False) == (False, True)
    for forced, expected in (("0", False), ("1", True)):
        monkeypatch.setenv("GALAXY_CORE_CPU_BF16", forced)
        views.cpu_has_native_bf16.cache_clear()
        assert views.fast_math("cpu") == (expected, True)
        assert views.fast_math("cpu", amp=False) == (False, True)
    monkeypatch.delenv("GALAXY_CORE_CPU_BF16")
    views.cpu_has_native_bf16.cache_clear()


def test_infer_in_bf16_stays_close_to_float32(monkeypatch):
    """The bf16 path (on a CPU with native bf16, or forced) changes predictions by about 1e-3, not more."""
    from galaxy_core import models

    torch.manual_seed(0)
    model = models.build_model("galaxynet", width=8, input_size=32).eval()
    images = torch.randint(0, 256, (16, 3, 40, 40), dtype=torch.uint8)
    monkeypatch.setenv("GALAXY_CORE_CPU_BF16", "1")
    views.cpu_has_native_bf16.cache_clear()
    try:
        fast = views.infer(model, images, 1.0, 32, device="cpu")
        exact = views.infer(model, images, 1.0, 32, device="cpu", amp=False)
    finally:
        views.cpu_has_native_bf16.cache_clear()
    assert np.abs(fast - exact).max() < 2e-2 and np.abs(fast - exact).mean() < 3e-3


@pytest.mark.parametrize("name", models.list_models())
def test_folding_batchnorm_keeps_every_models_outputs(name):
    """Every registered model gives the same answers with BatchNorm folded into its convolutions (float32), after
    its BatchNorm statistics have moved away from their initial values; the model itself is left unchanged."""
    torch.manual_seed(0)
    model = models.build_model(name, input_size=32)
    model.train()
    with torch.no_grad():
        for _ in range(3):  # running statistics away from (0, 1), so that folding has something to fold
            model(torch.rand(8, 3, 32, 32) * 2 + 0.5)
    model.eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        expected = model(x)
        folded = views.fold_batchnorm(model)
        got = folded(x)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert views.fold_batchnorm(folded) is folded and views.fold_batchnorm(model) is not folded  # folds once
    left = sum(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    if name in ("resnet18", "galaxynet"):  # every BatchNorm follows a convolution there
        assert left == 0
