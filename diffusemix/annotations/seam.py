"""Which side of the seam an object lies on: its share of area on the generated (Î) side.

The hybrid is ``H = M ⊙ I + (1 − M) ⊙ Î`` with ``M = functional.make_mask``
(1 where I is kept). An object's **generated share** is the mean of ``1 − M``
over its area::

    share = Σ_x a(x) (1 − M(x)) / Σ_x a(x)

where ``a(x)`` is the object's area in pixel column x (left/right layouts) or
row x (top/bottom): M is constant along the other axis. ``a`` is exact for
each shape: a box by its overlap with each column, a polygon by the exact
area of the polygon in each strip (edge integrals, no rasterising), a mask by
its pixel counts. 0 means the object is all on the real image's side, 1 all
on the edited side; a ramp seam counts its blend weights.

:func:`best_layout` is an option, not the default: it picks, for one image,
the layout (among the recipe's) that keeps the most object area on the real
image's side. The drawn layout is the method's; overriding it removes a
random choice and (with the recipe's two layouts) biases which half of the
image is real. Use it only when the editor is known to damage objects.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import numpy as np

from ..errors import DiffuseMixError
from ..functional import LAYOUTS, Layout, MaskKind, make_mask
from . import rle as rle_ops
from .types import ImageAnnotation, ObjectAnnotation

__all__ = ["area_profile", "best_layout", "generated_share", "generated_shares", "input_side_area"]


def _axis(layout: str) -> int:
    """0: the seam crosses columns (left/right layouts, profile over x); 1: rows (top/bottom)."""
    if layout not in LAYOUTS:
        raise DiffuseMixError(f"layout must be one of {', '.join(LAYOUTS)}; got {layout!r}")
    return 0 if layout in ("left", "right") else 1


def _strip_areas(ring: np.ndarray, n: int, axis: int) -> np.ndarray:
    """Exact area of a simple polygon ring in each unit strip [c, c+1), c = 0..n-1, along ``axis``.

    Each edge contributes the integral of the other coordinate over its part
    in the strip (the shoelace formula split by strips); the sum over a strip
    is the signed area in it.
    """
    u, v = ring[:, axis], ring[:, 1 - axis]
    ub, vb = np.roll(u, -1), np.roll(v, -1)
    keep = ub != u
    u, v, ub, vb = u[keep], v[keep], ub[keep], vb[keep]
    if u.size == 0:
        return np.zeros(n)
    c = np.arange(n, dtype=np.float64)[:, None]
    lo = np.clip(u[None, :], c, c + 1.0)
    hi = np.clip(ub[None, :], c, c + 1.0)
    # the other coordinate where the edge enters and leaves the strip, as a share t of the edge (never a slope:
    # a near-vertical edge, ub - u = 5e-324, made it inf and the area nan); a strip the edge misses has lo == hi
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        t_lo = np.clip((lo - u) / (ub - u), 0.0, 1.0)
        t_hi = np.clip((hi - u) / (ub - u), 0.0, 1.0)
    v_lo = v + t_lo * (vb - v)
    v_hi = v + t_hi * (vb - v)
    strips = ((hi - lo) * (v_lo + v_hi) / 2.0).sum(axis=1)
    total = strips.sum()
    return np.abs(strips) if total == 0 else strips * np.sign(total)


def area_profile(obj: ObjectAnnotation, *, size: int, axis: int) -> np.ndarray:
    """The object's area in each of ``size`` columns (``axis`` 0) or rows (1) of an S x S image (float64)."""
    if obj.rle is not None:
        if (obj.rle.height, obj.rle.width) != (size, size):
            raise DiffuseMixError(f"the object's mask is {obj.rle.width}x{obj.rle.height}, not {size}x{size}")
        return rle_ops.decode(obj.rle).sum(axis=axis).astype(np.float64)  # axis 0: per column
    if obj.polygons:
        return sum(
            (_strip_areas(np.asarray(p, dtype=np.float64).reshape(-1, 2), size, axis) for p in obj.polygons),
            np.zeros(size),
        )
    lo, hi = (obj.box[0], obj.box[2]) if axis == 0 else (obj.box[1], obj.box[3])
    extent = (obj.box[3] - obj.box[1]) if axis == 0 else (obj.box[2] - obj.box[0])
    i = np.arange(size, dtype=np.float64)
    return np.clip(np.minimum(i + 1.0, hi) - np.maximum(i, lo), 0.0, 1.0) * extent


def _generated_profile(size: int, layout: str, kind: str, seam: float) -> np.ndarray:
    m = make_mask(size, size, layout, kind=kind, seam=seam)  # type: ignore[arg-type]
    keep = m[0, :] if _axis(layout) == 0 else m[:, 0]
    return 1.0 - keep.astype(np.float64)


def generated_share(
    obj: ObjectAnnotation, *, size: int, layout: Layout, kind: MaskKind = "linspace", seam: float = 20
) -> float:
    """The share of the object's area on the Î side of the seam, in [0, 1] (see the module text).

    ``obj`` is in the coordinates of the S x S stages (after
    ``geometry.transform_annotation``).
    """
    prof = area_profile(obj, size=size, axis=_axis(layout))
    total = float(prof.sum())
    if total <= 0.0:
        return 0.0
    return float(np.clip(prof @ _generated_profile(size, layout, kind, seam) / total, 0.0, 1.0))


def generated_shares(
    annotation: ImageAnnotation, *, layout: Layout, kind: MaskKind = "linspace", seam: float = 20
) -> tuple[float, ...]:
    """:func:`generated_share` of every object of an S x S annotation."""
    if annotation.width != annotation.height:
        raise DiffuseMixError(f"the annotation must be of the S x S stages; got {annotation.width}x{annotation.height}")
    return tuple(
        generated_share(o, size=annotation.width, layout=layout, kind=kind, seam=seam) for o in annotation.objects
    )


def input_side_area(
    annotation: ImageAnnotation,
    *,
    layout: Layout,
    kind: MaskKind = "linspace",
    seam: float = 20,
    categories: Collection[int] | None = None,
) -> float:
    """Object area (pixels) on the real image's side: Σ area × (1 − generated share), over ``categories`` or all."""
    size = annotation.width
    axis = _axis(layout)
    keep = 1.0 - _generated_profile(size, layout, kind, seam)
    total = 0.0
    for o in annotation.objects:
        if categories is not None and o.category_id not in categories:
            continue
        total += float(area_profile(o, size=size, axis=axis) @ keep)
    return total


def best_layout(
    annotation: ImageAnnotation,
    layouts: Sequence[str],
    *,
    kind: MaskKind = "linspace",
    seam: float = 20,
    categories: Collection[int] | None = None,
) -> str:
    """The layout among ``layouts`` that keeps the most object area on the real image's side.

    Ties (e.g. no objects) go to the first of ``layouts``, in their order.
    ``categories`` limits the count to those category ids.
    """
    if not layouts:
        raise DiffuseMixError("layouts is empty: give the recipe's layouts")
    scores = [
        input_side_area(annotation, layout=lay, kind=kind, seam=seam, categories=categories)  # type: ignore[arg-type]
        for lay in layouts
    ]
    return str(layouts[int(np.argmax(scores))])
