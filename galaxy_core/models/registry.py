"""Models for the 37 Galaxy Zoo 2 answers: a registry of small constructors, one feature/head split, safe save/load.

Every model is a :class:`GalaxyModel`: ``features`` turns a float image batch (B, 3, S, S) with values in [0, 1]
into an embedding (B, D), and ``head`` turns the embedding into the 37 answers in Kaggle column order
(:data:`galaxy_core.tree.COLUMNS`). ``S`` is the model's ``input_size`` in pixels; the image it sees is a centred
crop whose side is ``fov`` times the 424 px side of the Kaggle JPEG, resized to ``S`` (cropping is the data
pipeline's job; the model only records what it was trained on).

Models register the way timm's ``register_model`` works: a decorated constructor of a few lines, looked up by name
with :func:`build_model`. The registry records each call as the model's ``config`` (the name and every constructor
argument, defaults included), so ``build_model(**model.config)`` rebuilds the architecture, and a folder written
by :func:`save_model` (weights as safetensors, config as JSON) rebuilds the trained model (:func:`load_model_folder`).

No model normalises its inputs: none starts from pretrained weights, so ImageNet statistics would mean nothing,
and each backbone's first BatchNorm rescales what its first convolution sees. All models therefore see the same
[0, 1] pixels, as the seed paper's network did.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes
from torch import nn

from galaxy_core.atomic import atomic_write_bytes, atomic_write_json
from galaxy_core.data.layout import DEFAULT_FOV, WEIGHTS_FILE
from galaxy_core.models.layers import GalaxyNetFeatures
from galaxy_core.tree import N_ANSWERS, PARENT_INDEX, QUESTION_SLICES

OUTPUTS = ("sigmoid", "tree", "linear")
FORMAT = "galaxy_core.model/1"
"""Value of ``"format"`` in a saved model's config.json; bump it when the folder layout changes."""

CONFIG_FILE = "config.json"

MODELS: dict[str, Callable[..., GalaxyModel]] = {}
"""Registered model constructors by name (``seed-cnn``, ``resnet18`` ...)."""


# ---------------------------------------------------------------------------------------------------------- registry

def register_model(fn: Callable | None = None, *, name: str | None = None):
    """Register a model constructor, as ``@register_model`` or ``@register_model(name="...")``; the name defaults to
    the function's with hyphens for underscores (``seed_cnn`` -> ``seed-cnn``), and a name registered twice raises
    ValueError. As timm's builder does, the registered function records its call: the model it returns gets
    ``config`` = the name and every argument, defaults applied, in signature order, tuples as lists (as JSON gives
    them back), so a constructor only builds the network and ``build_model(**model.config)`` rebuilds it."""
    def add(f: Callable) -> Callable:
        key = name or f.__name__.replace("_", "-")
        if key in MODELS:
            raise ValueError(f"model {key!r} is already registered")
        signature = inspect.signature(f)

        @functools.wraps(f)
        def build(*args, **kwargs) -> GalaxyModel:
            try:
                call = signature.bind(*args, **kwargs)
            except TypeError as e:
                raise TypeError(f"model {key!r}: {e}") from None
            call.apply_defaults()
            model = f(*call.args, **call.kwargs)
            model.config = {"name": key} | {k: list(v) if type(v) is tuple else v for k, v in call.arguments.items()}
            return model

        MODELS[key] = build
        return build

    return add if fn is None else add(fn)


def list_models() -> list[str]:
    """Registered model names, sorted."""
    return sorted(MODELS)


def build_model(name: str, **kwargs) -> GalaxyModel:
    """Build a registered model; ``kwargs`` override its defaults (``output``, ``input_size``, ``fov``, ...)."""
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r}; registered models: {', '.join(list_models())}")
    return MODELS[name](**kwargs)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters (buffers such as BatchNorm running statistics are not counted)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# ------------------------------------------------------------------------------------------------------ output layers

def _tree_tables() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Index tables for :class:`DecisionTreeOutput`.

    ``grid`` (11, W): each question's answer columns, padded with index 37 (a -inf logit, so a softmax gives it 0).
    ``flat`` (37,): where each column sits in the flattened grid. ``chain`` (37, depth): the column itself and every
    ancestor answer above it, padded with index 37 (a constant 1), so that the product along a row is the column's
    cumulative value.
    """
    width = max(s.stop - s.start for s in QUESTION_SLICES)
    grid = torch.full((len(QUESTION_SLICES), width), N_ANSWERS, dtype=torch.long)
    flat = torch.empty(N_ANSWERS, dtype=torch.long)
    question_of = {}
    for k, s in enumerate(QUESTION_SLICES):
        for j, col in enumerate(range(s.start, s.stop)):
            grid[k, j] = col
            flat[col] = k * width + j
            question_of[col] = k
    chains = []
    for col in range(N_ANSWERS):
        chain = [col]
        while (parent := PARENT_INDEX[question_of[chain[-1]]]) is not None:
            chain.append(parent)
        chains.append(chain)
    depth = max(map(len, chains))
    chain = torch.tensor([c + [N_ANSWERS] * (depth - len(c)) for c in chains], dtype=torch.long)
    return grid, flat, chain


class DecisionTreeOutput(nn.Module):
    """Map 37 raw logits to 37 outputs that obey the Galaxy Zoo 2 decision tree.

    Each question's answers go through a softmax (so they sum to 1 given that the question was reached) and are
    then multiplied by the value of the answer that leads to the question, as in the Kaggle labels. The output is
    therefore in [0, 1], the root questions (Q1, Q6) sum to 1, and every other question sums to its parent answer's
    value, whatever the logits. This is the constraint layer of Dieleman, Willett & Dambre 2015 (MNRAS 450, 1441),
    who normalised per question and multiplied by the parent answer.

    It is vectorised with fixed index tables: one softmax over a padded (B, 11, 7) grid of questions and one product
    along each answer's ancestor chain (at most 4 answers deep), with no per-question loop and no in-place writes.
    Logits are computed in float32 even under bf16 autocast, since products of small fractions lose too much in
    bf16. Input (B, 37) of any float dtype; output (B, 37) float32. No parameters.
    """

    def __init__(self):
        super().__init__()
        grid, flat, chain = _tree_tables()
        # Not persistent: derived from tree.py, so they stay out of saved weights but follow .to(device).
        self.register_buffer("grid", grid, persistent=False)
        self.register_buffer("flat", flat, persistent=False)
        self.register_buffer("chain", chain, persistent=False)

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        b = logits.shape[0]
        padded = torch.cat([logits, logits.new_full((b, 1), float("-inf"))], dim=1)
        conditional = padded[:, self.grid].softmax(dim=-1).reshape(b, -1)[:, self.flat]
        with_one = torch.cat([conditional, conditional.new_ones((b, 1))], dim=1)
        return with_one[:, self.chain].prod(dim=-1)


def make_output(output: str) -> nn.Module:
    """The output layer by name: ``'sigmoid'`` (the seed paper), ``'tree'`` (:class:`DecisionTreeOutput`) or
    ``'linear'`` (identity, e.g. for a regression loss on raw values)."""
    if output == "sigmoid":
        return nn.Sigmoid()
    if output == "tree":
        return DecisionTreeOutput()
    if output == "linear":
        return nn.Identity()
    raise ValueError(f"unknown output {output!r}; expected one of {OUTPUTS}")


class Head(nn.Module):
    """Embedding (B, D) -> 37 answers: optional dropout, ``Linear(D, 37)``, then the output layer named by
    ``output``. The linear layer's result is cast to float32 before the output layer so that a sigmoid or the tree
    products are not computed in bf16 under autocast."""

    def __init__(self, embed_dim: int, output: str = "sigmoid", dropout: float = 0.0):
        super().__init__()
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc = nn.Linear(embed_dim, N_ANSWERS)
        self.output = make_output(output)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.output(self.fc(self.drop(z)).float())


# -------------------------------------------------------------------------------------------------------- the model

class GalaxyModel(nn.Module):
    """``features`` (images -> (B, D) embedding) followed by ``head`` (embedding -> (B, 37) answers).

    ``config`` is JSON-serialisable and holds ``name``, ``input_size`` (pixels, the side of the square input),
    ``fov`` (side of the crop as a fraction of the 424 px Kaggle frame), ``output`` and every other constructor
    argument, so that ``build_model(**config)`` rebuilds the architecture; :func:`register_model` fills it in (empty
    for a model built without the registry). ``closed_form`` is False: the model is
    trained by gradient descent (see :class:`MeanModel` for the exception).
    """

    closed_form = False

    def __init__(self, features: nn.Module, head: nn.Module, embed_dim: int, config: dict | None = None):
        super().__init__()
        self.features = features
        self.head = head
        self.embed_dim = embed_dim
        self.config = dict(config or {})
        self.extra: dict = {}  # what training recorded beside the weights (validation RMSE, the cache geometry)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Embeddings (B, embed_dim) of float images (B, 3, input_size, input_size) with values in [0, 1]."""
        return self.features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The 37 answers (B, 37) of float images (B, 3, input_size, input_size) with values in [0, 1]."""
        return self.head(self.features(x))


class _NoFeatures(nn.Module):
    """The mean model's features: a (B, 0) embedding, since it ignores the image."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.new_zeros((x.shape[0], 0))


class _MeanHead(nn.Module):
    """Returns the 37-float buffer ``mean`` for every galaxy; no trainable parameters."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.zeros(N_ANSWERS))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        # A copy rather than an expanded view, so a caller writing into the output cannot change the buffer.
        return self.mean.expand(z.shape[0], -1).clone()


class MeanModel(GalaxyModel):
    """The mean-label baseline: predicts the per-answer training mean for every galaxy.

    Its RMSE is the labels' standard deviation, the floor any image model must beat. It is fitted in closed form
    (``closed_form = True``: a training loop calls :meth:`fit` instead of running SGD). A mean of tree-consistent
    label vectors is itself tree-consistent (the constraints are linear), so it needs no output layer.
    """

    closed_form = True

    @torch.no_grad()
    def fit(self, labels: np.ndarray | torch.Tensor, mask: np.ndarray | torch.Tensor | None = None) -> MeanModel:
        """Set ``mean`` to the per-answer mean of ``labels`` (N, 37) over known entries (``mask`` True; None means
        all known). Masked entries may hold anything, NaN included. Answers with no known entry get 0."""
        labels = torch.as_tensor(labels, dtype=torch.float64).cpu()
        if labels.ndim != 2 or labels.shape[1] != N_ANSWERS:
            raise ValueError(f"labels must be (N, {N_ANSWERS}), got {tuple(labels.shape)}")
        if mask is None:
            known = torch.ones_like(labels, dtype=torch.bool)
        else:
            known = torch.as_tensor(mask, dtype=torch.bool).cpu()
            if known.shape != labels.shape:
                raise ValueError(f"mask shape {tuple(known.shape)} differs from labels shape {tuple(labels.shape)}")
        total = torch.where(known, labels, 0.0).sum(dim=0)
        count = known.sum(dim=0)
        mean = torch.where(count > 0, total / count.clamp(min=1), 0.0)
        self.head.mean.copy_(mean.to(self.head.mean))
        return self


# ---------------------------------------------------------------------------------------------- registered models

@register_model
def mean(*, input_size: int = 69, fov: float = DEFAULT_FOV, output: str = "linear") -> MeanModel:
    """The mean-label baseline (no trainable parameters; fit with :meth:`MeanModel.fit`). ``input_size`` and ``fov``
    are recorded only so that every model's data pipeline reads the same config. Only ``output='linear'``."""
    if output != "linear":
        raise ValueError(f"the mean model predicts label means directly; output must be 'linear', got {output!r}")
    return MeanModel(_NoFeatures(), _MeanHead(), 0)


@register_model
def seed_cnn(*, input_size: int = 69, fov: float = DEFAULT_FOV, output: str = "sigmoid",
             dropout: float = 0.2) -> GalaxyModel:
    """The seed paper's network: two conv(3x3)-ReLU-BatchNorm-maxpool(2) blocks with 32 and 64 channels, dropout,
    a 128-unit ReLU layer, then Linear(128, 37) and a sigmoid. At the default 69 px input (17 px after two pools)
    it has exactly 2,391,973 trainable parameters, with ``output='sigmoid'`` or ``'tree'`` alike."""
    side = input_size // 4
    features = nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(inplace=True), nn.BatchNorm2d(32), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(inplace=True), nn.BatchNorm2d(64), nn.MaxPool2d(2),
        nn.Dropout(dropout), nn.Flatten(),
        nn.Linear(64 * side * side, 128), nn.ReLU(inplace=True),
    )
    return GalaxyModel(features, Head(128, output), 128)


@register_model
def resnet18(*, input_size: int = 69, fov: float = DEFAULT_FOV, output: str = "sigmoid",
             dropout: float = 0.0) -> GalaxyModel:
    """torchvision's ResNet-18 (He et al. 2016), randomly initialised (weights are never downloaded), its ``fc``
    replaced by a 37-answer head on the 512-d pooled embedding: exactly 11,195,493 trainable parameters."""
    from torchvision.models import resnet18 as tv_resnet18  # here only: importing torchvision costs ~1.5 s

    features = tv_resnet18(weights=None)
    features.fc = nn.Identity()
    return GalaxyModel(features, Head(512, output, dropout), 512)


@register_model
def galaxynet(*, input_size: int = 80, fov: float = DEFAULT_FOV, output: str = "tree", width: int = 64,
              depth: tuple[int, ...] | list[int] = (2, 2, 2, 2), dropout: float = 0.0) -> GalaxyModel:
    """The project's default: :class:`GalaxyNetFeatures` (``8 * width``-d embedding, about 11.2 million trainable
    parameters at the default width) with the decision-tree output (Dieleman, Willett & Dambre 2015)."""
    features = GalaxyNetFeatures(width, tuple(depth))
    return GalaxyModel(features, Head(features.embed_dim, output, dropout), features.embed_dim)


# --------------------------------------------------------------------------------------------------------- save/load

def model_state(model: nn.Module, half: bool = False) -> dict[str, torch.Tensor]:
    """Parameters and persistent buffers (BatchNorm running statistics, the mean model's ``mean``) as detached,
    contiguous CPU tensors, ready for safetensors.

    With ``half``, the convolution and linear weights (float tensors of 2 or more dimensions: nearly every byte of a
    network) are stored as float16, which halves the file; biases, BatchNorm parameters and statistics stay float32,
    since a running variance is where float16's 3 significant digits would cost accuracy. Loading casts back to
    float32. float16 rather than bfloat16: trained weights lie well inside its range and it keeps 3 more bits."""
    out = {}
    for k, v in model.state_dict().items():
        v = v.detach().cpu()
        if half and v.is_floating_point() and v.ndim > 1:
            v = v.to(torch.float16)
        out[k] = v.contiguous()
    return out


def save_model(model: GalaxyModel, folder: str | os.PathLike, extra: dict | None = None, half: bool = False) -> Path:
    """Write ``folder/model.safetensors`` (weights and buffers; float16 weights with ``half``, see
    :func:`model_state`) and ``folder/config.json`` (``model.config`` plus ``"format"``, and ``extra`` under
    ``"extra"`` if given, e.g. the validation RMSE). The folder is created if needed; both files are written
    atomically. Returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = {**model.config, "format": FORMAT}
    if extra is not None:
        config["extra"] = extra
    atomic_write_bytes(folder / WEIGHTS_FILE, safetensors_bytes(model_state(model, half),
                                                                metadata={"format": FORMAT}))
    atomic_write_json(folder / CONFIG_FILE, config)
    return folder


PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin", ".pkl", ".pickle")
"""File endings of pickled PyTorch checkpoints, which :func:`refuse_pickle` turns away."""


def refuse_pickle(path: str | os.PathLike) -> None:
    """Raise ValueError, saying why and what to do instead, when ``path`` is a pickled checkpoint (a file ending in
    one of :data:`PICKLE_SUFFIXES`) or a folder (or its ``best/``) that holds such a file and no
    ``model.safetensors``. Does nothing otherwise: a missing model is the caller's FileNotFoundError.

    Unpickling runs whatever code the file names, so a checkpoint offered by someone else could take over the
    machine the moment it is loaded; models load only from safetensors, which holds nothing but tensors. Only names
    are looked at: the file is never opened."""
    path = Path(path)
    if path.is_dir():
        if (path / WEIGHTS_FILE).is_file() or (path / "best" / WEIGHTS_FILE).is_file():
            return
        found = sorted(p for d in (path, path / "best") for p in d.glob("*") if p.suffix.lower() in PICKLE_SUFFIXES)
        if not found:
            return
        path = found[0]
    elif path.suffix.lower() not in PICKLE_SUFFIXES:
        return
    raise ValueError(
        f"{path} is a pickled checkpoint, and galaxy_core loads weights only from {WEIGHTS_FILE} (safetensors): "
        f"unpickling runs any code the file contains. Give a run or checkpoint folder of this project instead "
        f"(`python -m galaxy_core export RUN --out FOLDER` makes a checkpoint of a run), or convert weights you "
        f"trust once, in Python:\n"
        f"    import torch; from galaxy_core.models import registry\n"
        f"    m = registry.build_model(\"galaxynet\")  # the architecture and arguments the weights were trained with\n"
        f"    m.load_state_dict(torch.load({str(path)!r}, weights_only=True)); registry.save_model(m, \"my_model\")")


def load_model_folder(folder: str | os.PathLike, device: str | torch.device = "cpu") -> GalaxyModel:
    """Rebuild a model saved by :func:`save_model` and load its weights (safetensors only, never pickle).

    Returns the model on ``device`` in eval mode. Raises FileNotFoundError naming the missing folder or file, and
    ValueError when config.json is not a galaxy_core model config or the weights do not match the architecture it
    describes (naming missing, unexpected and mis-shaped tensors), when ``model.safetensors`` is not a safetensors
    file, and when ``folder`` is a pickled checkpoint or holds one instead of safetensors (:func:`refuse_pickle`,
    which never opens it, and is asked only when ``model.safetensors`` or ``config.json`` is missing). Float
    tensors saved in another precision (float16 weights of an exported checkpoint) are cast to the model's float32.
    ``"extra"`` is kept as ``model.extra``.
    """
    folder = Path(folder)
    config_path, weights_path = folder / CONFIG_FILE, folder / WEIGHTS_FILE
    for path in (folder, config_path, weights_path):
        if not path.exists():
            # Looked at only where something is missing: a folder with its safetensors and config is no pickle,
            # so a good load does not repeat the look the command line made before any slow work.
            refuse_pickle(folder)
            raise FileNotFoundError(f"no saved model: {path} does not exist")
    config = json.loads(config_path.read_text(encoding="utf-8"))
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        found = config.get("format") if isinstance(config, dict) else None
        raise ValueError(f"{config_path}: format {found!r} is not {FORMAT!r}")
    kwargs = {k: v for k, v in config.items() if k not in ("format", "extra")}
    try:
        model = build_model(**kwargs)
    except (KeyError, TypeError) as e:
        raise ValueError(f"{config_path}: cannot rebuild the model: {e}") from e

    try:
        state = load_file(weights_path, device="cpu")
    except Exception as e:  # noqa: BLE001 - safetensors raises its own error type for a damaged or foreign file
        raise ValueError(f"{weights_path} is not a readable safetensors file ({type(e).__name__}: {e})") from e
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    misshaped = sorted(f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}"
                       for k, v in expected.items() if k in state and state[k].shape != v.shape)
    misshaped += sorted(f"{k} is {state[k].dtype}, not a float" for k, v in expected.items()
                        if k in state and v.is_floating_point() and not state[k].is_floating_point())
    if missing or unexpected or misshaped:
        raise ValueError(f"{weights_path} does not match {config_path} (model {config.get('name')!r}): "
                         f"missing keys {missing}, unexpected keys {unexpected}, wrong shapes {misshaped}")
    model.load_state_dict(state)
    model.extra = config.get("extra") or {}
    return model.to(device).eval()


def input_geometry(model: GalaxyModel) -> tuple[float, int]:
    """(fov, size) of the images to decode for ``model``: fov as a fraction of the 424 px Kaggle frame, size in px;
    those of the cache it was trained on when its config records them, else its own field and input size."""
    d = model.extra.get("data")
    if d:
        return float(d["fov"]), int(d["size"])
    return float(model.config["fov"]), int(model.config["input_size"])
