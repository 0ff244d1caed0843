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
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import EditorLoadError, SettingError
from ._diffusers_common import (
    _HUB_ID,
    BatchOutOfMemory,
    DiffusersEditor,
    ModelSource,
    _torch,
    check_parts,
    load_pipeline,
    locate_pipeline,
    pipeline_class_of,
    weights_missing,
)
from .base import edit_in_batches
from .batching import split_on_oom
from .licences import licence_fields, licence_notice, licence_text

__all__ = [
    "DEFAULT_PROMPT_TEMPLATE",
    "PROMPT_PLACEHOLDER",
    "PIPELINE_EDITORS",
    "apply_template",
    "square",
    "image_digest",
    "locate_pipeline",
    "check_parts",
    "pipeline_class_of",
    "fetch_model_index",
    "check_pipeline_class",
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


def apply_template(template: str, prompt: str) -> str:
    """The instruction for ``prompt``: ``template`` with ``{prompt}`` replaced.

    Plain replacement, not ``str.format``: a prompt or template may hold other
    braces. Whitespace around the prompt is stripped.
    """
    return template.replace(PROMPT_PLACEHOLDER, prompt.strip())


def square(image: np.ndarray, size: int) -> np.ndarray:
    """``image`` resized to ``size`` x ``size`` (bicubic; a no-op at that size)."""
    from .base import _resize

    return _resize(image, size, size)


def image_digest(image: np.ndarray) -> bytes:
    """A 16-byte digest of an image's pixels and shape (to find repeated inputs)."""
    return hashlib.blake2b(image.tobytes(), digest_size=16, person=repr(image.shape).encode()[:16]).digest()


# ---------------------------------------------------------------------------
# where the weights are, and what they are


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


def check_pipeline_class(
    source: ModelSource, *, accepted: tuple[str, ...] | None, label: str, editor: str
) -> str | None:
    """The pipeline class ``source`` holds, checked against ``accepted``
    (``None`` when its model_index.json cannot be read here). ``accepted=None``
    takes any class but those another editor runs (img2img's many families).

    Raises:
        EditorLoadError: the model holds another pipeline; the message names
            the editor that runs it (or the editors there are).
    """
    found = pipeline_class_of(source)
    other = PIPELINE_EDITORS.get(found or "")
    if found is None or (accepted is not None and found in accepted) or (accepted is None and other in (None, editor)):
        return found
    editors = ", ".join(sorted(set(PIPELINE_EDITORS.values())))
    hint = f"use --editor {other} with it" if other and other != editor else f"the editors are {editors}"
    wanted = f" ({' or '.join(accepted)})" if accepted else ""
    raise EditorLoadError(f"{source.ref} holds a {found}, not a {label} pipeline{wanted}; {hint}.")


#: The editors of this module's pipelines (the instruction editors).
INSTRUCT_EDITORS: tuple[str, ...] = ("flux2-klein", "qwen-image-edit", "flux-kontext")


def refuse_instruct_folder(model: str, *, label: str, editor: str) -> None:
    """For the Stable Diffusion editors: a local folder (or cached Hub id) holding an instruction
    editor's pipeline is refused, naming the editor that runs it, and a folder of a pipeline no
    editor runs (no ``unet/``) naming the editors (their own checks, e.g. the UNet's channels, say
    the rest). Anything not readable here is left to the load.

    Raises:
        EditorLoadError: ``model`` holds a FLUX.2 [klein], Qwen-Image-Edit or FLUX.1 Kontext pipeline,
            or a folder of another pipeline without a UNet.
    """
    if not isinstance(model, str) or not model.strip():
        return
    path = Path(model).expanduser()
    source = ModelSource("folder", str(path.resolve())) if path.is_dir() else (
        ModelSource("hub", model) if _HUB_ID.fullmatch(model) else None)
    if source is None:
        return
    found = pipeline_class_of(source)
    other = PIPELINE_EDITORS.get(found or "")
    if other in INSTRUCT_EDITORS and other != editor:
        raise EditorLoadError(f"{source.ref} holds a {found}, not a {label} pipeline; use --editor {other} with it.")
    if found and other is None and source.kind == "folder" and not (Path(source.ref) / "unet").is_dir():
        editors = ", ".join(sorted(set(PIPELINE_EDITORS.values())))
        raise EditorLoadError(f"{source.ref} holds a {found}, not a {label} pipeline; the editors are {editors}.")


def load_instruct_pipeline(pipeline_cls: Any, source: ModelSource, *, label: str, device: str, dtype: str,
                           **components: Any) -> Any:
    """:func:`load_pipeline` for these editors: ``pipeline_cls.from_pretrained`` (no safety checker to turn off),
    bfloat16 the smaller dtype advised; ``components`` replace parts of the pipeline (e.g. a processor built here)."""
    return load_pipeline(pipeline_cls.from_pretrained, source, label=label, device=device, dtype=dtype,
                         smaller_dtype="bfloat16", **components)


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
    """The dtype these models run in when none is asked for: on CUDA bfloat16, as their cards
    load them (float16 can overflow in these transformers), or float16 on a GPU without it;
    elsewhere float32, the library's exact default (bfloat16 by name: about half the memory)."""
    if device.startswith("cuda"):
        torch = _torch()
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    return "float32"


class InstructEditor(DiffusersEditor):
    """What the instruction editors share beyond :class:`DiffusersEditor`: the dtype default,
    the model card and licence of the weights, the checks of the edit size, and locating the
    weights. Subclasses set ``_parts`` (what a pipeline folder holds), ``_pipelines`` (the
    pipeline classes they run), ``size_multiple`` and ``_licence_hint``."""

    _parts: tuple[str, ...]
    _pipelines: tuple[str, ...]
    _licence_hint: str = ""
    #: The edit size must be a multiple of this (the VAE's 8 x the transformer's 2x2 patches).
    size_multiple: int = 16
    #: Weights this editor does not know may be non-commercial (their family has such weights).
    unknown_licence_needs_acceptance = True
    #: The spec field the card's ``guidance`` value sets.
    guidance_field = "guidance_scale"

    @classmethod
    def auto_dtype(cls, device: str) -> str:
        """The dtype ``auto`` stands for (see :func:`instruct_dtype`)."""
        return instruct_dtype(device)

    @classmethod
    def defaults_for(cls, model: str | None) -> dict[str, Any]:
        """The settings' defaults for these weights: the editor's, with the steps and guidance of the
        model card of ``model`` where it is a checkpoint with other values (e.g. a Base checkpoint)."""
        from .model_cards import card_for

        values = dict(cls.defaults)
        card = card_for(model, editor=cls.name) if isinstance(model, str) else None
        if card is not None:
            values["steps"] = card.steps
            if card.guidance is not None and cls.guidance_field in values:
                values[cls.guidance_field] = card.guidance
        return values

    @classmethod
    def check_spec(cls, spec: Any) -> None:
        """Checks of a resolved spec that depend on the editor (raised as the spec's own errors)."""
        if spec.edit_size is not None and spec.edit_size % cls.size_multiple:
            raise SettingError(
                f"must be a multiple of {cls.size_multiple} for {cls.name} (the model works on"
                f" {cls.size_multiple}-pixel patches)", owner="EditorSpec", field="edit_size", value=spec.edit_size,
            )
        if spec.batch_size == "auto":
            raise SettingError(
                f"auto is measured for InstructPix2Pix only; give {cls.name} a number (its default:"
                f" {cls.defaults.get('batch_size', 1)})", owner="EditorSpec", field="batch_size", value="auto",
            )

    def with_settings(self, **changes: Any) -> Any:
        """This editor with some of its settings changed (checked), sharing the loaded pipeline."""
        foreign = sorted(set(changes) - set(type(self).defaults))
        fixed = sorted(set(foreign) & {"name", "model", "revision", "device", "dtype"})
        if foreign and not fixed:
            raise SettingError(
                f"{'are not settings' if len(foreign) > 1 else 'is not a setting'} of the {self.name} editor (its"
                f" settings: {', '.join(type(self).defaults)})", owner="EditorSpec", field=foreign[0],
                also=tuple(foreign[1:]),
            )
        variant = super().with_settings(**changes)
        type(self).check_spec(variant.spec)
        return variant

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

    def _describe(self, summary: str, **extra: Any) -> dict[str, Any]:
        """What the three editors' ``describe()`` share: the settings, the pipeline, the licence."""
        card = self.card
        pipe = self._shared.pipe
        d: dict[str, Any] = {
            "name": self.name,
            "summary": f"{summary}, {licence_text(card)}",
            "is_diffusion": True,
            "model": self.model,
            "device": self.device,
            "dtype": self.dtype,
            "pipeline": type(pipe).__name__ if pipe is not None else (card.pipeline if card else self._pipelines[0]),
            "scheduler": "FlowMatchEulerDiscreteScheduler",
            **self.spec.pixel_settings(),
            "approximate": self.spec.approximate,
            **extra,
            **licence_fields(card),
        }
        if self.notice:
            d["notice"] = self.notice
        return d

    def _edit_in_batches(self, requests: Any, generate_once: Callable[..., Any], *, progress: Any, cancel: Any) -> Any:
        """:func:`~diffusemix.editors.base.edit_in_batches` with ``generate_once(images, prompts, seeds, step)`` as the
        model call: a batch that runs out of memory is split (later batches stay at half of it), and one image
        that still does not fit is an error that says to lower the edit size."""
        s, shared = self.spec, self._shared

        def generate(images: Any, prompts: Any, seeds: Any, step: Any) -> Any:
            try:
                return split_on_oom(generate_once, images, prompts, seeds, step, shared=shared)
            except BatchOutOfMemory as exc:  # what remains after splitting: one image does not fit
                raise single_image_oom(label=self._label, edit_size=s.edit_size) from exc

        batch_size = s.batch_size if shared.oom_batch is None else max(1, min(s.batch_size, shared.oom_batch // 2))
        return edit_in_batches(
            requests, generate, batch_size=batch_size, units_per_batch=s.steps, max_retries=s.max_retries,
            progress=progress, cancel=cancel,
        )

    def _locate(self) -> tuple[ModelSource, str | None]:
        """The checked source of the weights and its pipeline class (``None``: not readable yet)."""
        source = locate_pipeline(self.model, label=self._label, example_id=self._default_model)
        fetch_model_index(source)
        found = check_pipeline_class(source, accepted=self._pipelines, label=self._label, editor=self.name)
        check_parts(source, parts=self._parts, label=self._label, example_id=self._default_model)
        return source, found
