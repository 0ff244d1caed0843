"""COCO instances JSON: read (with checks) and write.

Read (:func:`read_coco`): ``images`` (id, file_name, width, height),
``annotations`` (image_id, category_id, ``bbox`` [x, y, w, h], ``segmentation``
as polygons ``[[x1, y1, ...], ...]`` or RLE ``{"size": [h, w], "counts": ...}``,
``iscrowd``) and ``categories`` (id, name). ``area`` is not read: it is
recomputed on writing. An annotation without ``bbox`` takes the box of its
shape.

Write (:class:`CocoWriter`): new image ids (1, 2, ...) and annotation ids, the
same categories, ``area`` recomputed (pycocotools' pixel count of the mask or
rasterised polygons; w * h for a box alone), ``iscrowd`` kept, coordinates
rounded to 1/1000 px, masks as compressed RLE strings. pycocotools' ``COCO``
loads the file.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from ..errors import DiffuseMixError
from . import rle as rle_ops
from .checks import DEFAULT_TOLERANCE, ObjectCheck, check_object
from .dataset import AnnotatedDataset
from .files import MAX_JSON_BYTES, image_size, read_json
from .issues import AnnotationIssue, ImageSkipped, IssueLog, OnError
from .types import Categories, Category, ImageAnnotation, ObjectAnnotation

__all__ = ["CocoWriter", "coco_annotation", "read_coco"]

_DECIMALS = 3


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _categories(data: Mapping[str, Any], log: IssueLog, name: str) -> Categories:
    cats = data.get("categories")
    if not isinstance(cats, list) or not cats:
        log.fatal(AnnotationIssue(name, '\'categories\' must be a non-empty list of {"id", "name"} entries'))
    items = []
    for i, c in enumerate(cats):  # type: ignore[union-attr]
        if not isinstance(c, dict) or not _is_int(c.get("id")) or not isinstance(c.get("name"), str):
            log.fatal(
                AnnotationIssue(name, f"categories[{i}] must have an integer 'id' and a string 'name'; got {c!r}")
            )
        sc = c.get("supercategory")
        items.append(Category(int(c["id"]), c["name"], sc if isinstance(sc, str) else None))
    try:
        return Categories(tuple(items))
    except ValueError as e:
        log.fatal(AnnotationIssue(name, str(e)))


def _safe_file_name(fn: object) -> str:
    if not isinstance(fn, str) or not fn:
        raise DiffuseMixError(f"'file_name' must be a non-empty string; got {fn!r}")
    p = PurePosixPath(fn.replace("\\", "/"))
    if p.is_absolute() or ".." in p.parts:
        raise DiffuseMixError(f"'file_name' {fn!r} must be a path inside the images folder (no absolute path, no '..')")
    return p.as_posix()


def _image_entry(entry: object, index: int) -> tuple[Any, str, int, int]:
    if not isinstance(entry, dict):
        raise DiffuseMixError(f"images[{index}] is not an object")
    iid = entry.get("id")
    if not (_is_int(iid) or isinstance(iid, str)):
        raise DiffuseMixError(f"images[{index}] has no integer or string 'id'")
    fn = _safe_file_name(entry.get("file_name"))
    w, h = entry.get("width"), entry.get("height")
    if not (_is_int(w) and _is_int(h) and w > 0 and h > 0):
        raise DiffuseMixError(f"'width' and 'height' must be positive integers; got {w!r} x {h!r}")
    return iid, fn, int(w), int(h)


def _object(ann: Mapping[str, Any], check: ObjectCheck, source_id: Any) -> ObjectAnnotation:
    bbox = ann.get("bbox")
    box = None
    if bbox is not None:
        if not isinstance(bbox, list) or len(bbox) != 4:
            raise DiffuseMixError(f"'bbox' must be [x, y, width, height]; got {bbox!r}")
        x, y, w, h = bbox
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in bbox):
            box = [x, y, x + w, y + h]
            if w < 0 or h < 0:
                raise DiffuseMixError(f"'bbox' {bbox} has a negative size ({w:g} x {h:g})")
        else:
            raise DiffuseMixError(f"'bbox' must be 4 numbers; got {bbox!r}")
    segm = ann.get("segmentation")
    polygons: list[Any] = []
    rle = None
    if isinstance(segm, dict):
        rle = rle_ops.rle_from_coco(segm, check.height, check.width)
    elif isinstance(segm, list):
        if segm and not all(isinstance(p, list) for p in segm):
            raise DiffuseMixError("'segmentation' must be a list of polygons [[x1, y1, x2, y2, ...], ...] or an RLE object")
        polygons = segm
    elif segm is not None:
        raise DiffuseMixError(f"'segmentation' must be a list of polygons or an RLE object; got {type(segm).__name__}")
    return check_object(
        check,
        category_id=ann.get("category_id"),
        box=box,
        polygons=polygons,
        rle=rle,
        iscrowd=ann.get("iscrowd", 0),
        source_id=source_id,
    )


def _checked_image(
    entry: object,
    i: int,
    name: str,
    folder: Path,
    check_images: bool,
    images: Mapping[Any, Any],
    by_name: Mapping[str, Any],
    log: IssueLog,
) -> tuple[Any, str, int, int]:
    """One ``images`` entry, checked (and its file, with ``check_images``)."""
    try:
        iid, fn, w, h = _image_entry(entry, i)
    except ValueError as e:
        fn_raw = entry.get("file_name") if isinstance(entry, dict) else None
        log.fail(
            AnnotationIssue(name, str(e), image=fn_raw if isinstance(fn_raw, str) else None, object=f"images[{i}]")
        )
    if iid in images:
        log.fatal(
            AnnotationIssue(
                name,
                f"image id {iid!r} appears twice (images[{i}])",
                hint="Image ids must be unique: annotations name images by id",
            )
        )
    if fn in by_name:
        log.fail(
            AnnotationIssue(
                name,
                f"file_name {fn!r} is listed twice (ids {by_name[fn]!r} and {iid!r})",
                image=fn,
                object=f"image id {iid!r}",
            )
        )
    if check_images:
        try:
            size = image_size(folder / fn)
        except ValueError as e:
            log.fail(
                AnnotationIssue(
                    name,
                    f"{e}: {folder / fn}",
                    image=fn,
                    object=f"image id {iid!r}",
                    hint="Give the right images folder (images_dir) or remove the entry",
                )
            )
        if size != (w, h):
            turned = " (its EXIF orientation turns it)" if size == (h, w) else ""
            log.fail(
                AnnotationIssue(
                    name,
                    f"the JSON says the image is {w}x{h} but the file is {size[0]}x{size[1]}{turned}",
                    image=fn,
                    object=f"image id {iid!r}",
                    hint="The annotations must be of the image as it is displayed (after EXIF orientation)",
                )
            )
    return iid, fn, w, h


def read_coco(
    path: str | os.PathLike[str],
    *,
    images_dir: str | os.PathLike[str] | None = None,
    on_error: OnError = "raise",
    max_json_bytes: int = MAX_JSON_BYTES,
    tolerance: float = DEFAULT_TOLERANCE,
    check_images: bool = True,
) -> AnnotatedDataset:
    """Read a COCO instances JSON.

    Args:
        path: the JSON file.
        images_dir: the folder ``file_name`` is relative to (default: the
            JSON's folder).
        on_error: ``"raise"`` or ``"skip"`` (see :mod:`.issues`); structural
            problems of the file always raise.
        max_json_bytes: refuse larger files before reading them.
        tolerance: pixels a shape may reach outside its image (then clipped).
        check_images: check that every image file exists and has the size
            the JSON gives (read from its header, after EXIF orientation).

    Returns:
        The dataset, images in file-name order (images without objects included).

    Raises:
        AnnotationError: the file is unusable, or (``"raise"``) an image or
            object breaks a rule; the message names the file, image and object.
    """
    # 1. the file
    path = Path(path)
    name = str(path)
    log = IssueLog(on_error)
    folder = Path(images_dir) if images_dir is not None else path.parent
    data = read_json(path, max_bytes=max_json_bytes)
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("images"), list)
        or not isinstance(data.get("annotations"), list)
    ):
        log.fatal(
            AnnotationIssue(name, "not a COCO instances file: it needs 'images', 'annotations' and 'categories' lists")
        )
    categories = _categories(data, log, name)

    # 2. images
    images: dict[Any, tuple[str, int, int]] = {}
    by_name: dict[str, Any] = {}
    for i, entry in enumerate(data["images"]):
        try:
            iid, fn, w, h = _checked_image(entry, i, name, folder, check_images, images, by_name, log)
        except ImageSkipped:
            continue
        images[iid] = (fn, w, h)
        by_name[fn] = iid

    # 3. annotations, grouped by image
    grouped: dict[Any, list[tuple[int, Mapping[str, Any]]]] = defaultdict(list)
    for k, ann in enumerate(data["annotations"]):
        if not isinstance(ann, dict):
            log.fatal(AnnotationIssue(name, f"annotations[{k}] is not an object"))
        iid = ann.get("image_id")
        if iid not in images:
            aid = ann.get("id", f"#{k}")
            try:
                log.fail(
                    AnnotationIssue(
                        name,
                        f"it names image_id {iid!r}, which is not in 'images' (or was skipped)",
                        object=f"annotation id {aid}",
                        hint="Every annotation must belong to a listed image",
                    )
                )
            except ImageSkipped:
                continue
        grouped[iid].append((k, ann))

    # 4. objects, image by image: one bad object leaves its whole image out
    out: list[ImageAnnotation] = []
    for iid, (fn, w, h) in images.items():
        check = ObjectCheck(w, h, categories, tolerance)
        objects = []
        try:
            for k, ann in grouped.get(iid, ()):
                source_id = ann.get("id", k)
                try:
                    objects.append(_object(ann, check, source_id))
                except ValueError as e:
                    log.fail(AnnotationIssue(name, str(e), image=fn, object=f"annotation id {source_id}"))
        except ImageSkipped:
            continue
        out.append(ImageAnnotation(fn, w, h, tuple(objects), image_id=iid))
    out.sort(key=lambda a: a.file_name)
    meta = {k: data[k] for k in ("info", "licenses") if k in data}
    return AnnotatedDataset("coco", categories, tuple(out), folder, path, tuple(log.issues), meta)


# ---------------------------------------------------------------------------
# writing
# ---------------------------------------------------------------------------


def _r(v: float) -> float:
    return round(float(v), _DECIMALS)


def coco_annotation(obj: ObjectAnnotation, *, width: int, height: int) -> dict[str, Any]:
    """One object as a COCO annotation dict (without ``id`` / ``image_id``), ``area`` recomputed."""
    x0, y0, x1, y1 = obj.box
    bw, bh = _r(x1 - x0), _r(y1 - y0)
    d: dict[str, Any] = {
        "category_id": int(obj.category_id),
        "bbox": [_r(x0), _r(y0), bw, bh],
        "iscrowd": int(obj.iscrowd),
    }
    if obj.rle is not None:
        d["segmentation"] = obj.rle.to_coco()
        d["area"] = float(rle_ops.area(obj.rle))
    elif obj.polygons:
        polys = [[_r(v) for v in p] for p in obj.polygons]
        d["segmentation"] = polys
        d["area"] = float(rle_ops.polygons_area([tuple(p) for p in polys], height, width))
    else:
        d["segmentation"] = []
        d["area"] = _r(bw * bh)  # of the box as written
    return d


class CocoWriter:
    """Collect images and their objects; write one COCO instances JSON.

    Image ids are 1, 2, ... in the order of :meth:`add`; annotation ids
    likewise across the file.
    """

    def __init__(self, categories: Categories, *, meta: Mapping[str, Any] | None = None) -> None:
        self.categories = categories
        self.meta = dict(meta or {})
        self.images: list[dict[str, Any]] = []
        self.annotations: list[dict[str, Any]] = []

    def add(self, file_name: str, annotation: ImageAnnotation, *, extra: Mapping[str, Any] | None = None) -> int:
        """Add an image (its path relative to the JSON's images folder) and its objects; returns its new id."""
        image_id = len(self.images) + 1
        entry: dict[str, Any] = {
            "id": image_id,
            "file_name": file_name,
            "width": annotation.width,
            "height": annotation.height,
        }
        entry.update(extra or {})
        self.images.append(entry)
        for obj in annotation.objects:
            if obj.category_id not in self.categories:
                raise DiffuseMixError(f"{file_name}: category id {obj.category_id} is not in the writer's categories")
            ann = coco_annotation(obj, width=annotation.width, height=annotation.height)
            self.annotations.append({"id": len(self.annotations) + 1, "image_id": image_id, **ann})
        return image_id

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.meta,
            "images": self.images,
            "annotations": self.annotations,
            "categories": self.categories.to_coco(),
        }

    def write(self, path: str | os.PathLike[str]) -> Path:
        """Write the JSON atomically (a temporary file, then a rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(self.to_dict(), f, ensure_ascii=False, separators=(",", ":"))
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path
