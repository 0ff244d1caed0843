"""The command line's argument parser: every subcommand and its flag groups.

Flags map one-to-one onto the recipe's fields and the editor's settings; they
are checked where those are built (one validation per concept), so this
module only declares them. :mod:`diffusemix.cli` runs the subcommands.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

__all__ = ["build_parser", "parse_lam", "parse_layouts"]

_EDITOR_NAMES = ("auto", "instruct-pix2pix", "img2img", "preview")
_LAYOUTS = "left, right, top, bottom"


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Raw description and epilog; "(default: X)" only where there is a real default."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default not in (None, False, argparse.SUPPRESS) and action.option_strings and "default" not in text:
            text += " (default: %(default)s)"
        return text


def parse_lam(text: str) -> float | tuple[float, float]:
    """``0.2`` or a range ``0.1:0.3`` (λ drawn uniformly per sample)."""
    parts = text.split(":")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise ValueError(f"--lam must be a number such as 0.2 or a range such as 0.1:0.3; got {text!r}") from None
    if len(values) == 1:
        return values[0]
    if len(values) == 2:
        return (values[0], values[1])
    raise ValueError(f"--lam must be a number such as 0.2 or a range such as 0.1:0.3; got {text!r}")


def _batch_size(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer or auto; got {text!r}") from None


def parse_layouts(text: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in text.split(",") if p.strip())


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand (flags map one-to-one onto the recipe and the editor)."""
    parser = argparse.ArgumentParser(
        prog="diffusemix" if Path(sys.argv[0]).name == "diffusemix" else "python -m diffusemix",  # console script
        description="DiffuseMix (CVPR 2024): label-preserving data augmentation with diffusion models.",
    )
    sub = parser.add_subparsers(dest="command", metavar="{export,merge,report,fractals,train,train-compare}")
    sub.required = True

    _add_export(sub)
    _add_other_commands(sub)
    from .train.cli import add_parser as add_train_parsers  # train, train-compare (diffusemix/train/cli.py)

    add_train_parsers(sub)
    return parser


def _add_export(sub: Any) -> None:
    """``export``: the recipe, editor, score and output flag groups."""
    ex = sub.add_parser(
        "export",
        formatter_class=_Formatter,
        help="write an augmented copy of an image dataset (resumable, shardable)",
        description=(
            "Write OUTPUT/<class>/<image>_<prompt>_<copy>.png for every image of INPUT and every prompt, with\n"
            "OUTPUT/metadata.jsonl (load it with datasets.load_dataset('imagefolder', data_dir=OUTPUT)).\n"
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
            "  accelerate launch -m diffusemix export data/train out/train --prompts 'snowy,sunset'"
        ),
    )
    ex.add_argument("input", metavar="INPUT", help="dataset folder: INPUT/<class>/<image> or a flat folder of images")
    ex.add_argument("output", metavar="OUTPUT", help="where the augmented dataset goes (not inside INPUT)")

    _add_recipe_flags(ex)
    _add_editor_flags(ex)
    _add_score_flags(ex)
    _add_output_flags(ex)


def _add_recipe_flags(ex: argparse.ArgumentParser) -> None:
    """The recipe group: the method's settings (defaults from --preset)."""
    from .recipe import PRESETS

    g = ex.add_argument_group("recipe (the method's settings; defaults come from --preset)")
    g.add_argument(
        "--preset", default="paper", choices=sorted(PRESETS), help="starting values for every recipe flag below"
    )
    pr = g.add_mutually_exclusive_group()
    pr.add_argument(
        "--prompts",
        metavar='"A,B"',
        default=None,
        help='comma-separated filter-like prompts, e.g. "snowy,sunset" (default: the preset\'s)',
    )
    pr.add_argument(
        "--prompt-set", metavar="NAME", default=None, help="a named prompt set from the prompts file (e.g. paper)"
    )
    g.add_argument(
        "--prompts-file",
        metavar="YAML",
        default=None,
        help="prompt file for --prompt-set (default: the repository's prompts.yaml)",
    )
    g.add_argument(
        "--prompts-per-image",
        metavar="all|K",
        default=None,
        help="all: every prompt for every image (the authors' code; the dataset grows x prompts); "
        "K: K prompts drawn per image from the seed (1: the paper's text, a dataset the size of the input) "
        "(preset: all)",
    )
    g.add_argument("--size", type=int, metavar="S", default=None, help="output side S in pixels (preset: 256)")
    g.add_argument(
        "--resize",
        choices=("resize", "center-crop"),
        default=None,
        help="how inputs become S x S: plain resize (the paper) or centre crop (preset: resize)",
    )
    g.add_argument(
        "--images-per-prompt",
        type=int,
        metavar="N",
        default=None,
        help="augmented images per (image, prompt) (preset: 1)",
    )
    g.add_argument(
        "--layouts",
        metavar="L1,L2",
        default=None,
        help=f"mask layouts to draw from, named by where the input is kept: {_LAYOUTS} (preset: left,top)",
    )
    g.add_argument(
        "--mask",
        choices=("linspace", "ramp", "binary"),
        default=None,
        help="linspace (the authors' ramp: np.linspace(0, 1, seam) across the seam), ramp (a centred ramp, "
        "seam pixels all mixed) or binary (the paper's equation: a hard edge) (preset: linspace)",
    )
    g.add_argument(
        "--seam", type=int, metavar="PX", default=None, help="ramp width in pixels at the output size (preset: 20)"
    )
    g.add_argument(
        "--arithmetic",
        choices=("reference", "rounded"),
        default=None,
        help="how H and A are computed: reference (the authors' code bit for bit: truncation, A from the uint8 H) "
        "or rounded (float32, rounded to the nearest grey level) (preset: reference)",
    )
    g.add_argument(
        "--lam",
        metavar="λ",
        default=None,
        help="fractal blend weight: a value (0.2) or a range low:high drawn per sample (preset: 0.2)",
    )
    g.add_argument("--seed", type=int, metavar="N", default=None, help="master seed of every random choice (preset: 0)")
    g.add_argument(
        "--fractals", metavar="FOLDER", default=None, help="folder of fractal images (default: assets/fractals)"
    )


def _add_editor_flags(ex: argparse.ArgumentParser) -> None:
    """The editor group: the diffusion model and its speed settings."""
    e = ex.add_argument_group("editor (the diffusion model; settings not given take the editor's defaults)")
    e.add_argument(
        "--editor",
        choices=_EDITOR_NAMES,
        default="auto",
        help="auto: InstructPix2Pix, the paper's model (stops with how to get it when its weights are missing);"
        " preview: weight-free colour filters, not a diffusion model (a preview dataset, on purpose)",
    )
    e.add_argument(
        "--model",
        metavar="ID_OR_FOLDER",
        default=None,
        help="Hugging Face model id or local pipeline folder (default: the editor's model)",
    )
    e.add_argument(
        "--steps", type=int, metavar="N", default=None, help="denoising steps (InstructPix2Pix: 100, img2img: 50)"
    )
    e.add_argument(
        "--guidance-scale",
        type=float,
        metavar="G",
        default=None,
        help="text guidance (InstructPix2Pix: 4, img2img: 7.5)",
    )
    e.add_argument(
        "--image-guidance-scale", type=float, metavar="G", default=None, help="InstructPix2Pix image guidance (1.5)"
    )
    e.add_argument("--strength", type=float, metavar="S", default=None, help="img2img noising strength in [0, 1] (0.5)")
    e.add_argument("--device", metavar="DEV", default=None, help="cuda, cuda:N, mps or cpu (default: best available)")
    e.add_argument(
        "--dtype",
        choices=("float16", "bfloat16", "float32"),
        default=None,
        help="model precision (default: float16 on CUDA, bfloat16 on CPUs with bf16 support (about 2x, approximate),"
        " else float32)",
    )
    e.add_argument(
        "--speed",
        choices=("paper", "fast"),
        default=None,
        help="speed preset for InstructPix2Pix: paper (100 steps, float32 on CPU / float16 on CUDA, exact) or fast"
        " (20 steps, bf16/fp16, cache interval 3, tiny VAE: about 24x faster on CPU; its images differ from the"
        " paper's settings); flags given explicitly win",
    )
    e.add_argument(
        "--cache-interval",
        type=int,
        metavar="N",
        default=None,
        help="DeepCache: recompute the UNet's deep features every N steps (1 = off; approximate)",
    )
    e.add_argument("--vae", choices=("full", "tiny"), default=None, help="tiny: AutoencoderTiny (TAESD; approximate)")
    e.add_argument(
        "--tiny-vae", metavar="ID_OR_FOLDER", default=None, help="the tiny VAE's Hub id or folder (madebyollin/taesd)"
    )
    e.add_argument(
        "--compile",
        action="store_true",
        default=None,
        help="torch.compile the UNet (minutes of compiling, more memory; pays only for long exports)",
    )
    e.add_argument(
        "--calibrate",
        action="store_true",
        help="with --dry-run: load the model and time a few steps here for the time estimate",
    )
    e.add_argument(
        "--no-tune-allocator",
        action="store_true",
        help="leave glibc's allocator as it is (by default freed memory stays in the process: 1.15-1.25x on CPU;"
        " also DIFFUSEMIX_MALLOPT=0)",
    )
    e.add_argument(
        "--max-retries",
        type=int,
        metavar="N",
        default=None,
        help="times a blank generated image is remade with a new seed before it is reported (2)",
    )


def _add_score_flags(ex: argparse.ArgumentParser) -> None:
    """The scores group: does Î keep the label?"""
    sc = ex.add_argument_group("scores: does Î keep the label? (needs scorer weights)")
    sc.add_argument(
        "--score",
        choices=("dino", "clip", "clip-label", "auto"),
        default=None,
        help="score each Î against its I and write the score into its manifest row: dino (DINOv2 cosine),"
        " clip (CLIP image cosine), clip-label (CLIP zero-shot probability of the true class among the class"
        " names), auto (dino, else clip, if the weights are there; otherwise no scores, said plainly)",
    )
    sc.add_argument(
        "--scorer-model",
        metavar="ID_OR_FOLDER",
        default=None,
        help="Hugging Face id or local folder of the scorer"
        " (default facebook/dinov2-small, openai/clip-vit-base-patch32)",
    )
    sc.add_argument(
        "--min-similarity",
        type=float,
        metavar="X",
        default=None,
        help="a Î scoring below X counts like a blank one: remade with a new recorded seed up to --max-retries,"
        " then dropped and listed in errors.jsonl with its score (GenMix keeps DINO >= 0.7, DiffCoRe-Mix CLIP > 0.6)",
    )
    sc.add_argument(
        "--max-label-rank",
        type=int,
        metavar="K",
        default=None,
        help="with --score clip-label: a Î whose true class is not among CLIP's top K class names"
        " counts like a blank one",
    )
    sc.add_argument(
        "--label-template",
        metavar="TEXT",
        default=None,
        help="clip-label's text for each class name, with {} for the name (default 'a photo of a {}')",
    )


def _add_output_flags(ex: argparse.ArgumentParser) -> None:
    """The output-and-running group."""
    o = ex.add_argument_group("output and running")
    o.add_argument(
        "--format",
        choices=("png", "jpeg", "bmp"),
        default=None,
        help="file format: png (an export's default), jpeg, or bmp (uncompressed; a cache's default)",
    )
    o.add_argument("--quality", type=int, metavar="Q", default=95, help="JPEG quality 1..100")
    o.add_argument(
        "--save-stages",
        action="store_true",
        help="also write I, Î, M, H, F as PNG to OUTPUT/stages/<stage>/<class>/<file>",
    )
    o.add_argument(
        "--cache",
        action="store_true",
        help="make a cache for training instead: only I (OUTPUT/inputs/) and Î, no mixing; "
        "diffusemix.data.DiffuseMixDataset re-mixes A from it every epoch",
    )
    o.add_argument(
        "--reuse-generated",
        action="store_true",
        help="read Î from OUTPUT/stages/generated where saved instead of running the editor "
        "(also allows re-mixing with new mask/λ/fractal settings)",
    )
    o.add_argument(
        "--shard",
        metavar="I/N",
        default=None,
        help="do only shard I of N (0-based); shards never write the same file and merge when all finish",
    )
    o.add_argument(
        "--batch-size",
        type=_batch_size,
        metavar="N|auto",
        default=None,
        help="samples per editor call (default 8), or auto (from free memory; 32 on a large GPU at 256 px)",
    )
    o.add_argument(
        "--workers", type=int, metavar="N", default=2, help="CPU threads for decoding and for mixing/encoding/writing"
    )
    o.add_argument(
        "--dry-run",
        action="store_true",
        help="print which editor would run (model, device, dtype), how many images it would make and the disk"
        " estimate; load no model, write nothing",
    )
    o.add_argument("--no-progress", action="store_true", help="no progress bar (the summary is still printed)")


def _add_other_commands(sub: Any) -> None:
    """``merge``, ``report`` and ``fractals``."""
    # -- merge ----------------------------------------------------------------
    mg = sub.add_parser(
        "merge",
        formatter_class=_Formatter,
        help="merge the shards' rows into OUTPUT/metadata.jsonl",
        description="Merge the journals of every shard of an export into OUTPUT/metadata.jsonl (done automatically "
        "when the last shard finishes).",
    )
    mg.add_argument("output", metavar="OUTPUT", help="the export's output folder")

    # -- report ---------------------------------------------------------------
    rp = sub.add_parser(
        "report",
        formatter_class=_Formatter,
        help="which prompts keep the label: a picture and a table of a scored export",
        description="Read a scored export (--score) and draw, per prompt x class, the mean score and share of Î"
        " kept, the score distribution per prompt, and a contact sheet of the lowest-scoring Î (needs"
        " --save-stages); write report.png and report.txt and print the table.",
    )
    rp.add_argument("output", metavar="OUT", help="the export's output folder")
    rp.add_argument("--out", metavar="PNG", default=None, help="where the picture goes (default OUT/report.png)")
    rp.add_argument("--lowest", type=int, metavar="N", default=8, help="Î in the contact sheet (1..32)")

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
    fr.add_argument("--seed", type=int, metavar="N", default=0, help="master seed")




# ---------------------------------------------------------------------------
# export
# ---------------------------------------------------------------------------
