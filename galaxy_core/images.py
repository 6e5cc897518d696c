"""Stage 1, decoding images: one JPEG, PNG or FITS galaxy into a cropped, resized uint8 array, or a reason it cannot
be used, and many of them on a pool of processes. FITS cutouts (files ending in ``.fits``, ``.fit``, ``.fts``, or
those with ``.gz``) are made into RGB images by ``fitsimages``, then cropped and resized exactly as JPEGs are.

Every failure is an :class:`ImageError` (a ``DataError``) with the path and the reason in words: empty, missing,
unreadable, a symbolic link loop, not a JPEG or PNG, truncated, a decompression bomb, too small, and for FITS files
the reasons ``fitsimages`` lists. Callers (``catalog``'s summary, ``data.prepare``, ``prediction``) skip such an
image and report it; nothing else is lost.

Decoding runs on a pool of *spawned* processes, which import the caller's main module again: a script that calls
``data.prepare`` or ``catalog.summarize`` needs the usual ``if __name__ == "__main__":`` guard.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import warnings

import numpy as np
from PIL import Image, UnidentifiedImageError

from . import fitsimages

# ImageError is defined in files so that fitsimages can raise it too; callers know it as images.ImageError.
from .files import DataError, ImageError, Progress, os_reason

KAGGLE_FRAME = 424
"""Side of the original Kaggle/GZ2 cutouts in pixels; every field of view is a fraction of it."""
DEFAULT_FOV = 256 / KAGGLE_FRAME
"""The field a cache and a model see unless told otherwise, as a fraction of the frame (0.604): the central 256 px,
about 2.5 R90 across, the whole galaxy with sky around it, and all that the 96 px packs hold."""
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


def imap(fn, jobs: list, workers: int | None, min_jobs: int = 3):
    """Yield ``fn(job)`` for each job, in order, on a process pool when there are at least ``min_jobs`` jobs, else in
    this process: starting the pool's processes costs about half a second, more than a few cheap jobs take.

    The pool uses spawn, not fork: the caller may hold torch or Streamlit threads, and forking those can deadlock.
    Leaving the loop early cancels the jobs not yet started."""
    workers = workers or os.cpu_count() or 1
    if workers <= 1 or len(jobs) < max(min_jobs, 3):
        yield from map(fn, jobs)
        return
    pool = cf.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
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
