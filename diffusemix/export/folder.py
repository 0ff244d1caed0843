"""The export folder: the one module that knows its layout, and reads and writes its files.

Layout of an export (or cache) folder (``settings_version`` 4)::

    OUTPUT/
      images/<class>/<file>          the augmented images A (a cache: Î): class folders alone, so torchvision's
                                     ImageFolder reads ``OUTPUT/images`` as it is (:func:`images_root`)
      inputs/<class>/<file>          a cache's I, once per input image
      stages/<stage>/<class>/<file>  I, Î, M, H, F as PNG (--save-stages): ``stages/input`` is ImageFolder-clean too
      metadata.jsonl                 one row per A, in plan order; ``file_name`` is relative to OUTPUT
                                     (``images/<class>/<file>``), as 🤗 datasets reads a metadata file
      README.md                      the dataset card: explicit ``data_files`` and ``label`` as a ``class_label``
                                     (:mod:`.card`), so ``load_dataset(OUTPUT)`` never guesses splits from names
      errors.jsonl                   skipped inputs, degenerate and low-score samples, if any
      annotations/instances.json     --task detect|segment, COCO input: A's objects (new image ids, same categories)
      labels/<class>/<file>.txt      YOLO input: one label file per A (Ultralytics' rule: /images/ -> /labels/),
      data.yaml                      and the class names
      masks/<class>/<file>.png       masks input: one class-id mask per A, and classes.txt
      .diffusemix/
        run.json                     the settings the folder was made with (recipe, editor, scorer, options)
        plan.jsonl                   the current plan's file names (JSON strings)
        lock                         held (flock) while a run writes (see export.lock)
        rows-<I>-of-<N>.jsonl        shard I's journal: one line per finished sample
        done-<I>-of-<N>.json         written when shard I has visited all its samples

Folders made before version 4 kept the class folders at the top of OUTPUT (a flat input's images
directly in it); their rows name files relative to OUTPUT too, so every reader reads them as they
are, and an export into one moves them under ``images/`` first (:func:`move_to_images_root`).

Every other module (the exporter's steps, the cache reader, the report, the
app's Batch export, replay) goes through this one: paths, rows, settings, and
the rule that a path read from a row stays inside its folder
(:func:`resolve_in`).

A hostile folder (one received from someone else, or shared): nothing is ever
written through a link that leads outside OUTPUT, and a state file or folder
that is a link, a folder or a special file stops the run with a message
naming it (:func:`check_state`, :func:`write_file`, :func:`make_dirs`; state
files are opened with ``O_NOFOLLOW`` and only if regular: the primitives are
:mod:`.links`). Every row read back is checked against the one schema
(:func:`check_row`).

Crash safety: every file is written to a hidden temporary name in its own
folder and moved into place with ``os.replace``; a journal line is appended
(and flushed) only after the sample's files are in place. A run killed at any
moment therefore leaves finished files, temporary files (removed by the next
run) and at worst one truncated journal line (dropped by the next run).
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import re
import stat
import threading
from pathlib import Path, PurePosixPath
from typing import Any, Iterable, Iterator, Mapping

from .. import schema
from ..errors import DiffuseMixError, RecordError, SettingError
from . import links
from .links import check_destination, check_dir_inside, lstat_or_none, looks_complete, not_plain
from .links import open_no_follow as open_state_file
from .links import read_no_follow as read_state_bytes
from ..recipe import SampleRecord

__all__ = [
    "STATE_DIR",
    "MANIFEST_NAME",
    "ERRORS_NAME",
    "INPUTS_DIR",
    "STAGES_DIR",
    "SAVED_STAGES",
    "HEAD_COLUMNS",
    "BATCH_COLUMNS",
    "RUN_COLUMNS",
    "SCORE_COLUMNS",
    "MANIFEST_COLUMNS",
    "MIXING_COLUMNS",
    "DEGENERATE_KEY",
    "REJECTED_KEY",
    "IMAGES_DIR",
    "CARD_NAME",
    "ANNOTATION_COLUMNS",
    "coco_path",
    "data_yaml_path",
    "classes_path",
    "label_name",
    "mask_name",
    "images_root",
    "image_file_name",
    "image_relative",
    "card_path",
    "write_card",
    "card_text",
    "needs_layout_move",
    "moved_file_name",
    "move_to_images_root",
    "manifest_path",
    "errors_path",
    "settings_path",
    "lock_path",
    "journal_path",
    "stage_path",
    "cache_input_name",
    "is_state_name",
    "reserved_names",
    "resolve_in",
    "check_state",
    "checked_state_dir",
    "check_row",
    "CACHE_MIX_PLACEHOLDERS",
    "check_error_row",
    "write_file",
    "make_dirs",
    "remove_file",
    "looks_complete",
    "open_state_file",
    "read_state_bytes",
    "atomic_write",
    "temp_tag",
    "clean_temp_files",
    "DiskFullError",
    "check_disk_full",
    "alive",
    "Journal",
    "read_journal_rows",
    "read_settings",
    "write_settings",
    "has_settings",
    "write_done_marker",
    "read_done_markers",
    "clear_shard_state",
    "clear_all_state",
    "write_plan",
    "read_plan",
    "write_manifest",
    "read_rows",
    "read_errors",
    "row_class",
]

# ---------------------------------------------------------------------------
# names
# ---------------------------------------------------------------------------

#: Hidden folder (ignored by ``datasets``) that holds the run's state.
STATE_DIR = ".diffusemix"
MANIFEST_NAME = "metadata.jsonl"
ERRORS_NAME = "errors.jsonl"
SETTINGS_NAME = "run.json"
LOCK_NAME = "lock"
#: The file names of the current plan (all shards), one JSON string a line (a
#: name may hold a newline): rows of files no longer planned (inputs removed or
#: renamed) stay out of the manifest.
PLAN_NAME = "plan.jsonl"
#: The plan as folders made before 2026-11 wrote it: one name a line (read, never written).
_OLD_PLAN_NAME = "plan.txt"
#: The images root: ``OUTPUT/images/<class>/<file>`` (A; a cache's Î). Only class folders live in it.
IMAGES_DIR = "images"
#: The dataset card (🤗 datasets reads its YAML: ``configs``, ``data_files``, features).
CARD_NAME = "README.md"
#: A cache's folder of I, once per input image: ``OUTPUT/inputs/<class>/<sub>/<stem>.<ext>``.
INPUTS_DIR = "inputs"
#: The originals at the output size, once per input image (``--write-originals``, as the authors'
#: ``original_resized``): ``OUTPUT/originals/<class>/<sub>/<stem>.png``, an ImageFolder root of its own.
ORIGINALS_DIR = "originals"
#: Saved stages: ``OUTPUT/stages/<stage>/<same path as A>.png``.
STAGES_DIR = "stages"
#: Annotations of A (``--task detect|segment``), in the input's format, beside ``images/``: COCO
#: (``annotations/instances.json``), YOLO (``labels/<class>/<file>.txt`` and ``data.yaml``) or class-id masks
#: (``masks/<class>/<file>.png`` and ``classes.txt``). Each reads back with ``diffusemix.annotations.read_annotations``.
ANNOTATIONS_DIR = "annotations"
COCO_NAME = "instances.json"
LABELS_DIR = "labels"
DATA_YAML_NAME = "data.yaml"
MASKS_DIR = "masks"
CLASSES_NAME = "classes.txt"
#: Stages written by ``save_stages`` (all but A, which is the output itself).
SAVED_STAGES: tuple[str, ...] = ("input", "generated", "mask", "hybrid", "fractal")

_TMP_RE = re.compile(r"^\..+\.dmx(\d+)of(\d+)-(\d+)\.tmp$")
_ROWS_RE = re.compile(r"^rows-(\d+)-of-(\d+)\.jsonl$")
_DONE_RE = re.compile(r"^done-(\d+)-of-(\d+)\.json$")

# ---------------------------------------------------------------------------
# rows
# ---------------------------------------------------------------------------

#: The columns a manifest row starts with. ``label`` is the class's index among the sorted class
#: names of the output (what torchvision's ImageFolder gives); ``class_name`` the class. A shard's
#: journal row has no ``label``: the index is given when the manifest is written, once every class
#: is known.
HEAD_COLUMNS: tuple[str, ...] = ("file_name", "label", "class_name")
#: How the sample's Î was generated: its plan chunk, and the model call that made it (one {source, prompt, copy,
#: seed} per sample in the call, in call order): a diffusion model's Î depends on the call it is in.
BATCH_COLUMNS: tuple[str, ...] = ("chunk", "batch")
#: Fields that hold for every sample of a run, after the record's own.
RUN_COLUMNS: tuple[str, ...] = ("prompts_per_image", "editor", "editor_settings", "model_revision")
#: Columns added to every row of a scored export (``--score``); see :meth:`diffusemix.scoring.Score.to_row`.
SCORE_COLUMNS: tuple[str, ...] = ("score", "scorer", "label_rank", "input_score", "input_label_rank")
#: Columns of metadata.jsonl, in order: the head, the sample's record (:class:`SampleRecord`), the run's.
MANIFEST_COLUMNS: tuple[str, ...] = (
    *HEAD_COLUMNS, *(f.name for f in dataclasses.fields(SampleRecord)), *BATCH_COLUMNS, *RUN_COLUMNS
)
#: Columns an annotated export's rows add (``--task detect|segment``): A's objects (🤗 ``objects``: COCO ``bbox``
#: [x, y, w, h], ``category`` index, ``area``, ``id``, ``iscrowd``), how many were kept, clipped and dropped, and per
#: source object what happened to it; a masks input's rows: A's mask file and its classes' pixels and Î shares.
ANNOTATION_COLUMNS: tuple[str, ...] = (
    "objects", "object_count", "objects_clipped", "objects_dropped", "object_outcomes",
    "class_mask_file_name", "class_pixels", "class_generated_share",
)
#: The record's mixing fields: a cache's rows leave them out (it mixed nothing).
MIXING_COLUMNS: tuple[str, ...] = schema.fields_by_stage(SampleRecord, "mixing")
#: Journal key of a row whose Î stayed degenerate (no file written).
DEGENERATE_KEY = "_degenerate"
#: Journal key of a row whose Î the score rule rejected after every retry (dropped, listed in errors.jsonl).
REJECTED_KEY = "_rejected"


# ---------------------------------------------------------------------------
# paths
# ---------------------------------------------------------------------------


def images_root(out: Path) -> Path:
    """The folder whose class folders hold the images (A; a cache's Î): what ImageFolder reads.

    ``OUTPUT/images``; a folder made before settings version 4 (class folders at the top of OUTPUT)
    that has not been moved yet: OUTPUT itself.
    """
    root = Path(out) / IMAGES_DIR
    if not root.is_dir() and needs_layout_move(out):
        return Path(out)
    return root


def image_file_name(rel: str) -> str:
    """A planned image's ``file_name`` (relative to OUTPUT, POSIX) from its path inside the images root."""
    return f"{IMAGES_DIR}/{rel}"


def image_relative(file_name: str) -> str:
    """A row's ``file_name`` relative to the images root (where its stages go under ``stages/<stage>/``).

    Rows of folders made before version 4 name files relative to OUTPUT without the ``images/``
    part; they are returned as they are.
    """
    prefix = f"{IMAGES_DIR}/"
    return file_name[len(prefix):] if file_name.startswith(prefix) else file_name


def card_path(out: Path) -> Path:
    return Path(out) / CARD_NAME


def manifest_path(out: Path) -> Path:
    return Path(out) / MANIFEST_NAME


def errors_path(out: Path) -> Path:
    return Path(out) / ERRORS_NAME


def state_dir(out: Path) -> Path:
    return Path(out) / STATE_DIR


def settings_path(out: Path) -> Path:
    return state_dir(out) / SETTINGS_NAME


def lock_path(out: Path) -> Path:
    return state_dir(out) / LOCK_NAME


def journal_path(out: Path, shard: tuple[int, int]) -> Path:
    return state_dir(out) / f"rows-{shard[0]}-of-{shard[1]}.jsonl"


def done_path(out: Path, shard: tuple[int, int]) -> Path:
    return state_dir(out) / f"done-{shard[0]}-of-{shard[1]}.json"


def stage_path(out: Path, stage: str, file_name: str) -> Path:
    """Where ``--save-stages`` keeps ``stage`` of the output ``file_name``."""
    return Path(out) / STAGES_DIR / stage / Path(image_relative(file_name)).with_suffix(".png")


def stage_name(stage: str, file_name: str) -> str:
    """:func:`stage_path` relative to the folder (POSIX)."""
    return f"{STAGES_DIR}/{stage}/{PurePosixPath(image_relative(file_name)).with_suffix('.png')}"


def cache_input_name(out_stem: str, extension: str) -> str:
    """Where a cache keeps an image's I, relative to OUTPUT (POSIX)."""
    return f"{INPUTS_DIR}/{out_stem}{extension}"


def original_name(out_stem: str) -> str:
    """Where ``--write-originals`` keeps an image's I (PNG), relative to OUTPUT (POSIX)."""
    return f"{ORIGINALS_DIR}/{out_stem}.png"


def coco_path(out: Path) -> Path:
    """An annotated export's COCO JSON (a COCO input): ``OUTPUT/annotations/instances.json``; its image names
    are relative to :func:`images_root`, where the COCO readers look for them."""
    return Path(out) / ANNOTATIONS_DIR / COCO_NAME


def data_yaml_path(out: Path) -> Path:
    """An annotated export's YOLO dataset file (a YOLO input): ``OUTPUT/data.yaml``."""
    return Path(out) / DATA_YAML_NAME


def classes_path(out: Path) -> Path:
    """An annotated export's class list (a masks input): ``OUTPUT/classes.txt``, one name a line."""
    return Path(out) / CLASSES_NAME


def label_name(file_name: str) -> str:
    """The YOLO label file of an image ``file_name`` (relative to OUTPUT, POSIX), by Ultralytics' rule
    (``img2label_paths``): the last ``/images/`` of its path becomes ``/labels/``, the extension ``.txt``."""
    path = "/" + file_name
    sa, sb = f"/{IMAGES_DIR}/", f"/{LABELS_DIR}/"
    if sa in path:
        path = sb.join(path.rsplit(sa, 1))
    return str(PurePosixPath(path[1:]).with_suffix(".txt"))


def mask_name(file_name: str) -> str:
    """The class-id mask of an image ``file_name`` (relative to OUTPUT, POSIX): ``masks/<same path>.png``, where
    ``read_mask_pairs`` finds it."""
    return f"{MASKS_DIR}/{PurePosixPath(image_relative(file_name)).with_suffix('.png')}"


def reserved_names(*, cache: bool, originals: bool = False) -> set[str]:
    """Top-level names an input class folder must not have (the folder's own files would collide).

    None since version 4: class folders live under ``images/``, apart from the folder's own files.
    """
    return set()


def is_state_name(name: str) -> bool:
    """Whether a top-level name of OUTPUT is the exporter's (all of them since version 4: classes are under images/)."""
    # (not the annotation files of --task detect|segment: no folder made before version 4 has them, and an old
    # folder's class named like one, "labels" or "masks", must still move under images/)
    return name in {STATE_DIR, MANIFEST_NAME, ERRORS_NAME, STAGES_DIR, INPUTS_DIR, ORIGINALS_DIR, IMAGES_DIR, CARD_NAME}


def resolve_in(root: Path, name: Any, *, what: str = "file_name", source: Any = None, row: int | None = None,
               real_root: str | None = None) -> Path:
    """``root / name`` for a relative POSIX ``name`` read from a row, refused unless it stays inside ``root``.

    The one path rule for everything read from a record or a row (the cache
    reader, the datasets, the 🤗 transform, the report, replay): the name must
    be a non-empty relative path without ``..`` parts, and what it names must
    lie inside ``root`` after resolving links.

    ``real_root``: ``os.path.realpath(root)``, when the caller checks many names (computed once).

    Raises:
        RecordError: naming ``source`` (the file the row came from), the row
            number and the field.
    """
    if not isinstance(name, str) or not name or "\0" in name:
        raise RecordError("must be a non-empty relative path", path=source, row=row, field=what)
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name) or ".." in name.split("/") or "\\" in name:
        raise RecordError(
            f"{name!r} leaves its folder (an absolute path, a drive or '..'); a diffusemix row names files inside"
            " its folder only",
            path=source, row=row, field=what,
        )
    _confined(real_root if real_root is not None else os.path.realpath(root), name, what, source, row)
    return Path(root) / name


def _confined(base: str, name: str, what: str, source: Any, row: int | None) -> None:
    """Refuse ``name`` (relative, no ``..``) if, links resolved, it leads out of the real folder ``base``."""
    try:
        real = os.path.realpath(os.path.join(base, name))
    except (OSError, RuntimeError) as e:  # a link loop
        raise RecordError(f"{name!r} cannot be resolved ({e})", path=source, row=row, field=what) from None
    if not links.is_inside(real, base):
        raise RecordError(
            f"{name!r} is a link that leads outside its folder ({real}); refused", path=source, row=row, field=what
        )


# ---------------------------------------------------------------------------
# a hostile folder: links and special files (never written through, never read)
# ---------------------------------------------------------------------------

def _state_names(name: str) -> bool:
    """The exporter's own files in the state folder."""
    return name in (SETTINGS_NAME, LOCK_NAME, PLAN_NAME, _OLD_PLAN_NAME) or bool(
        _ROWS_RE.match(name) or _DONE_RE.match(name))


def checked_state_dir(out: Path, *, create: bool = False) -> Path:
    """The state folder, checked: a real folder (not a link, not a file), created if asked."""
    state = state_dir(out)
    st = lstat_or_none(state)
    if st is None and create:
        try:
            state.mkdir(parents=True)
        except FileExistsError:
            pass
        st = lstat_or_none(state)
    if st is not None and not stat.S_ISDIR(st.st_mode):
        raise not_plain(state, st, expect="a folder")
    return state


def check_state(out: Path) -> None:
    """Refuse a folder whose state folder, state files, manifest or errors are links, folders or special files.

    Called before a run takes the folder (and by the merge), so a planted link stops
    everything before any file is opened; every problem found is named at once.

    Raises:
        DiffuseMixError: naming each file and what it is.
    """
    out = Path(out)
    problems: list[str] = []
    st = lstat_or_none(state_dir(out))
    if st is not None and not stat.S_ISDIR(st.st_mode):
        problems.append(f"{state_dir(out)} is {links.describe(state_dir(out), st)}, not a folder")
    elif st is not None:
        for entry in sorted(os.scandir(state_dir(out)), key=lambda e: e.name):
            if _state_names(entry.name):
                try:
                    est = entry.stat(follow_symlinks=False)
                except FileNotFoundError:  # removed meanwhile (a shard clearing its marker)
                    continue
                if not stat.S_ISREG(est.st_mode):
                    problems.append(f"{entry.path} is {links.describe(Path(entry.path), est)}")
    for path in (manifest_path(out), errors_path(out)):
        pst = lstat_or_none(path)
        if pst is not None and not stat.S_ISREG(pst.st_mode):
            problems.append(f"{path} is {links.describe(path, pst)}")
    if problems:
        raise DiffuseMixError(
            f"holds what the exporter keeps as regular files: {'; '.join(problems)}", path=out,
            field=f"output folder {out}", hint=links.HINT,
        )


def make_dirs(out: Path, folder: Path) -> None:
    """Create ``folder`` (inside OUTPUT) and its parents, refusing any that leads outside OUTPUT."""
    out = Path(out)
    here = out
    for part in Path(os.path.relpath(folder, out)).parts:
        here = here / part
        if lstat_or_none(here) is None:
            try:
                here.mkdir()
            except FileExistsError:
                pass
            except OSError as e:
                check_disk_full(e, here)
                raise
        check_dir_inside(out, here)


def write_file(out: Path, path: Path, data: bytes, *, tag: str, fsync: bool = True) -> None:
    """:func:`atomic_write` for a file inside OUTPUT: never through a link that leads outside it.

    Raises:
        DiffuseMixError: the file's folder leads outside OUTPUT (a link on the way), or the file
            itself is a link, a folder or a special file; named, nothing written.
    """
    check_destination(out, path)
    atomic_write(path, data, tag=tag, fsync=fsync)


def remove_file(out: Path, path: Path) -> None:
    """Remove a file of OUTPUT (absent: nothing to do); never one in a folder that leads outside OUTPUT."""
    if lstat_or_none(path.parent) is None:
        return
    check_dir_inside(out, path.parent)
    path.unlink(missing_ok=True)


# ---------------------------------------------------------------------------
# rows read back: typed, confined, once (the one schema)
# ---------------------------------------------------------------------------

#: A cache's rows mix nothing: placeholders for the record's mixing fields (redrawn every epoch).
CACHE_MIX_PLACEHOLDERS: dict[str, Any] = {"layout": "left", "mask": "binary", "seam": 0, "lam": 0.0, "fractal": ""}
#: Score columns and their checks: a similarity or a probability (finite, in [-1, 1]); a rank (an integer >= 1).
_SCORES = ("score", "input_score")
#: The record's fields, and those rows written before they were recorded may lack (SampleRecord.from_dict).
_RECORD_FIELDS = tuple(f.name for f in dataclasses.fields(SampleRecord))
_LEGACY_FIELDS = ("attempts", "arithmetic", "resize")
_RANKS = ("label_rank", "input_label_rank")


def _record_error(e: SettingError, *, source: Any, row: int | None) -> RecordError:
    value = f"; got {e.value!r}" if e.has_value else ""
    return RecordError(f"{e.reason}{value}", path=source, row=row, field=e.field)


def _check_scores(row: Mapping[str, Any], *, source: Any, n: int | None) -> None:
    for key in _SCORES:
        v = row.get(key)
        if v is not None and not (schema.is_number(v) and -1.0 <= float(v) <= 1.0):
            raise RecordError(f"must be a number in [-1, 1] (a similarity or a probability); got {v!r}",
                              path=source, row=n, field=key)
    for key in _RANKS:
        v = row.get(key)
        if v is not None and not (schema.is_int(v) and v >= 1):
            raise RecordError(f"must be an integer >= 1 (a rank); got {v!r}", path=source, row=n, field=key)


def check_row(root: Path, row: Any, *, source: Any = None, n: int | None = None,
              real_root: str | None = None) -> dict[str, Any]:
    """A manifest row, checked against the one schema before anything uses it; returns it.

    Its paths (``file_name``, a cache's ``input_file_name``) follow :func:`resolve_in`; its class is
    named; its record's fields are :class:`SampleRecord`'s (a cache's rows have no mixing fields);
    scores are finite numbers in [-1, 1], ranks integers >= 1.

    Raises:
        RecordError: naming ``source``, the row number ``n`` and the field.
    """
    if not isinstance(row, dict):
        raise RecordError("is not a JSON object (a manifest line)", path=source, row=n)
    real_root = real_root if real_root is not None else os.path.realpath(root)
    resolve_in(root, row.get("file_name"), what="file_name", source=source, row=n, real_root=real_root)
    cache = "input_file_name" in row
    if cache:
        resolve_in(root, row.get("input_file_name"), what="input_file_name", source=source, row=n,
                   real_root=real_root)
    if row_class(row) is None:
        raise RecordError("is missing (the class of the image)", path=source, row=n, field="class_name")
    label = row.get("label")
    if label is not None and not isinstance(label, str) and not (schema.is_int(label) and label >= 0):
        raise RecordError(f"must be the class index (an integer >= 0); got {label!r}", path=source, row=n,
                          field="label")
    record = {**CACHE_MIX_PLACEHOLDERS, **row} if cache else row
    missing = [k for k in _RECORD_FIELDS if k not in record and k not in _LEGACY_FIELDS]
    if missing:
        raise RecordError(f"is missing (a row holds every field of its record: {', '.join(missing)} missing)",
                          path=source, row=n, field=missing[0])
    try:
        SampleRecord.from_dict(record)
    except SettingError as e:
        raise _record_error(e, source=source, row=n) from None
    _check_scores(row, source=source, n=n)
    _check_annotations(root, row, source=source, n=n, real_root=real_root)
    for key in ("editor", "scorer"):
        if row.get(key) is not None and not isinstance(row[key], str):
            raise RecordError(f"must be a string; got {row[key]!r}", path=source, row=n, field=key)
    return row


_OBJECT_KEYS = ("id", "bbox", "category", "area", "iscrowd")


def _check_annotations(root: Path, row: Mapping[str, Any], *, source: Any, n: int | None, real_root: str) -> None:
    """An annotated export's columns (:data:`ANNOTATION_COLUMNS`): ``objects`` in 🤗 form (lists of one length:
    ``bbox`` four finite numbers with a non-negative size, ``category`` an index, ``area`` >= 0, ``iscrowd`` 0 or 1),
    the counts integers >= 0, ``class_mask_file_name`` a path inside the folder (:func:`resolve_in`)."""
    def bad(field: str, why: str) -> RecordError:
        return RecordError(why, path=source, row=n, field=field)

    if "class_mask_file_name" in row:
        resolve_in(root, row["class_mask_file_name"], what="class_mask_file_name", source=source, row=n, real_root=real_root)
    for key in ("object_count", "objects_clipped", "objects_dropped"):
        v = row.get(key)
        if v is not None and not (schema.is_int(v) and v >= 0):
            raise bad(key, f"must be an integer >= 0 (a count of objects); got {v!r}")
    if "objects" not in row:
        return
    objects = row["objects"]
    if not isinstance(objects, dict) or any(not isinstance(objects.get(k), list) for k in _OBJECT_KEYS):
        raise bad("objects", f"must be an object of lists {', '.join(_OBJECT_KEYS)} (🤗 datasets' objects)")
    count = len(objects["bbox"])
    if any(len(objects[k]) != count for k in _OBJECT_KEYS):
        raise bad("objects", "must hold lists of one length (one entry per object in each)")
    for i in range(count):
        box, cat = objects["bbox"][i], objects["category"][i]
        if not (isinstance(box, list) and len(box) == 4 and all(schema.is_number(v) for v in box)
                and box[2] >= 0 and box[3] >= 0):
            raise bad("objects", f"bbox {i} must be [x, y, width, height], finite, of a size >= 0; got {box!r}")
        if not (schema.is_int(cat) and cat >= 0):
            raise bad("objects", f"category {i} must be a category index (an integer >= 0); got {cat!r}")
        area, crowd = objects["area"][i], objects["iscrowd"][i]
        if not (schema.is_number(area) and area >= 0):
            raise bad("objects", f"area {i} must be a number >= 0; got {area!r}")
        if crowd not in (0, 1) or isinstance(crowd, bool):
            raise bad("objects", f"iscrowd {i} must be 0 or 1; got {crowd!r}")


def check_error_row(root: Path, row: Any, *, source: Any = None, n: int | None = None) -> dict[str, Any]:
    """A row of errors.jsonl, checked: ``kind`` always; a dropped sample's ``source``, ``file_name``
    (:func:`resolve_in`), ``prompt``, ``copy`` and score too (other kinds, such as a skipped input or
    an annotation issue, are only listed). Returns it.

    Raises:
        RecordError: naming ``source``, the row number ``n`` and the field.
    """
    if not isinstance(row, dict):
        raise RecordError("is not a JSON object (an errors line)", path=source, row=n)
    needed = ["kind"]
    if row.get("kind") in ("low-score", "degenerate"):
        needed += ["source", "file_name", "prompt"]
    missing = [k for k in needed if not isinstance(row.get(k), str)]
    if missing:
        raise RecordError(f"lacks {', '.join(missing)} (or it is not a string)", path=source, row=n,
                          field=missing[0])
    if "file_name" in needed:
        resolve_in(root, row["file_name"], what="file_name", source=source, row=n)
        if not (schema.is_int(row.get("copy", 0)) and row.get("copy", 0) >= 0):
            raise RecordError(f"must be an integer >= 0; got {row.get('copy')!r}", path=source, row=n, field="copy")
    _check_scores(row, source=source, n=n)
    return row


# ---------------------------------------------------------------------------
# atomic writes
# ---------------------------------------------------------------------------


def temp_tag(shard: tuple[int, int]) -> str:
    """The part of a temporary file name that says which shard (and process) wrote it."""
    return f"dmx{shard[0]}of{shard[1]}-{os.getpid()}"


def atomic_write(path: Path, data: bytes, *, tag: str, fsync: bool = True) -> None:
    """Write ``data`` to ``path`` so that a reader (or a crash) never sees half a file.

    The bytes go to ``.<name>.<tag>.tmp`` in the same folder, are flushed (and
    fsync'ed), then ``os.replace`` moves them over ``path``.
    """
    tmp = path.with_name(f".{path.name}.{tag}.tmp")
    try:
        with os.fdopen(_create_new(tmp), "wb") as f:
            f.write(data)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)  # replaces a link itself, never writes through it
    except BaseException as e:
        try:
            tmp.unlink()
        except OSError:
            pass
        if isinstance(e, OSError) and e.errno in _DISK_FULL:
            raise DiskFullError(path, e) from e
        raise


def _create_new(tmp: Path) -> int:
    """A new file at ``tmp`` (never through a link planted there: ``O_EXCL | O_NOFOLLOW``); a leftover
    of the same name (a killed run of the same pid) is removed first."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    flags |= getattr(os, "O_BINARY", 0)
    try:
        return os.open(tmp, flags, 0o666)
    except FileExistsError:
        tmp.unlink()  # a link or a stale file: unlinking removes the name only
        return os.open(tmp, flags, 0o666)


#: errno values that mean "no room left": the disk is full, or the user's quota is.
_DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})


class DiskFullError(DiffuseMixError):
    """Writing a file of the export failed for lack of space; ``path`` names the file."""

    def __init__(self, path: Path, error: OSError) -> None:
        super().__init__(
            f"the disk is full: writing {path} failed ({error.strerror or error}). Free some space (or "
            "choose an output folder on a larger disk), then run the same command again: the export "
            "resumes where it stopped and keeps every finished image",
            path=path,
        )


def check_disk_full(error: OSError, path: Path) -> None:
    """Raise :class:`DiskFullError` for ``path`` when ``error`` means the disk is full."""
    if error.errno in _DISK_FULL:
        raise DiskFullError(path, error) from error


def alive(pid: int) -> bool:
    """Whether another process with this id is running (on this machine)."""
    if pid == os.getpid() or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def clean_temp_files(output_dir: Path, shard: tuple[int, int] | None = None) -> int:
    """Remove temporary files left by killed runs; only shard ``shard``'s when given.

    Returns how many were removed. Only names made by :func:`atomic_write`
    with a :func:`temp_tag` are touched, and only those of processes that are
    no longer running.
    """
    removed = 0
    for root, _dirs, files in os.walk(output_dir):
        for name in files:
            m = _TMP_RE.match(name)
            if m is None:
                continue
            if shard is not None and (int(m.group(1)), int(m.group(2))) != tuple(shard):
                continue
            if alive(int(m.group(3))):
                continue  # another process (a shard finishing now) is writing it
            try:
                os.unlink(os.path.join(root, name))
                removed += 1
            except FileNotFoundError:
                pass
    return removed


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False)


# ---------------------------------------------------------------------------
# journals
# ---------------------------------------------------------------------------


def _complete_lines(data: bytes) -> Iterator[dict[str, Any]]:
    """Parse the complete (newline-terminated, valid JSON) lines of a journal."""
    end = data.rfind(b"\n")
    if end < 0:
        return
    for line in data[: end + 1].splitlines():
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            continue  # cannot happen for complete lines; be lenient all the same
        if isinstance(row, dict):
            yield row


class Journal:
    """Shard I's append-only list of finished samples (one JSON object a line).

    Opening it drops a truncated last line left by a killed run. ``append`` is
    thread-safe and flushes each line to the operating system, so a killed
    process loses at most the line being written.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        st = lstat_or_none(path.parent)
        if st is None:
            path.parent.mkdir(parents=True, exist_ok=True)
        elif not stat.S_ISDIR(st.st_mode):
            raise not_plain(path.parent, st, expect="a folder")
        # never through a link, only a regular file (a FIFO would block, a link would append elsewhere)
        fd = open_state_file(path, os.O_RDWR | os.O_CREAT | os.O_APPEND)
        try:
            size = os.fstat(fd).st_size
            if size and links.read_at(fd, 1, size - 1) != b"\n":  # drop a truncated last line
                os.ftruncate(fd, _last_newline(fd, size))
            os.lseek(fd, 0, os.SEEK_END)
            self._file = os.fdopen(fd, "ab")
        except BaseException:
            os.close(fd)
            raise

    def append(self, row: Mapping[str, Any]) -> None:
        line = (_dumps(row) + "\n").encode("utf-8")
        with self._lock:
            try:
                self._file.write(line)
                self._file.flush()
            except OSError as e:
                check_disk_full(e, self.path)
                raise

    def close(self) -> None:
        with self._lock:
            if self._file.closed:
                return
            try:
                self._file.flush()
                os.fsync(self._file.fileno())
            except OSError as e:
                check_disk_full(e, self.path)
                raise
            finally:
                self._file.close()

    def __enter__(self) -> "Journal":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _last_newline(fd: int, end: int) -> int:
    """The length of a file's complete lines before byte ``end`` (0 when it holds no newline)."""
    while end > 0:
        start = max(0, end - (1 << 20))
        chunk = links.read_at(fd, end - start, start)
        cut = chunk.rfind(b"\n")
        if cut >= 0:
            return start + cut + 1
        end = start
    return 0


def read_journal_rows(output_dir: Path) -> Iterator[dict[str, Any]]:
    """Every complete row of every shard's journal (any shard count), file by file.

    Raises:
        DiffuseMixError: the state folder or a journal is a link, a folder or a special file.
    """
    state = checked_state_dir(output_dir)
    if not state.is_dir():
        return
    for p in sorted(state.iterdir()):
        if not _ROWS_RE.match(p.name):
            continue
        try:
            f = os.fdopen(open_state_file(p, os.O_RDONLY), "rb")
        except FileNotFoundError:
            continue
        with f:  # line by line: a journal is never read into memory whole
            for line in f:
                if not line.endswith(b"\n"):
                    break  # a truncated last line (a killed run, or a shard writing now)
                yield from _complete_lines(line)


def row_class(row: Mapping[str, Any]) -> str | None:
    """A row's class: ``class_name``, else a string ``label`` (journals and exports made before ``class_name``)."""
    for key in ("class_name", "label"):
        if isinstance(row.get(key), str):
            return str(row[key])
    return None


# ---------------------------------------------------------------------------
# run settings (run.json: the settings module reads them into the dataclasses)
# ---------------------------------------------------------------------------


def has_settings(output_dir: Path) -> bool:
    """Whether ``output_dir`` holds an export's settings (is, or was, an export folder)."""
    return settings_path(output_dir).is_file()


def read_settings(output_dir: Path) -> dict[str, Any] | None:
    """run.json as a dict, or None when there is none."""
    p = settings_path(output_dir)
    checked_state_dir(output_dir)
    try:
        raw = read_state_bytes(p)  # never through a link, never a FIFO
        if raw is None:
            return None
        data = json.loads(raw.decode("utf-8"))
    except (OSError, ValueError) as e:
        if isinstance(e, DiffuseMixError):
            raise
        raise DiffuseMixError(
            f"is unreadable ({e}); it records how {output_dir} was made",
            path=p, field=str(p), hint="Use a new output folder, or delete the folder to start again",
        ) from None
    if not isinstance(data, dict):
        raise DiffuseMixError("is not a diffusemix settings file", field=str(p), hint="Use a new output folder")
    return data


def write_settings(output_dir: Path, settings: Mapping[str, Any], *, tag: str) -> None:
    state = checked_state_dir(output_dir, create=True)
    text = json.dumps(settings, indent=2, ensure_ascii=False) + "\n"
    write_file(output_dir, state / SETTINGS_NAME, text.encode("utf-8"), tag=tag)


# ---------------------------------------------------------------------------
# shard completion markers
# ---------------------------------------------------------------------------


def write_done_marker(output_dir: Path, shard: tuple[int, int], info: Mapping[str, Any], *, tag: str) -> None:
    checked_state_dir(output_dir, create=True)
    write_file(output_dir, done_path(output_dir, shard),
               (json.dumps(info, ensure_ascii=False, indent=1) + "\n").encode("utf-8"), tag=tag)


def read_done_markers(output_dir: Path) -> dict[tuple[int, int], dict[str, Any]]:
    """The completion markers present, keyed by (index, count)."""
    state = checked_state_dir(output_dir)
    out: dict[tuple[int, int], dict[str, Any]] = {}
    if not state.is_dir():
        return out
    for p in sorted(state.iterdir()):
        m = _DONE_RE.match(p.name)
        if m is None:
            continue
        try:
            data = json.loads((read_state_bytes(p) or b"").decode("utf-8"))  # a link or a FIFO: refused
        except DiffuseMixError:
            raise
        except (OSError, ValueError):
            continue  # a marker is written atomically; an unreadable one counts as absent
        if isinstance(data, dict):
            out[(int(m.group(1)), int(m.group(2)))] = data
    return out


def clear_shard_state(output_dir: Path, shard: tuple[int, int]) -> None:
    """At a shard's start: its own marker goes (it is not done yet), and markers
    of other shard counts go too (they belong to an older split of the work)."""
    state = state_dir(output_dir)
    if not state.is_dir():
        return
    for p in state.iterdir():
        m = _DONE_RE.match(p.name)
        if m is None:
            continue
        idx, count = int(m.group(1)), int(m.group(2))
        if (idx, count) == tuple(shard) or count != shard[1]:
            p.unlink(missing_ok=True)


def clear_all_state(output_dir: Path) -> None:
    """Forget every journal and marker, the manifest and the errors (a remix with --reuse-generated)."""
    state = state_dir(output_dir)
    if not state.is_dir():
        return
    for p in state.iterdir():
        if _ROWS_RE.match(p.name) or _DONE_RE.match(p.name):
            p.unlink(missing_ok=True)
    manifest_path(output_dir).unlink(missing_ok=True)
    errors_path(output_dir).unlink(missing_ok=True)


# ---------------------------------------------------------------------------
# the plan's file names
# ---------------------------------------------------------------------------


def write_plan(output_dir: Path, file_names: Iterable[str], *, tag: str) -> None:
    """Record the file names the current plan makes (see :data:`PLAN_NAME`)."""
    text = "".join(_dumps(n) + "\n" for n in file_names)
    state = checked_state_dir(output_dir, create=True)
    write_file(output_dir, state / PLAN_NAME, text.encode("utf-8"), tag=tag)
    (state / _OLD_PLAN_NAME).unlink(missing_ok=True)


def read_plan(output_dir: Path) -> set[str] | None:
    """The file names of the current plan, or None for a folder written before plans were recorded."""
    state = checked_state_dir(output_dir)
    try:
        with os.fdopen(open_state_file(state / PLAN_NAME, os.O_RDONLY), "rb") as f:
            return {json.loads(line) for line in f if line.strip()}
    except FileNotFoundError:
        pass
    old = read_state_bytes(state / _OLD_PLAN_NAME)
    return None if old is None else set(old.decode("utf-8").splitlines())


# ---------------------------------------------------------------------------
# the manifest and the errors
# ---------------------------------------------------------------------------


def write_manifest(output_dir: Path, lines: Iterable[str], errors: Iterable[Mapping[str, Any]], *, tag: str) -> Path:
    """Write metadata.jsonl (and errors.jsonl, or remove it when there are none) atomically, then the card."""
    text = "".join(line + "\n" for line in lines)
    path = manifest_path(output_dir)
    write_file(output_dir, path, text.encode("utf-8"), tag=tag)
    errs = list(errors)
    if errs:
        write_file(output_dir, errors_path(output_dir),
                   "".join(_dumps(dict(e)) + "\n" for e in errs).encode("utf-8"), tag=tag)
    else:
        errors_path(output_dir).unlink(missing_ok=True)
    write_card(output_dir, text.splitlines(), tag=tag)
    return path


def _read_jsonl(path: Path, *, what: str, hint: str) -> list[tuple[int, dict[str, Any]]]:
    """(line number, row) of each non-blank line of a JSON-lines file of the folder."""
    try:
        raw = read_state_bytes(path)  # never through a link, never a FIFO
        if raw is None:
            raise FileNotFoundError(path)
        text = raw.decode("utf-8")
    except FileNotFoundError:
        raise RecordError("does not exist", path=path, hint=hint) from None
    except DiffuseMixError as e:
        raise RecordError(e.reason, path=path, hint=e.hint) from None
    except (OSError, UnicodeDecodeError) as e:
        raise RecordError(f"cannot be read ({getattr(e, 'strerror', None) or e})", path=path, hint=hint) from None
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            raise RecordError(f"is not JSON (a {what} line)", path=path, row=n, hint=hint) from None
        if not isinstance(row, dict):
            raise RecordError(f"is not a JSON object (a {what} line)", path=path, row=n, hint=hint) from None
        rows.append((n, row))
    return rows


def read_rows(output_dir: Path, *, hint: str = "make the export again") -> list[dict[str, Any]]:
    """The rows of ``metadata.jsonl``, each a dict, in file order, each checked (:func:`check_row`).

    Raises:
        RecordError: the manifest is missing, unreadable or not a regular file, a line is not a JSON
            object or breaks the schema (a path that leaves the folder, a field of the wrong type, a
            score out of range), or a row repeats an earlier row's file (the file, the line number
            and the field are named).
    """
    path = manifest_path(output_dir)
    numbered = _read_jsonl(path, what="manifest", hint=hint)
    first: dict[str, int] = {}
    real_root = os.path.realpath(output_dir)
    for n, row in numbered:
        check_row(output_dir, row, source=path, n=n, real_root=real_root)
        name = row["file_name"]
        if name in first:
            raise RecordError(f"repeats row {first[name]}'s file_name {name!r}: each image is listed once",
                              path=path, row=n, field="file_name", hint=hint)
        first[name] = n
    return [row for _, row in numbered]


def read_errors(output_dir: Path) -> list[dict[str, Any]]:
    """The rows of ``errors.jsonl`` ([] when there is none), each checked (:func:`check_error_row`)."""
    path = errors_path(output_dir)
    if lstat_or_none(path) is None:
        return []
    numbered = _read_jsonl(path, what="errors", hint="make the export again")
    for n, row in numbered:
        check_error_row(output_dir, row, source=path, n=n)
    return [row for _, row in numbered]


# ---------------------------------------------------------------------------
# the dataset card (README.md): its text is export.card's
# ---------------------------------------------------------------------------


def card_text(output_dir: Path, lines: Iterable[str], *, title: str | None = None) -> str:
    """The dataset card of ``output_dir`` for these manifest lines (also what the app puts in a stopped run's zip).

    Its title names the input folder (not the output's: two folders made alike get the same card)."""
    from .card import card_text as render, rows_from_lines

    out = Path(output_dir)
    try:
        settings = read_settings(out)
    except DiffuseMixError:
        settings = None
    source = PurePosixPath(str((settings or {}).get("input") or "").replace("\\", "/")).name or "a dataset"
    return render(rows_from_lines(lines), settings, title=title or f"{source}, augmented with DiffuseMix",
                  data_files=(MANIFEST_NAME, f"{IMAGES_DIR}/**"), images_dir=IMAGES_DIR)


def write_card(output_dir: Path, lines: Iterable[str], *, tag: str) -> Path | None:
    """Write ``README.md`` (the dataset card) beside the manifest; None (nothing written) for a folder whose
    images are not under ``images/`` yet (made before version 4: its card would name files it does not have)."""
    if needs_layout_move(output_dir):
        return None
    path = card_path(output_dir)
    write_file(output_dir, path, card_text(output_dir, lines).encode("utf-8"), tag=tag)  # never through a link
    return path


# ---------------------------------------------------------------------------
# folders made before version 4: class folders at the top of OUTPUT, moved under images/
# ---------------------------------------------------------------------------

#: The first settings version whose folders keep the images under ``images/``.
LAYOUT_VERSION = 4


def needs_layout_move(output_dir: Path) -> bool:
    """Whether ``output_dir`` was made before version 4 (its class folders at its top) and not moved since."""
    try:
        raw = read_settings(Path(output_dir))
    except DiffuseMixError:
        return False
    version = (raw or {}).get("settings_version")
    return isinstance(version, int) and not isinstance(version, bool) and version < LAYOUT_VERSION


def _moved_name(name: str, class_name: str) -> str:
    """An old row's file name in the version-4 layout (an old flat input's images had no class folder)."""
    if name.startswith(f"{IMAGES_DIR}/"):
        return name  # moved already (a class named like the root is refused first, so this is unambiguous)
    return image_file_name(name if "/" in name else f"{class_name}/{name}")


def moved_file_name(row: Mapping[str, Any], *, flat_label: str | None = None) -> str | None:
    """A journal row's ``file_name`` as it is once its folder is in the version-4 layout (the dry run counts an
    old folder's finished samples by it before anything moves); None for a row without one."""
    name = row.get("file_name")
    if not isinstance(name, str):
        return None
    return _moved_name(name, str(row_class(row) or flat_label or ""))


def _moved_input_name(name: str, class_name: str) -> str:
    """An old cache row's ``input_file_name`` (``inputs/<stem>`` for a flat input) in the version-4 layout."""
    rest = name[len(INPUTS_DIR) + 1:] if name.startswith(f"{INPUTS_DIR}/") else name
    if "/" in rest:
        return name
    return f"{INPUTS_DIR}/{class_name}/{rest}"


def _move(out: Path, src: Path, dst: Path) -> None:
    """Rename ``src`` to ``dst`` (one atomic rename); done already when only ``dst`` is there."""
    if not os.path.lexists(src):
        return
    if os.path.lexists(dst):
        raise DiffuseMixError(
            f"cannot be moved to {dst}: both exist", path=src,
            hint="Move one of them away by hand, or export into a new folder",
        )
    make_dirs(out, dst.parent)  # never into a folder that leads outside OUTPUT
    os.replace(src, dst)


def _rewrite_rows(out: Path, path: Path, rename: Any, *, tag: str) -> None:
    """Rewrite a JSON-lines file with each row's names moved (complete lines only; atomically)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return
    end = data.rfind(b"\n") + 1
    lines = []
    for line in data[:end].splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        lines.append(_dumps(rename(row) if isinstance(row, dict) else row) + "\n")
    write_file(out, path, "".join(lines).encode("utf-8"), tag=tag)  # never through a link


def move_to_images_root(output_dir: Path, *, flat_label: str | None, tag: str) -> int:
    """Move a folder made before version 4 into the version-4 layout; returns how many things were moved.

    Class folders move from ``OUTPUT/<class>`` to ``OUTPUT/images/<class>`` (one rename each); an old
    flat input's images (``OUTPUT/<file>``, ``inputs/<file>``, ``stages/<stage>/<file>``) move into a
    folder named after its one label (``flat_label``). Then the rows of the journals, the plan, the
    manifest and errors.jsonl are rewritten with the new names. Every step can be repeated: a run
    killed while moving moves the rest when run again (the caller writes run.json's new version last,
    which marks the move done). Call it holding the folder's lock alone.

    Raises:
        DiffuseMixError: an old folder with a class named ``images`` (it cannot hold itself), or a
            name that exists in both places.
    """
    out = Path(output_dir)
    if not needs_layout_move(out):
        return 0
    settings = read_settings(out) or {}
    flat = str(settings.get("labels") or "").startswith("flat")
    moved = 0
    # 1. the images: class folders, or an old flat input's files
    if flat:
        if flat_label is None:
            raise DiffuseMixError("has no label to move its images under", field=f"output folder {out}",
                                  hint="Export into a new folder")
        for name in sorted(os.listdir(out)):
            p = out / name
            if name.startswith(".") or is_state_name(name) or not p.is_file():
                continue
            _move(out, p, out / IMAGES_DIR / flat_label / name)
            moved += 1
        for sub in [out / INPUTS_DIR] + [out / STAGES_DIR / st for st in (*SAVED_STAGES, "rejected")]:
            if sub.is_dir():
                for entry in sorted(os.scandir(sub), key=lambda e: e.name):
                    if entry.is_file() and not entry.name.startswith("."):
                        _move(out, Path(entry.path), sub / flat_label / entry.name)
                        moved += 1
    else:
        if os.path.isdir(out / IMAGES_DIR) and any(r.get("class_name") == IMAGES_DIR for r in read_journal_rows(out)):
            raise DiffuseMixError(
                f"has a class named {IMAGES_DIR!r}: this version keeps every class under {out / IMAGES_DIR}, which"
                " cannot also be a class", field=f"output folder {out}",
                hint="Export into a new folder (and rename that class folder of the input)",
            )
        for name in sorted(os.listdir(out)):
            p = out / name
            if name.startswith(".") or is_state_name(name) or not p.is_dir():
                continue
            _move(out, p, out / IMAGES_DIR / name)
            moved += 1

    # 2. the rows that name them
    def rename(row: dict[str, Any]) -> dict[str, Any]:
        cls = str(row_class(row) or flat_label or "")
        if isinstance(row.get("file_name"), str):
            row["file_name"] = _moved_name(row["file_name"], cls)
        if flat and isinstance(row.get("input_file_name"), str):
            row["input_file_name"] = _moved_input_name(row["input_file_name"], cls)
        return row

    state = state_dir(out)
    for p in sorted(state.iterdir()) if state.is_dir() else []:
        if _ROWS_RE.match(p.name):
            _rewrite_rows(out, p, rename, tag=tag)
    _rewrite_rows(out, manifest_path(out), rename, tag=tag)
    _rewrite_rows(out, errors_path(out), rename, tag=tag)
    plan = read_plan(out)
    if plan is not None:
        label = flat_label or ""
        write_plan(out, sorted(_moved_name(n, label) for n in plan), tag=tag)
    return moved
