"""Replay an exported image from its manifest row alone.

A row of the manifest holds everything that made its image: the source file,
how it was brought to S x S (``resize``, ``size``), the prompt and the
editor's seed, the editor and its settings, the mask (``layout``, ``mask``,
``seam``), the fractal and λ, the ``arithmetic``, and the model call that
made Î (``batch``: every sample in it, with its seed). With the input folder
and the fractal folder, :func:`replay_row` rebuilds the six stages by making
that same call again; the augmented image equals the exported file's pixels
(with the same editor on the same kind of device and thread count: diffusion
models are only reproducible there).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from ..errors import DiffuseMixError, RecordError
from .. import schema
from ..recipe import SampleRecord
from .folder import resolve_in

if TYPE_CHECKING:  # pragma: no cover
    from ..editors.base import Editor
    from ..engine import Stages
    from ..fractals import FractalSet

__all__ = ["editor_from_row", "replay_row"]


def editor_from_row(row: Mapping[str, Any], *, device: str | None = None) -> "Editor":
    """The editor a row names, with the settings it records (the model loads lazily).

    Raises:
        SettingError: the row names no known editor, or its settings are not JSON.
    """
    from ..editors import EditorSpec, load_editor

    spec = EditorSpec.from_row(row)
    if device is not None and spec.name != "preview":
        spec = spec.replace(device=device)
    return load_editor(spec)


def replay_row(
    row: Mapping[str, Any],
    input_dir: str | os.PathLike[str],
    fractals: "FractalSet",
    *,
    editor: "Editor | None" = None,
) -> "Stages":
    """The six stages of one exported sample, rebuilt from its row.

    Args:
        row: a row of the export's manifest.
        input_dir: the export's INPUT folder (the row's ``source``, and those of its ``batch``, are relative to it).
        fractals: the fractal set the export used.
        editor: the editor to use (default: :func:`editor_from_row`).

    Raises:
        RecordError: a row without the record's fields, whose paths leave ``input_dir``, or whose model call needs
            input images that are not there (all named, before any work).
    """
    from ..engine import replay
    from ..images import load_image, prepare

    try:
        record = SampleRecord.from_dict(row)
    except DiffuseMixError as e:
        raise RecordError(f"is not a diffusemix record ({e})", field=e.field) from None
    root = Path(input_dir)
    path = resolve_in(root, row.get("source"), what="source")
    members = _batch(row, record)
    # 1. every input of the model call, before any work
    sources = {str(m["source"]): resolve_in(root, m["source"], what="batch") for m in members}
    sources.setdefault(record.source, path)
    missing = sorted(src for src, p in sources.items() if not p.is_file())
    if missing:
        raise RecordError(
            f"needs the input image(s) {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''} of the samples"
            f" Î was made with in one model call ({len(members)} in all), and they are not in {root}",
            field="batch", hint="Replay with the export's INPUT folder as it was",
        )
    images = {src: prepare(load_image(p), record.size, resize=record.resize) for src, p in sources.items()}
    ed = editor if editor is not None else editor_from_row(row)
    # 2. the same call again, this sample at its place in it
    if len(members) > 1:
        key = (record.source, record.prompt, record.copy)
        position = next(k for k, m in enumerate(members) if (m["source"], m["prompt"], m["copy"]) == key)
        batch = [(images[str(m["source"])], str(m["prompt"]), int(m["seed"])) for m in members]
        return replay(record, images[record.source], ed, fractals, batch=batch, position=position)
    return replay(record, images[record.source], ed, fractals)


def _batch(row: Mapping[str, Any], record: SampleRecord) -> list[Mapping[str, Any]]:
    """The row's model call, checked: a list of {source, prompt, copy, seed} holding the row's own sample with
    its seed ([] for rows written before calls were recorded: Î is then made alone)."""
    members = row.get("batch")
    if members in (None, []):
        return []
    ok = isinstance(members, list) and all(
        isinstance(m, Mapping) and isinstance(m.get("source"), str) and isinstance(m.get("prompt"), str)
        and schema.is_int(m.get("copy")) and schema.is_int(m.get("seed")) for m in members
    )
    own = [m for m in members if ok and (m["source"], m["prompt"], m["copy"], m["seed"])
           == (record.source, record.prompt, record.copy, record.seed)] if ok else []
    if not ok or len(own) != 1:
        raise RecordError("must list the model call's samples ({source, prompt, copy, seed}), this one once with its"
                          " seed", field="batch", hint="Was the row written by diffusemix?")
    return list(members)
