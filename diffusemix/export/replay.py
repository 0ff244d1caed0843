"""Replay an exported image from its manifest row alone.

A row of ``metadata.jsonl`` holds everything that made its image: the source
file, how it was brought to S x S (``resize``, ``size``), the prompt and the
editor's seed, the editor and its settings, the mask (``layout``, ``mask``,
``seam``), the fractal and λ, and the ``arithmetic``. With the input folder
and the fractal folder, :func:`replay_row` rebuilds the six stages; the
augmented image equals the exported file's pixels (with the same editor on
the same kind of device: diffusion models are only reproducible there).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from ..errors import DiffuseMixError, RecordError
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
        input_dir: the export's INPUT folder (the row's ``source`` is relative to it).
        fractals: the fractal set the export used.
        editor: the editor to use (default: :func:`editor_from_row`).

    Raises:
        RecordError: a row without the record's fields, or whose ``source`` leaves ``input_dir``.
    """
    from ..engine import replay
    from ..images import load_image, prepare

    try:
        record = SampleRecord.from_dict(row)
    except DiffuseMixError as e:
        raise RecordError(f"is not a diffusemix record ({e})", field=e.field) from None
    path = resolve_in(Path(input_dir), row.get("source"), what="source")
    image = prepare(load_image(path), record.size, resize=record.resize)  # type: ignore[arg-type]
    return replay(record, image, editor if editor is not None else editor_from_row(row), fractals)
