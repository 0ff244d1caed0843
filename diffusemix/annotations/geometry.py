"""Annotations through ``diffusemix.images.prepare``: the same box, the same scale.

``prepare`` resamples one box of the source image (``images.source_box``: the
whole image for ``resize``, the centre square, possibly starting at a half
pixel, for ``center-crop``) onto S x S. A source point (x, y) lands at::

    x' = (x - x0) * S / (x1 - x0)        y' = (y - y0) * S / (y1 - y0)

Nothing is rounded. The rules for each object (:func:`transform_annotation`):

1. Its **visible share** is the part of its area inside the box, measured on
   its finest shape: a mask by its pixels (each weighted by the fraction of
   it inside the box, which matters for half-pixel crop edges), polygons by
   their exact area after clipping to the box, a box by its area.
2. ``kept``: nothing was cut (share 1). ``clipped``: share in
   ``[min_visibility, 1)``; ``dropped``: share below ``min_visibility``
   (default 0.25), or nothing of it left after resizing (a mask whose pixels
   all fall between the nearest-neighbour samples).
3. Boxes are mapped and clipped to ``[0, S]``; a clipped object's box is the
   box of its visible shape (so a diagonal object cut by the crop gets a tight
   box, not the corner of its old one). Polygons are clipped to the box
   (Sutherland-Hodgman, exact for the rectangular box) and mapped. Masks are
   resampled by nearest neighbour over the same box, with Pillow's own sample
   positions (:func:`resize_nearest` equals ``Image.resize(..., NEAREST, box=...)``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from ..errors import DiffuseMixError
from ..images import MAX_SIZE, RESIZE_MODES, ResizeMode, source_box
from . import rle as rle_ops
from .types import Box, ImageAnnotation, ObjectAnnotation, Polygon, SemanticMask

__all__ = [
    "DEFAULT_MIN_VISIBILITY",
    "OBJECT_STATUSES",
    "Geometry",
    "ObjectOutcome",
    "ObjectStatus",
    "TransformResult",
    "clip_polygon",
    "map_polygons",
    "polygon_area",
    "resize_nearest",
    "transform_annotation",
    "transform_semantic",
]

ObjectStatus = Literal["kept", "clipped", "dropped"]
OBJECT_STATUSES: tuple[str, ...] = ("kept", "clipped", "dropped")

#: An object of which less than this share of its area stays inside the crop is dropped.
DEFAULT_MIN_VISIBILITY: float = 0.25

_FULL = 1.0 - 1e-9  # a share at least this is "nothing was cut" (float noise of the area sums)


@dataclass(frozen=True)
class Geometry:
    """The affine map ``prepare`` applies: source ``box`` (pixel edges) onto ``size`` x ``size``."""

    box: Box
    size: int

    @classmethod
    def of(cls, width: int, height: int, *, size: int, resize: ResizeMode = "resize") -> Geometry:
        """The map ``prepare(image, size, resize=resize)`` applies to a ``width`` x ``height`` image."""
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not 1 <= size <= MAX_SIZE:
            raise DiffuseMixError(f"size must be an int in [1, {MAX_SIZE}]; got {size!r}")
        if resize not in RESIZE_MODES:
            raise DiffuseMixError(f"resize must be one of {', '.join(RESIZE_MODES)}; got {resize!r}")
        return cls(source_box(width, height, resize=resize), int(size))

    @property
    def scale(self) -> tuple[float, float]:
        """Output pixels per source pixel, (x, y)."""
        x0, y0, x1, y1 = self.box
        return (self.size / (x1 - x0), self.size / (y1 - y0))

    def map_xy(self, xy: np.ndarray) -> np.ndarray:
        """Map (N, 2) source points to output coordinates (float64)."""
        sx, sy = self.scale
        pts = np.asarray(xy, dtype=np.float64)
        return np.stack([(pts[:, 0] - self.box[0]) * sx, (pts[:, 1] - self.box[1]) * sy], axis=1)

    def map_box(self, box: Box) -> Box:
        """Map a source box (not clipped)."""
        (a, b), (c, d) = self.map_xy(np.array([[box[0], box[1]], [box[2], box[3]]]))
        return (float(a), float(b), float(c), float(d))


@dataclass(frozen=True)
class ObjectOutcome:
    """What the geometry did to one object.

    Attributes:
        index: the object's position in the source annotation.
        source_id: its id in the source (COCO annotation id, YOLO line).
        category_id: its category.
        status: ``kept`` (nothing cut), ``clipped`` (cut, share >=
            ``min_visibility``) or ``dropped``.
        visible: the share of its area inside the crop, in [0, 1].
        object: the object in output coordinates, or None when dropped.
        reason: why it was dropped (empty otherwise).
    """

    index: int
    source_id: int | str | None
    category_id: int
    status: ObjectStatus
    visible: float
    object: ObjectAnnotation | None
    reason: str = ""


@dataclass(frozen=True)
class TransformResult:
    """An annotation brought to S x S, and what happened to each of its objects."""

    annotation: ImageAnnotation
    outcomes: tuple[ObjectOutcome, ...]
    geometry: Geometry

    def count(self, status: ObjectStatus) -> int:
        return sum(1 for o in self.outcomes if o.status == status)


# ---------------------------------------------------------------------------
# pure helpers
# ---------------------------------------------------------------------------


def polygon_area(ring: np.ndarray) -> float:
    """Unsigned shoelace area of an (N, 2) ring."""
    if len(ring) < 3:
        return 0.0
    x, y = ring[:, 0], ring[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2.0)


def clip_polygon(ring: np.ndarray, box: Box) -> np.ndarray:
    """Clip an (N, 2) ring to an axis-aligned box (Sutherland-Hodgman); (M, 2), possibly empty.

    Exact for a convex clip region: the result covers exactly the part of the
    ring's area inside the box (a concave ring may come back with zero-width
    bridges along the box's edge, which add no area).
    """
    pts = [tuple(p) for p in np.asarray(ring, dtype=np.float64)]
    x0, y0, x1, y1 = box
    # (axis, bound, keep-when-greater)
    for axis, bound, greater in ((0, x0, True), (0, x1, False), (1, y0, True), (1, y1, False)):
        if not pts:
            break
        out: list[tuple[float, float]] = []
        prev = pts[-1]
        for cur in pts:
            cin = cur[axis] >= bound if greater else cur[axis] <= bound
            pin = prev[axis] >= bound if greater else prev[axis] <= bound
            if cin != pin:
                t = (bound - prev[axis]) / (cur[axis] - prev[axis])
                cross = [prev[0] + t * (cur[0] - prev[0]), prev[1] + t * (cur[1] - prev[1])]
                cross[axis] = bound  # exactly on the edge
                out.append((cross[0], cross[1]))
            if cin:
                out.append(cur)
            prev = cur
        pts = out
    return np.asarray(pts, dtype=np.float64).reshape(-1, 2)


def _sample_index(start: float, step: float, n_out: int, n_in: int) -> np.ndarray:
    """Source indices Pillow's nearest resampling reads: start + step / 2, then step added n_out - 1 times.

    Pillow (ImagingScaleAffine) accumulates the position by repeated addition
    and truncates; ``np.add.accumulate`` adds in the same order, so the
    indices are bit for bit Pillow's, including ties at exact integers.
    """
    pos = np.empty(n_out, dtype=np.float64)
    pos[0] = start + step * 0.5
    pos[1:] = step
    pos = np.add.accumulate(pos)
    idx = np.where(pos < 0, -1, np.trunc(pos)).astype(np.int64)
    return np.clip(idx, 0, n_in - 1)


def resize_nearest(array: np.ndarray, box: Box, size: int) -> np.ndarray:
    """Nearest-neighbour resampling of a 2-D array's ``box`` to ``size`` x ``size``, as Pillow does it.

    Equal to ``np.array(Image.fromarray(a).resize((size, size), Image.NEAREST, box=box))``
    for every dtype Pillow takes, and defined for any integer or bool dtype.
    """
    a = np.asarray(array)
    if a.ndim != 2:
        raise DiffuseMixError(f"resize_nearest takes a 2-D array; got shape {a.shape}")
    h, w = a.shape
    if box == (0.0, 0.0, float(w), float(h)) and (w, h) == (size, size):
        return a.copy()
    # Pillow parses the box as C floats (32-bit) and takes its sides in float before dividing in double;
    # prepare's boxes (whole or half pixels) are exact in float32, so this changes nothing for them.
    x0, y0, x1, y1 = (np.float32(v) for v in box)
    cols = _sample_index(float(x0), float(np.float32(x1 - x0)) / size, size, w)
    rows = _sample_index(float(y0), float(np.float32(y1 - y0)) / size, size, h)
    return np.ascontiguousarray(a[rows[:, None], cols[None, :]])


def _overlap(n: int, lo: float, hi: float) -> np.ndarray:
    """For pixels 0..n-1, the length of [i, i+1) inside [lo, hi)."""
    i = np.arange(n, dtype=np.float64)
    return np.clip(np.minimum(i + 1.0, hi) - np.maximum(i, lo), 0.0, 1.0)


def _intersect(a: Box, b: Box) -> Box | None:
    box = (max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3]))
    return box if box[0] < box[2] and box[1] < box[3] else None


def _clip_to(box: Box, size: int) -> Box:
    return (
        min(max(box[0], 0.0), size),
        min(max(box[1], 0.0), size),
        min(max(box[2], 0.0), size),
        min(max(box[3], 0.0), size),
    )


# ---------------------------------------------------------------------------
# one object
# ---------------------------------------------------------------------------


def _box_object(obj: ObjectAnnotation, geo: Geometry) -> tuple[float, Box | None, dict]:
    inside = _intersect(obj.box, geo.box)
    full = (obj.box[2] - obj.box[0]) * (obj.box[3] - obj.box[1])
    if inside is None:
        return 0.0, None, {}
    share = (inside[2] - inside[0]) * (inside[3] - inside[1]) / full
    return share, inside, {}


def _polygon_object(obj: ObjectAnnotation, geo: Geometry) -> tuple[float, Box | None, dict]:
    total = 0.0
    visible = 0.0
    clipped: list[np.ndarray] = []
    for poly in obj.polygons:
        ring = np.asarray(poly, dtype=np.float64).reshape(-1, 2)
        total += polygon_area(ring)
        cut = clip_polygon(ring, geo.box)
        a = polygon_area(cut)
        if len(cut) >= 3 and a > 0.0:
            visible += a
            clipped.append(cut)
    if total <= 0.0 or not clipped:
        return 0.0, None, {}
    pts = np.concatenate(clipped)
    bounds: Box = (float(pts[:, 0].min()), float(pts[:, 1].min()), float(pts[:, 0].max()), float(pts[:, 1].max()))
    inside = _intersect(bounds, _intersect(obj.box, geo.box) or bounds)
    mapped = tuple(tuple(float(v) for v in geo.map_xy(c).ravel()) for c in clipped)
    return min(visible / total, 1.0), inside, {"polygons": mapped}


def _mask_object(obj: ObjectAnnotation, geo: Geometry) -> tuple[float, Box | None, dict]:
    assert obj.rle is not None
    m = rle_ops.decode(obj.rle)
    h, w = m.shape
    x0, y0, x1, y1 = geo.box
    ox, oy = _overlap(w, x0, x1), _overlap(h, y0, y1)
    mf = m.astype(np.float64)
    total = float(mf.sum())
    if total == 0.0:
        return 0.0, None, {}
    visible = float(oy @ mf @ ox)
    in_window = m & (oy[:, None] > 0) & (ox[None, :] > 0)
    rows = np.flatnonzero(in_window.any(axis=1))
    cols = np.flatnonzero(in_window.any(axis=0))
    if rows.size == 0:
        return 0.0, None, {}
    bounds: Box = (float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1))
    inside = _intersect(bounds, geo.box)
    if inside is not None:
        inside = _intersect(inside, obj.box) or inside
    resized = resize_nearest(m, geo.box, geo.size)
    if not resized.any():
        return visible / total, None, {"empty": True}
    return min(visible / total, 1.0), inside, {"rle": rle_ops.encode(resized)}


def _transform_object(index: int, obj: ObjectAnnotation, geo: Geometry, min_visibility: float) -> ObjectOutcome:
    kind = obj.geometry
    if kind == "mask":
        share, inside, extra = _mask_object(obj, geo)
    elif kind == "polygon":
        share, inside, extra = _polygon_object(obj, geo)
    else:
        share, inside, extra = _box_object(obj, geo)

    def dropped(reason: str) -> ObjectOutcome:
        return ObjectOutcome(index, obj.source_id, obj.category_id, "dropped", share, None, reason)

    if inside is None and share <= 0.0:
        return dropped("outside the crop")
    if share < min_visibility:
        return dropped(f"{share:.1%} of it inside the crop, below min_visibility {min_visibility:g}")
    if extra.get("empty") or inside is None:
        return dropped("no pixel of its mask is left after resizing")
    status: ObjectStatus = "kept" if share >= _FULL else "clipped"
    if status == "kept":
        new_box = _clip_to(geo.map_box(obj.box), geo.size)
    else:
        new_box = _clip_to(geo.map_box(inside), geo.size)
    if not (new_box[0] < new_box[2] and new_box[1] < new_box[3]):
        return dropped("its box is empty after resizing")
    new = replace(
        obj,
        box=new_box,
        polygons=extra.get("polygons", ()),
        rle=extra.get("rle"),
    )
    return ObjectOutcome(index, obj.source_id, obj.category_id, status, share, new)


# ---------------------------------------------------------------------------
# public
# ---------------------------------------------------------------------------


def _check_min_visibility(min_visibility: float) -> float:
    v = float(min_visibility)
    if isinstance(min_visibility, bool) or not 0.0 <= v <= 1.0:
        raise DiffuseMixError(f"min_visibility must be a share in [0, 1]; got {min_visibility!r}")
    return v


def transform_annotation(
    annotation: ImageAnnotation,
    *,
    size: int,
    resize: ResizeMode = "resize",
    min_visibility: float = DEFAULT_MIN_VISIBILITY,
) -> TransformResult:
    """Bring an image's annotation to the output of ``prepare(image, size, resize=resize)``.

    Args:
        annotation: the objects, in the coordinates of the source image
            (``annotation.width`` x ``annotation.height``, after EXIF
            orientation, as ``load_image`` returns it).
        size: the output side S.
        resize: ``"resize"`` or ``"center-crop"``, as for ``prepare``.
        min_visibility: objects with a smaller share of their area inside the
            crop are dropped (0 keeps every object with any part inside).

    Returns:
        The S x S annotation (kept and clipped objects, in source order) and
        one :class:`ObjectOutcome` per source object. Under ``"resize"``
        nothing is ever cut.
    """
    min_visibility = _check_min_visibility(min_visibility)
    geo = Geometry.of(annotation.width, annotation.height, size=size, resize=resize)
    outcomes = tuple(_transform_object(i, o, geo, min_visibility) for i, o in enumerate(annotation.objects))
    out = ImageAnnotation(
        file_name=annotation.file_name,
        width=geo.size,
        height=geo.size,
        objects=tuple(o.object for o in outcomes if o.object is not None),
        image_id=annotation.image_id,
    )
    return TransformResult(out, outcomes, geo)


def transform_semantic(mask: SemanticMask, *, size: int, resize: ResizeMode = "resize") -> SemanticMask:
    """A class-id mask brought to ``size`` x ``size`` by nearest neighbour over ``prepare``'s box."""
    w, h = mask.size
    geo = Geometry.of(w, h, size=size, resize=resize)
    return SemanticMask(resize_nearest(mask.mask, geo.box, geo.size), mask.classes, mask.ignore_index, mask.file_name)


def map_polygons(polygons: Sequence[Polygon], geo: Geometry) -> tuple[Polygon, ...]:
    """Map polygons without clipping (for drawing a source annotation at another size)."""
    return tuple(tuple(float(v) for v in geo.map_xy(np.asarray(p).reshape(-1, 2)).ravel()) for p in polygons)
