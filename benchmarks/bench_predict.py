"""Prediction throughput from JPEG files, decoding included, as one table.

Not collected by pytest (no ``test_`` prefix). Run from the project folder, on the machine to be measured::

    python benchmarks/bench_predict.py [--model RUN_OR_CHECKPOINT] [--originals DIR] [--pack DIR] [--copies 20]

Two inputs, each timed end to end with ``prediction.predict_paths`` (a pool of decoding processes on every core
feeding batched inference on the GPU, or the CPU) and with decoding alone (``images.decode_images``):

- the 424 px originals of ``../shared/data/gz2-kaggle-424-sample`` (300 galaxies), each file copied ``--copies``
  times under new names into a temporary folder, so that the run is long enough to time;
- a 96 px pack (``../shared/data/gz2-kaggle-96``), whose images show the central 256 px of the frame.

Without ``--model`` the shipped checkpoint is used, else an untrained ``galaxynet`` (the speed does not depend on
the weights; the table says which).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from galaxy_core import hardware  # noqa: E402
from galaxy_core.data import images  # noqa: E402
from galaxy_core.models import registry  # noqa: E402
from galaxy_core.predict import modelchoice, prediction  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"


def _model(path: str | None, device: torch.device) -> tuple[registry.GalaxyModel, str]:
    if path is not None:
        return modelchoice.load_model(path, device), path
    if modelchoice.default_checkpoint() is not None:
        return modelchoice.load_model(None, device), str(modelchoice.default_checkpoint())
    return registry.build_model("galaxynet").to(device).eval(), "untrained galaxynet (speed only)"


def _time(fn) -> float:
    t0 = time.perf_counter()
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None)
    p.add_argument("--originals", default=str(SHARED / "gz2-kaggle-424-sample"))
    p.add_argument("--pack", default=str(SHARED / "gz2-kaggle-96"))
    p.add_argument("--copies", type=int, default=20, help="copies of each original (default 20: 6,000 files)")
    p.add_argument("--tta", default="1,8")
    p.add_argument("--device", default="auto")
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--limit", type=int, default=None, help="at most this many images of each input (dry runs)")
    args = p.parse_args()

    device = hardware.pick_device(args.device)
    model, model_name = _model(args.model, device)
    fov, size = registry.input_geometry(model)
    card = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    inputs = []
    tmp = Path(tempfile.mkdtemp(prefix="galaxy-bench-predict-"))
    try:
        originals = prediction.image_paths(args.originals) if Path(args.originals).is_dir() else []
        if originals:
            copies = []
            for k in range(args.copies):
                for src in originals:
                    dst = tmp / f"{k}{src.stem}{src.suffix}"
                    shutil.copyfile(src, dst)
                    copies.append(dst)
            inputs.append(("424 px originals", copies[:args.limit], 1.0))
        if Path(args.pack).is_dir():
            inputs.append(("96 px pack", prediction.image_paths(args.pack)[:args.limit], 256 / 424))
        if not inputs:
            sys.exit("no input images: give --originals or --pack")

        # Warm up the device, cuDNN and the pool start-up path once, on a few images.
        prediction.predict_paths(model, inputs[0][1][:64], inputs[0][2], workers=args.workers)
        rows = []
        for name, paths, src_fov in inputs:
            decode = _time(lambda: sum(1 for _ in images.decode_images(paths, fov / src_fov, size, args.workers)))
            rows.append((name, len(paths), "decode only", len(paths) / decode))
            for tta in (int(t) for t in args.tta.split(",")):
                secs = _time(lambda: prediction.predict_paths(model, paths, src_fov, tta=tta, workers=args.workers))
                rows.append((name, len(paths), f"decode + predict, {tta} view(s)", len(paths) / secs))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    import os

    print(f"prediction from JPEG files with {model_name} ({size} px from {fov:.3f} of the frame) on {card}, "
          f"{args.workers or os.cpu_count()} decoding processes, {time.strftime('%Y-%m-%d')}")
    print("| input | images | what | images/s |")
    print("| --- | ---: | --- | ---: |")
    for name, n, what, ips in rows:
        print(f"| {name} | {n:,} | {what} | {ips:,.0f} |")


if __name__ == "__main__":
    main()
