"""Does the per-galaxy spread mean anything? The views' spread (and an ensemble's, given several models) against
the volunteers' answers on a validation split, as one table.

Not collected by pytest (no ``test_`` prefix). Run from the project folder, on the machine to be measured::

    python -m galaxy_core prepare ../shared/data/gz2-kaggle-96 --source-fov 0.6038 --out /tmp/doubt-cache
    python benchmarks/bench_uncertainty.py --data /tmp/doubt-cache --model checkpoints/default \\
        --model ../ens/runs/ens-seed1 --tta 8 --svg docs/images/uncertainty-error-vs-spread.svg

For each model (``--model``, repeatable; default the shipped checkpoint), on the labelled galaxies that no model
given learnt from (``evaluation.split_of``: a checkpoint's ``galaxies.json``, a run's own split), with ``--tta``
views: the spread of its views (``prediction.predict_cache(..., uncertainty=True)``, nothing stored); the same
views in float32 where this CPU would run bf16 (whether the spread is bf16 rounding); with two or more finished
models, the ensemble's spread across them. A run that has not finished (its ``status.json``) is left out and said
to be pending. Each spread gets ``uncertainty.calibration_report``: Spearman's rank correlation of spread with
the absolute error (pooled over every known galaxy and answer, per galaxy, per answer; beside it the same for
sqrt(v (1 - v)), a "spread" that needs no model, and the spread's correlation with that held fixed), the coverage
at 1 and 2 spreads (68.27 % and 95.45 % if calibrated), and one scale factor fitted on a seeded half of the galaxies
and checked on the other half (overall and per answer). The last row treats sqrt(v (1 - v)) itself as a spread.
``--svg`` draws RMS error against spread in ten equal-count bins (a hand-written SVG, as ``plot_frontier.py``).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from galaxy_core import hardware, tree  # noqa: E402
from galaxy_core.data.prepare import resolve_cache  # noqa: E402
from galaxy_core.models import inference, runs  # noqa: E402
from galaxy_core.predict import evaluation, metrics, modelchoice, prediction, uncertainty  # noqa: E402


def finished(path: str) -> str | None:
    """None when ``path`` is a checkpoint or a finished run, else why it is pending."""
    run = Path(path).parent if Path(path).name == "best" else Path(path)
    if not (run / "status.json").is_file():
        return None
    st = runs.read_status(run)
    if st.get("state") == "finished":
        return None
    return f"{st.get('state')} at epoch {st.get('epoch')}/{st.get('epochs')}"


def report_row(name: str, s: uncertainty.Spread, truth, mask, seed: int, seconds: float | None) -> dict:
    """One row of the table: ``s``'s calibration report in words and numbers (the full report under ``_report``)."""
    r = uncertainty.calibration_report(s.value, s.spread, truth, mask, seed)

    def spread_of(per):
        return f"{np.nanmedian(per):.2f} ({np.nanmin(per):.2f} to {np.nanmax(per):.2f})"

    return {"spread": name, "rmse": metrics.rmse(s.value, truth, mask), "median spread": r["median_spread"],
            "median abs err": r["median_error"],
            "rho pairs (v-only; partial)": f"{r['spearman']:.2f} ({r['spearman_value']:.2f}; "
                                           f"{r['spearman_partial']:.2f})",
            "rho galaxy (v-only; partial)": f"{r['spearman_galaxy']:.2f} ({r['spearman_galaxy_value']:.2f}; "
                                            f"{r['spearman_galaxy_partial']:.2f})",
            "rho per answer, median (range)": spread_of(r["spearman_per_answer"]),
            "v-only per answer": spread_of(r["spearman_per_answer_value"]),
            "partial per answer": spread_of(r["spearman_per_answer_partial"]),
            "in 1 s": r["raw"][1], "in 2 s": r["raw"][2], "scale c": r["scale"],
            "held-out in 1 s / 2 s": f"{r['held_out_raw'][1]:.3f} / {r['held_out_raw'][2]:.3f}",
            "held-out in 1 c s / 2 c s": f"{r['held_out_scaled'][1]:.3f} / {r['held_out_scaled'][2]:.3f}",
            "seconds": seconds, "_report": r}


def svg(curves: dict[str, tuple], path: str) -> None:
    """RMS error against RMS spread per bin for each named spread, with the line error = spread (calibrated)."""
    w, h, left, right, top, bottom = 560, 420, 70, 170, 30, 55
    xmax = max(b["spread"].max() for b, _ in curves.values()) * 1.05
    ymax = max(max(b["rms_error"].max() for b, _ in curves.values()), xmax) * 1.05

    def px(x):
        return left + (w - left - right) * x / xmax

    def py(y):
        return top + (h - top - bottom) * (1 - y / ymax)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" '
           f'font-size="12"><rect width="{w}" height="{h}" fill="white"/>',
           f'<line x1="{px(0)}" y1="{py(0)}" x2="{px(min(xmax, ymax))}" y2="{py(min(xmax, ymax))}" stroke="#999" '
           f'stroke-dasharray="4 3"/><text x="{px(min(xmax, ymax))}" y="{py(min(xmax, ymax)) - 8}" fill="#666" '
           f'text-anchor="end">error = spread (calibrated)</text>']
    for k in range(6):
        x, y = xmax * k / 5, ymax * k / 5
        out.append(f'<text x="{px(x):.1f}" y="{h - bottom + 16}" text-anchor="middle">{x:.3f}</text>'
                   f'<text x="{left - 6}" y="{py(y) + 4:.1f}" text-anchor="end">{y:.3f}</text>')
    out.append(f'<line x1="{left}" y1="{py(0)}" x2="{w - right}" y2="{py(0)}" stroke="black"/>'
               f'<line x1="{left}" y1="{top}" x2="{left}" y2="{py(0)}" stroke="black"/>'
               f'<text x="{(left + w - right) / 2}" y="{h - 12}" text-anchor="middle">RMS spread in the bin '
               f'(vote fraction)</text><text x="16" y="{(top + h - bottom) / 2}" text-anchor="middle" '
               f'transform="rotate(-90 16 {(top + h - bottom) / 2})">RMS error against the volunteers</text>')
    for i, (name, (b, colour)) in enumerate(curves.items()):
        pts = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in zip(b["spread"], b["rms_error"]))
        out.append(f'<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="2"/>')
        out += [f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{colour}"/>'
                for x, y in zip(b["spread"], b["rms_error"])]
        out.append(f'<text x="{w - right + 10}" y="{top + 16 + 18 * i}" fill="{colour}">{name}</text>')
    out.append("</svg>\n")
    Path(path).write_text("\n".join(out))


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        return platform.machine()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="/tmp/doubt-cache", help="prepared cache of gz2-kaggle-96 (or its folder)")
    p.add_argument("--source-fov", type=float, default=0.6038)
    p.add_argument("--model", action="append", default=None, help="run or checkpoint (repeatable)")
    p.add_argument("--tta", type=int, default=8)
    p.add_argument("--seed", type=int, default=0, help="seed of the halves the scale factor is fitted and checked on")
    p.add_argument("--no-fp32", action="store_true", help="skip the float32 views")
    p.add_argument("--svg", default=None)
    args = p.parse_args()
    torch_threads = os.cpu_count()
    cache = resolve_cache(args.data, source_fov=args.source_fov)
    wanted = args.model or ["checkpoints/default"]
    pending = {m: why for m in wanted if (why := finished(m))}
    given = [m for m in wanted if m not in pending]
    rows = None
    for m in given:
        r, _ = evaluation.split_of(m, cache, "val")
        rows = r if rows is None else np.intersect1d(rows, r)
    truth, mask = cache.labels[rows], cache.mask[rows]
    device = hardware.pick_device("cpu")
    bf16 = hardware.fast_math(device)[0]
    table, members, curves = [], [], {}
    colours = iter(["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"])
    for m in given:
        model = modelchoice.load_model(m, device)
        t0 = time.perf_counter()
        s = prediction.predict_cache(model, cache, rows, tta=args.tta, store=False, uncertainty=True)
        dt = time.perf_counter() - t0
        members.append(s.value)
        name = f"views {Path(m).name}" + (" (bf16)" if bf16 else "")
        table.append(report_row(name, s, truth, mask, args.seed, dt))
        curves[name] = (uncertainty.error_by_spread(s.value, s.spread, truth, mask), next(colours))
        if bf16 and not args.no_fp32:
            fov, size = float(model.config["fov"]), int(model.config["input_size"])
            t0 = time.perf_counter()
            v = inference.infer(model, cache.images, fov / cache.fov, size, tta=args.tta, indices=rows, views=True,
                                amp=False)
            table.append(report_row(f"views {Path(m).name} (float32)", uncertainty.from_views(v), truth, mask,
                                    args.seed, time.perf_counter() - t0))
    # The "spread" that needs no model: sqrt(v (1 - v)) of the first model's value, scaled like the others.
    v = members[0]
    table.append(report_row("value only: sqrt(v(1-v))", uncertainty.Spread(v, np.sqrt(v * (1 - v)), "value", 1, 0),
                            truth, mask, args.seed, None))
    if len(members) >= 2:
        s = uncertainty.from_members(members, args.tta)
        name = f"ensemble of {len(members)}"
        table.append(report_row(name, s, truth, mask, args.seed, None))
        curves[name] = (uncertainty.error_by_spread(s.value, s.spread, truth, mask), next(colours))

    print(f"# per-galaxy spread on {len(rows):,} validation galaxies of {cache.path} ({int(mask.sum()):,} known "
          f"answers), {args.tta} views; {cpu_name()}, {torch_threads} cores, "
          f"bf16 {'on' if bf16 else 'off'}")
    for m, why in pending.items():
        print(f"# {m}: pending ({why}), left out")
    cols = [c for c in table[0] if not c.startswith("_")]
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in table:
        print("| " + " | ".join(_fmt(r[c]) for c in cols) + " |")
    shown = [r for r in table if "float32" not in r["spread"] and not r["spread"].startswith("value")]
    print("\n# per answer: Spearman's rho of spread against |error| (v-only: of sqrt(v(1-v)); partial: the spread's "
          "with sqrt(v(1-v)) held fixed); held-out coverage at 1 and 2 scaled spreads")
    print("| answer | n known | " + " | ".join(f"rho {r['spread']} | v-only | partial | in 1 c s | in 2 c s"
                                             for r in shown) + " |")
    print("|---|---:|" + "---:|---:|---:|---:|---:|" * len(shown))
    for j, c in enumerate(tree.COLUMNS):
        cells = []
        for r in shown:
            rep = r["_report"]
            cells += [_fmt(rep[k][j]) for k in ("spearman_per_answer", "spearman_per_answer_value",
                                                "spearman_per_answer_partial")]
            cells += [_fmt(rep["held_out_scaled_per_answer"][n][j]) for n in (1, 2)]
        print(f"| {c} | {int(mask[:, j].sum())} | " + " | ".join(cells) + " |")
    for name, (b, _) in curves.items():
        print(f"\n# RMS error against RMS spread, {name}, ten equal-count bins of (galaxy, answer) pairs")
        print(b.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    if args.svg:
        svg(curves, args.svg)
        print(f"\n# plot written to {args.svg}")


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return "nan" if v != v else (f"{v:.1f}" if abs(v) >= 10 else f"{v:.4f}" if abs(v) < 0.1 else f"{v:.3f}")
    return str(v)


if __name__ == "__main__":
    main()
