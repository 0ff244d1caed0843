"""What a reader returns: the annotations of a folder, and what it skipped."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .issues import AnnotationIssue
from .types import Categories, ImageAnnotation

__all__ = ["AnnotatedDataset", "DetectionFormat", "MaskPair", "SemanticDataset"]

DetectionFormat = Literal["coco", "yolo"]


@dataclass(frozen=True)
class AnnotatedDataset:
    """Boxes / polygons / masks of a detection or instance-segmentation dataset.

    Attributes:
        format: ``"coco"`` or ``"yolo"``: the format it was read from (and is written back in).
        categories: the category table.
        images: one annotation per usable image, in file-name order.
        images_dir: the folder the file names are relative to.
        annotation_file: the COCO JSON, or YOLO's data.yaml.
        skipped: images left out under ``on_error="skip"``, with why.
        meta: format-specific things a writer gives back (YOLO: data.yaml's other keys;
            COCO: ``info`` and ``licenses``).
    """

    format: DetectionFormat
    categories: Categories
    images: tuple[ImageAnnotation, ...]
    images_dir: Path
    annotation_file: Path
    skipped: tuple[AnnotationIssue, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict, compare=False)

    def __len__(self) -> int:
        return len(self.images)

    def __iter__(self) -> Iterator[ImageAnnotation]:
        return iter(self.images)

    def get(self, file_name: str) -> ImageAnnotation | None:
        """The annotation of one image by its file name (relative to ``images_dir``), or None."""
        index = self.__dict__.get("_index")
        if index is None:
            index = {a.file_name: a for a in self.images}
            object.__setattr__(self, "_index", index)
        return index.get(file_name)

    def errors(self) -> list[dict[str, Any]]:
        """The skipped images as errors.jsonl entries."""
        return [i.to_error() for i in self.skipped]


@dataclass(frozen=True)
class MaskPair:
    """An image and its class-id mask (file names relative to the images / masks folders)."""

    image: str
    mask: str
    width: int
    height: int


@dataclass(frozen=True)
class SemanticDataset:
    """Image / class-id mask pairs of a semantic segmentation dataset.

    Masks are checked when read (``read_mask_pairs``) and decoded on demand
    (``masks.load_mask``), so a large dataset is not held in memory.
    """

    classes: tuple[str, ...]
    pairs: tuple[MaskPair, ...]
    images_dir: Path
    masks_dir: Path
    ignore_index: int | None = 255
    skipped: tuple[AnnotationIssue, ...] = ()

    @property
    def format(self) -> str:
        return "masks"

    def __len__(self) -> int:
        return len(self.pairs)

    def get(self, image: str) -> MaskPair | None:
        """The pair of one image by its file name (relative to ``images_dir``), or None."""
        index = self.__dict__.get("_index")
        if index is None:
            index = {p.image: p for p in self.pairs}
            object.__setattr__(self, "_index", index)
        return index.get(image)

    def errors(self) -> list[dict[str, Any]]:
        return [i.to_error() for i in self.skipped]
