"""Where a galaxy is on the sky, for the people looking at it: its position as text, links to the sky viewers that show
it (the Legacy Surveys' and SDSS's), a sky map of chosen galaxies coloured by an answer or a catalogue column, the
catalogue rows of chosen galaxies, and galleries whose thumbnails carry their positions and links (one HTML grid:
Streamlit's image captions cannot hold links).

Positions are ICRS degrees, as ``cache.GalaxyCache.positions`` gives them (RA in [0, 360], Dec in [-90, 90]); NaN
means the catalogue has no position for the galaxy, and such a galaxy gets "no position" and no links, and is left
off a sky map. The built-in demo's positions and redshifts are made up (``demo_set.made_up_sky``): every text here that
shows them says so when told ``made_up``. Nothing here imports Streamlit; the pages lay these out.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING
from urllib.parse import urlencode

import numpy as np
import pandas as pd

from galaxy_core import tables, tree
from galaxy_core.show import explore, figures

if TYPE_CHECKING:  # annotations only
    from galaxy_core.data.cache import GalaxyCache

LEGACY_VIEWER = "https://www.legacysurvey.org/viewer"
"""The DESI Legacy Imaging Surveys' sky viewer (``?ra=&dec=`` in degrees, ``layer``, ``zoom``)."""
SDSS_NAVIGATOR = "https://skyserver.sdss.org/dr18/en/tools/chart/navi.aspx"
"""SDSS SkyServer's Navigate tool, DR18 (``?ra=&dec=`` in degrees, ``scale`` in arcsec per pixel)."""
MADE_UP = ("The positions and redshifts of the synthetic demo are made up (its catalogue.csv, made_up = True): no "
           "galaxy of the demo is there, and the sky viewers show whatever real sky is at those positions.")
"""What every view of the demo's catalogue says about it."""
NO_POSITION = "no position"

Colour = tuple[str, str]
"""What a sky map is coloured by: ``("volunteers", answer)``, ``("model", answer)`` or ``("catalogue", column)``."""


# ------------------------------------------------------------------------------------------- positions and links

def has_position(ra, dec) -> bool:
    """Whether ``ra`` and ``dec`` are both finite numbers (a catalogue's empty cell reads as NaN)."""
    try:
        return bool(np.isfinite(float(ra)) and np.isfinite(float(dec)))
    except (TypeError, ValueError):
        return False


def _checked(ra, dec) -> tuple[float, float]:
    """RA and Dec as floats in degrees, RA in [0, 360); ValueError for a missing or impossible position."""
    if not has_position(ra, dec):
        raise ValueError(f"no position: RA {ra!r}, Dec {dec!r}")
    ra, dec = float(ra), float(dec)
    if not (0.0 <= ra <= 360.0 and -90.0 <= dec <= 90.0):
        raise ValueError(f"RA {ra:g}, Dec {dec:g} is not a position in degrees (RA 0 to 360, Dec -90 to 90)")
    return ra % 360.0, dec


def position_of(cache: GalaxyCache, row: int) -> tuple[float, float]:
    """One galaxy's RA and Dec in degrees (NaN, NaN where unknown or the data have no positions)."""
    positions = cache.positions()
    return (float("nan"), float("nan")) if positions is None else \
        (float(positions[0][int(row)]), float(positions[1][int(row)]))


def legacy_survey_url(ra, dec, layer: str = "ls-dr10", zoom: int = 16) -> str:
    """The Legacy Survey viewer centred on RA, Dec (degrees, written to 6 decimals: 0.004 arcsec), showing
    ``layer`` (``ls-dr10``: the DR10 grz images) at ``zoom`` (16: about a galaxy's width across the screen).
    Raises ValueError for NaN or out-of-range coordinates."""
    ra, dec = _checked(ra, dec)
    return f"{LEGACY_VIEWER}?" + urlencode({"ra": f"{ra:.6f}", "dec": f"{dec:.6f}", "layer": layer, "zoom": zoom})


def sdss_navigator_url(ra, dec, scale: float = 0.2) -> str:
    """SDSS SkyServer's Navigate tool (DR18) centred on RA, Dec (degrees, 6 decimals) at ``scale`` arcsec per
    pixel (0.2: twice SDSS's own 0.396, close on one galaxy). Raises ValueError for NaN or out-of-range
    coordinates."""
    ra, dec = _checked(ra, dec)
    return f"{SDSS_NAVIGATOR}?" + urlencode({"ra": f"{ra:.6f}", "dec": f"{dec:.6f}", "scale": f"{scale:g}"})


def viewer_links(ra, dec) -> dict[str, str]:
    """``{"Legacy Survey": url, "SDSS": url}`` for a position, ``{}`` for none (NaN)."""
    if not has_position(ra, dec):
        return {}
    return {"Legacy Survey": legacy_survey_url(ra, dec), "SDSS": sdss_navigator_url(ra, dec)}


def position_caption(ra, dec) -> str:
    """``"RA 150.1234 Dec +2.3456"``: degrees to 4 decimals (0.4 arcsec), Dec signed; ``"no position"`` for NaN."""
    if not has_position(ra, dec):
        return NO_POSITION
    return f"RA {float(ra):.4f} Dec {float(dec):+.4f}"


# ------------------------------------------------------------------------------------------------- the sky map

def colour_choices(cache: GalaxyCache, model: bool = False) -> list[Colour | None]:
    """What a sky map of ``cache`` can be coloured by: nothing (None), the catalogue's number and yes/no columns that
    vary (RA, Dec, id and file left out), the volunteers' 37 answers and, with ``model``, the model's."""
    choices: list[Colour | None] = [None]
    columns, names = cache.columns, cache.sky
    if columns is not None:
        skip = {names.id, names.file, names.ra, names.dec}
        for c in columns.columns:
            values = columns[c]
            # Numbers, or yes/no (an object column once galaxies without a row left it gaps); never text.
            yes_no = values.dtype.kind == "O" and values.dropna().map(type).isin((bool, np.bool_)).all()
            if c in skip or not (values.dtype.kind in "fiub" or yes_no):
                continue
            if pd.to_numeric(values, errors="coerce").nunique(dropna=True) > 1:
                choices.append(("catalogue", str(c)))
    choices += [("volunteers", c) for c in tree.COLUMNS]
    if model:
        choices += [("model", c) for c in tree.COLUMNS]
    return choices


def default_colour(choices: list[Colour | None], answer: str | None = None) -> int:
    """The index in ``choices`` a map starts with: the volunteers' ``answer`` (the one the gallery is sorted or
    filtered by) when given, else the first catalogue column (a redshift, say), else none."""
    if answer is not None and ("volunteers", answer) in choices:
        return choices.index(("volunteers", answer))
    return next((k for k, c in enumerate(choices) if c and c[0] == "catalogue"), 0)


def colour_label(choice: Colour | None, units: dict[str, str] | None = None) -> str:
    """A choice as a menu and colour bar read it: ``"volunteers: Class8.6 odd_feature--merger"``,
    ``"catalogue: z"`` (with its unit in brackets when it has one), ``"nothing"``."""
    if choice is None:
        return "nothing"
    kind, name = choice
    if kind == "catalogue":
        unit = (units or {}).get(name)
        return f"catalogue: {name}" + (f" [{unit}]" if unit else "")
    return f"{kind}: {explore.label(name)}"


def colour_values(cache: GalaxyCache, rows, choice: Colour | None, predictions: np.ndarray | None = None) \
        -> np.ndarray | None:
    """The float value of ``choice`` for each of ``rows`` (NaN where unknown: an answer no volunteer gave, an empty
    catalogue cell); None for no choice. ``predictions``: the model's (N, 37) answers for every cache row, needed
    for a ``"model"`` choice; yes/no columns read as 1 and 0."""
    rows = np.asarray(rows, dtype=np.int64)
    if choice is None:
        return None
    kind, name = choice
    if kind == "catalogue":
        values = cache.columns[name].iloc[rows]
        return pd.to_numeric(values.map(lambda v: float(v) if isinstance(v, (bool, np.bool_)) else v),
                             errors="coerce").to_numpy(dtype=np.float64)
    j = tree.column_index(name)
    if kind == "volunteers":
        return np.where(cache.mask[rows, j], cache.labels[rows, j], np.nan).astype(np.float64)
    if kind == "model":
        if predictions is None:
            raise ValueError("colouring by the model's answers needs its predictions")
        return np.asarray(predictions, dtype=np.float64)[rows, j]
    raise ValueError(f"unknown colour {choice!r}: volunteers, model or catalogue")


def sky_points(cache: GalaxyCache, rows, choice: Colour | None = None,
               predictions: np.ndarray | None = None) -> pd.DataFrame:
    """The galaxies of ``rows`` that have a position, in their order: ``row`` (in the cache), ``GalaxyID``, ``ra``,
    ``dec`` (degrees) and ``value`` (:func:`colour_values`, NaN without a choice). Galaxies without a position are
    left out (count them as ``len(rows) - len(result)``); no positions at all give an empty table."""
    rows = np.asarray(rows, dtype=np.int64)
    positions = cache.positions()
    if positions is None:
        rows = rows[:0]
        ra = dec = np.zeros(0)
    else:
        ra, dec = positions[0][rows], positions[1][rows]
    values = colour_values(cache, rows, choice, predictions)
    frame = pd.DataFrame({"row": rows, "GalaxyID": cache.ids[rows].astype(str), "ra": ra, "dec": dec,
                          "value": np.full(len(rows), np.nan) if values is None else values})
    return frame[np.isfinite(frame["ra"]) & np.isfinite(frame["dec"])].reset_index(drop=True)


def sky_map(cache: GalaxyCache, rows, choice: Colour | None = None,
            predictions: np.ndarray | None = None) -> tuple["figures.go.Figure", int]:
    """The sky map of the galaxies ``rows`` coloured by ``choice`` (:func:`figures.sky_figure`; answers on a fixed
    0 to 1 scale, catalogue columns on their own range; made-up axes for the demo) and how many of them it shows
    (those with a position)."""
    points = sky_points(cache, rows, choice, predictions)
    fig = figures.sky_figure(points["ra"], points["dec"], None if choice is None else points["value"],
                             points["GalaxyID"], points["row"], colour_label(choice, cache.units),
                             None if choice is None or choice[0] == "catalogue" else (0.0, 1.0), cache.synthetic)
    return fig, len(points)


def selected_rows(points) -> list[int]:
    """The cache rows of the points chosen on a sky map (``figures.sky_figure`` puts each galaxy's row first in
    its ``customdata``): Streamlit's ``event.selection.points``, in order, each row once. A point's customdata
    comes as a list, a number, or, where plotly.js decoded the figure's arrays into typed arrays, as an object
    ``{"0": row, "1": ra, ...}``."""
    out: list[int] = []
    for p in points or []:
        data = p.get("customdata") if isinstance(p, dict) else None
        if isinstance(data, dict):
            data = data.get("0", data.get(0))
        elif isinstance(data, (list, tuple)):
            data = data[0] if data else None
        if data is None:
            continue
        row = int(data)
        if row not in out:
            out.append(row)
    return out


def catalogue_table(cache: GalaxyCache, rows) -> pd.DataFrame:
    """The catalogue's columns for ``rows`` (GalaxyID first, the image file column left out), with each galaxy's
    ``Legacy Survey`` and ``SDSS`` viewer links (empty without a position): the table beside a sky map. An
    empty frame for data without a catalogue."""
    rows = np.asarray(rows, dtype=np.int64)
    frame = pd.DataFrame({"GalaxyID": cache.ids[rows].astype(str)})
    columns, names = cache.columns, cache.sky
    if columns is None:
        return frame
    own = columns.iloc[rows].reset_index(drop=True)
    frame = pd.concat([frame, own.drop(columns=[c for c in (names.id, names.file) if c in own.columns])], axis=1)
    positions = cache.positions()
    for name, url in (("Legacy Survey", legacy_survey_url), ("SDSS", sdss_navigator_url)):
        frame[name] = ["" if positions is None or not has_position(positions[0][r], positions[1][r]) else
                       url(positions[0][r], positions[1][r]) for r in rows]
    return frame


def galaxies_table(cache: GalaxyCache, rows) -> tables.SkyTable:
    """Some galaxies of a cache as a table to send or keep: ``GalaxyID``, the catalogue's own columns (with their
    units) where there is a catalogue, and the volunteers' 37 answers (NaN where unknown), row for row."""
    rows = np.asarray(rows, dtype=np.int64)
    frame = pd.DataFrame({"GalaxyID": cache.ids[rows].astype(str)})
    answers = pd.DataFrame(np.where(cache.mask[rows], cache.labels[rows], np.nan), columns=list(tree.COLUMNS))
    frame = cache.with_catalogue(pd.concat([frame, answers], axis=1))
    return tables.SkyTable(frame, cache.units, {"source": str(cache.meta.get("source", ""))})


def catalogue_record(cache: GalaxyCache, row: int) -> pd.DataFrame:
    """One galaxy's catalogue row as a two-column table (``column``, ``value`` as text, with its unit where the
    catalogue gives one), the id and file columns left out; empty for data without a catalogue."""
    columns, names = cache.columns, cache.sky
    if columns is None:
        return pd.DataFrame({"column": [], "value": []})
    keep = [c for c in columns.columns if c not in (names.id, names.file)]
    units = cache.units
    return pd.DataFrame({"column": [str(c) for c in keep],
                         "value": [f"{columns[c].iloc[int(row)]}" + (f" {units[c]}" if units.get(c) else "")
                                   for c in keep]})


def position_markdown(cache: GalaxyCache, row: int) -> str | None:
    """``"RA 150.1234 Dec +2.3456 · [Legacy Survey](...) · [SDSS](...)"`` for one galaxy (Markdown, "made-up"
    before the demo's), "no position" for one without; None for data without positions."""
    positions = cache.positions()
    if positions is None:
        return None
    ra, dec = positions[0][int(row)], positions[1][int(row)]
    text = ("made-up " if cache.synthetic and has_position(ra, dec) else "") + position_caption(ra, dec)
    return " · ".join([text] + [f"[{name}]({url})" for name, url in viewer_links(ra, dec).items()])


# ---------------------------------------------------------------------------------------------------- galleries

_GALLERY_STYLE = (
    "<style>"
    ".gc-sky-gallery{display:flex;flex-wrap:wrap;gap:14px 10px;align-items:flex-start}"
    ".gc-sky-gallery figure{margin:0}"
    ".gc-sky-gallery img{display:block;border-radius:2px}"
    ".gc-sky-gallery figcaption{font-size:0.8rem;line-height:1.35;margin-top:3px;text-align:center}"
    ".gc-sky-gallery .gc-pos{font-size:0.75rem;opacity:0.65;font-variant-numeric:tabular-nums;white-space:nowrap}"
    ".gc-sky-gallery .gc-made-up{font-style:italic}"
    ".gc-sky-gallery a,.gc-sky-note a{color:#1c83e1;text-decoration:none}"
    ".gc-sky-note{font-size:0.8rem;opacity:0.65;margin:0 0 6px 0}"
    "</style>")


def gallery_html(images: list[str], captions: list[str] | None, ra, dec, made_up: bool = False,
                 width: int = 110) -> str:
    """Thumbnails as one HTML grid that flows with the page: each image (a ``data:`` URL or any image URL) ``width``
    px wide, with its caption, its RA and Dec on a line each (degrees, :func:`position_caption`'s format) and links
    to the Legacy Survey viewer and SDSS Navigate (opened in a new tab). ``ra`` and ``dec`` are per image, in
    degrees (NaN: "no position", no links). ``made_up`` (the demo's) sets the positions in italics under a note
    that says they are made up (a single thumbnail says "made-up position" itself). Text and URLs are
    HTML-escaped."""
    captions = list(captions) if captions is not None else [""] * len(images)
    ra, dec = np.asarray(ra, dtype=np.float64), np.asarray(dec, dtype=np.float64)
    if not len(images) == len(captions) == len(ra) == len(dec):
        raise ValueError(f"{len(images)} images, {len(captions)} captions and {len(ra)}/{len(dec)} positions")
    pos = 'class="gc-pos gc-made-up"' if made_up else 'class="gc-pos"'
    cells = []
    for src, text, a, d in zip(images, captions, ra, dec):
        lines = [html.escape(str(text))] if text else []
        if has_position(a, d):
            if made_up and len(images) == 1:
                lines.append(f"<span {pos}>made-up position</span>")
            lines += [f"<span {pos}>RA {a:.4f}</span>", f"<span {pos}>Dec {d:+.4f}</span>"]
            lines.append(" · ".join(
                f'<a href="{html.escape(url)}" target="_blank" rel="noopener noreferrer" '
                f'title="The {html.escape(name)} viewer at {html.escape(position_caption(a, d))}">'
                f'{"Legacy" if name == "Legacy Survey" else name}</a>' for name, url in viewer_links(a, d).items()))
        else:
            lines.append(f'<span class="gc-pos">{NO_POSITION}</span>')
        cells.append(f'<figure style="width:{int(width)}px"><img src="{html.escape(src)}" width="{int(width)}" '
                     f'height="{int(width)}" alt="{html.escape(str(text))}"><figcaption>{"<br>".join(lines)}'
                     f'</figcaption></figure>')
    note = ('<p class="gc-sky-note"><i>Made-up positions</i> (synthetic demo): Legacy and SDSS open the real sky '
            'there, with no demo galaxy in it.</p>' if made_up and len(images) > 1 else "")
    return _GALLERY_STYLE + note + f'<div class="gc-sky-gallery">{"".join(cells)}</div>'


def cache_gallery_html(cache: GalaxyCache, rows, captions: list[str] | None = None, width: int = 110) -> str | None:
    """:func:`gallery_html` of cached images (``figures.image_data_url``), captioned by ``captions`` (default:
    the GalaxyIDs), for data with positions; None for data without (a plain gallery then serves)."""
    positions = cache.positions()
    if positions is None:
        return None
    rows = np.asarray(rows, dtype=np.int64)
    images = [figures.image_data_url(cache.image(int(r))) for r in rows]
    captions = captions if captions is not None else [str(cache.ids[r]) for r in rows]
    return gallery_html(images, captions, positions[0][rows], positions[1][rows], cache.synthetic, width)
