"""File access shared by the readers: bounded JSON, image headers, image listings."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from ..errors import DiffuseMixError
from ..images import IMAGE_EXTENSIONS
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
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise AnnotationError(AnnotationIssue(name, "the annotation file does not exist")) from None
    except OSError as e:
        raise AnnotationError(AnnotationIssue(name, f"the annotation file cannot be read ({e.strerror or e})")) from e
    if not stat.S_ISREG(st.st_mode):
        raise AnnotationError(AnnotationIssue(name, "the annotation path is not a regular file"))
    if st.st_size > max_bytes:
        raise AnnotationError(
            AnnotationIssue(
                name,
                f"the annotation file is {st.st_size:,} bytes, more than the limit of {max_bytes:,} (max_json_bytes)",
                hint="Check that it is the right file; if it is, pass a larger max_json_bytes (parsing needs"
                " several times the file's size in memory)",
            )
        )
    try:
        with open(path, "rb") as f:
            data = f.read(max_bytes + 1)
    except OSError as e:
        raise AnnotationError(AnnotationIssue(name, f"the annotation file cannot be read ({e.strerror or e})")) from e
    if len(data) > max_bytes:  # it grew after the stat
        raise AnnotationError(AnnotationIssue(name, f"the annotation file is larger than {max_bytes:,} bytes"))
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

    Raises:
        ValueError: the file is missing or not an image Pillow can read.
    """
    try:
        with Image.open(path) as img:
            w, h = img.size
            try:
                orientation = img.getexif().get(0x0112)
            except Exception:  # malformed EXIF: load_image will say so; the stored size stands
                orientation = None
    except FileNotFoundError:
        raise DiffuseMixError("the image file does not exist") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise DiffuseMixError(f"the image cannot be read ({e})") from e
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
