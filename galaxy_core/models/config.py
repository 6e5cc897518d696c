"""Training settings: the ``TrainConfig`` dataclass that every run saves into its folder, and the recipes
(per-model defaults, on a GPU and on a CPU) that :func:`config_for` starts from.

It imports only ``hardware`` (for the device a run will use), so every stage after ``hardware`` may import it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from galaxy_core.hardware import pick_device


@dataclass
class TrainConfig:
    """Everything that defines a training run. Saved as ``config.json`` in the run folder.

    ``data`` is a prepared cache or a data folder (prepared on first use with the default field and size).
    ``model_args`` go to the model's constructor (e.g. ``{"width": 32, "output": "tree"}``).
    ``scheduler``: ``plateau`` (ReduceLROnPlateau on validation RMSE, as the seed paper), ``onecycle`` (warm up over
    ``warmup`` of the steps from lr/25 to lr, then cosine down to ~0; Smith & Topin 2019), ``cosine`` (linear warm-up
    over ``warmup``, then cosine to 0) or ``constant``; ``lr_floor`` (a fraction of ``lr``) is where ``onecycle`` and
    ``cosine`` end instead of ~0, so that with ``ema`` the last epochs' weights, still moving, are averaged (the
    constant-rate tail of stochastic weight averaging; Izmailov et al. 2018). ``partial``: also train on partially
    labelled galaxies with a masked loss. ``val_fraction``/``split_seed`` choose the validation galaxies (see
    ``cache.make_split``); None keeps the split stored in the cache (by default 10 %, seed 0).
    ``tta``: dihedral views averaged for the final validation figure (1-8). ``max_train``: use at most this many
    training galaxies (for quick runs). ``device``: ``auto`` takes CUDA when there is one.
    ``ema``: decay per step of an exponential moving average of the weights (0 = off; 0.999 averages over about the
    last 1,000 steps); validation, the best checkpoint and the final figures then use the averaged weights.
    ``teacher``: run folders (or exported checkpoints that record their training galaxies) whose models, averaged
    over ``teacher_tta`` views and over the models, give soft targets for every answer no volunteer gave: the
    unknown answers of partially labelled training galaxies and all 37 of unlabelled ones (the cache's own and those
    in ``unlabelled``, a cache or data folder prepared at the same field and size). A teacher target weighs
    ``teacher_weight`` times a volunteer answer in the loss.
    ``sizes``: progressive resizing. The epochs are split into ``len(sizes)`` equal consecutive stages, trained at
    these input sizes (px) in turn; the last must be the model's ``input_size``, and only epochs at that size can
    become the best checkpoint (a network tested at another size than it last trained at is far worse: 0.084 ->
    0.128 for the 64 px CPU model tested at 72 px; Touvron et al. 2019, FixRes). An epoch at ``s`` px costs about
    ``(s / input_size)**2`` of a full-size one, so early small stages buy epochs (Tan & Le 2021, EfficientNetV2).
    Empty (the default) trains every epoch at ``input_size``.
    ``compile``: ``torch.compile`` the model for training, with ``compile_mode`` (``default``, ``reduce-overhead``
    for CUDA graphs, ``max-autotune``). ``amp``: bf16 autocast where the hardware multiplies bf16 natively (CUDA,
    and CPUs with AVX512-BF16 or AMX: see ``hardware.fast_math``); False keeps float32 everywhere.
    ``memory_gb``: most GiB the training images may take on the device; a larger training set stays in the cache's
    memory map and is read batch by batch (out-of-core training: on a GPU by a thread, ahead of the steps). None:
    half the free GPU memory, 4 GiB on a CPU.
    """

    data: str = ""
    model: str = "galaxynet"
    model_args: dict = field(default_factory=dict)
    source_fov: float | None = None
    out: str = "runs"
    name: str = ""
    epochs: int = 30
    batch_size: int = 128
    optimizer: str = "adamw"
    lr: float = 2e-3
    weight_decay: float = 0.05
    scheduler: str = "onecycle"
    warmup: float = 0.3
    lr_floor: float = 0.0
    augment: bool = True
    partial: bool = True
    val_fraction: float | None = None
    split_seed: int | None = None
    seed: int = 0
    tta: int = 8
    sizes: list[int] = field(default_factory=list)
    max_train: int | None = None
    device: str = "auto"
    amp: bool = True
    compile: bool = False
    compile_mode: str = "default"
    ema: float = 0.0
    teacher: list[str] = field(default_factory=list)
    unlabelled: str = ""
    teacher_weight: float = 1.0
    teacher_tta: int = 8
    memory_gb: float | None = None

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown training setting(s) {sorted(unknown)}; known: {sorted(known)}")
        return cls(**d)


RECIPES: dict[str, dict[str, Any]] = {
    # The seed paper's settings for its two models (Adam at 1e-4 for 20 epochs; no augmentation).
    "mean": dict(epochs=1, augment=False, tta=1),
    "seed-cnn": dict(epochs=20, batch_size=64, optimizer="adam", lr=1e-4, weight_decay=0.0, scheduler="plateau",
                     augment=False, tta=1),
    "resnet18": dict(epochs=20, batch_size=64, optimizer="adam", lr=1e-3, weight_decay=0.0, scheduler="plateau",
                     augment=False, tta=1),
    # 150 epochs rather than 60: 0.082 against 0.089 on the 96 px pack's validation split (on one H100).
    "galaxynet": dict(epochs=150, batch_size=256, optimizer="adamw", lr=3e-3, weight_decay=0.05,
                      scheduler="onecycle", augment=True, tta=8),
}
"""Per-model default settings, applied by :func:`config_for` under the user's own."""


CPU_RECIPES: dict[str, dict[str, Any]] = {
    # The most accurate galaxynet measured on a 2-core CPU (every recipe tried: docs/cpu-training.md). Half the
    # width is a sixth of the full net's FLOPs; weight decay 0.2 rather than 0.05 because at 0.05 it overfitted;
    # 72 px rather than 64 for 0.0007 of RMSE; ending the one-cycle at a tenth of its peak with a weight average
    # over the last ~2,000 steps (lr_floor, ema: stochastic weight averaging) gave the last 0.0002 of RMSE.
    "galaxynet": dict(model_args={"width": 32, "input_size": 72}, epochs=150, batch_size=128, optimizer="adamw",
                      lr=3e-3, weight_decay=0.2, scheduler="onecycle", lr_floor=0.1, ema=0.9995, augment=True,
                      tta=8),
}
"""Recipes that replace ``RECIPES`` when the run's device is a CPU: what a laptop can train well in well under an
hour and a half (docs/cpu-training.md has the measurements behind them)."""


def recipe_for(model: str, device: str = "auto") -> dict[str, Any]:
    """The recipe :func:`config_for` starts from: ``CPU_RECIPES[model]`` when ``device`` is (or ``auto`` resolves
    to) a CPU and the model has one, else ``RECIPES[model]`` (empty for a model without a recipe)."""
    if model in CPU_RECIPES and pick_device(device).type == "cpu":
        return dict(CPU_RECIPES[model])
    return dict(RECIPES.get(model, {}))


def config_for(model: str, **overrides: Any) -> TrainConfig:
    """A TrainConfig with the model's recipe for its device (:func:`recipe_for`; ``overrides["device"]``, default
    ``auto``) and then ``overrides`` applied (None values ignored). ``model_args`` are merged key by key over the
    recipe's, so ``model_args={"output": "sigmoid"}`` keeps the CPU recipe's width and input size."""
    overrides = {k: v for k, v in overrides.items() if v is not None}
    d = {"model": model, **recipe_for(model, overrides.get("device", "auto"))}
    if "model_args" in overrides:
        overrides["model_args"] = {**d.get("model_args", {}), **overrides["model_args"]}
    d.update(overrides)
    return TrainConfig.from_dict(d)


def recipe_differences(trained: dict[str, Any], model: str, device: str = "auto") -> list[str]:
    """The settings in which a run's saved training settings ``trained`` (a TrainConfig as a dict, e.g. a
    checkpoint's ``train_config``) depart from ``model``'s recipe on ``device`` (:func:`recipe_for`): the names of
    the TrainConfig fields the recipe sets, and ``model``, whose values differ, in field order; empty when the run
    followed the recipe. A field ``trained`` lacks counts as different (an older run may have used another default),
    and the fields the recipe leaves alone (data, epochs of a recipe without epochs, the run's name ...) are not
    compared."""
    recipe = config_for(model, device=device)
    compared = {"model", *recipe_for(model, device)}
    return [f.name for f in fields(TrainConfig)
            if f.name in compared and trained.get(f.name) != getattr(recipe, f.name)]
