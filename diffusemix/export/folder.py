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
import threading
from pathlib import Path, PurePosixPath
from typing import Any, Iterable, Iterator, Mapping

from .. import schema
from ..errors import DiffuseMixError, RecordError
from ..recipe import SampleRecord

__all__ = [
    "STATE_DIR",
    "MANIFEST_NAME",
    "ERRORS_NAME",
    "INPUTS_DIR",
    "STAGES_DIR",
    "SAVED_STAGES",
    "HEAD_COLUMNS",
    "RUN_COLUMNS",
    "SCORE_COLUMNS",
    "MANIFEST_COLUMNS",
    "MIXING_COLUMNS",
    "DEGENERATE_KEY",
    "REJECTED_KEY",
    "IMAGES_DIR",
    "CARD_NAME",
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
#: Saved stages: ``OUTPUT/stages/<stage>/<same path as A>.png``.
STAGES_DIR = "stages"
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
#: Fields that hold for every sample of a run, after the record's own.
RUN_COLUMNS: tuple[str, ...] = ("prompts_per_image", "editor", "editor_settings", "model_revision")
#: Columns added to every row of a scored export (``--score``); see :meth:`diffusemix.scoring.Score.to_row`.
SCORE_COLUMNS: tuple[str, ...] = ("score", "scorer", "label_rank", "input_score", "input_label_rank")
#: Columns of metadata.jsonl, in order: the head, the sample's record (:class:`SampleRecord`), the run's.
MANIFEST_COLUMNS: tuple[str, ...] = (*HEAD_COLUMNS, *(f.name for f in dataclasses.fields(SampleRecord)), *RUN_COLUMNS)
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


def reserved_names(*, cache: bool) -> set[str]:
    """Top-level names an input class folder must not have (the folder's own files would collide).

    None since version 4: class folders live under ``images/``, apart from the folder's own files.
    """
    return set()


def is_state_name(name: str) -> bool:
    """Whether a top-level name of OUTPUT is the exporter's (all of them since version 4: classes are under images/)."""
    return name in {STATE_DIR, MANIFEST_NAME, ERRORS_NAME, STAGES_DIR, INPUTS_DIR, IMAGES_DIR, CARD_NAME}


def resolve_in(root: Path, name: Any, *, what: str = "file_name", source: Any = None, row: int | None = None) -> Path:
    """``root / name`` for a relative POSIX ``name`` read from a row, refused unless it stays inside ``root``.

    The one path rule for everything read from a record or a row (the cache
    reader, the datasets, the 🤗 transform, the report, replay): the name must
    be a non-empty relative path without ``..`` parts, and what it names must
    lie inside ``root`` after resolving links.

    Raises:
        RecordError: naming ``source`` (the file the row came from), the row
            number and the field.
    """
    if not isinstance(name, str) or not name or "\0" in name:
        raise RecordError("must be a non-empty relative path", path=source, row=row, field=what)
    parts = PurePosixPath(name).parts
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name) or ".." in parts or "\\" in name:
        raise RecordError(
            f"{name!r} leaves its folder (an absolute path, a drive or '..'); a diffusemix row names files inside"
            " its folder only",
            path=source, row=row, field=what,
        )
    base = Path(root).resolve()
    path = Path(root) / name
    try:
        real = path.resolve()
    except (OSError, RuntimeError) as e:  # a link loop
        raise RecordError(f"{name!r} cannot be resolved ({e})", path=source, row=row, field=what) from None
    if real != base and base not in real.parents:
        raise RecordError(
            f"{name!r} is a link that leads outside its folder ({real}); refused", path=source, row=row, field=what
        )
    return path


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
        with open(tmp, "wb") as f:
            f.write(data)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        try:
            tmp.unlink()
        except OSError:
            pass
        if isinstance(e, OSError) and e.errno in _DISK_FULL:
            raise DiskFullError(path, e) from e
        raise


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
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            data = path.read_bytes()
            keep = data.rfind(b"\n") + 1
            if keep != len(data):
                with open(path, "r+b") as f:
                    f.truncate(keep)
        self._file = open(path, "ab")

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


def read_journal_rows(output_dir: Path) -> Iterator[dict[str, Any]]:
    """Every complete row of every shard's journal (any shard count), file by file."""
    state = state_dir(output_dir)
    if not state.is_dir():
        return
    for p in sorted(state.iterdir()):
        if not _ROWS_RE.match(p.name):
            continue
        try:
            f = open(p, "rb")
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
    if not p.exists():
        return None
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise DiffuseMixError(
            f"is unreadable ({e}); it records how {output_dir} was made",
            path=p, field=str(p), hint="Use a new output folder, or delete the folder to start again",
        ) from None
    if not isinstance(data, dict):
        raise DiffuseMixError("is not a diffusemix settings file", field=str(p), hint="Use a new output folder")
    return data


def write_settings(output_dir: Path, settings: Mapping[str, Any], *, tag: str) -> None:
    state = state_dir(output_dir)
    state.mkdir(parents=True, exist_ok=True)
    text = json.dumps(settings, indent=2, ensure_ascii=False) + "\n"
    atomic_write(state / SETTINGS_NAME, text.encode("utf-8"), tag=tag)


# ---------------------------------------------------------------------------
# shard completion markers
# ---------------------------------------------------------------------------


def write_done_marker(output_dir: Path, shard: tuple[int, int], info: Mapping[str, Any], *, tag: str) -> None:
    atomic_write(done_path(output_dir, shard), (json.dumps(info, ensure_ascii=False, indent=1) + "\n").encode("utf-8"),
                 tag=tag)


def read_done_markers(output_dir: Path) -> dict[tuple[int, int], dict[str, Any]]:
    """The completion markers present, keyed by (index, count)."""
    state = state_dir(output_dir)
    out: dict[tuple[int, int], dict[str, Any]] = {}
    if not state.is_dir():
        return out
    for p in sorted(state.iterdir()):
        m = _DONE_RE.match(p.name)
        if m is None:
            continue
        try:
            out[(int(m.group(1)), int(m.group(2)))] = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # a marker is written atomically; an unreadable one counts as absent
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
    atomic_write(state_dir(output_dir) / PLAN_NAME, text.encode("utf-8"), tag=tag)
    (state_dir(output_dir) / _OLD_PLAN_NAME).unlink(missing_ok=True)


def read_plan(output_dir: Path) -> set[str] | None:
    """The file names of the current plan, or None for a folder written before plans were recorded."""
    state = state_dir(output_dir)
    try:
        with open(state / PLAN_NAME, "rb") as f:
            return {json.loads(line) for line in f if line.strip()}
    except FileNotFoundError:
        pass
    try:
        return set((state / _OLD_PLAN_NAME).read_text(encoding="utf-8").splitlines())
    except FileNotFoundError:
        return None


# ---------------------------------------------------------------------------
# the manifest and the errors
# ---------------------------------------------------------------------------


def write_manifest(output_dir: Path, lines: Iterable[str], errors: Iterable[Mapping[str, Any]], *, tag: str) -> Path:
    """Write metadata.jsonl (and errors.jsonl, or remove it when there are none) atomically, then the card."""
    text = "".join(line + "\n" for line in lines)
    path = manifest_path(output_dir)
    atomic_write(path, text.encode("utf-8"), tag=tag)
    errs = list(errors)
    if errs:
        atomic_write(errors_path(output_dir), "".join(_dumps(dict(e)) + "\n" for e in errs).encode("utf-8"), tag=tag)
    else:
        errors_path(output_dir).unlink(missing_ok=True)
    write_card(output_dir, text.splitlines(), tag=tag)
    return path


def _read_jsonl(path: Path, *, what: str, hint: str) -> list[dict[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RecordError("does not exist", path=path, hint=hint) from None
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
        rows.append(row)
    return rows


def read_rows(output_dir: Path, *, hint: str = "make the export again") -> list[dict[str, Any]]:
    """The rows of ``metadata.jsonl``, each a dict, in file order.

    Raises:
        RecordError: the manifest is missing or unreadable, or a line is not a
            JSON object (the file and line number are named).
    """
    return _read_jsonl(manifest_path(output_dir), what="manifest", hint=hint)


def read_errors(output_dir: Path) -> list[dict[str, Any]]:
    """The rows of ``errors.jsonl`` ([] when there is none)."""
    path = errors_path(output_dir)
    if not path.exists():
        return []
    return _read_jsonl(path, what="errors", hint="make the export again")


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
    atomic_write(path, card_text(output_dir, lines).encode("utf-8"), tag=tag)
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


def _move(src: Path, dst: Path) -> None:
    """Rename ``src`` to ``dst`` (one atomic rename); done already when only ``dst`` is there."""
    if not os.path.lexists(src):
        return
    if os.path.lexists(dst):
        raise DiffuseMixError(
            f"cannot be moved to {dst}: both exist", path=src,
            hint="Move one of them away by hand, or export into a new folder",
        )
    dst.parent.mkdir(parents=True, exist_ok=True)
    os.replace(src, dst)


def _rewrite_rows(path: Path, rename: Any, *, tag: str) -> None:
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
    atomic_write(path, "".join(lines).encode("utf-8"), tag=tag)


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
            _move(p, out / IMAGES_DIR / flat_label / name)
            moved += 1
        for sub in [out / INPUTS_DIR] + [out / STAGES_DIR / st for st in (*SAVED_STAGES, "rejected")]:
            if sub.is_dir():
                for entry in sorted(os.scandir(sub), key=lambda e: e.name):
                    if entry.is_file() and not entry.name.startswith("."):
                        _move(Path(entry.path), sub / flat_label / entry.name)
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
            _move(p, out / IMAGES_DIR / name)
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
            _rewrite_rows(p, rename, tag=tag)
    _rewrite_rows(manifest_path(out), rename, tag=tag)
    _rewrite_rows(errors_path(out), rename, tag=tag)
    plan = read_plan(out)
    if plan is not None:
        label = flat_label or ""
        write_plan(out, sorted(_moved_name(n, label) for n in plan), tag=tag)
    return moved
