"""What a dashboard user may read: the data roots a typed folder must lie in, and the checks an upload passes
before anything in it is written or decoded. The dashboard may be served to others, who must not browse the
server's disk through it nor hand it files that decode to gigabytes; the command line is not restricted (its user
already has a shell).

Environment variables, set by whoever starts the server: ``GALAXY_DATA`` (the sidebar's starting data folder,
always readable) and ``GALAXY_DATA_ROOTS`` (the folders a typed folder may lie in, see :func:`data_roots`).
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO, Iterator, Sequence, Union

from PIL import Image

from galaxy_core.data import catalog, fitsimages, images, layout
from galaxy_core.errors import ImageError

Upload = Union[tuple[str, bytes], BinaryIO]
"""One uploaded file: a ``(file name, bytes)`` pair, or a file-like object with a ``name`` (a web framework's upload,
such as Streamlit's ``UploadedFile``, or an open file)."""

DATA_ENV, ROOTS_ENV = "GALAXY_DATA", "GALAXY_DATA_ROOTS"
SHARED_DATA = layout.PROJECT_ROOT.parent / "shared" / "data"
"""The real Galaxy Zoo packs the README points to, beside the project; a default data root when it exists."""


def absolute_path(text: str) -> Path:
    """A folder the user typed, relative to the project folder (blank means ``data/``), made absolute."""
    p = Path(text.strip() or "data").expanduser()
    return (p if p.is_absolute() else layout.PROJECT_ROOT / p).resolve()


def data_roots() -> list[Path]:
    """The folders a folder typed into the dashboard must lie in, resolved: ``$GALAXY_DATA_ROOTS`` (folders
    separated by ``os.pathsep``, ``:`` on Linux; relative ones are from the project folder), else the project folder
    and ``../shared/data`` beside it when that exists. The folder ``$GALAXY_DATA`` names is always added: whoever
    sets the environment runs the server. The command line is not restricted: its user already has a shell."""
    listed = [t for t in os.environ.get(ROOTS_ENV, "").split(os.pathsep) if t.strip()]
    roots = [absolute_path(t) for t in listed] if listed else \
        [layout.PROJECT_ROOT.resolve()] + ([SHARED_DATA.resolve()] if SHARED_DATA.is_dir() else [])
    if os.environ.get(DATA_ENV, "").strip():
        roots.append(absolute_path(os.environ[DATA_ENV]))
    return roots


def allowed_folder(text: str) -> Path:
    """:func:`absolute_path` of a folder typed into the dashboard, if it lies inside one of :func:`data_roots`.

    Symbolic links and ``..`` are resolved before the check, so neither leads out of the roots; nothing in the folder
    is read or listed before it passes. Raises PermissionError naming the roots and the setting that changes them."""
    folder, roots = absolute_path(text), data_roots()
    if any(folder.is_relative_to(r) for r in roots):
        return folder
    raise PermissionError(
        f"{folder} is outside the folders this dashboard may read ({', '.join(str(r) for r in roots)}). Whoever "
        f"starts the dashboard can allow others with the {ROOTS_ENV} environment variable, folders separated by "
        f"'{os.pathsep}', e.g. `{ROOTS_ENV}=/srv/galaxies{os.pathsep}{layout.PROJECT_ROOT} streamlit run app.py`")


MAX_UPLOAD_FILES = 500
"""Most images the Predict page takes in one upload (a folder on the server has no such limit)."""
MAX_UPLOAD_MB = 20
"""Largest uploaded image, in MB (2**20 bytes). Streamlit's server refuses bigger files while receiving them when
``.streamlit/config.toml`` (``server.maxUploadSize``, the same number) applies, i.e. when the dashboard is started
from the project folder; :func:`check_uploads` checks again for a server started elsewhere."""
MAX_UPLOAD_TOTAL_MB = 500
"""Most bytes of one upload altogether, in MB: what the page writes to a temporary folder and decodes."""


def _upload_problem(content: bytes) -> str | None:
    """Why an uploaded file cannot be predicted, else None: not a JPEG or PNG that Pillow can open, or more
    pixels than ``PIL.Image.MAX_IMAGE_PIXELS`` (a decompression bomb: a small file that decodes to gigabytes).
    Reads only the image's header."""
    try:
        with Image.open(io.BytesIO(content)) as im:
            fmt, (w, h) = im.format, im.size
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):  # the warning where it is an error
        return f"more pixels than the {Image.MAX_IMAGE_PIXELS:,} Pillow decodes safely (a decompression bomb?)"
    except Image.UnidentifiedImageError:
        return "not an image (Pillow recognises no image format in it)"
    except Exception as e:  # noqa: BLE001 - whatever makes Pillow give up, the file is refused with its reason
        return f"not an image Pillow can read ({type(e).__name__}: {e})"
    if fmt not in ("JPEG", "PNG"):
        return f"a {fmt} image, not a JPEG or PNG"
    if Image.MAX_IMAGE_PIXELS and w * h > Image.MAX_IMAGE_PIXELS:  # between 1 and 2 times the limit: only a warning
        return (f"{w} x {h} = {w * h:,} pixels, more than the {Image.MAX_IMAGE_PIXELS:,} Pillow decodes safely "
                f"(a decompression bomb?)")
    return None


def _fits_upload_problem(content: bytes) -> str | None:
    """Why an uploaded FITS file cannot be predicted, else None: neither a FITS file (its first card is
    ``SIMPLE  =``) nor gzip-compressed. Its contents are checked when it is read, like any FITS file's."""
    if not content.startswith((b"SIMPLE  =", b"\x1f\x8b")):
        return "not a FITS file (it does not start with a SIMPLE card)"
    return None


def _name_and_bytes(upload: Upload) -> tuple[str, bytes]:
    """An :data:`Upload` as its ``(file name, bytes)``: a pair as it is; a file-like object's whole contents where it
    has ``getvalue`` (an in-memory upload, wherever it was last read to), else what ``read`` gives from where it
    stands."""
    if isinstance(upload, tuple):
        return upload
    read = getattr(upload, "getvalue", None) or upload.read
    return str(upload.name), read()


def check_uploads(files: Sequence[Upload]) -> tuple[list[tuple[str, bytes]], list[str]]:
    """Split uploaded files (:data:`Upload`: ``(file name, bytes)`` pairs or file-like objects) into the ``(name,
    bytes)`` pairs to predict, named by their base name (no folder), and the refusals, each ``'<name>: <why>'`` as
    :func:`_refusals` finds them. One bad file never stops the others.

    Raises ValueError, refusing the whole upload, for more than ``MAX_UPLOAD_FILES`` files or more than
    ``MAX_UPLOAD_TOTAL_MB`` altogether."""
    accepted, refused = _refusals(files)
    return accepted, [f"{name}: {why}" for name, why in refused]


def _refusals(files: Sequence[Upload]) -> tuple[list[tuple[str, bytes]], list[tuple[str, str]]]:
    """:func:`check_uploads` with each refusal as ``(uploaded name, why)``: a name that is not ``<id>.jpg``,
    ``.jpeg``, ``.png`` or a FITS name (``fitsimages``: ``<id>.fits``, ``<id>_g.fits`` ...), a name uploaded twice, a
    file over ``MAX_UPLOAD_MB`` or one :func:`_upload_problem` (:func:`_fits_upload_problem`) finds."""
    files = [_name_and_bytes(f) for f in files]
    total = sum(len(content) for _, content in files)
    if len(files) > MAX_UPLOAD_FILES or total > MAX_UPLOAD_TOTAL_MB * 2**20:
        raise ValueError(f"{len(files):,} files of {total / 2**20:,.0f} MB: one upload takes at most "
                         f"{MAX_UPLOAD_FILES:,} images and {MAX_UPLOAD_TOTAL_MB:,} MB. Upload fewer at a time, or "
                         f"name a folder of images on the server instead.")
    accepted, refused, seen = [], [], set()
    for name, content in files:
        base = Path(str(name).replace("\\", "/")).name
        fits = fitsimages.split_name(base)
        stem, ext = fits or os.path.splitext(base)
        if (not fits and ext.lower() not in catalog.IMAGE_EXTENSIONS) or not stem or stem.startswith(".") \
                or "\0" in base:
            problem = "not a file name of the form <GalaxyID>.jpg, .jpeg, .png or .fits (or <GalaxyID>_g.fits ...)"
        elif stem in seen:
            problem = f"another upload is also named {stem}"
        elif len(content) > MAX_UPLOAD_MB * 2**20:
            problem = f"{len(content) / 2**20:.1f} MB, more than the {MAX_UPLOAD_MB} MB an uploaded image may have"
        else:
            problem = _fits_upload_problem(content) if fits else _upload_problem(content)
        if problem:
            refused.append((name, problem))
        else:
            seen.add(stem)
            accepted.append((base, content))
    return accepted, refused


def write_uploads(files: Sequence[Upload], folder: str | os.PathLike | None = None,
                  prefix: str = "galaxy_upload_") -> list[Path]:
    """Write uploaded files (:data:`Upload`) into ``folder`` under their base names, for the readers that take a path
    (a FITS file's name says its layout), after :func:`check_uploads`'s checks, and return the paths written, in
    the order given. ``folder`` must exist; None makes a new temporary one (``prefix`` + random letters, readable by
    this user alone) that the caller removes (:func:`temporary_uploads` does). A file of the same name already in
    ``folder`` is overwritten (an upload sent again).

    Raises ImageError for the first file :func:`check_uploads` refuses, by its uploaded name with why, before
    anything is written (check a mixed upload with :func:`check_uploads` first to keep its good files), and
    ValueError for an upload over the limits (:func:`check_uploads`)."""
    accepted, refused = _refusals(files)
    if refused:  # as an unusable image: its name once, then why (upload_message words it so)
        raise ImageError(*refused[0])
    folder = Path(tempfile.mkdtemp(prefix=prefix) if folder is None else folder)
    paths = []
    for name, content in accepted:
        (folder / name).write_bytes(content)
        paths.append(folder / name)
    return paths


@contextlib.contextmanager
def temporary_uploads(files: Sequence[Upload], prefix: str = "galaxy_upload_") -> Iterator[Path]:
    """:func:`write_uploads` into a new temporary folder, yielded, and removed with everything in it on leaving (an
    error included). Raises as :func:`write_uploads` does, leaving no folder behind."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        write_uploads(files, folder)
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def upload_message(error: Exception, folder: str | os.PathLike | None = None, box: str = "Source field of view",
                   sidebar_fov: float | None = None) -> str:
    """What a dashboard user reads when uploaded images cannot be used: ``error`` (raised predicting or embedding
    the files written to the temporary ``folder``) in words for the page, naming each file by its uploaded name and
    never the temporary folder (a path the user never saw).

    For images whose field of view is unknown (:class:`images.FieldUnknown`) it points at the page's field box
    ``box`` beside the uploader, not at the command line's ``--source-fov`` or a ``galaxy_core.json`` in a folder
    the user cannot reach; ``sidebar_fov``, the sidebar's field when one is set, is said not to be taken: it is the
    data folder's, and uploads may be other images (a 424 px original cropped as a 96 px pack would get wrong
    answers without a word). An unusable image (``ImageError``) reads ``Cannot use <name>: <why>``."""
    if isinstance(error, images.FieldUnknown):
        w, h = error.size
        text = (f"{Path(error.sample).name} is {w} x {h} px, not a 424 x 424 px Kaggle original, so which part of "
                f"the 424 px frame it shows is unknown, and a guess could spoil every answer. Enter it in "
                f"**{box}** beside the uploader: {images.PACK_FOV:.4f} for the central 256 px (as in the "
                f"gz2-kaggle-96 packs), 1.0 for whole frames at a lower resolution.")
        if sidebar_fov is not None:
            text += (f" The sidebar's field of view ({sidebar_fov:.4f}) is the data folder's and is not taken for "
                     f"uploads, which may be other images.")
        return text
    if isinstance(error, ImageError):
        return f"Cannot use {Path(error.path).name}: {error.reason}"
    text = str(error)
    if folder is not None:
        text = text.replace(str(folder) + os.sep, "").replace(str(folder), "the uploads")
    return text
