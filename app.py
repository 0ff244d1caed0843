"""DiffuseMix in the browser: explore the six stages, curate prompts, export a dataset.

    python app.py                                  # http://127.0.0.1:7860, editor "auto"
    python app.py --editor instruct-pix2pix        # the paper's model (weights cached)
    python app.py --model /path/to/local/pipeline  # a local InstructPix2Pix folder
    python app.py --allow-save-prompts             # let the Prompt lab write prompts.yaml

Three tabs, one shared editor (loaded once at start-up):

* Explore: one image, several prompts -> I, Î, M, H, F, A per prompt, with a
  publication figure (PNG + PDF) and a zip of images and records. Also the
  API endpoint ``/explore`` (see ``explore``'s docstring).
* Prompt lab: several images x candidate prompts as a grid of Î (or A); keep
  or drop prompts, download the kept set as a prompts.yaml set.
* Batch export: a zip of class folders -> the exporter -> a zip of the
  augmented dataset with its metadata.jsonl.

This file is a shell: handlers check what the page sends, call ``diffusemix``,
and turn its ``ValueError`` s into ``gr.Error`` messages. No maths, no model
code. ``demo`` is built at import (editor from $DIFFUSEMIX_EDITOR, default
"auto"); ``python app.py`` builds it from the command line instead and
launches it.
"""

from __future__ import annotations

import argparse
import atexit
import dataclasses
import functools
import json
import logging
import os
import re
import secrets
import shutil
import tempfile
import threading
import time
import uuid
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr

from diffusemix.archive import MAX_IMAGES as MAX_ZIP_IMAGES
from diffusemix.archive import MAX_UNPACKED_MB as MAX_ZIP_UNPACKED_MB
from diffusemix.archive import dataset_root, safe_extract, zip_folder
from diffusemix.editors import Editor, load_editor
from diffusemix.engine import STAGE_NAMES, STAGE_SYMBOLS, Stages, augment
from diffusemix.errors import Cancelled, DiffuseMixError
from diffusemix.fractals import FractalSet
from diffusemix.functional import LAYOUTS, MASK_KINDS
from diffusemix.images import load_image, prepare
from diffusemix.prompts import PromptBook, check_prompts, format_set, load_prompts, parse_prompt_list, save_set
from diffusemix.recipe import Recipe

logger = logging.getLogger("diffusemix.app")

APP_DIR = Path(__file__).resolve().parent
ASSETS_DIR = APP_DIR / "assets"
EXAMPLES_DIR = ASSETS_DIR / "examples"

# ---------------------------------------------------------------------------
# limits (stated on the page)
# ---------------------------------------------------------------------------

#: Largest upload of any kind (passed to launch(max_file_size=...)).
MAX_UPLOAD_MB = 200
#: Batch export: augmented images one run may make (images x prompts x copies).
MAX_EXPORT_OUTPUTS = 10_000
#: Explore: prompts per run. Prompt lab: images and candidate prompts.
MAX_EXPLORE_PROMPTS = 12
MAX_LAB_IMAGES = 8
MAX_LAB_PROMPTS = 12
#: Output side S offered by the size sliders.
MIN_SIZE, MAX_SIZE, DEFAULT_SIZE = 64, 512, 256
MAX_SEED = 2**32 - 1
#: How long this app's per-request files (stage PNGs, figures, zips) are kept. Gradio copies
#: every file it serves into its own cache when the handler returns (deleted by delete_cache).
KEEP_FILES_S = 900
#: Gradio's cache: check every 30 min, delete files older than an hour.
GRADIO_CACHE_CLEANUP = (1800, 3600)

FRACTAL_MODES = ("random", "pick", "upload")
LAB_SHOW = ("Î generated", "A augmented")

#: Gallery captions: the stage's symbol and name; Î, M and A add the prompt, layout and λ.
STAGE_CAPTIONS: dict[str, str] = {name: f"{STAGE_SYMBOLS[name]} · {name}" for name in STAGE_NAMES}
_SHORT_CAPTIONS: dict[str, str] = {"generated": "Î ·", "mask": "M ·", "augmented": "A ·"}

IP2P_ID = "timbrooks/instruct-pix2pix"


# ---------------------------------------------------------------------------
# ZeroGPU: only the functions that run the editor ask for a GPU
# ---------------------------------------------------------------------------


#: On ZeroGPU the decorated functions run in a forked worker: their arguments and results are
#: pickled, so they take plain data (arrays, a Recipe, a settings dict, the context's key) and
#: find the shared editor in _CONTEXTS; a threading.Event cannot cross, so Stop is local only.
ZERO_GPU = bool(os.environ.get("SPACES_ZERO_GPU"))


def gpu(duration: int = 60) -> Callable[[Callable], Callable]:
    """``spaces.GPU(duration=...)`` on a Hugging Face Space with ``spaces``; a no-op elsewhere."""
    try:
        import spaces  # type: ignore[import-not-found]
    except ImportError:
        return lambda fn: fn
    return spaces.GPU(duration=duration)


# ---------------------------------------------------------------------------
# the app's state: one editor for every user
# ---------------------------------------------------------------------------


@dataclass(repr=False)
class AppContext:
    """What every handler needs: the shared editor, fractals, prompt file, flags."""

    editor: Editor
    fractals: FractalSet
    prompts_path: Path
    book: PromptBook
    allow_save_prompts: bool = False
    on_space: bool = False
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="diffusemix-app-")))
    cancels: dict[str, threading.Event] = field(default_factory=dict)
    busy: set[Path] = field(default_factory=set)  # request folders of running exports: never swept
    key: str = field(default_factory=lambda: uuid.uuid4().hex)  # this context in _CONTEXTS
    thumbnails: list[tuple[str, str]] = field(default_factory=list)

    def __repr__(self) -> str:
        return f"AppContext(editor={self.editor.name!r}, fractals={len(self.fractals)}, prompts={self.prompts_path})"

    @property
    def concurrency(self) -> int:
        """Generating events at once: one for a diffusion model (one GPU), two for the preview."""
        return 1 if self.editor.is_diffusion else 2

    def request_dir(self) -> Path:
        """A fresh folder for one request's files; other requests' folders older than KEEP_FILES_S go."""
        root = self.workdir / "requests"
        root.mkdir(exist_ok=True)
        now = time.time()
        for old in root.iterdir():
            try:
                if old not in self.busy and now - old.stat().st_mtime > KEEP_FILES_S:
                    shutil.rmtree(old, ignore_errors=True)
            except OSError:
                pass
        d = root / uuid.uuid4().hex
        d.mkdir()
        return d


_CONTEXT: AppContext | None = None  # the last one built (handlers called without ctx use it)
_CONTEXTS: dict[str, AppContext] = {}  # by key, for the GPU functions


def _ctx(ctx: AppContext | None) -> AppContext:
    if ctx is not None:
        return ctx
    if _CONTEXT is None:
        raise RuntimeError("no app context: call build_demo() first")
    return _CONTEXT


def make_context(
    editor: str | Editor = "auto",
    *,
    model: str | None = None,
    device: str | None = None,
    prompts_path: str | os.PathLike | None = None,
    fractal_dir: str | os.PathLike | None = None,
    allow_save_prompts: bool = False,
) -> AppContext:
    """Load the editor (once), the fractal set and the prompt file."""
    on_space = bool(os.environ.get("SPACE_ID"))
    if not isinstance(editor, str):
        ed = editor
    else:
        ed = load_editor(editor, model=model, device=device)
        if ed.is_diffusion:
            ed.load()  # fail now, at start-up, not in the first user's request
    fractals = FractalSet.from_folder(fractal_dir) if fractal_dir else FractalSet.default()
    path = Path(prompts_path) if prompts_path else None
    book = load_prompts(path)
    ctx = AppContext(
        editor=ed,
        fractals=fractals,
        prompts_path=book.path or Path(path or "prompts.yaml"),
        book=book,
        allow_save_prompts=allow_save_prompts and not on_space,
        on_space=on_space,
    )
    atexit.register(shutil.rmtree, ctx.workdir, True)
    _CONTEXTS[ctx.key] = ctx
    return ctx


# ---------------------------------------------------------------------------
# small helpers (checks at the boundary; no maths)
# ---------------------------------------------------------------------------


def user_errors(fn: Callable) -> Callable:
    """Turn the library's ValueErrors into ``gr.Error`` (a message in the page, no trace)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except Cancelled:
            raise gr.Error("Stopped: the run was cancelled.") from None
        except (DiffuseMixError, ValueError) as e:
            raise gr.Error(str(e)) from None
        except Exception as e:  # a bug: log the trace on the server, show a short message
            logger.exception("unexpected error in %s", fn.__name__)
            raise gr.Error(f"Unexpected error ({type(e).__name__}); the details are in the server log.") from None

    return wrapper


def _allowed_roots() -> list[Path]:
    """Where files a handler opens may live: gradio's upload folder and the bundled assets."""
    from gradio.utils import get_upload_folder

    return [Path(get_upload_folder()).resolve(), ASSETS_DIR.resolve()]


def _upload_path(value: Any, what: str) -> Path:
    """The path of an uploaded file, refusing anything but gradio's uploads and the bundled assets."""
    if isinstance(value, dict):  # a FileData dict
        value = value.get("path")
    if isinstance(value, (list, tuple)) and value:  # a (path, caption) gallery item
        value = value[0]
    if not isinstance(value, (str, os.PathLike)) or not str(value):
        raise gr.Error(f"No {what} was given.")
    path = Path(value).resolve()
    if not any(path.is_relative_to(root) for root in _allowed_roots()):
        raise gr.Error(f"The {what} must be an uploaded file.")
    if not path.is_file():
        raise gr.Error(f"The {what} upload is missing on the server; upload it again.")
    return path


def _prompts(set_prompts: Sequence[str] | None, extra: str | None, *, limit: int) -> tuple[str, ...]:
    """The ticked prompts followed by the typed ones, each once, checked."""
    chosen = list(set_prompts or [])
    if extra and extra.strip():
        chosen += parse_prompt_list(extra)
    seen: set[str] = set()
    unique = [p for p in chosen if not (p.strip().casefold() in seen or seen.add(p.strip().casefold()))]
    if not unique:
        raise gr.Error("Choose at least one prompt: tick one from the set, or type your own (comma separated).")
    if len(unique) > limit:
        raise gr.Error(f"{len(unique)} prompts chosen; at most {limit} at once here.")
    return check_prompts(unique)


def _float(value: Any, name: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise gr.Error(f"{name} must be a number; got {value!r}") from None
    if isinstance(value, bool) or number != number:
        raise gr.Error(f"{name} must be a number; got {value!r}")
    return number


def _int(value: Any, name: str) -> int:
    number = _float(value, name)
    if number != int(number):
        raise gr.Error(f"{name} must be a whole number; got {value!r}")
    return int(number)


def _recipe(
    prompts: tuple[str, ...],
    layouts: Sequence[str] | None,
    mask: str,
    seam: Any,
    lam: Any,
    seed: Any,
    size: Any,
    images_per_prompt: Any = 1,
) -> Recipe:
    if not layouts:
        raise gr.Error(f"Choose at least one mask layout ({', '.join(LAYOUTS)}).")
    size_i = _int(size, "size")
    if not MIN_SIZE <= size_i <= MAX_SIZE:
        raise gr.Error(f"size must be between {MIN_SIZE} and {MAX_SIZE} pixels here; got {size_i}")
    return Recipe(
        size=size_i,
        prompts=prompts,
        layouts=tuple(layouts),
        mask=mask,
        seam=_int(seam, "seam"),
        lam=_float(lam, "λ (lam)"),
        seed=_int(seed, "seed"),
        images_per_prompt=_int(images_per_prompt, "images per prompt"),
    )


def _editor_for(ctx: AppContext, **changes: Any) -> Editor:
    """The shared editor, with per-call settings (steps, guidance...) where it has them.

    A variant shares the loaded pipeline (a shallow copy with other settings),
    so no second model is ever loaded. Settings the editor does not have are
    ignored (the preview has none; ``strength`` is img2img's).
    """
    ed = ctx.editor
    settings = getattr(ed, "settings", None)
    if settings is None or not dataclasses.is_dataclass(settings):
        return ed
    names = {f.name for f in dataclasses.fields(settings)}
    wanted = {k: v for k, v in changes.items() if k in names and v is not None}
    wanted = {k: (int(v) if isinstance(getattr(settings, k), int) else float(v)) for k, v in wanted.items()}
    if all(getattr(settings, k) == v for k, v in wanted.items()):
        return ed
    variant = ed.with_settings(**wanted) if hasattr(ed, "with_settings") else None
    if variant is None:
        import copy

        variant = copy.copy(ed)
        variant.settings = dataclasses.replace(settings, **wanted)  # validated by the settings class
    return variant


def _progress_fn(progress: Any, desc: str) -> Callable[[int, int], None] | None:
    if progress is None:
        return None

    def report(done: int, total: int) -> None:
        try:
            progress((done, max(total, 1)), desc=desc)
        except Exception:  # progress is best effort; never fail a run for it
            pass

    return report


def _slug(text: str, n: int = 40) -> str:
    s = re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()
    return s[:n] or "prompt"


# ---------------------------------------------------------------------------
# the status line
# ---------------------------------------------------------------------------


def status_markdown(ctx: AppContext) -> str:
    """Which editor makes Î, plainly; how to get the diffusion model when it is the preview."""
    d = ctx.editor.describe()
    if not ctx.editor.is_diffusion:
        text = (
            "<div class='dm-status dm-preview'>⚠️ <b>Î is made by the preview editor</b>: weight-free colour and "
            "texture filters, <b>not a diffusion model</b>. M, H, F and A are the real method; only Î is a stand-in. "
        )
        if ctx.on_space:
            text += "This Space has no GPU: on a GPU Space the app downloads <code>timbrooks/instruct-pix2pix</code> "
            text += "automatically. "
        else:
            text += (
                f"For the paper's model run <code>python app.py --editor instruct-pix2pix</code> once "
                f"<code>{IP2P_ID}</code> is in the Hugging Face cache, or "
                "<code>python app.py --model /path/to/local/folder</code>; on a GPU Space it is downloaded "
                "automatically. "
            )
        notice = getattr(ctx.editor, "notice", None)
        if notice:
            text += f"<details><summary>Why the preview</summary>{_html(notice)}</details>"
        return text + "</div>"
    model = d.get("model") or "?"
    text = (
        f"<div class='dm-status dm-diffusion'>✅ <b>Î is made by {_html(d.get('name', '?'))}</b> "
        f"(<code>{_html(str(model))}</code>) on <code>{_html(str(d.get('device', '?')))}</code>"
    )
    if d.get("dtype"):
        text += f" in {_html(str(d['dtype']))}"
    text += f". {_html(str(d.get('summary', '')))}</div>"
    return text


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# ---------------------------------------------------------------------------
# Explore
# ---------------------------------------------------------------------------


@gpu(duration=120)
def _run_augment(
    key: str,
    image: Any,
    recipe: Recipe,
    settings: dict[str, Any],
    source: str,
    fractal_name: str | None,
    fractal: Any,
    progress: Any,
    desc: str,
) -> list[Stages]:
    """The one GPU-bound step of Explore and the Prompt lab (plain, picklable arguments)."""
    c = _CONTEXTS[key]
    editor = _editor_for(c, **settings)
    return augment(image, recipe, editor, c.fractals, source=source, fractal_name=fractal_name,
                   fractal_override=fractal, progress=_progress_fn(progress, desc))


def show_set(set_name: str | None, *, ctx: AppContext | None = None, check: str = "two") -> Any:
    """Fill the prompt checkboxes with a set's prompts (Explore ticks the first two, Export all)."""
    c = _ctx(ctx)
    if not set_name:
        return gr.update(choices=[], value=[])
    try:
        prompts = list(c.book.get(set_name))
    except DiffuseMixError as e:
        raise gr.Error(str(e)) from None
    return gr.update(choices=prompts, value=prompts if check == "all" else prompts[:2])


def _png(image: Any, path: Path) -> str:
    """Write a lossless PNG fast (zlib level 1: ~6x faster than the default, ~15 % larger)."""
    image.save(path, format="PNG", compress_level=1)
    return str(path)


def gallery_items(stages: Sequence[Stages], folder: Path) -> list[tuple[str, str]]:
    """Six (PNG path, caption) pairs per sample, row by row, in the order I, Î, M, H, F, A."""
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
            items.append((_png(s.image(name), folder / f"{row:02d}-{name}.png"), caption))
    return items


def _records(stages: Sequence[Stages], editor: Editor, recipe: Recipe) -> dict[str, Any]:
    return {
        "editor": editor.describe(),
        "recipe": recipe.to_dict(),
        "samples": [{**s.record.to_dict(), "degenerate": s.degenerate} for s in stages],
    }


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
    set_prompts: list[str] | None,
    extra_prompts: str | None,
    layouts: list[str] | None,
    mask: str,
    seam: float,
    lam: float,
    fractal: str,
    fractal_name: str | None,
    fractal_image: str | None,
    seed: float,
    randomize_seed: bool,
    size: float,
    steps: float,
    guidance_scale: float,
    image_guidance_scale: float,
    strength: float,
    progress: gr.Progress = gr.Progress(),
    *,
    ctx: AppContext | None = None,
) -> tuple[list[tuple[Any, str]], int, dict[str, Any], str, dict[str, Any]]:
    """Run one image through every chosen prompt: six stages per prompt.

    API (``client.predict(..., api_name="/explore")``), in order:
        image: the input image (``handle_file(path)``).
        set_prompts: prompts ticked from the default prompt set (``[]`` for none).
        extra_prompts: your own prompts, comma or newline separated.
        layouts: mask layouts to draw from: left, right, top, bottom.
        mask: "ramp" or "binary". seam: ramp width in px (0-64).
        lam: λ, the fractal weight, in [0, 1].
        fractal: "random" (drawn from the set), "pick" (``fractal_name``) or
            "upload" (``fractal_image``).
        seed: the master seed; randomize_seed: draw a new one (returned).
        size: output side S in px (64-512).
        steps, guidance_scale, image_guidance_scale, strength: editor
            settings (used by the diffusion editors; the preview ignores them).

    Returns:
        gallery (six (image, caption) per prompt, row by row), the seed used,
        the records (JSON: editor, recipe, one record per sample), a Markdown
        summary, and the session state used by the download buttons.
    """
    c = _ctx(ctx)
    # 1. check inputs
    if image is None:
        raise gr.Error("No image: upload one, or click one of the examples below it.")
    path = _upload_path(image, "image")
    prompts = _prompts(set_prompts, extra_prompts, limit=MAX_EXPLORE_PROMPTS)
    seed_used = secrets.randbelow(MAX_SEED + 1) if randomize_seed else _int(seed, "seed")
    recipe = _recipe(prompts, layouts, mask, seam, lam, seed_used, size)
    if fractal not in FRACTAL_MODES:
        raise gr.Error(f"fractal must be one of {', '.join(FRACTAL_MODES)}; got {fractal!r}")
    settings = {"steps": steps, "guidance_scale": guidance_scale, "image_guidance_scale": image_guidance_scale,
                "strength": strength}
    editor = _editor_for(c, **settings)  # checks the values now; the GPU function makes its own
    # 2. the input I and, if chosen, the fractal F
    array = prepare(load_image(path), recipe.size, resize=recipe.resize)
    override = picked = None
    if fractal == "pick":
        if not fractal_name or fractal_name not in c.fractals:
            raise gr.Error("Pick a fractal from the set (click one in the fractal gallery), or choose 'random'.")
        picked = fractal_name
    elif fractal == "upload":
        if fractal_image is None:
            raise gr.Error("Upload a fractal image, or choose 'random'.")
        override = prepare(load_image(_upload_path(fractal_image, "fractal image")), recipe.size)
    # 3. generate and mix
    stages = _run_augment(c.key, array, recipe, settings, path.name, picked, override, progress,
                          f"Î by {editor.name}")
    records = _records(stages, editor, recipe)
    state = {"stages": stages, "records": records, "seed": seed_used, "editor": editor.name}
    gallery = gallery_items(stages, c.request_dir())
    return gallery, seed_used, records, _summary(stages, seed_used, editor), state


@user_errors
def make_downloads(state: dict[str, Any] | None, *, ctx: AppContext | None = None) -> Any:
    """The current view as a publication figure (PNG, PDF) and a zip of its images and records."""
    from diffusemix.figures import save_figure, stage_grid

    c = _ctx(ctx)
    if not state or not state.get("stages"):
        raise gr.Error("Nothing to download yet: press Generate first.")
    stages: list[Stages] = state["stages"]
    out = c.request_dir()
    stem = f"diffusemix-{state['seed']}"
    fig = stage_grid(stages, editor=state["editor"])
    png = save_figure(fig, out / f"{stem}-figure.png")
    pdf = save_figure(fig, out / f"{stem}-figure.pdf")
    archive = out / f"{stem}-stages.zip"
    editor = state["records"]["editor"]
    with zipfile.ZipFile(archive, "w") as zf:
        lines = []
        for i, s in enumerate(stages):
            folder = f"{i + 1:02d}-{_slug(s.record.prompt)}"
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
    c = _ctx(ctx)
    name = c.thumbnails[evt.index][1] if 0 <= evt.index < len(c.thumbnails) else None
    return gr.update(value=name), gr.update(value="pick")


# ---------------------------------------------------------------------------
# Prompt lab
# ---------------------------------------------------------------------------


def _lab_images(images: Any) -> list[Path]:
    if not images:
        raise gr.Error("No images: upload a few (or press 'Use the examples').")
    items = images if isinstance(images, (list, tuple)) else [images]
    if len(items) > MAX_LAB_IMAGES:
        raise gr.Error(f"{len(items)} images given; the Prompt lab takes at most {MAX_LAB_IMAGES}.")
    return [_upload_path(item, "image") for item in items]


def lab_grid_items(lab: dict[str, Any] | None, show: str, *, ctx: AppContext | None = None) -> Any:
    """The grid of one stage: rows = prompts, columns = images, each captioned."""
    if not lab:
        return gr.update(value=[])
    stage = "augmented" if show.startswith("A") else "generated"
    folder = _ctx(ctx).request_dir()
    items = []
    for i, (p, row) in enumerate(zip(lab["prompts"], lab["rows"])):
        for j, (name, s) in enumerate(zip(lab["names"], row)):
            items.append((_png(s.image(stage), folder / f"{i:02d}-{j:02d}.png"), f"“{p}” · {name}"))
    return gr.update(value=items, columns=len(lab["names"]))


@user_errors
def prompt_lab(
    images: Any,
    candidates: str | None,
    show: str,
    size: float,
    seed: float,
    progress: gr.Progress = gr.Progress(),
    *,
    ctx: AppContext | None = None,
) -> tuple[Any, Any, str, Any, dict[str, Any]]:
    """Several images x candidate prompts: the grid, and every prompt ticked as kept."""
    c = _ctx(ctx)
    # 1. check inputs
    paths = _lab_images(images)
    prompts = _prompts([], candidates, limit=MAX_LAB_PROMPTS)
    recipe = _recipe(prompts, ("left", "top"), "ramp", 20, 0.2, _int(seed, "seed"), size)
    arrays = [prepare(load_image(p), recipe.size) for p in paths]
    # 2. one editor call per image, batched over the prompts
    per_image = []
    for k, (p, a) in enumerate(zip(paths, arrays)):
        desc = f"image {k + 1}/{len(paths)}: Î by {c.editor.name}"
        per_image.append(_run_augment(c.key, a, recipe, {}, p.name, None, None, progress, desc))
    lab = {
        "prompts": list(prompts),
        "names": [p.name for p in paths],
        "rows": [[stages[j] for stages in per_image] for j in range(len(prompts))],
    }
    yaml_text, yaml_file = kept_set(list(prompts), "my-set", ctx=c)
    keep = gr.update(choices=list(prompts), value=list(prompts))
    return lab_grid_items(lab, show, ctx=c), keep, yaml_text, yaml_file, lab


def kept_set(kept: list[str] | None, set_name: str | None, *, ctx: AppContext | None = None) -> tuple[str, Any]:
    """The kept prompts as a prompts.yaml named set: its text and a file to download."""
    c = _ctx(ctx)
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
    c = _ctx(ctx)
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
        return "\n".join(_ctx(ctx).book.get(set_name))
    except DiffuseMixError as e:
        raise gr.Error(str(e)) from None


def lab_examples() -> list[str]:
    """The bundled example images, for the Prompt lab."""
    return [str(p) for p in sorted(EXAMPLES_DIR.glob("*.jpg"))]


# ---------------------------------------------------------------------------
# Batch export: safe zip extraction, the exporter, a zip back
# ---------------------------------------------------------------------------


@gpu(duration=300)
def _run_export(key: str, root: Path, out: Path, recipe: Recipe, save_stages: bool, progress: Any) -> Any:
    """The one GPU-bound step of the Batch export (plain, picklable arguments)."""
    from diffusemix.export import ExportOptions, export_dataset

    c = _CONTEXTS[key]
    return export_dataset(
        root,
        out,
        recipe=recipe,
        editor=c.editor,
        fractals=c.fractals,
        options=ExportOptions(save_stages=save_stages),
        progress=_progress_fn(progress, "Exporting"),
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
    *,
    ctx: AppContext | None = None,
) -> tuple[str, str]:
    """Augment a zipped class-folder dataset; return the summary and a zip of the result."""
    c = _ctx(ctx)
    # 1. check inputs
    if dataset_zip is None:
        raise gr.Error("No dataset: upload a .zip of class folders first.")
    path = _upload_path(dataset_zip, "dataset zip")
    prompts = _prompts(set_prompts, extra_prompts, limit=50)
    recipe = _recipe(prompts, layouts, mask, seam, lam, seed, size, images_per_prompt)
    work = c.request_dir()
    c.busy.add(work)
    session = getattr(request, "session_hash", None) or uuid.uuid4().hex
    out = work / "diffusemix-export"
    cancel = threading.Event()
    c.cancels[session] = c.cancels[str(out)] = cancel
    try:
        # 2. unpack safely, find the class folders, check the size of the run
        progress(0, desc="Unpacking the zip")
        n = safe_extract(path, work / "input")
        root = dataset_root(work / "input")
        if n * recipe.samples_per_image > MAX_EXPORT_OUTPUTS:
            raise gr.Error(
                f"{n} images x {recipe.samples_per_image} per image = {n * recipe.samples_per_image:,} augmented "
                f"images; the limit here is {MAX_EXPORT_OUTPUTS:,}. Use fewer prompts or images, or the "
                "command line (python -m diffusemix export)."
            )
        # 3. run the exporter
        summary = _run_export(c.key, root, out, recipe, bool(save_stages), progress)
        # 4. zip the result; the summary names the zip, not server folders
        progress(1.0, desc="Zipping the result")
        archive = zip_folder(out, work / f"diffusemix-export-{recipe.seed}.zip")
        shutil.rmtree(out, ignore_errors=True)
        text = str(summary).replace(str(out), archive.name)
        if getattr(summary, "cancelled", False):
            text = "Stopped. The zip holds the images made so far, without metadata.jsonl.\n\n" + text
        return text, str(archive)
    finally:
        shutil.rmtree(work / "input", ignore_errors=True)
        if c.cancels.get(session) is cancel:  # a later export of this session keeps its Stop
            c.cancels.pop(session, None)
        c.cancels.pop(str(out), None)
        c.busy.discard(work)


def stop_export(request: gr.Request = None, *, ctx: AppContext | None = None) -> None:  # type: ignore[assignment]
    """Stop this session's export at the next step."""
    event = _ctx(ctx).cancels.get(getattr(request, "session_hash", None) or "")
    if event is not None:
        event.set()
        gr.Info("Stopping the export…")


# ---------------------------------------------------------------------------
# the page
# ---------------------------------------------------------------------------

CSS = """
.gradio-container { max-width: 1600px !important; margin: 0 auto !important; }
.dm-stage-header { display: grid; grid-template-columns: repeat(6, 1fr); gap: var(--spacing-lg);
  padding: 0 var(--size-2); margin-bottom: -6px; text-align: center; font-size: 0.95rem; font-weight: 600; }
.dm-sym { font-family: "Times New Roman", serif; font-style: italic; font-size: 1.15rem; }
#dm-lab-grid .grid-container { grid-template-columns: repeat(var(--grid-cols), minmax(100px, 230px)); }
#dm-fractals .grid-container { grid-template-columns: repeat(var(--grid-cols), minmax(40px, 1fr));
  grid-auto-rows: minmax(40px, 1fr); gap: 6px; }
#dm-stages .fixed-height, #dm-lab-grid .fixed-height { min-height: 0 !important; max-height: none !important; }
#dm-stages .caption-label, #dm-lab-grid .caption-label { max-width: 96%; font-size: 0.78rem; }
.dm-status { padding: 10px 14px; border-radius: 8px; font-size: 0.95rem; line-height: 1.45; }
.dm-status code { font-size: 0.85rem; }
.dm-status details { margin-top: 4px; font-size: 0.85rem; opacity: 0.85; }
.dm-preview { background: #fff6e0; border: 1px solid #f0c36d; color: #4a3b12; }
.dm-diffusion { background: #e9f7ef; border: 1px solid #7fc79b; color: #15432a; }
.dm-title h1 { margin-bottom: 0; }
.dm-title p { margin-top: 2px; opacity: 0.8; }
.dm-note { font-size: 0.85rem; opacity: 0.8; }
#dm-export-summary textarea { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 0.85rem; }
"""


def launch_kwargs(ctx: AppContext | None = None) -> dict[str, Any]:
    """What ``launch()`` needs besides host and port: theme, CSS, upload limit, allowed folders."""
    return {
        "theme": gr.themes.Soft(
            primary_hue="indigo",
            secondary_hue="amber",
            # system fonts: the page fetches nothing from outside (offline machines, privacy)
            font=["ui-sans-serif", "system-ui", "Segoe UI", "Roboto", "Helvetica", "Arial", "sans-serif"],
            font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"],
        ),
        "css": CSS,
        "max_file_size": f"{MAX_UPLOAD_MB}mb",
        "allowed_paths": [str(EXAMPLES_DIR), str(_ctx(ctx).fractals.folder)],
        "show_error": True,
    }


def _thumbnails(ctx: AppContext, size: int = 96) -> list[tuple[str, str]]:
    """Small PNGs of the fractal set for the picker gallery (path, name)."""
    from diffusemix.images import to_pil

    folder = ctx.workdir / "fractal-thumbnails"
    folder.mkdir(exist_ok=True)
    out = []
    for i, name in enumerate(ctx.fractals.names):
        path = folder / f"{i:04d}.png"
        to_pil(ctx.fractals.load(name, size)).save(path)
        out.append((str(path), name))
    return out


def _prompt_controls(book: PromptBook, *, check: str, prefix: str) -> dict[str, Any]:
    """A prompt set picker, its prompts as checkboxes, and a box for your own prompts."""
    first = list(book.get())
    explore = prefix == "dm-explore"
    return {
        "set": gr.Dropdown(list(book.names), value=book.default, label="Prompt set (prompts.yaml)",
                           elem_id=f"{prefix}-set"),
        "prompts": gr.CheckboxGroup(first, value=first if check == "all" else first[:2], label="Prompts",
                                    elem_id=f"{prefix}-prompts",
                                    info="one row of six stages per prompt" if explore
                                    else "each prompt multiplies the dataset"),
        "extra": gr.Textbox("", label="Your own prompts", placeholder="comma separated, e.g. foggy, neon lights",
                            lines=1, max_lines=3, elem_id=f"{prefix}-extra"),
    }


def _mix_controls(*, open: bool) -> dict[str, Any]:
    """Mask layouts, mask kind, seam and λ."""
    ctl: dict[str, Any] = {}
    with gr.Accordion("Mask M and fractal weight λ", open=open):
        ctl["layouts"] = gr.CheckboxGroup(list(LAYOUTS), value=["left", "top"], label="Mask layouts (where I is kept)",
                                          info="one is drawn per sample")
        ctl["mask"] = gr.Radio(list(MASK_KINDS), value="ramp", label="Mask kind",
                               info="ramp: a linear seam (reference code); binary: the paper's hard edge")
        ctl["seam"] = gr.Slider(0, 64, value=20, step=1, label="Seam width (px, ramp only)")
        ctl["lam"] = gr.Slider(0.0, 1.0, value=0.2, step=0.01, label="λ (fractal weight)", info="A = (1 − λ) H + λ F")
    return ctl


def _stage_header() -> str:
    cells = "".join(
        f"<div><span class='dm-sym'>{STAGE_SYMBOLS[n]}</span> {n}</div>" for n in STAGE_NAMES
    )
    return f"<div class='dm-stage-header'>{cells}</div>"


def build_demo(
    editor: str | Editor = "auto",
    *,
    model: str | None = None,
    device: str | None = None,
    prompts_path: str | os.PathLike | None = None,
    fractal_dir: str | os.PathLike | None = None,
    allow_save_prompts: bool = False,
    ctx: AppContext | None = None,
) -> gr.Blocks:
    """Load the editor once and build the page. The context is ``demo.ctx``."""
    global _CONTEXT
    if ctx is None:
        ctx = make_context(
            editor, model=model, device=device, prompts_path=prompts_path, fractal_dir=fractal_dir,
            allow_save_prompts=allow_save_prompts,
        )
    _CONTEXT = ctx
    ctx.thumbnails = _thumbnails(ctx)

    def bind(fn: Callable, **bound: Any) -> Callable:
        """``fn`` with this demo's context; keeps the signature and hints gradio reads
        (gr.Request, gr.SelectData, gr.Progress), which functools.partial would hide."""

        @functools.wraps(fn)
        def handler(*args: Any, **kwargs: Any) -> Any:
            return fn(*args, **bound, **kwargs)

        return handler

    settings = getattr(ctx.editor, "settings", None)
    limit = ctx.concurrency
    gen = {"concurrency_limit": limit, "concurrency_id": "editor"}
    quick = {"queue": False, "api_visibility": "private"}

    with gr.Blocks(title="DiffuseMix", delete_cache=GRADIO_CACHE_CLEANUP, fill_width=True) as demo:
        gr.Markdown(
            "# DiffuseMix\nLabel-preserving data augmentation with diffusion models (CVPR 2024): "
            "**A = (1 − λ) · (M ⊙ I + (1 − M) ⊙ Î) + λ · F**, and A keeps the label of I.",
            elem_classes="dm-title",
        )
        gr.Markdown(status_markdown(ctx), elem_id="dm-status")

        with gr.Tabs():
            # ---------------------------------------------------------------- Explore
            with gr.Tab("Explore", id="explore"):
                with gr.Row(equal_height=False):
                    with gr.Column(scale=2, min_width=340):
                        image = gr.Image(type="filepath", format="png", label="Input image I", height=260,
                                         sources=["upload", "clipboard"], elem_id="dm-explore-image")
                        gr.Examples([[str(p)] for p in lab_examples()], inputs=[image], label="Examples (CC0)",
                                    examples_per_page=8)
                        ex = _prompt_controls(ctx.book, check="two", prefix="dm-explore")
                        run = gr.Button("Generate", variant="primary", elem_id="dm-generate")
                        ex.update(_mix_controls(open=True))
                        with gr.Accordion("Fractal F", open=False):
                            fractal = gr.Radio(list(FRACTAL_MODES), value="random", label="Fractal",
                                               info="drawn at random from the set, picked (click one below), "
                                               "or uploaded")
                            fractal_name = gr.Dropdown(list(ctx.fractals.names), value=None, label="Picked fractal",
                                                       visible=False)
                            fractal_gallery = gr.Gallery([path for path, _ in ctx.thumbnails], columns=6, height=230,
                                                         allow_preview=False, label="Fractal set", show_label=False,
                                                         format="png", buttons=[], elem_id="dm-fractals")
                            fractal_image = gr.Image(type="filepath", format="png", label="Your fractal image",
                                                     height=180, visible=False)
                        with gr.Accordion("Seed and size", open=False):
                            with gr.Row():
                                seed = gr.Number(0, precision=0, minimum=0, maximum=MAX_SEED, label="Seed",
                                                 min_width=120)
                                randomize = gr.Checkbox(False, label="Randomise", info="shows the seed used",
                                                        min_width=120)
                            size = gr.Slider(MIN_SIZE, MAX_SIZE, value=DEFAULT_SIZE, step=8, label="Output size S (px)")
                        with gr.Accordion("Editor settings", open=False):
                            if not ctx.editor.is_diffusion:
                                gr.Markdown("The preview editor ignores these; they apply to InstructPix2Pix "
                                            "(strength: img2img only).", elem_classes="dm-note")
                            steps = gr.Slider(1, 150, value=getattr(settings, "steps", 100), step=1,
                                              label="Denoising steps")
                            guidance = gr.Slider(0.0, 20.0, value=getattr(settings, "guidance_scale", 4.0), step=0.1,
                                                 label="Guidance scale (text)")
                            image_guidance = gr.Slider(0.0, 5.0, value=getattr(settings, "image_guidance_scale", 1.5),
                                                       step=0.05, label="Image guidance scale")
                            strength = gr.Slider(0.0, 1.0, value=getattr(settings, "strength", 0.5), step=0.01,
                                                 label="Strength (img2img)")
                    with gr.Column(scale=5, min_width=480):
                        gr.HTML(_stage_header())
                        stages_view = gr.Gallery(
                            label="Stages", show_label=False,
                            columns=6, height="auto", object_fit="contain", format="png", allow_preview=True,
                            elem_id="dm-stages",
                        )
                        summary = gr.Markdown(label="Summary", elem_id="dm-summary")
                        downloads_btn = gr.Button("Make downloads: the figure (PNG + PDF) and a zip of the images "
                                                  "with their records", elem_id="dm-downloads-btn")
                        downloads = gr.File(label="Downloads", file_count="multiple", visible=False,
                                            elem_id="dm-downloads")
                        with gr.Accordion("Records (JSON)", open=False):
                            records = gr.JSON(label="Records", elem_id="dm-records")
                        state = gr.State()

            # ---------------------------------------------------------------- Prompt lab
            with gr.Tab("Prompt lab", id="lab"):
                gr.Markdown("Try candidate prompts on several images at once; keep the ones that work and "
                            "download them as a named set for prompts.yaml.", elem_classes="dm-note")
                with gr.Row(equal_height=False):
                    with gr.Column(scale=2, min_width=340):
                        lab_images = gr.Gallery(type="filepath", label=f"Images (up to {MAX_LAB_IMAGES})",
                                                columns=4, height=220, interactive=True, format="png",
                                                elem_id="dm-lab-images", file_types=["image"])
                        lab_use_examples = gr.Button("Use the examples", size="sm")
                        lab_set = gr.Dropdown(list(ctx.book.names), value=None, label="Start from a prompt set")
                        lab_candidates = gr.Textbox("snowy\nwatercolor art\nsunset", lines=5,
                                                    label=f"Candidate prompts (one per line, up to {MAX_LAB_PROMPTS})",
                                                    elem_id="dm-lab-candidates")
                        lab_show = gr.Radio(list(LAB_SHOW), value=LAB_SHOW[0], label="Show")
                        with gr.Row():
                            lab_size = gr.Slider(MIN_SIZE, MAX_SIZE, value=192, step=8, label="Size (px)",
                                                 min_width=160, scale=2)
                            lab_seed = gr.Number(0, precision=0, minimum=0, maximum=MAX_SEED, label="Seed",
                                                 min_width=100, scale=1)
                        lab_run = gr.Button("Make the grid", variant="primary", elem_id="dm-lab-run")
                    with gr.Column(scale=5, min_width=480):
                        gr.Markdown("**Rows: prompts · columns: images**", elem_classes="dm-note")
                        lab_grid = gr.Gallery(label="Prompt grid", show_label=False, columns=3, height="auto",
                                              object_fit="contain", format="png", elem_id="dm-lab-grid")
                        lab_keep = gr.CheckboxGroup([], label="Keep (untick the prompts to drop)",
                                                    elem_id="dm-lab-keep")
                        with gr.Row():
                            lab_name = gr.Textbox("my-set", label="Set name", max_lines=1, scale=1,
                                                  elem_id="dm-lab-name")
                            lab_file = gr.File(label="Kept set (prompts.yaml)", scale=2, height=80)
                        lab_yaml = gr.Code("", language="yaml", label="Kept set", elem_id="dm-lab-yaml", lines=6)
                        lab_save = gr.Button("Save into the server's prompts.yaml", visible=ctx.allow_save_prompts)
                        lab_saved = gr.Markdown(
                            "" if ctx.allow_save_prompts else
                            ("Saving into the server's prompts.yaml is off"
                             + (" on a Space." if ctx.on_space else ": start the app with --allow-save-prompts.")),
                            elem_classes="dm-note",
                        )
                        lab_state = gr.State()

            # ---------------------------------------------------------------- Batch export
            with gr.Tab("Batch export", id="export"):
                gr.Markdown(
                    f"Upload a **.zip of class folders** (`cats/1.jpg`, `dogs/2.jpg`, …). Limits: "
                    f"{MAX_UPLOAD_MB} MB upload, {MAX_ZIP_IMAGES:,} images, {MAX_ZIP_UNPACKED_MB:,} MB unpacked, "
                    f"{MAX_EXPORT_OUTPUTS:,} augmented images per run. For more, use "
                    "`python -m diffusemix export`. The result keeps the class folders and adds `metadata.jsonl`.",
                    elem_classes="dm-note",
                )
                with gr.Row(equal_height=False):
                    with gr.Column(scale=2, min_width=340):
                        ex_zip = gr.File(label="Dataset (.zip)", file_types=[".zip"], type="filepath",
                                         elem_id="dm-export-zip")
                        xp = _prompt_controls(ctx.book, check="all", prefix="dm-export")
                        xp.update(_mix_controls(open=False))
                        with gr.Row():
                            xp_seed = gr.Number(0, precision=0, minimum=0, maximum=MAX_SEED, label="Seed",
                                                min_width=120)
                            xp_copies = gr.Slider(1, 10, value=1, step=1, label="Images per prompt", min_width=160)
                        xp_size = gr.Slider(MIN_SIZE, MAX_SIZE, value=DEFAULT_SIZE, step=8, label="Output size S (px)")
                        xp_stages = gr.Checkbox(False, label="Also save the stages I, Î, M, H, F")
                        with gr.Row():
                            xp_run = gr.Button("Export", variant="primary", elem_id="dm-export-run")
                            xp_stop = gr.Button("Stop", variant="stop")
                    with gr.Column(scale=3, min_width=420):
                        xp_summary = gr.Textbox(label="Summary", lines=12, elem_id="dm-export-summary")
                        xp_result = gr.File(label="Augmented dataset (.zip)", elem_id="dm-export-result")

        # ---------------------------------------------------------------- events
        ex["set"].change(bind(show_set, ctx=ctx, check="two"), ex["set"], ex["prompts"], **quick)
        xp["set"].change(bind(show_set, ctx=ctx, check="all"), xp["set"], xp["prompts"], **quick)
        fractal.change(fractal_mode_changed, fractal, [fractal_name, fractal_image], **quick)
        fractal_gallery.select(bind(pick_fractal, ctx=ctx), None, [fractal_name, fractal], **quick)

        run.click(lambda: gr.update(value=None, visible=False), None, downloads, **quick)
        run.click(
            bind(explore, ctx=ctx),
            [image, ex["prompts"], ex["extra"], ex["layouts"], ex["mask"], ex["seam"], ex["lam"], fractal,
             fractal_name, fractal_image, seed, randomize, size, steps, guidance, image_guidance, strength],
            [stages_view, seed, records, summary, state],
            api_name="explore",
            **gen,
        )
        downloads_btn.click(bind(make_downloads, ctx=ctx), state, downloads, api_visibility="private",
                            concurrency_limit=2)

        lab_use_examples.click(lab_examples, None, lab_images, **quick)
        lab_set.change(bind(lab_set_text, ctx=ctx), lab_set, lab_candidates, **quick)
        lab_run.click(
            bind(prompt_lab, ctx=ctx),
            [lab_images, lab_candidates, lab_show, lab_size, lab_seed],
            [lab_grid, lab_keep, lab_yaml, lab_file, lab_state],
            api_name="prompt_lab",
            **gen,
        )
        lab_show.change(bind(lab_grid_items, ctx=ctx), [lab_state, lab_show], lab_grid, **quick)
        for trigger in (lab_keep.change, lab_name.change):
            trigger(bind(kept_set, ctx=ctx), [lab_keep, lab_name], [lab_yaml, lab_file], **quick)
        lab_save.click(bind(save_kept, ctx=ctx), [lab_keep, lab_name], [lab_saved, ex["set"], xp["set"]],
                       api_visibility="private")

        xp_run.click(
            bind(batch_export, ctx=ctx),
            [ex_zip, xp["prompts"], xp["extra"], xp["layouts"], xp["mask"], xp["seam"], xp["lam"], xp_seed, xp_size,
             xp_copies, xp_stages],
            [xp_summary, xp_result],
            api_name="export",
            **gen,
        )
        xp_stop.click(bind(stop_export, ctx=ctx), None, None, queue=False, api_visibility="private")

    demo.queue(default_concurrency_limit=limit, max_size=64)
    demo.ctx = ctx  # type: ignore[attr-defined]
    return demo


# ---------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    on_space = bool(os.environ.get("SPACE_ID"))
    p = argparse.ArgumentParser(description="DiffuseMix web app (Gradio).")
    p.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
                   help="address to listen on (default 127.0.0.1; $GRADIO_SERVER_NAME)")
    p.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
                   help="port (default 7860; $GRADIO_SERVER_PORT)")
    p.add_argument("--editor", default=os.environ.get("DIFFUSEMIX_EDITOR", "auto"),
                   choices=["auto", "instruct-pix2pix", "img2img", "preview"],
                   help="what makes Î (default auto: InstructPix2Pix if its weights load, else the preview)")
    p.add_argument("--model", default=None, help="Hugging Face id or local folder of the diffusion pipeline")
    p.add_argument("--device", default=None, help="cuda, cuda:N, mps or cpu (default: the best available)")
    p.add_argument("--prompts", default=None, help="prompt file (default: the shipped prompts.yaml)")
    p.add_argument("--fractals", default=None, help="fractal folder (default: assets/fractals)")
    p.add_argument("--share", action="store_true", help="make a public gradio.live link (off by default)")
    p.add_argument("--allow-save-prompts", action="store_true",
                   help="let the Prompt lab save sets into the prompt file (never on a Space)")
    args = p.parse_args(argv)
    if on_space:
        args.allow_save_prompts = False
    return args


def main(argv: Sequence[str] | None = None) -> None:
    global demo
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    try:
        demo = build_demo(args.editor, model=args.model, device=args.device, prompts_path=args.prompts,
                          fractal_dir=args.fractals, allow_save_prompts=args.allow_save_prompts)
    except DiffuseMixError as e:  # e.g. --editor instruct-pix2pix without weights: say what to do, no trace
        raise SystemExit(f"error: {e}") from None
    demo.launch(server_name=args.host, server_port=args.port, share=args.share, **launch_kwargs(demo.ctx))


if __name__ == "__main__":
    main()
else:
    demo = build_demo(os.environ.get("DIFFUSEMIX_EDITOR", "auto"), model=os.environ.get("DIFFUSEMIX_MODEL") or None)
