"""Every figure the dashboard and the command line draw: plotly figures of the labels, of a model's predictions,
of the merger fraction and of the morphology check, and the images of the Dataset page. Nothing here computes a
statistic; each function lays out what :mod:`galaxy_core.show.explore`, :mod:`galaxy_core.mergers.fraction`,
:mod:`galaxy_core.mergers.calibration`, :mod:`galaxy_core.mergers.evolution` or :mod:`galaxy_core.mergers.morphology`
compute. Nothing here imports Streamlit: the pages pass the figures to ``st.plotly_chart``, the command line writes
them to HTML.
"""

from __future__ import annotations

import base64
import io

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from PIL import Image, ImageDraw
from plotly.subplots import make_subplots

from galaxy_core import tree
from galaxy_core.mergers import calibration, fraction, morphology
from galaxy_core.show import explore

# One colour per question, so that the tree, the per-answer bars and the histograms read alike.
QUESTION_COLOURS = dict(zip((q.key for q in tree.QUESTIONS), (
    "#636efa", "#ef553b", "#00cc96", "#ab63fa", "#ffa15a", "#19d3f3", "#ff6692", "#b6e880", "#ff97ff", "#fecb52",
    "#8c564b")))


def _colour(column: str) -> str:
    return QUESTION_COLOURS[tree.question_of(column).key]


# ------------------------------------------------------------------------------------------ the labels and answers

def tree_figure(values: np.ndarray, other: np.ndarray | None = None, names: tuple[str, str] = ("value", "other"),
                known: np.ndarray | None = None, height: int | None = None) -> go.Figure:
    """The decision tree of one galaxy as horizontal bars: questions depth-first, each titled with its name (the full
    question on hover) and indented by its depth below the root, its answers one level further in, one bar per
    answer with its cumulative vote fraction. ``other`` draws a second set of bars beside the first (e.g. the
    model's next to the volunteers'), named by ``names``; unknown answers (``known`` False) have no bar."""
    t = explore.tree_table(values, known)
    indent, left = 14, 250  # pixels per level, width of the label margin
    slots, labels = [], []  # one y slot per question title and per answer
    for q, depth in explore.TREE_ORDER:
        slots.append(f"q:{q.key}")
        labels.append((f"<b>{q.key[5:]}. {tree.NAMES[q.columns[0]].split('--')[0].replace('_', ' ')}</b>", depth,
                       q.text))
        for c in q.columns:
            slots.append(c)
            labels.append((explore.short_name(c).replace("_", " "), depth + 1, f"{c} {tree.NAMES[c]}"))
    fig = go.Figure()
    order = [tree.column_index(c) for c in t["column"]]
    series = [(t["value"].to_numpy(), names[0], [QUESTION_COLOURS[q] for q in t["question"]], 1.0)]
    if other is not None:
        series.append((np.asarray(other, np.float64)[order], names[1], "#555555", 0.6))
    for v, name, colour, opacity in series:
        fig.add_trace(go.Bar(y=list(t["column"]), x=v, orientation="h", name=name, marker_color=colour,
                             opacity=opacity, text=[f"{x:.2f}" if np.isfinite(x) else "?" for x in v],
                             textposition="outside", cliponaxis=False, textfont={"size": 11, "color": "#333333"},
                             # Plotly shrinks outside labels to the bar's thickness (a few px here): keep them
                             # readable instead.
                             constraintext="none",
                             hovertemplate="%{y}: %{x:.3f}<extra>" + name + "</extra>"))
    # An invisible point per slot, so that the question titles (which have no bar) get their own rows.
    fig.add_trace(go.Scatter(x=[0] * len(slots), y=slots, mode="markers", marker_opacity=0, hoverinfo="skip",
                             showlegend=False))
    # Labels as annotations in the left margin, indented by depth (tick labels would be right-aligned). Passed in one
    # go: one add_annotation call per label would validate the layout 48 times.
    fig.layout.annotations = [go.layout.Annotation(x=0, xref="paper", y=slot, yref="y", text=text, hovertext=hover,
                                                   showarrow=False, xanchor="left", xshift=-left + 6 + indent * depth,
                                                   font={"size": 11})
                              for slot, (text, depth, hover) in zip(slots, labels)]
    fig.update_layout(barmode="group", height=height or (18 if other is None else 24) * len(slots) + 70,
                      margin={"l": left, "r": 30, "t": 30 if other is not None else 10, "b": 40},
                      showlegend=other is not None, legend={"orientation": "h", "y": 1.0, "yanchor": "bottom", "x": 0},
                      yaxis={"categoryorder": "array", "categoryarray": slots, "autorange": "reversed",
                                 "showticklabels": False},
                      xaxis={"range": [0, 1.12], "title": "vote fraction (cumulative, as in the Kaggle labels)"})
    return fig


def histogram_grid_figure(hist: pd.DataFrame, stats: pd.DataFrame, cols: int = 6, log: bool = False,
                          columns: list[str] | tuple[str, ...] | None = None) -> go.Figure:
    """Answer histograms (from :func:`galaxy_core.show.explore.histograms`) in one grid, each titled with its name and
    skewness: all 37, or only ``columns`` (e.g. one question's answers). A browser draws about 200 SVG elements a
    panel, so the 37-panel grid takes it a few tenths of a second."""
    columns = list(columns or tree.COLUMNS)
    cols = min(cols, len(columns))
    rows = -(-len(columns) // cols)
    skew = dict(zip(stats["column"], stats["skewness"]))
    titles = [f"{c} {explore.short_name(c)}<br>skew {skew[c]:.2f}" for c in columns]
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=titles, horizontal_spacing=0.03,
                        vertical_spacing=0.06 if rows > 1 else 0.0)
    by_column = dict(tuple(hist.groupby("column", sort=False)))
    for k, c in enumerate(columns):
        h = by_column[c]
        fig.add_trace(go.Bar(x=(h["lo"] + h["hi"]) / 2, y=h["count"], width=h["hi"] - h["lo"], showlegend=False,
                             marker_color=_colour(c), name=c,
                             hovertemplate=c + " %{x:.2f}: %{y:,}<extra></extra>"),
                      row=k // cols + 1, col=k % cols + 1)
    fig.update_annotations(font_size=10)
    fig.update_xaxes(range=[0, 1], tickvals=[0, 0.5, 1], tickfont_size=9)
    fig.update_yaxes(type="log" if log else "linear", tickfont_size=9)
    fig.update_layout(height=190 * rows + 30, margin={"l": 10, "r": 10, "t": 40, "b": 10}, bargap=0)
    return fig


def histogram_overview_figure(hist: pd.DataFrame, stats: pd.DataFrame) -> go.Figure:
    """All 37 answer histograms at a glance as one heatmap: a row per answer (in the Kaggle order, labelled with its
    name and skewness), a column per bin of vote fraction, the colour the share of that answer's known values in the
    bin on a log scale (most answers pile up near 0; a linear scale would show little else), empty bins blank. One
    trace, so a browser draws it about ten times faster than the 37-panel :func:`histogram_grid_figure`."""
    first = hist[hist["column"] == tree.COLUMNS[0]]
    centres = ((first["lo"] + first["hi"]) / 2).to_numpy()
    frac = np.stack([hist.loc[hist["column"] == c, "fraction"].to_numpy() for c in tree.COLUMNS])
    count = np.stack([hist.loc[hist["column"] == c, "count"].to_numpy() for c in tree.COLUMNS])
    z = np.full(frac.shape, np.nan)
    z[count > 0] = np.log10(frac[count > 0])
    skew = dict(zip(stats["column"], stats["skewness"]))
    rows = [f"{c} {explore.short_name(c)} (skew {skew[c]:.1f})" for c in tree.COLUMNS]
    ticks = [t for t in range(-6, 1) if np.nanmin(z, initial=0.0) - 1 < t] if np.isfinite(z).any() else [0]
    fig = go.Figure(go.Heatmap(
        z=z, x=centres, y=rows, customdata=np.dstack([count, frac]), colorscale="Viridis",
        colorbar={"title": "share", "tickvals": ticks, "ticktext": [f"{10.0 ** t:g}" for t in ticks]},
        hovertemplate="%{y}<br>vote fraction %{x:.3f} (bin centre)<br>%{customdata[0]:,} galaxies, "
                      "%{customdata[1]:.2%} of those with this answer known<extra></extra>"))
    fig.update_layout(height=22 * len(rows) + 80, margin={"l": 10, "r": 10, "t": 10, "b": 40},
                      xaxis={"title": "vote fraction", "range": [0, 1]}, yaxis={"autorange": "reversed"})
    return fig


def heatmap_figure(matrix: pd.DataFrame, title: str = "", height: int = 800) -> go.Figure:
    """A correlation matrix as a heatmap on [-1, 1] (red positive, blue negative): rows labelled with the answers'
    descriptive names, columns with their Kaggle columns; small matrices (a question's block) print r in each cell."""
    small = len(matrix) <= 12
    fig = go.Figure(go.Heatmap(z=matrix.to_numpy(), x=list(matrix.columns), y=[explore.label(c) for c in matrix.index],
                               zmin=-1, zmax=1, colorscale="RdBu_r", colorbar={"title": "r"},
                               texttemplate="%{z:.2f}" if small else None,
                               hovertemplate="%{y}<br>%{x}<br>r = %{z:.2f}<extra></extra>"))
    fig.update_layout(title=title, height=height, margin={"l": 10, "r": 10, "t": 40 if title else 10, "b": 10},
                      yaxis={"autorange": "reversed"}, xaxis={"side": "bottom", "tickangle": -90 if not small else 0})
    return fig


def scatter_figure(y_true: np.ndarray, y_pred: np.ndarray, columns: list[str] | tuple[str, ...],
                   cols: int = 6, max_points: int = 2000, seed: int = 0) -> go.Figure:
    """True (volunteer) vs predicted values of the chosen answers, one panel each with the y = x line. At most
    ``max_points`` galaxies per panel (a seeded random subset) so that large sets stay quick to draw; ``y_true`` and
    ``y_pred`` are (N, 37) with NaN where the truth is unknown."""
    columns = list(columns)
    cols = min(cols, len(columns))
    rows = -(-len(columns) // cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[explore.label(c) if len(columns) == 1 else
                                                              f"{c} {explore.short_name(c)}" for c in columns],
                        horizontal_spacing=0.03 if cols > 1 else 0.1, vertical_spacing=0.06 if rows > 1 else 0.1)
    rng = np.random.default_rng(seed)
    for k, c in enumerate(columns):
        j = tree.column_index(c)
        ok = np.flatnonzero(np.isfinite(y_true[:, j]))
        if len(ok) > max_points:
            ok = np.sort(rng.choice(ok, max_points, replace=False))
        r, cc = k // cols + 1, k % cols + 1
        fig.add_trace(go.Scattergl(x=y_true[ok, j], y=y_pred[ok, j], mode="markers", showlegend=False,
                                   marker={"size": 4 if len(columns) > 1 else 6, "opacity": 0.5,
                                               "color": _colour(c)},
                                   hovertemplate="true %{x:.3f}<br>predicted %{y:.3f}<extra>" + c + "</extra>"),
                      row=r, col=cc)
        fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", showlegend=False, hoverinfo="skip",
                                 line={"color": "black", "width": 1, "dash": "dash"}), row=r, col=cc)
    fig.update_xaxes(range=[-0.02, 1.02], tickvals=[0, 0.5, 1])
    fig.update_yaxes(range=[-0.02, 1.02], tickvals=[0, 0.5, 1])
    if len(columns) == 1:
        fig.update_xaxes(title="volunteer vote fraction")
        fig.update_yaxes(title="predicted", scaleanchor="x")
    else:
        fig.update_annotations(font_size=10)
    fig.update_layout(height=600 if len(columns) == 1 else 190 * rows, margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return fig


TRUE_VS_PREDICTED_POINTS = {"one": 20_000, "all": 1_000}
"""Galaxies per panel :func:`true_vs_predicted_figure` draws at most: many for one answer's single panel, few for the
37 panels of all of them (a browser draws 37 x 1,000 WebGL points quickly; 37 x 20,000 it does not)."""


def true_vs_predicted_figure(y_true: np.ndarray, y_pred: np.ndarray, known: np.ndarray,
                             column: str | None = None) -> go.Figure:
    """:func:`scatter_figure` of one answer ``column`` (all 37 when None) from an evaluation's (N, 37) volunteer
    fractions ``y_true``, predictions ``y_pred`` and ``known`` mask: answers no volunteer gave are left out, and each
    panel shows at most :data:`TRUE_VS_PREDICTED_POINTS` galaxies."""
    y = np.asarray(y_true, dtype=np.float64).copy()
    y[~np.asarray(known, dtype=bool)] = np.nan
    return scatter_figure(y, y_pred, [column] if column else list(tree.COLUMNS),
                          max_points=TRUE_VS_PREDICTED_POINTS["one" if column else "all"])


TIGHT = {"l": 10, "r": 10, "t": 10, "b": 10}
"""Plot margins in pixels for a figure with no title: the page around it gives the space."""


def split_means_figure(comparison: pd.DataFrame) -> go.Figure:
    """Each answer's mean vote fraction in the training and the validation split as grouped bars, from
    :func:`galaxy_core.show.explore.split_comparison`'s table (``column``, ``name``, ``mean_train``, ``mean_val``)."""
    fig = go.Figure([go.Bar(x=comparison["column"], y=comparison[f"mean_{k}"], name=name,
                            hovertext=comparison["name"])
                     for k, name in (("train", "training"), ("val", "validation"))])
    fig.update_layout(barmode="group", height=320, yaxis_title="mean vote fraction", margin=TIGHT,
                      legend={"orientation": "h", "y": 1.1})
    return fig


def split_histogram_figure(hist: pd.DataFrame, column: str) -> go.Figure:
    """One answer's distribution in each split as overlaid bars, from
    :func:`galaxy_core.show.explore.split_histograms`'s table (``split``, ``lo``, ``hi``, ``fraction``): the share of
    the split's known values per bin of vote fraction, so splits of different sizes compare."""
    fig = go.Figure([go.Bar(x=(g["lo"] + g["hi"]) / 2, y=g["fraction"], width=g["hi"] - g["lo"], name=name,
                            opacity=0.6) for name, g in hist.groupby("split", sort=False)])
    fig.update_layout(barmode="overlay", height=320, xaxis_title=explore.label(column),
                      yaxis_title="fraction of the split", margin=TIGHT, legend={"orientation": "h", "y": 1.1})
    return fig


# ----------------------------------------------------------------------------------------------------- the mergers

def histogram_figure(p, threshold: float = 0.5):
    """A plotly histogram of predicted Class8.6 (log counts) with the threshold marked and the flagged fraction in
    the title."""
    counted = fraction.fraction_above(p, threshold, n_boot=1)  # checks p as the estimates do, and counts p > t
    p, k = np.asarray(p, dtype=np.float64), counted.n_flagged
    fig = go.Figure(go.Histogram(x=p, xbins={"start": 0.0, "end": 1.0, "size": 0.02}, name="galaxies"))
    fig.add_vline(x=threshold, line_dash="dash", line_color="firebrick",
                  annotation_text=f"threshold {threshold:g}", annotation_position="top right")
    fig.update_layout(title=f"{k:,} of {len(p):,} galaxies above {threshold:g} ({k / len(p):.2%})",
                      xaxis_title=f"predicted {fraction.MERGER_COLUMN} (merger vote fraction)",
                      yaxis_title="galaxies", yaxis_type="log", bargap=0.05, showlegend=False)
    # Ticks at whole decades only: plotly's default log ticks (2, 5, 20, 50 ...) overlap over four decades.
    fig.update_yaxes(dtick=1, tickformat=",d")
    return fig


def fraction_by_figure(result, column: str, curve: pd.DataFrame | None = None, curve_name: str = "expected") \
        -> go.Figure:
    """The merger fraction against a catalogue column, from a :func:`galaxy_core.mergers.evolution.fraction_by`
    result: each bin's fraction at its centre, with its Wilson interval as the vertical error bar and the bin's
    width as the horizontal one; the calibrated fraction beside it where there is one; ``curve`` (columns ``z``,
    ``expected``: :func:`galaxy_core.mergers.evolution.expected_curve`) as a line named ``curve_name``. Bins too
    small to measure are hollow and grey, with the reason in their hover; an empty bin sits at 0."""
    f = result.frame()
    small = f["too_small"].to_numpy(dtype=bool)
    fig = go.Figure()
    pct = fraction.percent_text
    hover = [f"{column} {lo:g} - {hi:g}<br>{k:,} of {n:,} galaxies: {pct(x) if n else 'none'}"
             + (f"<br>95 % Wilson {pct(a)} - {pct(b)}" if n else "") + (f"<br>too small: {why}" if why else "")
             for lo, hi, n, k, x, a, b, why in zip(f["lo"], f["hi"], f["n"], f["n_mergers"], f["fraction"],
                                                   f["wilson_lo"], f["wilson_hi"], f["reason"])]
    groups = ((~small, f"Class8.6 > {result.threshold:g}", {"color": "#1f77b4", "size": 9, "symbol": "circle"}),
              (small, "too small to measure", {"color": "#9a9a9a", "size": 9, "symbol": "circle-open"}))
    for sel, name, marker in groups:
        if not sel.any():
            continue
        g = f[sel]
        y = g["fraction"].fillna(0.0)
        fig.add_trace(go.Scatter(
            x=g["centre"], y=y, mode="markers", name=name, marker=marker, hovertext=[hover[i] for i in
                                                                                     np.flatnonzero(sel)],
            hoverinfo="text", error_x={"type": "data", "array": (g["hi"] - g["lo"]) / 2, "color": marker["color"],
                                       "thickness": 1, "width": 0},
            error_y={"type": "data", "array": (g["wilson_hi"] - y).fillna(0.0),
                     "arrayminus": (y - g["wilson_lo"]).fillna(0.0), "color": marker["color"]}))
    if result.calibrated_threshold is not None:
        g = f[~small & f["calibrated"].notna()]
        fig.add_trace(go.Scatter(
            x=g["centre"], y=g["calibrated"], mode="markers", name=f"calibrated, > {result.calibrated_threshold:.3f}",
            marker={"color": "#d62728", "size": 8, "symbol": "diamond"},
            error_y={"type": "data", "array": g["calibrated_hi"] - g["calibrated"],
                     "arrayminus": g["calibrated"] - g["calibrated_lo"], "color": "#d62728"}))
    if curve is not None:
        fig.add_trace(go.Scatter(x=curve["z"], y=curve["expected"], mode="lines", name=curve_name,
                                 line={"color": "black", "dash": "dash"}))
    fig.update_layout(xaxis_title=column, yaxis_title="merger fraction", yaxis_tickformat=".1%",
                      yaxis_rangemode="tozero", legend={"orientation": "h", "y": -0.2},
                      margin={"l": 10, "r": 10, "t": 30, "b": 10})
    return fig


def calibration_figure(table: pd.DataFrame):
    """A plotly figure of a calibration table: from :func:`galaxy_core.mergers.calibration.calibration_table`, the
    fractions flagged by the model and by volunteers against the threshold; from
    :func:`galaxy_core.mergers.calibration.reliability_curve`, the reliability diagram with the diagonal a calibrated
    model follows."""
    cols = set(table.columns)
    fig = go.Figure()
    if {"mean_predicted", "mean_volunteer"} <= cols:
        t = table[table["n"] > 0]
        fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dot", "color": "grey"},
                                 name="calibrated"))
        fig.add_trace(go.Scatter(x=t["mean_predicted"], y=t["mean_volunteer"], mode="lines+markers", name="model",
                                 text=[f"n = {n:,}" for n in t["n"]]))
        fig.update_layout(title="Reliability of predicted Class8.6", xaxis_title="mean predicted",
                          yaxis_title="mean volunteer vote fraction")
    elif {"threshold", "predicted_fraction", "volunteer_fraction"} <= cols:
        fig.add_trace(go.Scatter(x=table["threshold"], y=table["volunteer_fraction"], name="volunteers"))
        fig.add_trace(go.Scatter(x=table["threshold"], y=table["predicted_fraction"], name="model"))
        fig.update_layout(title="Fraction of galaxies above a threshold", xaxis_title="threshold on Class8.6",
                          yaxis_title="fraction above threshold")
    else:
        raise ValueError(f"not a calibration table or reliability curve: columns {sorted(cols)}")
    return fig


def gini_m20_figure(table: pd.DataFrame, marked=None, marked_name: str = "marked") -> go.Figure:
    """The Gini-M20 plane of a :func:`galaxy_core.mergers.morphology.morphology_table` (its good measurements), with the
    Lotz et al. (2008) merger line G = -0.14 M20 + 0.33 and, beside it, the asymmetry histogram with Conselice's
    (2003) A = 0.35. ``marked``: a bool per row of ``table`` (e.g. the model's mergers), drawn in another colour.
    M20 runs right to left, as in Lotz et al. (2004, 2008)."""
    good = morphology.usable(table)
    mark = np.zeros(len(table), bool) if marked is None else np.asarray(marked, dtype=bool)
    fig = make_subplots(rows=1, cols=2, column_widths=[0.6, 0.4], horizontal_spacing=0.1,
                        subplot_titles=("Gini-M20 (Lotz et al. 2008)", "Asymmetry (Conselice 2003)"))
    for name, sel, colour in (("others", good & ~mark, "#4c78a8"), (marked_name, good & mark, "#e45756")):
        t = table[sel]
        if not len(t) and name == marked_name:
            continue
        fig.add_trace(go.Scattergl(x=t["m20"], y=t["gini"], mode="markers", name=f"{name} ({len(t):,})",
                                   marker={"size": 4 if name == "others" else 6, "color": colour, "opacity": 0.6},
                                   text=t["GalaxyID"], legendgroup=name), row=1, col=1)
        fig.add_trace(go.Histogram(x=t["asymmetry"], name=name, marker_color=colour, opacity=0.6, showlegend=False,
                                   histnorm="probability", xbins={"size": 0.02}, legendgroup=name), row=1, col=2)
    m20 = np.array([-3.0, 0.0])
    fig.add_trace(go.Scatter(x=m20, y=morphology.GM20_SLOPE * m20 + morphology.GM20_INTERCEPT, mode="lines",
                             line={"dash": "dash", "color": "black"}, name="merger line"), row=1, col=1)
    fig.add_vline(x=morphology.ASYMMETRY_MERGER, line_dash="dash", line_color="black", row=1, col=2)
    fig.update_xaxes(title_text="M20", autorange="reversed", row=1, col=1)
    fig.update_yaxes(title_text="Gini", row=1, col=1)
    fig.update_xaxes(title_text="asymmetry A", row=1, col=2)
    fig.update_yaxes(title_text="share of the group", row=1, col=2)
    fig.update_layout(barmode="overlay", legend={"orientation": "h", "y": -0.2})
    return fig


# ----------------------------------------------------------------------------------------------------- the sky

def _unwrapped_ra(ra: np.ndarray) -> np.ndarray:
    """RA in degrees moved by -360 above the widest empty arc, when that arc is not the one across 0, so that a
    field spanning RA 0 (SDSS Stripe 82 runs from 310 to 60) is drawn in one piece."""
    if len(ra) < 2:
        return ra
    s = np.sort(ra)
    gaps = np.diff(s)
    k = int(np.argmax(gaps))
    if gaps[k] <= 360.0 - s[-1] + s[0]:
        return ra
    return np.where(ra > s[k], ra - 360.0, ra)


def sky_figure(ra, dec, color=None, ids=None, rows=None, color_name: str = "", color_range=None,
               made_up: bool = False, height: int = 560) -> go.Figure:
    """Galaxies on the sky: Dec against RA (degrees), RA increasing to the left as on the sky seen from inside
    (east left, as astronomers draw it), one point per galaxy with a finite position; NaN positions are left out.
    ``color`` (a value per galaxy) colours the points on Viridis over ``color_range`` (default: their own range),
    with a colour bar named ``color_name``; galaxies whose value is NaN are grey ("unknown"). Hover shows the id,
    position and value; each point's ``customdata`` starts with its ``rows`` entry (default: its index), for
    ``skyviews.selected_rows``. The y axis is scaled by 1/cos(mid Dec) so that a degree of RA is as long on the
    screen as on the sky there. ``made_up`` puts "made-up" into the axis titles (the demo's positions). WebGL
    points, so 100,000 galaxies draw in well under a second."""
    ra, dec = np.asarray(ra, dtype=np.float64), np.asarray(dec, dtype=np.float64)
    n = len(ra)
    ids = np.asarray(ids if ids is not None else np.arange(n)).astype(str)
    rows = np.asarray(rows if rows is not None else np.arange(n), dtype=np.int64)
    values = np.full(n, np.nan) if color is None else np.asarray(color, dtype=np.float64)
    where = np.isfinite(ra) & np.isfinite(dec)
    ra, dec, ids, rows, values = ra[where], dec[where], ids[where], rows[where], values[where]
    x = _unwrapped_ra(ra)
    fig = go.Figure()
    hover = ("%{text}<br>RA %{customdata[1]:.4f} Dec %{y:+.4f}"
             + (f"<br>{color_name} %{{customdata[2]:.4g}}" if color is not None else "") + "<extra></extra>")
    known = np.isfinite(values)
    groups = [(~known, "unknown" if color is not None else "galaxies",
               {"color": "#9a9a9a" if color is not None else "#4c78a8", "size": 5, "opacity": 0.6})]
    if color is not None and known.any():
        lo, hi = color_range if color_range is not None else (np.min(values[known]), np.max(values[known]))
        groups.append((known, color_name, {"color": values[known], "colorscale": "Viridis", "cmin": lo, "cmax": hi,
                                           "size": 6, "opacity": 0.85,
                                           "colorbar": {"title": {"text": color_name, "side": "right"}}}))
    for sel, name, marker in groups:
        if not sel.any():
            continue
        fig.add_trace(go.Scattergl(
            x=x[sel], y=dec[sel], mode="markers", name=f"{name} ({int(sel.sum()):,})", text=ids[sel], marker=marker,
            customdata=np.column_stack([rows[sel], ra[sel], values[sel]]), hovertemplate=hover))
    mid = float(np.clip((np.min(dec) + np.max(dec)) / 2, -70, 70)) if len(dec) else 0.0
    xaxis = {"title": "RA (degrees, made up)" if made_up else "RA (degrees), east to the left",
             "autorange": "reversed", "showgrid": True}
    if len(x) and x.min() < 0:  # unwrapped across RA 0: ticks read 0 to 360 again
        ticks = np.arange(np.floor(x.min() / 30) * 30, x.max() + 30, 30)
        xaxis |= {"tickvals": ticks, "ticktext": [f"{t % 360:g}" for t in ticks]}
    fig.update_layout(
        height=height, margin={"l": 10, "r": 10, "t": 10, "b": 10}, xaxis=xaxis,
        yaxis={"title": "Dec (degrees, made up)" if made_up else "Dec (degrees)", "scaleanchor": "x",
               "scaleratio": 1.0 / np.cos(np.radians(mid))},
        legend={"orientation": "h", "y": 1.0, "yanchor": "bottom", "x": 0}, showlegend=bool((~known).any()))
    return fig


# ----------------------------------------------------------------------------------------------------- training

def curves_figure(series: list[tuple[str, list[dict], str]], baseline: float, height: int) -> go.Figure:
    """Learning curves: one line per ``(name, metrics rows, column)`` of ``series`` (``runs.read_metrics`` rows) over
    the epochs, with the mean baseline's validation RMSE ``baseline`` as the dotted line a network must get below
    (left out when not finite)."""
    fig = go.Figure([go.Scatter(x=[r["epoch"] for r in rows], y=[r[col] for r in rows], name=name,
                                mode="lines+markers") for name, rows, col in series])
    if np.isfinite(baseline):
        fig.add_hline(y=baseline, line_dash="dot", line_color="grey",
                      annotation_text=f"mean baseline {baseline:.4f}", annotation_position="top right")
    fig.update_layout(height=height, xaxis_title="epoch", yaxis_title="RMSE",
                      margin={"l": 10, "r": 10, "t": 10, "b": 10})
    return fig


# ------------------------------------------------------------------------------------------------------ the images

def original_with_crop(image: np.ndarray, crop: float, colour: tuple[int, int, int] = (255, 210, 0)) -> np.ndarray:
    """An original image ((H, W, 3) uint8, as ``explore.original_image`` gives it) with the square the cache keeps
    (the central ``crop`` of its shorter side) outlined, so one can see what the model is shown."""
    im = Image.fromarray(image)
    w, h = im.size
    c = crop * min(w, h)
    box = ((w - c) / 2, (h - c) / 2, (w + c) / 2 - 1, (h + c) / 2 - 1)
    if crop < 0.999:
        ImageDraw.Draw(im).rectangle(box, outline=colour, width=max(1, round(min(w, h) / 200)))
    return np.asarray(im)


def enlarge(image: np.ndarray, size: int) -> np.ndarray:
    """A small (H, W, 3) uint8 image scaled up to ``size`` px (nearest neighbour, so no pixel is invented)."""
    if image.shape[0] >= size:
        return image
    return np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.NEAREST))


def image_data_url(image: np.ndarray, quality: int = 92) -> str:
    """An (H, W, 3) uint8 image as a ``data:image/jpeg;base64,...`` URL (about 3 KB for an 80 px galaxy).

    The dashboard's galleries send thumbnails this way rather than through Streamlit's media file store: a rerun
    interrupted by a quick slider move lets Streamlit delete the previous run's files while the browser still asks
    for them, and a thumbnail that got a 404 then stays broken, because the next run gives it the same URL
    (streamlit/streamlit#1294). A data URL is part of the page and cannot go missing."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buf, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def per_answer_figure(per_answer: pd.DataFrame) -> go.Figure:
    """RMSE of each of the 37 answers as bars coloured by question (``evaluation.Evaluation.per_answer``'s table)."""
    fig = go.Figure(go.Bar(x=per_answer["column"], y=per_answer["rmse"], hovertext=per_answer["name"],
                           marker_color=[QUESTION_COLOURS[q] for q in per_answer["question"]],
                           hovertemplate="%{x} %{hovertext}<br>RMSE %{y:.4f}<extra></extra>"))
    fig.update_layout(height=330, yaxis_title="RMSE", margin={"l": 10, "r": 10, "t": 10, "b": 10})
    return fig


def error_by_spread_figure(bins: pd.DataFrame, factor: float | None = None) -> go.Figure:
    """RMS error against RMS spread in equal-count bins (``uncertainty.error_by_spread``'s table: ``n``,
    ``spread``, ``rms_error``, vote fractions), with the line a calibrated spread would follow (error = spread,
    dashed) and, with ``factor`` c, the one the scaled spread follows on average (error = c × spread, dotted).
    Log axes where every bin is above 0 (the views' spreads span two decades), else linear."""
    x, y = bins["spread"].to_numpy(np.float64), bins["rms_error"].to_numpy(np.float64)
    fig = go.Figure(go.Scatter(x=x, y=y, mode="lines+markers", name="the model's galaxies",
                               text=[f"{n:,} answers" for n in bins["n"]],
                               hovertemplate="RMS spread %{x:.4f}<br>RMS error %{y:.4f}<br>%{text}<extra></extra>"))
    ends = np.array([x.min(), x.max()]) if len(x) else np.array([0.0, 1.0])
    fig.add_trace(go.Scatter(x=ends, y=ends, mode="lines", name="calibrated: error = spread", hoverinfo="skip",
                             line={"dash": "dash", "color": "black", "width": 1}))
    if factor is not None:
        fig.add_trace(go.Scatter(x=ends, y=factor * ends, mode="lines", name=f"error = {factor:.3g} × spread",
                                 hoverinfo="skip", line={"dash": "dot", "color": "firebrick", "width": 1.5}))
    log = bool(len(x)) and (x > 0).all() and (y > 0).all()
    fig.update_layout(height=380, xaxis_title="RMS raw spread (vote fraction)", yaxis_title="RMS error (vote fraction)",
                      margin={"l": 10, "r": 10, "t": 10, "b": 10}, legend={"orientation": "h", "y": 1.12})
    if log:  # ticks at whole decades only: plotly's default 2 and 5 between them crowd the short axes
        fig.update_xaxes(type="log", dtick=1)
        fig.update_yaxes(type="log", dtick=1)
    return fig


# ---------------------------------------------------------------------------------------------- merger calibration

def merger_calibration_figures(p_pred, p_true, threshold: float | None = None) -> list[go.Figure]:
    """The two calibration figures of the ``mergers`` command and the Mergers page, for the model's (``p_pred``) and
    the volunteers' (``p_true``) Class8.6 on the same labelled galaxies: the fractions above each threshold
    (:func:`galaxy_core.mergers.calibration.calibration_table`), with ``threshold`` marked when given, and the
    reliability diagram on :data:`galaxy_core.mergers.calibration.RELIABILITY_EDGES`, the bins both show."""
    fractions = calibration_figure(calibration.calibration_table(p_pred, p_true))
    if threshold is not None:
        fractions.add_vline(x=threshold, line_dash="dash", line_color="firebrick")
    reliability = calibration.reliability_curve(p_pred, p_true, calibration.RELIABILITY_EDGES)
    return [fractions, calibration_figure(reliability)]
