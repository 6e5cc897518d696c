"""Tests for galaxy_core.models.registry: every registered model's shapes and gradients, the tree output layer, the mean
baseline's closed form, and the safetensors save/load round trip. Tiny inputs keep it fast on a 2-core CPU."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from galaxy_core import tree
from galaxy_core.models import registry
from galaxy_core.models.layers import BasicBlock
from galaxy_core.models.registry import (
    FORMAT,
    DecisionTreeOutput,
    GalaxyModel,
    Head,
    MeanModel,
    build_model,
    count_parameters,
    list_models,
    load_model_folder,
    save_model,
)

from conftest import ROOT

# Small enough for CPU CI; the default width is checked separately in test_galaxynet_default.
SMALL = {"galaxynet": {"width": 8}}


def small_model(name: str) -> GalaxyModel:
    torch.manual_seed(0)
    return build_model(name, **SMALL.get(name, {}))


def images(model: GalaxyModel, batch: int = 2) -> torch.Tensor:
    s = model.config["input_size"]
    return torch.rand(batch, 3, s, s, generator=torch.Generator().manual_seed(1))


def random_conditional(n: int, seed: int = 0) -> np.ndarray:
    """Per-question conditional vote fractions (each question sums to 1), from a flat Dirichlet."""
    rng = np.random.default_rng(seed)
    cond = np.zeros((n, tree.N_ANSWERS))
    for s in tree.QUESTION_SLICES:
        cond[:, s] = rng.dirichlet(np.ones(s.stop - s.start), size=n)
    return cond


def test_registry_has_the_four_models():
    assert set(list_models()) >= {"mean", "seed-cnn", "resnet18", "galaxynet"}


@pytest.mark.parametrize("name", list_models())
def test_forward_shapes_and_gradients(name):
    model = small_model(name)
    x = images(model)
    model.eval()
    with torch.no_grad():
        out = model(x)
        emb = model.forward_features(x)
    assert out.shape == (2, 37)
    assert torch.isfinite(out).all()
    if model.config["output"] in ("sigmoid", "tree"):
        assert out.min() >= 0 and out.max() <= 1
    assert emb.shape == (2, model.embed_dim)
    # The config is JSON and rebuilds the same architecture.
    rebuilt = build_model(**json.loads(json.dumps(model.config)))
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}

    if model.closed_form:
        assert count_parameters(model) == 0
        return
    model.train()
    model(x).sum().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("output", ["sigmoid", "tree", "linear"])
def test_output_override(output):
    model = build_model("seed-cnn", output=output)
    assert model.config["output"] == output
    out = model.eval()(images(model))
    assert out.shape == (2, 37) and out.dtype == torch.float32
    if output == "tree":
        assert np.abs(tree.tree_violations(out.detach().numpy())).max() < 1e-5


def test_parameter_counts():
    assert count_parameters(build_model("seed-cnn")) == 2_391_973
    assert count_parameters(build_model("seed-cnn", output="tree")) == 2_391_973
    assert count_parameters(build_model("resnet18")) == 11_195_493


def test_galaxynet_default():
    model = build_model("galaxynet")
    assert model.config["output"] == "tree" and model.config["input_size"] == 80
    assert model.embed_dim == 512
    assert 10e6 < count_parameters(model) < 12e6  # ResNet-18-sized
    # Zero-initialised last BN of every residual block (Goyal et al. 2017).
    blocks = [m for m in model.modules() if type(m).__name__ == "BasicBlock"]
    assert len(blocks) == 8 and all((b.bn2.weight == 0).all() for b in blocks)
    model.eval()
    with torch.no_grad():
        out = model(images(model, batch=1).contiguous(memory_format=torch.channels_last))
    assert out.shape == (1, 37) and torch.isfinite(out).all()


@pytest.mark.parametrize("stride", [1, 2])
def test_basic_block_computes_what_torchvisions_does(stride):
    """galaxynet's own BasicBlock stands in for torchvision's (whose import costs ~1.5 s at every start): the same
    parameter names in the same order, so checkpoints load into either, and the same outputs."""
    from torchvision.models.resnet import BasicBlock as TorchvisionBlock

    torch.manual_seed(0)
    down = lambda: nn.Sequential(nn.Conv2d(8, 16, 1, stride=stride, bias=False), nn.BatchNorm2d(16))  # noqa: E731
    ours, theirs = BasicBlock(8, 16, stride, down()), TorchvisionBlock(8, 16, stride, down())
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert [n for n, _ in ours.named_children()] == [n for n, _ in theirs.named_children()]  # BN folding's order
    for m in ours.modules():  # non-trivial BatchNorm statistics, so that eval mode tests them too
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1), m.running_var.uniform_(0.5, 2), m.weight.data.uniform_(0.5, 2)
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(2, 8, 12, 12)
    for mode in (True, False):
        ours.train(mode), theirs.train(mode)
        torch.testing.assert_close(ours(x.clone()), theirs(x.clone()))


def test_dashboard_and_command_line_imports_skip_torchvision():
    """Importing the package's model code must not import torchvision (about 1.5 s); only ``resnet18`` needs it."""
    code = "import sys, galaxy_core.predict.prediction, galaxy_core.training.loop; print('torchvision' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_unknown_model():
    with pytest.raises(KeyError, match="seed-cnn"):
        build_model("nope")


def test_mean_model_rejects_nonlinear_output():
    with pytest.raises(ValueError, match="linear"):
        build_model("mean", output="sigmoid")


def test_the_registry_records_each_call_as_the_config(monkeypatch):
    """A registered constructor only builds the network; the registry records its name and every argument (defaults
    applied, in signature order, tuples as lists), so the config rebuilds the model and survives JSON unchanged."""
    monkeypatch.setattr(registry, "MODELS", dict(registry.MODELS))  # the test's model stays out of the real registry

    @registry.register_model(name="test-tiny")
    def tiny(*, input_size: int = 8, fov: float = 0.5, output: str = "linear", sizes: tuple = (1, 2)) -> GalaxyModel:
        return GalaxyModel(nn.Flatten(), Head(3 * input_size ** 2, output), 3 * input_size ** 2)

    model = build_model("test-tiny", output="sigmoid")
    assert list(model.config.items()) == [("name", "test-tiny"), ("input_size", 8), ("fov", 0.5),
                                          ("output", "sigmoid"), ("sizes", [1, 2])]
    assert json.loads(json.dumps(model.config)) == model.config
    assert build_model(**model.config).config == model.config
    with pytest.raises(TypeError, match="test-tiny.*width"):
        build_model("test-tiny", width=3)
    with pytest.raises(ValueError, match="already registered"):
        registry.register_model(tiny, name="test-tiny")


def test_the_shipped_checkpoint_loads_and_saves_its_config_unchanged(tmp_path):
    """``checkpoints/default`` (written before the registry recorded configs itself) loads, and saving it again
    writes the same config.json, key order included."""
    shipped = ROOT / "checkpoints" / "default"
    config = json.loads((shipped / "config.json").read_text())
    model = load_model_folder(shipped)
    assert model.config == {k: v for k, v in config.items() if k not in ("format", "extra")}
    assert model.extra == config["extra"]
    save_model(model, tmp_path / "again", extra=model.extra)
    assert list(json.loads((tmp_path / "again" / "config.json").read_text()).items()) == list(config.items())


# --------------------------------------------------------------------------------------------- tree output layer

def test_tree_output_obeys_the_tree():
    logits = 3 * torch.randn(64, 37, generator=torch.Generator().manual_seed(0))
    out = DecisionTreeOutput()(logits)
    assert out.shape == (64, 37) and out.dtype == torch.float32
    assert out.min() >= 0 and out.max() <= 1
    assert np.abs(tree.tree_violations(out.double().numpy())).max() < 1e-5


def test_tree_output_extreme_logits_and_bf16():
    logits = torch.full((2, 37), -1e4)
    logits[0, ::2] = 1e4
    logits.requires_grad_(True)
    out = DecisionTreeOutput()(logits)
    out.sum().backward()
    assert torch.isfinite(out).all() and torch.isfinite(logits.grad).all()
    assert np.abs(tree.tree_violations(out.detach().double().numpy())).max() < 1e-5
    assert DecisionTreeOutput()(torch.randn(3, 37).bfloat16()).dtype == torch.float32


def test_tree_output_inverts_conditional_logits():
    # log of the conditional fractions are logits whose softmax is exactly those fractions.
    cond = random_conditional(8)
    out = DecisionTreeOutput()(torch.tensor(np.log(cond)))
    np.testing.assert_allclose(out.double().numpy(), tree.cumulative(cond), atol=1e-6)


def test_tree_output_can_fit_a_consistent_target():
    target = torch.tensor(tree.cumulative(random_conditional(4, seed=1)), dtype=torch.float32)
    layer = DecisionTreeOutput()
    logits = torch.zeros(4, 37, requires_grad=True)
    opt = torch.optim.Adam([logits], lr=0.1)
    for _ in range(300):
        opt.zero_grad()
        loss = ((layer(logits) - target) ** 2).mean()
        loss.backward()
        opt.step()
    assert (layer(logits) - target).abs().max() < 1e-2


# --------------------------------------------------------------------------------------------------- mean model

def test_mean_model_fit():
    model = build_model("mean")
    assert isinstance(model, MeanModel) and model.closed_form and model.embed_dim == 0
    assert not build_model("seed-cnn").closed_form
    labels = np.zeros((3, 37))
    labels[1] = 1.0
    labels[2] = np.nan  # masked below, so it must not spoil the mean
    mask = np.ones((3, 37), bool)
    mask[2] = False
    mask[:, 5] = False
    model.fit(labels, mask)
    expected = np.full(37, 0.5)
    expected[5] = 0.0
    out = model(torch.rand(4, 3, 69, 69))
    assert out.shape == (4, 37)
    np.testing.assert_allclose(out.numpy(), np.tile(expected, (4, 1)))

    model.fit(torch.tensor(labels[:2]))  # tensors, and no mask: everything known
    np.testing.assert_allclose(model.head.mean.numpy(), 0.5)


# ---------------------------------------------------------------------------------------------------- save/load

@pytest.mark.parametrize("name", list_models())
def test_save_load_round_trip(name, tmp_path):
    model = small_model(name)
    x = images(model)
    if model.closed_form:
        model.fit(np.random.default_rng(0).random((5, 37)))
    else:
        with torch.no_grad():
            model.train()(x)  # moves BN running statistics away from their defaults, so buffers are tested too
    model.eval()
    with torch.no_grad():
        before = model(x)
    save_model(model, tmp_path / "run", extra={"val_rmse": 0.1})

    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["config.json", "model.safetensors"]
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["format"] == FORMAT and config["extra"] == {"val_rmse": 0.1} and config["name"] == name

    loaded = load_model_folder(tmp_path / "run")
    assert not loaded.training and type(loaded) is type(model)
    assert loaded.config == model.config
    with torch.no_grad():
        assert torch.equal(loaded(x), before)


def test_half_precision_weights_halve_the_file_and_barely_change_answers(tmp_path):
    model = build_model("galaxynet", width=16, input_size=32).eval()
    x = torch.rand(6, 3, 32, 32)
    save_model(model, tmp_path / "f32")
    save_model(model, tmp_path / "f16", half=True)
    state = load_file(tmp_path / "f16" / "model.safetensors")
    assert state["features.stem.0.weight"].dtype == torch.float16 and state["head.fc.weight"].dtype == torch.float16
    assert state["head.fc.bias"].dtype == torch.float32  # biases and BatchNorm statistics keep float32
    assert state["features.stem.1.running_var"].dtype == torch.float32
    f32, f16 = ((tmp_path / d / "model.safetensors").stat().st_size for d in ("f32", "f16"))
    assert 0.49 < f16 / f32 < 0.53
    loaded = load_model_folder(tmp_path / "f16")
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    with torch.no_grad():
        diff = (loaded(x) - model(x)).abs().max().item()
    assert 0 < diff < 1e-3


def test_load_rejects_tampered_weights(tmp_path):
    save_model(small_model("seed-cnn"), tmp_path)
    weights = tmp_path / "model.safetensors"
    state = load_file(weights)

    missing = dict(state)
    del missing["head.fc.bias"]
    save_file(missing, weights)
    with pytest.raises(ValueError, match="head.fc.bias"):
        load_model_folder(tmp_path)

    save_file({**state, "head.fc.bias": torch.zeros(5)}, weights)
    with pytest.raises(ValueError, match="wrong shapes"):
        load_model_folder(tmp_path)

    save_file({**state, "stray": torch.zeros(1)}, weights)
    with pytest.raises(ValueError, match="stray"):
        load_model_folder(tmp_path)

    # The config now says galaxynet while the weights are the seed CNN's.
    config = json.loads((tmp_path / "config.json").read_text())
    save_file(state, weights)
    (tmp_path / "config.json").write_text(json.dumps({**config, "name": "galaxynet", "width": 8}))
    with pytest.raises(ValueError, match="missing keys"):
        load_model_folder(tmp_path)


def test_load_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_model_folder(tmp_path / "nowhere")
    save_model(build_model("mean"), tmp_path)
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        load_model_folder(tmp_path)


# ------------------------------------------------------------------------------------------------ no pickle, ever

@pytest.fixture
def no_unpickling(monkeypatch):
    """Fail the test if anything tries to unpickle (torch.load, pickle.load/loads)."""
    import pickle

    def fail(*args, **kwargs):
        pytest.fail("a pickle was loaded")

    for module, name in ((torch, "load"), (pickle, "load"), (pickle, "loads")):
        monkeypatch.setattr(module, name, fail)


def test_pickled_checkpoints_are_refused_without_being_opened(tmp_path, no_unpickling):
    """A .pt file, a folder (or a run's best/) holding only a pickle, and a pickle renamed model.safetensors: each is
    refused with the reason and the way out, and nothing is unpickled."""
    import shutil

    from galaxy_core.models.registry import PICKLE_SUFFIXES

    state = small_model("seed-cnn").state_dict()
    pt = tmp_path / "model.pt"
    with open(pt, "wb") as f:  # torch.save itself: torch.load is what the fixture forbids
        torch.save(state, f)
    offered = [pt]
    for suffix in PICKLE_SUFFIXES:
        folder = tmp_path / f"folder{suffix}"
        (folder / "best").mkdir(parents=True)
        shutil.copy(pt, folder / "best" / f"weights{suffix}")
        offered.append(folder)
    save_model(small_model("seed-cnn"), tmp_path / "beside_config")
    (tmp_path / "beside_config" / "model.safetensors").unlink()
    shutil.copy(pt, tmp_path / "beside_config" / "model.bin")
    offered.append(tmp_path / "beside_config")
    for path in offered:
        with pytest.raises(ValueError) as e:
            load_model_folder(path)
        message = str(e.value)
        assert "pickle" in message and "runs any code" in message and "safetensors" in message, message
        assert "galaxy_core export" in message and "registry.save_model" in message and "weights_only=True" in message

    save_model(small_model("seed-cnn"), tmp_path / "renamed")
    shutil.copy(pt, tmp_path / "renamed" / "model.safetensors")
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        load_model_folder(tmp_path / "renamed")


def test_the_conversion_the_refusal_shows_works(tmp_path, monkeypatch):
    """The three lines the message offers turn a trusted state dict into a folder that loads."""
    from galaxy_core.models.registry import refuse_pickle

    model = build_model("galaxynet").eval()
    torch.save(model.state_dict(), tmp_path / "model.pt")
    with pytest.raises(ValueError) as e:
        refuse_pickle(tmp_path / "model.pt")
    snippet = "\n".join(line.strip() for line in str(e.value).splitlines()[1:])
    monkeypatch.chdir(tmp_path)
    exec(snippet, {})
    loaded = load_model_folder(tmp_path / "my_model")
    x = torch.rand(2, 3, 80, 80)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
