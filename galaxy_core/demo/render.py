"""Drawing a synthetic galaxy (``synthetic.sample_params``) as an SDSS-like gri colour cutout.

The light profiles are simple parametric models: Sersic spheroids, exponential disks with bars, logarithmic spiral arms
and rings, edge-on disks with bulges and dust lanes, merging pairs with tidal tails, clumpy irregulars, stars and
artefacts, plus foreground stars and background galaxies. They are rendered like SDSS colour cutouts: a dark but not
black sky, Gaussian PSF blur, Poisson-like and read noise, and an asinh stretch (Lupton et al. 2004) to 8 bits.

Units: image sizes in pixels; the parameters' lengths are fractions of the image width, brightnesses are in units of
the sky noise sigma (see ``synthetic``).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from PIL import Image

__all__ = ["render_galaxy"]

# Colours as (R, G, B) = (i, r, g) band weights, the SDSS colour-composite convention.
_RED = np.array([1.0, 0.74, 0.46], np.float32)      # old stars: ellipticals, bulges, bars
_DISK = np.array([0.80, 0.80, 0.82], np.float32)
_BLUE = np.array([0.55, 0.72, 1.0], np.float32)     # young stars: arms, knots, rings, tails
_DUST = np.array([0.55, 0.75, 1.0], np.float32)     # extinction per band: bluer light is absorbed more


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


@lru_cache(maxsize=8)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    c = np.arange(size, dtype=np.float32) + 0.5
    return np.broadcast_to(c[None, :], (size, size)), np.broadcast_to(c[:, None], (size, size))


def _fft_size(size: int) -> int:
    """Smallest 2-3-5-smooth length with a margin: FFTs of 424 (= 8 x 53) are slow, and the margin stops the blur
    wrapping light from one edge to the other."""
    n = size + 8
    while True:
        m = n
        for f in (2, 3, 5):
            while m % f == 0:
                m //= f
        if m == 1:
            return n
        n += 1


@lru_cache(maxsize=8)
def _freq2(n: int) -> np.ndarray:
    fy = np.fft.fftfreq(n)[:, None]
    fx = np.fft.rfftfreq(n)[None, :]
    return (fx * fx + fy * fy).astype(np.float32)


def _b_n(n: float) -> float:
    # Ciotti & Bertin (1999) expansion: b_n so that r_e encloses half the light.
    return 2.0 * n - 1.0 / 3.0 + 4.0 / (405.0 * n) + 46.0 / (25515.0 * n * n)


def _sersic_lum(re: float, n: float, q: float) -> float:
    """Total flux of a Sersic profile with unit surface brightness at r_e."""
    b = _b_n(n)
    return 2 * math.pi * n * q * re * re * math.exp(b) * b ** (-2 * n) * math.gamma(2 * n)


def _r90_over_re(n: float) -> float:
    # Petrosian R90/R_e: ~2.3 for an exponential, ~2.9 for de Vaucouleurs (Petrosian apertures miss the n=4 wings).
    return 2.3 + 0.2 * (min(max(n, 1.0), 4.0) - 1.0)


def _ell(x, y, cx, cy, pa, q, c=2.0):
    """Coordinates along/across the major axis (across stretched by 1/q) and the elliptical radius, in pixels."""
    dx, dy = x - cx, y - cy
    cs, sn = math.cos(pa), math.sin(pa)
    u = dx * cs + dy * sn
    v = (dy * cs - dx * sn) * (1.0 / q)
    if c == 2.0:
        r = np.sqrt(u * u + v * v)
    else:   # c > 2 makes boxy isophotes
        r = (np.abs(u) ** c + np.abs(v) ** c) ** (1.0 / c)
    return u, v, r


def _sersic(r, re: float, n: float) -> np.ndarray:
    b = _b_n(n)
    # a half-pixel core keeps the n~4 cusp finite without changing the look after the PSF
    x = np.sqrt(r * r + 0.25) * (1.0 / re)
    if n == 1.0:
        return np.exp(-b * (x - 1.0))
    return np.exp(-b * (x ** (1.0 / n) - 1.0))


def _window(size: int, cx: float, cy: float, rad: float):
    x0, x1 = max(int(cx - rad), 0), min(int(cx + rad) + 2, size)
    y0, y1 = max(int(cy - rad), 0), min(int(cy + rad) + 2, size)
    if x0 >= x1 or y0 >= y1:
        return None
    return slice(y0, y1), slice(x0, x1)


def _add_local(img, cx, cy, rad, sed, fn) -> None:
    """Add ``fn(x, y)`` times a colour only inside a box around (cx, cy): most sources are small."""
    size = img.shape[1]
    w = _window(size, cx, cy, rad)
    if w is None:
        return
    x, y = _grid(size)
    img[:, w[0], w[1]] += sed[:, None, None] * fn(x[w], y[w])[None]


def _gauss_blob(img, cx, cy, sigma, amp, sed) -> None:
    sigma = max(sigma, 0.5)
    _add_local(img, cx, cy, 4 * sigma, sed,
               lambda x, y: amp * np.exp(((x - cx) ** 2 + (y - cy) ** 2) * (-0.5 / sigma ** 2)))


def _lowres_noise(rng, size: int, cells: int, power: float = 1.0) -> np.ndarray:
    """Smooth positive random field (mean ~1) for clumpy star formation and patchy dust."""
    small = rng.random((cells, cells), dtype=np.float32) ** power
    big = Image.fromarray(small).resize((size, size), Image.Resampling.BICUBIC)
    f = np.asarray(big, dtype=np.float32)
    return np.clip(f, 0.0, None) * (1.0 / max(float(small.mean()), 1e-3))


def _spiral(u, v, m: int, pitch_deg: float, phase: float, sharp: float):
    """Logarithmic spiral arm pattern in [0, 1] (1 on an arm) in the disk plane."""
    theta = np.arctan2(v, u)
    lnr = np.log(np.sqrt(u * u + v * v) + 1.0)
    k = m / math.tan(math.radians(pitch_deg))
    return (0.5 + 0.5 * np.cos(m * theta - k * lnr + phase)) ** sharp


def _spheroid(img, x, y, cx, cy, r90, n, q, pa, amp, sed, c=2.0):
    re = r90 / _r90_over_re(n)
    _, _, r = _ell(x, y, cx, cy, pa, q, c)
    img += sed[:, None, None] * (amp * _sersic(r, re, n))[None]


def _render_disk(img, p, x, y, cx, cy, R, rng) -> None:
    q, pa, amp = p["q"], p["pa"], p["brightness"]
    re = R / _r90_over_re(1.0)
    u, v, r = _ell(x, y, cx, cy, pa, q)
    disk = _sersic(r, re, 1.0)
    bt = p["bulge_frac"]
    if bt > 0:
        bre = re * _u(rng, 0.15, 0.3)
        bn = _u(rng, 2.0, 4.0)
        # bulge amplitude from the light ratio B/T = L_b / (L_b + L_d)
        bamp = amp * bt / (1 - bt) * _sersic_lum(re, 1.0, q) / _sersic_lum(bre, bn, min(1.0, q + 0.3))
        _, _, rb = _ell(x, y, cx, cy, pa, min(1.0, q + 0.3))
        img += _RED[:, None, None] * (bamp * _sersic(rb, bre, bn))[None]
    base = 1.0 - 0.55 * p["arm_strength"]
    img += _DISK[:, None, None] * (amp * base * disk)[None]
    inner = re * (2.2 * p["bar_len"] if p["bar"] else _u(rng, 0.4, 0.8))
    if p["n_arms"] > 0:
        m = p["n_arms"]
        sharp = 3.0 if m <= 2 else 2.0
        pat = _spiral(u, v, m, p["pitch_deg"], _u(rng, 0, 2 * math.pi), sharp)
        if m >= 5:
            # flocculent: many short arm segments rather than grand design
            pat = pat * _lowres_noise(rng, img.shape[1], 10, 2.0)
        taper = 1.0 - np.exp(-(r * (1.0 / inner)) ** 2)
        knots = 0.6 + 0.4 * _lowres_noise(rng, img.shape[1], 24, 3.0)
        arms = (amp * 2.2 * p["arm_strength"]) * _sersic(r, re * 1.15, 1.0) * pat * taper * knots
        img += _BLUE[:, None, None] * arms[None]
    if p["bar"]:
        L = p["bar_len"] * R
        ub, vb, _ = _ell(u, v, 0.0, 0.0, p["bar_angle"], 1.0)
        rb2 = (ub * (1.0 / L)) ** 2 + (vb * (1.0 / (0.28 * L))) ** 2
        bar = np.clip(1.0 - rb2, 0.0, None) ** 2
        img += _RED[:, None, None] * (amp * _u(rng, 2.5, 4.0) * bar)[None]
    if p["ring"]:
        Rr = p["ring_radius"] * R
        w = Rr * _u(rng, 0.08, 0.16)
        if p["collisional"]:
            # the intruder shifts the nucleus off the ring's centre
            u = u + _u(rng, -0.3, 0.3) * Rr
            v = v + _u(rng, -0.3, 0.3) * Rr
        rr = np.sqrt(u * u + v * v)
        ring = np.exp(-0.5 * ((rr - Rr) * (1.0 / w)) ** 2) * (0.5 + 0.5 * _lowres_noise(rng, img.shape[1], 16, 2.0))
        img += _BLUE[:, None, None] * (amp * _u(rng, 1.2, 2.2) * ring)[None]


def _render_edge_on(img, p, x, y, cx, cy, R, rng) -> None:
    amp, pa, q = p["brightness"] * 1.6, p["pa"], p["q"]
    re = R / _r90_over_re(1.0)
    u, v, r = _ell(x, y, cx, cy, pa, q)
    img += _DISK[:, None, None] * (amp * _sersic(r, re, 1.0))[None]
    if p["bulge_shape"] != "none":
        bt = p["bulge_frac"]
        boxy = p["bulge_shape"] == "boxy"
        bq, bn, c = (0.8, 1.5, 3.5) if boxy else (_u(rng, 0.65, 0.9), _u(rng, 2.5, 4.0), 2.0)
        bre = re * _u(rng, 0.3, 0.45)
        bamp = amp * bt / (1 - bt) * _sersic_lum(re, 1.0, q) / _sersic_lum(bre, bn, bq)
        _spheroid(img, x, y, cx, cy, bre * _r90_over_re(bn), bn, bq, pa, bamp, _RED, c)
    if p["dust_lane"]:
        # the lane sits a little off the midplane because no disk is exactly edge-on
        off = _u(rng, -0.3, 0.3)
        w = _u(rng, 0.25, 0.45)
        tau = _u(rng, 1.0, 2.5) * np.exp(-0.5 * ((v - off) * (1.0 / w)) ** 2) * np.exp(-np.abs(u) * (1.0 / (1.5 * R)))
        tau = tau * (0.7 + 0.3 * _lowres_noise(rng, img.shape[1], 20))
        img *= np.exp(-_DUST[:, None, None] * tau[None])


def _tail(img, x, y, cx, cy, R, strength, amp, rng) -> None:
    """A curved tidal tail: one loose spiral arm starting outside the body, clumpy and blue."""
    q = _u(rng, 0.5, 1.0)
    u, v, r = _ell(x, y, cx, cy, _u(rng, 0, math.pi), q)
    pat = _spiral(u, v, 1, _u(rng, 25.0, 40.0), _u(rng, 0, 2 * math.pi), 6.0)
    radial = np.exp(-r * (1.0 / (0.9 * R))) * (1.0 - np.exp(-(r * (1.0 / (0.6 * R))) ** 2))
    t = amp * strength * 3.0 * pat * radial * _lowres_noise(rng, img.shape[1], 14, 1.5)
    img += _BLUE[:, None, None] * t[None]


def _render_merger(img, p, x, y, cx, cy, R, rng) -> None:
    amp = p["brightness"]
    ang = p["companion_angle"]
    d = p["companion_sep"] * R
    cx2, cy2 = cx + d * math.cos(ang), cy + d * math.sin(ang)
    r1, r2 = 0.7 * R, 0.7 * R * math.sqrt(p["companion_flux"])
    col1 = _RED if p["sersic_n"] > 2.5 else 0.5 * (_RED + _DISK)
    col2 = _RED if p["companion_n"] > 2.5 else 0.5 * (_DISK + _BLUE)
    _spheroid(img, x, y, cx, cy, r1, p["sersic_n"], p["q"], p["pa"], amp, col1)
    _spheroid(img, x, y, cx2, cy2, r2, p["companion_n"], _u(rng, 0.5, 1.0), _u(rng, 0, math.pi),
              amp * p["companion_flux"], col2)
    _tail(img, x, y, cx, cy, R, p["tail_strength"], amp, rng)
    if p["n_tails"] > 1:
        _tail(img, x, y, cx2, cy2, R, p["tail_strength"], amp, rng)
    if p["bridge"]:
        dx, dy = cx2 - cx, cy2 - cy
        t = np.clip(((x - cx) * dx + (y - cy) * dy) * (1.0 / (dx * dx + dy * dy + 1e-6)), 0.0, 1.0)
        dist2 = (x - cx - t * dx) ** 2 + (y - cy - t * dy) ** 2
        w = 0.12 * R
        img += _BLUE[:, None, None] * (amp * 0.5 * p["tail_strength"] * np.exp(dist2 * (-0.5 / w ** 2)))[None]


def _render_irregular(img, p, x, y, cx, cy, R, rng) -> None:
    amp = p["brightness"] * 0.7
    re = R / _r90_over_re(1.0)
    # an asymmetric, lumpy low-surface-brightness body
    _, _, r = _ell(x, y, cx + _u(rng, -0.15, 0.15) * R, cy + _u(rng, -0.15, 0.15) * R, p["pa"], p["q"])
    body = amp * _sersic(r, re, 1.0) * (0.4 + 0.6 * _lowres_noise(rng, img.shape[1], 8, 1.5))
    img += (0.5 * (_DISK + _BLUE))[:, None, None] * body[None]
    for _ in range(p["n_clumps"]):
        ox, oy = rng.normal(0.0, 0.45 * R, 2)
        _gauss_blob(img, cx + ox, cy + oy, _u(rng, 0.04, 0.12) * R, amp * _u(rng, 1.0, 5.0), _BLUE)


def _render_elliptical(img, p, x, y, cx, cy, R, rng) -> None:
    # spheroids have high surface brightness: without the boost their n~4 wings vanish into the sky by R90
    _spheroid(img, x, y, cx, cy, R, p["sersic_n"], p["q"], p["pa"], 2.5 * p["brightness"], _RED)


def _star_colour(rng) -> np.ndarray:
    t = _u(rng, 0.0, 1.0)   # cool (red) ... hot (blue)
    return ((1 - t) * np.array([1.0, 0.8, 0.55]) + t * np.array([0.8, 0.88, 1.0])).astype(np.float32)


def _point(img, cx, cy, flux, sed, core: float = 0.5) -> None:
    """A star before the PSF: a small core (the blur gives it its shape) and, if bright, a scattered-light halo."""
    _gauss_blob(img, cx, cy, core, flux, sed)
    if flux > 800:
        a = max(3.0 * img.shape[1] / 424.0, core)
        _add_local(img, cx, cy, 30 * a, sed,
                   lambda x, y: 0.01 * flux / (1.0 + ((x - cx) ** 2 + (y - cy) ** 2) * (1.0 / a ** 2)) ** 1.5)


def _spikes(img, cx, cy, flux, pa, length, sed) -> None:
    k = img.shape[1] / 424.0
    w, l0 = max(0.5, 1.2 * k), max(1.0, 6.0 * k)
    for ang in (pa, pa + math.pi / 2):
        def fn(x, y, ang=ang):
            u, v, _ = _ell(x, y, cx, cy, ang, 1.0)
            return 0.05 * flux * np.exp(-0.5 * (v * (1.0 / w)) ** 2) / (1.0 + np.abs(u) * (1.0 / l0)) ** 1.3
        _add_local(img, cx, cy, length, sed, fn)


def _render_star(img, p, x, y, cx, cy, R, rng) -> None:
    # GZ2 cut each object out at a scale set by its own size, so a star's frame is zoomed in and the star fills a
    # good part of it: its PSF is drawn here on the scale of r90, not of the frame's pixels.
    size = img.shape[1]
    k = size / 424.0
    flux = p["brightness"]
    sed = _star_colour(rng)
    core = _u(rng, 0.12, 0.22) * R
    if p["artefact"] == "star":
        _point(img, cx, cy, flux, sed, core)
        _spikes(img, cx, cy, flux * 0.3, p["pa"], 0.45 * size, sed)
    elif p["artefact"] == "saturated":
        # a flat-topped core and a bleed trail along the CCD columns, as a saturated star leaves them
        rad = 1.5 * core
        _add_local(img, cx, cy, 4 * rad, sed, lambda x, y: np.minimum(
            1500.0, flux * np.exp(-0.5 * ((x - cx) ** 2 + (y - cy) ** 2) * (1.0 / rad ** 2))))
        _point(img, cx, cy, flux, sed, core)
        length = _u(rng, 0.15, 0.4) * size
        wb = max(0.6, 2.5 * k)
        _add_local(img, cx, cy, length, np.ones(3, np.float32), lambda x, y: 1200.0 * np.exp(
            -0.5 * ((x - cx) * (1.0 / wb)) ** 2) * (np.abs(y - cy) < length))
        _spikes(img, cx, cy, flux * 0.3, p["pa"], 0.4 * size, sed)
    else:
        # a faint compact galaxy crossed by a satellite trail; the gri bands were exposed at different moments, so
        # the trail lands at a different offset in each colour channel
        _spheroid(img, x, y, cx, cy, 0.4 * R, 2.0, _u(rng, 0.6, 1.0), p["pa"], 25.0, _RED)
        ang = p["pa"]
        d0 = _u(rng, -0.05, 0.05) * size
        step = _u(rng, 3.0, 8.0) * k
        w = max(0.5, 1.0 * k)
        dist = (x - cx) * math.sin(ang) - (y - cy) * math.cos(ang)
        bands = [0, 1, 2] if rng.random() < 0.6 else [int(rng.integers(0, 3))]
        for c in bands:
            img[c] += _u(rng, 15.0, 60.0) * np.exp(-0.5 * ((dist - d0 - c * step) * (1.0 / w)) ** 2)


_RENDERERS = {
    "elliptical": _render_elliptical, "disk": _render_disk, "ring": _render_disk, "edge_on": _render_edge_on,
    "merger": _render_merger, "irregular": _render_irregular, "star": _render_star,
}


def _field(img, p, cx, cy, R, rng) -> None:
    """Foreground stars and small background galaxies, kept clear of the target so labels stay about it."""
    size = img.shape[1]

    def spot():
        for _ in range(20):
            fx, fy = rng.uniform(0, size, 2)
            if math.hypot(fx - cx, fy - cy) > 1.6 * R:
                break
        return float(fx), float(fy)

    for _ in range(int(rng.poisson(3.0))):
        fx, fy = spot()
        _point(img, fx, fy, float(10 ** rng.uniform(1.0, 3.3)), _star_colour(rng))
    for _ in range(int(rng.poisson(2.0))):
        fx, fy = spot()
        n = _u(rng, 1.0, 4.0)
        r90 = _u(rng, 0.008, 0.025) * size
        sed = _RED if n > 2.5 else _DISK
        amp = _u(rng, 3.0, 15.0)
        q, pa = _u(rng, 0.3, 1.0), _u(rng, 0, math.pi)
        re = r90 / _r90_over_re(n)
        _add_local(img, fx, fy, 3 * r90, sed,
                   lambda xx, yy: amp * _sersic(_ell(xx, yy, fx, fy, pa, q)[2], re, n))


def _native_size(size: int) -> int:
    # GZ2 cutouts were resampled from SDSS frames to 0.02 petroR90 per pixel, about twice finer than the 0.396"
    # camera pixels for a typical galaxy: the Kaggle images carry about half their pixel count in detail, and their
    # noise is correlated over ~2 px. Rendering at half size and enlarging reproduces that, at a quarter of the cost.
    return size // 2 if size >= 200 else size


def render_galaxy(params: dict, size: int = 424, rng: np.random.Generator | None = None) -> np.ndarray:
    """Render one synthetic object as an SDSS-like gri colour cutout: a (size, size, 3) uint8 RGB array.

    ``size`` is in pixels; the object's scale follows ``params['r90']`` as a fraction of the frame, so a smaller
    ``size`` gives the same picture at lower resolution. ``rng`` draws the details the parameters leave open (star
    forming knots, field stars, noise), so the same params and seed give the same pixels. Flux is in units of the
    sky noise; the PSF is Gaussian (``params['psf']``, 1-2 px at 424 px); noise is read noise plus a Poisson-like
    term growing with the flux; the asinh stretch (Lupton et al. 2004) keeps colours and leaves the sky dark grey.
    From 200 px up the picture is drawn at half size (the "camera" resolution of GZ2 cutouts) and enlarged.
    """
    if rng is None:
        rng = np.random.default_rng()
    size = int(size)
    if size < 16:
        raise ValueError(f"size must be at least 16 pixels, got {size}")
    n = _native_size(size)
    x, y = _grid(n)
    img = np.zeros((3, n, n), np.float32)
    cx, cy = n / 2 + params["x0"] * n, n / 2 + params["y0"] * n
    R = params["r90"] * n
    _RENDERERS[params["kind"]](img, params, x, y, cx, cy, R, rng)
    img *= np.asarray(params["colour"], np.float32)[:, None, None]
    _field(img, params, cx, cy, R, rng)

    sigma = params["psf"] * n
    if sigma > 0.2:
        m = _fft_size(n)
        tf = np.exp(_freq2(m) * np.float32(-2 * math.pi ** 2 * sigma ** 2))
        spec = np.fft.rfft2(img, s=(m, m), axes=(1, 2)) * tf
        img = np.fft.irfft2(spec, s=(m, m), axes=(1, 2))[:, :n, :n].astype(np.float32)

    # Sky-subtracted noise: unit sky+read noise plus a photon term for the source (gain ~ 10 sky-sigma units).
    noise = rng.standard_normal((3, n, n), dtype=np.float32)
    img += noise * np.sqrt(1.0 + np.clip(img, 0.0, None) * 0.1)

    soft, top = 4.0, 500.0
    t = img.mean(axis=0) * (1.0 / soft)
    t = np.where(np.abs(t) < 1e-4, np.float32(1e-4), t)
    scale = np.arcsinh(t) / (t * (soft * math.asinh(top / soft)))
    out = img * scale[None] + np.float32(params["sky"])
    out = (np.clip(out, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8).transpose(1, 2, 0)
    if n != size:
        return np.asarray(Image.fromarray(np.ascontiguousarray(out)).resize(
            (size, size), Image.Resampling.BICUBIC))
    return np.ascontiguousarray(out)

