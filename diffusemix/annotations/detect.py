"""``--annotations auto``: tell the format of a dataset folder from what it holds, and read it.

The rules, checked in this order; more than one match, or none, is an error
that lists what was found:

* a ``.json`` file given directly, or exactly one COCO-looking JSON in the
  folder or its ``annotations/`` subfolder → ``coco``;
* a dataset YAML (``data.yaml``, ...) with a ``labels/`` folder → ``yolo``;
* ``images/`` and ``masks/`` folders → ``masks``.

A JSON "looks like COCO" when its name starts with ``instances`` or its
first 4 KB mention ``"images"`` and ``"annotations"``. For COCO the images
folder is ``images/`` if present, else the folder named like the JSON
(``instances_train2017.json`` → ``train2017/``), else the dataset folder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from ..errors import DiffuseMixError
from .coco import read_coco
from .dataset import AnnotatedDataset, SemanticDataset
from .issues import AnnotationError, AnnotationIssue
from .masks import read_mask_pairs
from .yolo import DATA_YAML_NAMES, read_yolo

__all__ = ["ANNOTATION_FORMATS", "AnnotationFormat", "DetectedFormat", "detect_format", "read_annotations"]

AnnotationFormat = Literal["auto", "coco", "yolo", "masks"]
ANNOTATION_FORMATS: tuple[str, ...] = get_args(AnnotationFormat)


@dataclass(frozen=True)
class DetectedFormat:
    """What :func:`detect_format` found: the format, the annotation file (COCO JSON / data.yaml) and the images."""

    format: str
    root: Path
    annotation_file: Path | None
    images_dir: Path
    reason: str


def _looks_like_coco(path: Path) -> bool:
    if path.name.startswith("instances"):
        return True
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return False
    return b'"images"' in head and b'"annotations"' in head


def coco_candidates(root: Path) -> list[Path]:
    """The COCO-looking JSON files in ``root`` and ``root/annotations`` (sorted)."""
    found = []
    for folder in (root, root / "annotations"):
        if folder.is_dir():
            found += sorted(p for p in folder.glob("*.json") if p.is_file() and _looks_like_coco(p))
    return found


def coco_images_dir(root: Path, json_path: Path) -> Path:
    """Where a COCO dataset's images are: ``root/images``, else the folder named like the JSON, else ``root``."""
    if (root / "images").is_dir():
        return root / "images"
    stem = json_path.stem
    for prefix in ("instances_", "instances"):
        if stem.startswith(prefix) and (root / stem[len(prefix) :]).is_dir() and stem[len(prefix) :]:
            return root / stem[len(prefix) :]
    return root


def detect_format(path: str | os.PathLike[str]) -> DetectedFormat:
    """The annotation format of a dataset folder (or a COCO JSON file), by the rules of the module text.

    Raises:
        AnnotationError: no format matched, or several did (name one with ``--annotations``).
    """
    p = Path(path)
    if p.is_file():
        if p.suffix.lower() == ".json":
            root = p.parent.parent if p.parent.name == "annotations" else p.parent
            return DetectedFormat("coco", root, p, coco_images_dir(root, p), f"{p.name} is a JSON file")
        raise AnnotationError(
            AnnotationIssue(str(p), "an annotation file must be a COCO .json (or give the dataset folder)")
        )
    if not p.is_dir():
        raise AnnotationError(AnnotationIssue(str(p), "the dataset folder does not exist"))
    found: list[DetectedFormat] = []
    cocos = coco_candidates(p)
    if len(cocos) > 1:
        raise AnnotationError(
            AnnotationIssue(
                str(p),
                f"several COCO JSON files: {', '.join(c.relative_to(p).as_posix() for c in cocos)}",
                hint="Give the one to use (the JSON file's path instead of the folder)",
            )
        )
    if cocos:
        found.append(
            DetectedFormat(
                "coco",
                p,
                cocos[0],
                coco_images_dir(p, cocos[0]),
                f"{cocos[0].relative_to(p).as_posix()} is a COCO instances file",
            )
        )
    yamls = [p / n for n in DATA_YAML_NAMES if (p / n).is_file()]
    if yamls and (p / "labels").is_dir():
        found.append(DetectedFormat("yolo", p, yamls[0], p / "images", f"{yamls[0].name} and labels/"))
    if (p / "images").is_dir() and (p / "masks").is_dir():
        found.append(DetectedFormat("masks", p, None, p / "images", "images/ and masks/"))
    if len(found) > 1:
        raise AnnotationError(
            AnnotationIssue(
                str(p),
                "the folder matches several annotation formats: "
                + "; ".join(f"{d.format} ({d.reason})" for d in found),
                hint="Name the format: --annotations coco|yolo|masks",
            )
        )
    if not found:
        raise AnnotationError(
            AnnotationIssue(
                str(p),
                "no annotations found: looked for a COCO JSON (here or in annotations/), "
                f"a YOLO {DATA_YAML_NAMES[0]} with labels/, and images/ with masks/",
                hint="See the README's section on annotation formats",
            )
        )
    return found[0]


def read_annotations(
    path: str | os.PathLike[str], *, format: AnnotationFormat = "auto", **options: Any
) -> AnnotatedDataset | SemanticDataset:
    """Read a dataset's annotations in the named format, or the detected one (``"auto"``).

    ``options`` go to the reader (``on_error``, ``tolerance``, ``classes``, ...).
    """
    if format not in ANNOTATION_FORMATS:
        raise DiffuseMixError(f"annotations format must be one of {', '.join(ANNOTATION_FORMATS)}; got {format!r}")
    p = Path(path)
    if format == "auto":
        found = detect_format(p)
        format = found.format  # type: ignore[assignment]
        root, ann, images = found.root, found.annotation_file, found.images_dir
    elif format == "coco":
        cocos = [p] if p.is_file() else coco_candidates(p)
        if len(cocos) != 1:
            what = "no COCO JSON" if not cocos else f"{len(cocos)} COCO JSON files"
            raise AnnotationError(AnnotationIssue(str(p), f"{what} here", hint="Give the .json file itself"))
        ann = cocos[0]
        root = ann.parent.parent if ann.parent.name == "annotations" else ann.parent
        images = coco_images_dir(root, ann)
    else:
        root, ann, images = p, None, p / "images"
    if format == "coco":
        options.setdefault("images_dir", images)
        return read_coco(ann, **options)  # type: ignore[arg-type]
    if format == "yolo":
        return read_yolo(root, **options)
    return read_mask_pairs(root, **options)
