"""Explore's optional objects: an annotation of the uploaded image, carried to S x S and drawn on I, Î, H and A.

Three ways to give it (one at a time):

* a COCO instances JSON (its only image, or the entry whose ``file_name`` is the upload's name);
* a YOLO label file (``class cx cy w h`` or a segment, normalised; classes are named ``class 0``, ...);
* boxes typed in, one a line: ``x0,y0,x1,y1,class`` in the uploaded image's pixels (the class is any name).

The objects are checked as the exporter's readers check them (inside the image within 1 px, a box of positive
size, a polygon of 3 points and more) and moved with ``prepare``'s arithmetic (``transform_annotation``): the
mixing keeps geometry, so the same objects stand on I, Î, H and A. Pure functions; no Gradio here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..annotations.checks import ObjectCheck, check_object
from ..annotations.draw import draw_annotations
from ..annotations.export_step import annotate_sample, check_image_size
from ..annotations.geometry import TransformResult, transform_annotation
from ..annotations.types import Categories, ImageAnnotation
from ..errors import DiffuseMixError
from ..recipe import Recipe

__all__ = ["BOX_FORMAT", "DRAWN_STAGES", "ExploreObjects", "objects_for", "parse_boxes", "read_annotation_file"]

#: How a typed box reads.
BOX_FORMAT = "x0,y0,x1,y1,class"
#: The stages objects are drawn on (M and F carry no image content).
DRAWN_STAGES = ("input", "generated", "hybrid", "augmented")
_MAX_FILE_BYTES = 64 << 20
_MAX_LINES = 1000


def parse_boxes(text: str, *, width: int, height: int) -> tuple[ImageAnnotation, Categories]:
    """Boxes typed one a line as ``x0,y0,x1,y1,class``; classes numbered in order of first appearance.

    Raises:
        DiffuseMixError: naming the line and what is wrong with it.
    """
    lines = [(k, ln.strip()) for k, ln in enumerate(text.splitlines(), start=1) if ln.strip()]
    if len(lines) > _MAX_LINES:
        raise DiffuseMixError(f"has {len(lines)} lines; at most {_MAX_LINES} boxes", field="Boxes")
    names: list[str] = []
    raw = []
    for k, line in lines:
        parts = [p.strip() for p in line.split(",", 4)]
        if len(parts) != 5 or not parts[4]:
            raise DiffuseMixError(f"line {k} ({line[:60]!r}) is not {BOX_FORMAT}", field="Boxes")
        try:
            box = [float(p) for p in parts[:4]]
        except ValueError:
            raise DiffuseMixError(f"line {k}: x0, y0, x1, y1 must be numbers (pixels); got {line[:60]!r}",
                                  field="Boxes") from None
        if parts[4] not in names:
            names.append(parts[4])
        raw.append((k, box, names.index(parts[4])))
    categories = Categories.from_names(names)
    check = ObjectCheck(width, height, categories)
    objects = []
    for k, box, cid in raw:
        try:
            objects.append(check_object(check, category_id=cid, box=box, source_id=f"line {k}"))
        except ValueError as e:
            raise DiffuseMixError(f"line {k}: {e}", field="Boxes") from None
    return ImageAnnotation("typed", width, height, tuple(objects)), categories


def read_annotation_file(path: Path, *, image_name: str, width: int, height: int
                         ) -> tuple[ImageAnnotation, Categories]:
    """A COCO JSON or a YOLO label file for an image of ``width`` x ``height`` (after EXIF orientation).

    Raises:
        DiffuseMixError (an ``AnnotationError`` for the file's own problems): naming the file and the object.
    """
    from ..annotations.coco import read_coco
    from ..annotations.yolo import parse_label_text
    from ..filecheck import read_checked

    name = Path(path).name
    if name.lower().endswith(".json"):
        ds = read_coco(path, images_dir=Path(path).parent, check_images=False)
        if not ds.images:
            raise DiffuseMixError(f"{name} lists no image")
        picked = ds.images[0] if len(ds.images) == 1 else next(
            (a for a in ds.images if Path(a.file_name).name == image_name), None)
        if picked is None:
            shown = ", ".join(a.file_name for a in ds.images[:5]) + (", ..." if len(ds.images) > 5 else "")
            raise DiffuseMixError(f"{name} lists {len(ds.images)} images ({shown}), none named {image_name!r}",
                                  hint="Give a JSON of this image, or upload the image under its name in the JSON")
        check_image_size(picked, (width, height), file=name)
        return picked, ds.categories
    if name.lower().endswith(".txt"):
        data = read_checked(path, max_bytes=_MAX_FILE_BYTES, fail=lambda reason: DiffuseMixError(f"{name} {reason}"))
        text = data.decode("utf-8", "replace")
        indices = [int(m.group(1)) for m in re.finditer(r"^\s*(\d+)\s", text, flags=re.MULTILINE)]
        categories = Categories.from_names([f"class {i}" for i in range(max(indices, default=-1) + 1)])
        try:
            objects = parse_label_text(text, ObjectCheck(width, height, categories))
        except ValueError as e:
            raise DiffuseMixError(f"{name}, {e}") from None
        return ImageAnnotation(image_name, width, height, objects), categories
    raise DiffuseMixError(f"{name} is neither a COCO .json nor a YOLO .txt label file", field="Annotation file")


class ExploreObjects:
    """The objects of one Explore run: the source annotation, its S x S form, and what to draw."""

    def __init__(self, annotation: ImageAnnotation, categories: Categories, recipe: Recipe) -> None:
        self.source, self.categories = annotation, categories
        self.prepared: TransformResult = transform_annotation(annotation, size=recipe.size, resize=recipe.resize)

    def draw(self, stage: str, image: Any) -> Any:
        """A stage's PIL image with the objects drawn (I, Î, H and A; the others as they are)."""
        from PIL import Image

        if stage not in DRAWN_STAGES:
            return image
        return Image.fromarray(draw_annotations(np.asarray(image.convert("RGB")), self.prepared.annotation,
                                                self.categories))

    def rows(self, records: Sequence[Any]) -> list[dict[str, Any]]:
        """Per sample, the exporter's row fields (objects, kept / clipped / dropped, share on the Î side)."""
        return [annotate_sample(self.prepared, r, self.categories).row for r in records]

    def summary(self, records: Sequence[Any]) -> str:
        """Markdown: the objects, what the resize did, and each sample's share of object area on the Î side."""
        p = self.prepared
        n = len(self.source.objects)
        head = (f"**Objects**: {n} ({p.count('kept')} kept, {p.count('clipped')} clipped, {p.count('dropped')} "
                "dropped by the resize), drawn on I, Î, H and A: the mixing keeps geometry.")
        rows = self.rows(records)
        names = [self.categories.name(o.category_id) for o in p.annotation.objects]
        shares = []
        for r, row in zip(records, rows):
            got = [o["generated_share"] for o in row["object_outcomes"] if o["generated_share"] is not None]
            shares.append(f"{r.prompt} ({r.layout}): " + ", ".join(f"{n} {s:.0%}" for n, s in zip(names, got))
                          if got else f"{r.prompt}: no object")
        return head + "\n\nShare of each object on the Î side: " + "; ".join(shares) + "."


def objects_for(file: Path | None, boxes: str | None, *, image_name: str, size: tuple[int, int],
                recipe: Recipe) -> ExploreObjects | None:
    """The run's objects from an annotation file or typed boxes (not both), or None when neither is given."""
    typed = bool(boxes and boxes.strip())
    if file is not None and typed:
        raise DiffuseMixError("give an annotation file or typed boxes, not both", field="Boxes")
    if file is None and not typed:
        return None
    w, h = size
    if file is not None:
        annotation, categories = read_annotation_file(file, image_name=image_name, width=w, height=h)
    else:
        annotation, categories = parse_boxes(boxes or "", width=w, height=h)
    return ExploreObjects(annotation, categories, recipe)

