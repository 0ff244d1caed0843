"""Stable Diffusion image-to-image through diffusers, for models other than
InstructPix2Pix.

``AutoPipelineForImage2Image`` loads any checkpoint it knows (Stable Diffusion
1.x/2.x, fast few-step models such as SD-Turbo for CPU-only hosting, ...) from
a Hugging Face Hub id or a local pipeline folder. The input is noised to
``strength`` and denoised under the prompt (DA-Fusion's recipe: strength 0.5,
guidance 7.5), so only ``int(steps * strength)`` denoising steps run.

Batching, per-sample seeds, the prompt cache, progress, cancel, retries and
errors work as in :mod:`diffusemix.editors.instruct_pix2pix`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..errors import EditorLoadError
from ._diffusers_common import (
    PIPELINE_PARTS,
    DiffusersEditor,
    PromptCache,
    load_pipeline,
    locate_model,
    pipeline_class_of,
    run_pipeline,
)
from ._instruct_common import refuse_instruct_folder
from .base import CancelToken, EditRequest, EditResult, ProgressFn, edit_in_batches
from .batching import resolve_batch_size
from .licences import card_of, licence_fields, licence_text
from .spec import EditorSpec

__all__ = ["Img2ImgEditor", "DEFAULT_IMG2IMG_MODEL"]

#: A Stable Diffusion 1.5 checkpoint (the maintained copy of runwayml's).
DEFAULT_IMG2IMG_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"


class Img2ImgEditor(DiffusersEditor):
    """Edits images with a Stable Diffusion img2img pipeline; see the module docstring.

    Args:
        spec: an :class:`~diffusemix.editors.spec.EditorSpec` (model, device,
            dtype, steps, strength, guidance, batch size, retries); settings not
            given take :attr:`defaults` (DA-Fusion's values).

    Raises:
        SettingError: ``int(steps * strength)`` is 0 (no denoising step would run).
        EditorLoadError: as for :class:`InstructPix2PixEditor`.
    """

    name = "img2img"
    _default_model = DEFAULT_IMG2IMG_MODEL
    _label = "Stable Diffusion img2img"
    #: What its pipeline folder holds; any pipeline class but those another editor runs.
    _parts = PIPELINE_PARTS
    _pipelines: tuple[str, ...] | None = None
    defaults = {
        "steps": 50,  # scheduler steps for a full denoise; int(steps * strength) of them run
        "strength": 0.5,  # how far the input is noised: 0 keeps it, 1 ignores it
        "guidance_scale": 7.5,  # classifier-free guidance; <= 1 turns it off (few-step models)
        "batch_size": 8,  # images per pipeline call
        "max_retries": 2,  # blank outputs remade with a new recorded seed
    }

    def __init__(self, spec: EditorSpec | None = None) -> None:
        super().__init__(spec)
        _check_denoising(self.spec)

    def with_settings(self, **changes: Any) -> "Img2ImgEditor":
        variant = super().with_settings(**changes)
        _check_denoising(variant.spec)
        return variant

    def _build_pipeline(self) -> tuple[Any, Any]:
        refuse_instruct_folder(self.model, label=self._label, editor=self.name)
        source = locate_model(self.model, label=self._label, example_id=DEFAULT_IMG2IMG_MODEL)
        if source.kind == "folder" and "InstructPix2Pix" in (pipeline_class_of(source) or ""):
            raise EditorLoadError(
                f"{source.ref} holds an InstructPix2Pix pipeline, which img2img cannot load;"
                " use --editor instruct-pix2pix with it"
            )
        from diffusers import AutoPipelineForImage2Image, StableDiffusionImg2ImgPipeline

        pipe = load_pipeline(
            AutoPipelineForImage2Image.from_pretrained,
            source,
            label=self._label,
            device=self.device,
            dtype=self.dtype,
            revision=self.spec.revision,
            safety_checker=None,
            requires_safety_checker=False,
        )
        if isinstance(pipe, StableDiffusionImg2ImgPipeline):
            device = pipe._execution_device

            # encode_prompt returns (prompt_embeds, negative_prompt_embeds);
            # without guidance the second is None and the first is the
            # prompt's (1, tokens, width) embedding.
            def encode(prompt: str):
                return pipe.encode_prompt(prompt, device, 1, False)[0]

            return pipe, PromptCache(encode)
        # Other families (e.g. SDXL, whose encoder also returns pooled
        # embeddings) are given the prompt strings instead.
        return pipe, None

    def describe(self) -> dict[str, Any]:
        s = self.spec
        d = {
            "name": self.name,
            "summary": (
                f"img2img ({self.model}) on {self.device} in {self.dtype}, strength {s.strength:g},"
                f" {s.denoising_steps} of {s.steps} steps, guidance {s.guidance_scale:g}, {licence_text(card_of(self))}"
            ),
            "is_diffusion": True,
            "model": self.model,
            "device": self.device,
            "dtype": self.dtype,
            "denoising_steps": s.denoising_steps,
            "approximate": s.approximate,
            **licence_fields(card_of(self)),
        }
        pipe = self._shared.pipe
        if pipe is not None:
            d["pipeline"] = type(pipe).__name__
            d["scheduler"] = type(pipe.scheduler).__name__
        return d

    def _edit(
        self, requests: Sequence[EditRequest], *, progress: ProgressFn | None, cancel: CancelToken | None
    ) -> list[EditResult]:
        """Edit every request; results are in request order.

        ``progress`` counts denoising steps (``int(steps * strength)`` per
        batch) over the whole call, growing if degenerate outputs are retried.

        Raises:
            Cancelled: ``cancel`` was set; work stops at the next step.
            EditorLoadError: the model cannot be loaded, or the device ran out
                of memory (lower ``batch_size``).
        """
        s, shared = self.spec, self._shared
        pipe, cache = shared.pipe, shared.prompts
        h, w = max((r.image.shape[:2] for r in requests), key=lambda hw: hw[0] * hw[1])
        batch_size = resolve_batch_size(s.batch_size, device=self.device, dtype=self.dtype, height=h, width=w)

        def generate(images: list[np.ndarray], prompts: list[str], seeds: list[int], step: Callable[[], None]):
            if cache is not None:
                prompt_embeds, negative_prompt_embeds = cache.batch(prompts)
                text = {"prompt_embeds": prompt_embeds, "negative_prompt_embeds": negative_prompt_embeds}
            else:
                text = {"prompt": list(prompts)}
            with shared.run_lock:
                return run_pipeline(
                    pipe,
                    images,
                    seeds,
                    step,
                    label=self._label,
                    batch_size=batch_size,
                    num_inference_steps=s.steps,
                    strength=s.strength,
                    guidance_scale=s.guidance_scale,
                    **text,
                )

        return edit_in_batches(
            requests,
            generate,
            batch_size=batch_size,
            units_per_batch=s.denoising_steps,
            max_retries=s.max_retries,
            size_multiple=pipe.vae_scale_factor,
            progress=progress,
            cancel=cancel,
        )


def _check_denoising(spec: EditorSpec) -> None:
    if spec.denoising_steps is not None and spec.denoising_steps < 1:
        from ..schema import NO_VALUE, fail

        raise fail(
            spec, "steps",
            f"times strength must be at least 1 (int({spec.steps} * {spec.strength}) = 0 denoising steps); raise steps"
            " or strength", value=NO_VALUE,
        )
