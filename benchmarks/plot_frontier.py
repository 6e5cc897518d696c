"""The plot (docs/cpu-training.md) of validation RMSE against training minutes on a CPU, as a self-contained SVG.

Not collected by pytest (no ``test_`` prefix). Run from the project folder::

    python benchmarks/plot_frontier.py checkpoints/frontier.csv checkpoints/frontier.svg

The CSV has one measured run a row: ``recipe`` (the label), ``minutes`` (training wall time on the CPU),
``val_rmse_tta8`` (validation RMSE with 8-view averaging, on the fixed split of gz2-kaggle-96) and ``note``. Plain
SVG, written by hand, because the project's plotting library (plotly) needs a browser engine to write images.
"""

from __future__ import annotations

import csv
import sys
from html import escape
from pathlib import Path

W, H = 1040, 420
LEFT, RIGHT, TOP, BOTTOM = 70, 480, 30, 55


def svg(rows: list[dict]) -> str:
    xs = [float(r["minutes"]) for r in rows]
    ys = [float(r["val_rmse_tta8"]) for r in rows]
    x_max = max(10.0, 10 * (int(max(xs)) // 10 + 1))
    y_lo, y_hi = 0.08, max(0.13, round(max(ys) + 0.005, 2))

    def px(x: float) -> float:
        return LEFT + (W - LEFT - RIGHT) * x / x_max

    def py(y: float) -> float:
        return TOP + (H - TOP - BOTTOM) * (y_hi - y) / (y_hi - y_lo)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" '
           f'font-size="12"><rect width="{W}" height="{H}" fill="white"/>']
    for k in range(0, int(x_max) + 1, 10):
        out.append(f'<line x1="{px(k):.1f}" y1="{TOP}" x2="{px(k):.1f}" y2="{H - BOTTOM}" stroke="#eee"/>'
                   f'<text x="{px(k):.1f}" y="{H - BOTTOM + 16}" text-anchor="middle">{k}</text>')
    y = y_lo
    while y <= y_hi + 1e-9:
        out.append(f'<line x1="{LEFT}" y1="{py(y):.1f}" x2="{W - RIGHT}" y2="{py(y):.1f}" stroke="#eee"/>'
                   f'<text x="{LEFT - 6}" y="{py(y) + 4:.1f}" text-anchor="end">{y:.2f}</text>')
        y += 0.01
    out.append(f'<line x1="{LEFT}" y1="{py(0.083):.1f}" x2="{W - RIGHT}" y2="{py(0.083):.1f}" stroke="#c33" '
               f'stroke-dasharray="5,4"/><text x="{W - RIGHT + 4}" y="{py(0.083) + 4:.1f}" fill="#c33">'
               f'target 0.083</text>')
    out.append(f'<text x="{(LEFT + W - RIGHT) / 2}" y="{H - 14}" text-anchor="middle">training minutes on the '
               f'2-core CPU</text><text transform="translate(18,{(TOP + H - BOTTOM) / 2}) rotate(-90)" '
               f'text-anchor="middle">validation RMSE, 8 views</text>')
    for i, r in enumerate(rows):
        x, y = px(float(r["minutes"])), py(float(r["val_rmse_tta8"]))
        out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="5" fill="#1f77b4"/>'
                   f'<text x="{x + 8:.1f}" y="{y - 6:.1f}">{i + 1}</text>')
        out.append(f'<text x="{W - RIGHT + 14}" y="{TOP + 40 + 17 * i}">{i + 1}: {escape(r["recipe"])} '
                   f'({float(r["val_rmse_tta8"]):.4f})</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit(__doc__.split("\n\n")[1])
    with open(sys.argv[1], newline="") as f:
        rows = sorted(csv.DictReader(f), key=lambda r: float(r["minutes"]))
    Path(sys.argv[2]).write_text(svg(rows))
    print(f"{sys.argv[2]}: {len(rows)} runs")


if __name__ == "__main__":
    main()
