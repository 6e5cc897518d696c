"""Training throughput of a model under several settings, through the real training loop, as one table.

Not collected by pytest (no ``test_`` prefix). Run from the project folder, on the machine to be measured, with
nothing else running::

    python benchmarks/bench_training.py CACHE [--model galaxynet] [--model-arg width=32 --model-arg input_size=72]
        [--batch 128] [--vary batch=64,256 compile=default precision=fp32 layout=contiguous threads=1]
        [--epochs 2] [--max-train 2048] [--out runs/bench-speed]

The first row is the base setting (the model's recipe for this device; bf16 and channels-last where
``hardware.fast_math`` takes them); each ``--vary`` item adds rows that change one setting of the base. Every row is a
short ``loop.train`` run (the same loop, staging, augmentation and optimiser as a real run), so what it reports
is what a run gets: images/s is the median over the epochs after the first (which holds torch.compile's
compilation and oneDNN's first-call set-up; validation is not counted). A second figure, "model step", times the
network's forward and backward pass alone on random input of the same batch, to show how much the loop around it
costs.

FLOPs per training image are 3x the forward pass (the backward pass costs about twice the forward), counted by
``torch.utils.flop_counter``: convolutions and matrix products only, which is nearly all of the arithmetic. On a
CPU the table also gives the achieved GFLOP/s as a fraction of the CPU's peak, ``cores x clock x FLOP/cycle``:
32 FLOP/cycle for float32 with AVX2 and two FMA units (the issue's yardstick), and the peak of the instructions
actually used (64 for AVX-512 float32 on cores with two full-width FMA units, 128 for AVX512-BF16 dot products).
The clock is measured, not read from ``lscpu`` (a virtual machine shows only its nominal TSC rate there): a chain of
dependent integer additions, one cycle each on every x86-64 core of the last decade, is timed through a small C
function compiled with ``cc``; without ``cc``, ``/proc/cpuinfo``'s MHz is used and the table says so.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from galaxy_core import hardware  # noqa: E402
from galaxy_core.data.prepare import resolve_cache  # noqa: E402
from galaxy_core.models import config, registry, runs  # noqa: E402
from galaxy_core.training import loop  # noqa: E402

SPIN_C = r"""
long spin(long n) {
    long x = 0;
    for (long i = 0; i < n; i++) {
        __asm__ volatile("add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\t"
                         "add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0" : "+r"(x));
    }
    return x;
}
"""


def measure_clock_ghz() -> tuple[float, str]:
    """The core clock in GHz and how it was found: 8 dependent one-cycle additions per loop turn, timed (best of
    5 runs of 0.1-0.3 s), else the MHz that ``/proc/cpuinfo`` states."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc and os.uname().machine in ("x86_64", "AMD64"):
        with tempfile.TemporaryDirectory() as tmp:
            src, lib = Path(tmp, "spin.c"), Path(tmp, "spin.so")
            src.write_text(SPIN_C)
            if subprocess.run([cc, "-O2", "-shared", "-fPIC", "-o", str(lib), str(src)]).returncode == 0:
                spin = ctypes.CDLL(str(lib)).spin
                spin.argtypes, spin.restype = [ctypes.c_long], ctypes.c_long
                n, best = 50_000_000, float("inf")
                for _ in range(5):
                    t0 = time.perf_counter()
                    spin(n)
                    best = min(best, time.perf_counter() - t0)
                return 8 * n / best / 1e9, "measured: a chain of dependent 1-cycle adds"
    try:
        mhz = next(float(line.split(":")[1]) for line in open("/proc/cpuinfo") if line.startswith("cpu MHz"))
        return mhz / 1e3, "/proc/cpuinfo (nominal)"
    except (OSError, StopIteration):
        return float("nan"), "unknown"


def cpu_flags() -> set[str]:
    try:
        return set(next(line.split(":", 1)[1].split() for line in open("/proc/cpuinfo") if line.startswith("flags")))
    except (OSError, StopIteration):
        return set()


def training_flops_per_image(model_name: str, model_args: dict) -> float:
    """Forward FLOPs of one image times 3 (the backward pass costs about twice the forward)."""
    from torch.utils.flop_counter import FlopCounterMode

    model = registry.build_model(model_name, **model_args).eval()
    s = int(model.config["input_size"])
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.rand(2, 3, s, s))
    return 3 * counter.get_total_flops() / 2


def model_step_images_per_s(model_name: str, model_args: dict, batch: int, bf16: bool, channels_last: bool,
                            steps: int = 8) -> float:
    """Forward + backward + AdamW step of the bare network on random input: the median of ``steps`` after 2."""
    model = registry.build_model(model_name, **model_args).train()
    s = int(model.config["input_size"])
    x, y = torch.rand(batch, 3, s, s), torch.rand(batch, 37)
    if channels_last:
        model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    times = []
    for _ in range(steps + 2):
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            pred = model(x)
        loss = ((pred.float() - y) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    return batch / float(np.median(times[2:]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("cache", help="a prepared cache (or a data folder)")
    p.add_argument("--model", default="galaxynet")
    p.add_argument("--model-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="over the recipe's model_args (on a CPU: width 32, input_size 72)")
    p.add_argument("--batch", type=int, default=None, help="base batch size (default: the recipe's)")
    p.add_argument("--vary", nargs="*", default=["batch=64,256", "compile=default", "precision=fp32",
                                                 "layout=contiguous", "threads=1"],
                   help="settings to change one at a time: batch=..., compile=default|reduce-overhead|max-autotune, "
                        "precision=fp32|bf16, layout=contiguous|channels_last, threads=N, "
                        "staging=resident|stream (stream: the images stay in the memory map, read ahead by a thread)")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--max-train", type=int, default=2048, help="training galaxies per epoch (default 2,048)")
    p.add_argument("--source-fov", type=float, default=None)
    p.add_argument("--device", default="auto")
    p.add_argument("--out", default=f"runs/bench-speed-{time.strftime('%Y%m%d-%H%M%S')}")
    args = p.parse_args()

    user_args = {k: json.loads(v) for k, v in (kv.split("=", 1) for kv in args.model_arg)}
    cache = resolve_cache(args.cache, source_fov=args.source_fov)
    device = hardware.pick_device(args.device)
    base_cfg = config.config_for(args.model, data=str(cache.path), device=args.device, model_args=user_args)
    model_args = base_cfg.model_args
    flops = training_flops_per_image(args.model, model_args)
    bf16, channels_last = hardware.fast_math(device)
    threads = torch.get_num_threads()
    base = {"batch": args.batch or base_cfg.batch_size, "compile": "none", "precision": "bf16" if bf16 else "fp32",
            "layout": "channels_last" if channels_last else "contiguous", "threads": threads, "staging": "resident"}
    settings = [dict(base)]
    for item in args.vary:
        key, values = item.split("=", 1)
        if key not in base:
            sys.exit(f"unknown setting {key!r} in --vary; use one of {sorted(base)}")
        for v in values.split(","):
            s = {**base, key: int(v) if key in ("batch", "threads") else v}
            if s not in settings:
                settings.append(s)

    real_fast_math = hardware.fast_math
    rows = []
    for s in settings:
        name = "-".join(f"{k}{v}" for k, v in s.items()).replace("_", "")
        shutil.rmtree(Path(args.out) / name, ignore_errors=True)
        torch.set_num_threads(s["threads"])
        use_cl = s["layout"] == "channels_last"
        hardware.fast_math = lambda dev, amp=True, _cl=use_cl: (real_fast_math(dev, amp)[0], _cl)
        cfg = config.config_for(args.model, data=str(cache.path), model_args=model_args, out=args.out, name=name,
                                epochs=args.epochs, batch_size=s["batch"], tta=1, device=args.device,
                                max_train=args.max_train, amp=s["precision"] == "bf16",
                                compile=s["compile"] != "none",
                                compile_mode=s["compile"] if s["compile"] != "none" else "default",
                                memory_gb=0 if s["staging"] == "stream" else None)
        try:
            run = loop.train(cfg)
        finally:
            hardware.fast_math = real_fast_math
        metrics = runs.read_metrics(run)
        ips = float(np.median([r["images_per_s"] for r in metrics[1:]] or [metrics[0]["images_per_s"]]))
        bare = (model_step_images_per_s(args.model, model_args, s["batch"], s["precision"] == "bf16", use_cl)
                if device.type == "cpu" and s["compile"] == "none" else float("nan"))
        rows.append({**s, "images_per_s": ips, "bare": bare, "first_epoch_s": metrics[0]["seconds"]})
        print(f"  {name}: {ips:,.0f} images/s (model step alone {bare:,.0f})", file=sys.stderr, flush=True)
    torch.set_num_threads(threads)

    what = f"{args.model} {model_args}"
    if device.type == "cuda":
        print(f"training throughput of {what} on {torch.cuda.get_device_name()}, {time.strftime('%Y-%m-%d')}; "
              f"{flops / 1e9:.3f} GFLOP per training image")
        print("| batch | compile | precision | layout | staging | images/s | TFLOP/s | first epoch s |")
        print("| ---: | --- | --- | --- | --- | ---: | ---: | ---: |")
        for r in rows:
            print(f"| {r['batch']} | {r['compile']} | {r['precision']} | {r['layout']} | {r['staging']} | "
                  f"{r['images_per_s']:,.0f} | "
                  f"{r['images_per_s'] * flops / 1e12:.1f} | {r['first_epoch_s']:.1f} |")
        return
    ghz, how = measure_clock_ghz()
    cores = os.cpu_count() or 1
    flags = cpu_flags()
    fp32_cycle = 64 if "avx512f" in flags else 32
    bf16_cycle = 2 * fp32_cycle if {"avx512_bf16", "amx_bf16"} & flags else fp32_cycle
    avx2_peak = cores * ghz * 32
    print(f"training throughput of {what} on {cores} CPU cores at {ghz:.2f} GHz ({how}), "
          f"{time.strftime('%Y-%m-%d')}; {flops / 1e9:.3f} GFLOP per training image; {args.max_train:,} galaxies "
          f"per epoch, {args.epochs} epochs. Peaks: {avx2_peak:,.0f} GFLOP/s (float32, AVX2, 32 FLOP/cycle), "
          f"{cores * ghz * fp32_cycle:,.0f} (float32, {fp32_cycle} FLOP/cycle), "
          f"{cores * ghz * bf16_cycle:,.0f} (bf16, {bf16_cycle} FLOP/cycle)")
    print("| batch | compile | precision | layout | threads | staging | images/s | GFLOP/s | of AVX2 fp32 peak | "
          "of this precision's peak | model step alone, images/s | first epoch s |")
    print("| ---: | --- | --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        gflops = r["images_per_s"] * flops / 1e9
        peak = r["threads"] * ghz * (bf16_cycle if r["precision"] == "bf16" else fp32_cycle)
        print(f"| {r['batch']} | {r['compile']} | {r['precision']} | {r['layout']} | {r['threads']} | {r['staging']} | "
              f"{r['images_per_s']:,.0f} | {gflops:,.0f} | {gflops / (r['threads'] * ghz * 32):.0%} | "
              f"{gflops / peak:.0%} | {r['bare']:,.0f} | {r['first_epoch_s']:.1f} |".replace("| nan |", "| - |"))


if __name__ == "__main__":
    main()
