"""Synthetic annotated images for the annotation tests, and measuring shapes from pixels.

A scene is a flat grey image with solid shapes, each in its own colour
(grey plus 100 in one direction of colour space, so that shapes do not
project onto each other and bicubic ringing is never clipped at 0 or 255):

* rectangles, drawn on whole pixels [x0, x1) x [y0, y1), annotated by a box;
* polygons, drawn as pycocotools rasterises them (COCO's own pixel rule),
  annotated by the polygon;
* blobs (two overlapping ellipses), annotated by a mask (COCO RLE).

``measure_rectangle`` finds a rectangle's box in a resampled image to a
fraction of a pixel: each pixel's coverage is its colour's projection on the
shape's colour; the profile along x (sum over rows) is height x overlap, so
the width is the profile's sum over its plateau height, and the centre its
weighted mean (bicubic kernels are symmetric and sum to one).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from diffusemix.annotations import rle as rle_ops

BACKGROUND = np.array([128.0, 128.0, 128.0])
#: Shape colours: background + 100 along one of these directions (orthogonal pairs first).
_DIRECTIONS = [
    (1, 0, 0),
    (0, 1, 0),
    (0, 0, 1),
    (-1, 0, 0),
    (0, -1, 0),
    (0, 0, -1),
    (0.7, 0.7, 0),
    (0, 0.7, 0.7),
    (0.7, 0, 0.7),
]


def colour(i: int) -> np.ndarray:
    return BACKGROUND + 100.0 * np.asarray(_DIRECTIONS[i % len(_DIRECTIONS)], dtype=np.float64)


@dataclass
class Shape:
    kind: str  # "rect" | "polygon" | "blob"
    category_id: int
    colour_index: int
    box: tuple[float, float, float, float]
    polygon: tuple[float, ...] = ()
    mask: np.ndarray | None = None  # bool (H, W) of the source image


@dataclass
class Scene:
    width: int
    height: int
    image: np.ndarray
    shapes: list[Shape] = field(default_factory=list)


def make_scene(width: int, height: int, shapes: list[tuple]) -> Scene:
    """Draw shapes on grey. Each entry: ("rect", cat, (x0, y0, x1, y1)), ("polygon", cat, [x, y, ...]),
    or ("blob", cat, (cx, cy, rx, ry)). Integer rectangle corners; shapes must not overlap."""
    img = np.empty((height, width, 3), dtype=np.float64)
    img[:] = BACKGROUND
    scene = Scene(width, height, img)
    for i, (kind, cat, spec) in enumerate(shapes):
        c = colour(i)
        if kind == "rect":
            x0, y0, x1, y1 = (int(v) for v in spec)
            img[y0:y1, x0:x1] = c
            scene.shapes.append(Shape("rect", cat, i, (float(x0), float(y0), float(x1), float(y1))))
        elif kind == "polygon":
            m = rle_ops.polygons_to_mask([tuple(float(v) for v in spec)], height, width)
            img[m] = c
            xs, ys = spec[0::2], spec[1::2]
            scene.shapes.append(
                Shape(
                    "polygon",
                    cat,
                    i,
                    (min(xs), min(ys), max(xs), max(ys)),
                    polygon=tuple(float(v) for v in spec),
                    mask=m,
                )
            )
        elif kind == "blob":
            cx, cy, rx, ry = spec
            yy, xx = np.mgrid[0:height, 0:width] + 0.5
            m = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1.0
            m |= ((xx - cx - rx * 0.6) / (rx * 0.6)) ** 2 + ((yy - cy + ry * 0.5) / (ry * 0.5)) ** 2 <= 1.0
            img[m] = c
            rows, cols = np.nonzero(m)
            scene.shapes.append(
                Shape(
                    "blob",
                    cat,
                    i,
                    (float(cols.min()), float(rows.min()), float(cols.max() + 1), float(rows.max() + 1)),
                    mask=m,
                )
            )
        else:
            raise ValueError(kind)
    scene.image = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    return scene


CATEGORIES = [{"id": 1, "name": "red thing"}, {"id": 3, "name": "green thing"}, {"id": 7, "name": "blue thing"}]


def coco_dict(scenes: dict[str, Scene], categories=CATEGORIES) -> dict:
    """A COCO instances dict for scenes keyed by file name (ids from 1; image ids 10, 20, ...)."""
    images, anns = [], []
    for k, (fn, s) in enumerate(sorted(scenes.items()), start=1):
        images.append({"id": 10 * k, "file_name": fn, "width": s.width, "height": s.height})
        for sh in s.shapes:
            x0, y0, x1, y1 = sh.box
            a = {
                "id": len(anns) + 1,
                "image_id": 10 * k,
                "category_id": sh.category_id,
                "bbox": [x0, y0, x1 - x0, y1 - y0],
                "iscrowd": 0,
                "area": 0,
            }
            if sh.kind == "polygon":
                a["segmentation"] = [list(sh.polygon)]
            elif sh.kind == "blob":
                r = rle_ops.encode(sh.mask)
                a["segmentation"] = r.to_coco()
            anns.append(a)
    return {"images": images, "annotations": anns, "categories": list(categories)}


def write_coco_dataset(root: Path, scenes: dict[str, Scene], *, images: str = "images") -> Path:
    """Save the scenes' images under root/images and their COCO JSON as root/annotations/instances.json."""
    for fn, s in scenes.items():
        p = root / images / fn
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(s.image).save(p)
    path = root / "annotations" / "instances.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(coco_dict(scenes)))
    return path


def write_yolo_dataset(root: Path, scenes: dict[str, Scene], names=("a", "b", "c")) -> Path:
    """Save scenes as a YOLO dataset: rectangles as box lines, polygons as segments; category = class index."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "data.yaml").write_text("names: [" + ", ".join(names) + "]\n")
    for fn, s in scenes.items():
        (root / "images" / fn).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(s.image).save(root / "images" / fn)
        lines = []
        for sh in s.shapes:
            if sh.kind == "rect":
                x0, y0, x1, y1 = sh.box
                lines.append(
                    f"{sh.category_id} {(x0 + x1) / 2 / s.width:.8f} {(y0 + y1) / 2 / s.height:.8f} "
                    f"{(x1 - x0) / s.width:.8f} {(y1 - y0) / s.height:.8f}"
                )
            elif sh.kind == "polygon":
                p = sh.polygon
                lines.append(
                    f"{sh.category_id} "
                    + " ".join(f"{v / (s.width if i % 2 == 0 else s.height):.8f}" for i, v in enumerate(p))
                )
        lp = root / "labels" / Path(fn).with_suffix(".txt")  # Ultralytics' rule: images/ -> labels/
        lp.parent.mkdir(parents=True, exist_ok=True)
        lp.write_text("\n".join(lines) + "\n")
    return root


def coverage(image: np.ndarray, colour_index: int) -> np.ndarray:
    """Per pixel, how much of the shape's colour it holds (1 inside, 0 on the background; float)."""
    d = colour(colour_index) - BACKGROUND
    return (image.astype(np.float64) - BACKGROUND) @ d / float(d @ d)


def measure_rectangle(
    image: np.ndarray, colour_index: int, around: tuple[float, float, float, float], margin: int = 6
) -> tuple[float, float, float, float]:
    """The box (x0, y0, x1, y1) of a solid rectangle, to a fraction of a pixel (see the module text).

    ``around`` (a rough box) only limits the window searched, widened by ``margin`` pixels.
    """
    h, w = image.shape[:2]
    x0, y0 = max(int(around[0]) - margin, 0), max(int(around[1]) - margin, 0)
    x1, y1 = min(int(np.ceil(around[2])) + margin, w), min(int(np.ceil(around[3])) + margin, h)
    cov = coverage(image[y0:y1, x0:x1], colour_index)
    px, py = cov.sum(axis=0), cov.sum(axis=1)

    def extent(profile: np.ndarray, offset: int) -> tuple[float, float]:
        plateau = float(np.median(profile[profile > 0.9 * profile.max()]))
        across = float(profile.sum()) / plateau
        centre = float(((np.arange(profile.size) + 0.5) * profile).sum() / profile.sum()) + offset
        return centre - across / 2, centre + across / 2

    # the x profile's plateau is the rectangle's height and vice versa
    ax0, ax1 = extent(px, x0)
    ay0, ay1 = extent(py, y0)
    return (ax0, ay0, ax1, ay1)


def iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def shape_in_image(image: np.ndarray, colour_index: int) -> np.ndarray:
    """Pixels where the shape's colour covers more than half (bool)."""
    return coverage(image, colour_index) > 0.5


def write_mask_dataset(root: Path, scenes: dict[str, Scene], classes=("background", "a", "b", "c")) -> Path:
    """Save scenes as image/mask pairs: images/<name>, masks/<stem>.png of class ids (a shape's category), classes.txt."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    (root / "classes.txt").write_text("".join(f"{c}\n" for c in classes))
    for fn, s in scenes.items():
        (root / "images" / fn).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(s.image).save(root / "images" / fn)
        mask = np.zeros((s.height, s.width), dtype=np.uint8)
        for sh in s.shapes:
            if sh.kind == "rect":
                x0, y0, x1, y1 = (int(v) for v in sh.box)
                mask[y0:y1, x0:x1] = sh.category_id
            else:
                mask[sh.mask] = sh.category_id
        mp = root / "masks" / Path(fn).with_suffix(".png")
        mp.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(mask).save(mp)
    return root
