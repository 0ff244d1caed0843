"""The YOLO (Ultralytics) layout: read (with checks) and write.

A dataset is ``ROOT/data.yaml`` (``names``: a list, or a dict ``{0: name, ...}``),
images under ``ROOT/images/`` and one label file per image, found as
Ultralytics finds it (:func:`yolo_label_path`: the last ``/images/`` of the
image's path becomes ``/labels/`` and the extension ``.txt``). An image with no
label file has no objects (a background image, as Ultralytics reads it).

A label line is ``class cx cy w h`` (a box: centre and size) or
``class x1 y1 x2 y2 x3 y3 ...`` (a segment polygon, at least 3 points), all
coordinates normalised by the image's width and height (after EXIF
orientation, as Ultralytics and ``load_image`` read images). The class is the
0-based index into ``names``. A segment's box is the box of its points.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from ..errors import DiffuseMixError
from ..filecheck import read_checked
from .checks import DEFAULT_TOLERANCE, ObjectCheck, check_object
from .dataset import AnnotatedDataset
from .files import image_size, list_images
from .issues import AnnotationError, AnnotationIssue, ImageSkipped, IssueLog, OnError
from .types import Categories, ImageAnnotation, ObjectAnnotation

__all__ = [
    "DATA_YAML_NAMES",
    "read_data_yaml",
    "read_yolo",
    "write_data_yaml",
    "data_yaml_text",
    "parse_label_text",
    "write_yolo_label",
    "yolo_label_path",
    "yolo_label_text",
    "yolo_lines",
]

#: File names looked for as the dataset's YAML, in this order.
DATA_YAML_NAMES: tuple[str, ...] = ("data.yaml", "dataset.yaml", "data.yml", "dataset.yml")
_MAX_YAML_BYTES = 16 << 20
_MAX_LABEL_BYTES = 64 << 20
_DECIMALS = 6


def yolo_label_path(image_path: str | os.PathLike[str]) -> Path:
    """The label file of an image, by Ultralytics' rule (``img2label_paths``).

    The last ``/images/`` in the path becomes ``/labels/`` and the extension
    ``.txt``; a path without an ``images`` folder gets its ``.txt`` beside it.
    """
    p = os.fspath(image_path)
    sa, sb = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    if sa in p:
        p = sb.join(p.rsplit(sa, 1))
    return Path(os.path.splitext(p)[0] + ".txt")


def read_data_yaml(path: Path) -> tuple[Categories, dict[str, Any]]:
    """The categories (``names``) and the other keys of a YOLO data.yaml."""
    name = str(path)

    def fail(reason: str) -> AnnotationError:
        return AnnotationError(AnnotationIssue(name, f"the dataset YAML {reason}"))

    raw = read_checked(path, max_bytes=_MAX_YAML_BYTES, fail=fail)  # never a FIFO, /dev/zero, a huge file
    try:
        data = yaml.safe_load(raw.decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as e:
        raise AnnotationError(AnnotationIssue(name, f"the dataset YAML cannot be read ({e})")) from e
    if not isinstance(data, dict) or "names" not in data:
        raise AnnotationError(
            AnnotationIssue(
                name, "the dataset YAML has no 'names' (the class names)", hint="Add names: [class0, class1, ...]"
            )
        )
    names = data["names"]
    if isinstance(names, dict):
        keys = sorted(names)
        if keys != list(range(len(keys))) or not all(isinstance(k, int) for k in keys):
            raise AnnotationError(AnnotationIssue(name, f"'names' keys must be 0, 1, ..., {len(keys) - 1}; got {keys}"))
        names = [names[k] for k in keys]
    if not isinstance(names, list) or not names or not all(isinstance(n, (str, int)) for n in names):
        raise AnnotationError(
            AnnotationIssue(name, "'names' must be a non-empty list (or {index: name} mapping) of names")
        )
    nc = data.get("nc")
    if nc is not None and nc != len(names):
        raise AnnotationError(AnnotationIssue(name, f"'nc' is {nc} but 'names' lists {len(names)} classes"))
    if "kpt_shape" in data:
        raise AnnotationError(
            AnnotationIssue(name, "pose (keypoint) labels are not supported; only boxes and segments")
        )
    meta = {k: v for k, v in data.items() if k not in ("names", "nc")}
    return Categories.from_names([str(n) for n in names]), meta


def _find_yaml(root: Path) -> Path:
    for n in DATA_YAML_NAMES:
        if (root / n).is_file():
            return root / n
    raise AnnotationError(
        AnnotationIssue(
            str(root),
            f"no dataset YAML ({', '.join(DATA_YAML_NAMES)}) with the class names",
            hint="A YOLO dataset needs data.yaml with names: [...]",
        )
    )


def _parse_line(line: str, check: ObjectCheck, lineno: int) -> ObjectAnnotation:
    tokens = line.split()
    try:
        values = [float(t) for t in tokens]
    except ValueError:
        raise DiffuseMixError(f"it is not a list of numbers: {line!r}") from None
    cls = values[0]
    if not cls.is_integer():
        raise DiffuseMixError(f"the class {tokens[0]!r} is not a whole number")
    n = len(values) - 1
    w, h = check.width, check.height
    if n == 4:
        cx, cy, bw, bh = values[1:]
        if bw < 0 or bh < 0:
            raise DiffuseMixError(f"the box has a negative size ({bw:g} x {bh:g}, normalised)")
        box = [(cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h]
        return check_object(check, category_id=int(cls), box=box, source_id=f"line {lineno}")
    if n % 2:
        raise DiffuseMixError(f"it has {n} coordinates after the class: a box has 4, a polygon an even number >= 6")
    if n < 6:
        raise DiffuseMixError(f"the polygon has {n // 2} point(s); a polygon needs at least 3")
    pts = [v * (w if i % 2 == 0 else h) for i, v in enumerate(values[1:])]
    return check_object(check, category_id=int(cls), polygons=[pts], source_id=f"line {lineno}")


def parse_label_text(text: str, check: ObjectCheck) -> tuple[ObjectAnnotation, ...]:
    """The objects of one label file's text, each line checked (see the module text).

    Raises:
        DiffuseMixError: naming the first bad line (``line 3: ...``).
    """
    out = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                out.append(_parse_line(line.strip(), check, lineno))
            except ValueError as e:
                raise DiffuseMixError(f"line {lineno}: {e}") from None
    return tuple(out)


def _read_labels(label: Path, check: ObjectCheck) -> list[tuple[int, str]]:
    data = read_checked(label, max_bytes=_MAX_LABEL_BYTES, fail=lambda reason: DiffuseMixError(f"it {reason}"))
    text = data.decode("utf-8")
    return [(i, ln.strip()) for i, ln in enumerate(text.splitlines(), start=1) if ln.strip()]


def read_yolo(
    root: str | os.PathLike[str],
    *,
    data_yaml: str | os.PathLike[str] | None = None,
    images_dir: str | os.PathLike[str] | None = None,
    on_error: OnError = "raise",
    tolerance: float = DEFAULT_TOLERANCE,
) -> AnnotatedDataset:
    """Read a YOLO dataset (see the module text).

    Args:
        root: the dataset folder.
        data_yaml: its YAML (default: the first of :data:`DATA_YAML_NAMES` in ``root``).
        images_dir: the images (default ``root/images``).
        on_error: ``"raise"`` or ``"skip"`` (see :mod:`.issues`).
        tolerance: pixels a shape may reach outside its image (then clipped).

    Raises:
        AnnotationError: no YAML or names, no images folder, or (``"raise"``)
            a bad label line, a label file without its image, an unreadable image.
    """
    # 1. the YAML and the images
    root = Path(root)
    yaml_path = Path(data_yaml) if data_yaml is not None else _find_yaml(root)
    categories, meta = read_data_yaml(yaml_path)
    folder = Path(images_dir) if images_dir is not None else root / "images"
    if not folder.is_dir():
        raise AnnotationError(
            AnnotationIssue(
                str(folder),
                "the images folder does not exist",
                hint="A YOLO dataset keeps its images under images/ (or pass images_dir)",
            )
        )
    log = IssueLog(on_error)
    names = list_images(folder)

    # 2. label files that name no image
    wanted = {yolo_label_path(folder / n) for n in names}
    labels_root = yolo_label_path(folder / "x.png").parent
    if labels_root.is_dir():
        for dirpath, _dirs, files in os.walk(labels_root):
            for fn in sorted(files):
                lp = Path(dirpath) / fn
                if fn.endswith(".txt") and not fn.startswith(".") and lp not in wanted and fn != "classes.txt":
                    try:
                        log.fail(
                            AnnotationIssue(
                                str(lp),
                                "this label file names an image that does not exist",
                                hint=f"Put its image under {folder} or remove the label file",
                            )
                        )
                    except ImageSkipped:
                        pass

    # 3. each image and its label file
    out: list[ImageAnnotation] = []
    for n in names:
        label = yolo_label_path(folder / n)
        try:
            try:
                w, h = image_size(folder / n)
            except ValueError as e:
                log.fail(AnnotationIssue(str(folder / n), str(e), image=n))
            check = ObjectCheck(w, h, categories, tolerance)
            objects = []
            if os.path.lexists(label):
                try:
                    lines = _read_labels(label, check)
                except (OSError, UnicodeDecodeError, ValueError) as e:
                    log.fail(AnnotationIssue(str(label), f"the label file cannot be read ({e})", image=n))
                for lineno, line in lines:
                    try:
                        objects.append(_parse_line(line, check, lineno))
                    except ValueError as e:
                        log.fail(AnnotationIssue(str(label), str(e), image=n, object=f"line {lineno}"))
        except ImageSkipped:
            continue
        out.append(ImageAnnotation(n, w, h, tuple(objects)))
    return AnnotatedDataset("yolo", categories, tuple(out), folder, yaml_path, tuple(log.issues), meta)


# ---------------------------------------------------------------------------
# writing
# ---------------------------------------------------------------------------


def _f(v: float) -> str:
    return f"{min(max(v, 0.0), 1.0):.{_DECIMALS}f}"


def yolo_lines(annotation: ImageAnnotation, categories: Categories) -> list[str]:
    """The label lines of an annotation: a segment for an object with one polygon, else its box.

    Raises:
        ValueError: an object with a mask (RLE) or several polygons, which a
            YOLO line cannot hold (write COCO instead).
    """
    w, h = annotation.width, annotation.height
    lines = []
    for i, obj in enumerate(annotation.objects):
        cls = categories.index(obj.category_id)
        if obj.rle is not None and not obj.polygons:
            raise DiffuseMixError(f"object {i} of {annotation.file_name} has a mask (RLE), which YOLO labels cannot hold")
        if len(obj.polygons) > 1:
            raise DiffuseMixError(
                f"object {i} of {annotation.file_name} has {len(obj.polygons)} polygons; a YOLO line holds one"
            )
        if obj.polygons:
            p = obj.polygons[0]
            coords = " ".join(_f(v / (w if k % 2 == 0 else h)) for k, v in enumerate(p))
            lines.append(f"{cls} {coords}")
        else:
            x0, y0, x1, y1 = obj.box
            lines.append(
                f"{cls} {_f((x0 + x1) / 2 / w)} {_f((y0 + y1) / 2 / h)} {_f((x1 - x0) / w)} {_f((y1 - y0) / h)}"
            )
    return lines


def _atomic_text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def yolo_label_text(annotation: ImageAnnotation, categories: Categories) -> str:
    """An image's label file as text (:func:`yolo_lines`, one a line); empty for an image without objects."""
    return "".join(ln + "\n" for ln in yolo_lines(annotation, categories))


def write_yolo_label(path: str | os.PathLike[str], annotation: ImageAnnotation, categories: Categories) -> Path:
    """Write an image's label file (atomically); an image without objects gets an empty file."""
    return _atomic_text(Path(path), yolo_label_text(annotation, categories))


def data_yaml_text(categories: Categories | Sequence[str], *, extra: Mapping[str, Any] | None = None) -> str:
    """A data.yaml: the keys of ``extra`` (path, train, ...), then ``nc`` and ``names`` ({index: name})."""
    names = categories.names if isinstance(categories, Categories) else tuple(str(n) for n in categories)
    data = {k: v for k, v in (extra or {}).items() if k not in ("names", "nc")}
    data["nc"] = len(names)
    data["names"] = {i: n for i, n in enumerate(names)}
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def write_data_yaml(
    path: str | os.PathLike[str], categories: Categories, *, extra: Mapping[str, Any] | None = None
) -> Path:
    """Write a data.yaml with ``names`` ({index: name}) and ``nc``, after the keys of ``extra`` (path, train, ...)."""
    return _atomic_text(Path(path), data_yaml_text(categories, extra=extra))
