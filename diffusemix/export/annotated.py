"""Step 1 for ``--task detect|segment``: an annotated dataset as the plan's entries.

INPUT is a COCO, YOLO or image/mask-pairs dataset (``diffusemix.annotations``
reads and checks it); its images are the plan's entries, each carrying its
annotation (an ``ImageAnnotation``, or a ``MaskPair`` whose mask is decoded
when its samples are written), so every engine that runs the plan's chunks
has the geometry at hand.

Labels: an annotated dataset has no class folders. Every image takes one
label, the dataset folder's name (the folder holding the annotation file, as
a flat folder's images take the folder's name): ``class_name`` is that name
and ``label`` is 0, so the manifest stays one valid classification row per A
and ``OUTPUT/images/<name>/...`` stays an ImageFolder. The objects are in each
row's ``objects`` column and in the annotation files.

Where the annotations are (``AnnotationOptions.path`` not given): found from
INPUT as ``diffusemix.annotations.detect_format`` finds them (a COCO JSON in
INPUT or INPUT/annotations, a YOLO data.yaml with labels/, images/ with
masks/). Given: a COCO JSON (its image names relative to INPUT), a YOLO
data.yaml (labels by Ultralytics' rule from INPUT's images) or a masks folder
(class list beside it); INPUT is then the folder the images lie in. The images
must lie inside INPUT (a row's ``source`` is relative to it, as replay reads it).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from ..annotations.coco import read_coco
from ..annotations.dataset import AnnotatedDataset, MaskPair, SemanticDataset
from ..annotations.detect import coco_candidates, coco_images_dir, detect_format
from ..annotations.export_step import AnnotationOptions
from ..annotations.files import list_images
from ..annotations.issues import AnnotationError, AnnotationIssue
from ..annotations.masks import read_mask_pairs
from ..annotations.types import Categories, ImageAnnotation
from ..annotations.yolo import read_yolo
from ..errors import DiffuseMixError, SettingError
from . import folder, links, manifest
from .naming import out_stems

__all__ = ["AnnotatedInput", "annotations_settings", "scan_annotated", "written_as"]

_NAMES = {"coco": "COCO", "yolo": "YOLO", "masks": "image/mask pairs"}


@dataclass(frozen=True)
class AnnotatedInput:
    """What the annotated scan found, beside the entries (each entry carries its own annotation).

    Attributes:
        options: the settings it was read with.
        format: ``coco``, ``yolo`` or ``masks`` (the output is written in it).
        annotation_file: the COCO JSON, the YOLO data.yaml, or the masks folder.
        images_dir: the folder the annotation's image names are relative to.
        label: the one class of every image (the dataset folder's name).
        categories: the category table (COCO, YOLO); None for masks.
        classes: the class names of the masks (value i is ``classes[i]``); None otherwise.
        ignore_index: the masks' "no label" value.
        meta: what the writer gives back (YOLO: data.yaml's other keys).
        errors: errors.jsonl rows of the images left out for their annotations (``on_error="skip"``).
        objects: how many objects the entries carry.
        digest: a digest of every entry's annotation (a changed annotation file is a new folder).
    """

    options: AnnotationOptions
    format: str
    annotation_file: Path
    images_dir: Path
    label: str
    categories: Categories | None = None
    classes: tuple[str, ...] | None = None
    ignore_index: int | None = 255
    meta: dict[str, Any] = field(default_factory=dict, compare=False)
    errors: tuple[dict[str, Any], ...] = ()
    objects: int = 0
    digest: str = ""

    @property
    def task(self) -> str:
        return self.options.task

    @property
    def semantic(self) -> bool:
        return self.format == "masks"

    @property
    def category_names(self) -> tuple[str, ...]:
        return self.categories.names if self.categories is not None else tuple(self.classes or ())

    def semantic_dataset(self) -> SemanticDataset:
        """What ``annotations.masks.load_mask`` needs to decode an entry's mask."""
        return SemanticDataset(tuple(self.classes or ()), (), self.images_dir, self.annotation_file,
                               self.ignore_index)

    @property
    def label_mode(self) -> str:
        what = "detection" if self.task == "detect" else "segmentation"
        return f"{_NAMES[self.format]} {what} annotations ({self.annotation_file.name}), one label {self.label!r}"


def written_as(fmt: str) -> str:
    """Where an annotated export writes A's objects, in words (the names are :mod:`.folder`'s)."""
    if fmt == "coco":
        return f"{folder.ANNOTATIONS_DIR}/{folder.COCO_NAME}"
    if fmt == "yolo":
        return f"{folder.LABELS_DIR}/ (one label file per A) and {folder.DATA_YAML_NAME}"
    return f"{folder.MASKS_DIR}/ (one class-id mask per A) and {folder.CLASSES_NAME}"


def annotations_settings(annotated: AnnotatedInput) -> dict[str, Any]:
    """run.json's ``annotations`` block: the settings (by their stage, what a changed one means), the format read,
    the annotation file, the categories and the digest of every annotation."""
    opts = annotated.options.to_dict()
    opts.pop("on_error")  # how a run reacts to bad input: never a pixel or an object of a finished export
    return {
        **opts,
        "format": annotated.format,
        "path": str(annotated.annotation_file.resolve()),
        "categories": (annotated.categories.to_coco() if annotated.categories is not None
                       else [{"id": i, "name": n} for i, n in enumerate(annotated.classes or ())]),
        "digest": annotated.digest,
    }


def _inside(path: Path, root: Path) -> bool:
    return links.is_inside(os.path.realpath(path), os.path.realpath(root))


def _relative(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` (POSIX) when inside it, else as given."""
    if _inside(path, root):
        return Path(os.path.relpath(os.path.realpath(path), os.path.realpath(root))).as_posix()
    return str(path)


def _format_of_path(path: Path) -> str:
    if path.is_dir():
        return "masks"
    if path.suffix.lower() == ".json":
        return "coco"
    if path.suffix.lower() in (".yaml", ".yml"):
        return "yolo"
    raise SettingError(
        "must be a COCO .json, a YOLO data.yaml or a masks folder", owner="AnnotationOptions", field="path",
        value=str(path),
    )


def _read(inp: Path, options: AnnotationOptions) -> tuple[str, Path, Path, Path, AnnotatedDataset | SemanticDataset]:
    """(format, annotation file, images folder, dataset folder, what the reader returned)."""
    kw: dict[str, Any] = {"on_error": options.on_error}
    tol = {"tolerance": options.tolerance}
    if options.path is not None:
        p = Path(options.path).expanduser()
        if not os.path.lexists(p):
            raise SettingError("does not exist", owner="AnnotationOptions", field="path", value=str(p))
        fmt = _format_of_path(p) if options.format == "auto" else options.format
        if fmt == "coco":
            root = p.parent.parent if p.parent.name == "annotations" else p.parent
            return fmt, p, inp, root, read_coco(p, images_dir=inp, **kw, **tol)
        if fmt == "yolo":
            return fmt, p, inp, p.parent, read_yolo(p.parent, data_yaml=p, images_dir=inp, **kw, **tol)
        return fmt, p, inp, p.parent, read_mask_pairs(p.parent, images_dir=inp, masks_dir=p, **kw)
    if options.format == "auto":
        found = detect_format(inp)
        fmt, ann, images, root = found.format, found.annotation_file, found.images_dir, found.root
    elif options.format == "coco":
        cocos = coco_candidates(inp)
        if len(cocos) != 1:
            what = "no COCO JSON" if not cocos else f"{len(cocos)} COCO JSON files"
            raise AnnotationError(AnnotationIssue(str(inp), f"{what} here (nor in annotations/)",
                                                  hint="Give the one to use with --annotations-path"))
        fmt, ann, root = "coco", cocos[0], inp
        images = coco_images_dir(inp, ann)
    else:
        fmt, ann, images, root = options.format, None, inp / "images", inp
    if fmt == "coco":
        return fmt, ann, images, root, read_coco(ann, images_dir=images, **kw, **tol)  # type: ignore[arg-type]
    if fmt == "yolo":
        ds = read_yolo(root, images_dir=images, **kw, **tol)
        return fmt, ds.annotation_file, images, root, ds
    return fmt, root / "masks", images, root, read_mask_pairs(root, images_dir=images, **kw)


def _digest(ds: AnnotatedDataset | SemanticDataset, masks_dir: Path | None) -> str:
    h = hashlib.sha1()
    if isinstance(ds, SemanticDataset):
        h.update(json.dumps(list(ds.classes)).encode("utf-8"))
        for p in ds.pairs:
            try:
                size = (masks_dir / p.mask).stat().st_size if masks_dir is not None else -1
            except OSError:
                size = -1
            h.update(json.dumps([p.image, p.mask, p.width, p.height, size]).encode("utf-8"))
    else:
        h.update(json.dumps(ds.categories.to_coco()).encode("utf-8"))
        for a in ds.images:
            objs = [[o.category_id, list(o.box), [list(p) for p in o.polygons],
                     None if o.rle is None else o.rle.counts.decode("ascii"), o.iscrowd] for o in a.objects]
            h.update(json.dumps([a.file_name, a.width, a.height, objs]).encode("utf-8"))
    return h.hexdigest()[:16]


def _issue_row(issue: AnnotationIssue, inp: Path, images_dir: Path) -> dict[str, Any]:
    """An errors.jsonl row for an input left out: ``source`` relative to INPUT (the image, or the file)."""
    row = issue.to_error()
    source = _relative(images_dir / issue.image, inp) if issue.image else _relative(Path(issue.file), inp)
    row["source"] = source
    row["annotation_file"] = _relative(Path(issue.file), inp)
    return row


def _segment_issue(a: ImageAnnotation, file: Path) -> AnnotationIssue | None:
    """Under ``--task segment`` every object needs a shape: the first one with only a box, or None."""
    for k, o in enumerate(a.objects):
        if o.geometry == "box":
            who = f"annotation id {o.source_id}" if isinstance(o.source_id, int) else (o.source_id or f"object {k}")
            return AnnotationIssue(
                str(file), "the object has only a box; --task segment needs a polygon or a mask for every object",
                image=a.file_name, object=str(who), hint="Use --task detect for boxes",
            )
    return None


def scan_annotated(input_dir: Path, options: AnnotationOptions) -> Any:
    """The ``InputScan`` of an annotated dataset: one entry per usable image, in plan order.

    Raises:
        AnnotationError: the annotations cannot be read, or (``on_error="raise"``) one image's break a rule
            (the message names the file, the image and the object).
        SettingError: a task that does not fit the format (class-id masks are for ``segment`` only).
        DiffuseMixError: the images lie outside INPUT, or no image is left.
    """
    from .scan import ImageEntry, InputScan, input_file_problem, printable

    # 1. read and check the annotations
    inp = Path(input_dir)
    if not inp.is_dir():
        raise DiffuseMixError(f"input folder {inp} does not exist or is not a folder; pass the dataset's folder")
    fmt, ann_file, images_dir, root, ds = _read(inp, options)
    if fmt == "masks" and options.task == "detect":
        raise SettingError(
            "does not fit a masks input: class-id masks are semantic segmentation (use --task segment)",
            owner="AnnotationOptions", field="task", value=options.task,
        )
    if fmt == "masks" and options.layout_choice != "drawn":
        raise SettingError(
            "does not fit a masks input: keep-objects weighs objects, and class-id masks have none",
            owner="AnnotationOptions", field="layout_choice", value=options.layout_choice,
        )
    if not _inside(images_dir, inp):
        raise DiffuseMixError(
            f"does not hold the images of the annotations (they lie in {images_dir})", field=f"input folder {inp}",
            hint="Pass the folder that holds the images as INPUT (a row's source is relative to it)",
        )
    label = printable(Path(os.path.realpath(root)).name) or "objects"

    # 2. the images, their annotations, and what was left out
    errors = [_issue_row(i, inp, images_dir) for i in ds.skipped]
    ignored: list[tuple[str, str]] = []
    listed: list[tuple[str, ImageAnnotation | MaskPair]] = []
    if isinstance(ds, SemanticDataset):
        listed = [(p.image, p) for p in ds.pairs]
    else:
        for a in ds.images:
            issue = _segment_issue(a, ann_file) if options.task == "segment" else None
            if issue is None:
                listed.append((a.file_name, a))
            elif options.on_error == "raise":
                raise AnnotationError(issue)
            else:
                errors.append(_issue_row(issue, inp, images_dir))
        if fmt == "coco":  # images beside the JSON's that it does not list: not part of the dataset
            known = {a.file_name for a in ds.images} | {i.image for i in ds.skipped if i.image}
            for name in list_images(images_dir):
                if name not in known:
                    ignored.append((_relative(images_dir / name, inp), f"not in {ann_file.name}: no annotation"))
    items: list[tuple[Path, str, str, str]] = []
    annotation_of: dict[str, ImageAnnotation | MaskPair] = {}
    for name, annotation in listed:
        path = images_dir / name
        source = _relative(path, inp)
        problem = input_file_problem(path)
        if problem is not None:
            ignored.append((source, problem))
            continue
        sub = str(PurePosixPath(name).parent)
        out_folder = label if sub == "." else f"{label}/{sub}"
        if fmt == "yolo" and folder.IMAGES_DIR in out_folder.split("/"):
            raise DiffuseMixError(
                f"would put its YOLO labels inside {folder.IMAGES_DIR}/: Ultralytics finds a label by the LAST"
                f" /{folder.IMAGES_DIR}/ of the image's path, and the output path {out_folder} holds one",
                field=f"folder {out_folder!r}", hint="Rename that folder (or the dataset's)",
            )
        items.append((path, source, label, out_folder))
        annotation_of[source] = annotation
    if not items:
        first = f" (the first left out: {errors[0].get('source')}: {errors[0].get('reason')})" if errors else ""
        raise DiffuseMixError(f"has no usable annotated image{first}", field=f"input folder {inp}",
                              hint="Fix the annotations, or run with --annotation-errors raise to stop at the first"
                              " problem, named with its file and object")
    items.sort(key=lambda it: manifest.image_sort_key(it[2], it[1]))
    stems = out_stems(items)
    entries = tuple(
        ImageEntry(path=p, source=s, label=lab, out_stem=st, annotation=annotation_of[s])
        for (p, s, lab, _), st in zip(items, stems, strict=True)
    )
    errors.sort(key=lambda e: tuple(str(e.get("source")).split("/")))
    ignored.sort(key=lambda e: tuple(e[0].split("/")))
    objects = sum(len(e.annotation.objects) for e in entries if isinstance(e.annotation, ImageAnnotation))
    annotated = AnnotatedInput(
        options=options, format=fmt, annotation_file=ann_file, images_dir=images_dir, label=label,
        categories=None if isinstance(ds, SemanticDataset) else ds.categories,
        classes=ds.classes if isinstance(ds, SemanticDataset) else None,
        ignore_index=ds.ignore_index if isinstance(ds, SemanticDataset) else 255,
        meta=dict(getattr(ds, "meta", {}) or {}), errors=tuple(errors), objects=objects,
        digest=_digest(ds, ann_file if fmt == "masks" else None),
    )
    return InputScan(root=inp, entries=entries, classes=(label,), flat=False, ignored=tuple(ignored),
                     annotations=annotated)
