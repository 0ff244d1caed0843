"""What the two diffusers editors share: device and dtype choice, loading a
pipeline with errors that say what to do, the prompt-embedding cache, and one
batched pipeline call with per-sample generators, progress and cancel.

torch and diffusers are imported inside the functions, never at module level,
so that ``import diffusemix.editors`` stays cheap and torch-free.
"""

from __future__ import annotations

import copy
import json
import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ..errors import DiffuseMixError, EditorLoadError

if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Sequence

    import torch

    from .base import CancelToken, EditRequest, EditResult, ProgressFn

__all__ = [
    "PIPELINE_PARTS",
    "ModelSource",
    "resolve_device",
    "resolve_dtype",
    "locate_model",
    "locate_pipeline",
    "check_parts",
    "pipeline_class_of",
    "load_pipeline",
    "weights_missing",
    "PromptCache",
    "SharedPipeline",
    "BatchOutOfMemory",
    "run_pipeline",
]

#: What a diffusers Stable Diffusion pipeline folder holds (``save_pretrained``).
PIPELINE_PARTS: tuple[str, ...] = ("model_index.json", "unet/", "vae/", "text_encoder/", "tokenizer/", "scheduler/")

_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")


# ---------------------------------------------------------------------------
# device and dtype


class _NoTorchvisionNotice(logging.Filter):
    """Drops transformers' notice that CLIP's image processor falls back to its
    PIL version without torchvision: harmless here (the editors never use
    that processor, and torchvision is not a dependency), and noisy in the
    exporter's and the app's output."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "requires torchvision (not installed)" not in record.getMessage()


logging.getLogger("transformers.utils.import_utils").addFilter(_NoTorchvisionNotice())


class _NoHubRetryNotice(logging.Filter):
    """Drops diffusers' "Couldn't connect to the Hub ... Will try to load from
    local cache." notice: when the cache has the weights it is noise, and when
    it has not the EditorLoadError says it all, once."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Couldn't connect to the Hub" not in record.getMessage()


logging.getLogger("diffusers.pipelines.pipeline_utils").addFilter(_NoHubRetryNotice())


def _torch():
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - torch is a requirement
        raise EditorLoadError(
            "the diffusion editors need torch and diffusers: pip install -r requirements.txt "
            "(or use --editor preview, which needs neither)"
        ) from exc
    return torch


def resolve_device(device: str | None) -> str:
    """``device``, or the best one available: CUDA, then Apple's mps, then CPU.

    Raises:
        EditorLoadError: the named device does not exist on this machine.
    """
    torch = _torch()
    mps = getattr(torch.backends, "mps", None)
    has_mps = bool(mps is not None and mps.is_available())
    if device is None or device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        return "mps" if has_mps else "cpu"
    if not isinstance(device, str) or not re.fullmatch(r"cpu|mps|cuda(:\d+)?", device):
        raise EditorLoadError(f"device must be 'auto', 'cpu', 'mps', 'cuda' or 'cuda:N'; got {device!r}")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise EditorLoadError(
                f"device {device!r} was asked for but CUDA is not available here; leave --device unset or use cpu"
            )
        index = int(device.split(":")[1]) if ":" in device else 0
        if index >= torch.cuda.device_count():
            raise EditorLoadError(
                f"device {device!r} does not exist: this machine has {torch.cuda.device_count()} CUDA device(s)"
            )
    if device == "mps" and not has_mps:
        raise EditorLoadError("device 'mps' was asked for but Apple's Metal backend is not available here; use cpu")
    return device


def resolve_dtype(dtype: str | None, device: str) -> str:
    """The dtype's canonical name: ``dtype`` if given, else the default for the device
    (:func:`~diffusemix.editors.speed.default_dtype`: float16 on CUDA, float32 elsewhere)."""
    if dtype is None or dtype == "auto":
        from .speed import default_dtype

        return default_dtype(device)
    from .spec import DTYPE_ALIASES, DTYPE_CHOICES

    dtype = DTYPE_ALIASES.get(dtype, dtype)
    if dtype not in DTYPE_CHOICES:
        raise EditorLoadError(f"dtype must be one of {', '.join(DTYPE_CHOICES)}; got {dtype!r}")
    return dtype


# ---------------------------------------------------------------------------
# where the weights are


@dataclass(frozen=True)
class ModelSource:
    """A model to load: a local pipeline folder or a Hugging Face Hub id."""

    kind: Literal["folder", "hub"]
    #: An absolute folder path, or the hub id as given.
    ref: str


def locate_pipeline(model: str, *, label: str, example_id: str) -> ModelSource:
    """Decide whether ``model`` is a local folder or a Hub id.

    An existing directory is a folder (check what it holds with
    :func:`check_pipeline_class` and :func:`check_parts`); a string shaped
    like ``owner/name`` that is not one is a Hub id; anything else is a folder
    that does not exist.

    Raises:
        EditorLoadError: an empty name, a file, or a missing folder.
    """
    if not isinstance(model, str) or not model.strip():
        raise EditorLoadError(f"model must be a Hugging Face Hub id or a folder; got {model!r}")
    path = Path(model).expanduser()
    if path.is_dir():
        return ModelSource("folder", str(path.resolve()))
    if path.exists():
        raise EditorLoadError(
            f"{path} is a file; --model takes a diffusers pipeline folder (with model_index.json) or a Hugging Face"
            f" Hub id such as {example_id}"
        )
    if _HUB_ID.fullmatch(model) and not model.endswith((".ckpt", ".safetensors")):
        return ModelSource("hub", model)
    raise EditorLoadError(
        f"the model folder {path.absolute()} does not exist. Pass an existing diffusers pipeline folder for"
        f" {label} (--model /path/to/folder) or a Hugging Face Hub id such as {example_id}."
    )


def check_parts(
    source: ModelSource, *, parts: tuple[str, ...], label: str, example_id: str, kind: str | None = None
) -> None:
    """A folder holds every one of ``parts`` (a Hub id is not checked here); ``kind`` names the
    pipeline in the message (default: ``label``).

    Raises:
        EditorLoadError: the parts that are missing, and how to get a whole pipeline.
    """
    if source.kind != "folder":
        return
    folder = Path(source.ref)
    missing = [p for p in parts if not (folder / p.rstrip("/")).exists()]
    if missing:
        present = [p for p in parts if p not in missing]
        raise EditorLoadError(
            f"{folder} is not a {kind or label} pipeline folder: missing {', '.join(missing)}"
            f" (found {', '.join(present) if present else 'none of the parts'}). A pipeline folder is what"
            f" save_pretrained() writes, or what `hf download {example_id} --local-dir DIR` fetches;"
            " single-file .ckpt/.safetensors checkpoints are not supported."
        )


def pipeline_class_of(source: ModelSource) -> str | None:
    """The ``_class_name`` in the model_index.json of a folder, or of a Hub id
    in the local Hugging Face cache; ``None`` when it cannot be read here (the
    network is never asked)."""
    if source.kind == "folder":
        index: str | None = str(Path(source.ref) / "model_index.json")
    else:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(source.ref, "model_index.json")
        index = found if isinstance(found, str) else None
    if index is None:
        return None
    try:
        return str(json.loads(Path(index).read_text(encoding="utf-8"))["_class_name"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def locate_model(model: str, *, label: str, example_id: str) -> ModelSource:
    """:func:`locate_pipeline`, and a folder checked to hold a Stable Diffusion pipeline's parts.

    Raises:
        EditorLoadError: a missing folder, a file, or a folder that is not a
            diffusers pipeline (the message lists the parts that are missing).
    """
    source = locate_pipeline(model, label=label, example_id=example_id)
    check_parts(source, parts=PIPELINE_PARTS, label=label, example_id=example_id, kind="diffusers")
    return source


def weights_missing(label: str, hub_id: str) -> str:
    """What to do when a Hub id's weights are neither cached nor downloadable."""
    return (
        f"{label} weights '{hub_id}' are not on this machine: not in the local Hugging Face cache, and the"
        " Hub could not be reached (or the id is wrong). Get them once where the Hub is reachable"
        f" (`hf download {hub_id}`), or pass a local pipeline folder (--model /path/to/"
        f"{hub_id.split('/')[-1]}). To make a weight-free preview dataset on purpose (colour filters, not"
        ' a diffusion model), use --editor preview (in Python: load_editor("preview")).'
    )


def load_pipeline(
    from_pretrained: Callable[..., Any],
    source: ModelSource,
    *,
    label: str,
    device: str,
    dtype: str,
    revision: str | None = None,
    smaller_dtype: str = "float16",
    **components: Any,
) -> Any:
    """``from_pretrained`` on ``source`` in ``dtype``, moved to ``device``, with
    every failure turned into an :class:`EditorLoadError` that says what to do.

    A folder is read with ``local_files_only=True``; a hub id goes through the
    Hugging Face cache (and the network, when it can be reached), at
    ``revision`` when given. ``components`` go to ``from_pretrained`` (parts of
    the pipeline built here, or ``safety_checker=None``); ``smaller_dtype`` is
    what an out-of-memory while moving to the device advises.
    """
    torch = _torch()
    kwargs: dict[str, Any] = {"dtype": getattr(torch, dtype), **components}
    if source.kind == "folder":
        kwargs["local_files_only"] = True
    elif revision is not None:
        kwargs["revision"] = revision
    try:
        pipe = from_pretrained(source.ref, **kwargs)
    except EditorLoadError:
        raise
    except OSError as exc:
        if source.kind == "folder":
            raise EditorLoadError(
                f"could not load {label} from {source.ref}: {_first_line(exc)}. Check that the folder holds a"
                " complete diffusers pipeline (what save_pretrained() writes)."
            ) from exc
        raise EditorLoadError(weights_missing(label, source.ref)) from exc
    except Exception as exc:  # a config the pipeline class cannot take, a corrupt file, a missing package ...
        raise EditorLoadError(
            f"could not load {label} from {source.ref}: {type(exc).__name__}: {_first_line(exc)}"
        ) from exc
    try:
        pipe = pipe.to(device)
    except Exception as exc:
        if _is_oom(exc):
            raise EditorLoadError(
                f"out of memory moving {label} to {device} in {dtype}; free the device, use --dtype {smaller_dtype},"
                " or --device cpu"
            ) from exc
        raise EditorLoadError(f"could not move {label} to {device}: {_first_line(exc)}") from exc
    pipe.set_progress_bar_config(disable=True)
    # The UNet stays in PyTorch's default memory layout on every device: channels_last (diffusers' advice for
    # CUDA) made the full-size UNet 3-12 % slower on the project's CPU and 1.17x slower on an H200 (float16,
    # batch 32, bench/RESULTS.md).
    return pipe


def _first_line(exc: BaseException, limit: int = 400) -> str:
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _is_oom(exc: BaseException) -> bool:
    torch = _torch()
    oom_types = tuple(
        t for t in (getattr(torch, "OutOfMemoryError", None), getattr(torch.cuda, "OutOfMemoryError", None)) if t
    )
    if oom_types and isinstance(exc, oom_types):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


# ---------------------------------------------------------------------------
# prompt embeddings, computed once per distinct prompt


class PromptCache:
    """Text-encoder outputs, one per distinct prompt, the ``max_size`` most
    recently used kept (an app shared by many users sees unbounded prompts).

    ``encode(prompt)`` must return the (1, tokens, width) embedding that the
    pipeline itself would compute for ``prompt`` (without guidance copies).
    """

    def __init__(self, encode: Callable[[str], torch.Tensor], *, max_size: int = 512) -> None:
        self._encode = encode
        self._cache: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._lock = threading.Lock()
        self.max_size = max_size

    def __len__(self) -> int:
        return len(self._cache)

    def get(self, prompt: str) -> torch.Tensor:
        with self._lock:
            emb = self._cache.get(prompt)
            if emb is None:
                with _torch().no_grad():  # the pipeline's encoder is not wrapped in no_grad
                    emb = self._cache[prompt] = self._encode(prompt)
                while len(self._cache) > self.max_size:
                    self._cache.popitem(last=False)
            else:
                self._cache.move_to_end(prompt)
            return emb

    def batch(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(prompt_embeds, negative_prompt_embeds) for a batch; the negative is
        the empty prompt, as the pipelines use when none is given."""
        torch = _torch()
        pos = torch.cat([self.get(p) for p in prompts])
        neg = self.get("").expand(len(prompts), -1, -1).contiguous()
        return pos, neg


class BatchOutOfMemory(EditorLoadError):
    """A pipeline call ran out of memory (an :class:`EditorLoadError`, so code
    that does not split batches reports it as before)."""


class SharedPipeline:
    """A loaded pipeline and what goes with it, shared by an editor and the
    variants made by its ``with_settings()``: one model in memory, one prompt
    cache, one lock for loading and one for running (a pipeline's scheduler
    keeps state during a call, so calls must not overlap)."""

    def __init__(self) -> None:
        self.pipe: Any = None
        self.prompts: PromptCache | None = None
        self.load_lock = threading.Lock()
        self.run_lock = threading.Lock()
        #: Loaded on first use by a variant that asks for them (speed levers).
        self.tiny_vae: Any = None
        self.compiled_unet: Any = None
        #: A batch size that ran out of memory: later batches use at most half of it.
        self.oom_batch: int | None = None


# ---------------------------------------------------------------------------
# one pipeline call


def run_pipeline(
    pipe: Any,
    images: list[np.ndarray],
    seeds: list[int],
    step: Callable[[], None],
    *,
    label: str,
    batch_size: int,
    image_input: Any = None,
    **call_kwargs: Any,
) -> np.ndarray:
    """One batched pipeline call; returns uint8 (B, h, w, 3).

    Each sample gets its own CPU ``torch.Generator`` seeded with its seed (a
    list of generators, never ``[g] * n``), so a sample's noise does not depend
    on the batch it is in. ``step()`` runs at the end of every denoising step
    through ``callback_on_step_end``; when it raises ``Cancelled`` the exception
    leaves the pipeline at once. (Setting ``pipe._interrupt`` would not do:
    in diffusers 0.42.1 the InstructPix2Pix pipeline never reads it, and the
    img2img pipeline still decodes the latents after it.)

    ``image_input`` replaces the PIL images as the pipeline's ``image``
    argument (e.g. image latents already encoded by the VAE); a zero-argument
    function is called inside the out-of-memory handling, so that an encoder
    that runs out of memory splits the batch like the pipeline call does.

    Raises:
        EditorLoadError: the device ran out of memory (the message gives the
            batch size to lower).
    """
    torch = _torch()
    from PIL import Image

    def on_step_end(_pipe: Any, _i: int, _t: Any, tensors: dict[str, Any]) -> dict[str, Any]:
        step()
        return tensors

    generators = [torch.Generator(device="cpu").manual_seed(int(s)) for s in seeds]
    try:
        if callable(image_input):
            image_input = image_input()
        with torch.inference_mode():
            out = pipe(
                image=image_input if image_input is not None else [Image.fromarray(im) for im in images],
                generator=generators,
                output_type="np",
                callback_on_step_end=on_step_end,
                **call_kwargs,
            ).images
    except Exception as exc:
        if not _is_oom(exc):
            raise
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        if batch_size == 1 and len(images) == 1:
            raise BatchOutOfMemory(
                f"{label} ran out of memory with a single image at {images[0].shape[1]}x{images[0].shape[0]} px:"
                " even a batch of one does not fit. Use a smaller --size, a lighter dtype (bfloat16 or float16)"
                + (", the tiny VAE (--vae tiny)" if label == "InstructPix2Pix" else "")
                + " or free memory on the device."
            ) from exc
        smaller = max(1, batch_size // 2)
        raise BatchOutOfMemory(
            f"{label} ran out of memory with batch_size={batch_size} at {images[0].shape[1]}x{images[0].shape[0]} px"
            f" ({len(images)} images in this batch). Lower the batch size (e.g. --batch-size {smaller})"
            + (", use float16," if "float32" in str(getattr(pipe, "dtype", "")) else "")
            + " or free memory on the device."
        ) from exc
    out = np.nan_to_num(np.asarray(out, dtype=np.float32), nan=0.0)
    return (np.clip(out, 0.0, 1.0) * 255.0).round().astype(np.uint8)


class DiffusersEditor:
    """What the diffusers editors share: the resolved spec, device, dtype and the
    loaded pipeline (subclasses set ``name``, ``_label``, ``_default_model``,
    ``defaults`` (their settings and default values) and implement ``_build_pipeline``,
    ``describe`` and ``edit``).

    Args:
        spec: the request (``EditorSpec(name=...)`` with any settings); fields
            left ``None`` take this editor's defaults. Settings the editor does
            not have are refused (:class:`~diffusemix.errors.SettingError`).

    Raises:
        EditorLoadError: the device or dtype is not available (model loading
            errors come from ``load()``).
    """

    name: str
    is_diffusion = True
    notice: str | None = None
    _label: str
    _default_model: str
    #: The editor's settings (EditorSpec fields) and their defaults.
    defaults: dict[str, Any] = {}
    #: Speed presets (``EditorSpec.speed``): the settings each one sets.
    presets: dict[str, dict[str, Any]] = {}

    def __init__(self, spec: Any = None) -> None:
        from .loading import resolve_spec

        self.spec = resolve_spec(type(self), spec)
        self.model: str = self.spec.model
        self._shared = SharedPipeline()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.model!r}, device={self.device!r}, dtype={self.dtype!r})"

    @property
    def device(self) -> str:
        return str(self.spec.device)

    @property
    def dtype(self) -> str:
        return str(self.spec.dtype)

    @property
    def max_retries(self) -> int:
        return int(self.spec.max_retries)

    @property
    def loaded(self) -> bool:
        return self._shared.pipe is not None

    @property
    def pipeline(self) -> Any:
        """The loaded diffusers pipeline (loads it if needed)."""
        self.load()
        return self._shared.pipe

    def with_settings(self, **changes: Any) -> Any:
        """This editor with some settings changed (validated), sharing the
        loaded pipeline and prompt cache: no second model is loaded. The model,
        device and dtype cannot change (that is another editor)."""
        fixed = sorted(set(changes) & {"name", "model", "revision", "device", "dtype"})
        if fixed:
            raise DiffuseMixError(f"with_settings cannot change {', '.join(fixed)}: load another editor")
        variant = copy.copy(self)
        variant.spec = self.spec.replace(**changes)
        return variant

    def load(self) -> None:
        """Load the pipeline now (idempotent, thread-safe: one load however many threads ask)."""
        shared = self._shared
        if shared.pipe is not None:
            return
        with shared.load_lock:
            if shared.pipe is not None:
                return
            pipe, prompts = self._build_pipeline()
            shared.prompts = prompts  # before the pipeline: a thread that sees the pipeline sees its cache
            shared.pipe = pipe

    def edit(
        self,
        requests: Sequence[EditRequest],
        *,
        progress: ProgressFn | None = None,
        cancel: CancelToken | None = None,
    ) -> list[EditResult]:
        """Edit every request, loading the pipeline first; results are in request order (each
        editor's ``_edit`` says what ``progress`` counts and what to lower when memory runs out).

        Raises:
            Cancelled: ``cancel`` was set; work stops at the next step.
            EditorLoadError: the model cannot be loaded, or the device ran out of memory.
        """
        if not requests:
            return []
        self.load()
        return self._edit(requests, progress=progress, cancel=cancel)

    def _edit(  # pragma: no cover - overridden
        self, requests: Sequence[EditRequest], *, progress: ProgressFn | None, cancel: CancelToken | None
    ) -> list[EditResult]:
        """Edit ``requests`` (not empty) with the loaded pipeline."""
        raise NotImplementedError

    def _build_pipeline(self) -> tuple[Any, Any]:  # pragma: no cover - overridden
        """Find, load and prepare the pipeline (under the load lock); returns it and its prompt
        cache (``None``: the pipeline is given the prompt strings)."""
        raise NotImplementedError
