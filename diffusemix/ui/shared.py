"""What the app's tabs share: the context, boundary checks, error mapping, the GPU shim, the banner.

* ``AppContext`` / ``make_context``: the one editor every user shares (loaded
  once), the fractal set, the prompt file, the app's work folder.
* ``gpu``: ``spaces.GPU`` on a ZeroGPU Space, a no-op elsewhere;
  ``_run_augment`` is the GPU-bound step of Explore and the Prompt lab.
* ``user_errors``: the library's ``DiffuseMixError`` s become ``gr.Error`` messages; anything else is a
  bug, shown with a log id.
* checks at the boundary: prompts, numbers, the Recipe (uploads: ``uploads``).
* ``status_markdown``: the banner that says which editor makes Î.
* page parts two tabs use: the prompt and mask controls, ``bind``, CSS and
  ``launch_kwargs``.

No maths and no model code: handlers call ``diffusemix`` and nothing else.
"""

from __future__ import annotations

import atexit
import functools
import logging
import os
import re
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr

from diffusemix.editors import EDITORS, Editor, EditorSpec, PreviewEditor, load_editor
from diffusemix.editors.licences import acceptance_reason, licence_line
from diffusemix.engine import Stages, augment
from diffusemix.errors import Cancelled, DiffuseMixError
from diffusemix.fractals import FractalSet
from diffusemix.functional import LAYOUTS, MASK_KINDS
from diffusemix.prompts import PromptBook, check_prompts, load_prompts, parse_prompt_list
from diffusemix.recipe import Recipe
from diffusemix.resources import shipped_path
from diffusemix.schema import field_default, field_help, label_for
from diffusemix.scoring import HOW_TO_GET_WEIGHTS, NoScorer, Scorer, ScorerSpec, load_scorer
from diffusemix.ui.hardware import space_without_gpu_reason
from diffusemix.ui.limits import (  # noqa: F401  (re-exported: the tabs import them from here)
    MAX_GUIDANCE,
    MAX_IMAGE_GUIDANCE,
    MAX_IMAGE_PIXELS,
    MAX_SEAM,
    MAX_SEED,
    MAX_SIZE,
    MAX_STEPS,
    MAX_UPLOAD_MB,
    MIN_SIZE,
)

logger = logging.getLogger("diffusemix.app")

ROOT_DIR = Path(__file__).resolve().parent.parent.parent  # the checkout: app.py, assets/, prompts.yaml
ASSETS_DIR = shipped_path("assets/examples").parent  # the checkout's assets/, or an installed wheel's copy
EXAMPLES_DIR = ASSETS_DIR / "examples"


#: The output side the sliders start at: the recipe's default (the paper's 256).
DEFAULT_SIZE: int = field_default(Recipe, "size")
#: How long this app's per-request files (stage PNGs, figures, zips) are kept. Gradio copies
#: every file it serves into its own cache when the handler returns (deleted by delete_cache).
KEEP_FILES_S = 900
#: Gradio's cache: check every 30 min, delete files older than an hour.
GRADIO_CACHE_CLEANUP = (1800, 3600)


IP2P_ID = EDITORS["instruct-pix2pix"]._default_model


# ---------------------------------------------------------------------------
# ZeroGPU: only the functions that run the editor ask for a GPU
# ---------------------------------------------------------------------------


#: On ZeroGPU the decorated functions run in a forked worker: their arguments and results are
#: pickled, so they take plain data (arrays, a Recipe, a settings dict, the context's key) and
#: find the shared editor in _CONTEXTS; a threading.Event cannot cross, so Stop is local only.
ZERO_GPU = bool(os.environ.get("SPACES_ZERO_GPU"))


from diffusemix.ui.zerogpu import (  # noqa: E402  (re-exported: the tabs import them from here)
    GPU_BASE_SECONDS,
    GPU_MAX_SECONDS,
    GPU_STEP_SECONDS,
    gpu,
    gpu_seconds,
    record_gpu_time,
    step_seconds,
)


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
    #: Scores Î against I in the Prompt lab (NoScorer: no scores, its notice says why).
    scorer: Scorer = field(default_factory=lambda: NoScorer("scoring is off (start the app with --score auto)"))
    #: Editors loaded at start beside ``editor`` for the Prompt lab's side by side (``--compare-editor``).
    compare: list[Editor] = field(default_factory=list)
    #: The operator's acceptance of a non-commercial licence for the Batch export (``--accept-license``).
    accept_license: str | None = None

    def __repr__(self) -> str:
        return f"AppContext(editor={self.editor.name!r}, fractals={len(self.fractals)}, prompts={self.prompts_path})"

    @property
    def concurrency(self) -> int:
        """Generating events at once: one when a diffusion model is loaded (one GPU), two for the preview."""
        return 1 if any(e.is_diffusion for e in (self.editor, *self.compare)) else 2

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


def current(ctx: AppContext | None) -> AppContext:
    if ctx is not None:
        return ctx
    if _CONTEXT is None:
        raise RuntimeError("no app context: call build_demo() first")
    return _CONTEXT


def by_key(key: str) -> AppContext:
    """The context with this key (the GPU functions get the key: a context cannot be pickled)."""
    return _CONTEXTS[key]


def remove_work_folders() -> None:
    """Delete every context's work folder (stage PNGs, zips, unpacked uploads): at exit and on SIGTERM."""
    for c in list(_CONTEXTS.values()):
        shutil.rmtree(c.workdir, ignore_errors=True)


def set_current(ctx: AppContext) -> None:
    """Make ``ctx`` the one handlers use when called without ``ctx=`` (the demo just built)."""
    global _CONTEXT
    _CONTEXT = ctx
    _CONTEXTS[ctx.key] = ctx


def make_context(
    editor: str | EditorSpec | Editor = "auto",
    *,
    model: str | None = None,
    device: str | None = None,
    prompts_path: str | os.PathLike | None = None,
    fractal_dir: str | os.PathLike | None = None,
    allow_save_prompts: bool = False,
    scorer: str | ScorerSpec | Scorer = "none",
    scorer_model: str | None = None,
    compare: Sequence[str | EditorSpec | Editor] = (),
    accept_license: str | None = None,
) -> AppContext:
    """Load the editor (once), the scorer (once; ``"auto"``: if its weights are
    there), the fractal set and the prompt file. ``editor`` and ``scorer`` are
    specs (or their names, with ``model``/``device``/``scorer_model``), or
    ready objects. ``compare``: more editors (specs, names or objects) loaded
    now for the Prompt lab's side by side; they never fall back to the preview.
    ``accept_license``: the operator accepts a non-commercial licence for the
    Batch export (``ExportOptions.accept_license``)."""
    on_space = bool(os.environ.get("SPACE_ID"))
    if isinstance(editor, (str, EditorSpec)):
        spec = editor if isinstance(editor, EditorSpec) else EditorSpec(name=editor, model=model, device=device)
        no_gpu = space_without_gpu_reason(spec)  # a CPU-only Space: the preview, and the banner says why
        if no_gpu is not None:
            logger.warning(no_gpu)
            ed: Editor = PreviewEditor(EditorSpec(name="preview", max_retries=spec.max_retries), notice=no_gpu)
        else:  # the app is a demo: "auto" falls back to the preview, and its banner says so
            ed = load_editor(spec, fallback=spec.name == "auto")
        ed.load()  # fail now, at start-up, not in the first user's request
    else:
        ed = editor
    others = []
    for item in compare:  # loaded now, at start-up: a missing model stops the app here, saying why
        other = load_editor(item) if isinstance(item, (str, EditorSpec)) else item
        other.load()
        others.append(other)
    if isinstance(scorer, (str, ScorerSpec)):
        sc = make_scorer(scorer if isinstance(scorer, ScorerSpec) else ScorerSpec(name=scorer, model=scorer_model), ed)
    else:
        sc = scorer
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
        scorer=sc,
        compare=others,
        accept_license=accept_license,
    )
    atexit.register(shutil.rmtree, ctx.workdir, True)
    _CONTEXTS[ctx.key] = ctx
    return ctx


def make_scorer(spec: ScorerSpec, editor: Editor) -> Scorer:
    """The Prompt lab's scorer, on the editor's device, loaded now (fail at start-up).

    Only image–image scorers: the lab's images have no class names.
    """
    if spec.name == "clip-label":
        raise DiffuseMixError("has no class names: use --score dino or clip (or auto) in the app",
                              field="the Prompt lab")
    sc = load_scorer(spec.replace(device=spec.device or editor.device))
    if sc.available:
        sc.load()
    return sc


def scores_unavailable(ctx: AppContext) -> str:
    """What the Prompt lab says when it has no scorer: plainly, and how to get one."""
    return (
        "Scores are unavailable: "
        + html_text(str(ctx.scorer.notice or "no scorer is loaded").removeprefix("no scores: "))
        + f" To score the grid, {html_text(HOW_TO_GET_WEIGHTS)}, then start the app with"
        " <code>--score auto</code> (or <code>--score dino --scorer-model DIR</code>)."
    )


# ---------------------------------------------------------------------------
# small helpers (checks at the boundary; no maths)
# ---------------------------------------------------------------------------


def error_text(e: DiffuseMixError) -> str:
    """A user error in the page's words: a setting is named by its control's label; no server path."""
    return scrub_paths(e.message(namer=label_for) if e.owner and e.field else e.message())


def user_errors(fn: Callable) -> Callable:
    """The library's :class:`DiffuseMixError` becomes ``gr.Error`` (a message in the page, no trace);
    any other exception is a bug: a short message with a log id, the traceback in the server log."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except Cancelled:
            raise gr.Error("Stopped: the run was cancelled.") from None
        except DiffuseMixError as e:
            raise gr.Error(error_text(e)) from None
        except Exception as e:  # a bug: log the trace on the server, show a short message with its id
            log_id = uuid.uuid4().hex[:8]
            logger.exception("internal error %s in %s", log_id, fn.__name__)
            raise gr.Error(
                f"Internal error ({type(e).__name__}, log id {log_id}): a bug in the app, not a problem with your"
                " input. The details are in the server log under that id."
            ) from None

    return wrapper


def _server_roots() -> list[str]:
    """Folders of this server whose paths a message in the page must never show."""
    from gradio.utils import get_upload_folder

    roots = {str(Path(get_upload_folder()).resolve()), get_upload_folder(), str(ROOT_DIR),
             tempfile.gettempdir(), str(Path(tempfile.gettempdir()).resolve())}
    roots.update(str(c.workdir) for c in _CONTEXTS.values())
    return sorted(roots, key=len, reverse=True)


def scrub_paths(text: str) -> str:
    """``text`` with every path under the server's folders cut to its file name."""
    for root in _server_roots():
        text = re.sub(re.escape(root) + r"(/[^\s'\"]*)?", lambda m: Path(m.group(0)).name, text)
    return text


def chosen_prompts(set_prompts: Sequence[str] | None, extra: str | None, *, limit: int) -> tuple[str, ...]:
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


def numbers_checked_by_handlers(blocks: Any) -> None:
    """Let the handlers name a number input's wrongly typed value (the app calls it once, on the page).

    Gradio checks a slider's or number box's value before the handler runs and answers a value
    that is not a number (``lam='abc'`` from an API client, a threshold ``None``) with its own
    "Could not preprocess input component at index 6 ...". Here such a value is handed to the
    handler as it came, and the handler's own check (:func:`as_float`, :func:`as_int`, the Recipe)
    names the control: "λ (fractal weight) must be a number; got 'abc'". Numbers still go
    through Gradio's checks (its range message included).
    """
    for block in getattr(blocks, "blocks", {}).values():
        if isinstance(block, (gr.Slider, gr.Number)) and not getattr(block.preprocess, "_dm_lenient", False):
            block.preprocess = _lenient(block.preprocess)  # type: ignore[method-assign]


def _lenient(preprocess: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def checked_by_handler(payload: Any) -> Any:
        if isinstance(payload, (int, float)) and not isinstance(payload, bool):
            return preprocess(payload)
        return payload  # not a number: the handler says so, naming its control

    checked_by_handler._dm_lenient = True  # type: ignore[attr-defined]
    return checked_by_handler


def as_float(value: Any, name: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise gr.Error(f"{name} must be a number; got {value!r}") from None
    if isinstance(value, bool) or number != number or number in (float("inf"), float("-inf")):
        raise gr.Error(f"{name} must be a number; got {value!r}")
    return number


def as_int(value: Any, name: str) -> int:
    number = as_float(value, name)
    if number != int(number):
        raise gr.Error(f"{name} must be a whole number; got {value!r}")
    return int(number)


def make_recipe(prompts: tuple[str, ...], *, size: Any, seed: Any, **fields: Any) -> Recipe:
    """The paper's recipe with the page's values (numbers from the browser made whole where the
    field is an integer); the Recipe checks them and its errors name the controls."""
    size_i = as_int(size, label_for(Recipe, "size"))
    if not MIN_SIZE <= size_i <= MAX_SIZE:
        raise gr.Error(f"{label_for(Recipe, 'size')} must be between {MIN_SIZE} and {MAX_SIZE} pixels here;"
                       f" got {size_i}")
    if "layouts" in fields and not fields["layouts"]:
        raise gr.Error(f"Choose at least one mask layout ({', '.join(LAYOUTS)}).")
    values: dict[str, Any] = {"prompts": prompts, "size": size_i, "seed": as_int(seed, label_for(Recipe, "seed"))}
    for name, value in fields.items():
        if name in ("seam", "images_per_prompt"):
            value = as_int(value, label_for(Recipe, name))
        elif name == "lam":
            value = as_float(value, label_for(Recipe, name))
        elif name == "prompts_per_image":
            value = as_prompts_per_image(value)
        elif name == "layouts":
            value = tuple(value)
        values[name] = value
    return Recipe(**values)


def as_prompts_per_image(value: Any) -> int | str:
    """"all" or a whole number (checked against the prompts by the Recipe)."""
    if value is None or str(value).strip() == "all":
        return "all"
    return as_int(value, "prompts per image")


def editor_for(ctx: AppContext, **changes: Any) -> Editor:
    """The shared editor, with per-call settings (steps, guidance...) where it has them.

    A variant shares the loaded pipeline (``with_settings``), so no second
    model is ever loaded. Settings the editor does not have are ignored (the
    preview has none; ``strength`` is img2img's); the values are checked by
    the editor's spec.
    """
    ed = ctx.editor
    own = set(type(ed).defaults) if hasattr(type(ed), "defaults") else set()
    wanted = {}
    for k, v in changes.items():
        if k not in own or v is None:
            continue
        current_value = getattr(ed.spec, k)
        wanted[k] = as_int(v, label_for(EditorSpec, k)) if isinstance(current_value, int) else as_float(
            v, label_for(EditorSpec, k))
    if all(getattr(ed.spec, k) == v for k, v in wanted.items()):
        return ed
    return ed.with_settings(**wanted)


def editor_setting(ctx: AppContext, name: str) -> Any:
    """The value the page starts a control of editor setting ``name`` at: the editor's own, or (for
    a setting it does not have) the default of the first editor that has it."""
    if name in getattr(type(ctx.editor), "defaults", {}):
        return getattr(ctx.editor.spec, name)
    return next(cls.defaults[name] for cls in EDITORS.values() if name in cls.defaults)


def progress_fn(progress: Any, desc: str) -> Callable[[int, int], None] | None:
    if progress is None:
        return None

    def report(done: int, total: int) -> None:
        try:
            progress((done, max(total, 1)), desc=desc)
        except Exception:  # progress is best effort; never fail a run for it
            pass

    return report


def slug(text: str, n: int = 40) -> str:
    s = re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()
    return s[:n] or "prompt"


# ---------------------------------------------------------------------------
# the status line
# ---------------------------------------------------------------------------


def status_markdown(ctx: AppContext) -> str:
    """Which editor makes Î, plainly, once; how to get the diffusion model when it is the preview.

    (Text badges, no emoji: Debian's Chromium has no colour-emoji font and draws them as boxes.)"""
    d = ctx.editor.describe()
    if not ctx.editor.is_diffusion:
        text = (
            "<div class='dm-status dm-preview'><span class='dm-badge'>Preview</span> <b>Î is made by the preview "
            "editor</b>: weight-free colour and texture filters, <b>not a diffusion model</b>. M, H, F and A are the "
            "real method; only Î is a stand-in. "
        )
        notice = str(ctx.editor.notice or "")
        if ctx.on_space and notice.startswith("This Space runs on CPU"):
            return text + html_text(notice) + "</div>"  # why, and which hardware runs the model: said once
        if ctx.on_space:
            text += "On a GPU Space the app downloads <code>timbrooks/instruct-pix2pix</code> automatically. "
        else:
            text += (
                f"For the paper's model run <code>python app.py --editor instruct-pix2pix</code> once "
                f"<code>{IP2P_ID}</code> is in the Hugging Face cache, or "
                "<code>python app.py --model /path/to/local/folder</code>; on a GPU Space it is downloaded "
                "automatically. "
            )
        if notice:
            text += f"<details><summary>Why the preview</summary>{html_text(notice)}</details>"
        return text + compare_markdown(ctx) + "</div>"
    model = d.get("model") or "?"
    summary = str(d.get("summary") or "")
    if not summary:  # the summary names the model, device and dtype; without one, say them here
        summary = f"{d.get('name', '?')} ({model}) on {d.get('device', '?')}" + (f" in {d['dtype']}" if d.get("dtype")
                                                                                  else "")
    text = (
        f"<div class='dm-status dm-diffusion'><span class='dm-badge'>Model</span> <b>Î is made by "
        f"{html_text(str(d.get('name', '?')))}</b>: {html_text(summary)}"
        f"<br>Licence of the weights: {html_text(licence_line(ctx.editor))}"
    )
    if acceptance_reason(ctx.editor) is not None:
        text += (" — <b>accepted by this app's operator</b> for the Batch export (non-commercial use)"
                 if ctx.accept_license else " — <b>the Batch export is off</b> until the app is started with"
                 " <code>--accept-license non-commercial</code>")
    return text + compare_markdown(ctx) + "</div>"


def compare_markdown(ctx: AppContext) -> str:
    """The banner's line on the editors loaded for the side by side: each with its model and licence."""
    if not ctx.compare:
        return ""
    items = "; ".join(f"<b>{html_text(e.name)}</b> ({html_text(licence_line(e))})" for e in ctx.compare)
    return f"<br>Also loaded for the Prompt lab's side by side (same prompts and seed): {items}"


def html_text(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")



def example_images() -> list[str]:
    """The bundled example images (Explore's examples, the Prompt lab's 'Use the examples')."""
    return [str(p) for p in sorted(EXAMPLES_DIR.glob("*.jpg"))]


def write_png(image: Any, path: Path) -> str:
    """Write a lossless PNG fast (zlib level 1: ~6x faster than the default, ~15 % larger)."""
    image.save(path, format="PNG", compress_level=1)
    return str(path)


# ---------------------------------------------------------------------------
# the GPU-bound step of Explore and the Prompt lab
# ---------------------------------------------------------------------------


def _augment_seconds(key: str, image: Any, recipe: Recipe, settings: dict[str, Any], *args: Any, **kw: Any) -> int:
    editor = editor_for(by_key(key), **settings)
    return gpu_seconds(len(recipe.prompts) * recipe.images_per_prompt, editor.spec.steps or 1, editor=editor)


@gpu(duration=_augment_seconds)
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
    c = by_key(key)
    editor = editor_for(c, **settings)
    t = time.perf_counter()
    out = augment(image, recipe, editor, c.fractals, source=source, fractal_name=fractal_name,
                  fractal_override=fractal, progress=progress_fn(progress, desc))
    if editor.is_diffusion:
        record_gpu_time(time.perf_counter() - t, len(out), editor.spec.steps or 1, editor=editor)
    return out


def show_set(set_name: str | None, *, ctx: AppContext | None = None, check: str = "two") -> Any:
    """Fill the prompt checkboxes with a set's prompts (Explore ticks the first two, Export all)."""
    c = current(ctx)
    if not set_name:
        return gr.update(choices=[], value=[])
    try:
        prompts = list(c.book.get(set_name))
    except DiffuseMixError as e:
        raise gr.Error(error_text(e)) from None
    return gr.update(choices=prompts, value=prompts if check == "all" else prompts[:2])



# ---------------------------------------------------------------------------
# page parts the tabs share
# ---------------------------------------------------------------------------

#: Events that only update the page: no queue, not in the API.
QUICK: dict[str, Any] = {"queue": False, "api_visibility": "private"}

PAPER_URL = "https://arxiv.org/abs/2405.14881"
CODE_URL = "https://github.com/khawar-islam/diffuseMix"
CITATION = """@inproceedings{islam2024diffusemix,
  title     = {DiffuseMix: Label-Preserving Data Augmentation with Diffusion Models},
  author    = {Islam, Khawar and Zaheer, Muhammad Zaigham and Mahmood, Arif and Nandakumar, Karthik},
  booktitle = {CVPR},
  year      = {2024}
}"""

#: Closes the error messages (toasts) still on the page: run after a success, so old errors go.
CLEAR_TOASTS_JS = "() => { document.querySelectorAll('.toast-close').forEach((b) => b.click()); }"


def page_header() -> str:
    """The title, the method in one line, and links to the paper and the code."""
    return (
        "# DiffuseMix\nLabel-preserving data augmentation with diffusion models (CVPR 2024): "
        "**A = (1 − λ) · (M ⊙ I + (1 − M) ⊙ Î) + λ · F**, and A keeps the label of I. "
        f"[Paper (arXiv 2405.14881)]({PAPER_URL}) · [the authors' code]({CODE_URL}) · cite it: see below."
    )


def clear_toasts_on_start(button: Any) -> None:
    """When ``button`` starts a run, close the error messages left from earlier tries (in the browser, at
    once: an old error must not stay on the page while a long export runs)."""
    button.click(None, None, None, js=CLEAR_TOASTS_JS, queue=False, api_visibility="private")


def clear_toasts_on_success(event: Any) -> None:
    """After ``event`` succeeds, close the error messages left from earlier tries."""
    event.success(None, None, None, js=CLEAR_TOASTS_JS, **QUICK)


def generating(ctx: AppContext) -> dict[str, Any]:
    """Event settings of the editor-bound events: they share the editor's queue slots."""
    return {"concurrency_limit": ctx.concurrency, "concurrency_id": "editor"}


def bind(fn: Callable, **bound: Any) -> Callable:
    """``fn`` with keywords bound (a demo's context); keeps the signature and hints gradio reads
    (gr.Request, gr.SelectData, gr.Progress), which functools.partial would hide."""

    @functools.wraps(fn)
    def handler(*args: Any, **kwargs: Any) -> Any:
        return fn(*args, **bound, **kwargs)

    return handler


def prompt_controls(book: PromptBook, *, check: str, prefix: str) -> dict[str, Any]:
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


def mix_controls(*, open: bool) -> dict[str, Any]:
    """Mask layouts, mask kind, seam and λ."""
    ctl: dict[str, Any] = {}
    with gr.Accordion("Mask M and fractal weight λ", open=open):
        ctl["layouts"] = gr.CheckboxGroup(list(LAYOUTS), value=list(field_default(Recipe, "layouts")),
                                          label=label_for(Recipe, "layouts"), info="one is drawn per sample")
        ctl["mask"] = gr.Radio(list(MASK_KINDS), value=field_default(Recipe, "mask"), label=label_for(Recipe, "mask"),
                               info=field_help(Recipe, "mask"))
        ctl["seam"] = gr.Slider(0, MAX_SEAM, value=field_default(Recipe, "seam"), step=1,
                                label=label_for(Recipe, "seam"))
        ctl["lam"] = gr.Slider(0.0, 1.0, value=field_default(Recipe, "lam"), step=0.01, label=label_for(Recipe, "lam"),
                               info="A = (1 − λ) H + λ F")
    ctl["mask"].change(mask_kind_changed, ctl["mask"], ctl["seam"], **QUICK)
    return ctl


def mask_kind_changed(mask: str) -> Any:
    """The seam slider only means something for the ramps (linspace, ramp): off with a binary mask."""
    return gr.update(interactive=mask != "binary")



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
.dm-badge { display: inline-block; padding: 0 6px; border-radius: 4px; font-size: 0.75rem; font-weight: 700;
  text-transform: uppercase; letter-spacing: 0.04em; background: rgba(0, 0, 0, 0.08); border: 1px solid currentColor; }
.dm-title h1 { margin-bottom: 0; }
.dm-title p { margin-top: 2px; opacity: 0.8; }
.dm-note { font-size: 0.85rem; opacity: 0.8; }
#dm-export-summary textarea { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 0.85rem; }
#dm-stages-box { overflow-x: auto; min-width: 0; contain: inline-size; }
.dm-status, .dm-title { overflow-wrap: anywhere; }
/* a phone (390 px): the page never scrolls sideways; the six stages keep their columns and their box scrolls */
@media (max-width: 640px) {
  .gradio-container { padding-left: 8px !important; padding-right: 8px !important; }
  #dm-stages-box > * { min-width: 540px !important; }
  #dm-stages .grid-container { grid-template-columns: repeat(6, minmax(0, 1fr)) !important; }
  .dm-stage-header { font-size: 0.8rem; }
}
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
        "allowed_paths": [str(EXAMPLES_DIR), str(current(ctx).fractals.folder)],
        "show_error": True,
    }
