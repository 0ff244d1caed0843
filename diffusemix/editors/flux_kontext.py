"""FLUX.1 Kontext [dev] as an editor, through diffusers' ``FluxKontextPipeline``.

FLUX.1 Kontext [dev] (Black Forest Labs, June 2025) is a 12-billion-parameter
rectified-flow transformer for instruction editing, guidance-distilled (one
transformer pass a step), with CLIP-L and T5-XXL text encoders. Its weights
are under the FLUX.1 [dev] Non-Commercial License: a dataset made with it is
for non-commercial use (the caller must say it accepts that; see
:attr:`FluxKontextEditor.licence`). Loaded from a Hugging Face Hub id (default
``black-forest-labs/FLUX.1-Kontext-dev``) or a local pipeline folder.

As :mod:`~diffusemix.editors.flux2_klein`: the input is resized to
``edit_size`` x ``edit_size`` (the pipeline's own snapping to its preferred
resolutions is turned off) and Î back to the request's size; the style word
goes into the prompt template; each distinct instruction is encoded once;
requests are batched with one CPU ``torch.Generator`` per sample (this
pipeline takes one image per sample as it is).
"""

from __future__ import annotations

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
    licence_fields,
    licence_text,
    load_instruct_pipeline,
    single_image_oom,
    square,
)
from .base import CancelToken, EditRequest, EditResult, ProgressFn, edit_in_batches
from .batching import split_on_oom

__all__ = ["FluxKontextEditor", "FluxKontextSettings", "DEFAULT_FLUX_KONTEXT_MODEL"]

DEFAULT_FLUX_KONTEXT_MODEL = "black-forest-labs/FLUX.1-Kontext-dev"

FLUX_KONTEXT_PARTS: tuple[str, ...] = (
    "model_index.json",
    "transformer/",
    "vae/",
    "text_encoder/",
    "text_encoder_2/",
    "tokenizer/",
    "tokenizer_2/",
    "scheduler/",
)

SIZE_MULTIPLE = 16


@dataclass(frozen=True)
class FluxKontextSettings:
    """How FLUX.1 Kontext [dev] is run (its card's values by default)."""

    #: Denoising steps (the pipeline's default; the card's example keeps it).
    steps: int = 28
    #: Distilled guidance (an input of the transformer, not a second pass); the card's example uses 2.5.
    guidance_scale: float = 2.5
    #: The side of the square the model edits at (a multiple of 16).
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


class FluxKontextEditor(InstructEditor):
    """Edits images with FLUX.1 Kontext [dev]; see the module docstring.

    Args and errors as :class:`~diffusemix.editors.flux2_klein.Flux2KleinEditor`.
    """

    name = "flux-kontext"
    _settings_cls = FluxKontextSettings
    _default_model = DEFAULT_FLUX_KONTEXT_MODEL
    _label = "FLUX.1 Kontext"
    _parts = FLUX_KONTEXT_PARTS
    _pipelines = ("FluxKontextPipeline",)

    def load(self) -> None:
        """Load the pipeline now (idempotent, thread-safe)."""
        shared = self._shared
        if shared.pipe is not None:
            return
        with shared.load_lock:
            if shared.pipe is not None:
                return
            source, _ = self._locate()
            from diffusers import FluxKontextPipeline

            pipe = load_instruct_pipeline(
                FluxKontextPipeline, source, label=self._label, device=self.device, dtype=self.dtype
            )
            shared.prompts = EmbeddingCache()
            shared.pipe = pipe

    def describe(self) -> dict[str, Any]:
        s, card = self.settings, self.card
        d: dict[str, Any] = {
            "name": self.name,
            "summary": (
                f"FLUX.1 Kontext ({self.model}) on {self.device} in {self.dtype}, {s.steps} steps,"
                f" guidance {s.guidance_scale:g}, edit size {s.edit_size} px, {licence_text(card)}"
            ),
            "is_diffusion": True,
            "model": self.model,
            "device": self.device,
            "dtype": self.dtype,
            "pipeline": "FluxKontextPipeline",
            "scheduler": "FlowMatchEulerDiscreteScheduler",
            **asdict(s),
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

        Raises:
            Cancelled: ``cancel`` was set; work stops at the next step.
            EditorLoadError: the model cannot be loaded, or the device ran out of memory.
        """
        if not requests:
            return []
        self.load()
        s, shared = self.settings, self._shared
        pipe, cache = shared.pipe, shared.prompts
        device = pipe._execution_device

        def encoded(instruction: str) -> tuple[Any, Any]:
            """(T5 embeddings, pooled CLIP embedding) of ``instruction``, computed once."""
            return cache.get(
                instruction, lambda: pipe.encode_prompt(prompt=instruction, prompt_2=None, device=device)[:2]
            )

        def generate_once(images: list[np.ndarray], prompts: list[str], seeds: list[int], step: Callable[[], None]):
            import torch

            pairs = [encoded(apply_template(s.prompt_template, p)) for p in prompts]
            with shared.run_lock:
                return run_pipeline(
                    pipe,
                    [square(im, s.edit_size) for im in images],
                    seeds,
                    step,
                    label=self._label,
                    batch_size=s.batch_size,
                    prompt_embeds=torch.cat([e for e, _ in pairs]),
                    pooled_prompt_embeds=torch.cat([p for _, p in pairs]),
                    num_inference_steps=s.steps,
                    guidance_scale=s.guidance_scale,
                    height=s.edit_size,
                    width=s.edit_size,
                    max_area=s.edit_size * s.edit_size,
                    _auto_resize=False,
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
