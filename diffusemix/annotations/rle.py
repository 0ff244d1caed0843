"""Binary masks as COCO run-length encoding, through pycocotools (the ``detection`` extra).

pycocotools is imported on first use only, so that the rest of the package
(YOLO, semantic masks, boxes) works without it; what needs it says how to
install it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import DiffuseMixError
from .types import Box, Polygon, Rle

__all__ = [
    "area",
    "bbox",
    "decode",
    "encode",
    "mask_utils",
    "polygons_area",
    "polygons_to_mask",
    "rle_from_coco",
]

_INSTALL_HINT = (
    "COCO masks (RLE segmentations, areas) need pycocotools: pip install 'diffusemix[detection]' "
    "(or pip install pycocotools==2.0.11)"
)


def mask_utils() -> Any:
    """``pycocotools.mask``, or an ImportError that says how to install it."""
    try:
        from pycocotools import mask
    except ImportError as e:  # pragma: no cover - pycocotools is installed where tests run
        raise ImportError(_INSTALL_HINT) from e
    return mask


def rle_from_coco(segmentation: dict[str, Any], height: int, width: int) -> Rle:
    """A COCO RLE segmentation (``counts`` compressed string or uncompressed list) as :class:`Rle`.

    Raises:
        ValueError: the size is not (height, width), or the counts do not add
            up to height * width pixels.
    """
    size = segmentation.get("size")
    counts = segmentation.get("counts")
    if not (isinstance(size, (list, tuple)) and len(size) == 2 and all(isinstance(v, int) for v in size)):
        raise DiffuseMixError(f"RLE 'size' must be [height, width]; got {size!r}")
    if tuple(size) != (int(height), int(width)):
        raise DiffuseMixError(f"the RLE mask is {size[1]}x{size[0]} (width x height) but its image is {width}x{height}")
    mu = mask_utils()
    if isinstance(counts, list):
        if not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts):
            raise DiffuseMixError("uncompressed RLE 'counts' must be non-negative integers")
        if sum(counts) != height * width:
            raise DiffuseMixError(f"RLE counts add up to {sum(counts)} pixels, not {height} x {width} = {height * width}")
        compressed = mu.frPyObjects({"size": [height, width], "counts": counts}, height, width)
        return Rle(int(height), int(width), bytes(compressed["counts"]))
    if isinstance(counts, (str, bytes)):
        raw = counts.encode("ascii") if isinstance(counts, str) else bytes(counts)
        rle = Rle(int(height), int(width), raw)
        total = int(np.sum(_run_lengths(rle)))
        if total != height * width:
            raise DiffuseMixError(f"RLE counts add up to {total} pixels, not {height} x {width} = {height * width}")
        return rle
    raise DiffuseMixError(f"RLE 'counts' must be a string or a list of integers; got {type(counts).__name__}")


def _run_lengths(rle: Rle) -> np.ndarray:
    """The run lengths of a compressed RLE, decoded as pycocotools' rleFrString does (no pixels made)."""
    s = rle.counts
    counts: list[int] = []
    p = 0
    while p < len(s):
        x = 0
        k = 0
        more = True
        while more:
            if p >= len(s):
                raise DiffuseMixError("RLE 'counts' string is truncated")
            c = s[p] - 48
            if c < 0 or c > 63:
                raise DiffuseMixError(f"RLE 'counts' has a character outside the encoding: {chr(s[p])!r}")
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and (c & 0x10):
                x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    arr = np.asarray(counts, dtype=np.int64)
    if arr.size and arr.min() < 0:
        raise DiffuseMixError("RLE 'counts' decode to a negative run length")
    return arr


def _as_coco(rle: Rle) -> dict[str, Any]:
    return {"size": [rle.height, rle.width], "counts": rle.counts}


def encode(mask: np.ndarray) -> Rle:
    """A boolean / 0-1 (H, W) mask as :class:`Rle`."""
    m = np.asarray(mask)
    if m.ndim != 2:
        raise DiffuseMixError(f"a mask is a 2-D array; got shape {m.shape}")
    out = mask_utils().encode(np.asfortranarray(m.astype(np.uint8)))
    return Rle(int(m.shape[0]), int(m.shape[1]), bytes(out["counts"]))


def decode(rle: Rle) -> np.ndarray:
    """The (H, W) boolean mask of an :class:`Rle`."""
    return mask_utils().decode(_as_coco(rle)).astype(bool)


def area(rle: Rle) -> int:
    """Pixels in the mask (pycocotools' area, what COCO files hold)."""
    return int(mask_utils().area(_as_coco(rle)))


def bbox(rle: Rle) -> Box | None:
    """(x0, y0, x1, y1) of the mask's pixels (pixel edges), or None for an empty mask."""
    if area(rle) == 0:
        return None
    x, y, w, h = (float(v) for v in mask_utils().toBbox(_as_coco(rle)))
    return (x, y, x + w, y + h)


def polygons_to_mask(polygons: Sequence[Polygon], height: int, width: int) -> np.ndarray:
    """Rasterise polygons (pixel-edge coordinates) as pycocotools does for COCO: boolean (H, W)."""
    if not polygons:
        return np.zeros((height, width), dtype=bool)
    mu = mask_utils()
    rles = mu.frPyObjects([list(p) for p in polygons], int(height), int(width))
    return mu.decode(mu.merge(rles)).astype(bool)


def polygons_area(polygons: Sequence[Polygon], height: int, width: int) -> int:
    """COCO's area of a polygon segmentation: the pixels of its rasterised, merged mask."""
    if not polygons:
        return 0
    mu = mask_utils()
    rles = mu.frPyObjects([list(p) for p in polygons], int(height), int(width))
    return int(mu.area(mu.merge(rles)))
