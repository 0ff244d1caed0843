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
from typing import Any

from ..errors import DiffuseMixError
from ..filecheck import MAX_FILE_BYTES, file_problem
from . import manifest
from .naming import out_stems


@dataclass(frozen=True)
class ImageEntry:
    """One input image.

    Attributes:
        path: the file.
        source: its path relative to INPUT (POSIX), the key of its records.
        label: its class name (the folder's name in flat mode).
        out_stem: output path relative to the images root without the ``_<prompt>_<copy>.<ext>`` end:
            ``<class>/<sub>/<stem>`` (a flat input's class folder is its one label).
        annotation: an annotated input's (``--task detect|segment``): the image's ``ImageAnnotation``, or its
            ``MaskPair`` (the mask is decoded when its samples are written); None for class folders.
    """

    path: Path
    source: str
    label: str
    out_stem: str
    annotation: Any = None


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
    # an annotated input (--task detect|segment): its format, categories and the images left out (.annotated)
    annotations: Any = None

    @property
    def label_mode(self) -> str:
        if self.annotations is not None:
            return self.annotations.label_mode
        if self.flat:
            return f"flat folder, one label {self.classes[0]!r}"
        return "class folders"


def hidden(name: str) -> bool:
    return name.startswith(".")


#: Input files larger than this are skipped unread (the library's bound for every image file).
MAX_INPUT_BYTES = MAX_FILE_BYTES

_BAD_NAME = (
    "the name is not valid UTF-8 (a Latin-1 name?), so it cannot be written to the manifest; "
    "rename it (e.g. convmv -f latin1 -t utf8 -r --notest INPUT) to include it"
)


def printable(text: str) -> str:
    """A file name as text that can be written as UTF-8: undecodable bytes become ``\\xNN``."""
    return os.fsencode(text).decode("utf-8", "backslashreplace")


def _bad_name(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def input_file_problem(path: str | os.PathLike[str]) -> str | None:
    """Why a file cannot be read as an input image, or None: only regular files up to
    :data:`MAX_INPUT_BYTES` are read (a FIFO would hang the run, ``/dev/zero`` never ends).
    The check every reader of a user's file makes (:func:`diffusemix.filecheck.file_problem`)."""
    return file_problem(path, max_bytes=MAX_INPUT_BYTES)


def _is_image_name(name: str) -> bool:
    from ..images import IMAGE_EXTENSIONS

    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _not_image_reason(name: str) -> str:
    from ..images import IMAGE_EXTENSIONS

    ext = os.path.splitext(name)[1].lower() or "(none)"
    return f"not an image file: extension {ext} is not one of {', '.join(sorted(IMAGE_EXTENSIONS))}"


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


class _Walker:
    """Finds the images below class folders, following links, reading each real folder once.

    A class folder owns the real folder it is; below it, a folder is followed
    if it lies inside that real folder or outside INPUT altogether. A link
    back into INPUT (a loop, or another class's folder) is not followed: that
    folder is read where it is, under its own label.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root_real = os.path.realpath(root)
        self.seen: set[str] = set()
        self.ignored: list[tuple[str, str]] = []  # (printable source, why)

    def skip(self, rel: str, why: str) -> None:
        self.ignored.append((printable(rel), why))

    def _where(self, real: str) -> str:
        rel = os.path.relpath(real, self.root_real)
        return "the input folder itself" if rel == "." else repr(printable(rel).replace(os.sep, "/"))

    def images(self, top: str, rel_top: str) -> list[tuple[Path, str]]:
        """(path, source) of the usable images below one class folder; the rest go to ``ignored``."""
        home = os.path.realpath(top)
        found: list[tuple[Path, str]] = []
        stack = [(top, rel_top)]
        while stack:
            path, rel = stack.pop()
            real = os.path.realpath(path)
            if real in self.seen:
                continue
            self.seen.add(real)
            try:
                entries = sorted(os.scandir(path), key=lambda e: e.name)
            except OSError as e:
                self.skip(rel, f"folder cannot be read: {e.strerror or e}")
                continue
            subdirs = []
            for e in entries:
                if hidden(e.name):
                    continue
                erel = f"{rel}/{e.name}"
                if _bad_name(e.name):
                    self.skip(erel, _BAD_NAME)
                elif e.is_dir():
                    target = os.path.realpath(e.path)
                    if _inside(self.root_real, target) or (
                        _inside(target, self.root_real) and not _inside(target, home)
                    ):
                        self.skip(erel, f"a link to {self._where(target)}; not followed (read once, where it is)")
                    else:
                        subdirs.append((e.path, erel))
                elif not _is_image_name(e.name):
                    self.skip(erel, _not_image_reason(e.name))
                else:
                    problem = input_file_problem(e.path)
                    if problem is None:
                        found.append((Path(e.path), erel))
                    else:
                        self.skip(erel, problem)
            stack.extend(reversed(subdirs))
        return found

    def class_folders(self, subdirs: list[os.DirEntry]) -> list[os.DirEntry]:
        """The subfolders that are classes: links into INPUT, or to a folder read already, are not."""
        owner: dict[str, str] = {}
        keep = []
        # real folders claim first, so that a link never takes a class's images
        for d in sorted(subdirs, key=lambda d: (d.is_symlink(), d.name)):
            real = os.path.realpath(d.path)
            if d.is_symlink() and (_inside(real, self.root_real) or _inside(self.root_real, real)):
                self.skip(d.name, f"a link to {self._where(real)}; not a class of its own (read once, where it is)")
            elif real in owner:
                self.skip(d.name, f"a link to the folder of class {owner[real]!r}; read once, as that class")
            else:
                owner[real] = d.name
                keep.append(d)
        return sorted(keep, key=lambda d: d.name)


def scan_input(input_dir: str | os.PathLike[str], *, annotations: Any = None) -> InputScan:
    """Find the images of a class-folder or flat dataset, in plan order.

    Class-folder mode (any non-hidden subfolder holds an image): classes are
    the sorted subfolder names; images are found recursively in each, by
    extension (``images.IMAGE_EXTENSIONS``); hidden files and folders are
    ignored; files at the top level are listed as ignored. Flat mode: the
    images at the top level, one label (the folder's name).

    Only regular files up to :data:`MAX_INPUT_BYTES` with UTF-8 names are
    inputs; links are followed, each real folder once (see ``_Walker``).
    Everything skipped is listed in ``ignored`` with the reason, so the dry
    run and the export report the same.

    ``annotations`` (an ``AnnotationOptions`` with task detect or segment): INPUT is an annotated dataset
    (COCO, YOLO, image/mask pairs) and its images are the entries (:func:`.annotated.scan_annotated`).

    Raises:
        DiffuseMixError: the folder does not exist, is a file, or holds no image.
    """
    if annotations is not None and annotations.active:
        from .annotated import scan_annotated

        return scan_annotated(Path(input_dir), annotations)
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
    walker = _Walker(root)
    for c in children:
        if _bad_name(c.name):
            walker.skip(c.name, _BAD_NAME)
    children = [c for c in children if not _bad_name(c.name)]
    subdirs = walker.class_folders([c for c in children if c.is_dir()])
    top_files = [c for c in children if not c.is_dir()]

    # 1. class folders
    per_class = [(d.name, walker.images(d.path, d.name)) for d in subdirs]
    items: list[tuple[Path, str, str, str]] = []  # (path, source, label, out folder)
    if any(imgs for _, imgs in per_class):
        classes = tuple(name for name, imgs in per_class if imgs)
        empty = tuple(name for name, imgs in per_class if not imgs)
        for name, imgs in per_class:
            for p, src in imgs:
                items.append((p, src, name, str(Path(src).parent.as_posix())))
        for c in top_files:
            walker.skip(c.name, "not inside a class folder (INPUT/<class>/<image>); ignored")
        flat = False
    # 2. a flat folder
    else:
        label = printable(root.resolve().name) or "images"
        for c in top_files:
            problem = input_file_problem(c.path) if _is_image_name(c.name) else _not_image_reason(c.name)
            if problem is None:
                items.append((Path(c.path), c.name, label, label))  # its class folder: the one label
            else:
                walker.skip(c.name, problem)
        classes, empty, flat = (label,), (), True
    ignored = walker.ignored
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
