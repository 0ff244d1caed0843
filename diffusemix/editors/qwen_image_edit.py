"""Qwen-Image-Edit (2509 / 2511) as an editor, through diffusers' ``QwenImageEditPlusPipeline``.

Qwen-Image-Edit-2511 (Qwen team, December 2025; weights Apache-2.0) is the
20B Qwen-Image MMDiT fine-tuned for editing: the input image goes both to the
Qwen2.5-VL text encoder (semantics, at 384 x 384 px) and to the VAE (the
appearance). The card runs 40 steps with true classifier-free guidance 4.0 and
the negative prompt " " (two transformer passes a step). The pipeline is
loaded from a Hugging Face Hub id (default ``Qwen/Qwen-Image-Edit-2511``) or a
local pipeline folder.

How a request is run:

1. The input I is resized to ``edit_size`` x ``edit_size`` (default 1024).
   Î is generated at that size and resized back to I's size. The reference
   the VAE encodes is that same edit-size image: diffusers (0.42.1) would
   upscale it to one megapixel whatever the output size
   (``VAE_IMAGE_SIZE``); this editor sets that area to ``edit_size`` squared
   for the call (under a lock), so the default (1024) is exactly the card's
   behaviour and a smaller edit size is cheaper throughout.
2. The style word is put in the prompt template (an instruction). The text
   encoder sees the image too, so its output is cached per (image, text):
   the negative prompt of an image is encoded once for all its prompts.
3. diffusers' pipeline takes one sample per call (it refuses more in
   0.42.1), so requests run one by one, each with its own CPU
   ``torch.Generator``.

transformers' ``Qwen2VLProcessor`` needs torchvision (for its video
processor). Where torchvision is not installed, the editor builds the
processor from the checkpoint's image processor and tokenizer alone
(:class:`ImageOnlyQwen2VLProcessor`, PIL resizing) and says so in its notice.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from ..errors import EditorLoadError
from ._diffusers_common import BatchOutOfMemory, run_pipeline
from ._instruct_common import (
    DEFAULT_PROMPT_TEMPLATE,
    EmbeddingCache,
    InstructEditor,
    apply_template,
    fetch_model_index,
    image_digest,
    load_instruct_pipeline,
    locate_pipeline,
    pipeline_class_of,
    single_image_oom,
    square,
    weights_missing,
)
from .base import CancelToken, EditRequest, EditResult, ProgressFn, edit_in_batches
from .licences import licence_notice
from .model_cards import MODEL_CARDS

__all__ = [
    "QwenImageEditEditor",
    "DEFAULT_QWEN_IMAGE_EDIT_MODEL",
    "QWEN_IMAGE_EDIT_PIPELINES",
    "image_only_processor",
    "vae_reference_area",
    "passes_per_step",
]

#: The latest Apache-2.0 edit checkpoint.
DEFAULT_QWEN_IMAGE_EDIT_MODEL = "Qwen/Qwen-Image-Edit-2511"

#: Pipeline classes this editor runs.
QWEN_IMAGE_EDIT_PIPELINES: tuple[str, ...] = ("QwenImageEditPlusPipeline",)

#: What a Qwen-Image-Edit-2509/2511 pipeline folder holds.
QWEN_IMAGE_EDIT_PARTS: tuple[str, ...] = (
    "model_index.json",
    "transformer/",
    "vae/",
    "text_encoder/",
    "tokenizer/",
    "processor/",
    "scheduler/",
)

_CARD = MODEL_CARDS[DEFAULT_QWEN_IMAGE_EDIT_MODEL]

_REFERENCE_LOCK = threading.Lock()


def passes_per_step(true_cfg_scale: float) -> int:
    """Transformer evaluations a step: 2 with true classifier-free guidance (scale above 1), else 1."""
    return 2 if true_cfg_scale > 1 else 1


@contextlib.contextmanager
def vae_reference_area(area: int) -> Iterator[None]:
    """Within the block, ``QwenImageEditPlusPipeline`` sizes the reference it
    encodes with the VAE to ``area`` pixels (its module constant
    ``VAE_IMAGE_SIZE``, 1024 * 1024 in diffusers 0.42.1). One block at a time,
    process-wide."""
    import diffusers.pipelines.qwenimage.pipeline_qwenimage_edit_plus as plus

    with _REFERENCE_LOCK:
        before = plus.VAE_IMAGE_SIZE
        plus.VAE_IMAGE_SIZE = int(area)
        try:
            yield
        finally:
            plus.VAE_IMAGE_SIZE = before


class QwenImageEditEditor(InstructEditor):
    """Edits images with Qwen-Image-Edit-2509/2511; see the module docstring.

    Args:
        spec: an :class:`~diffusemix.editors.spec.EditorSpec`: model, device, dtype, steps,
            ``true_cfg_scale``, ``negative_prompt``, edit size, prompt template, retries (one sample
            per pipeline call: diffusers' limit, so no batch size); those not given take
            :attr:`defaults` (the 2509/2511 card's).

    Raises:
        EditorLoadError: as for :class:`~diffusemix.editors.flux2_klein.Flux2KleinEditor`.
    """

    name = "qwen-image-edit"
    _default_model = DEFAULT_QWEN_IMAGE_EDIT_MODEL
    _label = "Qwen-Image-Edit"
    _parts = QWEN_IMAGE_EDIT_PARTS
    _pipelines = QWEN_IMAGE_EDIT_PIPELINES
    #: diffusers rounds the reference's sides to multiples of 32.
    size_multiple = 32
    guidance_field = "true_cfg_scale"
    #: The 2509/2511 card's values: 40 steps, true CFG 4.0 with the negative prompt " ".
    defaults = {
        "steps": _CARD.steps,
        "true_cfg_scale": _CARD.guidance,
        "negative_prompt": " ",
        "edit_size": _CARD.edit_size,
        "prompt_template": DEFAULT_PROMPT_TEMPLATE,
        "max_retries": 2,
    }

    @property
    def notice(self) -> str | None:
        """What a user must know before making data with this editor."""
        notes = [n for n in (licence_notice(self.model, self.card),) if n]
        processor_note = getattr(self._shared, "processor_note", None)  # set by load()
        if processor_note:
            notes.append(processor_note)
        return "; ".join(notes) or None

    def _build_pipeline(self) -> tuple[Any, Any]:
        source = locate_pipeline(self.model, label=self._label, example_id=self._default_model)
        fetch_model_index(source)
        if pipeline_class_of(source) == "QwenImageEditPipeline":
            raise EditorLoadError(
                f"{source.ref} holds the first Qwen-Image-Edit (QwenImageEditPipeline); this editor runs"
                f" Qwen-Image-Edit-2509 and later (QwenImageEditPlusPipeline): use {DEFAULT_QWEN_IMAGE_EDIT_MODEL}"
            )
        source, _ = self._locate()
        from diffusers import QwenImageEditPlusPipeline
        from transformers.utils import is_torchvision_available

        components: dict[str, Any] = {}
        if not is_torchvision_available():
            components["processor"] = _load_image_only_processor(source)
            self._shared.processor_note = (
                "torchvision is not installed, so the Qwen2-VL processor is built from its image processor and"
                " tokenizer alone (PIL resizing of the 384 px condition image; torchvision's may differ slightly)"
            )
        pipe = load_instruct_pipeline(
            QwenImageEditPlusPipeline,
            source,
            label=self._label,
            device=self.device,
            dtype=self.dtype,
            **components,
        )
        return pipe, EmbeddingCache()

    def describe(self) -> dict[str, Any]:
        s = self.spec
        return self._describe(
            f"Qwen-Image-Edit ({self.model}) on {self.device} in {self.dtype}, {s.steps} steps,"
            f" true CFG {s.true_cfg_scale:g}, edit size {s.edit_size} px",
            batch_size=1,
            vae_reference_size=s.edit_size,
            condition_image_size=384,
        )

    def _edit(
        self, requests: Sequence[EditRequest], *, progress: ProgressFn | None, cancel: CancelToken | None
    ) -> list[EditResult]:
        """Edit every request; results are in request order, at the request's size.

        ``progress`` counts denoising steps over the whole call (steps per
        request, growing if degenerate outputs are retried).

        Raises:
            Cancelled: ``cancel`` was set; work stops at the next step.
            EditorLoadError: the model cannot be loaded, or the device ran out
                of memory (lower ``edit_size``).
        """
        s, shared = self.spec, self._shared
        pipe, cache = shared.pipe, shared.prompts
        guidance = s.true_cfg_scale > 1

        def generate(images: list[np.ndarray], prompts: list[str], seeds: list[int], step: Callable[[], None]):
            (image,), (prompt,) = images, prompts  # one sample per call: the pipeline's limit
            edit_image = square(image, s.edit_size)
            text: dict[str, Any] = {}
            text["prompt_embeds"], text["prompt_embeds_mask"] = _encoded(
                pipe, cache, edit_image, apply_template(s.prompt_template, prompt)
            )
            if guidance:
                text["negative_prompt_embeds"], text["negative_prompt_embeds_mask"] = _encoded(
                    pipe, cache, edit_image, s.negative_prompt
                )
            with shared.run_lock, vae_reference_area(s.edit_size * s.edit_size):
                try:
                    return run_pipeline(
                        pipe,
                        [edit_image],
                        seeds,
                        step,
                        label=self._label,
                        batch_size=1,
                        num_inference_steps=s.steps,
                        true_cfg_scale=s.true_cfg_scale,
                        height=s.edit_size,
                        width=s.edit_size,
                        **text,
                    )
                except BatchOutOfMemory as exc:
                    raise single_image_oom(label=self._label, edit_size=s.edit_size) from exc

        return edit_in_batches(
            requests,
            generate,
            batch_size=1,
            units_per_batch=s.steps,
            max_retries=s.max_retries,
            progress=progress,
            cancel=cancel,
        )


def _encoded(pipe: Any, cache: EmbeddingCache, image: np.ndarray, text: str) -> tuple[Any, Any]:
    """(embeddings, mask) of ``text`` about ``image``, as the pipeline computes
    them: the image resized to the condition size (384 x 384 px in area) goes
    to Qwen2.5-VL with the text. Computed once per (image, text)."""

    def make() -> tuple[Any, Any]:
        import diffusers.pipelines.qwenimage.pipeline_qwenimage_edit_plus as plus
        from PIL import Image

        h, w = image.shape[:2]
        cw, ch = plus.calculate_dimensions(plus.CONDITION_IMAGE_SIZE, w / h)
        condition = pipe.image_processor.resize(Image.fromarray(image), ch, cw)
        return pipe._get_qwen_prompt_embeds([text], [condition], pipe._execution_device)

    return cache.get((image_digest(image), text), make)


def image_only_processor(image_processor: Any, tokenizer: Any, chat_template: str | None = None) -> Any:
    """A :class:`ImageOnlyQwen2VLProcessor` (the class is made on first use, so
    importing this module does not import transformers)."""
    return _image_only_processor_class()(image_processor, tokenizer, chat_template)


_IMAGE_ONLY_CLASS: Any = None


def _image_only_processor_class() -> Any:
    global _IMAGE_ONLY_CLASS
    if _IMAGE_ONLY_CLASS is not None:
        return _IMAGE_ONLY_CLASS
    from transformers import Qwen2VLProcessor

    class ImageOnlyQwen2VLProcessor(Qwen2VLProcessor):
        """``Qwen2VLProcessor`` for text and images only: no video processor,
        so it is built without torchvision. Processing text and images is
        ``Qwen2VLProcessor``'s own; only the constructor's class checks (which
        look up the torchvision-only video processor) are left out, and
        ``save_pretrained`` writes the image processor and tokenizer, as a
        checkpoint's ``processor/`` folder holds them."""

        def __init__(self, image_processor: Any, tokenizer: Any, chat_template: str | None = None) -> None:
            self.image_token = getattr(tokenizer, "image_token", None) or "<|image_pad|>"
            self.video_token = getattr(tokenizer, "video_token", None) or "<|video_pad|>"
            self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)
            self.video_token_id = tokenizer.convert_tokens_to_ids(self.video_token)
            self.image_processor = image_processor
            self.tokenizer = tokenizer
            self.video_processor = None
            self.chat_template = chat_template

        def __repr__(self) -> str:
            return f"ImageOnlyQwen2VLProcessor({type(self.image_processor).__name__}, {type(self.tokenizer).__name__})"

        def save_pretrained(self, save_directory: Any, **kwargs: Any) -> list[str]:
            self.image_processor.save_pretrained(save_directory)
            self.tokenizer.save_pretrained(save_directory)
            return []

    ImageOnlyQwen2VLProcessor.__module__ = __name__
    _IMAGE_ONLY_CLASS = ImageOnlyQwen2VLProcessor
    return ImageOnlyQwen2VLProcessor


def _load_image_only_processor(source: Any) -> Any:
    """The image-only processor from ``source``'s ``processor/`` folder."""
    from transformers import Qwen2TokenizerFast, Qwen2VLImageProcessorPil

    from ._diffusers_common import _first_line

    kwargs: dict[str, Any] = {"subfolder": "processor"}
    if source.kind == "folder":
        kwargs["local_files_only"] = True
    try:
        return image_only_processor(
            Qwen2VLImageProcessorPil.from_pretrained(source.ref, **kwargs),
            Qwen2TokenizerFast.from_pretrained(source.ref, **kwargs),
        )
    except OSError as exc:
        if source.kind == "folder":
            raise EditorLoadError(
                f"could not load the Qwen2-VL processor from {source.ref}/processor: {_first_line(exc)}"
            ) from exc
        raise EditorLoadError(weights_missing("Qwen-Image-Edit", source.ref)) from exc
