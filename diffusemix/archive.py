"""Zipped datasets in and out: safe extraction of class-folder zips, and zipping results.

Used by the app's Batch export tab. Uploads are untrusted: every entry is
checked before anything is written (zip slip, links, encryption, counts,
declared size) and the unpacked bytes are counted while writing, so a zip
bomb with a lying header is stopped too.
"""

from __future__ import annotations

import os
import re
import stat
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from .errors import ArchiveError
from .images import IMAGE_EXTENSIONS

__all__ = ["safe_extract", "dataset_root", "zip_folder", "MAX_IMAGES", "MAX_ENTRIES", "MAX_UNPACKED_MB"]

#: Longest file or folder name (bytes) most file systems take (ext4, XFS, APFS, NTFS's 255 UTF-16 units).
MAX_NAME_BYTES = 255
#: Default limits for :func:`safe_extract`.
MAX_IMAGES = 2000
MAX_ENTRIES = 10_000
MAX_UNPACKED_MB = 1024


def safe_extract(
    zip_path: str | os.PathLike,
    dest: Path,
    *,
    max_images: int = MAX_IMAGES,
    max_entries: int = MAX_ENTRIES,
    max_bytes: int = MAX_UNPACKED_MB * 2**20,
    max_file_bytes: int | None = None,
) -> int:
    """Unpack the image files of a zip into ``dest``; return how many were unpacked.

    Refuses (``ValueError``, nothing left behind) a file that is not a zip,
    entries with absolute paths, drive letters or ``..`` (zip slip), symbolic
    links, encrypted entries, more than ``max_entries`` entries or
    ``max_images`` images, and more than ``max_bytes`` once unpacked (counted
    while unpacking, so a lying header does not help a zip bomb), or one
    image over ``max_file_bytes`` (if given). Members are streamed in 1 MB
    chunks, never read whole, and unpacking stops at a limit. Folders
    and files that are not images (and macOS ``__MACOSX`` / dot files) are
    skipped.
    """
    try:
        zf = zipfile.ZipFile(zip_path)
    except zipfile.BadZipFile:
        raise ArchiveError("The upload is not a readable zip file (it is corrupt, or not a zip at all).") from None
    except OSError as e:
        raise ArchiveError(f"The zip cannot be read: {e.strerror or e}") from None
    with zf:
        infos = zf.infolist()
        if len(infos) > max_entries:
            raise ArchiveError(f"The zip has {len(infos):,} entries; the limit is {max_entries:,}.")
        # 1. check every entry before writing anything
        todo = []
        declared = 0
        for info in infos:
            name = info.filename.replace("\\", "/")
            parts = PurePosixPath(name).parts
            if name.startswith("/") or re.match(r"^[A-Za-z]:", name) or ".." in parts:
                raise ArchiveError(
                    f"The zip entry {info.filename!r} points outside the archive (absolute path or '..'); "
                    "refusing the zip."
                )
            if stat.S_ISLNK(info.external_attr >> 16):
                raise ArchiveError(f"The zip entry {info.filename!r} is a symbolic link; links are not accepted.")
            if info.is_dir():
                continue
            if any(p.startswith(".") or p == "__MACOSX" for p in parts):
                continue
            if PurePosixPath(name).suffix.lower() not in IMAGE_EXTENSIONS:
                continue
            longest = max(len(p.encode("utf-8", "surrogateescape")) for p in parts)
            if longest > MAX_NAME_BYTES:
                raise ArchiveError(
                    f"The zip entry {_short(info.filename)} has a name of {longest} bytes; file and folder names are"
                    f" limited to {MAX_NAME_BYTES} bytes on this server. Rename it (shorter) and zip the dataset again."
                )
            if info.flag_bits & 0x1:
                raise ArchiveError(f"The zip entry {info.filename!r} is encrypted; upload an unencrypted zip.")
            if max_file_bytes is not None and info.file_size > max_file_bytes:
                raise ArchiveError(_too_big(info.filename, max_file_bytes))
            declared += info.file_size
            todo.append((info, parts))
        if len(todo) > max_images:
            raise ArchiveError(f"The zip holds {len(todo):,} images; the limit is {max_images:,}.")
        if declared > max_bytes:
            raise ArchiveError(
                f"The zip unpacks to {declared / 2**20:,.0f} MB; the limit is {max_bytes / 2**20:,.0f} MB."
            )
        # 2. unpack, counting the bytes actually written
        written = 0
        dest.mkdir(parents=True, exist_ok=True)
        root = dest.resolve()
        for info, parts in todo:
            target = root.joinpath(*parts)
            if not target.resolve().is_relative_to(root):
                raise ArchiveError(f"The zip entry {info.filename!r} points outside the archive; refusing the zip.")
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
            except OSError:
                raise ArchiveError(
                    f"The zip entry {info.filename!r} cannot be unpacked: a file and a folder share its path."
                ) from None
            if target.is_dir():
                raise ArchiveError(
                    f"The zip entry {info.filename!r} cannot be unpacked: a file and a folder share its path."
                )
            try:
                dst_file = open(target, "wb")
            except OSError as e:  # a name the disk refuses (too long for it, a character it does not take)
                raise ArchiveError(
                    f"The zip entry {_short(info.filename)} cannot be unpacked here ({e.strerror or e}); rename it"
                    " and zip the dataset again."
                ) from None
            try:
                with zf.open(info) as src, dst_file as dst:
                    member = 0
                    while chunk := src.read(1 << 20):
                        written += len(chunk)
                        member += len(chunk)
                        if max_file_bytes is not None and member > max_file_bytes:
                            raise ArchiveError(_too_big(info.filename, max_file_bytes))
                        if written > max_bytes:
                            raise ArchiveError(
                                f"The zip unpacks to more than {max_bytes / 2**20:,.0f} MB (the limit); refusing it."
                            )
                        dst.write(chunk)
            except (zipfile.BadZipFile, zlib.error, EOFError) as e:
                raise ArchiveError(f"The zip entry {info.filename!r} is corrupt ({e}).") from None
    return len(todo)


def _short(name: str, n: int = 60) -> str:
    """A zip entry's name for a message: quoted, and cut in the middle when long."""
    return repr(name if len(name) <= n else f"{name[: n // 2]}…{name[-n // 2:]}")


def _too_big(name: str, limit: int) -> str:
    return f"{name} unpacks to more than {limit / 2**20:,.0f} MB, the limit for one image; refusing the zip."


def dataset_root(folder: Path) -> Path:
    """The folder that holds the class folders (a zip of ``dataset/<class>/...`` is stepped into).

    Raises ValueError when there are no images, or images but no class folders.
    """
    root = folder
    while True:
        entries = [p for p in root.iterdir() if not p.name.startswith(".")]
        dirs = [p for p in entries if p.is_dir()]
        if len(entries) == 1 and dirs and any(q.is_dir() for q in dirs[0].iterdir()):
            root = dirs[0]
            continue
        break
    images = [p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
    if not images:
        raise ArchiveError(
            f"The zip holds no images ({', '.join(sorted(IMAGE_EXTENSIONS))}). "
            "Zip one folder per class, e.g. cats/1.jpg, dogs/2.jpg."
        )
    if all(p.parent == root for p in images):
        raise ArchiveError(
            "The zip has images but no class folders: put the images of each class in their own folder "
            "(e.g. cats/1.jpg, dogs/2.jpg) and zip those folders."
        )
    return root


def zip_folder(folder: Path, archive: Path) -> Path:
    """Zip a folder (leaving out hidden state folders); images stored, text compressed.

    Only regular files: a link (to a file or a folder) is never followed into the zip, so a
    result folder cannot hand out a file from elsewhere on the server.
    """
    found = []
    for root, dirs, files in os.walk(folder):  # links to folders are listed, not followed
        for name in files:
            p = Path(root) / name
            rel = p.relative_to(folder)
            if any(part.startswith(".") for part in rel.parts) or not stat.S_ISREG(os.lstat(p).st_mode):
                continue  # state files; a link or a special file
            found.append(p)
    with zipfile.ZipFile(archive, "w") as zf:
        for p in sorted(found):
            text = p.suffix.lower() in (".jsonl", ".json", ".txt", ".yaml")
            zf.write(p, p.relative_to(folder).as_posix(),
                     compress_type=zipfile.ZIP_DEFLATED if text else zipfile.ZIP_STORED)
    return archive
