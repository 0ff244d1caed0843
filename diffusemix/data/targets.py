"""Training targets of an annotated cache (``--task detect|segment``): what an item's label becomes.

The mixing keeps geometry (H joins I and Î at the same pixels, the fractal
blend moves nothing), so A's objects are the cached sample's whatever layout,
fractal and λ an epoch draws: the target is read once and holds every epoch.

* ``detect``: torchvision's detection dict (``boxes`` float32 XYXY, ``labels``
  int64 = category index + 1, 0 being torchvision's background, ``area``,
  ``iscrowd``), from the row's ``objects`` column (no file read);
* ``segment`` with COCO or YOLO objects: the same dict plus ``masks`` (uint8
  N x H x W), from the export's own annotation files (read back with
  ``diffusemix.annotations``, as any user reads them);
* ``segment`` with class-id masks: an int64 (H, W) tensor of class ids, from
  the row's ``class_mask_file_name``.

``target_format="detr"`` gives 🤗 transformers' DETR / YOLOS labels instead
(``class_labels`` 0-based, ``boxes`` normalised centre x, centre y, w, h).
``tv_tensors`` wrap boxes and masks only where torchvision imports.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, get_args

import numpy as np

from ..annotations.types import Categories, Category, ImageAnnotation, ObjectAnnotation, SemanticMask
from ..errors import DiffuseMixError
from ..export import folder
from .cache import Cache, CacheEntry, CacheError

__all__ = ["TARGET_FORMATS", "CacheTargets", "TargetFormat"]

TargetFormat = Literal["torchvision", "detr"]
TARGET_FORMATS: tuple[str, ...] = get_args(TargetFormat)


def _categories(block: Mapping[str, Any]) -> Categories:
    return Categories(tuple(Category(int(c["id"]), str(c["name"])) for c in block.get("categories") or ()))


class CacheTargets:
    """The target of each entry of an annotated cache (see the module text).

    Args:
        cache: a cache (or an export with ``--save-stages``) made with ``--task detect|segment``.
        target_format: ``"torchvision"`` or ``"detr"``.

    Raises:
        CacheError: the cache has no annotations, or its annotation files are missing or unreadable.
    """

    def __init__(self, cache: Cache, *, target_format: TargetFormat = "torchvision") -> None:
        block = cache.settings.get("annotations")
        if not isinstance(block, Mapping):
            raise CacheError(f"cache {cache.root} has no annotations: it was made without --task detect|segment")
        if target_format not in TARGET_FORMATS:
            raise DiffuseMixError(f"target_format must be one of {', '.join(TARGET_FORMATS)}; got {target_format!r}")
        self.root, self.size = cache.root, cache.size
        self.task, self.format = str(block.get("task")), str(block.get("format"))
        self.target_format = target_format
        self.categories = _categories(block)
        if self.format == "masks" and target_format == "detr":
            raise DiffuseMixError("target_format 'detr' is for objects (boxes); this cache holds class-id masks")
        self._shapes: dict[str, ImageAnnotation] = {}
        if self.task == "segment" and self.format in ("coco", "yolo"):
            self._shapes = self._read_shapes(cache)

    @property
    def semantic(self) -> bool:
        return self.format == "masks"

    def _read_shapes(self, cache: Cache) -> dict[str, ImageAnnotation]:
        """The export's annotation files read back (its objects' polygons and masks), by image name."""
        from ..annotations.coco import read_coco
        from ..annotations.yolo import read_yolo

        images = folder.images_root(cache.root)
        try:
            if self.format == "coco":
                ds = read_coco(folder.coco_path(cache.root), images_dir=images, check_images=False)
            else:
                ds = read_yolo(cache.root, data_yaml=folder.data_yaml_path(cache.root), images_dir=images)
        except DiffuseMixError as e:
            raise CacheError(f"cache {cache.root}: its annotations cannot be read ({e}); make the cache again") from None
        return {a.file_name: a for a in ds.images}

    # -- one entry ----------------------------------------------------------------------------------------------

    def annotation(self, entry: CacheEntry) -> ImageAnnotation:
        """The entry's objects at S x S (from the annotation files under ``segment``, else from its row)."""
        name = folder.image_relative(str(entry.row["file_name"]))
        if self._shapes:
            got = self._shapes.get(name)
            if got is None:
                raise CacheError(f"cache {self.root}: {name} is not in its annotation files; make the cache again")
            return got
        objects = entry.row.get("objects")
        if not isinstance(objects, Mapping):
            raise CacheError(f"cache {self.root}: the row of {name} has no objects; make the cache again")
        ids = self.categories.ids
        out = []
        for k, ((x, y, w, h), cat, crowd) in enumerate(zip(objects["bbox"], objects["category"], objects["iscrowd"])):
            out.append(ObjectAnnotation(ids[int(cat)], (x, y, x + w, y + h), iscrowd=bool(crowd), source_id=k))
        return ImageAnnotation(name, self.size, self.size, tuple(out))

    def mask(self, entry: CacheEntry) -> SemanticMask:
        """A class-id mask entry's mask (a masks input), decoded and checked."""
        from ..annotations.masks import read_mask_file

        path = folder.resolve_in(self.root, entry.row.get("class_mask_file_name"), what="class_mask_file_name",
                                 source=folder.manifest_path(self.root))
        try:
            a = read_mask_file(path)
        except (OSError, ValueError) as e:
            raise CacheError(f"cache {self.root}: mask {path} cannot be read ({e}); make the cache again") from None
        if a.shape != (self.size, self.size):
            raise CacheError(f"cache {self.root}: mask {path} is {a.shape[1]}x{a.shape[0]}, not {self.size} px")
        return SemanticMask(a, self.categories.names, file_name=str(entry.row["file_name"]))

    def target(self, entry: CacheEntry) -> Any:
        """The entry's training target (see the module text)."""
        from ..annotations.targets import detection_target, detr_target, segmentation_target

        if self.semantic:
            return segmentation_target(self.mask(entry))
        ann = self.annotation(entry)
        if self.target_format == "detr":
            return detr_target(ann, self.categories)
        target = detection_target(ann, self.categories, masks=bool(self._shapes))
        if not self._shapes:  # COCO's area as the export counted it (a polygon's pixels, not its box)
            import torch

            target["area"] = torch.tensor(entry.row["objects"]["area"], dtype=torch.float32).reshape(-1)
        return target

    def objects(self, entry: CacheEntry) -> Any:
        """The entry's 🤗 ``objects`` (its row's), or for class-id masks the mask as a PIL image."""
        if self.semantic:
            from PIL import Image

            return Image.fromarray(np.asarray(self.mask(entry).mask))
        return entry.row.get("objects")
