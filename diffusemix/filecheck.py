"""One check for every file a user names: a regular file of bounded size, opened without hanging.

A path handed to a reader can name anything: a FIFO (``open`` waits for a
writer forever), ``/dev/zero`` or a link to it (a read never ends and eats
the memory), a socket, a folder, a 2 GB blob named ``.png``. Every reader of
a user's path (``load_image``, ``load_prompts``, the fractal loader, the
annotation readers, the cache and export readers, the report, training's
image loader, the exporter's scan) goes through this module, so they refuse
the same files with the same words:

* :func:`file_problem` says why a path cannot be read (or None), from ``stat``
  alone, without opening it (the exporter lists such files and goes on);
* :func:`open_checked` opens it without blocking (``O_NONBLOCK``: a FIFO opens
  at once) and checks the *opened* file (``fstat``), so a file swapped after
  the check is caught too; :func:`read_checked` reads it whole, never more
  than the bound.

Failures become the caller's own error type (``fail(reason)``), so an
image is an :class:`~diffusemix.errors.ImageError`, a prompt file a
:class:`~diffusemix.errors.PromptFileError`, and so on.
"""

from __future__ import annotations

import errno
import io
import os
import stat
from typing import BinaryIO, Callable

from .errors import DiffuseMixError

__all__ = ["MAX_FILE_BYTES", "MAX_TEXT_BYTES", "file_problem", "kind_of", "open_checked", "read_checked"]

#: Largest image file read by default. Pillow's pixel cap (about 89.5 megapixels) as an
#: uncompressed 16-bit RGBA TIFF is about 0.7 GB.
MAX_FILE_BYTES: int = 1 << 30
#: Largest text file (prompt sets, YOLO labels and data.yaml, class lists) read by default.
MAX_TEXT_BYTES: int = 64 << 20


#: Opens a FIFO without waiting for a writer (0 where the system has no such flag).
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)


def kind_of(mode: int) -> str:
    """What a file of this ``st_mode`` is, in words (for a message)."""
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    return "not a file"


def _problem(st: os.stat_result, max_bytes: int) -> str | None:
    if not stat.S_ISREG(st.st_mode):
        return f"is not a regular file ({kind_of(st.st_mode)}); only regular files are read"
    if st.st_size > max_bytes:
        return f"is larger than {max_bytes >> 20} MiB ({st.st_size >> 20} MiB); skipped unread"
    return None


def file_problem(path: str | os.PathLike[str], *, max_bytes: int = MAX_FILE_BYTES) -> str | None:
    """Why ``path`` cannot be read (missing, not a regular file, larger than ``max_bytes``), or None.

    Links are followed (a link to a device is a device). Nothing is opened.
    """
    try:
        st = os.stat(path)
    except OSError as e:
        return "does not exist" if e.errno == errno.ENOENT else f"cannot be read: {e.strerror or e}"
    return _problem(st, max_bytes)


def open_checked(
    path: str | os.PathLike[str],
    *,
    max_bytes: int = MAX_FILE_BYTES,
    fail: Callable[[str], Exception] | None = None,
) -> BinaryIO:
    """``path`` opened for reading (binary), or ``fail(reason)`` raised.

    Opened with ``O_NONBLOCK`` (a FIFO does not wait for a writer), then the
    opened file itself is checked: a regular file of at most ``max_bytes``.
    ``fail`` turns the reason into the caller's error (default: a
    :class:`~diffusemix.errors.DiffuseMixError` naming the path).
    """
    make = fail if fail is not None else (lambda reason: DiffuseMixError(reason, path=path, field=f"file {path}"))
    try:
        fd = os.open(path, os.O_RDONLY | _NONBLOCK | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0))
    except OSError as e:
        if e.errno == errno.ENOENT:
            raise make("does not exist") from None
        if e.errno == errno.EISDIR:
            raise make("is a folder, not a file") from None
        if e.errno == errno.ENXIO:  # a socket (or a device without its driver)
            raise make("is not a regular file (a socket or a device); only regular files are read") from None
        raise make(f"cannot be read: {e.strerror or e}") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise make("is a folder, not a file")
        problem = _problem(st, max_bytes)
        if problem is not None:
            raise make(problem)
        if _NONBLOCK:
            os.set_blocking(fd, True)
        return io.open(fd, "rb", closefd=True)  # type: ignore[return-value]
    except BaseException:
        os.close(fd)
        raise


def read_checked(
    path: str | os.PathLike[str],
    *,
    max_bytes: int = MAX_FILE_BYTES,
    fail: Callable[[str], Exception] | None = None,
) -> bytes:
    """Every byte of ``path`` after :func:`open_checked`'s checks; never more than ``max_bytes``
    (a file that grows past the bound while it is read is refused)."""
    with open_checked(path, max_bytes=max_bytes, fail=fail) as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        make = fail if fail is not None else (lambda reason: DiffuseMixError(reason, path=path, field=f"file {path}"))
        raise make(f"is larger than {max_bytes >> 20} MiB; not read")
    return data
