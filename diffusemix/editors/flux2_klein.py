"""FLUX.2 [klein] as an editor, through diffusers' ``Flux2KleinPipeline``.

FLUX.2 [klein] 4B (Black Forest Labs, January 2026; weights Apache-2.0) is a
4-billion-parameter rectified-flow transformer with a Qwen3-4B text encoder
that generates and edits images; its distilled checkpoint needs 4 steps and
no guidance. The pipeline is loaded from a Hugging Face Hub id (default
``black-forest-labs/FLUX.2-klein-4B``) or a local pipeline folder; the 9B
checkpoints (non-commercial licence) and the KV-cache pipeline
(``Flux2KleinKVPipeline``, FLUX.2 [klein] 9B KV) load the same way.

How a request is run:

1. The input I is resized to ``edit_size`` x ``edit_size`` (default 1024, the
   card's resolution) and passed as the reference image; Î is generated at
   that size and resized back to I's size.
2. The style word is put in the prompt template (an instruction; see
   :data:`~diffusemix.editors._instruct_common.DEFAULT_PROMPT_TEMPLATE`); each
   distinct instruction is encoded by the text encoder once for the life of
   the editor.
3. Requests are batched, one CPU ``torch.Generator`` per sample. diffusers'
   pipeline treats a list of images as several references for *every*
   sample; this editor gives each sample its own reference instead (each
   distinct image encoded by the VAE once), so a batch of different images is
   one call.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ._diffusers_common import run_pipeline
from ._instruct_common import (
    DEFAULT_PROMPT_TEMPLATE,
    EmbeddingCache,
    InstructEditor,
    apply_template,
    image_digest,
    load_instruct_pipeline,
    square,
)
from .base import CancelToken, EditRequest, EditResult, ProgressFn
from .model_cards import MODEL_CARDS

__all__ = ["Flux2KleinEditor", "DEFAULT_FLUX2_KLEIN_MODEL", "FLUX2_KLEIN_PIPELINES"]

#: The Apache-2.0 distilled 4B checkpoint.
DEFAULT_FLUX2_KLEIN_MODEL = "black-forest-labs/FLUX.2-klein-4B"

#: Pipeline classes this editor runs (model_index.json's ``_class_name``).
FLUX2_KLEIN_PIPELINES: tuple[str, ...] = ("Flux2KleinPipeline", "Flux2KleinKVPipeline")

#: What a FLUX.2 [klein] pipeline folder holds.
FLUX2_KLEIN_PARTS: tuple[str, ...] = (
    "model_index.json",
    "transformer/",
    "vae/",
    "text_encoder/",
    "tokenizer/",
    "scheduler/",
)

_CARD = MODEL_CARDS[DEFAULT_FLUX2_KLEIN_MODEL]


class Flux2KleinEditor(InstructEditor):
    """Edits images with FLUX.2 [klein]; see the module docstring.

    Args:
        spec: an :class:`~diffusemix.editors.spec.EditorSpec`: the model (a Hugging Face Hub id or a
            local diffusers pipeline folder), device, dtype (``None``: bfloat16 on CUDA, as the card
            loads it; float32 elsewhere), steps, guidance, edit size, prompt template, batch size and
            retries; those not given take :attr:`defaults` (the model card's; a Base checkpoint's card
            gives 50 steps and guidance 4).

    Raises:
        EditorLoadError: from :meth:`load` when the weights cannot be found or
            loaded, or the folder holds another pipeline (the message names the
            editor for it); from the constructor when the device or dtype is not
            available.
    """

    name = "flux2-klein"
    _default_model = DEFAULT_FLUX2_KLEIN_MODEL
    _label = "FLUX.2 [klein]"
    _parts = FLUX2_KLEIN_PARTS
    _pipelines = FLUX2_KLEIN_PIPELINES
    _licence_hint = " (FLUX.2 [klein] 4B is Apache-2.0, the 9B checkpoints are non-commercial)"
    size_multiple = 16  # the latent is 1/8 of the image and packed in 2x2 patches
    #: The card's values (FLUX.2 [klein] 4B, distilled: 4 steps; guidance is ignored by it).
    defaults = {
        "steps": _CARD.steps,
        "guidance_scale": 1.0,  # classifier-free guidance: only the undistilled Base checkpoints use it
        "edit_size": _CARD.edit_size,  # the card's ~1 megapixel
        "prompt_template": DEFAULT_PROMPT_TEMPLATE,
        "batch_size": 4,  # samples per pipeline call
        "max_retries": 2,  # blank outputs remade with a new recorded seed
    }

    def _build_pipeline(self) -> tuple[Any, Any]:
        source, found = self._locate()
        import diffusers

        pipe = load_instruct_pipeline(
            getattr(diffusers, found or "Flux2KleinPipeline"),
            source,
            label=self._label,
            device=self.device,
            dtype=self.dtype,
        )
        # One reference image per sample (see the module docstring).
        pipe.prepare_image_latents = functools.partial(per_sample_image_latents, pipe)
        return pipe, EmbeddingCache()

    def _uses_guidance(self) -> bool:
        pipe = self._shared.pipe
        if pipe is None or not hasattr(pipe, "do_classifier_free_guidance"):
            return False  # the KV pipeline has no guidance at all
        return self.spec.guidance_scale > 1 and not pipe.config.is_distilled

    def describe(self) -> dict[str, Any]:
        s = self.spec
        return self._describe(
            f"FLUX.2 [klein] ({self.model}) on {self.device} in {self.dtype}, {s.steps} steps,"
            f" edit size {s.edit_size} px",
            guidance_applied=self._uses_guidance() if self._shared.pipe is not None else None,
        )

    def _edit(
        self, requests: Sequence[EditRequest], *, progress: ProgressFn | None, cancel: CancelToken | None
    ) -> list[EditResult]:
        """Edit every request; results are in request order, at the request's size.

        ``progress`` counts denoising steps over the whole call (steps x
        batches, growing if degenerate outputs are retried).

        Raises:
            Cancelled: ``cancel`` was set; work stops at the next step.
            EditorLoadError: the model cannot be loaded, or the device ran out
                of memory (lower ``batch_size`` or ``edit_size``).
        """
        s, shared = self.spec, self._shared
        pipe, cache = shared.pipe, shared.prompts
        guidance = self._uses_guidance()
        kv = not hasattr(pipe, "do_classifier_free_guidance")

        device = pipe._execution_device

        def encoded(instruction: str) -> Any:
            """The text encoder's (1, tokens, width) output for ``instruction``, computed once."""
            return cache.get(instruction, lambda: pipe.encode_prompt(prompt=instruction, device=device)[0])

        def generate_once(images: list[np.ndarray], prompts: list[str], seeds: list[int], step: Callable[[], None]):
            import torch

            embeds = torch.cat([encoded(apply_template(s.prompt_template, p)) for p in prompts])
            text: dict[str, Any] = {"prompt_embeds": embeds}
            if not kv:
                text["guidance_scale"] = s.guidance_scale
            if guidance:  # the pipeline's negative prompt is the empty one
                text["negative_prompt_embeds"] = encoded("").expand(len(prompts), -1, -1)
            with shared.run_lock:
                return run_pipeline(
                    pipe,
                    [square(im, s.edit_size) for im in images],
                    seeds,
                    step,
                    label=self._label,
                    batch_size=s.batch_size,
                    num_inference_steps=s.steps,
                    height=s.edit_size,
                    width=s.edit_size,
                    **text,
                )

        return self._edit_in_batches(requests, generate_once, progress=progress, cancel=cancel)


def per_sample_image_latents(
    pipe: Any, images: list[Any], batch_size: int, generator: Any, device: Any, dtype: Any
) -> tuple[Any, Any]:
    """``Flux2KleinPipeline.prepare_image_latents`` with one reference per sample.

    diffusers (0.42.1) encodes every image in ``images`` as a reference and
    gives all of them to every sample. Here ``images`` holds one preprocessed
    (1, 3, H, W) tensor per sample, all of one size: sample ``b`` gets the
    latent of ``images[b]`` alone, with the position ids the pipeline gives a
    single reference. Each distinct image is encoded once (the encoding is the
    latent distribution's mode, as the pipeline's, so ``generator`` plays no
    part). With one sample this is exactly the pipeline's own result. Any other
    use (a number of images other than ``batch_size``) goes to the pipeline's
    own method.

    Returns:
        (image latents (B, N, C), position ids (B, N, 4)), on ``device``.
    """
    if len(images) != batch_size:
        return type(pipe).prepare_image_latents(pipe, images, batch_size, generator, device, dtype)
    import torch
    from diffusers.utils.torch_utils import get_module_execution_device

    index: dict[bytes, int] = {}
    rows: list[int] = []
    distinct: list[Any] = []
    for image in images:
        key = image_digest(image.detach().float().cpu().numpy())
        if key not in index:
            index[key] = len(distinct)
            distinct.append(image)
        rows.append(index[key])
    vae_device = get_module_execution_device(pipe.vae)
    latents = [pipe._encode_vae_image(image=im.to(device=vae_device, dtype=dtype), generator=None) for im in distinct]
    ids = pipe._prepare_image_ids([latents[0]])  # one reference: time coordinate 10
    packed = [pipe._pack_latents(lat) for lat in latents]  # (1, N, C) each
    image_latents = torch.cat([packed[r] for r in rows]).to(device)
    return image_latents, ids.repeat(batch_size, 1, 1).to(device)
