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

from .cli_parser import build_parser, parse_lam, parse_layouts

__all__ = ["main", "build_parser"]

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
        overrides["layouts"] = parse_layouts(args.layouts)
    if args.lam is not None:
        overrides["lam"] = parse_lam(args.lam)
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
            costs = stored_costs(
                dtype=editor.dtype, vae=s.vae, cache_interval=s.cache_interval, size=recipe.size, device=editor.device
            )
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
