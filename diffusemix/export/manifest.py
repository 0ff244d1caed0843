"""The export's bookkeeping on disk: atomic writes, the run's settings, the
per-shard journals of finished samples, and their merge into ``metadata.jsonl``.

Layout of an export folder::

    OUTPUT/
      <class>/<file>                 the augmented images A
      stages/<stage>/<class>/<file>  I, Î, M, H, F as PNG (--save-stages)
      metadata.jsonl                 one row per A, in plan order (Hugging Face imagefolder)
      errors.jsonl                   skipped inputs, degenerate and low-score samples, if any
      .diffusemix/
        run.json                     the settings the folder was made with
        plan.jsonl                   the current plan's file names (JSON strings)
        lock                         held (flock) while a run writes (see export.lock)
        rows-<I>-of-<N>.jsonl        shard I's journal: one line per finished sample
        done-<I>-of-<N>.json         written when shard I has visited all its samples

Crash safety: every file is written to a hidden temporary name in its own
folder and moved into place with ``os.replace``; a journal line is appended
(and flushed) only after the sample's files are in place. A run killed at any
moment therefore leaves finished files, temporary files (removed by the next
run) and at worst one truncated journal line (dropped by the next run).
``metadata.jsonl`` is rebuilt from the journals, sorted in plan order, so it is
byte-identical however often the run was interrupted.
"""

from __future__ import annotations

import errno
import json
import os
import re
import threading
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

from ..errors import DiffuseMixError

__all__ = [
    "STATE_DIR",
    "MANIFEST_NAME",
    "ERRORS_NAME",
    "MANIFEST_COLUMNS",
    "SCORE_COLUMNS",
    "REJECTED_KEY",
    "atomic_write",
    "temp_tag",
    "clean_temp_files",
    "Journal",
    "read_journal_rows",
    "read_settings",
    "write_settings",
    "settings_diff",
    "write_done_marker",
    "read_done_markers",
    "clear_shard_state",
    "image_sort_key",
    "merge_manifests",
]

#: Columns added to every row of a scored export (``--score``); see :meth:`diffusemix.scoring.Score.to_row`.
SCORE_COLUMNS: tuple[str, ...] = ("score", "scorer", "label_rank", "input_score", "input_label_rank")
#: Journal key of a row whose Î the score rule rejected after every retry (dropped, listed in errors.jsonl).
REJECTED_KEY = "_rejected"

#: Hidden folder (ignored by ``datasets``) that holds the run's state.
STATE_DIR = ".diffusemix"
MANIFEST_NAME = "metadata.jsonl"
ERRORS_NAME = "errors.jsonl"
SETTINGS_NAME = "run.json"
#: The file names of the current plan (all shards), one JSON string a line (a
#: name may hold a newline): rows of files no longer planned (inputs removed or
#: renamed) stay out of the manifest.
PLAN_NAME = "plan.jsonl"
#: The plan as folders made before 2026-11 wrote it: one name a line (read, never written).
_OLD_PLAN_NAME = "plan.txt"

#: Columns of metadata.jsonl, in order. ``label`` is the class's index among the
#: sorted class names of the output (what torchvision's ImageFolder gives, and what
#: ``datasets.load_dataset("imagefolder", data_dir=OUTPUT)`` then reads as an int64
#: column); ``class_name`` is the class. A shard's journal keeps the class name in
#: ``label``: the index is given when the manifest is written, once every class is known.
MANIFEST_COLUMNS: tuple[str, ...] = (
    "file_name",
    "label",
    "class_name",
    "source",
    "prompt",
    "copy",
    "layout",
    "mask",
    "seam",
    "lam",
    "fractal",
    "seed",
    "attempts",
    "size",
    "resize",
    "arithmetic",
    "prompts_per_image",
    "editor",
    "editor_settings",
    "model_revision",
)

#: The columns a manifest line starts with (written by ``collect`` itself).
_HEAD_COLUMNS = ("file_name", "label", "class_name")
assert MANIFEST_COLUMNS[:3] == _HEAD_COLUMNS

#: Journal key marking a sample whose Î stayed degenerate (no file written).
DEGENERATE_KEY = "_degenerate"

_TMP_RE = re.compile(r"^\..+\.dmx(\d+)of(\d+)-(\d+)\.tmp$")
_ROWS_RE = re.compile(r"^rows-(\d+)-of-(\d+)\.jsonl$")
_DONE_RE = re.compile(r"^done-(\d+)-of-(\d+)\.json$")


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
    """Writing a file of the export failed for lack of space; the message names the file."""

    def __init__(self, path: Path, error: OSError) -> None:
        super().__init__(
            f"the disk is full: writing {path} failed ({error.strerror or error}). Free some space (or "
            "choose an output folder on a larger disk), then run the same command again: the export "
            "resumes where it stopped and keeps every finished image"
        )
        self.path = path


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


def journal_path(output_dir: Path, shard: tuple[int, int]) -> Path:
    return output_dir / STATE_DIR / f"rows-{shard[0]}-of-{shard[1]}.jsonl"


def read_journal_rows(output_dir: Path) -> Iterator[dict[str, Any]]:
    """Every complete row of every shard's journal (any shard count), file by file."""
    state = output_dir / STATE_DIR
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


# ---------------------------------------------------------------------------
# run settings
# ---------------------------------------------------------------------------


def read_settings(output_dir: Path) -> dict[str, Any] | None:
    p = output_dir / STATE_DIR / SETTINGS_NAME
    if not p.exists():
        return None
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise DiffuseMixError(
            f"{p} is unreadable ({e}); it records how {output_dir} was made. "
            "Use a new output folder, or delete the folder to start again"
        ) from None
    if not isinstance(data, dict):
        raise DiffuseMixError(f"{p} is not a diffusemix settings file; use a new output folder")
    return data


def write_settings(output_dir: Path, settings: Mapping[str, Any], *, tag: str) -> None:
    state = output_dir / STATE_DIR
    state.mkdir(parents=True, exist_ok=True)
    text = json.dumps(settings, indent=2, ensure_ascii=False) + "\n"
    atomic_write(state / SETTINGS_NAME, text.encode("utf-8"), tag=tag)


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def settings_diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Human-readable differences ``key: old -> new`` between two settings dicts."""
    a, b = _flatten(old), _flatten(new)
    lines = []
    for k in sorted(set(a) | set(b)):
        if a.get(k, "(none)") != b.get(k, "(none)"):
            lines.append(f"{k}: {_dumps(a.get(k, '(none)'))} -> {_dumps(b.get(k, '(none)'))}")
    return lines


# ---------------------------------------------------------------------------
# shard completion markers
# ---------------------------------------------------------------------------


def write_done_marker(output_dir: Path, shard: tuple[int, int], info: Mapping[str, Any], *, tag: str) -> None:
    p = output_dir / STATE_DIR / f"done-{shard[0]}-of-{shard[1]}.json"
    atomic_write(p, (json.dumps(info, ensure_ascii=False, indent=1) + "\n").encode("utf-8"), tag=tag)


def read_done_markers(output_dir: Path) -> dict[tuple[int, int], dict[str, Any]]:
    """The completion markers present, keyed by (index, count)."""
    state = output_dir / STATE_DIR
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
    state = output_dir / STATE_DIR
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
    """Forget every journal and marker (a remix with --reuse-generated)."""
    state = output_dir / STATE_DIR
    if not state.is_dir():
        return
    for p in state.iterdir():
        if _ROWS_RE.match(p.name) or _DONE_RE.match(p.name):
            p.unlink(missing_ok=True)
    for name in (MANIFEST_NAME, ERRORS_NAME):
        (output_dir / name).unlink(missing_ok=True)


# ---------------------------------------------------------------------------
# plan order and the merge
# ---------------------------------------------------------------------------


def image_sort_key(label: str, source: str) -> tuple[str, tuple[str, ...]]:
    """Plan order of images: by label (class), then by the path's parts."""
    return (label, tuple(source.split("/")))


def _row_key(row: Mapping[str, Any], prompt_index: Mapping[str, int]) -> tuple:
    return (
        *image_sort_key(str(row.get("label", "")), str(row.get("source", ""))),
        prompt_index.get(str(row.get("prompt", "")), len(prompt_index)),
        str(row.get("prompt", "")),
        int(row.get("copy", 0)),
    )


def _error_key(err: Mapping[str, Any], prompt_index: Mapping[str, int]) -> tuple:
    prompt = err.get("prompt")
    return (
        tuple(str(err.get("source", "")).split("/")),
        -1 if prompt is None else prompt_index.get(str(prompt), len(prompt_index)),
        int(err.get("copy", -1)),
        str(err.get("kind", "")),
    )


def degenerate_error(row: Mapping[str, Any]) -> dict[str, Any]:
    """The errors.jsonl entry of a journal row whose Î stayed degenerate, or
    whose score the rule rejected after every retry (with its score)."""
    attempts = int(row.get("attempts", 1))
    if REJECTED_KEY in row:
        return {
            "source": row["source"],
            "kind": "low-score",
            "class_name": row.get("label"),  # a journal row's label is the class name
            "reason": f"generated image rejected: {row[REJECTED_KEY]} after {attempts}"
            f" attempt{'s' if attempts != 1 else ''}",
            "file_name": row["file_name"],
            "prompt": row["prompt"],
            "copy": row["copy"],
            "seed": row["seed"],
            "attempts": attempts,
            **{k: row[k] for k in SCORE_COLUMNS if row.get(k) is not None},
        }
    return {
        "source": row["source"],
        "kind": "degenerate",
        "reason": f"generated image {row[DEGENERATE_KEY]} after {attempts} attempt{'s' if attempts != 1 else ''}",
        "file_name": row["file_name"],
        "prompt": row["prompt"],
        "copy": row["copy"],
        "seed": row["seed"],
        "attempts": attempts,
    }


def write_plan(output_dir: Path, file_names: Iterable[str], *, tag: str) -> None:
    """Record the file names the current plan makes (see :data:`PLAN_NAME`)."""
    text = "".join(_dumps(n) + "\n" for n in file_names)
    atomic_write(output_dir / STATE_DIR / PLAN_NAME, text.encode("utf-8"), tag=tag)
    (output_dir / STATE_DIR / _OLD_PLAN_NAME).unlink(missing_ok=True)


def read_plan(output_dir: Path) -> set[str] | None:
    """The file names of the current plan, or None for a folder written before plans were recorded."""
    state = output_dir / STATE_DIR
    try:
        with open(state / PLAN_NAME, "rb") as f:
            return {json.loads(line) for line in f if line.strip()}
    except FileNotFoundError:
        pass
    try:
        return set((state / _OLD_PLAN_NAME).read_text(encoding="utf-8").splitlines())
    except FileNotFoundError:
        return None


def _manifest_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A journal row as a manifest row: MANIFEST_COLUMNS first (those the row has: a cache's rows have
    no mixing fields), then its other columns (a cache's ``input_file_name``, scores), not the private ``_*``."""
    out = {k: row[k] for k in MANIFEST_COLUMNS if k in row}
    out.update({k: v for k, v in row.items() if k not in out and not k.startswith("_")})
    return out


def collect(
    output_dir: Path,
) -> tuple[list[str], list[dict[str, Any]], list[tuple[int, int]] | None]:
    """Manifest lines (JSON, plan order), errors (degenerate samples + bad inputs from finished shards) and
    the shards that have not finished (None when none has), all from the
    journals and markers. Rows of files outside the current plan (their
    input was removed or renamed since they were made) are left out."""
    settings = read_settings(output_dir)
    plan = read_plan(output_dir)
    prompts: Sequence[str] = ()
    if settings is not None:
        prompts = settings.get("generation", {}).get("prompts", ()) or ()
    prompt_index = {p: i for i, p in enumerate(prompts)}

    # Rows are kept as (plan-order key, class, JSON of the columns after class_name), not as dicts:
    # a third of the memory. The label index is put in when every class is known.
    ok: dict[str, tuple[tuple, str, str]] = {}
    bad: dict[str, dict[str, Any]] = {}
    for row in read_journal_rows(output_dir):
        name = row.get("file_name")
        if not isinstance(name, str) or (plan is not None and name not in plan):
            continue
        if DEGENERATE_KEY in row or REJECTED_KEY in row:
            bad[name] = row
        else:
            rest = _dumps({k: v for k, v in _manifest_row(row).items() if k not in _HEAD_COLUMNS})
            ok[name] = (_row_key(row, prompt_index), str(row.get("label", "")), rest)
    for name in ok:
        bad.pop(name, None)

    markers = read_done_markers(output_dir)
    counts = {count for (_, count) in markers}
    pending: list[tuple[int, int]] | None = None  # unknown: no shard has finished
    if markers:
        n = max(counts)
        pending = [(i, n) for i in range(n) if (i, n) not in markers]
    errors: dict[tuple, dict[str, Any]] = {}
    for marker in markers.values():
        for err in marker.get("errors", []):
            errors[(str(err.get("source")), str(err.get("kind")))] = err
    for row in bad.values():
        err = degenerate_error(row)
        errors[(err["file_name"], err["kind"])] = err

    index = {c: i for i, c in enumerate(sorted({cls for _key, cls, _rest in ok.values()}))}
    lines = [
        f'{{"file_name": {_dumps(name)}, "label": {index[cls]}, "class_name": {_dumps(cls)}'
        + (", " + rest[1:] if rest != "{}" else "}")
        for name, (_key, cls, rest) in sorted(ok.items(), key=lambda kv: kv[1][0])
    ]
    errs = sorted(errors.values(), key=lambda e: _error_key(e, prompt_index))
    return lines, errs, pending


def write_manifest(output_dir: Path, lines: Iterable[str], errors: Sequence[Mapping[str, Any]], *, tag: str) -> Path:
    """Write metadata.jsonl (and errors.jsonl, or remove it when there are none) atomically."""
    text = "".join(line + "\n" for line in lines)
    path = output_dir / MANIFEST_NAME
    atomic_write(path, text.encode("utf-8"), tag=tag)
    err_path = output_dir / ERRORS_NAME
    if errors:
        atomic_write(err_path, "".join(_dumps(dict(e)) + "\n" for e in errors).encode("utf-8"), tag=tag)
    else:
        err_path.unlink(missing_ok=True)
    return path


def merge_manifests(output_dir: str | os.PathLike[str]) -> Path:
    """Merge the shards' journals into ``OUTPUT/metadata.jsonl`` (and ``errors.jsonl``).

    Rows are deduplicated by file name and sorted in plan order, so the file
    is the same whichever shards ran, in whatever order, however often they
    were interrupted. Shards that have not finished yet simply contribute the
    rows they have; run them again and merge again to complete it.

    Raises:
        DiffuseMixError: ``output_dir`` is not a diffusemix export folder.
    """
    out = Path(output_dir)
    if not (out / STATE_DIR / SETTINGS_NAME).is_file():
        raise DiffuseMixError(
            f"{out} is not a diffusemix export folder (no {STATE_DIR}/{SETTINGS_NAME}); "
            "pass the OUTPUT folder of `python -m diffusemix export`"
        )
    rows, errors, pending = collect(out)
    path = write_manifest(out, rows, errors, tag=temp_tag((0, 0)))
    if pending == []:  # every shard has finished: no writer can be running
        clean_temp_files(out)
    return path
