"""The merge: every shard's journal into ``metadata.jsonl`` (and ``errors.jsonl``), in plan order.

``metadata.jsonl`` is rebuilt from the journals, sorted in plan order, so it is
byte-identical however often the run was interrupted and whichever shards ran.
The folder's files themselves are read and written by :mod:`.folder`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..errors import DiffuseMixError
from . import folder
from .folder import (
    DEGENERATE_KEY,
    HEAD_COLUMNS,
    MANIFEST_COLUMNS,
    REJECTED_KEY,
    SCORE_COLUMNS,
    row_class,
)

__all__ = ["collect", "merge_manifests", "degenerate_error", "image_sort_key"]


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False)


def image_sort_key(label: str, source: str) -> tuple[str, tuple[str, ...]]:
    """Plan order of images: by label (class), then by the path's parts."""
    return (label, tuple(source.split("/")))


def _row_key(row: Mapping[str, Any], prompt_index: Mapping[str, int]) -> tuple:
    return (
        *image_sort_key(str(row_class(row) or ""), str(row.get("source", ""))),
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
            "class_name": row_class(row),
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
    settings = folder.read_settings(output_dir)
    plan = folder.read_plan(output_dir)
    prompts: Sequence[str] = ()
    if settings is not None:
        from .settings import run_prompts

        prompts = run_prompts(settings)
    prompt_index = {p: i for i, p in enumerate(prompts)}

    # Rows are kept as (plan-order key, class, JSON of the columns after class_name), not as dicts:
    # a third of the memory. The label index is put in when every class is known.
    ok: dict[str, tuple[tuple, str, str]] = {}
    bad: dict[str, dict[str, Any]] = {}
    for row in folder.read_journal_rows(output_dir):
        name = row.get("file_name")
        if not isinstance(name, str) or (plan is not None and name not in plan):
            continue
        if DEGENERATE_KEY in row or REJECTED_KEY in row:
            bad[name] = row
        else:
            rest = _dumps({k: v for k, v in _manifest_row(row).items() if k not in HEAD_COLUMNS})
            ok[name] = (_row_key(row, prompt_index), str(row_class(row) or ""), rest)
    for name in ok:
        bad.pop(name, None)

    markers = folder.read_done_markers(output_dir)
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
    if not folder.has_settings(out):
        raise DiffuseMixError(
            "is not a diffusemix export folder (it has no settings file)", field=str(out),
            hint="Pass the OUTPUT folder of `python -m diffusemix export`",
        )
    folder.check_state(out)  # a planted link or FIFO among the state files: named, nothing read through it
    rows, errors, pending = collect(out)
    path = folder.write_manifest(out, rows, errors, tag=folder.temp_tag((0, 0)))
    from .annotation_writer import write_collected

    write_collected(out, rows, tag=folder.temp_tag((0, 0)))  # an annotated export's COCO JSON, data.yaml, classes
    if pending == []:  # every shard has finished: no writer can be running
        folder.clean_temp_files(out)
    return path
