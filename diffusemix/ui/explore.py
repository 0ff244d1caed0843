"""The Explore tab: one image, several prompts -> the six stages I, Î, M, H, F, A per prompt.

Its handlers (``explore``, the API endpoint ``/explore``; ``make_downloads``,
the figure and a zip; the fractal picker) and its layout (``build_tab``) live
together here. Handlers are plain functions: call them with ``ctx=`` in tests,
no server needed.
"""

from __future__ import annotations

import json
import secrets
import uuid
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gradio as gr

from diffusemix.editors import Editor, EditorSpec
from diffusemix.engine import STAGE_NAMES, STAGE_SYMBOLS, Stages
from diffusemix.images import prepare, to_pil
from diffusemix.prompt_content import content_note, content_warnings
from diffusemix.recipe import Recipe
from diffusemix.schema import field_default, label_for
from diffusemix.ui.limits import MAX_EXPLORE_PROMPTS, MAX_GUIDANCE, MAX_IMAGE_GUIDANCE, MAX_STEPS
from diffusemix.ui.shared import (
    DEFAULT_SIZE,
    MAX_SEED,
    MAX_SIZE,
    MIN_SIZE,
    QUICK,
    AppContext,
    _run_augment,
    as_int,
    bind,
    chosen_prompts,
    clear_toasts_on_start,
    clear_toasts_on_success,
    current,
    editor_for,
    editor_setting,
    example_images,
    generating,
    make_recipe,
    mix_controls,
    prompt_controls,
    scrub_paths,
    show_set,
    slug,
    user_errors,
    write_png,
)
from diffusemix.ui.annotate import BOX_FORMAT, ExploreObjects, objects_for
from diffusemix.ui.uploads import image_file, open_upload, upload_path, upscale_note

FRACTAL_MODES = ("random", "pick", "upload")

#: Gallery captions: the stage's symbol and name; Î, M and A add the prompt, layout and λ.
STAGE_CAPTIONS: dict[str, str] = {name: f"{STAGE_SYMBOLS[name]} · {name}" for name in STAGE_NAMES}
_SHORT_CAPTIONS: dict[str, str] = {"generated": "Î ·", "mask": "M ·", "augmented": "A ·"}


# ---------------------------------------------------------------------------
# handlers
# ---------------------------------------------------------------------------


def gallery_items(stages: Sequence[Stages], folder: Path, objects: ExploreObjects | None = None
                  ) -> list[tuple[str, str]]:
    """Six (PNG path, caption) pairs per sample, row by row, in the order I, Î, M, H, F, A (``objects``
    drawn on I, Î, H and A)."""
    items = []
    for row, s in enumerate(stages):
        r = s.record
        notes = {
            "generated": f" “{r.prompt}”" + (" ⚠ degenerate" if s.degenerate else ""),
            "mask": f" {r.layout}",
            "augmented": f" λ={r.lam:.2f}",
        }
        for name in STAGE_NAMES:
            caption = _SHORT_CAPTIONS[name] + notes[name] if name in notes else STAGE_CAPTIONS[name]
            image = s.image(name) if objects is None else objects.draw(name, s.image(name))
            items.append((write_png(image, folder / f"{row:02d}-{name}.png"), caption))
    return items


def _records(stages: Sequence[Stages], editor: Editor, recipe: Recipe) -> dict[str, Any]:
    return {
        # what made Î: its description and every setting that changes it (the notice: banner only)
        "editor": {**{k: v for k, v in editor.describe().items() if k != "notice"}, **editor.spec.pixel_settings()},
        "recipe": recipe.to_dict(),
        "samples": [{**s.record.to_dict(), "degenerate": s.degenerate} for s in stages],
    }


def _notes(prompts: Sequence[str], source_size: tuple[int, int], size: int) -> str:
    """Below the table: prompts that seem to describe content (the one check), and an upscaled small upload."""
    lines = [f"- Warning: {content_note(p, why)}." for p, why in content_warnings(prompts)]
    note = upscale_note(source_size, size)
    if note:
        lines.append(f"- {note}")
    return ("\n\n" + "\n".join(lines)) if lines else ""


def _summary(stages: Sequence[Stages], seed: int, editor: Editor) -> str:
    rows = [
        f"| {i + 1} | {s.record.prompt} | {s.record.layout} | {s.record.lam:.2f} | {s.record.fractal} | "
        f"{s.record.seed} |" + (" ⚠ Î degenerate: " + s.degenerate if s.degenerate else "")
        for i, s in enumerate(stages)
    ]
    head = (
        f"**{len(stages)} sample{'s' if len(stages) != 1 else ''}**, master seed **{seed}**, Î by "
        f"**{editor.name}**{'' if editor.is_diffusion else ' (preview, not a diffusion model)'}.\n\n"
        "| row | prompt | layout | λ | fractal | editor seed |\n|---|---|---|---|---|---|\n"
    )
    return head + "\n".join(rows)


@user_errors
def explore(
    image: str | None,
    set_prompts: list[str] | None = None,
    extra_prompts: str | None = "",
    layouts: list[str] | None = field_default(Recipe, "layouts"),
    mask: str = field_default(Recipe, "mask"),
    seam: float = field_default(Recipe, "seam"),
    lam: float = field_default(Recipe, "lam"),
    fractal: str = "random",
    fractal_name: str | None = None,
    fractal_image: str | None = None,
    seed: float = 0,
    randomize_seed: bool = False,
    size: float = DEFAULT_SIZE,
    steps: float | None = None,
    guidance_scale: float | None = None,
    image_guidance_scale: float | None = None,
    strength: float | None = None,
    annotation_file: str | None = None,
    boxes: str | None = "",
    draw_objects: bool = True,
    progress: gr.Progress = gr.Progress(),
    *,
    ctx: AppContext | None = None,
) -> tuple[list[tuple[Any, str]], int, dict[str, Any], str, dict[str, Any]]:
    """Run one image through every chosen prompt: six stages per prompt.

    API: ``Client(url).predict(image=handle_file(path), api_name="/explore")``;
    every other input is optional (the page's defaults). In order:
        image: the input image (``handle_file(path)``), decoded by the library.
        set_prompts: prompts ticked from the default prompt set (``[]`` for
            none; left out: its first two).
        extra_prompts: your own prompts, comma or newline separated.
        layouts: mask layouts to draw from: left, right, top, bottom.
        mask: "linspace" (the authors' ramp), "ramp" (centred) or "binary".
            seam: ramp width in px (0-64).
        lam: λ, the fractal weight, in [0, 1].
        fractal: "random" (drawn from the set), "pick" (``fractal_name``, a
            name of the set) or "upload" (``fractal_image``).
        seed: the master seed; randomize_seed: draw a new one (returned).
        size: output side S in px (64-512).
        steps, guidance_scale, image_guidance_scale, strength: editor
            settings (used by the diffusion editors; the preview ignores
            them; left out: the editor's own).
        annotation_file: objects of the image (``handle_file(path)``): a COCO
            JSON or a YOLO label .txt; or ``boxes``: typed, one a line,
            ``x0,y0,x1,y1,class`` in the image's pixels. draw_objects: draw
            them (boxes, polygon and mask outlines) on I, Î, H and A.

    Returns:
        gallery (six (image, caption) per prompt, row by row), the seed used,
        the records (JSON: editor, recipe, one record per sample), a Markdown
        summary, and the session state used by the download buttons.
    """
    c = current(ctx)
    # 1. check inputs
    if image is None:
        raise gr.Error("No image: upload one, or click one of the examples below it.")
    path = upload_path(image, "image")
    if set_prompts is None:
        set_prompts = list(c.book.get())[:2]
    prompts = chosen_prompts(set_prompts, extra_prompts, limit=MAX_EXPLORE_PROMPTS)
    seed_used = secrets.randbelow(MAX_SEED + 1) if randomize_seed else as_int(seed, "seed")
    recipe = make_recipe(prompts, size=size, seed=seed_used, layouts=layouts, mask=mask, seam=seam, lam=lam)
    if fractal not in FRACTAL_MODES:
        raise gr.Error(f"fractal must be one of {', '.join(FRACTAL_MODES)}; got {fractal!r}")
    settings = {"steps": steps, "guidance_scale": guidance_scale, "image_guidance_scale": image_guidance_scale,
                "strength": strength}
    editor = editor_for(c, **settings)  # checks the values now; the GPU function makes its own
    # 2. the input I, its objects if given, and, if chosen, the fractal F
    source = open_upload(path, "image")
    source_size = source.size
    objects = objects_for(upload_path(annotation_file, "annotation file") if annotation_file else None, boxes,
                          image_name=path.name, size=source_size, recipe=recipe)
    array = prepare(source, recipe.size, resize=recipe.resize)
    override = picked = None
    if fractal == "pick":
        if not fractal_name:
            raise gr.Error("Pick a fractal from the set (click one in the fractal gallery), or choose 'random'.")
        if fractal_name not in c.fractals:
            raise gr.Error(f"Pick a fractal from the set: {scrub_paths(fractal_name)[:80]!r} is not one of its "
                           f"{len(c.fractals)} names (e.g. {c.fractals.names[0]!r}); or choose 'random'.")
        picked = fractal_name
    elif fractal == "upload":
        if fractal_image is None:
            raise gr.Error("Upload a fractal image, or choose 'random'.")
        override = prepare(open_upload(fractal_image, "fractal image"), recipe.size)
    # 3. generate and mix
    stages = _run_augment(c.key, array, recipe, settings, path.name, picked, override, progress,
                          f"Î by {editor.name}")
    records = _records(stages, editor, recipe)
    if objects is not None:  # the exporter's row fields of each sample: objects, what the resize did, Î shares
        records["objects"] = {"categories": list(objects.categories.names),
                              "samples": objects.rows([s.record for s in stages])}
    state = {"stages": stages, "records": records, "seed": seed_used, "editor": editor.name, "image": path.stem}
    gallery = gallery_items(stages, c.request_dir(), objects if draw_objects else None)
    summary = _summary(stages, seed_used, editor) + _notes(prompts, source_size, recipe.size)
    if objects is not None:
        summary += "\n\n" + objects.summary([s.record for s in stages])
    return gallery, seed_used, records, summary, state


@user_errors
def make_downloads(state: dict[str, Any] | None, *, ctx: AppContext | None = None) -> Any:
    """The current view as a publication figure (PNG, PDF) and a zip of its images and records."""
    from diffusemix.figures import save_figure, stage_grid

    c = current(ctx)
    if not state or not state.get("stages"):
        raise gr.Error("Nothing to download yet: press Generate first.")
    stages: list[Stages] = state["stages"]
    out = c.request_dir()
    # named by image, seed and run: two downloads never share a name
    stem = f"diffusemix-{slug(state.get('image', 'image'), 30)}-{state['seed']}-{uuid.uuid4().hex[:6]}"
    fig = stage_grid(stages, editor=state["editor"])
    png = save_figure(fig, out / f"{stem}-figure.png")
    pdf = save_figure(fig, out / f"{stem}-figure.pdf")
    archive = out / f"{stem}-stages.zip"
    editor = state["records"]["editor"]
    with zipfile.ZipFile(archive, "w") as zf:
        lines = []
        for i, s in enumerate(stages):
            folder = f"{i + 1:02d}-{slug(s.record.prompt)}"
            files = {}
            for name in STAGE_NAMES:
                arc = f"{folder}/{STAGE_NAMES.index(name) + 1}-{name}.png"
                tmp = out / "stage.png"
                s.image(name).save(tmp)
                zf.write(tmp, arc, compress_type=zipfile.ZIP_STORED)
                files[name] = arc
            lines.append(json.dumps({**s.record.to_dict(), "degenerate": s.degenerate, "files": files,
                                     "editor": editor}, ensure_ascii=False))
        zf.writestr("records.jsonl", "\n".join(lines) + "\n", compress_type=zipfile.ZIP_DEFLATED)
        zf.writestr("recipe.json", json.dumps(state["records"]["recipe"], indent=2) + "\n")
        (out / "stage.png").unlink(missing_ok=True)
    return gr.update(value=[str(png), str(pdf), str(archive)], visible=True)


def fractal_mode_changed(mode: str) -> tuple[Any, Any]:
    """Show the fractal picker or the fractal upload for the chosen mode."""
    return gr.update(visible=mode == "pick"), gr.update(visible=mode == "upload")


def pick_fractal(evt: gr.SelectData, *, ctx: AppContext | None = None) -> tuple[Any, Any]:
    """A click in the fractal gallery picks that fractal."""
    c = current(ctx)
    name = c.thumbnails[evt.index][1] if 0 <= evt.index < len(c.thumbnails) else None
    return gr.update(value=name), gr.update(value="pick")



# ---------------------------------------------------------------------------
# layout
# ---------------------------------------------------------------------------


def _thumbnails(ctx: AppContext, size: int = 96) -> list[tuple[str, str]]:
    """Small PNGs of the fractal set for the picker gallery (path, name)."""
    folder = ctx.workdir / "fractal-thumbnails"
    folder.mkdir(exist_ok=True)
    out = []
    for i, name in enumerate(ctx.fractals.names):
        path = folder / f"{i:04d}.png"
        to_pil(ctx.fractals.load(name, size)).save(path)
        out.append((str(path), name))
    return out


def _stage_header() -> str:
    cells = "".join(
        f"<div><span class='dm-sym'>{STAGE_SYMBOLS[n]}</span> {n}</div>" for n in STAGE_NAMES
    )
    return f"<div class='dm-stage-header'>{cells}</div>"


def _fractal_controls(ctx: AppContext) -> dict[str, Any]:
    """The fractal mode, the picker (a gallery of the set) and the upload."""
    ui: dict[str, Any] = {}
    with gr.Accordion("Fractal F", open=False):
        ui["fractal"] = gr.Radio(list(FRACTAL_MODES), value="random", label="Fractal",
                                 info="drawn at random from the set, picked (click one below), or uploaded")
        # a text box, not a dropdown: the API lists no 128 names; the handler checks the name
        ui["fractal_name"] = gr.Textbox("", label="Picked fractal (click one below)", max_lines=1, visible=False,
                                        elem_id="dm-fractal-name")
        ui["fractal_gallery"] = gr.Gallery([path for path, _ in ctx.thumbnails], columns=6, height=230,
                                           allow_preview=False, label="Fractal set", show_label=False,
                                           format="png", buttons=[], elem_id="dm-fractals")
        ui["fractal_image"] = image_file(label="Your fractal image", height=180, visible=False,
                                        sources=["upload", "clipboard"])
    return ui


def _run_controls(ctx: AppContext) -> dict[str, Any]:
    """Seed and size; the editor's settings (steps, guidance, strength)."""
    ui: dict[str, Any] = {}
    with gr.Accordion("Seed and size", open=False):
        with gr.Row():
            ui["seed"] = gr.Number(0, precision=0, minimum=0, maximum=MAX_SEED, label="Seed", min_width=120)
            ui["randomize"] = gr.Checkbox(False, label="Randomise", info="shows the seed used", min_width=120)
        ui["size"] = gr.Slider(MIN_SIZE, MAX_SIZE, value=DEFAULT_SIZE, step=8, label="Output size S (px)")
    with gr.Accordion("Editor settings", open=False):
        if not ctx.editor.is_diffusion:
            gr.Markdown("The preview editor ignores these; they apply to InstructPix2Pix "
                        "(strength: img2img only).", elem_classes="dm-note")
        ui["steps"] = gr.Slider(1, MAX_STEPS, value=editor_setting(ctx, "steps"), step=1,
                                label=label_for(EditorSpec, "steps"))
        ui["guidance"] = gr.Slider(0.0, MAX_GUIDANCE, value=editor_setting(ctx, "guidance_scale"), step=0.1,
                                   label=label_for(EditorSpec, "guidance_scale"))
        ui["image_guidance"] = gr.Slider(0.0, MAX_IMAGE_GUIDANCE, value=editor_setting(ctx, "image_guidance_scale"),
                                         step=0.05, label=label_for(EditorSpec, "image_guidance_scale"))
        ui["strength"] = gr.Slider(0.0, 1.0, value=editor_setting(ctx, "strength"), step=0.01,
                                   label=label_for(EditorSpec, "strength") + " (img2img)")
    return ui


def _object_controls() -> dict[str, Any]:
    """An optional annotation of the image (a COCO JSON or YOLO .txt, or typed boxes) and whether to draw it."""
    ui: dict[str, Any] = {}
    with gr.Accordion("Objects (detection, segmentation)", open=False, elem_id="dm-objects"):
        gr.Markdown("Boxes, polygons and masks of the image ride along: the mixing keeps geometry, so they stand on"
                    " I, Î, H and A.", elem_classes="dm-note")
        ui["annotation_file"] = gr.File(label="Annotation file: a COCO JSON or a YOLO label .txt of this image",
                                        file_types=[".json", ".txt"], type="filepath", height=90,
                                        elem_id="dm-annotation-file")
        ui["boxes"] = gr.Textbox("", label=f"Or boxes, one a line: {BOX_FORMAT} (pixels of the image)", lines=3,
                                 max_lines=12, placeholder="40,60,180,200,cat", elem_id="dm-boxes")
        ui["draw_objects"] = gr.Checkbox(True, label="Draw boxes and mask outlines on I, Î, H and A",
                                         elem_id="dm-draw-objects")
    return ui


def _results_column() -> dict[str, Any]:
    """The stage gallery, the summary, the downloads and the records."""
    ui: dict[str, Any] = {}
    # the six stages and their header in one box: on a narrow screen (a phone) the box scrolls sideways,
    # not the page (CSS: #dm-stages-box)
    with gr.Column(elem_id="dm-stages-box", min_width=0):
        gr.HTML(_stage_header())
        ui["stages_view"] = gr.Gallery(label="Stages", show_label=False, columns=6, height="auto",
                                       object_fit="contain", format="png", allow_preview=True, elem_id="dm-stages")
    ui["summary"] = gr.Markdown(label="Summary", elem_id="dm-summary")
    ui["downloads_btn"] = gr.Button("Make downloads: the figure (PNG + PDF) and a zip of the images with their "
                                    "records", elem_id="dm-downloads-btn")
    ui["downloads"] = gr.File(label="Downloads", file_count="multiple", visible=False, elem_id="dm-downloads")
    with gr.Accordion("Records (JSON)", open=False):
        ui["records"] = gr.JSON(label="Records", elem_id="dm-records")
    ui["state"] = gr.State()
    return ui


def _wire(ctx: AppContext, ui: dict[str, Any]) -> None:
    """The tab's events: the set picker, the fractal picker, Generate (``/explore``), the downloads."""
    ui["set"].change(bind(show_set, ctx=ctx, check="two"), ui["set"], ui["prompts"], **QUICK)
    ui["fractal"].change(fractal_mode_changed, ui["fractal"], [ui["fractal_name"], ui["fractal_image"]], **QUICK)
    ui["fractal_gallery"].select(bind(pick_fractal, ctx=ctx), None, [ui["fractal_name"], ui["fractal"]], **QUICK)
    ui["run"].click(lambda: gr.update(value=None, visible=False), None, ui["downloads"], **QUICK)
    inputs = ["image", "prompts", "extra", "layouts", "mask", "seam", "lam", "fractal", "fractal_name",
              "fractal_image", "seed", "randomize", "size", "steps", "guidance", "image_guidance", "strength",
              "annotation_file", "boxes", "draw_objects"]
    generated = ui["run"].click(
        bind(explore, ctx=ctx),
        [ui[k] for k in inputs],
        [ui["stages_view"], ui["seed"], ui["records"], ui["summary"], ui["state"]],
        api_name="explore",
        **generating(ctx),
    )
    clear_toasts_on_success(generated)
    clear_toasts_on_start(ui["run"])
    ui["downloads_btn"].click(bind(make_downloads, ctx=ctx), ui["state"], ui["downloads"],
                              api_visibility="private", concurrency_limit=2)


def build_tab(ctx: AppContext) -> dict[str, Any]:
    """The Explore tab and its events (inside ``gr.Blocks``); returns its components by name."""
    ctx.thumbnails = _thumbnails(ctx)
    with gr.Tab("Explore", id="explore"):
        with gr.Row(equal_height=False):
            with gr.Column(scale=2, min_width=340):
                ui: dict[str, Any] = {}
                ui["image"] = image_file(label="Input image I", height=260,
                                        sources=["upload", "clipboard"], elem_id="dm-explore-image")
                # Generate under the image: above the fold at 1440 x 900, where the results appear
                ui["run"] = gr.Button("Generate", variant="primary", elem_id="dm-generate")
                ui.update(prompt_controls(ctx.book, check="two", prefix="dm-explore"))
                gr.Examples([[p] for p in example_images()], inputs=[ui["image"]], label="Examples (CC0)",
                            examples_per_page=8)
                ui.update(mix_controls(open=True))
                ui.update(_object_controls())
                ui.update(_fractal_controls(ctx))
                ui.update(_run_controls(ctx))
            with gr.Column(scale=5, min_width=320):
                ui.update(_results_column())
    _wire(ctx, ui)
    return ui
