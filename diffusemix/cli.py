"""``python -m diffusemix``: export, merge, report and fractals subcommands.

A thin shell: flags are parsed here and handed to :mod:`diffusemix.export`,
:mod:`diffusemix.editors` and :mod:`diffusemix.fractals`; no maths, no model
code. Flags that are not given fall back to the preset's values (recipe) or
to the editor's defaults (editor settings).

Exit status: 0 on success, 2 for a usage or validation error (one line on
stderr, ``error: ...``), 1 for an error while writing, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any, Sequence

__all__ = ["main", "build_parser"]

_EDITOR_NAMES = ("auto", "instruct-pix2pix", "img2img", "preview")
_LAYOUTS = "left, right, top, bottom"


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Raw description and epilog; "(default: X)" only where there is a real default."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default not in (None, False, argparse.SUPPRESS) and action.option_strings and "default" not in text:
            text += " (default: %(default)s)"
        return text


def _lam(text: str) -> float | tuple[float, float]:
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


def _layouts(text: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in text.split(",") if p.strip())


def build_parser() -> argparse.ArgumentParser:
    from .recipe import PRESETS

    parser = argparse.ArgumentParser(
        prog="diffusemix" if Path(sys.argv[0]).name == "diffusemix" else "python -m diffusemix",  # console script
        description="DiffuseMix (CVPR 2024): label-preserving data augmentation with diffusion models.",
    )
    sub = parser.add_subparsers(dest="command", metavar="{export,merge,fractals}")
    sub.required = True

    # -- export ---------------------------------------------------------------
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
    return parser


# ---------------------------------------------------------------------------
# export
# ---------------------------------------------------------------------------


def _flagify(message: str) -> str:
    """``Recipe.images_per_prompt must ...`` → ``--images-per-prompt must ...``."""
    return re.sub(
        r"\b(?:Recipe|ExportOptions)\.(\w+)",
        lambda m: "--" + m.group(1).replace("_", "-").replace("shard-index", "shard").replace("shard-count", "shard"),
        message,
    )


def _recipe(args: argparse.Namespace):
    from .recipe import get_preset

    overrides: dict[str, Any] = {}
    if args.prompts is not None:
        from .prompts import parse_prompt_list

        overrides["prompts"] = parse_prompt_list(args.prompts)
    elif args.prompt_set is not None or args.prompts_file is not None:
        from .prompts import load_prompts

        overrides["prompts"] = load_prompts(args.prompts_file).get(args.prompt_set)
    if args.prompts_per_image is not None:
        text = args.prompts_per_image.strip()
        overrides["prompts_per_image"] = int(text) if text.isdigit() else text
    for name in ("size", "resize", "images_per_prompt", "mask", "seam", "seed", "arithmetic"):
        value = getattr(args, name)
        if value is not None:
            overrides[name] = value
    if args.layouts is not None:
        overrides["layouts"] = _layouts(args.layouts)
    if args.lam is not None:
        overrides["lam"] = _lam(args.lam)
    if args.mask == "binary" and args.seam is None:
        overrides["seam"] = 0
    return get_preset(args.preset, **overrides)


def _options(args: argparse.Namespace, shard: tuple[int, int]):
    from .export import ExportOptions

    kw: dict[str, Any] = dict(
        format=args.format,
        quality=args.quality,
        save_stages=args.save_stages,
        reuse_generated=args.reuse_generated,
        cache=args.cache,
        shard_index=shard[0],
        shard_count=shard[1],
        workers=args.workers,
    )
    if args.batch_size == "auto":  # chunks of the export; the editor picks its batch inside each
        kw["batch_size"] = 32 if str(args.device or "").startswith("cuda") or _has_cuda() else 8
    elif args.batch_size is not None:
        kw["batch_size"] = args.batch_size
    return ExportOptions(**kw)


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


_DIFFUSION_FLAGS = {
    "steps": "--steps",
    "guidance_scale": "--guidance-scale",
    "image_guidance_scale": "--image-guidance-scale",
    "strength": "--strength",
}


def _editor_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The editor settings the flags ask for, checked now (before a dry run or any work):
    flags that the chosen editor does not have are errors, never dropped silently."""
    from .editors import Img2ImgSettings, InstructPix2PixSettings

    settings: dict[str, Any] = dict(
        steps=args.steps,
        guidance_scale=args.guidance_scale,
        image_guidance_scale=args.image_guidance_scale,
        strength=args.strength,
        max_retries=args.max_retries,
        batch_size=args.batch_size,
        cache_interval=args.cache_interval,
        vae=args.vae,
        tiny_vae_model=args.tiny_vae,
        compile=args.compile,
    )
    levers = {"cache_interval": "--cache-interval", "vae": "--vae", "tiny_vae_model": "--tiny-vae"}
    levers.update(compile="--compile")
    if args.speed is not None and args.editor not in ("auto", "instruct-pix2pix"):
        raise ValueError(f"--speed is a preset of InstructPix2Pix; --editor {args.editor} has none")
    if args.editor == "preview":
        given = [flag for key, flag in _DIFFUSION_FLAGS.items() if settings[key] is not None]
        given += [flag for key, flag in levers.items() if settings[key] is not None]
        given += [f for f, v in (("--model", args.model), ("--dtype", args.dtype)) if v is not None]
        if args.device not in (None, "cpu"):
            given.append("--device")
        if given:
            raise ValueError(
                f"{', '.join(given)} {'is a setting' if len(given) == 1 else 'are settings'} of the diffusion"
                " editors; --editor preview (weight-free filters) has none. Drop them, or choose"
                " --editor instruct-pix2pix or img2img."
            )
        return {"max_retries": args.max_retries}
    if args.editor == "img2img":
        if settings["image_guidance_scale"] is not None:
            raise ValueError("--image-guidance-scale is an InstructPix2Pix setting; img2img has none")
        given = [flag for key, flag in levers.items() if settings[key] is not None]
        if given:
            raise ValueError(f"{', '.join(given)}: speed settings of InstructPix2Pix only; img2img has none")
        for key in ("image_guidance_scale", *levers):
            settings.pop(key)
        cls: type = Img2ImgSettings
    else:  # instruct-pix2pix, or auto (which tries it first)
        if settings["strength"] is not None:
            raise ValueError("--strength is an img2img setting; InstructPix2Pix has no strength")
        settings.pop("strength")
        if args.speed is not None:  # the preset's values, under the flags given explicitly
            from .editors.speed import SPEED_PRESETS

            for key, value in SPEED_PRESETS[args.speed].items():
                if settings.get(key) is None:
                    settings[key] = value
        cls = InstructPix2PixSettings
    cls(**{k: v for k, v in settings.items() if v is not None})  # the values' own checks, now
    return settings


def _editor_lines(args: argparse.Namespace, device: str | None, settings: dict[str, Any]) -> list[str]:
    """The dry run's words on the editor: what would run, and whether its weights are here (nothing loaded)."""
    from .editors import load_editor, weights_note

    name = "instruct-pix2pix" if args.editor == "auto" else args.editor  # auto loads eagerly; this does not
    editor = load_editor(name, model=args.model, device=device, dtype=args.dtype, **settings)
    lines = [f"  editor:   {editor.describe().get('summary') or editor.name}"]
    note = weights_note(editor)
    if note:
        lines.append(f"  weights:  {note}")
    return lines


def _cost_line(args: argparse.Namespace, device: str | None, settings: dict[str, Any], plan: Any, recipe: Any) -> str:
    """The dry run's time and memory estimate (diffusion editors): calibrated here with
    --calibrate, else from the stored full-size CPU measurement (which it says)."""
    if args.editor in ("preview", "img2img"):
        return ""
    from .cost import calibrate, estimate, stored_costs
    from .editors import load_editor

    editor = load_editor("instruct-pix2pix", model=args.model, device=device, dtype=args.dtype, **settings)
    s = editor.settings
    pairs = plan.samples - plan.already_done
    batch = s.batch_size if isinstance(s.batch_size, int) else 1
    if args.calibrate:
        from .runtime import setup_process

        setup_process(tune_memory=False if args.no_tune_allocator else None)
        costs = calibrate(editor, size=recipe.size)
    else:
        try:
            costs = stored_costs(dtype=editor.dtype, vae=s.vae, cache_interval=s.cache_interval, size=recipe.size)
        except ValueError as e:
            return f"  cost:     {e} (--calibrate)"
    return f"  cost:     {estimate(pairs, steps=s.steps, costs=costs, batch_size=batch)}"


def _run_export(args: argparse.Namespace) -> int:
    from .export import detect_shard, export_dataset, parse_shard, plan_export

    # 1. the settings (every check before any work)
    recipe = _recipe(args)
    device = args.device
    if args.shard is not None:
        shard = parse_shard(args.shard)
    else:
        found = detect_shard()
        shard = (0, 1) if found is None else (found[0], found[1])
        if found is not None and device is None and args.editor != "preview":
            device = found[2]
    options = _options(args, shard)
    settings = _editor_settings(args)
    rule = _score_rule(args)
    if args.speed is not None and args.dtype is None:
        from .editors._diffusers_common import resolve_device
        from .editors.speed import preset_dtype

        args.dtype = preset_dtype(args.speed, resolve_device(device))
    if args.calibrate and not args.dry_run:
        raise ValueError("--calibrate goes with --dry-run (it times a few steps for the estimate)")
    plan = plan_export(args.input, args.output, recipe=recipe, options=options)  # checks folders, writes nothing
    if args.dry_run:
        print(plan)
        print("\n".join(_editor_lines(args, device, settings)))
        line = _cost_line(args, device, settings, plan, recipe)
        if line:
            print(line)
        return 0
    from .runtime import setup_process

    setup_process(tune_memory=False if args.no_tune_allocator else None)
    from .fractals import FractalSet

    fractals = FractalSet.default() if args.fractals is None else FractalSet.from_folder(args.fractals)

    # 2. the editor, loaded now: a model that cannot be loaded stops the run
    #    (exit 2, saying how to get it) before anything is written to OUTPUT
    from .editors import load_editor

    editor = load_editor(args.editor, model=args.model, device=device, dtype=args.dtype, **settings)
    editor.load()
    print(
        f"exporting {plan.samples - plan.already_done} image(s) from {plan.images} input image(s) "
        f"with {editor.describe().get('summary', editor.name)}",
        file=sys.stderr,
    )

    scorer = _scorer(args, editor, rule)

    # 3. run
    summary = export_dataset(
        args.input,
        args.output,
        recipe=recipe,
        editor=editor,
        fractals=fractals,
        options=options,
        progress_bar=not args.no_progress,
        scorer=scorer,
        score_rule=rule,
    )
    print(summary)
    return 0


def _score_rule(args: argparse.Namespace):
    """The --min-similarity / --max-label-rank rule, checked before any work."""
    from .scoring import ScoreRule

    rule = ScoreRule(min_score=args.min_similarity, max_rank=args.max_label_rank)
    if args.score is None:
        given = [f for f, v in (("--min-similarity", args.min_similarity), ("--max-label-rank", args.max_label_rank),
                                ("--scorer-model", args.scorer_model), ("--label-template", args.label_template))
                 if v is not None]
        if given:
            raise ValueError(f"{', '.join(given)} need{'s' if len(given) == 1 else ''} --score dino|clip|clip-label")
    if args.max_label_rank is not None and args.score != "clip-label":
        raise ValueError("--max-label-rank needs --score clip-label (the other scorers give no rank)")
    if args.label_template is not None and args.score != "clip-label":
        raise ValueError("--label-template is a setting of --score clip-label")
    return rule


def _scorer(args: argparse.Namespace, editor: Any, rule: Any):
    """The scorer --score asks for, loaded now on the editor's device (fail before any work), or None."""
    if args.score is None:
        return None
    from .scoring import DEFAULT_TEMPLATE, load_scorer

    classes: tuple[str, ...] = ()
    if args.score == "clip-label":
        from .export import scan_input

        classes = scan_input(args.input).classes
    scorer = load_scorer(
        args.score,
        model=args.scorer_model,
        device=getattr(editor, "device", None),
        class_names=classes,
        template=args.label_template or DEFAULT_TEMPLATE,
    )
    if not scorer.available:
        if rule.active:
            notice = getattr(scorer, "notice", "no scorer")
            raise ValueError(f"--min-similarity / --max-label-rank need scores, and there are none: {notice}")
        print(f"note: {scorer.notice}", file=sys.stderr)  # type: ignore[attr-defined]
        return None
    scorer.load()  # type: ignore[attr-defined]
    return scorer


def _run_merge(args: argparse.Namespace) -> int:
    from .export import merge_manifests
    from .export.manifest import collect

    path = merge_manifests(args.output)
    rows, errors, pending = collect(Path(args.output))
    print(
        f"wrote {path} ({len(rows)} rows" + (f", {len(errors)} errors listed in errors.jsonl" if errors else "") + ")"
    )
    if pending is None:
        print("note: no shard has finished yet; metadata.jsonl holds the images made so far", file=sys.stderr)
    elif pending:
        print(
            "note: shards " + ", ".join(f"{i}/{n}" for i, n in pending) + " have not finished; run them "
            "(the same command with their --shard) and merge again",
            file=sys.stderr,
        )
    return 0


def _run_report(args: argparse.Namespace) -> int:
    from .report import write_report

    png, txt, text = write_report(args.output, args.out, lowest=args.lowest)
    print(text, end="")
    print(f"wrote {png} and {txt}")
    return 0


def _run_fractals(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from .fractals import write_fractal_set

    with tqdm(total=args.count, unit="img", desc="fractals", disable=None) as bar:
        paths = write_fractal_set(
            args.out,
            count=args.count,
            size=args.size,
            seed=args.seed,
            progress=lambda done, total: bar.update(done - bar.n),
        )
    print(f"wrote {len(paths)} fractal image(s) to {args.out}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    command = {"export": _run_export, "merge": _run_merge, "report": _run_report, "fractals": _run_fractals}[
        args.command
    ]
    try:
        return command(args)
    except KeyboardInterrupt:
        if args.command == "export":
            print(
                "\ninterrupted: finished images are kept; run the same command again to resume where it stopped",
                file=sys.stderr,
            )
        else:
            print("\ninterrupted", file=sys.stderr)
        return 130
    except ValueError as e:  # DiffuseMixError and every validation error
        print(f"error: {_flagify(str(e))}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
