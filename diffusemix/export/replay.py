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

import dataclasses
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from ..recipe import SampleRecord

if TYPE_CHECKING:  # pragma: no cover
    from ..editors.base import Editor
    from ..engine import Stages
    from ..fractals import FractalSet

__all__ = ["editor_from_row", "replay_row"]


def editor_from_row(row: Mapping[str, Any], *, device: str | None = None) -> "Editor":
    """The editor a row names, with the settings it records (the model loads lazily).

    Raises:
        ValueError: the row names no known editor, or its settings are not JSON.
    """
    from ..editors import Img2ImgSettings, InstructPix2PixSettings, load_editor

    name = str(row.get("editor") or "")
    try:
        described = json.loads(row.get("editor_settings") or "{}")
    except (TypeError, ValueError):
        raise ValueError(f"row {row.get('file_name')!r}: editor_settings is not JSON; was it written by diffusemix?")
    names = {f.name for f in dataclasses.fields(InstructPix2PixSettings)}
    names |= {f.name for f in dataclasses.fields(Img2ImgSettings)}
    names.discard("batch_size")  # how many at once does not change pixels
    settings = {k: v for k, v in described.items() if k in names}
    if name == "preview":
        return load_editor("preview", **settings)
    return load_editor(name, model=described.get("model"), dtype=described.get("dtype"), device=device, **settings)


def replay_row(
    row: Mapping[str, Any],
    input_dir: str | os.PathLike[str],
    fractals: "FractalSet",
    *,
    editor: "Editor | None" = None,
) -> "Stages":
    """The six stages of one exported sample, rebuilt from its row.

    Args:
        row: a row of ``metadata.jsonl``.
        input_dir: the export's INPUT folder (the row's ``source`` is relative to it).
        fractals: the fractal set the export used.
        editor: the editor to use (default: :func:`editor_from_row`).
    """
    from ..engine import replay
    from ..images import load_image, prepare

    record = SampleRecord.from_dict(row)
    image = prepare(load_image(Path(input_dir) / str(row["source"])), record.size, resize=record.resize)  # type: ignore[arg-type]
    return replay(record, image, editor if editor is not None else editor_from_row(row), fractals)
