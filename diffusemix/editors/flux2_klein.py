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
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ._diffusers_common import (
    BatchOutOfMemory,
    check_nonnegative_int,
    check_number,
    check_positive_int,
    run_pipeline,
)
from ._instruct_common import (
    DEFAULT_PROMPT_TEMPLATE,
    EmbeddingCache,
    InstructEditor,
    apply_template,
    check_edit_size,
    check_prompt_template,
    image_digest,
    licence_fields,
    licence_text,
    load_instruct_pipeline,
    single_image_oom,
    square,
)
from .base import CancelToken, EditRequest, EditResult, ProgressFn, edit_in_batches
from .batching import split_on_oom

__all__ = ["Flux2KleinEditor", "Flux2KleinSettings", "DEFAULT_FLUX2_KLEIN_MODEL", "FLUX2_KLEIN_PIPELINES"]

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

#: The latent is 1/8 of the image and packed in 2x2 patches.
SIZE_MULTIPLE = 16


@dataclass(frozen=True)
class Flux2KleinSettings:
    """How FLUX.2 [klein] is run (the 4B distilled card's values by default)."""

    #: Denoising steps (the distilled checkpoints: 4; the Base ones: 50).
    steps: int = 4
    #: Classifier-free guidance; ignored by the step-distilled checkpoints
    #: (diffusers skips it), 4.0 on the card of the Base ones.
    guidance_scale: float = 1.0
    #: The side of the square the model edits at (a multiple of 16); Î is
    #: resized back to the request's size.
    edit_size: int = 1024
    #: The instruction the prompt is put in; must contain {prompt} once.
    prompt_template: str = DEFAULT_PROMPT_TEMPLATE
    #: Samples per pipeline call.
    batch_size: int = 4
    #: Times a blank/near-constant output is remade with a new seed before it is reported.
    max_retries: int = 2

    def __post_init__(self) -> None:
        check_positive_int("steps", self.steps)
        check_number("guidance_scale", self.guidance_scale, low=0.0)
        check_edit_size(self.edit_size, multiple=SIZE_MULTIPLE)
        check_prompt_template(self.prompt_template)
        check_positive_int("batch_size", self.batch_size)
        check_nonnegative_int("max_retries", self.max_retries)


class Flux2KleinEditor(InstructEditor):
    """Edits images with FLUX.2 [klein]; see the module docstring.

    Args:
        model: a Hugging Face Hub id or a local diffusers pipeline folder.
        settings: steps, guidance, edit size, prompt template, batch size, retries.
        device: ``"cuda"``, ``"cuda:N"``, ``"mps"`` or ``"cpu"``; ``None`` picks.
        dtype: ``"bfloat16"`` (the card's), ``"float16"`` or ``"float32"``;
            ``None`` picks float16 on CUDA, bfloat16 on a CPU that has it.

    Raises:
        EditorLoadError: from :meth:`load` when the weights cannot be found or
            loaded, or the folder holds another pipeline (the message names the
            editor for it); from the constructor when the device or dtype is not
            available.
    """

    name = "flux2-klein"
    _settings_cls = Flux2KleinSettings
    _default_model = DEFAULT_FLUX2_KLEIN_MODEL
    _label = "FLUX.2 [klein]"
    _parts = FLUX2_KLEIN_PARTS
    _pipelines = FLUX2_KLEIN_PIPELINES
    _licence_hint = " (FLUX.2 [klein] 4B is Apache-2.0, the 9B checkpoints are non-commercial)"

    def load(self) -> None:
        """Load the pipeline now (idempotent, thread-safe)."""
        shared = self._shared
        if shared.pipe is not None:
            return
        with shared.load_lock:
            if shared.pipe is not None:
                return
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
            shared.prompts = EmbeddingCache()
            shared.pipe = pipe

    def _uses_guidance(self) -> bool:
        pipe = self._shared.pipe
        if pipe is None or not hasattr(pipe, "do_classifier_free_guidance"):
            return False  # the KV pipeline has no guidance at all
        return self.settings.guidance_scale > 1 and not pipe.config.is_distilled

    def describe(self) -> dict[str, Any]:
        s, card = self.settings, self.card
        pipe = self._shared.pipe
        d: dict[str, Any] = {
            "name": self.name,
            "summary": (
                f"FLUX.2 [klein] ({self.model}) on {self.device} in {self.dtype}, {s.steps} steps,"
                f" edit size {s.edit_size} px, {licence_text(card)}"
            ),
            "is_diffusion": True,
            "model": self.model,
            "device": self.device,
            "dtype": self.dtype,
            "pipeline": type(pipe).__name__ if pipe is not None else (card.pipeline if card else None),
            "scheduler": "FlowMatchEulerDiscreteScheduler",
            **asdict(s),
            "guidance_applied": self._uses_guidance() if pipe is not None else None,
            **licence_fields(card),
        }
        if self.notice:
            d["notice"] = self.notice
        return d

    def edit(
        self,
        requests: Sequence[EditRequest],
        *,
        progress: ProgressFn | None = None,
        cancel: CancelToken | None = None,
    ) -> list[EditResult]:
        """Edit every request; results are in request order, at the request's size.

        ``progress`` counts denoising steps over the whole call (steps x
        batches, growing if degenerate outputs are retried).

        Raises:
            Cancelled: ``cancel`` was set; work stops at the next step.
            EditorLoadError: the model cannot be loaded, or the device ran out
                of memory (lower ``batch_size`` or ``edit_size``).
        """
        if not requests:
            return []
        self.load()
        s, shared = self.settings, self._shared
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

        def generate(images: list[np.ndarray], prompts: list[str], seeds: list[int], step: Callable[[], None]):
            try:
                return split_on_oom(generate_once, images, prompts, seeds, step, shared=shared)
            except BatchOutOfMemory as exc:  # what remains after splitting: one image does not fit
                raise single_image_oom(label=self._label, edit_size=s.edit_size) from exc

        batch_size = s.batch_size if shared.oom_batch is None else max(1, min(s.batch_size, shared.oom_batch // 2))
        return edit_in_batches(
            requests,
            generate,
            batch_size=batch_size,
            units_per_batch=s.steps,
            max_retries=s.max_retries,
            progress=progress,
            cancel=cancel,
        )


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
