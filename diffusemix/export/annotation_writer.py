"""Steps 4 and 5 for ``--task detect|segment``: each A's annotation (a file beside it, fields in its row) and,
at collect, the dataset's own file.

Per sample (:class:`AnnotationWriter`, called by the :class:`~.writer.Writer` on its worker threads, or on
any engine's writers): the geometry of the sample's image at the record's size and resize mode (computed once
per image from the plan's entry, kept for the image's other samples), the layout choice (``keep-objects``),
then A's objects:

* COCO: no file per A; the row carries its COCO annotations in a private journal column (``_coco``, left out
  of the manifest), and the merge writes ``annotations/instances.json`` from the journals once every shard
  has finished (:func:`write_collected`);
* YOLO: a label file by Ultralytics' rule (``labels/<class>/<file>.txt``), and ``data.yaml`` at collect;
* masks: A's class-id mask (``masks/<class>/<file>.png``; nearest neighbour over ``prepare``'s box), and
  ``classes.txt`` at collect.

Files are written before A (so A's presence means its annotation is there) and through
:func:`.folder.write_file` (atomic, never through a link); the row, last, carries the fields of
``annotations.export_step`` (``objects``, the kept / clipped / dropped counts, per object what happened).
The same rows make the same files: one run, shards, and a resumed run give identical files.
"""

from __future__ import annotations

import json
import stat
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from ..annotations.coco import coco_annotation
from ..annotations.dataset import MaskPair
from ..annotations.export_step import annotate_sample, annotate_semantic_sample, choose_layout
from ..annotations.geometry import TransformResult, transform_annotation
from ..annotations.masks import classes_text, load_mask, mask_png
from ..annotations.types import Categories, Category, ImageAnnotation, SemanticMask
from ..annotations.yolo import data_yaml_text, yolo_label_text
from ..recipe import Recipe, SampleRecord
from . import folder, links
from .annotated import AnnotatedInput

__all__ = ["COCO_KEY", "AnnotationWriter", "coco_dict", "summary_note", "write_collected"]

#: Journal column (private: the manifest leaves ``_*`` columns out) with A's COCO annotations, for the merge.
COCO_KEY = "_coco"
_KEEP = 16  # images whose geometry is kept (an image's samples are adjacent in the plan)


class AnnotationWriter:
    """A's annotation: its file and its row fields, per sample (thread-safe).

    Args:
        out: the output folder.
        annotated: what the scan found (format, categories, options).
        recipe: the layouts ``keep-objects`` chooses from.
        cache: a cache (``--cache``) mixes nothing: no layout choice, no Î-side shares in its rows.
    """

    def __init__(self, out: Path, annotated: AnnotatedInput, recipe: Recipe, *, cache: bool = False) -> None:
        self.out, self.annotated, self.recipe, self.cache = Path(out), annotated, recipe, cache
        self.options = annotated.options
        self._kept: OrderedDict[tuple[str, int, str], Any] = OrderedDict()
        self._lock = threading.Lock()
        self._semantic = annotated.semantic_dataset() if annotated.semantic else None
        #: what happened to the source objects in this run's samples: kept / clipped / dropped
        self.counts = {"kept": 0, "clipped": 0, "dropped": 0}

    def __getstate__(self) -> dict[str, Any]:  # an engine whose writers run elsewhere (Ray) ships it
        state = dict(self.__dict__)
        state["_lock"], state["_kept"] = None, OrderedDict()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    # -- the geometry, once per image ----------------------------------------------------------------------------

    def prepared(self, entry: Any, record: SampleRecord) -> TransformResult | SemanticMask:
        """The image's annotation (``TransformResult``) or its source mask (``SemanticMask``), at the record's size."""
        key = (entry.source, int(record.size), str(record.resize))
        with self._lock:
            got = self._kept.get(key)
            if got is not None:
                self._kept.move_to_end(key)
                return got
        ann = entry.annotation
        if isinstance(ann, MaskPair):
            got = load_mask(self._semantic, ann)  # type: ignore[arg-type]
        elif isinstance(ann, ImageAnnotation):
            got = transform_annotation(ann, size=record.size, resize=record.resize,  # type: ignore[arg-type]
                                       min_visibility=self.options.min_visibility)
        else:
            raise TypeError(f"{entry.source}: an annotated export's entry carries no annotation")
        with self._lock:
            self._kept[key] = got
            while len(self._kept) > _KEEP:
                self._kept.popitem(last=False)
        return got

    def choose_layout(self, entry: Any, record: SampleRecord) -> SampleRecord:
        """The record with the layout ``keep-objects`` chooses (recorded in the row); as it is otherwise."""
        if self.cache or self.options.layout_choice == "drawn" or self.annotated.semantic:
            return record
        prepared = self.prepared(entry, record)
        return choose_layout(record, prepared, self.recipe, self.options)  # type: ignore[arg-type]

    # -- one sample ---------------------------------------------------------------------------------------------

    def sample(self, entry: Any, file_name: str, record: SampleRecord) -> tuple[dict[str, bytes], dict[str, Any]]:
        """A's annotation files (name relative to OUTPUT -> bytes) and its row fields, for the record ``record``."""
        prepared = self.prepared(entry, record)
        files: dict[str, bytes] = {}
        if isinstance(prepared, SemanticMask):
            out_mask, fields = annotate_semantic_sample(prepared, record)
            name = folder.mask_name(file_name)
            files[name] = mask_png(out_mask)
            fields = {"class_mask_file_name": name, **fields}
            if self.cache:
                fields.pop("class_generated_share")
            return files, fields
        categories = self.annotated.categories
        done = annotate_sample(prepared, record, categories)  # type: ignore[arg-type]
        fields = dict(done.row)
        with self._lock:
            for o in prepared.outcomes:  # type: ignore[union-attr]
                self.counts[o.status] += 1
        if self.cache:  # a cache mixes nothing: no layout, so no side of a seam
            fields["object_outcomes"] = [{k: v for k, v in o.items() if k != "generated_share"}
                                         for o in fields["object_outcomes"]]
        if self.annotated.format == "yolo":
            files[folder.label_name(file_name)] = yolo_label_text(done.annotation, categories).encode("utf-8")
        else:
            size = done.annotation.width
            fields[COCO_KEY] = [coco_annotation(o, width=size, height=size) for o in done.annotation.objects]
        return files, fields

    def write(self, entry: Any, file_name: str, record: SampleRecord,
              put: Callable[[Path, bytes], None]) -> dict[str, Any]:
        """Write A's annotation files with ``put`` (the writer's atomic, link-refusing write); its row fields."""
        files, fields = self.sample(entry, file_name, record)
        for name, data in files.items():
            put(self.out / name, data)
        return fields

    def complete(self, file_name: str) -> bool:
        """Whether A's annotation file is in place (a regular file, not a link; COCO keeps none per A)."""
        if self.annotated.format == "coco":
            return True
        name = folder.label_name(file_name) if self.annotated.format == "yolo" else folder.mask_name(file_name)
        path = self.out / name
        if self.annotated.format == "masks":
            return links.looks_complete(path)
        st = links.lstat_or_none(path)
        return st is not None and stat.S_ISREG(st.st_mode)


# ---------------------------------------------------------------------------
# collect: the dataset's own file, once every shard has finished
# ---------------------------------------------------------------------------


def _categories(block: Mapping[str, Any]) -> Categories:
    return Categories(tuple(Category(int(c["id"]), str(c["name"]), c.get("supercategory"))
                            for c in block.get("categories") or ()))


def coco_dict(out: Path, lines: Iterable[str], block: Mapping[str, Any]) -> dict[str, Any]:
    """The export's COCO instances dict: one image per manifest row (ids 1, 2, ... in manifest order, ``file_name``
    relative to the images root), its objects from the journals' ``_coco`` column (ids 1, 2, ...), the input's
    categories; areas as ``coco_annotation`` recomputed them."""
    objects: dict[str, list[dict[str, Any]]] = {}
    for row in folder.read_journal_rows(out):
        name = row.get("file_name")
        if isinstance(name, str) and isinstance(row.get(COCO_KEY), list):
            objects[name] = row[COCO_KEY]
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for line in lines:
        row = json.loads(line)
        name, size = row["file_name"], int(row["size"])
        image_id = len(images) + 1
        images.append({"id": image_id, "file_name": folder.image_relative(name), "width": size, "height": size})
        for ann in objects.get(name, ()):
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, **ann})
    return {"info": {"description": "augmented with DiffuseMix"}, "images": images, "annotations": annotations,
            "categories": _categories(block).to_coco()}


def write_collected(out: Path, lines: list[str], *, tag: str) -> list[Path]:
    """After the manifest: an annotated export's dataset file (COCO JSON, YOLO data.yaml, classes.txt); [] for a
    classification export. ``lines`` are the manifest's (plan order)."""
    from .settings import readable_settings

    settings, _ = readable_settings(out)
    block = settings.get("annotations")
    if not isinstance(block, dict):
        return []
    fmt = block.get("format")
    if fmt == "coco":
        path = folder.coco_path(out)
        data = json.dumps(coco_dict(out, lines, block), ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    elif fmt == "yolo":
        path = folder.data_yaml_path(out)
        # the images are OUTPUT/images (path: the yaml's folder); add val: your validation images to train on it
        data = data_yaml_text(_categories(block), extra={"train": folder.IMAGES_DIR}).encode("utf-8")
    elif fmt == "masks":
        path = folder.classes_path(out)
        data = classes_text([str(c["name"]) for c in block.get("categories") or ()]).encode("utf-8")
    else:
        return []
    folder.make_dirs(out, path.parent)
    folder.write_file(out, path, data, tag=tag)  # never through a link
    return [path]


def summary_note(annotated: AnnotatedInput, writer: AnnotationWriter | None) -> list[str]:
    """The summary's lines on the annotations: what was read, what was left out, what the crop did."""
    from .annotated import written_as

    what = f"{annotated.objects} objects" if not annotated.semantic else f"{len(annotated.classes or ())} classes"
    lines = [f"annotations: task {annotated.task}, {what}; A's written to {written_as(annotated.format)}"]
    if annotated.errors:
        lines.append(f"annotations: {len(annotated.errors)} image(s) or file(s) left out for their annotations"
                     f" (listed in {folder.ERRORS_NAME})")
    if writer is not None and any(writer.counts.values()):
        c = writer.counts
        lines.append(f"annotations: objects of this run's samples: {c['kept']} kept, {c['clipped']} clipped,"
                     f" {c['dropped']} dropped by the crop (min_visibility {annotated.options.min_visibility:g})")
    return lines

