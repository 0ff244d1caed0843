"""Checks made before any work, shared by the plan (--dry-run) and the export."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import DiffuseMixError
from . import folder
from .scan import InputScan, hidden


def check_reserved(scan: InputScan, *, cache: bool = False, originals: bool = False) -> None:
    reserved = folder.reserved_names(cache=cache, originals=originals)
    for entry in scan.entries:
        top = entry.out_stem.split("/")[0].casefold()
        if top in reserved and "/" in entry.out_stem:
            raise DiffuseMixError(
                f"would clash with the {'cache' if cache else 'export'}'s own {top!r}", field=f"class folder {top!r}",
                hint="Rename that class folder",
            )


def check_folders(input_dir: Path, output_dir: Path) -> None:
    inp = input_dir.resolve()
    out = output_dir.resolve()
    if out == inp:
        raise DiffuseMixError(f"output folder {output_dir} is the input folder; choose another output folder")
    if inp in out.parents:
        raise DiffuseMixError(
            f"output folder {output_dir} is inside the input folder {input_dir}; its images would be read "
            "back as input. Choose an output folder outside the input"
        )
    if out.exists() and not out.is_dir():
        raise DiffuseMixError(f"output {output_dir} exists and is a file; choose a folder")
    # the nearest existing ancestor must be writable
    probe = out
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise DiffuseMixError(f"output folder {output_dir} cannot be created: {probe} is a file, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise DiffuseMixError(f"output folder {output_dir} cannot be written ({probe} is not writable)")


def check_foreign_output(output_dir: Path) -> None:
    """Refuse a non-empty folder that diffusemix did not make (its files could be overwritten)."""
    if not output_dir.is_dir() or folder.has_settings(output_dir):
        return
    foreign = [c.name for c in os.scandir(output_dir) if not hidden(c.name) and c.name != folder.STAGES_DIR]
    if foreign:
        raise DiffuseMixError(
            f"output folder {output_dir} is not empty and was not made by diffusemix export "
            f"(it holds {', '.join(sorted(foreign)[:3])}{', ...' if len(foreign) > 3 else ''}); "
            "choose a new or empty folder"
        )
