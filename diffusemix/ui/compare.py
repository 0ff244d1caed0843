"""The Prompt lab's side by side: the same images and prompts through every loaded editor.

The app loads ONE editor at start (``--editor``), shared by every user; the
editors to compare it with are named at start too (``--compare-editor NAME``
or ``NAME=MODEL_OR_FOLDER``, repeatable; ``$DIFFUSEMIX_COMPARE_EDITORS`` on a
Space, comma separated) and loaded then, so a request never loads a model and
a missing one stops the app at start with the reason (never a silent
preview). The banner names each one with its weights' licence. On ZeroGPU the
GPU time asked for is the sum of every editor's (each from its own measured or
first-guess step time), and a comparison runs the editors one after the
other inside one GPU call.

The handler (:func:`compare_lab`, API ``/compare_editors``) runs each image
through every editor with :func:`diffusemix.compare.compare_editors` (the same
records: prompt, mask, fractal, λ and the editor's seed; only Î differs) and
tiles the result one row per editor, one column per (prompt, image), with the
score of each Î when a scorer is loaded, and a table of each editor's mean
score per prompt.
"""

from __future__ import annotations

import os
from typing import Any

import gradio as gr
import numpy as np

from diffusemix.compare import EditorComparison, compare_editors
from diffusemix.editors import EDITOR_NAMES, EditorSpec
from diffusemix.errors import SettingError
from diffusemix.images import prepare
from diffusemix.ui.limits import MAX_LAB_PROMPTS
from diffusemix.ui.shared import (
    AppContext,
    by_key,
    chosen_prompts,
    clear_toasts_on_success,
    current,
    generating,
    gpu,
    gpu_seconds,
    html_text,
    make_recipe,
    record_gpu_time,
    user_errors,
    write_png,
)
from diffusemix.ui.uploads import open_upload

__all__ = ["parse_compare_spec", "compare_specs_from_environment", "compare_lab", "build_section"]

TABLE_HEADERS = ["editor", "prompt", "mean score", "min score"]


def parse_compare_spec(text: str, *, device: str | None = None) -> EditorSpec:
    """``"flux2-klein"`` or ``"flux2-klein=/models/klein"`` (a model id or folder) as an :class:`EditorSpec`
    (on ``device`` when given, as the main editor)."""
    name, _, model = str(text).strip().partition("=")
    name, model = name.strip(), model.strip() or None
    if name not in EDITOR_NAMES or name == "auto":
        raise SettingError(
            f"must be an editor name ({', '.join(n for n in EDITOR_NAMES if n != 'auto')}), optionally with"
            " =MODEL_OR_FOLDER", field="--compare-editor", value=text,
        )
    return EditorSpec(name=name, model=model, device=None if name == "preview" else device)


def compare_specs_from_environment(*, device: str | None = None) -> list[EditorSpec]:
    """``$DIFFUSEMIX_COMPARE_EDITORS`` (comma separated, a Space's setting) as specs."""
    text = os.environ.get("DIFFUSEMIX_COMPARE_EDITORS", "")
    return [parse_compare_spec(t, device=device) for t in text.split(",") if t.strip()]


def _seconds(key: str, arrays: list[np.ndarray], recipe: Any, names: list[str], *args: Any) -> int:
    """ZeroGPU's duration: every editor's pairs x steps at its own step time, summed."""
    c = by_key(key)
    pairs = len(arrays) * len(recipe.prompts) * recipe.images_per_prompt
    return min(600, sum(gpu_seconds(pairs, e.spec.steps or 1, editor=e) for e in [c.editor, *c.compare]))


@gpu(duration=_seconds)
def _run_compare(key: str, arrays: list[np.ndarray], recipe: Any, names: list[str], progress: Any) -> list[Any]:
    """The GPU-bound step: each image through every editor (plain, picklable arguments)."""
    c = by_key(key)
    editors = [c.editor, *c.compare]
    scorer = c.scorer if c.scorer.available else None
    out = []
    for k, (array, name) in enumerate(zip(arrays, names)):
        if progress is not None:
            progress((k, len(arrays)), desc=f"image {k + 1}/{len(arrays)} through {len(editors)} editors")
        got = compare_editors(array, recipe, editors, c.fractals, source=name, scorer=scorer)
        for label, e in zip(got.labels, editors):  # each editor's own time, for its next duration
            if e.is_diffusion:
                record_gpu_time(got.seconds[label], len(got.stages[label]), e.spec.steps or 1, editor=e)
        out.append(got)
    return out


def _tiles(results: list[EditorComparison], names: list[str], stage: str, ctx: AppContext) -> list[tuple[str, str]]:
    """One row per editor, one column per (prompt, image); captions: score first, then editor, prompt, image."""
    folder = ctx.request_dir()
    items = []
    first = results[0]
    for i, label in enumerate(first.labels):
        for j, prompt in enumerate(first.prompts):
            for k, (res, name) in enumerate(zip(results, names)):
                s = res.stages[label][j]
                caption = f"{label} · “{prompt}” · {name}"
                if res.scores is not None:
                    caption = f"{res.scores[label][j]:.3f} · " + caption
                if s.degenerate:
                    caption += f" · blank: {s.degenerate}"
                items.append((write_png(s.image(stage), folder / f"cmp-{i:02d}-{j:02d}-{k:02d}.png"), caption))
    return items


def _table(results: list[EditorComparison]) -> list[list[Any]] | None:
    """Per editor and prompt: mean and min score across the images (None without scores)."""
    if results[0].scores is None:
        return None
    rows = []
    for label in results[0].labels:
        for j, prompt in enumerate(results[0].prompts):
            values = [r.scores[label][j] for r in results]  # type: ignore[index]
            rows.append([label, prompt, round(float(np.mean(values)), 4), round(float(np.min(values)), 4)])
    return rows


@user_errors
def compare_lab(
    images: Any,
    candidates: str | None,
    show: str = "Î generated",
    size: float = 192,
    seed: float = 0,
    progress: gr.Progress = gr.Progress(),
    *,
    ctx: AppContext | None = None,
) -> tuple[list[tuple[str, str]], list[list[Any]] | None, str]:
    """The Prompt lab's images and prompts through every loaded editor, side by side.

    API (``/compare_editors``): the lab's inputs (images, candidates, show, size, seed). Returns the
    tiles (one row per editor, one column per (prompt, image); the score first in each caption when a
    scorer is loaded), the table of scores per editor and prompt (None without a scorer), and a note
    naming each editor with its settings and licence.
    """
    from diffusemix.ui.prompt_lab import _lab_images

    c = current(ctx)
    if not c.compare:
        raise gr.Error("Only one editor is loaded: start the app with --compare-editor NAME (e.g. flux2-klein) to"
                       " compare editors side by side.")
    paths = _lab_images(images)
    prompts = chosen_prompts([], candidates, limit=MAX_LAB_PROMPTS)
    recipe = make_recipe(prompts, size=size, seed=seed)
    arrays = [prepare(open_upload(p, "image"), recipe.size) for p in paths]
    names = [p.name for p in paths]
    results = _run_compare(c.key, arrays, recipe, names, progress)
    stage = "augmented" if str(show).startswith("A") else "generated"
    first = results[0]
    note = "\n".join(f"- **{html_text(label)}**: {html_text(first.descriptions[label])}" for label in first.labels)
    if first.scores is None:
        note += "\n- No scores: no scorer is loaded (start the app with --score auto)."
    return _tiles(results, names, stage, c), _table(results), note


def _compare_page(*args: Any, ctx: AppContext | None = None, **kwargs: Any) -> tuple[Any, Any, str]:
    tiles, table, note = compare_lab(*args, ctx=ctx, **kwargs)
    c = current(ctx)
    cols = len(tiles) // (1 + len(c.compare)) if tiles else 3
    return (gr.update(value=tiles, columns=max(cols, 1)),
            gr.update(value=table, headers=TABLE_HEADERS, visible=table is not None), note)


def build_section(ctx: AppContext, lab: dict[str, Any]) -> dict[str, Any]:
    """The side by side (inside the Prompt lab's tab): a button, the tiles, the table; uses the lab's inputs."""
    from diffusemix.ui.shared import bind

    ui: dict[str, Any] = {}
    with gr.Accordion("Compare editors side by side (same prompts and seed)", open=False, elem_id="dm-compare"):
        gr.Markdown("Rows: editors (" + ", ".join(html_text(e.name) for e in [ctx.editor, *ctx.compare])
                    + ") · columns: prompt × image. Only Î differs: the masks, fractals, λ and seeds are the same.",
                    elem_classes="dm-note")
        ui["compare_run"] = gr.Button("Compare the editors", elem_id="dm-compare-run")
        ui["compare_grid"] = gr.Gallery(label="Editors side by side", show_label=False, columns=3, height="auto",
                                        object_fit="contain", format="png", elem_id="dm-compare-grid")
        ui["compare_table"] = gr.Dataframe(headers=TABLE_HEADERS, label="Scores per editor and prompt",
                                           interactive=False, visible=False, elem_id="dm-compare-table")
        ui["compare_note"] = gr.Markdown("", elem_classes="dm-note", elem_id="dm-compare-note")
    inputs = [lab["images"], lab["candidates"], lab["show"], lab["size"], lab["seed"]]
    outputs = [ui["compare_grid"], ui["compare_table"], ui["compare_note"]]
    made = ui["compare_run"].click(bind(_compare_page, ctx=ctx), inputs, outputs, api_visibility="private",
                                   **generating(ctx))
    clear_toasts_on_success(made)
    ui["compare_api"] = gr.Button(visible=False)
    ui["compare_api"].click(bind(compare_lab, ctx=ctx), inputs, outputs, api_name="compare_editors",
                            **generating(ctx))
    return ui
