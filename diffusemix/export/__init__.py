"""Batch export: a label-preserving augmented copy of an image dataset.

scan → plan → run → write → collect, streaming, one module a step:

1. :mod:`.scan` finds the images: ``INPUT/<class>/.../<image>`` as
   torchvision's ImageFolder reads it, or a flat folder with one label.
   :mod:`.checks` refuses unusable input and output folders before any work.
2. :mod:`.plan` lists every (image, prompt, copy) in a fixed order; sample
   ``k`` belongs to shard ``k % N``. :func:`plan_export` is the dry run.
   :mod:`.naming` gives each sample its output file name.
3. :mod:`.stream` cuts the shard's samples into fixed chunks of
   ``batch_size``, skips finished ones, decodes ahead on worker threads and
   calls the editor once per chunk, with a bounded number of chunks in flight.
4. :mod:`.writer` mixes, encodes and writes each sample atomically and appends
   its row to the shard's journal last. :mod:`.settings` keeps the settings
   an output folder was made with (run.json).
5. :mod:`.manifest` merges the journals into the folder's manifest in plan
   order when every shard has finished; :mod:`.summary` reports the run.

:mod:`.folder` alone knows the output folder's layout: every step, the
cache reader, the report and the app read and write it through that module.
   :mod:`.replay` rebuilds any image from its row alone.

:func:`export_dataset` (in :mod:`.run`) calls these steps in order. The
command line (``python -m diffusemix export``) is a thin shell over
:func:`plan_export` and :func:`export_dataset`.
"""

from __future__ import annotations

from . import folder
from .manifest import merge_manifests
from .naming import prompt_slugs
from .options import FORMATS, ExportOptions, detect_shard, parse_shard
from .plan import ExportPlan, plan_export
from .replay import editor_from_row, replay_row
from .run import export_dataset
from .scan import ImageEntry, InputScan, scan_input
from .summary import ExportSummary

__all__ = [
    "folder",
    "ExportOptions",
    "ExportPlan",
    "ExportSummary",
    "InputScan",
    "ImageEntry",
    "FORMATS",
    "scan_input",
    "plan_export",
    "export_dataset",
    "merge_manifests",
    "detect_shard",
    "parse_shard",
    "prompt_slugs",
    "editor_from_row",
    "replay_row",
]
