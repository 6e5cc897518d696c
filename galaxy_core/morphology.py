"""Non-parametric morphology of galaxy images: Gini, M20 and rotational asymmetry, the segmentation they are
measured on, and the merger criteria drawn on them. Laid out like photutils' ``morphology`` module: plain functions of
NumPy arrays, one statistic each, with a batched table for many cutouts.

* :func:`gini`: the Gini coefficient of the pixel values, introduced to galaxy morphology by Abraham, van den Bergh &
  Nair (2003, ApJ 588, 218) and defined on the segmentation's absolute fluxes by Lotz, Primack & Madau (2004, AJ 128,
  163), with Glasser's (1962) n - 1 correction;
* :func:`m20`: the normalised second-order moment of the brightest 20 % of the flux (Lotz, Primack & Madau 2004);
* :func:`asymmetry`: the 180-degree rotational asymmetry with the sky correction (Conselice, Bershady & Jangren 2000,
  ApJ 529, 886; Conselice 2003, ApJS 147, 1);
* the merger criteria: :func:`gini_m20_merger`, G > -0.14 M20 + 0.33 (Lotz et al. 2008, ApJ 672, 177), and
  :func:`asymmetry_merger`, A > 0.35 (Conselice 2003);
* the segmentation: :func:`segment` (sky level and noise from a border frame, detection on a smoothed image, and the
  region 8-connected to the central source by the flood fill :func:`connected_region`), a simple stand-in for the
  Petrosian segmentation of Lotz et al. (2004);
* :func:`morphology_table`: all of the above for many cutouts at once (a cache's memory map is fine).

Batched over (B, S, S) arrays so that tens of thousands of small cutouts take seconds; the scalar functions call the
same code with a batch of one. Image coordinates are pixels. On stretched 8-bit colour JPEGs such as the SDSS cutouts
the values are *approximate* and the merger criteria a rough guide; see :func:`morphology_table`. Nothing here knows
about models or merger fractions; those are :mod:`galaxy_core.mergers`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["ASYMMETRY_MERGER", "GM20_INTERCEPT", "GM20_SLOPE", "asymmetry", "asymmetry_merger", "connected_region",
           "gini", "gini_m20_merger", "m20", "morphology_table", "segment"]

GM20_SLOPE, GM20_INTERCEPT = -0.14, 0.33
"""Lotz et al. (2008, ApJ 672, 177) merger line: a merger has G > -0.14 M20 + 0.33."""
ASYMMETRY_MERGER = 0.35
"""Conselice (2003, ApJS 147, 1) merger criterion: A > 0.35."""


# --------------------------------------------------------------------------------------------------------------------
# Gini, M20, asymmetry and the merger criteria


def _gini_rows(v: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Gini of each row of ``v`` (B, P) >= 0, whose selected pixels number ``n`` (B,) and whose other entries are 0.

    After an ascending sort the zeros sit first, so the selected pixel at overall position j has rank
    i = j - (P - n) within its selection; zero-valued selected pixels add nothing wherever they fall.
    """
    v = np.sort(v, axis=1)
    p = v.shape[1]
    total = v.sum(axis=1)
    weighted = v @ np.arange(1, p + 1, dtype=np.float64)
    num = 2 * weighted - (2 * (p - n) + n + 1) * total
    with np.errstate(invalid="ignore", divide="ignore"):
        g = num / (total * (n - 1))
    g[(n < 2) | (total <= 0)] = np.nan
    return g


def gini(values) -> float:
    """The Gini coefficient of pixel values (Lotz, Primack & Madau 2004, AJ 128, 163; after Glasser 1962)::

        G = 1 / (mean(|X|) n (n - 1)) * sum_i (2 i - n - 1) |X_i|,   X sorted by |X| ascending, i = 1..n

    0 when every pixel holds the same flux; 1 when all the flux is in one pixel, for any n (the n - 1 in the
    denominator is Glasser's correction that makes the maximum exactly 1); 1/3 for the values 1, 2, ..., n.
    Unchanged when all values are multiplied by a constant. Pass the pixels of the segmentation
    (``image[mask]``), sky-subtracted. Raises ValueError for fewer than 2 values, NaN, or zero total flux.
    """
    v = np.abs(np.asarray(values, dtype=np.float64).reshape(-1))
    if v.size < 2:
        raise ValueError(f"Gini needs at least 2 values, got {v.size}")
    if np.isnan(v).any():
        raise ValueError("Gini of values with NaN is undefined; mask them out first")
    if v.sum() <= 0:
        raise ValueError("Gini of values that are all 0 is undefined")
    return float(_gini_rows(v[None, :], np.array([v.size]))[0])


def _centroids(f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flux-weighted centroid (y, x) in pixels of each (S, S) image of ``f`` >= 0 (NaN where the flux is 0)."""
    s = f.shape[-1]
    grid = np.arange(s, dtype=np.float64)
    tot = f.sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return (f.sum(axis=2) @ grid) / tot, (f.sum(axis=1) @ grid) / tot


def _m20_batch(f: np.ndarray, yc: np.ndarray, xc: np.ndarray) -> np.ndarray:
    """M20 of each (S, S) image of ``f`` >= 0 (0 outside the segmentation) about centres (yc, xc)."""
    b, s, _ = f.shape
    grid = np.arange(s, dtype=np.float64)
    r2 = (grid[None, :, None] - yc[:, None, None]) ** 2 + (grid[None, None, :] - xc[:, None, None]) ** 2
    f, r2 = f.reshape(b, -1), r2.reshape(b, -1)
    mtot = (f * r2).sum(axis=1)
    fs = np.sort(f, axis=1)[:, ::-1]
    total = fs.sum(axis=1)
    target = 0.2 * total
    before = np.cumsum(fs, axis=1) - fs
    # The pixel value at which the running sum (brightest first) reaches 20 %: pixels above it count whole, and the
    # pixels equal to it share what is left of the 20 % equally. So the flux counted is exactly 20 % however many
    # pixels tie at the boundary (symmetric images have rings of equal pixels), without an argsort.
    k = np.maximum((before < target[:, None]).sum(axis=1) - 1, 0)
    cut = fs[np.arange(b), k]
    above = f > cut[:, None]
    tied = (f == cut[:, None]) & (f > 0)
    rest = target - (f * above).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.clip(rest / (cut * tied.sum(axis=1)), 0.0, 1.0)
    share = np.nan_to_num(share)
    num = (f * r2 * above).sum(axis=1) + share * (f * r2 * tied).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.log10(num / mtot)
    out[~(mtot > 0)] = np.nan
    return out


def m20(image, mask=None) -> float:
    """M20 (Lotz, Primack & Madau 2004, AJ 128, 163): the second-order moment of the brightest 20 % of the
    flux, normalised by the total second-order moment, as log10.

    M_tot = sum_i f_i r_i^2 about the centre that minimises it, which is the flux-weighted centroid; the brightest
    pixels are summed in decreasing order until their flux is exactly 20 % of the total, the pixel(s) at the boundary
    counted in part (Lotz et al. stop at the last whole pixel below 20 %, statmorph at the first above; the three
    differ by less than one pixel's flux, but only this one is exact for images with rings of equal pixels).
    Dimensionless; about -2 to -2.5 for concentrated galaxies, above about -1 for double nuclei. A 2-D Gaussian gives
    log10(1 - 0.8 (1 + ln 1.25)) = -1.668 whatever its width; two equal, well separated blobs tend to
    log10(0.2) = -0.70.

    ``image``: (S, S) sky-subtracted flux; ``mask``: (S, S) bool segmentation (None: every pixel). Negative pixels
    (sky noise) are set to 0. Returns NaN when the segmentation holds no positive flux, -inf when the brightest 20 %
    lies entirely in a pixel at the centroid. Raises ValueError for NaN in the image or mismatched shapes.
    """
    x, m = _image_and_mask(image, mask)
    f = np.where(m, np.clip(x, 0, None), 0.0)[None]
    yc, xc = _centroids(f)
    return float(_m20_batch(f, yc, xc)[0])


def _asymmetry_batch(x: np.ndarray, m: np.ndarray, cy2: np.ndarray, cx2: np.ndarray,
                     background: np.ndarray) -> np.ndarray:
    """Rotational asymmetry of each (S, S) image of ``x`` over ``m`` | its rotation, about centres at half-pixel
    positions (``cy2``, ``cx2`` are twice the centre, integers), minus ``background`` x pixels / flux."""
    b, s, _ = x.shape
    grid = np.arange(s)
    iy, ix = cy2[:, None] - grid[None, :], cx2[:, None] - grid[None, :]
    vy, vx = (iy >= 0) & (iy < s), (ix >= 0) & (ix < s)
    iy, ix = np.clip(iy, 0, s - 1), np.clip(ix, 0, s - 1)
    bi = np.arange(b)[:, None, None]
    valid = vy[:, :, None] & vx[:, None, :]
    # Pixels rotated in from outside the image count as sky (0 after sky subtraction).
    rot = np.where(valid, x[bi, iy[:, :, None], ix[:, None, :]], 0.0)
    region = m | (m[bi, iy[:, :, None], ix[:, None, :]] & valid)
    num = (np.abs(x - rot) * region).sum(axis=(1, 2))
    den = (np.abs(x) * region).sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        a = (num - background * region.sum(axis=(1, 2))) / den
    a[~(den > 0)] = np.nan
    return a


def _half_pixel_centres(f: np.ndarray, center: str) -> tuple[np.ndarray, np.ndarray]:
    b, s, _ = f.shape
    if center == "image":
        return np.full(b, s - 1), np.full(b, s - 1)
    if center != "centroid":
        raise ValueError(f"center must be 'centroid' or 'image', got {center!r}")
    yc, xc = _centroids(f)
    # A rotation about a half-pixel position maps pixels exactly onto pixels: no interpolation to blur the residual.
    yc, xc = np.where(np.isnan(yc), (s - 1) / 2, yc), np.where(np.isnan(xc), (s - 1) / 2, xc)
    return np.rint(2 * yc).astype(np.int64), np.rint(2 * xc).astype(np.int64)


def asymmetry(image, mask=None, center: str = "centroid", background: float = 0.0) -> float:
    """Rotational asymmetry (Conselice, Bershady & Jangren 2000, ApJ 529, 886; Conselice 2003, ApJS 147, 1)::

        A = sum |I - I_180| / sum |I|  -  background x (number of pixels) / sum |I|

    summed over the segmentation and its 180-degree rotation (the whole image when ``mask`` is None). 0 for a
    symmetric galaxy, up to 2 for flux with no counterpart at all; mergers typically have A > 0.35.

    ``center``: ``"centroid"`` (default) rotates about the flux-weighted centroid of the segmentation, rounded to
    the nearest half pixel so the rotation maps pixels exactly onto pixels; ``"image"`` rotates about the centre of
    the array. Conselice instead searches for the centre that minimises A, which gives slightly lower values.
    ``background``: the mean |B - B_180| per pixel of the sky (same units as the image); its contribution is
    subtracted as in Conselice et al. (2000). Default 0: no correction (a noise-free image).
    ``image``: (S, S) sky-subtracted flux. Returns NaN when the region holds no flux. Raises ValueError for NaN in
    the image or mismatched shapes.
    """
    x, m = _image_and_mask(image, mask)
    f = np.where(m, np.clip(x, 0, None), 0.0)[None]
    cy2, cx2 = _half_pixel_centres(f, center)
    return float(_asymmetry_batch(x[None], m[None], cy2, cx2, np.array([float(background)]))[0])


def _image_and_mask(image, mask) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(image, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] != x.shape[1]:
        raise ValueError(f"image must be a square 2-D array, got shape {x.shape}")
    if np.isnan(x).any():
        raise ValueError("image has NaN pixels; fill or mask them first")
    m = np.ones(x.shape, bool) if mask is None else np.asarray(mask, dtype=bool)
    if m.shape != x.shape:
        raise ValueError(f"mask shape {m.shape} does not match image shape {x.shape}")
    return x, m


def gini_m20_merger(gini, m20):
    """Lotz et al. (2008, ApJ 672, 177) merger selection: G > -0.14 M20 + 0.33.

    Scalars give a bool, arrays a bool array; NaN gives False. The line was drawn for HST images of galaxies at
    0.2 < z < 1.2 with Petrosian segmentation; on other images (such as SDSS colour JPEGs) it is a rough guide.
    """
    g, m = np.asarray(gini, dtype=np.float64), np.asarray(m20, dtype=np.float64)
    out = g > GM20_SLOPE * m + GM20_INTERCEPT
    return bool(out) if out.ndim == 0 else out


def asymmetry_merger(a):
    """Conselice (2003, ApJS 147, 1) merger selection: A > 0.35. Scalars give a bool, arrays a bool array."""
    out = np.asarray(a, dtype=np.float64) > ASYMMETRY_MERGER
    return bool(out) if out.ndim == 0 else out

# --------------------------------------------------------------------------------------------------------------------
# Segmentation and the table of many cutouts


def _dilate8(m: np.ndarray) -> np.ndarray:
    """3 x 3 binary dilation of each (S, S) mask of ``m`` (B, S, S): one step of an 8-connected flood fill."""
    d = m.copy()
    d[:, 1:] |= m[:, :-1]
    d[:, :-1] |= m[:, 1:]
    e = d.copy()
    e[:, :, 1:] |= d[:, :, :-1]
    e[:, :, :-1] |= d[:, :, 1:]
    return e


def connected_region(mask, seed) -> np.ndarray:
    """The pixels of ``mask`` 8-connected to the ``seed`` pixels: a breadth-first flood fill, done for a whole batch
    at once by growing the region one ring of neighbours per step until it stops changing.

    ``mask`` and ``seed``: bool arrays of shape (S, S) or (B, S, S). Seeds outside ``mask`` are ignored.
    """
    allowed = np.asarray(mask, dtype=bool)
    region = np.asarray(seed, dtype=bool) & allowed
    single = allowed.ndim == 2
    if single:
        allowed, region = allowed[None], region[None]
    active = np.flatnonzero(region.any(axis=(1, 2)))
    # Only images still growing are worked on, so one large region does not slow down the rest of the batch.
    while len(active):
        cur = region[active]
        grown = _dilate8(cur) & allowed[active]
        changed = (grown != cur).any(axis=(1, 2))
        region[active] = grown
        active = active[changed]
    return region[0] if single else region


def _box3(x: np.ndarray) -> np.ndarray:
    """3 x 3 box mean of each (S, S) image of ``x`` (B, S, S), edges padded by repetition."""
    p = np.pad(x, ((0, 0), (1, 1), (1, 1)), mode="edge")
    s = x.shape[-1]
    return sum(p[:, i:i + s, j:j + s] for i in range(3) for j in range(3)) / 9.0


def _border(s: int) -> np.ndarray:
    w = max(1, s // 8)
    b = np.ones((s, s), bool)
    b[w:s - w, w:s - w] = False
    return b


def _segment_batch(x: np.ndarray, nsigma: float) -> dict:
    """Sky level and noise from the border, sky subtraction, detection on a 3 x 3 smoothed image, and the region
    connected to the brightest detected pixel near the centre. ``x`` (B, S, S) float64."""
    b, s, _ = x.shape
    border = _border(s)
    sky = np.median(x[:, border], axis=1)
    x = x - sky[:, None, None]
    sm = _box3(x)
    edge = sm[:, border]
    sigma = 1.4826 * np.median(np.abs(edge - np.median(edge, axis=1, keepdims=True)), axis=1)
    # Where the sky has no measurable noise (synthetic images) a floor of 0.1 % of the peak keeps every positive
    # Gaussian tail from joining all sources into one.
    level = np.maximum(nsigma * sigma, 1e-3 * sm.reshape(b, -1).max(axis=1))
    detected = sm > level[:, None, None]
    r = max(1, s // 16)
    c0, c1 = (s - 1) // 2 - r, s // 2 + r + 1
    core = np.full(sm.shape, -np.inf)
    core[:, c0:c1, c0:c1] = np.where(detected[:, c0:c1, c0:c1], sm[:, c0:c1, c0:c1], -np.inf)
    flat = core.reshape(b, -1)
    best = flat.argmax(axis=1)
    seed = np.zeros((b, s * s), bool)
    has = np.isfinite(flat[np.arange(b), best])
    seed[np.arange(b)[has], best[has]] = True
    mask = connected_region(detected, seed.reshape(b, s, s))
    # Sky asymmetry per pixel, mean |B - B_180|, from the border frame (which maps onto itself under a rotation about
    # the array centre), over pixels where neither the pixel nor its rotated twin holds a detection. (On the 96 px
    # pack this separates volunteer mergers better than a median over the whole border or a noise-based estimate.)
    flip = x[:, ::-1, ::-1]
    ok = border & ~detected & ~detected[:, ::-1, ::-1]
    cnt = ok.sum(axis=(1, 2))
    bkg = (np.abs(x - flip) * ok).sum(axis=(1, 2)) / np.maximum(cnt, 1)
    return {"image": x, "mask": mask, "sky": sky, "sigma": sigma, "background": bkg}


def _grey(images: np.ndarray) -> np.ndarray:
    a = np.asarray(images)
    if a.ndim == 4:
        return a.astype(np.float64).mean(axis=1)
    if a.ndim == 3:
        return a.astype(np.float64)
    raise ValueError(f"images must be (N, C, S, S) or (N, S, S), got shape {a.shape}")


def segment(image, nsigma: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """The galaxy's pixels in one cutout: returns (sky-subtracted image, segmentation mask), both (S, S).

    ``image``: (S, S) grey, or (C, S, S) colour (channels are averaged; in SDSS gri colour cutouts the green channel
    is roughly the r band). The sky level is the median of a border frame S/8 wide, its noise sigma 1.4826 x the MAD
    of that frame after a 3 x 3 box smoothing; pixels whose smoothed value is more than ``nsigma`` sigma above the
    sky are detected (at least 0.1 % of the peak, for noise-free images), and the mask is the detected region
    8-connected to the brightest detected pixel within S/16 of the centre (empty when there is none). A simple
    stand-in for the Petrosian segmentation of Lotz et al. (2004).
    """
    a = np.asarray(image)
    batch = a[None] if a.ndim == 3 else (a[None, None] if a.ndim == 2 else None)
    if batch is None or batch.shape[-1] != batch.shape[-2]:
        raise ValueError(f"image must be (S, S) or (C, S, S), got shape {a.shape}")
    seg = _segment_batch(_grey(batch), nsigma)
    return seg["image"][0], seg["mask"][0]


def morphology_table(images, ids, rows=None, nsigma: float = 2.0, chunk: int = 256) -> pd.DataFrame:
    """Gini, M20 and asymmetry of many cutouts, with the Lotz et al. (2008) and Conselice (2003) merger flags.

    ``images``: (N, 3, S, S) uint8 (a cache's memory map is fine) or (N, S, S); ``ids``: N galaxy ids aligned with
    ``images``; ``rows``: which images to measure (default all). Each image is made grey (mean of the channels),
    segmented with :func:`segment` (``nsigma``), and measured on its sky-subtracted pixels: :func:`gini`,
    :func:`m20` about the flux-weighted centroid, and :func:`asymmetry` about that centroid with the sky
    correction estimated from the border. Returns columns GalaxyID, gini, m20, asymmetry, gm20_merger, asym_merger
    and n_pixels (segmentation size); measurements are NaN and flags False where the segmentation is empty.

    Approximate, by construction. These statistics were defined on linear, sky-subtracted CCD images with Petrosian
    segmentation. SDSS colour JPEGs are asinh-stretched (Lupton et al. 2004, PASP 116, 133), 8-bit and compressed:
    the stretch flattens bright cores (lowering Gini and raising M20) and lifts faint tidal features (raising
    asymmetry), so values are not on the scale of the papers' thresholds and the merger flags are a rough guide,
    best used to rank galaxies or to compare groups measured the same way. On the 7,452 labelled galaxies of the
    96 px pack (at 80 px), galaxies with volunteer Class8.6 > 0.5 have higher asymmetry and M20 than the rest (the
    probability that a random merger ranks above a random non-merger is about 0.74 for A and 0.79 for M20) but
    *lower* Gini (0.33), and A > 0.35 flags about a quarter of all galaxies: use the flags to compare groups, not
    as a merger fraction. Vectorised in chunks of ``chunk`` images: 20,000 80 px cutouts take about 35 s on one
    CPU core.
    """
    ids = np.asarray(ids)
    n_all = len(images)
    if len(ids) != n_all:
        raise ValueError(f"ids ({len(ids)}) must be aligned with images ({n_all})")
    rows = np.arange(n_all) if rows is None else np.asarray(rows, dtype=np.int64).reshape(-1)
    if len(rows) == 0:
        raise ValueError("no images to measure (rows is empty)")
    cols: dict[str, list] = {"gini": [], "m20": [], "asymmetry": [], "n_pixels": []}
    for s in range(0, len(rows), chunk):
        idx = rows[s:s + chunk]
        seg = _segment_batch(_grey(images[idx]), nsigma)
        x, m = seg["image"], seg["mask"]
        f = np.where(m, np.clip(x, 0, None), 0.0)
        n = m.sum(axis=(1, 2))
        cols["gini"].append(_gini_rows(np.abs(np.where(m, x, 0.0)).reshape(len(idx), -1), n))
        yc, xc = _centroids(f)
        cols["m20"].append(_m20_batch(f, yc, xc))
        cy2, cx2 = _half_pixel_centres(f, "centroid")
        cols["asymmetry"].append(_asymmetry_batch(x, m, cy2, cx2, seg["background"]))
        cols["n_pixels"].append(n)
    out = pd.DataFrame({"GalaxyID": ids[rows].astype(str), **{k: np.concatenate(v) for k, v in cols.items()}})
    out["gm20_merger"] = gini_m20_merger(out["gini"].to_numpy(), out["m20"].to_numpy())
    out["asym_merger"] = asymmetry_merger(out["asymmetry"].to_numpy())
    return out[["GalaxyID", "gini", "m20", "asymmetry", "gm20_merger", "asym_merger", "n_pixels"]]
