"""The paper's editor: InstructPix2Pix through diffusers.

``StableDiffusionInstructPix2PixPipeline`` loaded from a Hugging Face Hub id
(default ``timbrooks/instruct-pix2pix``) or a local pipeline folder, with the
reference code's choices: Euler-ancestral scheduler, safety checker off,
guidance 4, image guidance 1.5, 100 steps, float16 on CUDA.

Unlike the reference code, requests are batched (one pipeline call per batch),
each sample has its own seeded generator, and each distinct prompt is encoded
once for the life of the editor.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..errors import EditorLoadError
from ._diffusers_common import (
    DiffusersEditor,
    PromptCache,
    check_nonnegative_int,
    check_number,
    check_positive_int,
    load_pipeline,
    locate_model,
    run_pipeline,
)
from .base import CancelToken, EditRequest, EditResult, ProgressFn, edit_in_batches

__all__ = ["InstructPix2PixEditor", "InstructPix2PixSettings", "DEFAULT_IP2P_MODEL"]

#: The model the paper and the reference code use.
DEFAULT_IP2P_MODEL = "timbrooks/instruct-pix2pix"


@dataclass(frozen=True)
class InstructPix2PixSettings:
    """How InstructPix2Pix is run (the reference code's values by default)."""

    #: Denoising steps per image (the pipeline's default, used by the reference).
    steps: int = 100
    #: Text guidance: how strongly the prompt is followed.
    guidance_scale: float = 4.0
    #: Image guidance: how strongly the input image is kept (pipeline default).
    image_guidance_scale: float = 1.5
    #: Images per pipeline call; lower it if the GPU runs out of memory.
    batch_size: int = 8
    #: Times a blank/near-constant output is remade with a new seed before it is reported.
    max_retries: int = 2

    def __post_init__(self) -> None:
        check_positive_int("steps", self.steps)
        check_number("guidance_scale", self.guidance_scale, low=0.0)
        check_number("image_guidance_scale", self.image_guidance_scale, low=0.0)
        check_positive_int("batch_size", self.batch_size)
        check_nonnegative_int("max_retries", self.max_retries)


class InstructPix2PixEditor(DiffusersEditor):
    """Edits images with InstructPix2Pix; see the module docstring.

    The pipeline is loaded once, on the first :meth:`edit` or an explicit
    :meth:`load`, and reused; loading is thread-safe.

    Args:
        model: a Hugging Face Hub id or a local diffusers pipeline folder.
        settings: steps, guidance values, batch size, retries.
        device: ``"cuda"``, ``"cuda:N"``, ``"mps"`` or ``"cpu"``; ``None`` picks
            CUDA, then mps, then CPU.
        dtype: ``"float16"``, ``"bfloat16"`` or ``"float32"``; ``None`` picks
            float16 on CUDA, float32 elsewhere.

    Raises:
        EditorLoadError: from :meth:`load` (or the first :meth:`edit`) when the
            model cannot be found or loaded, with what to do about it; from the
            constructor when the device or dtype is not available.
    """

    name = "instruct-pix2pix"
    _settings_cls = InstructPix2PixSettings
    _default_model = DEFAULT_IP2P_MODEL
    _label = "InstructPix2Pix"

    def load(self) -> None:
        """Load the pipeline now (idempotent, thread-safe)."""
        shared = self._shared
        if shared.pipe is not None:
            return
        with shared.load_lock:
            if shared.pipe is not None:
                return
            source = locate_model(self.model, label=self._label, example_id=DEFAULT_IP2P_MODEL)
            from diffusers import EulerAncestralDiscreteScheduler, StableDiffusionInstructPix2PixPipeline

            pipe = load_pipeline(
                StableDiffusionInstructPix2PixPipeline.from_pretrained,
                source,
                label=self._label,
                device=self.device,
                dtype=self.dtype,
            )
            in_channels = pipe.unet.config.in_channels
            if in_channels != 8:
                raise EditorLoadError(
                    f"{self.model} is not an InstructPix2Pix model: its UNet takes {in_channels} input channels,"
                    " not 8 (noise + image latents). For a text-to-image Stable Diffusion checkpoint use"
                    " --editor img2img."
                )
            pipe.scheduler = EulerAncestralDiscreteScheduler.from_config(pipe.scheduler.config)
            device = pipe._execution_device

            # In diffusers 0.42.1 this pipeline's encoder is ``_encode_prompt``;
            # without guidance it returns just the prompt's (1, tokens, width)
            # embedding, which the pipeline later stacks as [prompt, empty, empty].
            def encode(prompt: str):
                return pipe._encode_prompt(prompt, device, 1, False)

            shared.prompts = PromptCache(encode)
            shared.pipe = pipe

    def describe(self) -> dict[str, Any]:
        s = self.settings
        return {
            "name": self.name,
            "summary": (
                f"InstructPix2Pix ({self.model}) on {self.device} in {self.dtype}, {s.steps} steps,"
                f" guidance {s.guidance_scale:g}, image guidance {s.image_guidance_scale:g}"
            ),
            "is_diffusion": True,
            "model": self.model,
            "device": self.device,
            "dtype": self.dtype,
            "scheduler": "EulerAncestralDiscreteScheduler",
            **asdict(s),
        }

    def edit(
        self,
        requests: Sequence[EditRequest],
        *,
        progress: ProgressFn | None = None,
        cancel: CancelToken | None = None,
    ) -> list[EditResult]:
        """Edit every request; results are in request order.

        ``progress`` counts denoising steps over the whole call (steps x
        batches, growing if degenerate outputs are retried).

        Raises:
            Cancelled: ``cancel`` was set; work stops at the next step.
            EditorLoadError: the model cannot be loaded, or the device ran out
                of memory (lower ``batch_size``).
        """
        if not requests:
            return []
        self.load()
        s, shared = self.settings, self._shared
        pipe, cache = shared.pipe, shared.prompts

        def generate(images: list[np.ndarray], prompts: list[str], seeds: list[int], step: Callable[[], None]):
            prompt_embeds, negative_prompt_embeds = cache.batch(prompts)
            with shared.run_lock:
                return run_pipeline(
                    pipe,
                    images,
                    seeds,
                    step,
                    label=self._label,
                    batch_size=s.batch_size,
                    image_input=_image_latents(pipe, images),
                    prompt_embeds=prompt_embeds,
                    negative_prompt_embeds=negative_prompt_embeds,
                    num_inference_steps=s.steps,
                    guidance_scale=s.guidance_scale,
                    image_guidance_scale=s.image_guidance_scale,
                )

        return edit_in_batches(
            requests,
            generate,
            batch_size=s.batch_size,
            units_per_batch=s.steps,
            max_retries=s.max_retries,
            size_multiple=pipe.vae_scale_factor,
            progress=progress,
            cancel=cancel,
        )


def _image_latents(pipe: Any, images: list[np.ndarray]) -> Any:
    """The VAE latents of the input images, each distinct image encoded once.

    A batch usually holds one image under several prompts; the pipeline
    would encode it once per prompt. It takes ready latents as ``image``
    (4 channels) and uses them as they are. The encoding is the latent
    distribution's mode, exactly what the pipeline itself would use.
    """
    import hashlib

    import torch
    from PIL import Image

    index: dict[bytes, int] = {}
    distinct: list[np.ndarray] = []
    rows = []
    for im in images:
        key = hashlib.blake2b(im.tobytes(), digest_size=16, person=repr(im.shape).encode()[:16]).digest()
        if key not in index:
            index[key] = len(distinct)
            distinct.append(im)
        rows.append(index[key])
    pixels = pipe.image_processor.preprocess([Image.fromarray(im) for im in distinct])
    pixels = pixels.to(device=pipe._execution_device, dtype=pipe.vae.dtype)
    with torch.inference_mode():
        latents = pipe.vae.encode(pixels).latent_dist.mode()
    return latents[rows]
