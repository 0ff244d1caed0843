"""The Batch export tab: a zip of class folders -> the exporter -> a zip of the augmented dataset.

Its handlers (``batch_export``, the API endpoint ``/export``; ``stop_export``)
and its layout (``build_tab``) live together here. The upload is unpacked
safely (``diffusemix.archive``) into a per-request folder, never served.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
import uuid
import zipfile
from pathlib import Path
from typing import Any

import gradio as gr

from diffusemix.archive import dataset_root, safe_extract, zip_folder
from diffusemix.editors.licences import check_licence
from diffusemix.errors import DiffuseMixError
from diffusemix.export import folder
from diffusemix.export.manifest import collect
from diffusemix.recipe import Recipe
from diffusemix.ui.limits import (
    MAX_EXPORT_OUTPUT_MB,
    MAX_EXPORT_OUTPUTS,
    MAX_IMAGE_MB,
    MAX_ZIP_PIXELS,
    export_limits_text,
)
from diffusemix.ui.shared import (
    DEFAULT_SIZE,
    MAX_IMAGE_PIXELS,
    MAX_SEED,
    MAX_SIZE,
    MIN_SIZE,
    QUICK,
    ZERO_GPU,
    AppContext,
    bind,
    by_key,
    chosen_prompts,
    current,
    clear_toasts_on_start,
    clear_toasts_on_success,
    gpu,
    gpu_seconds,
    make_recipe,
    mix_controls,
    progress_fn,
    record_gpu_time,
    step_seconds,
    prompt_controls,
    show_set,
    scrub_paths,
    user_errors,
)
from diffusemix.ui.uploads import header_size, upload_path


# ---------------------------------------------------------------------------
# handlers
# ---------------------------------------------------------------------------


def _export_seconds(
    key: str, root: Path, out: Path, recipe: Recipe, save_stages: bool, progress: Any, pairs: int
) -> int:
    """The GPU duration to ask for: from this request's pairs and steps (see gpu_seconds)."""
    editor = by_key(key).editor
    return gpu_seconds(pairs, editor.spec.steps or 1, editor=editor)


def cost_note(editor: Any, pairs: int, size: int) -> str:
    """Time and memory of the run before it starts (``diffusemix.cost.plan_cost``, as the dry run):
    on a GPU from the last timed GPU call, on a CPU from the stored full-size measurement (which it
    says); "" for editors without cost figures (the preview)."""
    from diffusemix.cost import StepCosts, plan_cost

    costs = None
    if str(editor.device).startswith("cuda"):
        costs = StepCosts(per_step_s=step_seconds(editor), fixed_s=0.0, peak_gb=0.0, per_extra_sample_gb=0.0,
                          source="the GPU time measured on this app's earlier calls (before any: an H200's, for the"
                          " instruction editors)")
    try:
        got = plan_cost(editor, pairs, size=size, costs=costs)
    except DiffuseMixError:
        return ""
    return f"Estimated: {got}." if got is not None else ""


@gpu(duration=_export_seconds)
def _run_export(
    key: str, root: Path, out: Path, recipe: Recipe, save_stages: bool, progress: Any, pairs: int
) -> Any:
    """The one GPU-bound step of the Batch export (plain, picklable arguments)."""
    c = by_key(key)
    t = time.perf_counter()
    summary = _export(c, root, out, recipe, save_stages, progress)
    if c.editor.is_diffusion:
        record_gpu_time(time.perf_counter() - t, pairs, c.editor.spec.steps or 1, editor=c.editor)
    return summary


def _export(c: AppContext, root: Path, out: Path, recipe: Recipe, save_stages: bool, progress: Any) -> Any:
    from diffusemix.export import ExportOptions, export_dataset

    return export_dataset(
        root,
        out,
        recipe=recipe,
        editor=c.editor,
        fractals=c.fractals,
        options=ExportOptions(save_stages=save_stages, accept_license=c.accept_license),
        progress=progress_fn(progress, "Exporting"),
        cancel=None if ZERO_GPU else c.cancels.get(str(out)),
        progress_bar=False,
    )


@user_errors
def batch_export(
    dataset_zip: str | None,
    set_prompts: list[str] | None,
    extra_prompts: str | None,
    layouts: list[str] | None,
    mask: str,
    seam: float,
    lam: float,
    seed: float,
    size: float,
    images_per_prompt: float,
    save_stages: bool,
    request: gr.Request = None,  # type: ignore[assignment]
    progress: gr.Progress = gr.Progress(),
    prompts_per_image: str | float = "all",
    *,
    ctx: AppContext | None = None,
) -> tuple[str, str]:
    """Augment a zipped class-folder dataset; return the summary and a zip of the result.

    ``prompts_per_image``: "all" (every prompt for every image, the authors'
    code) or k prompts drawn per image from the seed (1: a dataset the size of
    the input, the paper's text); each row records its prompt.
    """
    c = current(ctx)
    # 1. check inputs
    if dataset_zip is None:
        raise gr.Error("No dataset: upload a .zip of class folders first.")
    path = upload_path(dataset_zip, "dataset zip")
    check_licence(c.editor, c.accept_license)  # weights for non-commercial use: only if the operator accepted
    prompts = chosen_prompts(set_prompts, extra_prompts, limit=50)
    recipe = make_recipe(prompts, size=size, seed=seed, layouts=layouts, mask=mask, seam=seam, lam=lam,
                         images_per_prompt=images_per_prompt, prompts_per_image=prompts_per_image)
    work = c.request_dir()
    c.busy.add(work)
    session = getattr(request, "session_hash", None) or uuid.uuid4().hex
    out = work / "diffusemix-export"
    cancel = threading.Event()
    c.cancels[session] = c.cancels[str(out)] = cancel
    try:
        # 2. unpack safely, find the class folders, check the size of the run
        progress(0, desc="Unpacking the zip")
        n = safe_extract(path, work / "input", max_file_bytes=MAX_IMAGE_MB * 2**20)
        root = dataset_root(work / "input")
        check_pixels(root)
        check_budget(n, recipe, bool(save_stages))
        # 3. say what it will cost, then run the exporter
        pairs = n * recipe.samples_per_image
        note = cost_note(c.editor, pairs, recipe.size)
        if note:
            progress(0, desc=note)
        summary = _run_export(c.key, root, out, recipe, bool(save_stages), progress, pairs)
        # 4. zip the result (a stopped run: what it made, as a dataset); the summary names no server folders
        progress(1.0, desc="Zipping the result")
        archive = work / f"diffusemix-export-{Path(path).stem[:40]}-{recipe.seed}-{uuid.uuid4().hex[:6]}.zip"
        stopped = bool(getattr(summary, "cancelled", False))
        kept = partial_zip(out, archive) if stopped else None
        if not stopped:
            zip_folder(out, archive)
        shutil.rmtree(out, ignore_errors=True)
        text = scrub_paths(summary.format(resume_hint=False).replace(str(out), archive.name))
        text += f"\n\n{note}" if note else ""
        if stopped:
            text = (
                f"Stopped. The zip holds the {kept} augmented image(s) made before the stop, in their class folders "
                f"under {folder.IMAGES_DIR}/, with their {folder.MANIFEST_NAME} rows (labels included) and a dataset "
                f"card: it loads as a dataset. Saved stages and"
                " the images not yet made are left out; press Export again to make the whole set.\n\n" + text
            )
        return text, str(archive)
    finally:
        shutil.rmtree(work / "input", ignore_errors=True)
        if c.cancels.get(session) is cancel:  # a later export of this session keeps its Stop
            c.cancels.pop(session, None)
        c.cancels.pop(str(out), None)
        c.busy.discard(work)


def output_megabytes(samples: int, size: int, save_stages: bool) -> float:
    """The images an export writes, in MB, counted uncompressed: S x S x 3 bytes an image, and with the
    saved stages six images a sample (A, and I, Î, M, H, F)."""
    return samples * size * size * 3 * (6 if save_stages else 1) / 2**20


def check_budget(images: int, recipe: Recipe, save_stages: bool) -> None:
    """The output budget of one upload (``diffusemix.ui.limits``): at most MAX_EXPORT_OUTPUTS augmented
    images and MAX_EXPORT_OUTPUT_MB of images; refused (gr.Error) before any work otherwise."""
    samples = images * recipe.samples_per_image
    elsewhere = "or the command line (python -m diffusemix export), which has no such limit."
    if samples > MAX_EXPORT_OUTPUTS:
        raise gr.Error(
            f"{images} images x {recipe.samples_per_image} per image = {samples:,} augmented images; the limit here "
            f"is {MAX_EXPORT_OUTPUTS:,}. Use fewer prompts or images, {elsewhere}"
        )
    mb = output_megabytes(samples, recipe.size, save_stages)
    if mb > MAX_EXPORT_OUTPUT_MB:
        stages = " with the saved stages (six images a sample)" if save_stages else ""
        raise gr.Error(
            f"{samples:,} augmented images of {recipe.size} x {recipe.size}{stages} are {mb:,.0f} MB of images"
            f" (counted uncompressed); the limit here is {MAX_EXPORT_OUTPUT_MB:,} MB per export. Use a smaller"
            f" size, fewer prompts or images{', no saved stages' if save_stages else ''}, {elsewhere}"
        )


def check_pixels(root: Path) -> int:
    """Decoded pixels of the unpacked images, read from their headers (nothing is decoded).

    Refuses (gr.Error) one image over MAX_IMAGE_PIXELS or a zip over MAX_ZIP_PIXELS in all, so a
    small zip cannot ask the server for minutes of decoding. Files that are not images are left to
    the exporter, which lists them.
    """
    total = count = 0
    for p in sorted(q for q in root.rglob("*") if q.is_file()):
        name = p.relative_to(root).as_posix()
        size = header_size(p)
        if size is None:
            continue
        w, h = size
        if w * h > MAX_IMAGE_PIXELS:
            raise gr.Error(f"{name} is {w:,} x {h:,} = {w * h:,} pixels; the app takes images up to "
                           f"{MAX_IMAGE_PIXELS:,} pixels. Shrink it, or use the command line (python -m diffusemix "
                           "export).")
        total += w * h
        count += 1
    if total > MAX_ZIP_PIXELS:
        raise gr.Error(f"The zip holds {count:,} images of {total:,} pixels in all; the app takes up to "
                       f"{MAX_ZIP_PIXELS:,} pixels per export. Shrink the images, split the zip, or use the command "
                       "line (python -m diffusemix export).")
    return total


def partial_zip(out: Path, archive: Path) -> int:
    """A stopped export as a dataset: the outputs made so far, their manifest rows and their dataset card.

    Rows come from the exporter's journal (``manifest.collect``), in plan order, each with its
    label; a row whose file is missing is left out, and so are saved stages and state files.
    The layout is an export's (``images/<class>/...``, the manifest and the card beside it).
    Returns how many images the zip holds.
    """
    lines, _errors, _pending = collect(out)
    kept = []
    for line in lines:
        name = json.loads(line)["file_name"]
        if folder.resolve_in(out, name).is_file():
            kept.append((name, line))
    with zipfile.ZipFile(archive, "w") as zf:
        for name, _line in kept:
            zf.write(out / name, name, compress_type=zipfile.ZIP_STORED)
        zf.writestr(folder.MANIFEST_NAME, "".join(line + "\n" for _name, line in kept),
                    compress_type=zipfile.ZIP_DEFLATED)
        zf.writestr(folder.CARD_NAME, folder.card_text(out, [line for _name, line in kept]),
                    compress_type=zipfile.ZIP_DEFLATED)
    return len(kept)


def stop_export(request: gr.Request = None, *, ctx: AppContext | None = None) -> None:  # type: ignore[assignment]
    """Stop this session's export at the next step."""
    event = current(ctx).cancels.get(getattr(request, "session_hash", None) or "")
    if event is not None:
        event.set()
        gr.Info("Stopping the export…")



# ---------------------------------------------------------------------------
# layout
# ---------------------------------------------------------------------------


def build_tab(ctx: AppContext) -> dict[str, Any]:
    """The Batch export tab and its events (inside ``gr.Blocks``); returns its components by name."""
    with gr.Tab("Batch export", id="export"):
        gr.Markdown(
            f"Upload a **.zip of class folders** (`cats/1.jpg`, `dogs/2.jpg`, …). Limits: "
            f"{export_limits_text()}. For more, use "
            f"`python -m diffusemix export`. The result holds `{folder.IMAGES_DIR}/<class>/…` (torchvision's "
            f"`ImageFolder` reads `{folder.IMAGES_DIR}/`), `{folder.MANIFEST_NAME}` and a dataset card "
            f"(`load_dataset(folder)` reads it).",
            elem_classes="dm-note",
        )
        with gr.Row(equal_height=False):
            with gr.Column(scale=2, min_width=340):
                ui: dict[str, Any] = {}
                ui["zip"] = gr.File(label="Dataset (.zip)", file_types=[".zip"], type="filepath",
                                    elem_id="dm-export-zip")
                ui.update(prompt_controls(ctx.book, check="all", prefix="dm-export"))
                ui.update(mix_controls(open=False))
                with gr.Row():
                    ui["seed"] = gr.Number(0, precision=0, minimum=0, maximum=MAX_SEED, label="Seed", min_width=120)
                    ui["copies"] = gr.Slider(1, 10, value=1, step=1, label="Images per prompt", min_width=160)
                ui["per_image"] = gr.Dropdown(
                    ["all", *(str(k) for k in range(1, 10))], value="all", label="Prompts per image",
                    elem_id="dm-export-per-image",
                    info="all: every prompt for every image (the authors' code; the dataset grows × prompts). "
                         "k: k prompts drawn per image from the seed (1: the paper's text, as many images as "
                         "you upload)",
                )
                ui["size"] = gr.Slider(MIN_SIZE, MAX_SIZE, value=DEFAULT_SIZE, step=8, label="Output size S (px)")
                ui["stages"] = gr.Checkbox(False, label="Also save the stages I, Î, M, H, F")
                with gr.Row():
                    ui["run"] = gr.Button("Export", variant="primary", elem_id="dm-export-run")
                    ui["stop"] = gr.Button("Stop", variant="stop")
            with gr.Column(scale=3, min_width=420):
                ui["summary"] = gr.Textbox(label="Summary", lines=12, elem_id="dm-export-summary")
                ui["result"] = gr.File(label="Augmented dataset (.zip)", elem_id="dm-export-result")

    ui["set"].change(bind(show_set, ctx=ctx, check="all"), ui["set"], ui["prompts"], **QUICK)
    inputs = [
        "zip", "prompts", "extra", "layouts", "mask", "seam", "lam", "seed", "size", "copies", "stages", "per_image"
    ]
    # its own queue slot: an export never takes the slots Explore and the Prompt lab need
    exported = ui["run"].click(
        bind(batch_export, ctx=ctx),
        [ui[k] for k in inputs],
        [ui["summary"], ui["result"]],
        api_name="export",
        concurrency_id="export",
        concurrency_limit=1,
    )
    clear_toasts_on_success(exported)
    clear_toasts_on_start(ui["run"])
    ui["stop"].click(bind(stop_export, ctx=ctx), None, None, queue=False, api_visibility="private")
    return ui
