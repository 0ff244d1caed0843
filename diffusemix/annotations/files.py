"""File access shared by the readers: bounded JSON, image headers, image listings."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..errors import DiffuseMixError
from ..filecheck import read_checked
from ..images import IMAGE_EXTENSIONS, open_image
from .issues import AnnotationError, AnnotationIssue

__all__ = ["MAX_JSON_BYTES", "image_size", "list_images", "read_json"]

#: Largest annotation JSON read by default (1 GiB). COCO 2017's train instances file is
#: 448 MB and takes a few GB of memory once parsed; raise ``max_json_bytes`` for larger sets (LVIS: 1.1 GB).
MAX_JSON_BYTES: int = 1 << 30

#: EXIF orientations that swap width and height (transpose, 90° turns).
_SWAPPING_ORIENTATIONS = frozenset({5, 6, 7, 8})


def read_json(path: Path, *, max_bytes: int = MAX_JSON_BYTES) -> Any:
    """Parse a JSON file after checking that it is a regular file of at most ``max_bytes`` bytes.

    Raises:
        AnnotationError: missing, not a regular file, too large, not UTF-8, not JSON.
    """
    name = str(path)

    def fail(reason: str) -> AnnotationError:
        if reason.startswith("is larger than"):  # the size, exactly, and what to do
            size = os.stat(path).st_size
            return AnnotationError(AnnotationIssue(
                name,
                f"the annotation file is {size:,} bytes, more than the limit of {max_bytes:,} (max_json_bytes)",
                hint="Check that it is the right file; if it is, pass a larger max_json_bytes (parsing needs"
                " several times the file's size in memory)",
            ))
        if reason.startswith("is not a regular file"):
            reason = reason.replace("is not a regular file", "is a path that is not a regular file", 1)
        return AnnotationError(AnnotationIssue(name, f"the annotation file {reason}"))

    data = read_checked(path, max_bytes=max_bytes, fail=fail)  # a regular file of bounded size: the shared check
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise AnnotationError(
            AnnotationIssue(name, f"the annotation file is not UTF-8 text ({e.reason} at byte {e.start})")
        ) from e
    except json.JSONDecodeError as e:
        raise AnnotationError(
            AnnotationIssue(
                name, f"the annotation file is not valid JSON: {e.msg} at line {e.lineno}, column {e.colno}"
            )
        ) from e


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image as ``load_image`` returns it (after EXIF orientation), from its header.

    The file passes the check every reader makes first (a regular file of bounded size, not more
    than ``MAX_PIXELS``: a header bomb is named by its size).

    Raises:
        DiffuseMixError: the file is missing, not a regular file, not an image Pillow can read, or too large.
    """
    def fail(reason: str) -> DiffuseMixError:
        if reason == "does not exist":
            return DiffuseMixError("the image file does not exist")
        return DiffuseMixError(f"the image cannot be read: it {reason}")

    with open_image(path, fail=fail) as img:
        w, h = img.size
        try:
            orientation = img.getexif().get(0x0112)
        except Exception:  # malformed EXIF: load_image will say so; the stored size stands
            orientation = None
    if orientation in _SWAPPING_ORIENTATIONS:
        return (h, w)
    return (w, h)


def list_images(folder: Path) -> list[str]:
    """Image files under ``folder`` (recursively, hidden names skipped), as sorted POSIX relative paths."""
    out: list[str] = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for fn in filenames:
            if fn.startswith(".") or os.path.splitext(fn)[1].lower() not in IMAGE_EXTENSIONS:
                continue
            out.append(Path(os.path.relpath(os.path.join(dirpath, fn), folder)).as_posix())
    return sorted(out)
