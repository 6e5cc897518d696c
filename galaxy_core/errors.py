"""The input errors every stage raises: bad data (:class:`DataError`, saying what is wrong and where), an unusable
image (:class:`ImageError`, skipped and reported by its callers), a full disk (:class:`DiskFull`), and a file's
own trouble in words (:func:`os_reason`)."""

from __future__ import annotations

import errno
import os


class DataError(ValueError):
    """Bad input data: the message says what is wrong and where."""


class ImageError(DataError):
    """An image that cannot be used: ``path``, and ``reason`` in words (without the path, which callers show
    beside it). Callers skip the image and report it; everything else is kept. Raised by ``data.images`` for JPEG and
    PNG files and by ``data.fitsimages`` for FITS cutouts (defined here, below both, so that each can raise it)."""

    def __init__(self, path: str | os.PathLike, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = str(path), reason

    def __reduce__(self):  # pickles with both arguments, e.g. out of a worker process
        return type(self), (self.path, self.reason)


def os_reason(e: BaseException) -> str | None:
    """Why a file could not be read, in words, when ``e`` is about the file itself (missing, a folder, no
    permission, a symbolic link loop); None for any other error, which the caller explains."""
    if isinstance(e, PermissionError):
        return "permission denied: the file cannot be read"
    if isinstance(e, IsADirectoryError):
        return "a folder, not a file"
    if isinstance(e, FileNotFoundError):
        return "file not found (or a symbolic link to a missing file)"
    if isinstance(e, OSError) and e.errno == errno.ELOOP:
        return "symbolic link loop"
    return None


