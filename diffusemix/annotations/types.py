"""What an annotation is, independent of the file format it came from.

Coordinates are pixel-edge coordinates of the image the annotation belongs
to: pixel (col, row) covers ``[col, col + 1) x [row, row + 1)``, so a box that
covers pixels 3..8 of a row runs from x = 3 to x = 9 (COCO's convention, and
the one Pillow's resize box and ``diffusemix.images.source_box`` use).

* :class:`Category` / :class:`Categories`: the category table (id, name), in
  the file's order.
* :class:`Rle`: a COCO run-length-encoded binary mask (pycocotools' compressed
  form), kept encoded so that an annotation of a 4000 x 3000 image costs bytes,
  not megabytes.
* :class:`ObjectAnnotation`: one object: category id, box (x0, y0, x1, y1),
  optional polygons and/or RLE mask, iscrowd, the source's object id.
* :class:`ImageAnnotation`: the objects of one image and its size.
* :class:`SemanticMask`: a class-id mask (one value per pixel) and its classes.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from ..errors import DiffuseMixError

__all__ = [
    "Box",
    "Categories",
    "Category",
    "ImageAnnotation",
    "ObjectAnnotation",
    "Polygon",
    "Rle",
    "SemanticMask",
]

#: (x0, y0, x1, y1) in pixel-edge coordinates, x0 < x1 and y0 < y1.
Box = tuple[float, float, float, float]
#: A flat ``(x1, y1, x2, y2, ...)`` ring of at least three vertices (COCO's form).
Polygon = tuple[float, ...]


@dataclass(frozen=True)
class Category:
    """One category: its id in the source (COCO ``id``, YOLO class index, mask value) and name."""

    id: int
    name: str
    supercategory: str | None = None


@dataclass(frozen=True)
class Categories:
    """The category table, in the source's order; ids are unique.

    ``index(id)`` is the category's position (0-based, contiguous), which is
    what training targets usually want; ``id`` is what the source files use.
    """

    items: tuple[Category, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "items", tuple(self.items))
        position: dict[int, int] = {}
        for i, c in enumerate(self.items):
            if not isinstance(c, Category):
                raise TypeError(f"Categories takes Category items; got {type(c).__name__}")
            if c.id in position:
                raise DiffuseMixError(
                    f"category id {c.id} appears twice ({self.items[position[c.id]].name!r} and {c.name!r})"
                )
            position[c.id] = i
        object.__setattr__(self, "_position", position)  # not a field: eq and repr ignore it

    @classmethod
    def from_names(cls, names: Sequence[str], *, start: int = 0) -> Categories:
        """Categories numbered ``start, start + 1, ...`` in the order of ``names`` (YOLO: start 0)."""
        return cls(tuple(Category(start + i, str(n)) for i, n in enumerate(names)))

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[Category]:
        return iter(self.items)

    def __contains__(self, category_id: object) -> bool:
        return category_id in self._position  # type: ignore[attr-defined]

    @property
    def ids(self) -> tuple[int, ...]:
        return tuple(c.id for c in self.items)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.items)

    def name(self, category_id: int) -> str:
        return self.items[self.index(category_id)].name

    def index(self, category_id: int) -> int:
        """The category's position in the table (0-based)."""
        try:
            return self._position[category_id]  # type: ignore[attr-defined]
        except KeyError:
            raise KeyError(f"unknown category id {category_id}; known ids: {list(self.ids)}") from None

    def to_coco(self) -> list[dict[str, Any]]:
        out = []
        for c in self.items:
            d: dict[str, Any] = {"id": c.id, "name": c.name}
            if c.supercategory is not None:
                d["supercategory"] = c.supercategory
            out.append(d)
        return out


@dataclass(frozen=True)
class Rle:
    """A binary mask as COCO run-length encoding: ``size`` (height, width) and pycocotools' compressed ``counts``."""

    height: int
    width: int
    counts: bytes

    def to_coco(self) -> dict[str, Any]:
        """The JSON form COCO files use: ``{"size": [h, w], "counts": str}``."""
        return {"size": [self.height, self.width], "counts": self.counts.decode("ascii")}


def _check_box(box: Sequence[float]) -> Box:
    b = tuple(float(v) for v in box)
    if len(b) != 4 or not all(math.isfinite(v) for v in b):
        raise DiffuseMixError(f"a box is 4 finite numbers (x0, y0, x1, y1); got {box!r}")
    if not (b[0] < b[2] and b[1] < b[3]):
        raise DiffuseMixError(f"a box must have x0 < x1 and y0 < y1; got {box!r}")
    return b  # type: ignore[return-value]


@dataclass(frozen=True)
class ObjectAnnotation:
    """One object of an image.

    Attributes:
        category_id: the category's id in the source (see :class:`Categories`).
        box: (x0, y0, x1, y1), pixel-edge coordinates, non-empty.
        polygons: the outline as one or more flat rings (COCO ``segmentation``
            as polygons, a YOLO segment), or empty.
        rle: the mask as run-length encoding (COCO RLE segmentation), or None.
        iscrowd: COCO's crowd flag.
        source_id: the object's id in the source (COCO annotation id, or the
            YOLO label line number), for error messages and the manifest.
    """

    category_id: int
    box: Box
    polygons: tuple[Polygon, ...] = ()
    rle: Rle | None = None
    iscrowd: bool = False
    source_id: int | str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "box", _check_box(self.box))
        polys = tuple(tuple(float(v) for v in p) for p in self.polygons)
        for p in polys:
            if len(p) < 6 or len(p) % 2:
                raise DiffuseMixError(f"a polygon is at least 3 (x, y) points; got {len(p)} numbers")
        object.__setattr__(self, "polygons", polys)
        object.__setattr__(self, "iscrowd", bool(self.iscrowd))

    @classmethod
    def from_mask(cls, category_id: int, mask: np.ndarray, **fields: Any) -> ObjectAnnotation:
        """An object from a binary (H, W) mask: its box is the box of its pixels (needs pycocotools)."""
        from . import rle as rle_ops

        m = np.asarray(mask, dtype=bool)
        rows, cols = np.nonzero(m)
        if rows.size == 0:
            raise DiffuseMixError("the mask is empty (no pixel set)")
        box = (float(cols.min()), float(rows.min()), float(cols.max() + 1), float(rows.max() + 1))
        return cls(category_id, box, rle=rle_ops.encode(m), **fields)

    @property
    def geometry(self) -> str:
        """``"mask"``, ``"polygon"`` or ``"box"``: the finest shape this object carries."""
        if self.rle is not None:
            return "mask"
        if self.polygons:
            return "polygon"
        return "box"


@dataclass(frozen=True)
class ImageAnnotation:
    """The objects of one image.

    Attributes:
        file_name: the image's path relative to the images folder (POSIX).
        width, height: the image's size in pixels, after EXIF orientation
            (the size ``diffusemix.images.load_image`` returns).
        objects: its objects, in the source's order.
        image_id: the image's id in the source (COCO), or None.
    """

    file_name: str
    width: int
    height: int
    objects: tuple[ObjectAnnotation, ...] = ()
    image_id: int | str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "objects", tuple(self.objects))
        if int(self.width) < 1 or int(self.height) < 1:
            raise DiffuseMixError(f"image size must be at least 1x1; got {self.width}x{self.height}")

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)."""
        return (int(self.width), int(self.height))


@dataclass(frozen=True, eq=False)
class SemanticMask:
    """A semantic segmentation label: one class id per pixel.

    Attributes:
        mask: integer (H, W) array (uint8 or uint16), read-only; a value is an
            index into ``classes``, or ``ignore_index``.
        classes: the class names; value i is ``classes[i]``.
        ignore_index: the value for "no label" (255 by the VOC / torchvision
            convention), or None when every value must be a class.
        file_name: the image's path relative to the images folder.
    """

    mask: np.ndarray
    classes: tuple[str, ...]
    ignore_index: int | None = 255
    file_name: str = ""

    def __post_init__(self) -> None:
        m = np.asarray(self.mask)
        if m.ndim != 2 or not np.issubdtype(m.dtype, np.integer):
            raise DiffuseMixError(f"a semantic mask is an integer (H, W) array; got {m.dtype} {m.shape}")
        m = m.copy() if m.flags.writeable else m
        m.setflags(write=False)
        object.__setattr__(self, "mask", m)
        object.__setattr__(self, "classes", tuple(str(c) for c in self.classes))

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)."""
        return (int(self.mask.shape[1]), int(self.mask.shape[0]))
