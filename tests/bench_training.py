"""Training throughput of a model under several settings, through the real training loop, as one table.

Not collected by pytest (no ``test_`` prefix). Run from the project folder, on the machine to be measured::

    python tests/bench_training.py CACHE [--model galaxynet] [--batch 512,1024] [--compile none,default]
        [--epochs 4] [--out runs/bench-speed]

Each setting is a short ``training.train`` run (the same loop, staging, augmentation and optimiser as a real run),
so what it reports is what a run gets. Images/s is the median over the epochs after the first (which holds
cuDNN's algorithm search and torch.compile's compilation); the table also gives the model's training FLOPs per
image (3x the forward pass, counted by ``torch.utils.flop_counter``), the compute rate that implies, and the peak
GPU memory. Validation after every epoch is not counted in the epoch's seconds.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from galaxy_core import data, models, training  # noqa: E402


def training_flops_per_image(model_name: str, model_args: dict) -> float:
    """Forward FLOPs of one image times 3 (the backward pass costs about twice the forward)."""
    from torch.utils.flop_counter import FlopCounterMode

    model = models.build_model(model_name, **model_args).eval()
    s = int(model.config["input_size"])
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.rand(2, 3, s, s))
    return 3 * counter.get_total_flops() / 2


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("cache", help="a prepared cache (or a data folder)")
    p.add_argument("--model", default="galaxynet")
    p.add_argument("--model-arg", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--batch", default="512,1024", help="comma-separated batch sizes")
    p.add_argument("--compile", default="none,default",
                   help="comma-separated: none, or a torch.compile mode (default, reduce-overhead, max-autotune)")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--max-train", type=int, default=None, help="train on at most this many galaxies (dry runs)")
    p.add_argument("--source-fov", type=float, default=None)
    p.add_argument("--device", default="auto")
    p.add_argument("--out", default=f"runs/bench-speed-{time.strftime('%Y%m%d-%H%M%S')}")
    args = p.parse_args()

    import json

    model_args = {k: json.loads(v) for k, v in (kv.split("=", 1) for kv in args.model_arg)}
    cache = data.resolve_cache(args.cache, source_fov=args.source_fov)
    flops = training_flops_per_image(args.model, model_args)
    device = training.pick_device(args.device)
    card = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    rows = []
    for mode in args.compile.split(","):
        for bs in (int(b) for b in args.batch.split(",")):
            name = f"{args.model}-bs{bs}-{mode}"
            shutil.rmtree(Path(args.out) / name, ignore_errors=True)
            cfg = training.config_for(args.model, data=str(cache.path), model_args=model_args, out=args.out,
                                      name=name, epochs=args.epochs, batch_size=bs, tta=1, device=args.device,
                                      max_train=args.max_train,
                                      compile=mode != "none", compile_mode=mode if mode != "none" else "default")
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            t0 = time.perf_counter()
            run = training.train(cfg)
            wall = time.perf_counter() - t0
            metrics = training.read_metrics(run)
            speeds = [r["images_per_s"] for r in metrics[1:]] or [metrics[0]["images_per_s"]]
            ips = float(np.median(speeds))
            rows.append({"batch": bs, "compile": mode, "images_per_s": ips,
                         "tflops": ips * flops / 1e12, "first_epoch_s": metrics[0]["seconds"],
                         "wall_s": wall, "peak_gib": torch.cuda.max_memory_allocated() / 2**30
                         if device.type == "cuda" else float("nan")})
            print(f"  {name}: {ips:,.0f} images/s", file=sys.stderr, flush=True)

    print(f"training throughput of {args.model} {model_args or ''} at {cache.size} px cache, {len(cache):,} galaxies, "
          f"on {card}, {time.strftime('%Y-%m-%d')}; {flops / 1e9:.2f} GFLOP per training image")
    print("| batch | compile | images/s | TFLOP/s | first epoch s | wall s | peak GiB |")
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['batch']} | {r['compile']} | {r['images_per_s']:,.0f} | {r['tflops']:.1f} | "
              f"{r['first_epoch_s']:.1f} | {r['wall_s']:.1f} | {r['peak_gib']:.1f} |")


if __name__ == "__main__":
    main()
