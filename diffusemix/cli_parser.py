"""The command line's argument parser: every subcommand and its flag groups.

The flags of the settings are generated from their dataclasses' fields
(:func:`diffusemix.schema.add_flags`): ``Recipe``, ``EditorSpec``,
``ScorerSpec`` with ``ScoreRule``, and ``ExportOptions``, help text and choices
included. Only flags that are not settings (``--preset``, ``--prompt-set``,
``--fractals``, ``--dry-run``, ...) are written here. Values are checked where
the dataclasses are built (one validation per concept); :mod:`diffusemix.cli`
runs the subcommands.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

from .schema import add_flags

__all__ = ["build_parser"]


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Raw description and epilog; "(default: X)" only where there is a real default."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default not in (None, False, argparse.SUPPRESS) and action.option_strings and "default" not in text:
            text += " (default: %(default)s)"
        return text


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="diffusemix" if Path(sys.argv[0]).name == "diffusemix" else "python -m diffusemix",  # console script
        description="DiffuseMix (CVPR 2024): label-preserving data augmentation with diffusion models.",
    )
    sub = parser.add_subparsers(
        dest="command",
        metavar="{export,app,merge,report,fractals,train,train-compare,tiny-models,space-deploy}",
    )
    sub.required = True

    _add_export(sub)
    _add_other_commands(sub)
    from .space import add_parser as add_space_parser  # space-deploy (diffusemix/space.py)
    from .tiny_models import add_parser as add_tiny_parser  # tiny-models (diffusemix/tiny_models.py)
    from .train.cli import add_parser as add_train_parsers  # train, train-compare (diffusemix/train/cli.py)

    add_train_parsers(sub)
    add_tiny_parser(sub)
    add_space_parser(sub)
    return parser


def _add_export(sub: Any) -> None:
    """``export``: the recipe, editor, score and output flag groups."""
    from .export.folder import MANIFEST_NAME

    ex = sub.add_parser(
        "export",
        formatter_class=_Formatter,
        help="write an augmented copy of an image dataset (resumable, shardable)",
        description=(
            "Write OUTPUT/images/<class>/<image>_<prompt>_<copy>.png for every image of INPUT and every prompt\n"
            f"(torchvision's ImageFolder reads OUTPUT/images), with OUTPUT/{MANIFEST_NAME} and a dataset card\n"
            "(datasets.load_dataset(OUTPUT) reads it: every column, label as a ClassLabel).\n"
            "INPUT is INPUT/<class>/<image> (class folders, as torchvision's ImageFolder) or a flat folder of\n"
            "images (one label: the folder's name). Every augmented image keeps the label of its source.\n\n"
            "Re-running the same command resumes: finished images are skipped, a killed run leaves no partial\n"
            "file. Recipe flags not given take the preset's values; editor flags not given take the editor's\n"
            "defaults. Under `accelerate launch` each process takes its shard (and GPU) automatically."
        ),
        epilog=(
            "examples:\n"
            "  python -m diffusemix export data/train out/train --prompt-set paper --dry-run\n"
            "  python -m diffusemix export data/train out/train --preset quick --editor preview --save-stages\n"
            "  python -m diffusemix export data/train out/train --shard 0/2   # and --shard 1/2 elsewhere\n"
            "  python -m diffusemix export data/train cache/train --cache     # I and Î only, for training\n"
            "  python -m diffusemix export data/coco out/coco --task detect   # COCO/YOLO boxes ride along\n"
            "  accelerate launch -m diffusemix export data/train out/train --prompts 'snowy,sunset'"
        ),
    )
    ex.add_argument("input", metavar="INPUT", help="dataset folder: INPUT/<class>/<image> or a flat folder of images")
    ex.add_argument("output", metavar="OUTPUT", help="where the augmented dataset goes (not inside INPUT)")

    _add_recipe_flags(ex)
    _add_editor_flags(ex)
    _add_score_flags(ex)
    _add_annotation_flags(ex)
    _add_output_flags(ex)


def _shown(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return ",".join(map(str, value))
    return str(value)


def _add_recipe_flags(ex: argparse.ArgumentParser) -> None:
    """The recipe group: the method's settings (defaults from --preset)."""
    from .recipe import PRESETS, Recipe

    g = ex.add_argument_group("recipe (the method's settings; defaults come from --preset)")
    g.add_argument(
        "--preset", default="paper", choices=sorted(PRESETS), help="starting values for every recipe flag below"
    )
    paper = PRESETS["paper"]

    def note(f: dataclasses.Field) -> str:
        return f"the preset's; paper: {_shown(getattr(paper, f.name))}"

    add_flags(g, Recipe, default_note=note)
    g.add_argument(
        "--prompt-set", metavar="NAME", default=None,
        help="a named prompt set from the prompts file (e.g. paper), instead of --prompts",
    )
    g.add_argument(
        "--prompts-file", metavar="YAML", default=None,
        help="prompt file for --prompt-set (default: the repository's prompts.yaml)",
    )
    g.add_argument(
        "--fractals", metavar="FOLDER", default=None, help="folder of fractal images (default: assets/fractals)"
    )


def _add_editor_flags(ex: argparse.ArgumentParser) -> None:
    """The editor group: the diffusion model and its speed settings."""
    from .editors import EDITORS, EditorSpec

    e = ex.add_argument_group("editor (the diffusion model; settings not given take the editor's defaults)")

    def note(f: dataclasses.Field) -> str | None:
        if f.name == "name":
            return "auto"
        per: dict[str, list[str]] = {}  # each default once, with the editors that have it
        for name, cls in EDITORS.items():
            if f.name in cls.defaults:
                value = cls.defaults[f.name]
                text = repr(value) if isinstance(value, str) and (" " in value or not value) else _shown(value)
                per.setdefault(text, []).append(name)
        return "; ".join(f"{', '.join(names)}: {text}" for text, names in per.items()) or None

    add_flags(e, EditorSpec, default_note=note)
    e.add_argument(
        "--calibrate", action="store_true",
        help="with --dry-run: load the model and time a few steps here for the time estimate",
    )
    e.add_argument(
        "--no-tune-allocator", action="store_true",
        help="leave glibc's allocator as it is (by default freed memory stays in the process: 1.15-1.25x on CPU;"
        " also DIFFUSEMIX_MALLOPT=0)",
    )


def _add_score_flags(ex: argparse.ArgumentParser) -> None:
    """The scores group: does Î keep the label?"""
    from .scoring import ScoreRule, ScorerSpec

    sc = ex.add_argument_group("scores: does Î keep the label? (needs scorer weights)")
    add_flags(sc, ScorerSpec, default_note=lambda f: "no scores" if f.name == "name" else None)
    add_flags(sc, ScoreRule)


def _add_annotation_flags(ex: argparse.ArgumentParser) -> None:
    """The annotations group: detection and segmentation datasets (COCO, YOLO, image/mask pairs)."""
    from .annotations.export_step import AnnotationOptions

    an = ex.add_argument_group(
        "annotations (--task detect|segment: INPUT is a COCO, YOLO or images/ + masks/ dataset; its objects ride"
        " along and are written in its format beside A)"
    )
    add_flags(an, AnnotationOptions)


def _add_output_flags(ex: argparse.ArgumentParser) -> None:
    """The output-and-running group."""
    from .export import ExportOptions

    o = ex.add_argument_group("output and running")
    add_flags(o, ExportOptions, default_note=lambda f: "png, a cache: bmp" if f.name == "format" else None)
    o.add_argument(
        "--dry-run", action="store_true",
        help="print which editor would run (model, device, dtype), how many images it would make and the disk"
        " estimate; load no model, write nothing",
    )
    o.add_argument("--no-progress", action="store_true", help="no progress bar (the summary is still printed)")


def _add_other_commands(sub: Any) -> None:
    """``merge``, ``report`` and ``fractals``."""
    from .export.folder import MANIFEST_NAME
    from .limits import MAX_SEED

    # -- app ------------------------------------------------------------------
    ap = sub.add_parser(
        "app", add_help=False, help="run the web app (needs the app extra: pip install 'diffusemix[app]')",
        description="Run the Gradio app; every argument goes to it (`diffusemix app --help` lists them).",
    )
    ap.add_argument("app_args", nargs="*", help=argparse.SUPPRESS)  # main() hands them over before parsing

    # -- merge ----------------------------------------------------------------
    mg = sub.add_parser(
        "merge",
        formatter_class=_Formatter,
        help=f"merge the shards' rows into OUTPUT/{MANIFEST_NAME}",
        description=f"Merge the journals of every shard of an export into OUTPUT/{MANIFEST_NAME} (done automatically "
        "when the last shard finishes).",
    )
    mg.add_argument("output", metavar="OUTPUT", help="the export's output folder")

    # -- report ---------------------------------------------------------------
    rp = sub.add_parser(
        "report",
        formatter_class=_Formatter,
        help="which prompts (or editors) keep the label: a picture and a table of a scored export, or of several",
        description="Read a scored export (--score) and draw, per prompt x class, the mean score and share of Î"
        " kept, the score distribution per prompt, and a contact sheet of the lowest-scoring Î (needs"
        " --save-stages); write report.png and report.txt and print the table.\n\nGiven two or more exports"
        " (e.g. the same input and recipe with --editor instruct-pix2pix and --editor flux2-klein), compare their"
        " editors instead: per prompt, the Î made, blank and dropped and the mean score of each, and the same"
        " samples side by side (from the saved stages or a cache); write compare-editors.png and .txt into the"
        " first.",
    )
    rp.add_argument("output", metavar="OUT", nargs="+", help="the export's output folder (two or more: compare them)")
    rp.add_argument("--out", metavar="PNG", default=None,
                    help="where the picture goes (default OUT/report.png; comparing: OUT1/compare-editors.png)")
    rp.add_argument("--lowest", type=int, metavar="N", default=None,
                    help="Î in the contact sheet (1..32; default 8; comparing: the samples side by side, default 6)")

    # -- fractals -------------------------------------------------------------
    fr = sub.add_parser(
        "fractals",
        formatter_class=_Formatter,
        help="generate a folder of fractal images",
        description="Write COUNT colourful fractal images (IFS, flames, Mandelbrot, Julia, Newton) as PNG; "
        "the same arguments give the same files.",
    )
    fr.add_argument("out", metavar="OUT", help="folder to write the fractals into")
    fr.add_argument("--count", type=int, metavar="N", default=64, help="how many images")
    fr.add_argument("--size", type=int, metavar="PX", default=256, help="side in pixels")
    fr.add_argument("--seed", type=int, metavar="N", default=0, help=f"master seed (0..{MAX_SEED})")
