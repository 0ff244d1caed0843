"""The app: the three tabs assembled, its command line and its launch (``diffusemix app`` and ``app.py``).

Three tabs, one shared editor (loaded once at start-up), each tab one module
of ``diffusemix/ui/`` with its handlers and its layout:

* Explore (``diffusemix.ui.explore``): one image, several prompts -> I, Î, M,
  H, F, A per prompt, with a publication figure (PNG + PDF) and a zip of
  images and records. Also the API endpoint ``/explore``.
* Prompt lab (``diffusemix.ui.prompt_lab``): several images x candidate
  prompts as a grid of Î (or A); keep or drop prompts, download the kept set
  as a prompts.yaml set. API ``/prompt_lab``.
* Batch export (``diffusemix.ui.batch_export``): a zip of class folders ->
  the exporter -> a zip of the augmented dataset with its manifest.
  API ``/export``.

What the tabs share (the context, boundary checks, error mapping, the
ZeroGPU shim, the status banner) is ``diffusemix.ui.shared``. The
repository's ``app.py`` (a Hugging Face Space's entry point) imports this
module and builds ``demo`` at import; ``python app.py`` and ``diffusemix app``
call :func:`main`. Needs the ``app`` extra: ``pip install "diffusemix[app]"``.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
from collections.abc import Sequence
from typing import Any

import gradio as gr

from diffusemix.editors import Editor, EditorSpec
from diffusemix.errors import DiffuseMixError
from diffusemix.export.options import ExportOptions
from diffusemix.runtime import setup_process
from diffusemix.schema import add_flags, flag_for, flag_values
from diffusemix.scoring import ScorerSpec
from diffusemix.ui import batch_export, explore, prompt_lab
from diffusemix.ui.compare import compare_specs_from_environment, parse_compare_spec
from diffusemix.ui.shared import (
    CITATION,
    GRADIO_CACHE_CLEANUP,
    AppContext,
    launch_kwargs,
    make_context,
    numbers_checked_by_handlers,
    page_header,
    remove_work_folders,
    set_current,
    status_markdown,
)

__all__ = ["build_demo", "launch_kwargs", "main", "make_context", "parse_args", "demo_from_environment"]


def build_demo(
    editor: str | EditorSpec | Editor = "auto",
    *,
    model: str | None = None,
    device: str | None = None,
    prompts_path: str | os.PathLike | None = None,
    fractal_dir: str | os.PathLike | None = None,
    allow_save_prompts: bool = False,
    score: str | ScorerSpec = "none",
    scorer_model: str | None = None,
    ctx: AppContext | None = None,
    compare: Sequence[str | EditorSpec | Editor] = (),
    accept_license: str | None = None,
) -> gr.Blocks:
    """Load the editor (and scorer, and the editors to compare it with) once and build the page from the
    three tabs. The context is ``demo.ctx``."""
    if ctx is None:
        ctx = make_context(
            editor, model=model, device=device, prompts_path=prompts_path, fractal_dir=fractal_dir,
            allow_save_prompts=allow_save_prompts, scorer=score, scorer_model=scorer_model, compare=compare,
            accept_license=accept_license,
        )
    set_current(ctx)
    with gr.Blocks(title="DiffuseMix", delete_cache=GRADIO_CACHE_CLEANUP, fill_width=True) as demo:
        gr.Markdown(page_header(), elem_classes="dm-title", elem_id="dm-title")
        gr.Markdown(status_markdown(ctx), elem_id="dm-status")
        with gr.Tabs():
            ex = explore.build_tab(ctx)
            lab = prompt_lab.build_tab(ctx)
            xp = batch_export.build_tab(ctx)
        prompt_lab.wire_save(ctx, lab, [ex["set"], xp["set"]])
        with gr.Accordion("Cite DiffuseMix", open=False, elem_id="dm-cite"):
            gr.Code(CITATION, language=None, label="BibTeX", interactive=False)
    numbers_checked_by_handlers(demo)  # API values of the wrong type: the handler's plain message, not Gradio's
    demo.queue(default_concurrency_limit=ctx.concurrency, max_size=64)
    demo.ctx = ctx  # type: ignore[attr-defined]
    return demo


# ---------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None, *, prog: str | None = None) -> argparse.Namespace:
    on_space = bool(os.environ.get("SPACE_ID"))
    p = argparse.ArgumentParser(prog=prog, description="DiffuseMix web app (Gradio).")
    p.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
                   help="address to listen on (default 127.0.0.1; $GRADIO_SERVER_NAME)")
    p.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
                   help="port (default 7860; $GRADIO_SERVER_PORT)")
    add_flags(p, EditorSpec, only=_APP_EDITOR_FLAGS, default_note=lambda f: _APP_DEFAULTS.get(f.name))
    add_flags(p, ScorerSpec, only=("name", "model"), default_note=lambda f: _APP_DEFAULTS.get(f"score.{f.name}"))
    p.add_argument("--prompts", default=None, help="prompt file (default: the shipped prompts.yaml)")
    p.add_argument("--fractals", default=None, help="fractal folder (default: assets/fractals)")
    p.add_argument("--share", action="store_true", help="make a public gradio.live link (off by default)")
    p.add_argument("--no-tune-allocator", action="store_true",
                   help="leave glibc's allocator as it is (default: freed memory stays in the process, 1.15-1.25x"
                   " on CPU; also DIFFUSEMIX_MALLOPT=0)")
    p.add_argument("--allow-save-prompts", action="store_true",
                   help="let the Prompt lab save sets into the prompt file (never on a Space)")
    p.add_argument("--compare-editor", action="append", default=None, metavar="NAME[=MODEL]",
                   help="another editor to load at start for the Prompt lab's side by side (same prompts and seed),"
                   " e.g. flux2-klein or qwen-image-edit=/models/qwen; repeatable (default:"
                   " $DIFFUSEMIX_COMPARE_EDITORS, comma separated, else none)")
    add_flags(p, ExportOptions, only=("accept_license",))
    args = p.parse_args(argv)
    if on_space:
        args.allow_save_prompts = False
    given = flag_values(EditorSpec, args, only=_APP_EDITOR_FLAGS)
    given.setdefault("name", os.environ.get("DIFFUSEMIX_EDITOR") or "auto")
    given.setdefault("model", os.environ.get("DIFFUSEMIX_MODEL") or None)
    scorer = flag_values(ScorerSpec, args, only=("name", "model"))
    scorer.setdefault("name", os.environ.get("DIFFUSEMIX_SCORE") or "auto")
    scorer.setdefault("model", os.environ.get("DIFFUSEMIX_SCORER_MODEL") or None)
    try:
        args.editor_spec, args.scorer_spec = EditorSpec(**given), ScorerSpec(**scorer)
        device = args.editor_spec.device
        args.compare_specs = ([parse_compare_spec(t, device=device) for t in args.compare_editor]
                              if args.compare_editor else compare_specs_from_environment(device=device))
        args.accept_license = flag_values(ExportOptions, args, only=("accept_license",)).get(
            "accept_license", os.environ.get("DIFFUSEMIX_ACCEPT_LICENSE") or None)
        ExportOptions(accept_license=args.accept_license)  # checked here, like every flag
    except DiffuseMixError as e:
        p.error(e.message(namer=flag_for) if e.owner and e.field else e.message())
    return args


#: The editor settings the app's command line takes (the others are the page's or the editor's defaults).
_APP_EDITOR_FLAGS = ("name", "model", "revision", "device", "dtype", "speed")
#: What the app starts with when a flag is not given: the environment (a Space's settings), else these.
_APP_DEFAULTS = {
    "name": "$DIFFUSEMIX_EDITOR, else auto: InstructPix2Pix if its weights load, else the preview with a banner",
    "model": "$DIFFUSEMIX_MODEL, else the editor's model",
    "score.name": "$DIFFUSEMIX_SCORE, else auto (in the Prompt lab: DINOv2, else CLIP, if the weights are here;"
    " otherwise no scores, said on the page)",
    "score.model": "$DIFFUSEMIX_SCORER_MODEL, else the scorer's model",
}


def demo_from_environment() -> gr.Blocks:
    """The demo a Space builds at import: its settings from the environment (``DIFFUSEMIX_EDITOR``,
    ``DIFFUSEMIX_MODEL``, ``DIFFUSEMIX_SPEED``, ``DIFFUSEMIX_SCORE``, ``DIFFUSEMIX_SCORER_MODEL``; the README's
    table says what each does). On a Space without a GPU ``auto`` starts with the preview (ui.hardware)."""
    if os.environ.get("SPACE_ID"):  # the Space's process is the app's: its allocator setting, before the model loads
        setup_process()
    spec = EditorSpec(name=os.environ.get("DIFFUSEMIX_EDITOR") or "auto", model=os.environ.get("DIFFUSEMIX_MODEL") or None,
                      speed=os.environ.get("DIFFUSEMIX_SPEED") or None)
    return build_demo(spec, score=os.environ.get("DIFFUSEMIX_SCORE", "auto"),
                      scorer_model=os.environ.get("DIFFUSEMIX_SCORER_MODEL") or None,
                      compare=compare_specs_from_environment(),
                      accept_license=os.environ.get("DIFFUSEMIX_ACCEPT_LICENSE") or None)


_LAUNCHED: list[gr.Blocks] = []  # the demo main() launched (SIGTERM closes it)


def main(argv: Sequence[str] | None = None, *, prog: str | None = None) -> None:
    """Parse the app's command line, build the demo and launch it (blocks until stopped)."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv, prog=prog)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)  # atexit does not run on SIGTERM: clean up here
    logging.getLogger("diffusemix.app").info(setup_process(tune_memory=False if args.no_tune_allocator else None))
    try:
        demo = build_demo(args.editor_spec, prompts_path=args.prompts, fractal_dir=args.fractals,
                          allow_save_prompts=args.allow_save_prompts, score=args.scorer_spec,
                          compare=args.compare_specs, accept_license=args.accept_license)
    except DiffuseMixError as e:  # e.g. --editor instruct-pix2pix without weights: say what to do, no trace
        raise SystemExit(f"error: {e}") from None
    _LAUNCHED.append(demo)
    demo.launch(server_name=args.host, server_port=args.port, share=args.share, **launch_kwargs(demo.ctx))


def _stop_on_sigterm(signum: int, frame: Any) -> None:
    """SIGTERM (docker stop, systemd, a Space restarting): remove the work folders, close, exit."""
    remove_work_folders()
    try:
        for demo in _LAUNCHED:
            demo.close()
    finally:
        os._exit(0)


