"""Training targets from an annotation: torchvision's detection / segmentation dicts, 🤗 ``objects``.

torchvision's detection models (Faster / Mask R-CNN, RetinaNet, FCOS, SSD)
take, per image, a dict with ``boxes`` (float32 (N, 4), XYXY, pixels),
``labels`` (int64 (N,)) and, for Mask R-CNN, ``masks`` (uint8 (N, H, W));
``tv_tensors`` wrap them so that torchvision.transforms.v2 moves them with the
image. torchvision is optional: ``tv_tensors="auto"`` uses it only when it
imports (it often cannot beside a CPU-only torch from PyPI), and the plain
tensors are the same numbers.

Labels (``labels=``): ``"index+1"`` (default) is the category's position in the
table plus one, because torchvision's detection models keep 0 for the
background; ``"index"`` is the 0-based position (DETR-style models and 🤗
``ClassLabel``); ``"category_id"`` is the source's id (COCO's 1..90, as
torchvision's COCO reference scripts use with 91 classes).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Literal, get_args

import numpy as np

from ..errors import DiffuseMixError
from . import rle as rle_ops
from .types import Categories, ImageAnnotation, ObjectAnnotation, SemanticMask

__all__ = [
    "LABEL_MODES",
    "LabelMode",
    "detection_target",
    "detr_target",
    "hf_objects",
    "object_area",
    "object_mask",
    "segmentation_target",
    "tv_tensors_available",
]

LabelMode = Literal["index+1", "index", "category_id"]
LABEL_MODES: tuple[str, ...] = get_args(LabelMode)


@lru_cache(maxsize=1)
def _tv_tensors() -> Any | None:
    try:
        from torchvision import tv_tensors  # type: ignore[import-not-found]
    except Exception:  # ImportError, or a broken CUDA build: "operator torchvision::nms does not exist"
        return None
    return tv_tensors


def tv_tensors_available() -> bool:
    """Whether ``torchvision.tv_tensors`` imports here."""
    return _tv_tensors() is not None


def _use_tv(tv_tensors: bool | str) -> Any | None:
    if tv_tensors not in (True, False, "auto"):
        raise DiffuseMixError(f"tv_tensors must be True, False or 'auto'; got {tv_tensors!r}")
    if tv_tensors is False:
        return None
    mod = _tv_tensors()
    if mod is None and tv_tensors is True:
        raise ImportError(
            "tv_tensors=True needs torchvision, which does not import here; pass tv_tensors='auto' for plain tensors"
        )
    return mod


def _label(obj: ObjectAnnotation, categories: Categories, labels: str) -> int:
    if labels == "category_id":
        return int(obj.category_id)
    i = categories.index(obj.category_id)
    return i + 1 if labels == "index+1" else i


def object_mask(obj: ObjectAnnotation, *, width: int, height: int) -> np.ndarray | None:
    """The object's mask, bool (H, W): its RLE, or its polygons rasterised as pycocotools does; None for a box alone."""
    if obj.rle is not None:
        if (obj.rle.width, obj.rle.height) != (width, height):
            raise DiffuseMixError(f"the object's mask is {obj.rle.width}x{obj.rle.height}, not {width}x{height}")
        return rle_ops.decode(obj.rle)
    if obj.polygons:
        return rle_ops.polygons_to_mask(obj.polygons, height, width)
    return None


def object_area(obj: ObjectAnnotation, *, width: int, height: int) -> float:
    """COCO's area: the mask's pixels (RLE or rasterised polygons), else the box's w * h."""
    if obj.rle is not None:
        return float(rle_ops.area(obj.rle))
    if obj.polygons:
        return float(rle_ops.polygons_area(obj.polygons, height, width))
    x0, y0, x1, y1 = obj.box
    return (x1 - x0) * (y1 - y0)


def detection_target(
    annotation: ImageAnnotation,
    categories: Categories,
    *,
    labels: LabelMode = "index+1",
    masks: bool | str = "auto",
    tv_tensors: bool | str = "auto",
) -> dict[str, Any]:
    """torchvision's detection target for one image.

    Args:
        annotation: the image's objects (of the image the model sees: S x S).
        categories: the category table (for ``labels``).
        labels: see the module text.
        masks: True: include ``masks`` (every object needs a polygon or a
            mask; a box alone is refused, never filled in); False: leave them
            out; ``"auto"``: include them when every object has a shape.
        tv_tensors: True / False / ``"auto"`` (when torchvision imports):
            ``boxes`` as ``tv_tensors.BoundingBoxes`` (format XYXY, canvas
            (H, W)) and ``masks`` as ``tv_tensors.Mask``.

    Returns:
        ``{"boxes": float32 (N, 4), "labels": int64 (N,), "area": float32 (N,),
        "iscrowd": int64 (N,)}`` and ``"masks": uint8 (N, H, W)`` when included.
    """
    import torch

    if labels not in LABEL_MODES:
        raise DiffuseMixError(f"labels must be one of {', '.join(LABEL_MODES)}; got {labels!r}")
    if masks not in (True, False, "auto"):
        raise DiffuseMixError(f"masks must be True, False or 'auto'; got {masks!r}")
    tv = _use_tv(tv_tensors)
    w, h = annotation.width, annotation.height
    objs = annotation.objects
    boxes = torch.tensor([list(o.box) for o in objs], dtype=torch.float32).reshape(-1, 4)
    target: dict[str, Any] = {
        "boxes": boxes,
        "labels": torch.tensor([_label(o, categories, labels) for o in objs], dtype=torch.int64),
        "area": torch.tensor([object_area(o, width=w, height=h) for o in objs], dtype=torch.float32),
        "iscrowd": torch.tensor([int(o.iscrowd) for o in objs], dtype=torch.int64),
    }
    shaped = all(o.geometry != "box" for o in objs)
    if masks is True and not shaped:
        first = next(i for i, o in enumerate(objs) if o.geometry == "box")
        raise DiffuseMixError(
            f"{annotation.file_name}: object {first} has only a box, no polygon or mask; pass masks=False (or 'auto')"
        )
    if masks is True or (masks == "auto" and shaped):
        stack = np.zeros((len(objs), h, w), dtype=np.uint8)
        for i, o in enumerate(objs):
            stack[i] = object_mask(o, width=w, height=h)
        target["masks"] = torch.from_numpy(stack)
    if tv is not None:
        target["boxes"] = tv.BoundingBoxes(target["boxes"], format="XYXY", canvas_size=(h, w))
        if "masks" in target:
            target["masks"] = tv.Mask(target["masks"])
    return target


def segmentation_target(mask: SemanticMask, *, tv_tensors: bool | str = "auto") -> Any:
    """torchvision's segmentation target: the class ids as an int64 (H, W) tensor (``tv_tensors.Mask`` if available)."""
    import torch

    tv = _use_tv(tv_tensors)
    t = torch.from_numpy(np.asarray(mask.mask).astype(np.int64))
    return tv.Mask(t) if tv is not None else t


def hf_objects(
    annotation: ImageAnnotation,
    categories: Categories,
    *,
    labels: LabelMode = "index",
    bbox_format: Literal["coco", "xyxy"] = "coco",
) -> dict[str, list[Any]]:
    """The 🤗 datasets ``objects`` column of one image (as in the hub's detection datasets, e.g. cppe-5).

    ``{"id": [...], "bbox": [[x, y, w, h], ...], "category": [...], "area": [...], "iscrowd": [...]}``;
    ``bbox_format="xyxy"`` gives ``[x0, y0, x1, y1]`` instead. ``category`` is the 0-based
    index by default (a ``ClassLabel``).
    """
    if labels not in LABEL_MODES:
        raise DiffuseMixError(f"labels must be one of {', '.join(LABEL_MODES)}; got {labels!r}")
    if bbox_format not in ("coco", "xyxy"):
        raise DiffuseMixError(f"bbox_format must be 'coco' or 'xyxy'; got {bbox_format!r}")
    w, h = annotation.width, annotation.height
    out: dict[str, list[Any]] = {"id": [], "bbox": [], "category": [], "area": [], "iscrowd": []}
    for i, o in enumerate(annotation.objects):
        x0, y0, x1, y1 = o.box
        out["id"].append(o.source_id if isinstance(o.source_id, int) else i)  # YOLO lines: the position
        out["bbox"].append([x0, y0, x1 - x0, y1 - y0] if bbox_format == "coco" else [x0, y0, x1, y1])
        out["category"].append(_label(o, categories, labels))
        out["area"].append(object_area(o, width=w, height=h))
        out["iscrowd"].append(int(o.iscrowd))
    return out


def detr_target(annotation: ImageAnnotation, categories: Categories) -> dict[str, Any]:
    """The label dict 🤗 transformers' DETR-family detectors (DETR, YOLOS, Conditional / Deformable DETR) take.

    ``{"class_labels": int64 (N,) 0-based category index, "boxes": float32 (N, 4) centre x, centre y,
    width, height, normalised by the image's width and height}``.
    """
    import torch

    w, h = annotation.width, annotation.height
    rows = [
        [
            (o.box[0] + o.box[2]) / 2 / w,
            (o.box[1] + o.box[3]) / 2 / h,
            (o.box[2] - o.box[0]) / w,
            (o.box[3] - o.box[1]) / h,
        ]
        for o in annotation.objects
    ]
    return {
        "class_labels": torch.tensor([categories.index(o.category_id) for o in annotation.objects], dtype=torch.int64),
        "boxes": torch.tensor(rows, dtype=torch.float32).reshape(-1, 4),
    }
