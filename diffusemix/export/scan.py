"""Step 1, scan: find the input images and their labels, in plan order.

``INPUT/<class>/.../<image>`` as torchvision's ImageFolder reads it (classes
are the sorted subfolder names, images are found recursively inside them,
hidden files are ignored), or a flat folder of images with one label, the
folder's name.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import DiffuseMixError
from . import manifest
from .naming import out_stems


@dataclass(frozen=True)
class ImageEntry:
    """One input image.

    Attributes:
        path: the file.
        source: its path relative to INPUT (POSIX), the key of its records.
        label: its class name (the folder's name in flat mode).
        out_stem: output path relative to OUTPUT without the ``_<prompt>_<copy>.<ext>`` end.
    """

    path: Path
    source: str
    label: str
    out_stem: str


@dataclass(frozen=True)
class InputScan:
    """What ``scan_input`` found."""

    root: Path
    entries: tuple[ImageEntry, ...]
    classes: tuple[str, ...]
    flat: bool
    # (source, reason) for files that are not images or not in a class folder
    ignored: tuple[tuple[str, str], ...] = ()
    # class folders that hold no image (left out, as ImageFolder would fail on them)
    empty_classes: tuple[str, ...] = ()

    @property
    def label_mode(self) -> str:
        if self.flat:
            return f"flat folder, one label {self.classes[0]!r}"
        return "class folders"


def hidden(name: str) -> bool:
    return name.startswith(".")


def _walk_images(root: Path, top: Path) -> tuple[list[Path], list[Path]]:
    """Image files and other files below ``top`` (recursive, following links, no hidden)."""
    images, others = [], []
    seen: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(top, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:  # a symlink loop
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames[:] = sorted(d for d in dirnames if not hidden(d))
        for name in sorted(filenames):
            if hidden(name):
                continue
            p = Path(dirpath) / name
            (images if _is_image_name(name) else others).append(p)
    return images, others


def _is_image_name(name: str) -> bool:
    from ..images import IMAGE_EXTENSIONS

    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _not_image_reason(name: str) -> str:
    from ..images import IMAGE_EXTENSIONS

    ext = os.path.splitext(name)[1].lower() or "(none)"
    return f"not an image file: extension {ext} is not one of {', '.join(sorted(IMAGE_EXTENSIONS))}"


def scan_input(input_dir: str | os.PathLike[str]) -> InputScan:
    """Find the images of a class-folder or flat dataset, in plan order.

    Class-folder mode (any non-hidden subfolder holds an image): classes are
    the sorted subfolder names; images are found recursively in each, by
    extension (``images.IMAGE_EXTENSIONS``); hidden files and folders are
    ignored; files at the top level are listed as ignored. Flat mode: the
    images at the top level, one label (the folder's name).

    Raises:
        DiffuseMixError: the folder does not exist, is a file, or holds no image.
    """
    root = Path(input_dir)
    if not root.exists():
        raise DiffuseMixError(f"input folder {root} does not exist; pass the folder of your dataset")
    if not root.is_dir():
        raise DiffuseMixError(f"input {root} is a file, not a folder; pass the folder of your dataset")
    from ..images import IMAGE_EXTENSIONS

    try:
        children = sorted((c for c in os.scandir(root) if not hidden(c.name)), key=lambda c: c.name)
    except OSError as e:
        raise DiffuseMixError(f"input folder {root} cannot be read: {e.strerror or e}") from None
    subdirs = [c for c in children if c.is_dir()]
    top_files = [c for c in children if not c.is_dir()]

    # 1. class folders
    per_class: list[tuple[str, list[Path], list[Path]]] = []
    for d in subdirs:
        imgs, others = _walk_images(root, Path(d.path))
        per_class.append((d.name, imgs, others))
    ignored: list[tuple[str, str]] = []
    items: list[tuple[Path, str, str, str]] = []  # (path, source, label, out folder)
    if any(imgs for _, imgs, _ in per_class):
        classes = tuple(name for name, imgs, _ in per_class if imgs)
        empty = tuple(name for name, imgs, _ in per_class if not imgs)
        for name, imgs, others in per_class:
            for p in imgs:
                src = p.relative_to(root).as_posix()
                items.append((p, src, name, str(Path(src).parent.as_posix())))
            for p in others:
                ignored.append((p.relative_to(root).as_posix(), _not_image_reason(p.name)))
        for c in top_files:
            ignored.append((c.name, "not inside a class folder (INPUT/<class>/<image>); ignored"))
        flat = False
    # 2. a flat folder
    else:
        label = root.resolve().name or "images"
        for c in top_files:
            if _is_image_name(c.name):
                items.append((Path(c.path), c.name, label, ""))
            else:
                ignored.append((c.name, _not_image_reason(c.name)))
        classes, empty, flat = (label,), (), True
    if not items:
        raise DiffuseMixError(
            f"no images found in {root}: expected INPUT/<class>/<image> (class folders) or images directly "
            f"in INPUT (a flat folder), with extensions {', '.join(sorted(IMAGE_EXTENSIONS))}"
        )
    items.sort(key=lambda it: manifest.image_sort_key(it[2], it[1]))
    stems = out_stems(items)
    entries = tuple(
        ImageEntry(path=p, source=s, label=lab, out_stem=st) for (p, s, lab, _), st in zip(items, stems, strict=True)
    )
    ignored.sort(key=lambda e: tuple(e[0].split("/")))
    return InputScan(
        root=root, entries=entries, classes=tuple(classes), flat=flat, ignored=tuple(ignored), empty_classes=empty
    )
