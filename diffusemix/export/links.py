"""Never through a link: opening and writing files inside a folder that may hold planted links.

Layout-agnostic helpers for :mod:`.folder` (which knows the export folder's
files and uses these for every one of them): a file is opened without
following a link in its last part (``O_NOFOLLOW``), without waiting on a FIFO
(``O_NONBLOCK``), and only if what was opened is a regular file; a folder to
write in must lie inside the output folder after resolving links; a file to
replace must be a regular file. A folder received from someone else (a tar
keeps links) or a shared one thus never makes a run write or read elsewhere.
Every refusal is a :class:`~diffusemix.errors.DiffuseMixError` naming the path
and what it is.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from ..errors import DiffuseMixError
from ..filecheck import kind_of

__all__ = ["HINT", "lstat_or_none", "describe", "not_plain", "open_no_follow", "read_no_follow", "is_inside",
           "check_dir_inside", "check_destination", "looks_complete", "read_at"]

#: Flags that keep an open from following a link or waiting on a FIFO (0 where the system has none).
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def read_at(fd: int, n: int, offset: int) -> bytes:
    """``n`` bytes of an open file at ``offset`` (``os.pread`` where it exists)."""
    if hasattr(os, "pread"):
        return os.pread(fd, n, offset)
    os.lseek(fd, offset, os.SEEK_SET)  # pragma: no cover - Windows
    return os.read(fd, n)  # pragma: no cover


#: Hint of every refusal below.
HINT = (
    "diffusemix never writes through a link or reads a state file that is not a regular file. Remove it (the"
    " folder may have come from elsewhere, or be shared), or use a new output folder"
)


def describe(path: Path, st: os.stat_result) -> str:
    """What ``path`` is (from its ``lstat``), in words: a link names its target."""
    if stat.S_ISLNK(st.st_mode):
        try:
            return f"a symbolic link (to {os.readlink(path)})"
        except OSError:
            return "a symbolic link"
    return kind_of(st.st_mode)


def not_plain(path: Path, st: os.stat_result, *, expect: str = "a regular file") -> DiffuseMixError:
    """The error for ``path`` found where ``expect`` must be (raise it)."""
    return DiffuseMixError(f"is {describe(path, st)}, not {expect}", path=path, field=str(path), hint=HINT)


def lstat_or_none(path: Path) -> os.stat_result | None:
    """``os.lstat(path)`` (a link itself, not its target), or None when nothing is there."""
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None


def open_no_follow(path: Path, flags: int, mode: int = 0o644) -> int:
    """A descriptor of ``path`` opened without following a link and only if it is a regular file.

    ``O_NOFOLLOW`` refuses a link in the last part of the path, ``O_NONBLOCK`` keeps a FIFO
    from blocking the open, and ``fstat`` checks what was opened.

    Raises:
        FileNotFoundError: it does not exist (and ``flags`` has no ``O_CREAT``).
        DiffuseMixError: a link, a folder or a special file, named.
    """
    try:
        fd = os.open(path, flags | _NOFOLLOW | _NONBLOCK | _CLOEXEC, mode)
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.EISDIR, errno.ENXIO, errno.EMLINK):
            st = lstat_or_none(path)
            if st is not None:
                raise not_plain(path, st) from None
        raise
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise not_plain(path, st)
    if _NONBLOCK:
        os.set_blocking(fd, True)
    return fd


def read_no_follow(path: Path) -> bytes | None:
    """Every byte of a state file (or the manifest), or None when it does not exist (see :func:`open_no_follow`)."""
    try:
        fd = open_no_follow(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    with os.fdopen(fd, "rb") as f:
        return f.read()


def is_inside(real: str, root: str) -> bool:
    """Whether the resolved path ``real`` is ``root`` or lies below it."""
    return real == root or real.startswith(root.rstrip(os.sep) + os.sep)


def check_dir_inside(out: Path, folder: Path) -> None:
    """Refuse a folder of OUTPUT that leads outside it (through a link somewhere on the way), naming the link."""
    root = os.path.realpath(out)
    if is_inside(os.path.realpath(folder), root):
        return
    # find the link that leads out, to name it
    rel = Path(os.path.relpath(folder, out)).parts
    here = Path(out)
    for part in rel:
        here = here / part
        st = lstat_or_none(here)
        if st is not None and stat.S_ISLNK(st.st_mode) and not is_inside(os.path.realpath(here), root):
            raise DiffuseMixError(
                f"is a symbolic link that leads outside the output folder (to {os.path.realpath(here)}); refused",
                path=here, field=str(here), hint=HINT,
            )
    raise DiffuseMixError(f"leads outside the output folder {out}; refused", path=folder, field=str(folder),
                          hint=HINT)


def check_destination(out: Path, path: Path) -> None:
    """``path`` may be (re)placed: its folder lies inside OUTPUT and it is a regular file if it exists."""
    check_dir_inside(out, path.parent)
    st = lstat_or_none(path)
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise not_plain(path, st)


#: How the formats the exporter writes end: a file cut short ends otherwise.
_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"
_JPEG_END = b"\xff\xd9"


def looks_complete(path: Path) -> bool:
    """Whether ``path`` is a regular file (not a link) that ends as its format ends (PNG: ``IEND``;
    JPEG: ``EOI``; BMP: the size its header states), so a file cut short (a copy interrupted, a disk
    that lost its end) is made again on a rerun. One ``open`` and a few bytes read; other
    formats: any non-empty regular file."""
    try:
        fd = open_no_follow(path, os.O_RDONLY)
    except (OSError, DiffuseMixError):  # missing, a link, a folder, a FIFO: not a finished file
        return False
    try:
        size = os.fstat(fd).st_size
        if size == 0:
            return False
        ext = path.suffix.lower()
        if ext == ".png":
            return size >= len(_PNG_END) and read_at(fd, len(_PNG_END), size - len(_PNG_END)) == _PNG_END
        if ext in (".jpg", ".jpeg"):
            return size >= 2 and read_at(fd, 2, size - 2) == _JPEG_END
        if ext == ".bmp":
            head = read_at(fd, 6, 0)
            return len(head) == 6 and head[:2] == b"BM" and int.from_bytes(head[2:6], "little") == size
        return True
    finally:
        os.close(fd)
