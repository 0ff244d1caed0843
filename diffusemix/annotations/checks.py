"""Checks every reader applies to an object, whatever its file format.

The rules (each breach is a ``ValueError`` whose text the reader puts after
the file and object it found it in):

* the category id is in the category table;
* numbers are finite; a box has positive width and height (zero or negative
  is refused, never swapped);
* a polygon has at least 3 points and a non-zero area;
* coordinates lie inside the image, give or take ``tolerance`` pixels
  (default 1: exporters round); within the tolerance they are clipped to the
  image, beyond it the object is refused: a box that reaches outside its image
  means the annotation belongs to another image or another size;
* an RLE mask has its image's size and at least one pixel.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import DiffuseMixError
from .types import Box, Categories, ObjectAnnotation, Polygon, Rle

__all__ = ["DEFAULT_TOLERANCE", "ObjectCheck", "check_box", "check_object", "check_polygons"]

#: Pixels an annotation may reach outside its image before it is refused (then clipped to the image).
DEFAULT_TOLERANCE: float = 1.0


@dataclass(frozen=True)
class ObjectCheck:
    """The image and rules an object is checked against."""

    width: int
    height: int
    categories: Categories
    tolerance: float = DEFAULT_TOLERANCE


def _finite(values: Sequence[object], what: str) -> list[float]:
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
            raise DiffuseMixError(f"{what} holds {v!r}, which is not a number")
        f = float(v)
        if not math.isfinite(f):
            raise DiffuseMixError(f"{what} holds {v!r}, which is not a finite number")
        out.append(f)
    return out


def _inside(lo: float, hi: float, limit: int, axis: str, what: str, tol: float) -> None:
    if lo < -tol or hi > limit + tol:
        raise DiffuseMixError(
            f"{what} reaches outside the image ({axis} from {lo:g} to {hi:g}; the image is {limit} px"
            f" {'wide' if axis == 'x' else 'high'}, tolerance {tol:g} px)"
        )


def check_box(box: Sequence[object], check: ObjectCheck, *, what: str = "the box") -> Box:
    """A checked (x0, y0, x1, y1) box, clipped to the image (see the module text)."""
    if not isinstance(box, (list, tuple)) or len(box) != 4:
        raise DiffuseMixError(f"{what} must be 4 numbers; got {box!r}")
    x0, y0, x1, y1 = _finite(box, what)
    if x1 - x0 < 0 or y1 - y0 < 0:
        raise DiffuseMixError(f"{what} has a negative size ({x1 - x0:g} x {y1 - y0:g})")
    if x1 - x0 == 0 or y1 - y0 == 0:
        raise DiffuseMixError(f"{what} has zero size ({x1 - x0:g} x {y1 - y0:g})")
    _inside(x0, x1, check.width, "x", what, check.tolerance)
    _inside(y0, y1, check.height, "y", what, check.tolerance)
    clipped = (max(x0, 0.0), max(y0, 0.0), min(x1, float(check.width)), min(y1, float(check.height)))
    if not (clipped[0] < clipped[2] and clipped[1] < clipped[3]):
        raise DiffuseMixError(f"{what} lies on the image's edge with no area inside it")
    return clipped


def _ring_area(xy: np.ndarray) -> float:
    x, y = xy[:, 0], xy[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2.0)


def check_polygons(polygons: Sequence[object], check: ObjectCheck) -> tuple[Polygon, ...]:
    """Checked polygons (flat x, y rings), clipped to the image within the tolerance."""
    out: list[Polygon] = []
    for i, poly in enumerate(polygons, start=1):
        what = f"polygon {i}" if len(polygons) > 1 else "the polygon"
        if not isinstance(poly, (list, tuple)):
            raise DiffuseMixError(f"{what} must be a list of numbers x1, y1, x2, y2, ...; got {type(poly).__name__}")
        if len(poly) % 2:
            raise DiffuseMixError(f"{what} has an odd count of numbers ({len(poly)}); it must be (x, y) pairs")
        if len(poly) < 6:
            raise DiffuseMixError(f"{what} has {len(poly) // 2} point(s); a polygon needs at least 3")
        xy = np.asarray(_finite(poly, what), dtype=np.float64).reshape(-1, 2)
        _inside(float(xy[:, 0].min()), float(xy[:, 0].max()), check.width, "x", what, check.tolerance)
        _inside(float(xy[:, 1].min()), float(xy[:, 1].max()), check.height, "y", what, check.tolerance)
        xy[:, 0] = np.clip(xy[:, 0], 0.0, check.width)
        xy[:, 1] = np.clip(xy[:, 1], 0.0, check.height)
        if _ring_area(xy) == 0.0:
            raise DiffuseMixError(f"{what} has zero area (its points lie on a line)")
        out.append(tuple(float(v) for v in xy.ravel()))
    return tuple(out)


def _polygon_bounds(polygons: Sequence[Polygon]) -> Box:
    xy = np.concatenate([np.asarray(p).reshape(-1, 2) for p in polygons])
    return (float(xy[:, 0].min()), float(xy[:, 1].min()), float(xy[:, 0].max()), float(xy[:, 1].max()))


def check_object(
    check: ObjectCheck,
    *,
    category_id: object,
    box: Sequence[object] | None = None,
    polygons: Sequence[object] = (),
    rle: Rle | None = None,
    iscrowd: object = False,
    source_id: int | str | None = None,
) -> ObjectAnnotation:
    """An :class:`ObjectAnnotation` from raw values, checked; ``box`` may be None when a shape gives it.

    Raises:
        ValueError: the first rule broken (see the module text).
    """
    if isinstance(category_id, bool) or not isinstance(category_id, (int, np.integer)):
        raise DiffuseMixError(f"category id {category_id!r} is not an integer")
    if int(category_id) not in check.categories:
        ids = list(check.categories.ids)
        shown = ", ".join(str(i) for i in ids[:20]) + (", ..." if len(ids) > 20 else "")
        raise DiffuseMixError(f"category id {category_id} is not in the categories (ids {shown})")
    if iscrowd not in (0, 1, False, True):
        raise DiffuseMixError(f"iscrowd must be 0 or 1; got {iscrowd!r}")
    polys = check_polygons(polygons, check) if polygons else ()
    if rle is not None:
        if (rle.height, rle.width) != (check.height, check.width):
            raise DiffuseMixError(f"its mask is {rle.width}x{rle.height} but the image is {check.width}x{check.height}")
        from . import rle as rle_ops

        mask_box = rle_ops.bbox(rle)
        if mask_box is None:
            raise DiffuseMixError("its mask is empty (no pixel set)")
    if box is not None:
        checked_box = check_box(box, check)
    elif polys:
        checked_box = check_box(_polygon_bounds(polys), check, what="the polygon's box")
    elif rle is not None:
        checked_box = mask_box
    else:
        raise DiffuseMixError("it has neither a box nor a shape")
    return ObjectAnnotation(
        category_id=int(category_id),
        box=checked_box,
        polygons=polys,
        rle=rle,
        iscrowd=bool(iscrowd),
        source_id=source_id,
    )
