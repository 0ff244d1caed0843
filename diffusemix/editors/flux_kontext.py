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
from typing import Any

import numpy as np

from ._diffusers_common import run_pipeline
from ._instruct_common import (
    DEFAULT_PROMPT_TEMPLATE,
    EmbeddingCache,
    InstructEditor,
    apply_template,
    load_instruct_pipeline,
    square,
)
from .base import CancelToken, EditRequest, EditResult, ProgressFn
from .model_cards import MODEL_CARDS

__all__ = ["FluxKontextEditor", "DEFAULT_FLUX_KONTEXT_MODEL"]

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

_CARD = MODEL_CARDS[DEFAULT_FLUX_KONTEXT_MODEL]


class FluxKontextEditor(InstructEditor):
    """Edits images with FLUX.1 Kontext [dev]; see the module docstring.

    Args and errors as :class:`~diffusemix.editors.flux2_klein.Flux2KleinEditor`; its weights'
    licence forbids commercial use, so an export with it needs ``accept_license="non-commercial"``.
    """

    name = "flux-kontext"
    _default_model = DEFAULT_FLUX_KONTEXT_MODEL
    _label = "FLUX.1 Kontext"
    _parts = FLUX_KONTEXT_PARTS
    _pipelines = ("FluxKontextPipeline",)
    size_multiple = 16
    #: The card's values: 28 steps (the pipeline's default, which the card keeps), guidance 2.5 (its example).
    defaults = {
        "steps": _CARD.steps,
        "guidance_scale": _CARD.guidance,  # distilled guidance: an input of the transformer, not a second pass
        "edit_size": _CARD.edit_size,
        "prompt_template": DEFAULT_PROMPT_TEMPLATE,
        "batch_size": 4,
        "max_retries": 2,
    }

    def _build_pipeline(self) -> tuple[Any, Any]:
        source, _ = self._locate()
        from diffusers import FluxKontextPipeline

        pipe = load_instruct_pipeline(
            FluxKontextPipeline, source, label=self._label, device=self.device, dtype=self.dtype
        )
        return pipe, EmbeddingCache()

    def describe(self) -> dict[str, Any]:
        s = self.spec
        return self._describe(
            f"FLUX.1 Kontext ({self.model}) on {self.device} in {self.dtype}, {s.steps} steps,"
            f" guidance {s.guidance_scale:g}, edit size {s.edit_size} px"
        )

    def _edit(
        self, requests: Sequence[EditRequest], *, progress: ProgressFn | None, cancel: CancelToken | None
    ) -> list[EditResult]:
        """Edit every request; results are in request order, at the request's size.

        Raises:
            Cancelled: ``cancel`` was set; work stops at the next step.
            EditorLoadError: the model cannot be loaded, or the device ran out of memory.
        """
        s, shared = self.spec, self._shared
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

        return self._edit_in_batches(requests, generate_once, progress=progress, cancel=cancel)
