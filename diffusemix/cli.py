"""``python -m diffusemix``: export, merge, report and fractals subcommands.

A thin shell: the flags are read into the settings dataclasses (``Recipe``,
``EditorSpec``, ``ScorerSpec`` and ``ScoreRule``, ``ExportOptions``) and
handed to :mod:`diffusemix.export`, :mod:`diffusemix.editors` and
:mod:`diffusemix.fractals`; no maths, no model code. Recipe flags that are not
given fall back to the preset's values, editor flags to the editor's defaults.

Exit status: 0 on success; 2 for a user's mistake (a :class:`DiffuseMixError`:
one line on stderr, ``error: ...``, naming the flag); 1 for an error of the
machine (a disk, a permission: one line) or an internal error (a bug: the
traceback, then a line saying so); 130 when interrupted.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from pathlib import Path
from typing import Any, Sequence

from .cli_parser import build_parser
from .errors import DiffuseMixError, SettingError

__all__ = ["main", "build_parser", "format_error"]


def format_error(e: DiffuseMixError) -> str:
    """A user error in the command line's words: a setting is named by its flag."""
    from .schema import flag_for

    return e.message(namer=flag_for) if e.owner and e.field else e.message()


# ---------------------------------------------------------------------------
# the settings, from the flags
# ---------------------------------------------------------------------------


def _recipe(args: argparse.Namespace):
    from .recipe import Recipe, get_preset
    from .schema import flag_values

    overrides = flag_values(Recipe, args)
    if args.prompt_set is not None or args.prompts_file is not None:
        if "prompts" in overrides:
            raise SettingError("cannot go with --prompt-set or --prompts-file: choose one way to give the prompts",
                               owner="Recipe", field="prompts")
        from .prompts import load_prompts

        overrides["prompts"] = load_prompts(args.prompts_file).get(args.prompt_set)
    if overrides.get("mask") == "binary" and "seam" not in overrides:
        overrides["seam"] = 0
    return get_preset(args.preset, **overrides)


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    """Every setting the flags ask for, checked now (before a dry run or any work)."""
    from .editors import EditorSpec
    from .export import ExportOptions, detect_shard
    from .schema import flag_values
    from .scoring import ScoreRule, ScorerSpec, check_rule

    recipe = _recipe(args)
    spec = EditorSpec(**flag_values(EditorSpec, args))
    scorer = ScorerSpec(**flag_values(ScorerSpec, args))
    rule = ScoreRule(**flag_values(ScoreRule, args))
    check_rule(scorer, rule)
    options = ExportOptions(**flag_values(ExportOptions, args))
    if options.chunk_size is None:  # the folder's recorded chunk size, else the editor's batch size (export.plan)
        from .editors import editor_class
        from .export.plan import chunk_size
        from .export.settings import recorded_batches

        recorded = recorded_batches(Path(args.output))[1]
        batch = spec.batch_size if spec.batch_size is not None else editor_class(spec.name).defaults.get("batch_size")
        if recorded is not None:
            options = options.replace(chunk_size=recorded)
        elif isinstance(batch, int):
            options = options.replace(chunk_size=chunk_size(options, batch))
    if args.shard is None:
        found = detect_shard()  # under `accelerate launch`: this process's shard and device
        if found is not None:
            options = options.replace(shard=(found[0], found[1]))
            if spec.device is None and spec.name != "preview":
                spec = spec.replace(device=found[2])
    if args.calibrate and not args.dry_run:
        raise SettingError("goes with --dry-run (it times a few steps for the estimate)", field="--calibrate")
    if options.engine == "ray":  # the model runs on the Ray actors: the driver's editor is a description
        from .export.ray_engine import driver_spec

        spec = driver_spec(spec, options)
    from .annotations.export_step import AnnotationOptions

    annotations = AnnotationOptions(**flag_values(AnnotationOptions, args))
    return {"recipe": recipe, "spec": spec, "scorer": scorer, "rule": rule, "options": options,
            "annotations": annotations}


# ---------------------------------------------------------------------------
# export
# ---------------------------------------------------------------------------


def _dry_run(args: argparse.Namespace, s: dict[str, Any], plan: Any) -> int:
    """What the run would do: the plan, the editor (built once, not loaded), its weights, the cost."""
    from .cost import calibrate, plan_cost
    from .editors import load_editor, weights_note

    from .editors.licences import acceptance_reason, licence_line

    print(plan)
    editor = load_editor(s["spec"], lazy=True)
    print(f"  editor:   {editor.describe().get('summary') or editor.name}")
    if editor.is_diffusion:
        print(f"  licence:  {licence_line(editor)}")
        reason = acceptance_reason(editor)
        if reason is not None:
            accepted = s["options"].accept_license
            print("  accepted: non-commercial use only (--accept-license non-commercial)" if accepted else
                  f"  refused:  the run would stop (exit 2) without --accept-license non-commercial: {reason}")
    note = weights_note(editor)
    if note:
        print(f"  weights:  {note}")
    costs = None
    if args.calibrate and editor.is_diffusion:
        from .runtime import setup_process

        setup_process(tune_memory=False if args.no_tune_allocator else None)
        costs = calibrate(editor, size=s["recipe"].size)
    line = None
    options = s["options"]
    if options.engine == "ray" and editor.is_diffusion and costs is None and options.ray_gpus_per_actor > 0:
        print("  cost:     the stored figures are a CPU's and these actors use GPUs: run the dry run with --calibrate"
              " on one of the GPU nodes (without --engine ray) for a measured time per actor")
    else:
        try:
            line = plan_cost(editor, plan.samples - plan.already_done, size=s["recipe"].size, costs=costs)
        except DiffuseMixError as e:
            print(f"  cost:     {e.reason} (--calibrate)")
        else:
            if line is not None:
                print(f"  cost:     {line}")
    if options.engine == "ray":
        from .export.ray_engine import dry_run_lines

        print("\n".join(dry_run_lines(options, line.seconds if line is not None else None)))
    return 0


def _run_export(args: argparse.Namespace) -> int:
    from .export import export_dataset, plan_export

    # 1. the settings (every check before any work)
    s = _settings(args)
    plan = plan_export(args.input, args.output, recipe=s["recipe"], options=s["options"],
                       annotations=s["annotations"])  # writes nothing
    if args.dry_run:
        return _dry_run(args, s, plan)
    if s["options"].engine == "ray":  # before any work: Ray must be installed here
        from .export.ray_engine import import_ray

        import_ray()
    from .runtime import setup_process

    setup_process(tune_memory=False if args.no_tune_allocator else None)
    from .fractals import FractalSet

    fractals = FractalSet.default() if args.fractals is None else FractalSet.from_folder(args.fractals)

    # 2. the editor, loaded now: a model that cannot be loaded stops the run
    #    (exit 2, saying how to get it) before anything is written to OUTPUT
    from .editors import load_editor
    from .editors.licences import check_licence

    ray = s["options"].engine == "ray"
    editor = load_editor(s["spec"], lazy=ray)
    check_licence(editor, s["options"].accept_license)  # before the weights are loaded (minutes, gigabytes)
    if not ray:  # the Ray engine's actors load it on their nodes
        editor.load()
    print(
        f"exporting {plan.samples - plan.already_done} image(s) from {plan.images} input image(s) "
        f"with {editor.describe().get('summary', editor.name)}"
        + (f" on {s['options'].ray_actors} Ray editor actor(s)" if ray else ""),
        file=sys.stderr,
    )
    scorer = _scorer(args, s, editor)

    # 3. run
    summary = export_dataset(
        args.input,
        args.output,
        recipe=s["recipe"],
        editor=editor,
        fractals=fractals,
        options=s["options"],
        progress_bar=not args.no_progress,
        scorer=scorer,
        score_rule=s["rule"],
        annotations=s["annotations"],
    )
    print(summary)
    return 0


def _scorer(args: argparse.Namespace, s: dict[str, Any], editor: Any):
    """The scorer --score asks for, loaded now on the editor's device (fail before any work), or None."""
    spec, rule = s["scorer"], s["rule"]
    if not spec.active:
        return None
    from .scoring import load_scorer

    classes: tuple[str, ...] = ()
    if spec.name == "clip-label":
        from .export import scan_input

        classes = scan_input(args.input).classes
    scorer = load_scorer(spec.replace(device=spec.device or editor.device), class_names=classes)
    if not scorer.available:
        rule.check_scorer(scorer)  # a rule without scores stops the run, saying why
        print(f"note: {scorer.notice}", file=sys.stderr)
        return None
    if s["options"].engine != "ray":  # the Ray engine's editor actors load it beside the editor
        scorer.load()
    return scorer


def _run_merge(args: argparse.Namespace) -> int:
    from .export import folder, merge_manifests
    from .export.manifest import collect

    path = merge_manifests(args.output)
    rows, errors, pending = collect(Path(args.output))
    print(
        f"wrote {path} ({len(rows)} rows"
        + (f", {len(errors)} errors listed in {folder.ERRORS_NAME}" if errors else "")
        + ")"
    )
    if pending is None:
        print(f"note: no shard has finished yet; {folder.MANIFEST_NAME} holds the images made so far", file=sys.stderr)
    elif pending:
        print(
            "note: shards " + ", ".join(f"{i}/{n}" for i, n in pending) + " have not finished; run them "
            "(the same command with their --shard) and merge again",
            file=sys.stderr,
        )
    return 0


def _run_report(args: argparse.Namespace) -> int:
    if len(args.output) > 1:  # several exports: their editors compared
        from .report_compare import write_comparison

        png, txt, text = write_comparison(args.output, args.out, samples=6 if args.lowest is None else args.lowest)
        print(text, end="")
        print(f"wrote {png} and {txt}")
        return 0
    from .report import write_report

    png, txt, text = write_report(args.output[0], args.out, lowest=8 if args.lowest is None else args.lowest)
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


def _run_app(app_args: Sequence[str]) -> int:
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise DiffuseMixError(
            "needs the web app's packages (gradio)", field="diffusemix app",
            hint="Install them with pip install 'diffusemix[app]' (or pip install -r requirements.txt in a checkout)",
        ) from None
    from .ui.app import main as app_main

    prog = "diffusemix app" if Path(sys.argv[0]).name == "diffusemix" else "python -m diffusemix app"
    app_main(list(app_args), prog=prog)
    return 0


def _run_train(args: argparse.Namespace) -> int:
    from .train.cli import run

    return run(args)


def _run_tiny_models(args: argparse.Namespace) -> int:
    from .tiny_models import run

    return run(args)


def _run_space_deploy(args: argparse.Namespace) -> int:
    from .space import run

    return run(args)


COMMANDS = {"export": _run_export, "app": lambda args: _run_app(args.app_args), "merge": _run_merge, "report": _run_report, "fractals": _run_fractals,
            "train": _run_train, "train-compare": _run_train, "tiny-models": _run_tiny_models,
            "space-deploy": _run_space_deploy}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    from .runtime import quiet_pillow_bomb_warning

    quiet_pillow_bomb_warning()  # the image is named in our own words (load_image's pixel limit)
    if argv[:1] == ["app"]:  # the app's own flags (its --help too) go to the app's parser
        try:
            return _run_app(argv[1:])
        except DiffuseMixError as e:
            print(f"error: {format_error(e)}", file=sys.stderr)
            return 2
    parser = build_parser()
    args = parser.parse_args(argv)
    command = COMMANDS[args.command]
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
    except DiffuseMixError as e:  # the user's mistake: what was wrong and what to do, no traceback
        print(f"error: {format_error(e)}", file=sys.stderr)
        return 2
    except OSError as e:  # the machine's: a disk, a permission
        print(f"error: {e}", file=sys.stderr)
        return 1
    except Exception:  # a bug: the traceback, and say so
        traceback.print_exc()
        print(
            "internal error: this is a bug in diffusemix, not a mistake in your command; please report it with"
            " the traceback above (finished images are kept: rerunning resumes)",
            file=sys.stderr,
        )
        return 1
