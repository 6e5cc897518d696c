"""Tests for galaxy_core.models.inference: batched inference with stand-in models whose outputs are known in closed form
(batching, row selection, multi-view averaging, memory maps, bf16 against float32), and BatchNorm folding that keeps
every registered model's outputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from galaxy_core import hardware
from galaxy_core.models import inference, registry


def random_uint8(b: int = 3, s: int = 20, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (b, 3, s, s), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


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
    out = inference.infer(ChannelMean(), x, crop=1.0, size=16)
    assert out.shape == (10, 37) and out.dtype == np.float32
    np.testing.assert_allclose(out, expected_channel_means(x), rtol=0, atol=1e-6)


def test_infer_clamps_to_unit_range():
    x = random_uint8(b=3, s=8).numpy()
    out = inference.infer(Fixed(), x, crop=1.0, size=8)
    expected = np.clip(np.linspace(-1.0, 2.0, 37), 0, 1)
    np.testing.assert_allclose(out, np.tile(expected, (3, 1)), rtol=0, atol=1e-6)
    assert out.min() == 0.0 and out.max() == 1.0


def test_infer_batch_size_does_not_matter_and_progress_is_reported():
    x = random_uint8(b=11, s=16, seed=2).numpy()
    calls = []
    ref = inference.infer(ChannelMean(), x, crop=0.75, size=12, batch_size=64)
    for bs in (1, 3, 4, 11):
        out = inference.infer(ChannelMean(), x, crop=0.75, size=12, batch_size=bs,
                              progress=lambda d, t: calls.append((d, t)))
        np.testing.assert_allclose(out, ref, rtol=0, atol=1e-6)
        assert calls[-1] == (11, 11)
    assert calls[:4] == [(1, 11), (2, 11), (3, 11), (4, 11)]


def test_infer_indices_select_rows():
    x = random_uint8(b=9, s=16, seed=3).numpy()
    full = inference.infer(ChannelMean(), x, crop=1.0, size=16)
    idx = [7, 0, 3, 3]
    out = inference.infer(ChannelMean(), x, crop=1.0, size=16, indices=idx, batch_size=3)
    np.testing.assert_array_equal(out, full[idx])
    out = inference.infer(ChannelMean(), x, crop=1.0, size=16, indices=np.arange(2, 5))
    np.testing.assert_array_equal(out, full[2:5])
    assert inference.infer(ChannelMean(), x, crop=1.0, size=16, indices=[]).shape == (0, 37)


def test_infer_tta_on_an_invariant_model_changes_nothing():
    x = random_uint8(b=5, s=16, seed=4).numpy()
    one = inference.infer(ChannelMean(), x, crop=1.0, size=16, tta=1)
    eight = inference.infer(ChannelMean(), x, crop=1.0, size=16, tta=8)
    np.testing.assert_allclose(eight, one, rtol=0, atol=1e-6)


@pytest.mark.parametrize("tta", [4, 8])
def test_infer_tta_averages_the_views(tta):
    x = random_uint8(b=5, s=16, seed=5).numpy()
    one = inference.infer(QuadrantMean(), x, crop=1.0, size=16, tta=1)
    avg = inference.infer(QuadrantMean(), x, crop=1.0, size=16, tta=tta)
    np.testing.assert_allclose(one, np.tile(x[:, :, :8, :8].mean(axis=(2, 3)) / 255, 13)[:, :37], atol=1e-6)
    np.testing.assert_allclose(avg, expected_channel_means(x), rtol=0, atol=1e-6)


def test_infer_views_returns_each_view_as_the_network_gave_it():
    """``views=True``: (N, tta, 37), view k of :func:`transforms.dihedral`, not clamped (the mean is clamped after
    averaging, as without ``views``); embeddings likewise (N, tta, D), averaging to the plain embedding."""
    x = random_uint8(b=5, s=16, seed=7).numpy()
    each = inference.infer(QuadrantMean(), x, crop=1.0, size=16, tta=4, views=True)
    assert each.shape == (5, 4, 37) and each.dtype == np.float32
    for k in range(4):  # quarter turn k brings another quadrant to the top left
        turned = torch.rot90(torch.from_numpy(x), k, dims=(-2, -1)).numpy()
        np.testing.assert_allclose(each[:, k], np.tile(turned[:, :, :8, :8].mean(axis=(2, 3)) / 255, 13)[:, :37],
                                   atol=1e-6)
    raw = inference.infer(Fixed(), x, crop=1.0, size=16, tta=2, views=True)
    np.testing.assert_allclose(raw[:, 1], np.tile(np.linspace(-1.0, 2.0, 37), (5, 1)), atol=1e-6)
    model = registry.build_model("galaxynet", width=8, input_size=16).eval()
    emb = inference.infer(model, x, 1.0, 16, tta=8, features=True, views=True, amp=False)
    assert emb.shape == (5, 8, model.embed_dim)
    np.testing.assert_allclose(emb.mean(1), inference.infer(model, x, 1.0, 16, tta=8, features=True, amp=False),
                               atol=1e-5)


@pytest.mark.parametrize("tta", [0, 9, -1])
def test_infer_rejects_bad_tta(tta):
    with pytest.raises(ValueError, match="tta"):
        inference.infer(ChannelMean(), np.zeros((1, 3, 8, 8), np.uint8), crop=1.0, size=8, tta=tta)


def test_infer_reads_a_memmap_and_a_tensor(tmp_path):
    x = random_uint8(b=7, s=16, seed=6).numpy()
    mm = np.memmap(tmp_path / "images.u8", dtype=np.uint8, mode="w+", shape=x.shape)
    mm[:] = x
    mm.flush()
    del mm
    ro = np.memmap(tmp_path / "images.u8", dtype=np.uint8, mode="r", shape=x.shape)
    ref = inference.infer(ChannelMean(), x, crop=0.5, size=8)
    np.testing.assert_array_equal(inference.infer(ChannelMean(), ro, crop=0.5, size=8, batch_size=3), ref)
    np.testing.assert_array_equal(inference.infer(ChannelMean(), ro, crop=0.5, size=8, indices=[6, 1]), ref[[6, 1]])
    np.testing.assert_array_equal(inference.infer(ChannelMean(), torch.from_numpy(x), crop=0.5, size=8), ref)


def test_infer_restores_training_mode_and_needs_no_grad():
    model = Fixed()
    model.train()
    out = inference.infer(model, np.zeros((2, 3, 8, 8), np.uint8), crop=1.0, size=8)
    assert model.training
    assert out.shape == (2, 37)
    model.eval()
    inference.infer(model, np.zeros((2, 3, 8, 8), np.uint8), crop=1.0, size=8)
    assert not model.training


def test_infer_in_bf16_stays_close_to_float32(monkeypatch):
    """The bf16 path (on a CPU with native bf16, or forced) changes predictions by about 1e-3, not more."""
    torch.manual_seed(0)
    model = registry.build_model("galaxynet", width=8, input_size=32).eval()
    images = torch.randint(0, 256, (16, 3, 40, 40), dtype=torch.uint8)
    monkeypatch.setenv("GALAXY_CORE_CPU_BF16", "1")
    hardware.cpu_has_native_bf16.cache_clear()
    try:
        fast = inference.infer(model, images, 1.0, 32, device="cpu")
        exact = inference.infer(model, images, 1.0, 32, device="cpu", amp=False)
    finally:
        hardware.cpu_has_native_bf16.cache_clear()
    assert np.abs(fast - exact).max() < 2e-2 and np.abs(fast - exact).mean() < 3e-3


@pytest.mark.parametrize("name", registry.list_models())
def test_folding_batchnorm_keeps_every_models_outputs(name):
    """Every registered model gives the same answers with BatchNorm folded into its convolutions (float32), after
    its BatchNorm statistics have moved away from their initial values; the model itself is left unchanged."""
    torch.manual_seed(0)
    model = registry.build_model(name, input_size=32)
    model.train()
    with torch.no_grad():
        for _ in range(3):  # running statistics away from (0, 1), so that folding has something to fold
            model(torch.rand(8, 3, 32, 32) * 2 + 0.5)
    model.eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        expected = model(x)
        folded = inference.fold_batchnorm(model)
        got = folded(x)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert inference.fold_batchnorm(folded) is folded and inference.fold_batchnorm(model) is not folded  # folds once
    left = sum(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    if name in ("resnet18", "galaxynet"):  # every BatchNorm follows a convolution there
        assert left == 0
