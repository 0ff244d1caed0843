"""Draw annotations onto an image, for the app (I, Î, H and A with their objects).

Pure functions: a uint8 (H, W, 3) array in, a new one out; the input is not
changed. Colours come from a fixed palette indexed by the category's position,
so one category has one colour on every stage.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..errors import DiffuseMixError
from . import rle as rle_ops
from .types import Categories, ImageAnnotation, SemanticMask

__all__ = ["PALETTE", "category_colour", "draw_annotations", "draw_semantic", "mask_outline"]

#: Distinct colours (Tableau 10 and a few more), as (r, g, b).
PALETTE: tuple[tuple[int, int, int], ...] = (
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
    (255, 215, 0),
    (0, 128, 128),
    (128, 0, 0),
    (0, 0, 128),
    (255, 0, 255),
    (0, 255, 127),
)


def category_colour(index: int) -> tuple[int, int, int]:
    """The palette colour of the category at position ``index``."""
    return PALETTE[int(index) % len(PALETTE)]


def _check_image(image: np.ndarray, width: int, height: int, what: str) -> np.ndarray:
    a = np.asarray(image)
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3:
        raise DiffuseMixError(f"image must be uint8 (H, W, 3); got {a.dtype} {a.shape}")
    if (a.shape[1], a.shape[0]) != (width, height):
        raise DiffuseMixError(
            f"the {what} is for a {width}x{height} image but the image is {a.shape[1]}x{a.shape[0]}; "
            "bring it to the image's size first (geometry.transform_annotation)"
        )
    return a


def mask_outline(mask: np.ndarray, *, width: int = 1) -> np.ndarray:
    """The pixels of a bool mask within ``width`` px of its edge (4-neighbour erosion), bool."""
    m = np.asarray(mask, dtype=bool)
    inner = m.copy()
    for _ in range(max(int(width), 1)):
        p = np.pad(inner, 1, constant_values=False)
        inner = p[1:-1, 1:-1] & p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]
    return m & ~inner


def _font() -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default()


def _text(
    draw: ImageDraw.ImageDraw, xy: tuple[float, float], text: str, colour: tuple[int, int, int], size: tuple[int, int]
) -> None:
    font = _font()
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    tw, th = right - left + 4, bottom - top + 2
    x = min(max(int(xy[0]), 0), max(size[0] - tw, 0))
    y = int(xy[1]) - th if xy[1] - th >= 0 else int(xy[1])
    y = min(max(y, 0), max(size[1] - th, 0))
    draw.rectangle((x, y, x + tw - 1, y + th - 1), fill=colour)
    lum = 0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2]
    draw.text((x + 2 - left, y + 1 - top), text, fill=(0, 0, 0) if lum > 140 else (255, 255, 255), font=font)


def draw_annotations(
    image: np.ndarray,
    annotation: ImageAnnotation,
    categories: Categories | None = None,
    *,
    width: int = 2,
    labels: bool = True,
) -> np.ndarray:
    """Boxes, polygon outlines and mask outlines (with category names) drawn on a copy of ``image``.

    Args:
        image: uint8 (H, W, 3), of the annotation's size.
        annotation: the objects, in this image's coordinates.
        categories: for names and colours (without it: the ids, colours by id).
        width: line width in pixels.
        labels: write each object's category name above its box.

    Returns:
        A new uint8 (H, W, 3) array.
    """
    a = _check_image(image, annotation.width, annotation.height, "annotation")
    out = a.copy()
    w, h = annotation.width, annotation.height

    def colour_and_name(cid: int) -> tuple[tuple[int, int, int], str]:
        if categories is not None and cid in categories:
            return category_colour(categories.index(cid)), categories.name(cid)
        return category_colour(cid), str(cid)

    # 1. mask outlines straight into the array
    for obj in annotation.objects:
        if obj.rle is not None and (obj.rle.width, obj.rle.height) == (w, h):
            out[mask_outline(rle_ops.decode(obj.rle), width=width)] = colour_and_name(obj.category_id)[0]
    # 2. polygons, boxes and names through Pillow
    img = Image.fromarray(out)
    draw = ImageDraw.Draw(img)
    for obj in annotation.objects:
        colour, name = colour_and_name(obj.category_id)
        for p in obj.polygons:
            pts = [(p[i], p[i + 1]) for i in range(0, len(p), 2)]
            draw.line(pts + [pts[0]], fill=colour, width=width, joint="curve")
        x0, y0, x1, y1 = obj.box
        box = (
            math.floor(x0),
            math.floor(y0),
            max(math.ceil(x1) - 1, math.floor(x0)),
            max(math.ceil(y1) - 1, math.floor(y0)),
        )
        draw.rectangle(box, outline=colour, width=width)
        if labels:
            _text(draw, (box[0], box[1]), name, colour, (w, h))
    return np.array(img, dtype=np.uint8)


def draw_semantic(
    image: np.ndarray, mask: SemanticMask, *, alpha: float = 0.45, outline: int = 1, labels: bool = True
) -> np.ndarray:
    """Classes of a semantic mask as a translucent overlay with outlined regions and names; a new array.

    ``ignore_index`` pixels and class 0 (by convention the background) are left as they are.
    """
    w, h = mask.size
    a = _check_image(image, w, h, "mask")
    if not 0.0 <= alpha <= 1.0:
        raise DiffuseMixError(f"alpha must be in [0, 1]; got {alpha!r}")
    out = a.astype(np.float32)
    m = np.asarray(mask.mask)
    present = [int(v) for v in np.unique(m) if v != mask.ignore_index and v != 0 and v < len(mask.classes)]
    for v in present:
        sel = m == v
        out[sel] = (1 - alpha) * out[sel] + alpha * np.asarray(category_colour(v), dtype=np.float32)
    out8 = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    for v in present:
        if outline > 0:
            out8[mask_outline(m == v, width=outline)] = category_colour(v)
    if labels and present:
        img = Image.fromarray(out8)
        draw = ImageDraw.Draw(img)
        for v in present:
            ys, xs = np.nonzero(m == v)
            _text(draw, (float(xs.mean()), float(ys.mean())), mask.classes[v], category_colour(v), (w, h))
        out8 = np.array(img, dtype=np.uint8)
    return out8
