"""A prototype of the exporter's annotation step: the thin layer the exporter calls per image.

Where it sits (the exporter owns the rest)::

    scan: image entry ──► dataset.get(source) ─► ImageAnnotation (or skipped: errors.jsonl)
    plan: draw(recipe, source, fractals) ─► records
          plan_annotations(annotation, records, recipe, options)
              ─► records (layouts changed only under layout_choice="keep-objects")
              ─► one SampleAnnotation per record
    write: A as usual; SampleAnnotation.annotation into the COCO writer / a YOLO label /
           a mask beside A; SampleAnnotation.row merged into A's manifest row

The geometry depends on the image and (size, resize) only, so it is computed
once per image; only the seam shares depend on the record. Nothing here
reads or writes files, or mixes pixels: H and A keep I's geometry, so the
A-side annotation is the I-side annotation.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np

from .. import schema
from ..errors import DiffuseMixError, SettingError
from ..schema import check_fields, fail, register, setting
from ..functional import make_mask
from ..recipe import Recipe, SampleRecord
from .detect import ANNOTATION_FORMATS
from .geometry import DEFAULT_MIN_VISIBILITY, TransformResult, transform_annotation, transform_semantic
from .issues import ON_ERROR, AnnotationError, AnnotationIssue
from .seam import best_layout, generated_shares
from .targets import hf_objects
from .types import Categories, ImageAnnotation, SemanticMask

__all__ = [
    "LAYOUT_CHOICES",
    "TASKS",
    "parse_category_ids",
    "AnnotationOptions",
    "LayoutChoice",
    "SampleAnnotation",
    "annotate_sample",
    "annotate_semantic_sample",
    "check_image_size",
    "choose_layout",
    "plan_annotations",
    "prepare_annotation",
]

LayoutChoice = Literal["drawn", "keep-objects"]
LAYOUT_CHOICES: tuple[str, ...] = get_args(LayoutChoice)
Task = Literal["classify", "detect", "segment"]
#: What an export is for: classification (class folders), detection (boxes), segmentation (polygons, masks).
TASKS: tuple[str, ...] = get_args(Task)
_ROUND = 3


def parse_category_ids(text: str) -> tuple[int, ...]:
    """``"1,3"`` → ``(1, 3)`` (the command line's ``--keep-categories``)."""
    parts = [p.strip() for p in str(text).split(",") if p.strip()]
    if not all(re.fullmatch(r"-?\d+", p) for p in parts):
        raise SettingError("must be category ids separated by commas, e.g. 1,3", owner="AnnotationOptions",
                           field="keep_categories", value=text)
    return tuple(int(p) for p in parts)


@register
@dataclass(frozen=True)
class AnnotationOptions:
    """What the input's annotations are and how they ride along an export (the method's settings stay in the
    :class:`~diffusemix.recipe.Recipe`).

    One field per setting (:mod:`diffusemix.schema`): the command line's flags, run.json's ``annotations``
    block and the rows follow. ``task="classify"`` (the default) is the class-folder export: no annotations.
    """

    task: str = setting(
        "classify", choices=TASKS, stage="generation", label="Task",
        help="classify: class folders, no annotations; detect: the input is a COCO or YOLO dataset and its boxes"
        " ride along with every image; segment: its polygons and masks too (COCO, YOLO segments, or images/ +"
        " masks/ of class ids)",
    )
    format: str = setting(
        "auto", choices=ANNOTATION_FORMATS, flag="--annotations", stage="generation", label="Annotation format",
        help="annotation format of the input (with --task detect|segment): auto (found from INPUT), coco, yolo or"
        " masks; the output is written in the same format",
    )
    path: str | None = setting(
        None, kind="str", optional=True, flag="--annotations-path", metavar="PATH", stage="generation",
        label="Annotation file", default_text="found from INPUT",
        help="the annotations when INPUT does not hold them: a COCO JSON, a YOLO data.yaml or a masks/ folder;"
        " INPUT is then the folder the images lie in",
    )
    min_visibility: float = setting(
        DEFAULT_MIN_VISIBILITY, kind="float", low=0.0, high=1.0, metavar="SHARE", stage="generation",
        label="Min visibility",
        help="drop an object when less than this share of its area stays inside the crop (center-crop only;"
        " 0 keeps any object with a part inside)",
    )
    layout_choice: str = setting(
        "drawn", choices=LAYOUT_CHOICES, stage="mixing", label="Layout choice",
        help="drawn: the record's random layout (the method); keep-objects: per image, the recipe's layout that"
        " keeps the most object area on the real image's side (recorded in the row)",
    )
    keep_categories: tuple[int, ...] = setting(
        (), parse=parse_category_ids, metavar="ID,ID", stage="mixing", label="Categories kept real",
        default_text="all", help="category ids that keep-objects counts",
    )
    tolerance: float = setting(
        1.0, kind="float", low=0.0, metavar="PX", flag="--annotation-tolerance", stage="generation",
        label="Annotation tolerance (px)",
        help="pixels an annotation may reach outside its image before it is refused (within it: clipped)",
    )
    on_error: str = setting(
        "skip", choices=ON_ERROR, flag="--annotation-errors", stage="run", label="Bad annotations",
        help="skip: leave out an image with a bad annotation and list it in the export's errors; raise: stop",
    )

    def __post_init__(self) -> None:
        if isinstance(self.keep_categories, (list, tuple)):
            object.__setattr__(self, "keep_categories", tuple(self.keep_categories))
        check_fields(self)
        if not isinstance(self.keep_categories, tuple) or not all(schema.is_int(c) for c in self.keep_categories):
            raise fail(self, "keep_categories", "must be category ids (integers)")
        object.__setattr__(self, "keep_categories", tuple(int(c) for c in self.keep_categories))
        if self.path is not None:
            object.__setattr__(self, "path", os.fspath(self.path))
        if self.task == "classify" and self.path is not None:
            raise fail(self, "path", "goes with task detect or segment (a classification input has no annotations)")

    @property
    def active(self) -> bool:
        """Whether annotations ride along (task detect or segment)."""
        return self.task != "classify"

    def replace(self, **changes: Any) -> "AnnotationOptions":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return schema.to_dict(self)


@dataclass(frozen=True)
class SampleAnnotation:
    """The annotation of one A, and the fields its manifest row gains.

    Attributes:
        annotation: the objects in A's S x S coordinates (the kept and clipped ones).
        generated_share: per object of ``annotation``, its share of area on the Î side.
        row: JSON-able fields for A's manifest row (see :func:`annotate_sample`).
    """

    annotation: ImageAnnotation
    generated_share: tuple[float, ...]
    row: dict[str, Any]


def check_image_size(annotation: ImageAnnotation, size: tuple[int, int], *, file: str = "") -> None:
    """Refuse an annotation whose image size is not the loaded image's (``load_image``'s, after EXIF).

    Raises:
        AnnotationError: naming the image, both sizes, and whether EXIF turned it.
    """
    if annotation.size != tuple(size):
        turned = " (EXIF orientation turns it)" if annotation.size == (size[1], size[0]) else ""
        raise AnnotationError(
            AnnotationIssue(
                file or annotation.file_name,
                f"the annotation is for a {annotation.width}x{annotation.height} image but the image loads as"
                f" {size[0]}x{size[1]}{turned}",
                image=annotation.file_name,
                hint="Annotations must be of the image as displayed, after EXIF orientation",
            )
        )


def prepare_annotation(annotation: ImageAnnotation, recipe: Recipe, options: AnnotationOptions) -> TransformResult:
    """The geometry of one image's annotation at the recipe's size and resize mode (once per image)."""
    return transform_annotation(
        annotation,
        size=recipe.size,
        resize=recipe.resize,
        min_visibility=options.min_visibility,  # type: ignore[arg-type]
    )


def choose_layout(
    record: SampleRecord, prepared: TransformResult, recipe: Recipe, options: AnnotationOptions
) -> SampleRecord:
    """The record, with its layout replaced by :func:`seam.best_layout` under ``keep-objects``; unchanged otherwise.

    The chosen layout is stored in the record, so the sample replays as it was made.
    """
    if options.layout_choice == "drawn":
        return record
    layout = best_layout(
        prepared.annotation,
        recipe.layouts,
        kind=record.mask,  # type: ignore[arg-type]
        seam=record.seam,
        categories=options.keep_categories or None,
    )
    return record if layout == record.layout else dataclasses.replace(record, layout=layout)


def _r(v: float) -> float:
    return round(float(v), _ROUND)


def annotate_sample(prepared: TransformResult, record: SampleRecord, categories: Categories) -> SampleAnnotation:
    """A's annotation and row fields, for one record of the image ``prepared`` came from.

    Row fields:
        ``objects``: 🤗 ``objects`` column of A (COCO ``bbox`` [x, y, w, h], ``category`` index, ``area``,
        ``id``, ``iscrowd``), so that ``load_dataset("imagefolder")`` on the export reads the boxes;
        ``object_count`` / ``objects_clipped`` / ``objects_dropped``;
        ``object_outcomes``: per source object, in source order: ``source_id``, ``category_id``,
        ``status`` (kept / clipped / dropped), ``visible`` (share inside the crop), ``generated_share``
        (share on the Î side; null when dropped), ``reason`` when dropped.
    """
    if (prepared.geometry.size, prepared.annotation.width) != (record.size, record.size):
        raise DiffuseMixError(
            f"the annotation was prepared at {prepared.geometry.size} px but the record is at {record.size} px"
        )
    layout, kind = record.layout, record.mask
    shares = generated_shares(prepared.annotation, layout=layout, kind=kind, seam=record.seam)  # type: ignore[arg-type]
    by_index = {}
    k = 0
    for o in prepared.outcomes:
        if o.object is not None:
            by_index[o.index] = shares[k]
            k += 1
    outcomes = []
    for o in prepared.outcomes:
        d: dict[str, Any] = {
            "source_id": o.source_id,
            "category_id": o.category_id,
            "status": o.status,
            "visible": _r(o.visible),
            "generated_share": _r(by_index[o.index]) if o.index in by_index else None,
        }
        if o.reason:
            d["reason"] = o.reason
        outcomes.append(d)
    objects = hf_objects(prepared.annotation, categories, labels="index")
    objects["bbox"] = [[_r(v) for v in b] for b in objects["bbox"]]
    objects["area"] = [_r(a) for a in objects["area"]]
    row = {
        "objects": objects,
        "object_count": len(prepared.annotation.objects),
        "objects_clipped": prepared.count("clipped"),
        "objects_dropped": prepared.count("dropped"),
        "object_outcomes": outcomes,
    }
    return SampleAnnotation(prepared.annotation, shares, row)


def plan_annotations(
    annotation: ImageAnnotation,
    records: Sequence[SampleRecord],
    recipe: Recipe,
    categories: Categories,
    options: AnnotationOptions = AnnotationOptions(),
) -> tuple[list[SampleRecord], list[SampleAnnotation]]:
    """One image: the geometry once, the layout choice (if asked), and every sample's annotation and row.

    Returns:
        The records (the same objects unless ``keep-objects`` changed a
        layout) and one :class:`SampleAnnotation` per record, in order.
    """
    prepared = prepare_annotation(annotation, recipe, options)
    chosen = [choose_layout(r, prepared, recipe, options) for r in records]
    return chosen, [annotate_sample(prepared, r, categories) for r in chosen]


def annotate_semantic_sample(mask: SemanticMask, record: SampleRecord) -> tuple[SemanticMask, dict[str, Any]]:
    """A's class-id mask (nearest neighbour over ``prepare``'s box) and its row fields.

    Row fields: ``class_pixels`` ({class name: pixels in A}, classes present only) and
    ``class_generated_share`` ({class name: share of its pixels on the Î side}).
    """
    out = transform_semantic(mask, size=record.size, resize=record.resize)  # type: ignore[arg-type]
    size, layout, kind = record.size, record.layout, record.mask
    weight = 1.0 - make_mask(size, size, layout, kind=kind, seam=record.seam)  # type: ignore[arg-type]
    m = np.asarray(out.mask)
    pixels: dict[str, int] = {}
    shares: dict[str, float] = {}
    for v in np.unique(m):
        if v == mask.ignore_index or v >= len(mask.classes):
            continue
        sel = m == v
        name = mask.classes[int(v)]
        pixels[name] = int(sel.sum())
        shares[name] = _r(float(weight[sel].mean()))
    return out, {"class_pixels": pixels, "class_generated_share": shares}
