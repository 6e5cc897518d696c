"""Decoding images: one JPEG, PNG or FITS galaxy into a cropped, resized uint8 array, or a reason it cannot
be used, and many of them on a pool of processes. FITS cutouts (files ending in ``.fits``, ``.fit``, ``.fts``, or
those with ``.gz``) are made into RGB images by ``fitsimages``, then cropped and resized exactly as JPEGs are.

Every failure is an :class:`ImageError` (a ``DataError``) with the path and the reason in words: empty, missing,
unreadable, a symbolic link loop, not a JPEG or PNG, truncated, a decompression bomb, too small, and for FITS files
the reasons ``fitsimages`` lists. Callers (``explore.summarize``, ``prepare.prepare``, ``prediction``) skip such an
image and report it; nothing else is lost.

Decoding runs on a pool of *spawned* processes (:func:`imap`). Their workers never run the caller's script again, so
a script that calls ``prepare.prepare`` or ``explore.summarize`` works with or without the usual
``if __name__ == "__main__":`` guard.

Field of view. Every crop is a fraction of the original 424 x 424 Kaggle frame (GZ2 scales each cutout to
0.02 x petroR90 arcsec per pixel, so a galaxy's R90 radius is about 50 px of it). A folder of images that are
themselves a central crop of that frame declares so with ``source_fov`` (the fraction they show), passed as an
argument or written in ``galaxy_core.json`` in the folder (``{"source_fov": 0.6038}``). The packs in
``../shared/data/gz2-kaggle-96*`` are the central 256 px of the originals: ``source_fov = 256 / 424``. A model that
looks at a field ``fov`` then crops ``fov / source_fov`` of each image, so one model serves originals and packs.
:func:`resolve_field` works out a folder's field before it is decoded.

FITS cutouts (``fitsimages``) can carry their own field instead: a pixel scale in their header (a celestial WCS), and
the frame's width in arcsec, 8.48 x a ``PETROR90`` card in the header or the folder's ``frame_arcsec``
(``{"frame_arcsec": 84.8}`` in ``galaxy_core.json``, or the argument). Each such file is then cropped to the model's
field by what its own header says, and the folder needs no ``source_fov``.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import multiprocessing
import multiprocessing.context
import os
import sys
import threading
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from galaxy_core.atomic import read_json
from galaxy_core.data import fitsimages
from galaxy_core.data.fitsimages import FitsSettings
from galaxy_core.data.layout import FOLDER_CONFIG, KAGGLE_FRAME, folder_source_fov, settings_file

# ImageError is defined in files so that fitsimages can raise it too; callers know it as ImageError.
from galaxy_core.errors import DataError, ImageError, os_reason
from galaxy_core.progress import Progress

IMAGE_FORMATS = ("JPEG", "PNG")
"""The formats decoded, whatever the file's extension says (Pillow sniffs the content). Others are refused: Pillow's
more permissive readers (TGA, XBM, ...) would turn a damaged or foreign file into a garbage image."""
MIN_IMAGE_SIDE = 8
"""Images whose shorter side has fewer pixels are refused: too small to hold a galaxy (an icon or thumbnail saved by
mistake), and upsampling them to the model's input would invent all the detail it looks at."""


def stat_reason(path: str) -> str:
    try:
        os.stat(path)
    except OSError as e:
        return _reason(e)
    return "readable"


def read_headers(paths: list[str]) -> list[tuple[int, int, str] | str]:
    """(width, height, colour mode) from each image's header, or the reason it cannot be used. FITS galaxies give
    the mode ``"FITS-gri"`` (a cube or three band files) or ``"FITS-1band"``."""
    out: list[tuple[int, int, str] | str] = []
    for path in paths:
        try:
            if fitsimages.is_fits(path):
                out.append(_fits(path, fitsimages.read_header, path, MIN_IMAGE_SIDE, Image.MAX_IMAGE_PIXELS))
                continue
            with open_image(path) as im:
                out.append((im.size[0], im.size[1], im.mode))
        except ImageError as e:  # reported, not raised
            out.append(e.reason)
    return out


def _fits(path, fn, *args):
    """``fn(*args)`` of ``fitsimages``, any failure of it an :class:`ImageError` for ``path`` with its reason."""
    try:
        return fn(*args)
    except ImageError:
        raise
    except Exception as e:  # noqa: BLE001 - see open_image
        raise ImageError(path, _reason(e)) from e


def _reason(e: Exception) -> str:
    """Why an image could not be read, in words, from the exception that said so."""
    if (reason := os_reason(e)) is not None:
        return reason
    if isinstance(e, Image.DecompressionBombError):
        return f"too many pixels, refused as a possible decompression bomb ({e})"
    if isinstance(e, UnidentifiedImageError):
        return "not a JPEG or PNG image (UnidentifiedImageError)"
    if isinstance(e, OSError) and ("truncated" in str(e) or "broken data stream" in str(e)):
        return f"truncated or damaged image data ({e})"
    return f"cannot be decoded ({type(e).__name__}: {e})"


def open_image(path: str | os.PathLike) -> Image.Image:
    """Open an image's header (lazily: pixels are decoded on use), or raise :class:`ImageError` for an empty,
    unreadable or foreign file, more pixels than ``Image.MAX_IMAGE_PIXELS``, or a side under ``MIN_IMAGE_SIDE``."""
    try:
        if os.stat(path).st_size == 0:
            raise ImageError(path, "empty file (0 bytes)")
        with warnings.catch_warnings():
            # Pillow raises over twice its pixel limit but only warns between 1x and 2x: both are refused below.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(path, formats=IMAGE_FORMATS)
    except ImageError:
        raise
    except Exception as e:  # noqa: BLE001 - whatever the reason, it is this image's, reported with its path
        raise ImageError(path, _reason(e)) from e
    (w, h), limit = im.size, Image.MAX_IMAGE_PIXELS
    reason = None
    if limit and w * h > limit:
        reason = (f"{w} x {h} = {w * h} pixels, more than the limit of {limit} (PIL.Image.MAX_IMAGE_PIXELS), "
                  f"refused as a possible decompression bomb")
    elif min(w, h) < MIN_IMAGE_SIDE:
        reason = f"{w} x {h} px, too small to hold a galaxy (under {MIN_IMAGE_SIDE} px)"
    if reason:
        im.close()
        raise ImageError(path, reason)
    return im


def _to_rgb(im: Image.Image) -> Image.Image:
    if im.mode.startswith("I"):  # "I;16*" or "I": 16-bit greyscale PNG
        # convert("RGB") would clip every value over 255 to white; 0 ... 65535 maps to 0 ... 255 instead.
        grey = np.rint(np.asarray(im, dtype=np.float64) / 257).clip(0, 255).astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")
    if im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info:
        # Transparent pixels are empty sky, so black; convert("RGB") would show whatever colour they happen to hold.
        rgba = im.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, (0, 0, 0, 255)), rgba).convert("RGB")
    return im.convert("RGB")


def load_image(path: str | os.PathLike, crop: float, size: int, source_fov: float = 1.0,
               fits: fitsimages.FitsSettings | None = None) -> np.ndarray:
    """Decode one image, keep the central ``crop`` fraction of its shorter side, resize to ``size`` px.

    Returns (3, size, size) uint8 RGB. Greyscale, palette, CMYK and alpha images are converted to RGB, transparent
    pixels becoming black; 16-bit greyscale is scaled to 8 bits (65535 -> 255). JPEGs are decoded at a reduced scale
    (libjpeg's DCT scaling through Pillow's draft mode) whenever that still leaves at least ``size`` pixels across
    the crop, which makes decoding 424 px originals several times faster. Resampling is Lanczos, as used to make the
    shared packs. The content decides the format, not the extension (a PNG named .jpg decodes).

    Raises :class:`ImageError` (a DataError) with the path and the reason for any image that cannot be used: a file
    that is empty, missing, unreadable, a symbolic link loop, not a JPEG or PNG, truncated or damaged (never decoded
    with grey fill: ``PIL.ImageFile.LOAD_TRUNCATED_IMAGES`` stays False), over ``PIL.Image.MAX_IMAGE_PIXELS`` pixels
    (a decompression bomb, even between 1x and 2x where Pillow only warns), or under ``MIN_IMAGE_SIDE`` (8) px on
    its shorter side. DataError for a ``crop`` outside (0, 1].

    A FITS galaxy (``fitsimages``: one file, or the r file of a g, r, i triple) becomes its RGB composite first.
    ``source_fov`` is the fraction of the 424 px frame that ``crop`` is relative to (the folder's): a FITS cutout
    whose header gives its own field (``fitsimages.Field``, with the ``frame_arcsec`` of ``fits``) keeps instead
    the part of itself that shows the same field, ``crop`` x ``source_fov`` of the frame, or is refused when it
    shows less; one that does not is cropped by ``crop``, like a JPEG.
    """
    if not 0 < crop <= 1:
        raise DataError(f"crop must be in (0, 1], got {crop} for {path}")
    if fitsimages.is_fits(path):
        return _crop_resize(path, *_fits_rgb(path, crop, source_fov, fits), size)
    with open_image(path) as im:
        try:
            if im.format == "JPEG":
                w, h = im.size
                need = size / crop  # pixels across the whole image for `size` across the crop
                im.draft("RGB", (int(np.ceil(need * w / min(w, h))), int(np.ceil(need * h / min(w, h)))))
            rgb = _to_rgb(im)
        except Exception as e:  # noqa: BLE001 - see open_image
            raise ImageError(path, _reason(e)) from e
        return _crop_resize(path, rgb, crop, size)


def full_image(path: str | os.PathLike, crop: float, source_fov: float = 1.0,
               fits: fitsimages.FitsSettings | None = None) -> tuple[np.ndarray, float]:
    """One image at its own resolution, as (H, W, 3) uint8 RGB, and the central fraction of its shorter side that
    :func:`load_image` with the same arguments keeps: ``crop``, or for a FITS cutout with its own field what its
    header gives. Raises :class:`ImageError` as :func:`load_image` does."""
    if fitsimages.is_fits(path):
        rgb, crop = _fits_rgb(path, crop, source_fov, fits)
        return np.asarray(rgb), crop
    with open_image(path) as im:
        try:
            return np.asarray(_to_rgb(im)), crop
        except Exception as e:  # noqa: BLE001 - see open_image
            raise ImageError(path, _reason(e)) from e


def _fits_rgb(path: str | os.PathLike, crop: float, source_fov: float,
              fits: fitsimages.FitsSettings | None) -> tuple[Image.Image, float]:
    """A FITS galaxy's composite and the crop that shows ``crop`` x ``source_fov`` of the frame (its own header's,
    else ``crop``): the FITS side of :func:`load_image`."""
    rgb, fld = _fits(path, fitsimages.read_rgb, path, fits, MIN_IMAGE_SIDE, Image.MAX_IMAGE_PIXELS)
    return rgb, _fits(path, fitsimages.own_crop, os.fspath(path), fld, crop * source_fov, fits) or crop


def _crop_resize(path: str | os.PathLike, rgb: Image.Image, crop: float, size: int) -> np.ndarray:
    """The central ``crop`` of an RGB image's shorter side, resized to ``size`` px with Lanczos: (3, S, S) uint8."""
    try:
        w, h = rgb.size
        c = crop * min(w, h)
        box = ((w - c) / 2, (h - c) / 2, (w + c) / 2, (h + c) / 2)
        out = rgb.resize((size, size), Image.Resampling.LANCZOS, box=box)
    except Exception as e:  # noqa: BLE001 - see open_image
        raise ImageError(path, _reason(e)) from e
    return np.asarray(out, dtype=np.uint8).transpose(2, 0, 1)


def _decode_chunk(args: tuple) -> list[np.ndarray | str]:
    """Decode ``(paths, crop, size[, source_fov, fits])``, each result an array or the reason it failed."""
    paths, crop, size, *field = args
    out: list[np.ndarray | str] = []
    for p in paths:
        try:
            out.append(load_image(p, crop, size, *field))
        except ImageError as e:  # the caller shows the path beside the reason
            out.append(e.reason)
        except Exception as e:  # noqa: BLE001 - reported per image by the caller, who skips it
            out.append(f"{type(e).__name__}: {e}")
    return out


_MAIN_LOCK = threading.Lock()


class _WorkerProcess(multiprocessing.context.SpawnProcess):
    """A spawned worker that does not import the caller's main module.

    Spawn normally runs the parent's script again in each worker (as ``__mp_main__``), so that functions defined
    there can be unpickled. Ours live in galaxy_core, so the worker needs none of the script; and a script without
    the ``if __name__ == "__main__":`` guard would call ``prepare`` again in every worker, which then waits forever
    on the cache lock its parent holds. multiprocessing decides what to import from ``__main__.__spec__`` and
    ``__main__.__file__`` when a worker starts (``multiprocessing.spawn.get_preparation_data``), so both are hidden
    for that moment."""

    @staticmethod
    def _Popen(process_obj):
        main = sys.modules["__main__"]
        with _MAIN_LOCK:
            saved = {k: main.__dict__[k] for k in ("__file__", "__spec__") if k in main.__dict__}
            main.__dict__.pop("__file__", None)
            main.__spec__ = None
            try:
                return multiprocessing.context.SpawnProcess._Popen(process_obj)
            finally:
                main.__dict__.pop("__spec__", None)
                main.__dict__.update(saved)


class _WorkerContext(multiprocessing.context.SpawnContext):
    Process = _WorkerProcess


def imap(fn, jobs: list, workers: int | None, min_jobs: int = 3):
    """Yield ``fn(job)`` for each job, in order, on a process pool when there are at least ``min_jobs`` jobs, else in
    this process: starting the pool's processes costs about half a second, more than a few cheap jobs take.

    The pool uses spawn, not fork: the caller may hold torch or Streamlit threads, and forking those can deadlock.
    Its workers do not run the caller's script (:class:`_WorkerProcess`), so ``fn`` must live in an importable
    module, as galaxy_core's do. Leaving the loop early cancels the jobs not yet started."""
    workers = workers or os.cpu_count() or 1
    if workers <= 1 or len(jobs) < max(min_jobs, 3):
        yield from map(fn, jobs)
        return
    pool = cf.ProcessPoolExecutor(workers, mp_context=_WorkerContext())
    try:
        yield from pool.map(fn, jobs)
    finally:
        pool.shutdown(cancel_futures=True)


def chunks(paths: list, chunk: int) -> list[list[str]]:
    return [[str(p) for p in paths[s:s + chunk]] for s in range(0, len(paths), chunk)]


def decode_images(paths: list, crop: float, size: int, workers: int | None = None,
                  progress: Progress | None = None, chunk: int = 64, source_fov: float = 1.0,
                  fits: fitsimages.FitsSettings | None = None):
    """Yield ``(i, array_or_reason)`` for each path in order: a (3, size, size) uint8 array, or a string saying why
    the image could not be used (:func:`load_image`'s reason, without the path: callers report ``paths[i]`` beside
    it and skip the image). Work is spread over ``workers`` processes (default: every core). ``source_fov`` and
    ``fits`` are :func:`load_image`'s, for FITS cutouts that carry their own field."""
    jobs = [(c, crop, size, source_fov, fits) for c in chunks(paths, chunk)]
    i = 0
    for res in imap(_decode_chunk, jobs, workers):
        for r in res:
            yield i, r
            i += 1
        if progress:
            progress(i, len(paths))


# --------------------------------------------------------------------------------------------------------------------
# The field of view of a folder's images

def folder_fits_settings(root: str | os.PathLike, frame_arcsec: float | None = None) -> FitsSettings:
    """What a folder says about its FITS cutouts (``fitsimages.FitsSettings``): the GZ2 frame's width in arcsec, for
    files without a ``PETROR90`` card, from the argument, else ``frame_arcsec`` in ``galaxy_core.json``; and the
    composite's parameters, ``fits_composite`` there (any of ``q``, ``stretch``, ``minimum`` and ``scales``, the
    last a list of the g, r and i multipliers). Raises DataError, naming the file, for a value that is not a
    number of the right sign or an unknown key."""
    if frame_arcsec is not None:
        FitsSettings(frame_arcsec)  # checks it, with a message naming frame_arcsec
    cfg = settings_file(root)
    try:
        return fitsimages.settings_from(read_json(cfg) if cfg.is_file() else {}, frame_arcsec)
    except DataError as e:
        raise DataError(f"{cfg}: {e}") from e


def resolve_source_fov(root: str | os.PathLike, samples: list, source_fov: float | None = None,
                       frame_arcsec: float | None = None) -> float:
    """The fraction of the 424 px frame a folder's images show: declared (argument or ``galaxy_core.json``), else 1.0
    if the first readable of ``samples`` is a 424 x 424 original. Raises DataError for undeclared images of another
    size, since guessing would silently give the model the wrong field of view, and when none of the first 20
    samples can be used (unusable images, see :func:`load_image`, are passed over here: whoever decodes them
    reports and skips them).

    A FITS cutout whose header gives its own field (a pixel scale, and ``PETROR90`` or the folder's
    ``frame_arcsec``, see :func:`folder_fits_settings`) needs no declaration: when the first readable sample is one,
    this returns 1.0, the whole frame, and each such file is cropped to the model's field by its own header when
    decoded (refused if it shows less). A FITS file without them is treated like a JPEG of its size."""
    return resolve_field(root, samples, source_fov, frame_arcsec)[0]


PACK_FOV = 256 / KAGGLE_FRAME
"""The field of the central 256 px of a 424 px original (0.6038), what the 96 px Galaxy Zoo packs show."""


class FieldUnknown(DataError):
    """A folder of images that are not 424 px originals and do not say which part of the frame they show: ``sample``
    (one image's path) and its ``size`` (width, height) in px, for a user interface that asks for the field."""

    def __init__(self, sample, size: tuple[int, int], message: str):
        super().__init__(message)
        self.sample, self.size = sample, size


def resolve_field(root: str | os.PathLike, samples: list, source_fov: float | None = None,
                  frame_arcsec: float | None = None) -> tuple[float, FitsSettings]:
    """:func:`resolve_source_fov` and :func:`folder_fits_settings` of a folder together, for decoding it. When the
    field came from a FITS sample's own header, the settings refuse FITS files without one (``own_field_only``):
    with no declared ``source_fov``, cropping them as whole GZ2 frames would be a silent guess."""
    fits = folder_fits_settings(root, frame_arcsec)
    fov = folder_source_fov(root, source_fov)
    if fov is not None:
        return fov, fits
    reasons = []
    for sample in list(samples)[:20]:
        lacks = ""
        try:
            if fitsimages.is_fits(sample):
                own = fitsimages.read_field(sample, fits)
                if own.source_fov is not None:
                    return 1.0, dataclasses.replace(fits, own_field_only=True)
                size, lacks = (own.width, own.height), own.unknown
            else:
                with open_image(sample) as im:
                    size = im.size
        except ImageError as e:  # an unusable image is skipped later, with its reason
            reasons.append(str(e))
            continue
        if size == (KAGGLE_FRAME, KAGGLE_FRAME):
            return 1.0, fits
        fits_hint = (f"; or let FITS cutouts carry their own field: a celestial WCS in each header and the GZ2 "
                     f"frame's width, a PETROR90 card (arcsec) in each header or the folder's frame_arcsec "
                     f"(--frame-arcsec, or {{\"frame_arcsec\": ...}} in {FOLDER_CONFIG}) -- "
                     f"{Path(sample).name} has no {lacks}") if lacks else ""
        raise FieldUnknown(
            sample, size,
            f"{sample} is {size[0]}x{size[1]} px, not a 424x424 Kaggle original: say which part of the 424 px "
            f"frame these images show with source_fov (for example --source-fov 0.6038 for the central 256 px, as in "
            f"the gz2-kaggle-96 packs, or 1.0 for whole frames at another resolution), or write "
            f"{{\"source_fov\": ...}} into {settings_file(root)}{fits_hint}")
    raise DataError(f"none of the first images in {root} can be opened, so their field of view is unknown "
                    f"(e.g. {reasons[0] if reasons else 'no images'})")


def source_fov_origin(root: str | os.PathLike, source_fov: float | None = None, samples: list = ()) -> str:
    """Where :func:`resolve_source_fov` takes a folder's field of view from, in words for a user: ``"as given"``,
    ``"from galaxy_core.json"``, ``"each FITS file's own header"`` (when the first of ``samples`` is a FITS file)
    or ``"424 px originals"`` (the assumption for an undeclared folder of other images)."""
    if source_fov is not None:
        return "as given"
    if folder_source_fov(root) is not None:
        return f"from {FOLDER_CONFIG}"
    if len(samples) and fitsimages.is_fits(samples[0]):
        return "each FITS file's own header: its pixel scale and PETROR90, or the folder's frame_arcsec"
    return "424 px originals"
