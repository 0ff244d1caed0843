"""The Prompt lab tab: several images x candidate prompts as a grid; keep the prompts that work.

Its handlers (``prompt_lab``, the API endpoint ``/prompt_lab``; the grid, the
kept set as prompts.yaml text, saving it) and its layout (``build_tab``) live
together here. Handlers are plain functions: call them with ``ctx=`` in tests.

With a scorer (``--score``), each tile shows the similarity of its Î to its I
first in its caption, a table gives each prompt's mean and min across the
images (sortable), and a threshold dims the tiles below it and drops the
prompts whose mean is below it from the kept set (which stays editable by
hand). Without one, the tab says that scores are unavailable and how to get them.
"""

from __future__ import annotations

import threading
from pathlib import Path
from collections.abc import Sequence
from typing import Any

import gradio as gr
import numpy as np
from PIL import Image

from diffusemix.errors import DiffuseMixError
from diffusemix.editors.preview import preview_style
from diffusemix.images import prepare
from diffusemix.prompts import format_set, load_prompts, save_set
from diffusemix.scoring import GENMIX_THRESHOLD
from diffusemix.ui.limits import MAX_LAB_IMAGES, MAX_LAB_PROMPTS
from diffusemix.ui.shared import (
    MAX_SEED,
    MAX_SIZE,
    MIN_SIZE,
    QUICK,
    AppContext,
    _run_augment,
    as_float,
    as_int,
    bind,
    chosen_prompts,
    clear_toasts_on_start,
    clear_toasts_on_success,
    current,
    by_key,
    example_images,
    generating,
    gpu,
    scores_unavailable,
    make_recipe,
    user_errors,
    write_png,
)
from diffusemix.prompt_content import content_note, content_warning, content_warnings  # noqa: F401
from diffusemix.ui.uploads import open_upload, upload_path, upscale_note

LAB_SHOW = ("Î generated", "A augmented")
#: Threshold slider's start for a scorer with a published threshold on its own features: GenMix keeps
#: Î when the DINO ViT-B/16 cosine (the genmix scorer) is >= 0.7. No published threshold belongs to DINOv2 or
#: to CLIP between I and Î (DiffCoRe-Mix's 0.6 compares Î with a real image of its class): they start at
#: NO_PUBLISHED_THRESHOLD, and the slider's label says so.
DEFAULT_THRESHOLD = {"genmix": GENMIX_THRESHOLD}
NO_PUBLISHED_THRESHOLD = 0.5
#: How much of a dimmed tile (a dropped prompt's, or one below the threshold) is washed to white.
DIM = 0.7
TABLE_HEADERS = ["prompt", "mean score", "min score", "below threshold", "passes"]


# ---------------------------------------------------------------------------
# handlers
# ---------------------------------------------------------------------------


def _lab_images(images: Any) -> list[Path]:
    if not images:
        raise gr.Error("No images: upload a few (or press 'Use the examples').")
    items = images if isinstance(images, (list, tuple)) else [images]
    if len(items) > MAX_LAB_IMAGES:
        raise gr.Error(f"{len(items)} images given; the Prompt lab takes at most {MAX_LAB_IMAGES}.")
    return [upload_path(item, "image") for item in items]


def _no_look(prompt: str, editor: Any) -> bool:
    """True when the preview editor has no built-in look for ``prompt`` (it would grade by a hash)."""
    return not editor.is_diffusion and preview_style(prompt) is None


def _dim(image: Image.Image) -> Image.Image:
    """A dropped prompt's tile: faded towards white."""
    return Image.blend(image.convert("RGB"), Image.new("RGB", image.size, (255, 255, 255)), DIM)


def lab_grid_items(
    lab: dict[str, Any] | None,
    show: str,
    kept: list[str] | None = None,
    threshold: float | None = None,
    *,
    ctx: AppContext | None = None,
) -> list[tuple[str, str]]:
    """The grid of one stage: rows = prompts, columns = images, each captioned (path, caption).

    Tiles of prompts not in ``kept`` (None: all kept) are faded and captioned "dropped"; on the
    preview, tiles of prompts with no built-in look say so. When the grid is scored, each caption
    starts with the tile's score (a narrow tile cuts a caption's end), and tiles below
    ``threshold`` are faded and say ``< threshold``.
    """
    if not lab:
        return []
    c = current(ctx)
    stage = "augmented" if show.startswith("A") else "generated"
    folder = c.request_dir()
    scores = lab.get("scores")
    if scores is None:
        threshold = None
    items = []
    for i, (p, row) in enumerate(zip(lab["prompts"], lab["rows"])):
        dropped = kept is not None and p not in kept
        note = " · preview: no look for this prompt" if _no_look(p, c.editor) else ""
        for j, (name, s) in enumerate(zip(lab["names"], row)):
            low = threshold is not None and scores[i][j] < threshold
            image = _dim(s.image(stage)) if dropped or low else s.image(stage)
            caption = ("dropped · " if dropped else "") + f"“{p}” · {name}{note}"
            if scores is not None:
                caption = f"{scores[i][j]:.3f}" + (f" < {threshold:g}" if low else "") + " · " + caption
            items.append((write_png(image, folder / f"{i:02d}-{j:02d}.png"), caption))
    return items


def lab_grid(
    lab: dict[str, Any] | None,
    show: str,
    kept: list[str] | None,
    threshold: float | None = None,
    *,
    ctx: AppContext | None = None,
) -> Any:
    """The page's grid: its tiles, one column per image."""
    items = lab_grid_items(lab, show, kept, _threshold(lab, threshold), ctx=ctx)
    return gr.update(value=items, columns=len(lab["names"]) if lab else 3)


def _threshold(lab: dict[str, Any] | None, threshold: Any) -> float | None:
    """The slider's value when the grid is scored, else None (nothing to compare); a value that is not
    a number (an API call) is named."""
    if threshold is None:
        return None
    t = as_float(threshold, "Score threshold")
    if not lab or lab.get("scores") is None:
        return None
    return t


def _score_passing(lab: dict[str, Any], threshold: float | None) -> list[str]:
    """The prompts whose mean score across the images reaches ``threshold`` (all without scores)."""
    scores = lab.get("scores")
    if scores is None or threshold is None:
        return list(lab["prompts"])
    return [p for p, row in zip(lab["prompts"], scores) if float(np.mean(row)) >= threshold]


def passing_prompts(lab: dict[str, Any], threshold: float | None) -> list[str]:
    """The prompts kept by themselves: those whose mean score reaches ``threshold`` (all without scores),
    except the ones the content check warns about (never kept silently: the notes say so; tick by hand)."""
    warned = {p for p, _ in content_warnings(lab["prompts"])}
    return [p for p in _score_passing(lab, threshold) if p not in warned]


def score_table(lab: dict[str, Any] | None, threshold: float | None, *, ctx: AppContext | None = None) -> Any:
    """Per prompt: mean and min score across the images, tiles below the threshold, whether it passes."""
    if not lab or lab.get("scores") is None:
        return gr.update(value=None, visible=False)
    t = _threshold(lab, threshold)
    passing = set(_score_passing(lab, t))
    warned = {p for p, _ in content_warnings(lab["prompts"])}
    rows = []
    for p, row in zip(lab["prompts"], lab["scores"]):
        below = sum(1 for v in row if t is not None and v < t)
        verdict = "yes" if p in passing else "no (dimmed)"
        if p in warned:
            verdict += ", warned: not kept by itself"
        rows.append([p, round(float(np.mean(row)), 4), round(float(np.min(row)), 4), f"{below}/{len(row)}", verdict])
    return gr.update(value=rows, headers=TABLE_HEADERS, visible=True)


def lab_threshold(
    lab: dict[str, Any] | None, show: str, threshold: float, *, ctx: AppContext | None = None
) -> tuple[Any, Any, Any]:
    """Moving the threshold: the tiles below it fade, the kept set becomes the prompts that pass
    (editable by hand afterwards), the table follows."""
    if not lab or lab.get("scores") is None:
        return gr.update(), gr.update(), gr.update()
    t = as_float(threshold, "Score threshold")
    kept = passing_prompts(lab, t)
    return lab_grid(lab, show, kept, t, ctx=ctx), gr.update(value=kept), score_table(lab, t, ctx=ctx)


@gpu(duration=60)
def _score_lab(key: str, arrays: list[np.ndarray], generated: list[list[np.ndarray]]) -> list[list[float]]:
    """scores[prompt][image] of Î against its I: one scorer call for the whole grid (each I embedded once)."""
    c = by_key(key)
    n_prompts = len(generated[0]) if generated else 0
    inputs = [a for a in arrays for _ in range(n_prompts)]
    outs = [g for row in generated for g in row]
    flat = [s.value for s in c.scorer.score(inputs, outs)]
    return [[flat[k * n_prompts + j] for k in range(len(arrays))] for j in range(n_prompts)]


def lab_notes(prompts: list[str], editor: Any, upscaled: Sequence[tuple[str, str]] = ()) -> str:
    """Warnings under the grid: prompts that describe content; prompts the preview has no look for; small
    images that were upscaled ((name, sentence) pairs)."""
    lines = [f"- {name}: {note}" for name, note in upscaled]
    for p, why in content_warnings(prompts):
        lines.append(f"- Warning: {content_note(p, why)}. It is not kept by itself (nor by the threshold):"
                     " tick it by hand to keep it.")
    missing = [p for p in prompts if _no_look(p, editor)]
    if missing:
        lines.append("- preview: no look for " + ", ".join(f"“{p}”" for p in missing) + ". The preview editor "
                     "has ten built-in looks; other prompts get a colour grade from a hash of their text, not "
                     "what they say. A diffusion model follows any prompt.")
    return "\n".join(lines)


@user_errors
def prompt_lab(
    images: Any,
    candidates: str | None,
    show: str = LAB_SHOW[0],
    size: float = 192,
    seed: float = 0,
    threshold: float | None = None,
    progress: gr.Progress = gr.Progress(),
    *,
    ctx: AppContext | None = None,
) -> tuple[list[tuple[str, str]], list[str], str, str | None, str, dict[str, Any]]:
    """Several images x candidate prompts: the grid, and every prompt ticked as kept
    (with a scorer: scored, and the prompts whose mean reaches ``threshold`` kept), except the prompts
    the content check warns about (the notes say so; tick them by hand to keep them).

    API (``/prompt_lab``): images (a list of ``{"image": handle_file(path)}``),
    candidates (one prompt per line), and optionally show, size, seed, threshold. Returns
    plain values: the grid ((image, caption) per tile, row by row), the kept
    prompts, the kept set as prompts.yaml text and as a file, and notes
    (prompts that seem to describe content; prompts the preview has no look for).
    """
    c = current(ctx)
    # 1. check inputs
    paths = _lab_images(images)
    prompts = chosen_prompts([], candidates, limit=MAX_LAB_PROMPTS)
    recipe = make_recipe(prompts, size=size, seed=seed)  # the paper's mixing
    sources = [open_upload(p, "image") for p in paths]
    upscaled = [(p.name, note) for p, im in zip(paths, sources) if (note := upscale_note(im.size, recipe.size))]
    arrays = [prepare(im, recipe.size) for im in sources]
    del sources
    # 2. one editor call per image, batched over the prompts
    per_image = []
    for k, (p, a) in enumerate(zip(paths, arrays)):
        desc = f"image {k + 1}/{len(paths)}: Î by {c.editor.name}"
        per_image.append(_run_augment(c.key, a, recipe, {}, p.name, None, None, progress, desc))
    lab = {
        "prompts": list(prompts),
        "names": [p.name for p in paths],
        "rows": [[stages[j] for stages in per_image] for j in range(len(prompts))],
        "scores": None,
    }
    # 3. scores of Î against I, when a scorer is loaded (never made up otherwise)
    if c.scorer.available:
        progress(1.0, desc=f"scoring {len(prompts) * len(paths)} Î with {c.scorer.name}")
        lab["scores"] = _score_lab(c.key, arrays, [[s.generated for s in stages] for stages in per_image])
    # 4. the grid, the kept prompts (all, or those passing the threshold), the set, the notes
    t = _threshold(lab, threshold)
    kept = passing_prompts(lab, t)
    yaml_text, yaml_file = kept_set(kept, "my-set", ctx=c)
    grid = lab_grid_items(lab, show, kept if t is not None else None, t, ctx=c)
    return grid, kept, yaml_text, yaml_file, lab_notes(list(prompts), c.editor, upscaled), lab


def prompt_lab_page(
    images: Any,
    candidates: str | None,
    show: str,
    size: float,
    seed: float,
    threshold: float | None = None,
    progress: gr.Progress = gr.Progress(),
    *,
    ctx: AppContext | None = None,
) -> tuple[Any, ...]:
    """The page's Prompt lab event: ``prompt_lab``, with the keep boxes' choices and the grid's columns set."""
    grid, kept, yaml_text, yaml_file, notes, lab = prompt_lab(
        images, candidates, show, size, seed, threshold, progress, ctx=ctx
    )
    return (gr.update(value=grid, columns=len(lab["names"])), gr.update(choices=lab["prompts"], value=kept),
            yaml_text, yaml_file, notes, lab)


def kept_set(kept: list[str] | None, set_name: str | None, *, ctx: AppContext | None = None) -> tuple[str, Any]:
    """The kept prompts as a prompts.yaml named set: its text and a file to download."""
    c = current(ctx)
    name = (set_name or "").strip()
    if not kept:
        return "# No prompt kept: tick at least one.\n", None
    try:
        text = format_set(name, kept)
    except DiffuseMixError as e:
        return f"# {e}\n", None
    path = c.request_dir() / f"prompts-{name}.yaml"
    path.write_text(text, encoding="utf-8")
    return text, str(path)


_SAVE_LOCK = threading.Lock()


@user_errors
def save_kept(kept: list[str] | None, set_name: str | None, *, ctx: AppContext | None = None) -> tuple[str, Any, Any]:
    """Save the kept set into the server's prompts.yaml (only with --allow-save-prompts)."""
    c = current(ctx)
    if not c.allow_save_prompts:
        raise gr.Error("Saving to the server's prompts.yaml is off; start the app with --allow-save-prompts.")
    if not kept:
        raise gr.Error("No prompt kept: tick at least one.")
    name = (set_name or "").strip()
    with _SAVE_LOCK:  # two saves at once must not lose one of the sets
        if name in load_prompts(c.prompts_path).names:
            raise gr.Error(f"A prompt set named {name!r} already exists in {c.prompts_path.name}; choose another name.")
        save_set(c.prompts_path, name, kept)
        c.book = load_prompts(c.prompts_path)
    msg = f"Saved set **{set_name}** ({len(kept)} prompts) to `{c.prompts_path.name}`."
    choices = gr.update(choices=list(c.book.names))
    return msg, choices, choices


def lab_set_text(set_name: str | None, *, ctx: AppContext | None = None) -> str:
    """A prompt set as lines for the candidates box."""
    if not set_name:
        return ""
    try:
        return "\n".join(current(ctx).book.get(set_name))
    except DiffuseMixError as e:
        raise gr.Error(str(e)) from None


# ---------------------------------------------------------------------------
# layout
# ---------------------------------------------------------------------------


def _inputs_column() -> dict[str, Any]:
    ui: dict[str, Any] = {}
    ui["images"] = gr.Gallery(type="filepath", label=f"Images (up to {MAX_LAB_IMAGES})", columns=4, height=220,
                              interactive=True, format="png", elem_id="dm-lab-images", file_types=["image"])
    ui["use_examples"] = gr.Button("Use the examples", size="sm")
    return ui


def _results_column(ctx: AppContext) -> dict[str, Any]:
    """The grid, the keep boxes, the kept set (name, file, YAML) and the save button."""
    ui: dict[str, Any] = {}
    gr.Markdown("**Rows: prompts · columns: images**", elem_classes="dm-note")
    ui["grid"] = gr.Gallery(label="Prompt grid", show_label=False, columns=3, height="auto", object_fit="contain",
                            format="png", elem_id="dm-lab-grid")
    ui["notes"] = gr.Markdown("", elem_id="dm-lab-notes", elem_classes="dm-note")
    if ctx.scorer.available:
        ui["scores_note"] = gr.Markdown(
            f"Scores: cosine similarity of Î to I by <b>{ctx.scorer.name}</b>"
            f" (<code>{ctx.scorer.describe().get('model', '')}</code>), in [−1, 1]. Tiles below the threshold"
            " fade; prompts whose mean is below it are dropped from the kept set (tick them again by hand to"
            " keep them).", elem_id="dm-lab-scores-note", elem_classes="dm-note")
    else:
        ui["scores_note"] = gr.Markdown(scores_unavailable(ctx), elem_id="dm-lab-scores-note",
                                        elem_classes="dm-note")
    published = ctx.scorer.name in DEFAULT_THRESHOLD
    ui["threshold"] = gr.Slider(-1.0, 1.0, value=DEFAULT_THRESHOLD.get(ctx.scorer.name, NO_PUBLISHED_THRESHOLD),
                                step=0.001, label="Score threshold (drop below)", visible=ctx.scorer.available,
                                info="starts at GenMix's 0.7, set on these DINO ViT-B/16 features" if published
                                else f"no published threshold belongs to the {ctx.scorer.name} scorer's features:"
                                     " choose one from the scores", elem_id="dm-lab-threshold")
    ui["table"] = gr.Dataframe(headers=TABLE_HEADERS, label="Scores per prompt (click a header to sort)",
                               interactive=False, visible=False, elem_id="dm-lab-table", wrap=True)
    ui["keep"] = gr.CheckboxGroup([], label="Keep (untick the prompts to drop)", elem_id="dm-lab-keep")
    with gr.Row():
        ui["name"] = gr.Textbox("my-set", label="Set name", max_lines=1, scale=1, elem_id="dm-lab-name")
        ui["file"] = gr.File(label="Kept set (prompts.yaml)", scale=2, height=80, elem_id="dm-lab-file")
    ui["yaml"] = gr.Code("", language="yaml", label="Kept set", elem_id="dm-lab-yaml", lines=6)
    ui["save"] = gr.Button("Save into the server's prompts.yaml", visible=ctx.allow_save_prompts)
    off = "" if ctx.allow_save_prompts else (
        "Saving into the server's prompts.yaml is off"
        + (" on a Space." if ctx.on_space else ": start the app with --allow-save-prompts.")
    )
    ui["saved"] = gr.Markdown(off, elem_classes="dm-note")
    ui["state"] = gr.State()
    return ui


def build_tab(ctx: AppContext) -> dict[str, Any]:
    """The Prompt lab tab and its events (inside ``gr.Blocks``); returns its components by name.

    Saving a set changes the set pickers of other tabs: ``wire_save`` connects it once they exist.
    """
    with gr.Tab("Prompt lab", id="lab"):
        gr.Markdown("Try candidate prompts on several images at once; keep the ones that work and "
                    "download them as a named set for prompts.yaml.", elem_classes="dm-note")
        with gr.Row(equal_height=False):
            with gr.Column(scale=2, min_width=340):
                ui = _inputs_column()
                ui["set"] = gr.Dropdown(list(ctx.book.names), value=None, label="Start from a prompt set")
                ui["candidates"] = gr.Textbox("snowy\nwatercolor art\nsunset", lines=5,
                                              label=f"Candidate prompts (one per line, up to {MAX_LAB_PROMPTS})",
                                              elem_id="dm-lab-candidates")
                ui["show"] = gr.Radio(list(LAB_SHOW), value=LAB_SHOW[0], label="Show")
                with gr.Row():
                    ui["size"] = gr.Slider(MIN_SIZE, MAX_SIZE, value=192, step=8, label="Size (px)", min_width=160,
                                           scale=2)
                    ui["seed"] = gr.Number(0, precision=0, minimum=0, maximum=MAX_SEED, label="Seed", min_width=100,
                                           scale=1)
                ui["run"] = gr.Button("Make the grid", variant="primary", elem_id="dm-lab-run")
            with gr.Column(scale=5, min_width=480):
                ui.update(_results_column(ctx))
        if ctx.compare:  # editors loaded at start beside the shared one (--compare-editor)
            from diffusemix.ui.compare import build_section

            ui.update(build_section(ctx, ui))
        ui["api"] = gr.Button(visible=False)  # triggers /prompt_lab (plain values); never shown

    ui["use_examples"].click(example_images, None, ui["images"], **QUICK)
    ui["set"].change(bind(lab_set_text, ctx=ctx), ui["set"], ui["candidates"], **QUICK)
    inputs = [ui["images"], ui["candidates"], ui["show"], ui["size"], ui["seed"], ui["threshold"]]
    outputs = [ui["grid"], ui["keep"], ui["yaml"], ui["file"], ui["notes"], ui["state"]]
    made = ui["run"].click(bind(prompt_lab_page, ctx=ctx), inputs, outputs, api_visibility="private",
                           **generating(ctx))
    clear_toasts_on_success(made)
    clear_toasts_on_start(ui["run"])
    made.then(bind(score_table, ctx=ctx), [ui["state"], ui["threshold"]], ui["table"], **QUICK)
    ui["threshold"].change(bind(lab_threshold, ctx=ctx), [ui["state"], ui["show"], ui["threshold"]],
                           [ui["grid"], ui["keep"], ui["table"]], **QUICK)
    # the API endpoint: the same work, plain values (no update dicts); its trigger is never shown
    ui["api"].click(bind(prompt_lab, ctx=ctx), inputs, outputs, api_name="prompt_lab", **generating(ctx))
    for trigger in (ui["show"].change, ui["keep"].change):
        trigger(bind(lab_grid, ctx=ctx), [ui["state"], ui["show"], ui["keep"], ui["threshold"]], ui["grid"],
                **QUICK)
    for trigger in (ui["keep"].change, ui["name"].change):
        trigger(bind(kept_set, ctx=ctx), [ui["keep"], ui["name"]], [ui["yaml"], ui["file"]], **QUICK)
    return ui


def wire_save(ctx: AppContext, ui: dict[str, Any], set_pickers: list[Any]) -> None:
    """Save (with --allow-save-prompts) refreshes the other tabs' prompt set pickers."""
    ui["save"].click(bind(save_kept, ctx=ctx), [ui["keep"], ui["name"]], [ui["saved"], *set_pickers],
                     api_visibility="private")
