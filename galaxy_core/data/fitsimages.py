"""FITS cutouts: a galaxy's FITS image(s) into the RGB picture a JPEG of it would be, and the part of it
that the model's field of the Galaxy Zoo 2 frame covers. ``images.load_image`` crops and resizes it exactly as it
does a JPEG, into the same (3, size, size) uint8 arrays.

Layouts, one galaxy each (extensions ``.fits``, ``.fit``, ``.fts``, and gzip-compressed ``.fits.gz``, ``.fit.gz``,
``.fts.gz``, in any case):

- ``<id>.fits`` holding one 2-D image, in the primary HDU or the first image HDU with data: a single band, shown
  grey (the same band in red, green and blue, scaled as r);
- ``<id>.fits`` holding a cube of shape (3, H, W): the g, r and i planes, in that order;
- ``<id>_g.fits``, ``<id>_r.fits`` and ``<id>_i.fits``: one 2-D band per file, all of one shape. A folder listing
  stores one of them (``catalog.list_images`` stores the r file) and :func:`band_paths` finds the others. A galaxy
  with only some of the three is reported with the bands missing and skipped, never read as a single band.

Leading axes of length 1, as in (1, H, W) or (1, 1, H, W), are dropped. Refused with an ``ImageError``, so that
callers skip and report the file like a corrupt JPEG: an unreadable, empty, truncated or foreign file; no image
HDU; any other shape (4-D, a cube of 2 or 5 planes); a band with no finite pixel (NaN only); bands of different
shapes; non-square pixels; a side under 8 px or more pixels than Pillow's decompression-bomb limit. NaN or infinite
pixels in an otherwise good image are set to 0, i.e. to empty sky.

The composite. SDSS made the colour JPEGs that Galaxy Zoo 2 showed (and the Kaggle set holds) from its g, r, i
corrected frames, mapping i to red, r to green and g to blue, with the asinh algorithm of Lupton et al. (2004, PASP
116, 133) "with some modifications" (SDSS DR16, "JPEG Images on SkyServer"), whose parameters it does not publish.
:func:`composite` calls ``astropy.visualization.make_lupton_rgb(i, r, g, ...)`` with the SDSS rendering of the
Legacy Surveys viewer (D. Lang, ``sdss_rgb`` in github.com/legacysurvey/imagine, ``map/views.py``), made for SDSS
gri in nanomaggies: each band times :data:`BAND_SCALES` (g 2.5, r 1.5, i 1.0 per nanomaggie), then the curve
f(I) = asinh(20 I) / sqrt(20) of the bands' mean I. make_lupton_rgb's curve, asinh(Q I / stretch) x 0.1 /
asinh(0.1 Q), is the same one for Q = 10 sinh(0.1 sqrt(20)) = 4.623 (:data:`LUPTON_Q`) and stretch = Q / 20 =
0.2311 (:data:`LUPTON_STRETCH`). Black is zero flux (:data:`MINIMUM`): Lang adds 0.02 to every band first, which
lifts empty sky to 22/255, where the GZ2 JPEGs' sky lies at a median of 4/255 (90th percentile 10/255, on the 300
galaxies of ``gz2-kaggle-424-sample``). Where a pixel saturates, make_lupton_rgb scales its three bands down
together, keeping its colour, as Lupton et al. propose (Lang's viewer clips each band instead).

The composite's brightness depends on the flux units. These values are for nanomaggies (SDSS frames since DR8; one
nanomaggie is 22.5 AB mag, 3.631 microjansky); in other units multiply ``stretch`` and ``minimum`` by the number of
your units in one nanomaggie (for SDSS counts, 1 / the frame's ``NMGY`` card), which gives the same composite. Pass
another :class:`Composite` to override them, or write ``"fits_composite": {"stretch": ...}`` into the folder's
``galaxy_core.json``. Rows are turned over so that the first FITS row is at the bottom, as FITS viewers show it;
nothing is rotated (the model trained with random rotations and flips).

Field of view. The project measures every field as a fraction of the 424 px Kaggle/GZ2 frame (``images``). GZ2
scaled each cutout to 0.02 x petroR90 arcsec per pixel (Willett et al. 2013, MNRAS 435, 2835), so the frame is
424 x 0.02 x R90 = 8.48 R90 arcsec wide. A FITS cutout knows its own field when its header gives both

- the pixel scale: a celestial WCS (``astropy.wcs.utils.proj_plane_pixel_scales``), else a ``CD`` matrix or
  ``CDELT`` (degrees unless ``CUNIT1`` says arcmin or arcsec), in arcsec per pixel;
- the frame's width: 8.48 x the ``PETROR90`` card (arcsec; that galaxy's own, GZ2's rule), else the folder's
  ``frame_arcsec`` in arcsec (``galaxy_core.json``, ``--frame-arcsec``).

Its own source_fov is then (shorter side in px x scale) / frame, and the loader keeps the central
model field / source_fov of it: exactly what the model's field shows of a GZ2 original. A cutout too small for that
is refused, saying how much is missing. Without a scale or a frame, a FITS file is treated like a JPEG: the folder's
declared ``source_fov`` applies, and an undeclared folder is refused as one of JPEGs is (or, when the folder's field
came from other FITS files' headers, that one file is refused: ``FitsSettings.own_field_only``).

Worked example: an SDSS cutout of 256 x 256 px at 0.396 arcsec/px is 101.4 arcsec wide. With PETROR90 = 10 arcsec
the GZ2 frame is 84.8 arcsec wide, so the cutout's source_fov is 101.4 / 84.8 = 1.195 (it shows more than the
frame). The shipped model looks at 0.6038 of the frame, 51.2 arcsec: the loader keeps the central
0.6038 / 1.195 = 0.505 of the cutout (129.3 px) and resamples it to 80 px, as it does the central 256 px of a
424 px original. With PETROR90 = 20 arcsec the frame is 169.6 arcsec and the field 102.4 arcsec: 1.0 arcsec
(2.6 px) is missing and the cutout is refused.

astropy is imported only when a FITS file is read (about 0.8 s, once per process): importing this module, and so
``images``, ``catalog`` or the dashboard, does not import it.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from galaxy_core.errors import DataError, ImageError, os_reason

FITS_EXTENSIONS = (".fits.gz", ".fit.gz", ".fts.gz", ".fits", ".fit", ".fts")
"""File name endings read as FITS (matched ignoring case, longest first)."""
BANDS = ("g", "r", "i")
"""The bands of a colour galaxy, in the order of a cube's planes and of ``<id>_<band>.fits`` triples."""
FRAME_R90 = 424 * 0.02
"""Width of the GZ2 frame in units of petroR90: 424 px at 0.02 R90 per px (Willett et al. 2013)."""
BAND_SCALES = (2.5, 1.5, 1.0)
"""g, r, i multipliers per nanomaggie before compositing (Lang's ``sdss_rgb``, legacysurvey/imagine)."""
SDSS_SOFTENING = 20.0
"""Lang's asinh softening: f(I) = asinh(20 I) / sqrt(20), I in scaled nanomaggies."""
LUPTON_Q = 10 * math.sinh(0.1 * math.sqrt(SDSS_SOFTENING))
"""make_lupton_rgb's Q that draws Lang's curve: 0.1 / asinh(0.1 Q) = 1 / sqrt(20), so Q = 4.623."""
LUPTON_STRETCH = LUPTON_Q / SDSS_SOFTENING
"""make_lupton_rgb's stretch that draws Lang's curve: Q / stretch = 20, so 0.2311 (scaled nanomaggies)."""
MINIMUM = 0.0
"""Black level in scaled nanomaggies: zero flux is black (Lang's +0.02 offset left out, see the module docstring)."""
SQUARE_TOLERANCE = 1e-3
"""Pixels whose x and y scales differ by more than this fraction are refused as non-square."""


@dataclass(frozen=True)
class Composite:
    """The colour composite's parameters (see the module docstring): make_lupton_rgb's ``q``, ``stretch`` and
    ``minimum`` (scaled flux units), and the g, r, i multipliers ``scales`` applied first."""

    q: float = LUPTON_Q
    stretch: float = LUPTON_STRETCH
    minimum: float = MINIMUM
    scales: tuple[float, float, float] = BAND_SCALES

    def __post_init__(self):
        values = (self.q, self.stretch, self.minimum, *self.scales)
        if len(self.scales) != 3 or not all(np.isfinite(values)) or self.q <= 0 or self.stretch <= 0 \
                or min(self.scales) <= 0:
            raise DataError(f"composite parameters must be finite, with q, stretch and the three band scales "
                            f"positive: got q={self.q}, stretch={self.stretch}, minimum={self.minimum}, "
                            f"scales={self.scales}")


@dataclass(frozen=True)
class FitsSettings:
    """What a folder says about its FITS cutouts: the GZ2 frame's width ``frame_arcsec`` (for files without a
    ``PETROR90`` card; None when not given) and the ``composite``. ``own_field_only``: refuse a file whose header
    gives no field of its own, as in a folder that declares no ``source_fov`` and took its field from other files'
    headers (``images.resolve_field``), where treating it as a whole GZ2 frame would be a silent guess."""

    frame_arcsec: float | None = None
    composite: Composite = field(default_factory=Composite)
    own_field_only: bool = False

    def __post_init__(self):
        if self.frame_arcsec is not None and not (np.isfinite(self.frame_arcsec) and self.frame_arcsec > 0):
            raise DataError(f"frame_arcsec must be a positive width in arcsec, got {self.frame_arcsec}")


def settings_from(config: dict, frame_arcsec: float | None = None) -> FitsSettings:
    """:class:`FitsSettings` from a folder's ``galaxy_core.json`` content: ``frame_arcsec`` (the argument, if given,
    instead) and ``fits_composite``, any of ``q``, ``stretch``, ``minimum`` and ``scales`` (the g, r and i
    multipliers). Raises DataError for a value that is not a number of the right sign, or an unknown key."""
    try:
        frame = frame_arcsec if frame_arcsec is not None else config.get("frame_arcsec")
        comp = dict(config.get("fits_composite") or {})
        unknown = sorted(set(comp) - {"q", "stretch", "minimum", "scales"})
        if unknown:
            raise DataError(f"unknown fits_composite key(s) {unknown}: expected q, stretch, minimum and scales")
        comp = {k: tuple(float(x) for x in v) if k == "scales" else float(v) for k, v in comp.items()}
        return FitsSettings(None if frame is None else float(frame), Composite(**comp))
    except DataError:
        raise
    except (TypeError, ValueError) as e:  # e.g. a word where a number belongs
        raise DataError(f"unusable FITS settings ({e})") from e


# --------------------------------------------------------------------------------------------------------------------
# Names: which files are FITS, which galaxy and band they hold


def split_name(name: str) -> tuple[str, str] | None:
    """``("123_r", ".fits.gz")`` for ``"123_r.fits.gz"``; None for a name without a FITS extension."""
    lower = name.lower()
    for ext in FITS_EXTENSIONS:
        if lower.endswith(ext) and len(name) > len(ext):
            return name[:-len(ext)], name[-len(ext):]
    return None


def galaxy_of(stem: str) -> tuple[str, str | None]:
    """``("123", "r")`` for the band file stem ``"123_r"``; ``("123", None)`` for ``"123"``. Band suffixes are
    ``_g``, ``_r`` and ``_i``, lower case, after a non-empty id."""
    if len(stem) > 2 and stem[-2] == "_" and stem[-1] in BANDS:
        return stem[:-2], stem[-1]
    return stem, None


def is_fits(path: str | os.PathLike) -> bool:
    return split_name(os.path.basename(os.fspath(path))) is not None


def galaxy_id(path: str | os.PathLike) -> str:
    """The GalaxyID a file holds: a FITS file's name without the extension and band suffix (``123_r.fits.gz`` ->
    ``123``), any other file's name without its extension (``123_r.jpg`` -> ``123_r``)."""
    name = os.path.basename(os.fspath(path))
    fits = split_name(name)
    return galaxy_of(fits[0])[0] if fits else os.path.splitext(name)[0]


def band_paths(path: str | os.PathLike) -> tuple[dict[str, str], list[str]]:
    """For a band file ``<id>_<b>.<ext>``: the band files of its galaxy that exist, by band, and the bands missing.
    A sibling is looked for with the file's own extension first, then the others. ``({}, [])`` for a file that is
    not a band file. Raises ImageError when a band has two files (``1_g.fits`` and ``1_g.fits.gz``)."""
    path = os.fspath(path)
    folder, name = os.path.split(path)
    stem, ext = split_name(name) or (name, "")
    gid, band = galaxy_of(stem)
    if band is None:
        return {}, []
    found, missing = {}, []
    for b in BANDS:
        hits = [os.path.join(folder, f"{gid}_{b}{e}") for e in dict.fromkeys((ext, *FITS_EXTENSIONS))]
        hits = [h for h in hits if os.path.lexists(h)]
        if len(hits) > 1:
            raise ImageError(path, f"band {b} of galaxy {gid} has {len(hits)} files: "
                                   f"{', '.join(os.path.basename(h) for h in hits)}")
        if hits:
            found[b] = hits[0]
        else:
            missing.append(b)
    return found, missing


def galaxy_files(path: str | os.PathLike) -> list[str]:
    """Every file a galaxy's image is read from: the three band files of a triple (those that exist), else the
    file itself (for JPEG and PNG too)."""
    try:
        found = band_paths(path)[0] if is_fits(path) else {}
    except ImageError:
        found = {}
    return list(found.values()) or [os.fspath(path)]


# --------------------------------------------------------------------------------------------------------------------
# Reading


def _astropy():
    """astropy's modules this file uses, imported on first use (a clear error when astropy is missing)."""
    try:
        from astropy.io import fits
        from astropy.visualization import ManualInterval, make_lupton_rgb
        from astropy.wcs import WCS
        from astropy.wcs.utils import proj_plane_pixel_scales
    except ImportError as e:
        raise DataError(f"reading FITS files needs astropy, which is not installed here ({e}): pip install astropy")
    return fits, WCS, proj_plane_pixel_scales, make_lupton_rgb, ManualInterval


def _failure(path: str, e: Exception) -> ImageError:
    """The ImageError for an exception raised while reading ``path`` with astropy."""
    reason = os_reason(e)
    if reason is None and ("buffer is too small" in str(e) or "cannot reshape array" in str(e)):
        reason = f"truncated: the file ends before the pixels its header announces ({e})"
    if reason is None:
        reason = f"not a readable FITS file ({type(e).__name__}: {e})"
    return ImageError(path, reason)


def _shape(hdu) -> tuple[int, ...]:
    shape = tuple(int(n) for n in hdu.shape)
    while len(shape) > 2 and shape[0] == 1:  # degenerate leading axes, as radio images carry
        shape = shape[1:]
    return shape


def _read_file(path: str, want_data: bool, check=None) -> tuple[tuple[int, ...], object, np.ndarray | None]:
    """(shape, header, data or None) of the first HDU of ``path`` that holds an image; ``check(shape)`` runs before
    any pixel is read. Data are float64 with every non-finite pixel set to 0; an image without a finite pixel is
    refused."""
    fits = _astropy()[0]
    try:
        if os.stat(path).st_size == 0:
            raise ImageError(path, "empty file (0 bytes)")
        with warnings.catch_warnings():
            # astropy warns about cards it repairs (and then reads the file); real damage raises, reported below.
            warnings.simplefilter("ignore")
            with fits.open(path, memmap=False) as hdul:
                hdu = next((h for h in hdul if h.is_image and h.header.get("NAXIS", 0) > 0), None)
                if hdu is None:
                    raise ImageError(path, "no image in any HDU (a table, or headers only)")
                shape, header = _shape(hdu), hdu.header.copy()
                if check is not None:
                    check(shape)
                data = np.asarray(hdu.data, dtype=np.float64).reshape(shape) if want_data else None
    except ImageError:
        raise
    except Exception as e:  # noqa: BLE001 - whatever the reason, it is this file's, reported with its path
        raise _failure(path, e) from e
    if data is not None:
        finite = np.isfinite(data)
        if not finite.any():
            raise ImageError(path, "no finite pixel: the image is NaN (or infinite) everywhere")
        if not finite.all():
            data[~finite] = 0.0
    return shape, header, data


def _check_size(path: str, shape: tuple[int, ...], min_side: int, max_pixels: int | None) -> None:
    h, w = shape[-2:]
    if max_pixels and w * h > max_pixels:
        raise ImageError(path, f"{w} x {h} = {w * h} pixels, more than the limit of {max_pixels} "
                               f"(PIL.Image.MAX_IMAGE_PIXELS), refused as a possible decompression bomb")
    if min(w, h) < min_side:
        raise ImageError(path, f"{w} x {h} px, too small to hold a galaxy (under {min_side} px)")


def _read(path: str | os.PathLike, want_data: bool = True, min_side: int = 8, max_pixels: int | None = None
          ) -> tuple[str, object, list[np.ndarray] | None, tuple[int, int]]:
    """A galaxy's (mode, header, planes, (height, width)): mode ``"FITS-gri"`` with planes [g, r, i] or
    ``"FITS-1band"`` with [band]; the header is the r file's for a triple. ``want_data=False`` reads headers
    only (planes None). Raises ImageError, with ``path``, for anything the module docstring lists as refused."""
    path = os.fspath(path)
    found, missing = band_paths(path)
    if not found:
        def check(shape: tuple[int, ...]) -> None:
            if not (len(shape) == 2 or (len(shape) == 3 and shape[0] == 3)):
                raise ImageError(path, f"an array of shape {shape}: expected a 2-D image or a (3, H, W) cube of "
                                       f"the g, r and i planes")
            _check_size(path, shape, min_side, max_pixels)

        shape, header, data = _read_file(path, want_data, check)
        planes = None if data is None else list(data) if len(shape) == 3 else [data]
        return ("FITS-gri" if len(shape) == 3 else "FITS-1band"), header, planes, shape[-2:]
    gid = galaxy_id(path)
    if missing:
        raise ImageError(path, f"galaxy {gid} lacks its {' and '.join(missing)} band file(s) "
                               f"({', '.join(f'{gid}_{b}.fits' for b in missing)}); a galaxy in band files "
                               f"needs all of g, r and i")
    files = [found[b] for b in BANDS]

    def band_file(f: str, want: bool) -> tuple[tuple[int, ...], object, np.ndarray | None]:
        def check(shape: tuple[int, ...]) -> None:
            if len(shape) != 2:
                raise ImageError(f, f"a band file must hold a 2-D image; this one has shape {shape}")

        try:
            return _read_file(f, want, check)
        except ImageError as e:  # reported beside ``path``: say which of the three files it is
            raise ImageError(path, e.reason if f == path else f"{os.path.basename(f)}: {e.reason}") from e

    read = [band_file(f, False) for f in files]  # every header before any pixel
    if len({shape for shape, _, _ in read}) > 1:
        raise ImageError(path, f"the band files of galaxy {gid} differ in size: " + ", ".join(
            f"{os.path.basename(f)} {s[1]}x{s[0]} px" for f, (s, _, _) in zip(files, read)))
    shape, header, _ = read[BANDS.index("r")]
    _check_size(path, shape, min_side, max_pixels)
    planes = [band_file(f, True)[2] for f in files] if want_data else None
    return "FITS-gri", header, planes, shape


def read_header(path: str | os.PathLike, min_side: int = 8, max_pixels: int | None = None) -> tuple[int, int, str]:
    """(width, height, mode) of a FITS galaxy from its header(s) alone, mode ``"FITS-gri"`` or ``"FITS-1band"``,
    for a folder's summary; raises ImageError for what :func:`read_rgb` would refuse on the headers' evidence."""
    mode, _, _, (h, w) = _read(path, False, min_side, max_pixels)
    return w, h, mode


# --------------------------------------------------------------------------------------------------------------------
# Field of view


def pixel_scale(header, path: str = "") -> float | None:
    """The pixel scale in arcsec per pixel from a FITS header (see the module docstring), or None when it gives
    none. Raises ImageError for non-square pixels (x and y scales differing by more than 0.1 %)."""
    _, WCS, proj_plane_pixel_scales, _, _ = _astropy()
    scales = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # FITSFixedWarning: astropy repairing old-style cards, harmless here
        try:
            wcs = WCS(header)
            if wcs.has_celestial:
                scales = np.asarray(proj_plane_pixel_scales(wcs.celestial), float) * 3600  # degrees -> arcsec
        except Exception:  # noqa: BLE001 - an unusable WCS gives no scale; the CD/CDELT cards may still
            scales = None
    if scales is None:
        per_unit = {"deg": 3600.0, "arcmin": 60.0, "arcsec": 1.0}.get(str(header.get("CUNIT1", "deg")).strip())
        cd = [header.get(k) for k in ("CD1_1", "CD1_2", "CD2_1", "CD2_2")]
        if per_unit is None:
            return None
        if any(isinstance(v, (int, float)) for v in cd):
            c11, c12, c21, c22 = (float(v) if isinstance(v, (int, float)) else 0.0 for v in cd)
            scales = np.array([math.hypot(c11, c21), math.hypot(c12, c22)]) * per_unit
        elif all(isinstance(header.get(k), (int, float)) for k in ("CDELT1", "CDELT2")):
            scales = np.abs([float(header["CDELT1"]), float(header["CDELT2"])]) * per_unit
        else:
            return None
    if not (np.isfinite(scales).all() and (scales > 0).all()):
        return None
    if abs(scales[0] - scales[1]) > SQUARE_TOLERANCE * scales.max():
        raise ImageError(path, f"non-square pixels ({scales[0]:.4g} x {scales[1]:.4g} arcsec): resample the cutout "
                               f"to square pixels first")
    return float(scales.mean())


def frame_width(header, settings: FitsSettings, path: str = "") -> tuple[float | None, str]:
    """The GZ2 frame's width in arcsec for this galaxy, and where it came from: 8.48 x the header's ``PETROR90``
    (arcsec), else the folder's ``frame_arcsec``; (None, "") when neither is known. Raises ImageError for a
    ``PETROR90`` that is not a positive number."""
    r90 = header.get("PETROR90")
    if r90 is not None:
        if isinstance(r90, bool) or not isinstance(r90, (int, float)) or not (math.isfinite(r90) and r90 > 0):
            raise ImageError(path, f"PETROR90 = {r90!r} is not a radius in arcsec")
        return FRAME_R90 * float(r90), f"8.48 x PETROR90 = 8.48 x {float(r90):g} arcsec"
    if settings.frame_arcsec is not None:
        return settings.frame_arcsec, "frame_arcsec"
    return None, ""


@dataclass(frozen=True)
class Field:
    """What a FITS galaxy's header says about its field: ``width``, ``height`` (px), ``scale`` (arcsec/px) and
    ``frame`` (the GZ2 frame's width, arcsec; ``frame_from`` says where from), each None when unknown."""

    width: int
    height: int
    scale: float | None
    frame: float | None
    frame_from: str = ""

    @property
    def source_fov(self) -> float | None:
        """The fraction of the GZ2 frame the cutout's shorter side spans (above 1 when it shows more), or None."""
        if self.scale is None or self.frame is None:
            return None
        return min(self.width, self.height) * self.scale / self.frame

    @property
    def unknown(self) -> str:
        """What keeps the cutout's own field unknown, in words (empty when it is known)."""
        return " and ".join(what for what, missing in (
            ("pixel scale (no celestial WCS, CD or CDELT cards)", self.scale is None),
            ("frame width (no PETROR90 card, and no frame_arcsec for the folder)", self.frame is None)) if missing)


def read_field(path: str | os.PathLike, settings: FitsSettings | None = None) -> Field:
    """A FITS galaxy's :class:`Field`, from its header(s) alone. Raises ImageError like :func:`read_header`."""
    settings = settings or FitsSettings()
    path = os.fspath(path)
    _, header, _, (h, w) = _read(path, False)
    return Field(w, h, pixel_scale(header, path), *frame_width(header, settings, path))


def own_crop(path: str, fld: Field, model_fov: float, settings: FitsSettings | None = None) -> float | None:
    """The central fraction of a cutout's shorter side that shows ``model_fov`` of the GZ2 frame, or None when the
    cutout's own field is unknown. Raises ImageError, saying how much is missing, when it shows less, and when its
    field is unknown but ``settings.own_field_only`` asks for it."""
    own = fld.source_fov
    if own is None:
        if settings is not None and settings.own_field_only:
            raise ImageError(path, f"no field of view: its header gives no {fld.unknown}, and the folder declares no "
                                   f"source_fov (its field came from other FITS files' headers); add what is "
                                   f"missing, or declare source_fov")
        return None
    crop = model_fov / own
    if crop > 1 + 1e-6:
        side = min(fld.width, fld.height)
        need, have = model_fov * fld.frame, side * fld.scale
        raise ImageError(path, f"too small for the model's field: the cutout is {side} px x {fld.scale:.4g} "
                               f"arcsec/px = {have:.1f} arcsec across, {own:.3f} of the GZ2 frame of "
                               f"{fld.frame:.1f} arcsec ({fld.frame_from}); the model needs {model_fov:.3f} of it, "
                               f"{need:.1f} arcsec: {need - have:.1f} arcsec ({(need - have) / fld.scale:.1f} px) "
                               f"missing")
    return min(crop, 1.0)


# --------------------------------------------------------------------------------------------------------------------
# The composite


def composite(planes: list[np.ndarray], comp: Composite | None = None) -> np.ndarray:
    """(H, W, 3) uint8 RGB from the [g, r, i] planes (or [band], shown grey, scaled as r) of a galaxy in
    nanomaggies, first FITS row at the bottom (see the module docstring for the parameters and the units)."""
    comp = comp or Composite()
    make_lupton_rgb, ManualInterval = _astropy()[3:]
    if len(planes) == 1:
        g = r = i = planes[0] * comp.scales[1]
    else:
        g, r, i = (p * s for p, s in zip(planes, comp.scales))
    with np.errstate(invalid="ignore", divide="ignore"):  # f(I) / I at I = 0 (empty sky) is 0 / 0, then set to 0
        rgb = make_lupton_rgb(i, r, g, interval=ManualInterval(vmin=comp.minimum, vmax=None),
                              stretch=comp.stretch, Q=comp.q)
    return np.ascontiguousarray(rgb[::-1])


def read_rgb(path: str | os.PathLike, settings: FitsSettings | None = None, min_side: int = 8,
             max_pixels: int | None = None) -> tuple[Image.Image, Field]:
    """A FITS galaxy as an RGB image at its own resolution (:func:`composite`), and its :class:`Field`. Raises
    ImageError for anything the module docstring lists as refused."""
    settings = settings or FitsSettings()
    path = os.fspath(path)
    _, header, planes, (h, w) = _read(path, True, min_side, max_pixels)
    fld = Field(w, h, pixel_scale(header, path), *frame_width(header, settings, path))
    return Image.fromarray(composite(planes, settings.composite)), fld
