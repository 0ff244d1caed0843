"""Semantic segmentation pairs: ``images/`` and ``masks/`` of class ids, with a class list.

``ROOT/images/<path>.<ext>`` pairs with ``ROOT/masks/<path>.png``. A mask is a
single-channel PNG (or any lossless single-channel image: ``L``, ``P`` — the
palette index is the class, as in Pascal VOC —, 16-bit ``I;16`` or ``I``)
whose pixel value is the class index; ``ignore_index`` (255 by default, the
VOC / torchvision convention; None for none) marks unlabelled pixels. Colour
(RGB) masks are refused: their colours would first have to be mapped to ids.

The class list comes from ``classes=``, or ``ROOT/classes.txt`` (one name a
line), ``ROOT/classes.json`` (a list) or ``ROOT/data.yaml`` (``names``).
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from PIL import Image

from ..errors import DiffuseMixError
from ..filecheck import read_checked
from ..images import open_image
from .dataset import MaskPair, SemanticDataset
from .files import image_size, list_images
from .issues import AnnotationError, AnnotationIssue, ImageSkipped, IssueLog, OnError
from .types import SemanticMask

__all__ = ["MASK_MODES", "classes_text", "load_mask", "mask_path", "mask_png", "read_classes", "read_mask_file",
           "read_mask_pairs", "write_classes", "write_mask"]

#: Pillow modes accepted as class-id masks.
MASK_MODES: frozenset[str] = frozenset({"L", "P", "I;16", "I;16L", "I;16B", "I"})
_MAX_CLASSES_BYTES = 16 << 20


def read_classes(root: Path) -> tuple[str, ...]:
    """The class names from ``classes.txt``, ``classes.json`` or ``data.yaml`` in ``root`` (the first found)."""
    txt, js, ym = root / "classes.txt", root / "classes.json", root / "data.yaml"
    src = next((p for p in (txt, js, ym) if os.path.lexists(p)), None)
    if src is None:
        raise AnnotationError(
            AnnotationIssue(
                str(root),
                "no class list (classes.txt, classes.json or data.yaml with names)",
                hint="Write the class names, one a line, in classes.txt (value 0 is the first line),"
                " or pass classes=",
            )
        )
    # a regular file of bounded size (the check every reader makes: never a FIFO or /dev/zero)
    raw = read_checked(src, max_bytes=_MAX_CLASSES_BYTES,
                       fail=lambda reason: AnnotationError(AnnotationIssue(str(src), f"the class list {reason}")))
    try:
        text = raw.decode("utf-8")
        if src is txt:
            names: Any = [ln.strip() for ln in text.splitlines() if ln.strip()]
        elif src is js:
            names = json.loads(text)
        else:
            data = yaml.safe_load(text)
            names = data.get("names") if isinstance(data, dict) else None
            if isinstance(names, dict):
                names = [names[k] for k in sorted(names)]
    except (UnicodeDecodeError, json.JSONDecodeError, yaml.YAMLError, TypeError) as e:
        raise AnnotationError(AnnotationIssue(str(root), f"the class list cannot be read ({e})")) from e
    if not isinstance(names, list) or not names or not all(isinstance(n, (str, int)) for n in names):
        raise AnnotationError(AnnotationIssue(str(src), "the class list must be a non-empty list of names"))
    return tuple(str(n) for n in names)


def mask_path(masks_dir: Path, image: str) -> Path:
    """The mask file of an image (its path relative to the images folder): same path, ``.png``."""
    return masks_dir / (os.path.splitext(image)[0] + ".png")


def _mask_fail(reason: str) -> DiffuseMixError:
    if reason == "does not exist":
        return DiffuseMixError("the mask file does not exist")
    return DiffuseMixError(f"the mask cannot be read: it {reason}")


def _mask_header(path: Path) -> tuple[str, tuple[int, int]]:
    with open_image(path, fail=_mask_fail) as m:  # a regular file, not a bomb: the check every reader makes
        return m.mode, m.size


def _decode(path: Path) -> np.ndarray:
    with open_image(path, fail=_mask_fail) as m:
        if m.mode not in MASK_MODES:
            raise DiffuseMixError(
                f"the mask has pixel mode {m.mode!r}; a mask holds one class id per pixel (modes L, P, I;16, I)"
                + (": map its colours to class ids first" if m.mode in ("RGB", "RGBA") else "")
            )
        m.load()
        a = np.array(m)
    if a.dtype == np.int32 or a.dtype.byteorder not in ("=", "|"):
        if a.size and (a.min() < 0 or a.max() > 65535):
            raise DiffuseMixError(f"the mask holds values from {a.min()} to {a.max()}, outside 0..65535")
        a = a.astype(np.uint16)
    return a


def read_mask_file(path: str | os.PathLike[str]) -> np.ndarray:
    """A class-id mask file's values, (H, W) uint8 or uint16 (the checks every reader makes; modes L, P, I;16, I).

    Raises:
        DiffuseMixError: not a regular file, not an image, a colour image, or values outside 0..65535.
    """
    return _decode(Path(path))


def _check_values(a: np.ndarray, n_classes: int, ignore_index: int | None) -> None:
    values = np.unique(a)
    bad = [int(v) for v in values if v >= n_classes and v != ignore_index]
    if bad:
        shown = ", ".join(str(v) for v in bad[:10]) + (", ..." if len(bad) > 10 else "")
        ign = f" or {ignore_index} (ignore_index)" if ignore_index is not None else ""
        raise DiffuseMixError(
            f"the mask holds value(s) {shown}, but there are {n_classes} classes (values 0..{n_classes - 1}{ign})"
        )


def read_mask_pairs(
    root: str | os.PathLike[str],
    *,
    classes: Sequence[str] | None = None,
    images_dir: str | os.PathLike[str] | None = None,
    masks_dir: str | os.PathLike[str] | None = None,
    ignore_index: int | None = 255,
    on_error: OnError = "raise",
    check_values: bool = True,
) -> SemanticDataset:
    """Pair images with their class-id masks and check them.

    Args:
        root: the dataset folder (holding images/, masks/ and the class list).
        classes: the class names (default: read from ``root``, see :func:`read_classes`).
        images_dir, masks_dir: default ``root/images`` and ``root/masks``.
        ignore_index: the "unlabelled" value, or None.
        on_error: ``"raise"`` or ``"skip"`` (see :mod:`.issues`).
        check_values: decode every mask once and check its values are classes
            (or ``ignore_index``); sizes and modes are always checked.

    Raises:
        AnnotationError: no class list or folders, or (``"raise"``) a missing
            mask, a mask without its image, a mask of another size than its
            image, a colour mask, a value that is not a class.
    """
    # 1. folders and classes
    root = Path(root)
    folder = Path(images_dir) if images_dir is not None else root / "images"
    mdir = Path(masks_dir) if masks_dir is not None else root / "masks"
    for d, what in ((folder, "images"), (mdir, "masks")):
        if not d.is_dir():
            raise AnnotationError(
                AnnotationIssue(
                    str(d),
                    f"the {what} folder does not exist",
                    hint="Semantic masks come as images/ and masks/ folders",
                )
            )
    names = tuple(str(c) for c in classes) if classes is not None else read_classes(root)
    if not names:
        raise AnnotationError(AnnotationIssue(str(root), "the class list is empty"))
    if ignore_index is not None and ignore_index < len(names):
        raise AnnotationError(
            AnnotationIssue(
                str(root),
                f"ignore_index {ignore_index} is also a class index ({len(names)} classes)",
                hint="Pick an ignore_index of at least the number of classes (or None)",
            )
        )
    log = IssueLog(on_error)
    images = list_images(folder)

    # 2. masks without an image
    wanted = {mask_path(mdir, n) for n in images}
    for m in list_images(mdir):
        if mdir / m not in wanted:
            try:
                log.fail(
                    AnnotationIssue(
                        str(mdir / m),
                        "this mask has no image of the same name",
                        hint=f"Put its image under {folder} or remove the mask",
                    )
                )
            except ImageSkipped:
                pass

    # 3. each pair
    pairs: list[MaskPair] = []
    for n in images:
        mp = mask_path(mdir, n)
        rel = mp.relative_to(mdir).as_posix()
        try:
            try:
                w, h = image_size(folder / n)
                mode, msize = _mask_header(mp)
                if mode not in MASK_MODES:
                    _decode(mp)  # raises with the mode's message
                if msize != (w, h):
                    raise DiffuseMixError(f"the mask is {msize[0]}x{msize[1]} but its image is {w}x{h}")
                if check_values:
                    _check_values(_decode(mp), len(names), ignore_index)
            except ValueError as e:
                log.fail(AnnotationIssue(str(mp), str(e), image=n))
        except ImageSkipped:
            continue
        pairs.append(MaskPair(n, rel, w, h))
    return SemanticDataset(names, tuple(pairs), folder, mdir, ignore_index, tuple(log.issues))


def load_mask(dataset: SemanticDataset, pair: MaskPair) -> SemanticMask:
    """Decode one pair's mask, checked (values, size), as a :class:`SemanticMask`.

    Raises:
        AnnotationError: the mask changed since it was read, or breaks a rule.
    """
    path = dataset.masks_dir / pair.mask
    try:
        a = _decode(path)
        if (a.shape[1], a.shape[0]) != (pair.width, pair.height):
            raise DiffuseMixError(f"the mask is {a.shape[1]}x{a.shape[0]} but its image is {pair.width}x{pair.height}")
        _check_values(a, len(dataset.classes), dataset.ignore_index)
    except (ValueError, OSError) as e:
        raise AnnotationError(AnnotationIssue(str(path), str(e), image=pair.image)) from e
    return SemanticMask(a, dataset.classes, dataset.ignore_index, pair.image)


def mask_png(mask: SemanticMask) -> bytes:
    """A class-id mask as PNG bytes (8-bit ``L`` when every value fits, else 16-bit)."""
    a = np.asarray(mask.mask)
    if a.size and (a.min() < 0 or a.max() > 65535):
        raise DiffuseMixError(f"mask values must be in 0..65535 to be written as PNG; got {a.min()}..{a.max()}")
    img = Image.fromarray(a.astype(np.uint8)) if a.size == 0 or a.max() <= 255 else Image.fromarray(a.astype(np.uint16))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def write_mask(path: str | os.PathLike[str], mask: SemanticMask) -> Path:
    """Write a class-id mask as PNG (8-bit ``L`` when every value fits, else 16-bit), atomically."""
    path = Path(path)
    data = mask_png(mask)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp.png", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def classes_text(classes: Sequence[str]) -> str:
    """A class list as classes.txt reads it: one name a line, line i is value i."""
    return "".join(f"{c}\n" for c in classes)


def write_classes(path: str | os.PathLike[str], classes: Sequence[str]) -> Path:
    """Write the class list as classes.txt (one name a line; line i is value i)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(classes_text(classes), encoding="utf-8")
    return path
