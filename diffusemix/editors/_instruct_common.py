"""What the instruction-following editors (FLUX.2 [klein], Qwen-Image-Edit)
share: the prompt template, the edit size, where the weights are, which
pipeline a folder or Hub id holds, loading with errors that say what to do,
and the settings checks.

These models take an instruction ("Change the look of this image to: snowy
...") where InstructPix2Pix takes the paper's bare style words, and they work
near one megapixel where the method's images are 256 px: an editor sees the
input resized to ``edit_size`` x ``edit_size`` and its output is resized back
to the request's size.

torch and diffusers are imported inside the functions only.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import EditorLoadError
from ._diffusers_common import _HUB_ID, DiffusersEditor, ModelSource, _first_line, _is_oom, _torch, check_positive_int

__all__ = [
    "DEFAULT_PROMPT_TEMPLATE",
    "PROMPT_PLACEHOLDER",
    "PIPELINE_EDITORS",
    "check_prompt_template",
    "apply_template",
    "check_edit_size",
    "square",
    "image_digest",
    "locate_pipeline",
    "check_parts",
    "pipeline_class_of",
    "fetch_model_index",
    "check_pipeline_class",
    "weights_note",
    "weights_missing",
    "load_instruct_pipeline",
    "EmbeddingCache",
    "InstructEditor",
    "instruct_dtype",
    "single_image_oom",
    "licence_text",
    "licence_notice",
    "licence_fields",
]

PROMPT_PLACEHOLDER = "{prompt}"

#: The instruction the paper's style words are put in. Why this wording:
#: both model families are trained on imperative edit instructions (the
#: Qwen-Image README's examples: "Change the rabbit's color to purple ...";
#: FLUX.2 [klein]'s card: "Turn this cat into a dog"), and Black Forest Labs'
#: editing guides advise naming the target look and saying explicitly what
#: must be preserved ("... while maintaining the original composition").
#: Keeping the subject, its shape and position is what keeps the label of I,
#: which is the point of DiffuseMix. The style word goes after a colon, so
#: that every one of the paper's prompts ("Autumn", "a sketch with crayon",
#: "ukiyo-e") reads as a look, not as content to add.
DEFAULT_PROMPT_TEMPLATE = (
    "Change the look of this image to: {prompt}. Keep the main subject, its shape and its position unchanged,"
    " and keep the composition."
)

#: The pipeline class a model_index.json names, and the editor that runs it.
PIPELINE_EDITORS: dict[str, str] = {
    "StableDiffusionInstructPix2PixPipeline": "instruct-pix2pix",
    "StableDiffusionPipeline": "img2img",
    "StableDiffusionImg2ImgPipeline": "img2img",
    "Flux2KleinPipeline": "flux2-klein",
    "Flux2KleinKVPipeline": "flux2-klein",
    "QwenImageEditPlusPipeline": "qwen-image-edit",
    "QwenImageEditPipeline": "qwen-image-edit",
    "FluxKontextPipeline": "flux-kontext",
}


# ---------------------------------------------------------------------------
# prompt template and edit size


def check_prompt_template(value: Any) -> None:
    """``value`` is a str holding ``{prompt}`` exactly once (ValueError otherwise)."""
    if not isinstance(value, str) or value.count(PROMPT_PLACEHOLDER) != 1:
        raise ValueError(
            f"prompt_template must be a str that contains {PROMPT_PLACEHOLDER} exactly once (where the prompt goes);"
            f" got {value!r}"
        )


def apply_template(template: str, prompt: str) -> str:
    """The instruction for ``prompt``: ``template`` with ``{prompt}`` replaced.

    Plain replacement, not ``str.format``: a prompt or template may hold other
    braces. Whitespace around the prompt is stripped.
    """
    return template.replace(PROMPT_PLACEHOLDER, prompt.strip())


def check_edit_size(value: Any, *, multiple: int, low: int = 64, high: int = 2048) -> None:
    """``value`` is an int in [low, high] and a multiple of ``multiple``."""
    check_positive_int("edit_size", value)
    if not low <= value <= high or value % multiple:
        raise ValueError(
            f"edit_size must be a multiple of {multiple} between {low} and {high} (the model works on"
            f" {multiple}-pixel patches); got {value!r}"
        )


def square(image: np.ndarray, size: int) -> np.ndarray:
    """``image`` resized to ``size`` x ``size`` (bicubic; a no-op at that size)."""
    from .base import _resize

    return _resize(image, size, size)


def image_digest(image: np.ndarray) -> bytes:
    """A 16-byte digest of an image's pixels and shape (to find repeated inputs)."""
    return hashlib.blake2b(image.tobytes(), digest_size=16, person=repr(image.shape).encode()[:16]).digest()


# ---------------------------------------------------------------------------
# where the weights are, and what they are


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


def check_parts(source: ModelSource, *, parts: tuple[str, ...], label: str, example_id: str) -> None:
    """A folder holds every one of ``parts`` (a Hub id is not checked here).

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
            f"{folder} is not a {label} pipeline folder: missing {', '.join(missing)}"
            f" (found {', '.join(present) if present else 'none of the parts'}). A pipeline folder is what"
            f" save_pretrained() writes, or what `hf download {example_id} --local-dir DIR` fetches."
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


def fetch_model_index(source: ModelSource) -> None:
    """Bring a Hub id's model_index.json into the local cache when the Hub can
    be reached (a few hundred bytes), so that its pipeline class is checked
    before gigabytes of weights are fetched. Failures are left to the load,
    which reports them."""
    if source.kind != "hub":
        return
    try:
        from huggingface_hub import hf_hub_download

        hf_hub_download(source.ref, "model_index.json")
    except Exception:  # offline, unknown id, ...: from_pretrained says what to do
        return


def check_pipeline_class(source: ModelSource, *, accepted: tuple[str, ...], label: str, editor: str) -> str | None:
    """The pipeline class ``source`` holds, checked against ``accepted``
    (``None`` when its model_index.json cannot be read here).

    Raises:
        EditorLoadError: the model holds another pipeline; the message names
            the editor that runs it (or the editors there are).
    """
    found = pipeline_class_of(source)
    if found is None or found in accepted:
        return found
    other = PIPELINE_EDITORS.get(found)
    editors = ", ".join(sorted(set(PIPELINE_EDITORS.values())))
    hint = f"use --editor {other} with it" if other and other != editor else f"the editors are {editors}"
    raise EditorLoadError(f"{source.ref} holds a {found}, not a {label} pipeline ({' or '.join(accepted)}); {hint}.")


def weights_note(
    model: str, *, label: str, example_id: str, parts: tuple[str, ...], accepted: tuple[str, ...], editor: str
) -> str | None:
    """Where an instruction editor's weights would come from, without loading
    them (for ``--dry-run``): ``None`` when they are on this machine (a
    complete pipeline folder of the right class, or a Hub id in the local
    Hugging Face cache), else a sentence that says what the run will do or why
    it cannot."""
    try:
        source = locate_pipeline(model, label=label, example_id=example_id)
        check_pipeline_class(source, accepted=accepted, label=label, editor=editor)
        check_parts(source, parts=parts, label=label, example_id=example_id)
    except EditorLoadError as exc:
        return f"cannot be loaded: {exc}"
    if source.kind == "folder" or pipeline_class_of(source) is not None:
        return None
    return (
        f"'{source.ref}' is not in the local Hugging Face cache: the run downloads it if the Hub can be reached,"
        f" else stops (exit 2). Get it with `hf download {source.ref}`, or pass --model /path/to/folder;"
        " --editor preview makes a weight-free preview dataset on purpose."
    )


def weights_missing(label: str, hub_id: str) -> str:
    """What to do when a Hub id's weights are neither cached nor downloadable."""
    return (
        f"{label} weights '{hub_id}' are not on this machine: not in the local Hugging Face cache, and the"
        " Hub could not be reached (or the id is wrong). Get them once where the Hub is reachable"
        f" (`hf download {hub_id}`), or pass a local pipeline folder (--model /path/to/"
        f"{hub_id.split('/')[-1]}). To make a weight-free preview dataset on purpose (colour filters, not"
        ' a diffusion model), use --editor preview (in Python: load_editor("preview")).'
    )


def load_instruct_pipeline(
    pipeline_cls: Any,
    source: ModelSource,
    *,
    label: str,
    device: str,
    dtype: str,
    **components: Any,
) -> Any:
    """``pipeline_cls.from_pretrained(source)`` in ``dtype``, moved to ``device``,
    with every failure turned into an :class:`EditorLoadError` that says what to do.

    A folder is read with ``local_files_only=True``; a Hub id goes through the
    Hugging Face cache (and the network, when it can be reached).
    ``components`` replace parts of the pipeline (e.g. a processor built here).
    """
    torch = _torch()
    kwargs: dict[str, Any] = {"dtype": getattr(torch, dtype), **components}
    if source.kind == "folder":
        kwargs["local_files_only"] = True
    try:
        pipe = pipeline_cls.from_pretrained(source.ref, **kwargs)
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
                f"out of memory moving {label} to {device} in {dtype}; free the device, use --dtype bfloat16, or"
                " --device cpu"
            ) from exc
        raise EditorLoadError(f"could not move {label} to {device}: {_first_line(exc)}") from exc
    pipe.set_progress_bar_config(disable=True)
    return pipe


def single_image_oom(*, label: str, edit_size: int) -> Exception:
    """The error for an out-of-memory that remains at one image: what to lower
    is the edit size (the request's size does not matter to these editors)."""
    from ._diffusers_common import BatchOutOfMemory

    lower = f"Lower edit_size (e.g. {edit_size // 2}), use" if edit_size // 2 >= SMALLEST_EDIT_SIZE else "Use"
    return BatchOutOfMemory(
        f"{label} ran out of memory on a single image at edit size {edit_size} px: even one image does not fit."
        f" {lower} bfloat16, or free memory on the device."
    )


#: The smallest edit size the settings accept.
SMALLEST_EDIT_SIZE = 64


# ---------------------------------------------------------------------------
# licences in descriptions


def licence_text(card: Any) -> str:
    """ "Apache-2.0, commercial use allowed", or "licence unknown" (``card`` may be None)."""
    if card is None:
        return "licence unknown"
    allowed = "allowed" if card.licence.commercial_use else "NOT allowed"
    return f"{card.licence.name}, commercial use {allowed}"


def licence_notice(model: str, card: Any, *, hint: str = "") -> str | None:
    """What a user must hear about the weights' licence before making data:
    that it is unknown (``card`` None), or that it forbids commercial use."""
    if card is None:
        return f"the licence of {model} is not known here: check its model card before using what it makes{hint}"
    if not card.licence.commercial_use:
        return f"{card.licence.name}: the weights of {card.title} are for non-commercial use ({card.licence.url})"
    return None


def licence_fields(card: Any) -> dict[str, Any]:
    """The licence keys of an editor's ``describe()`` (None values when unknown)."""
    licence = card.licence if card is not None else None
    return {
        "licence": licence.name if licence else None,
        "licence_url": licence.url if licence else None,
        "commercial_use": licence.commercial_use if licence else None,
        "model_card": card.describe() if card else None,
    }


# ---------------------------------------------------------------------------
# text-encoder outputs, computed once per key


class EmbeddingCache:
    """Text-encoder outputs keyed by anything hashable, the ``max_size`` most
    recently used kept (a shared app sees unbounded prompts).

    ``get(key, make)`` returns the stored value, or stores and returns
    ``make()`` (run under ``torch.no_grad``) on a miss.
    """

    def __init__(self, *, max_size: int = 256) -> None:
        self._cache: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()
        self.max_size = max_size
        #: Values made (misses), for tests and benches.
        self.misses = 0

    def __len__(self) -> int:
        return len(self._cache)

    def get(self, key: Hashable, make: Callable[[], Any]) -> Any:
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
            with _torch().no_grad():
                value = make()
            self.misses += 1
            self._cache[key] = value
            while len(self._cache) > self.max_size:
                self._cache.popitem(last=False)
            return value


# ---------------------------------------------------------------------------
# what the three editors share


def instruct_dtype(device: str) -> str:
    """The dtype these models run in when none is asked for: bfloat16, as their
    cards load them (float16 can overflow in these transformers), where the
    device has it; else what :func:`~diffusemix.editors.speed.auto_dtype` picks."""
    from .speed import auto_dtype

    if device.startswith("cuda"):
        torch = _torch()
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    return auto_dtype(device)


class InstructEditor(DiffusersEditor):
    """What the instruction editors share beyond :class:`DiffusersEditor`: the
    bfloat16 default, the model card and licence of the weights, and the dry
    run's note. Subclasses set ``_parts`` (what a pipeline folder holds),
    ``_pipelines`` (the pipeline classes they run) and ``_licence_hint``."""

    _parts: tuple[str, ...]
    _pipelines: tuple[str, ...]
    _licence_hint: str = ""

    def __init__(
        self,
        model: str | None = None,
        *,
        settings: Any = None,
        device: str | None = None,
        dtype: str | None = None,
    ) -> None:
        super().__init__(model, settings=settings, device=device, dtype=dtype)
        if dtype is None or dtype == "auto":
            self.dtype = instruct_dtype(self.device)

    @property
    def card(self) -> Any:
        """The :class:`~diffusemix.editors.model_cards.ModelCard` of these weights, or ``None`` when not known."""
        from .model_cards import card_for

        return card_for(self.model, editor=self.name)

    @property
    def licence(self) -> Any:
        """The :class:`~diffusemix.editors.model_cards.WeightsLicence` of these weights, or ``None`` when not known."""
        card = self.card
        return card.licence if card is not None else None

    @property
    def notice(self) -> str | None:
        """What a user must know before making data with this editor (its licence), or ``None``."""
        return licence_notice(self.model, self.card, hint=self._licence_hint)

    def weights_note(self) -> str | None:
        """Where the weights would come from, without loading them (for ``--dry-run``):
        ``None`` when they are on this machine, else what the run will do."""
        return weights_note(
            self.model,
            label=self._label,
            example_id=self._default_model,
            parts=self._parts,
            accepted=self._pipelines,
            editor=self.name,
        )

    def _locate(self) -> tuple[ModelSource, str | None]:
        """The checked source of the weights and its pipeline class (``None``: not readable yet)."""
        source = locate_pipeline(self.model, label=self._label, example_id=self._default_model)
        fetch_model_index(source)
        found = check_pipeline_class(source, accepted=self._pipelines, label=self._label, editor=self.name)
        check_parts(source, parts=self._parts, label=self._label, example_id=self._default_model)
        return source, found
