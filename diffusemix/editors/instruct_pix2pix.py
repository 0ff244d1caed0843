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
from typing import Any

import numpy as np

from ..errors import EditorLoadError
from ._diffusers_common import (
    PIPELINE_PARTS,
    DiffusersEditor,
    PromptCache,
    load_pipeline,
    locate_model,
    run_pipeline,
)
from ._instruct_common import refuse_instruct_folder
from .base import CancelToken, EditRequest, EditResult, ProgressFn, edit_in_batches
from .batching import resolve_batch_size, split_on_oom
from .licences import card_of, licence_fields, licence_text
from .spec import DEFAULT_TINY_VAE
from .speed import load_tiny_vae, pipeline_parts

__all__ = ["InstructPix2PixEditor", "DEFAULT_IP2P_MODEL"]

#: The model the paper and the reference code use.
DEFAULT_IP2P_MODEL = "timbrooks/instruct-pix2pix"


class InstructPix2PixEditor(DiffusersEditor):
    """Edits images with InstructPix2Pix; see the module docstring.

    The pipeline is loaded once, on the first :meth:`edit` or an explicit
    :meth:`load`, and reused; loading is thread-safe.

    Args:
        spec: an :class:`~diffusemix.editors.spec.EditorSpec`: the model (a
            Hugging Face Hub id or a local diffusers pipeline folder), device
            (``None``: CUDA, then mps, then CPU), dtype (``None``: float16 on
            CUDA, float32 elsewhere), speed preset and settings; those not
            given take :attr:`defaults`.

    Raises:
        EditorLoadError: from :meth:`load` (or the first :meth:`edit`) when the
            model cannot be found or loaded, with what to do about it; from the
            constructor when the device or dtype is not available.
    """

    name = "instruct-pix2pix"
    _default_model = DEFAULT_IP2P_MODEL
    _label = "InstructPix2Pix"
    #: What its pipeline folder holds, and the pipeline class it runs (for the dry run's weights note).
    _parts = PIPELINE_PARTS
    _pipelines: tuple[str, ...] | None = None  # any, but those another editor runs
    #: The reference code's values (the pipeline's defaults, guidance 4).
    defaults = {
        "steps": 100,  # the pipeline's default, used by the reference code
        "guidance_scale": 4.0,  # text guidance: how strongly the prompt is followed
        "image_guidance_scale": 1.5,  # how strongly the input image is kept (pipeline default)
        "batch_size": 8,  # images per pipeline call, or "auto" (from free memory)
        "max_retries": 2,  # blank outputs remade with a new recorded seed
        "cache_interval": 1,  # DeepCache off (see editors.speed)
        "vae": "full",  # the pipeline's VAE (tiny: AutoencoderTiny, approximate)
        "tiny_vae_model": DEFAULT_TINY_VAE,
        "compile": False,  # torch.compile the UNet
    }
    #: ``paper``: the reference code's settings (dtype: float16 on CUDA, float32 elsewhere: exact).
    #: ``fast``: the largest measured speed-up (23.9x on the project's CPU); its images differ.
    presets = {
        "paper": {"steps": 100, "cache_interval": 1, "vae": "full"},
        "fast": {"steps": 20, "cache_interval": 3, "vae": "tiny", "dtype": "fastest"},
    }

    def _build_pipeline(self) -> tuple[Any, Any]:
        refuse_instruct_folder(self.model, label=self._label, editor=self.name)
        source = locate_model(self.model, label=self._label, example_id=DEFAULT_IP2P_MODEL)
        from diffusers import EulerAncestralDiscreteScheduler, StableDiffusionInstructPix2PixPipeline

        pipe = load_pipeline(
            StableDiffusionInstructPix2PixPipeline.from_pretrained,
            source,
            label=self._label,
            device=self.device,
            dtype=self.dtype,
            revision=self.spec.revision,
            safety_checker=None,
            requires_safety_checker=False,
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

        return pipe, PromptCache(encode)

    def describe(self) -> dict[str, Any]:
        s = self.spec
        approx = s.approximate
        levers = [f"DeepCache interval {s.cache_interval}"] if s.cache_interval > 1 else []
        levers += ["tiny VAE"] if s.vae == "tiny" else []
        levers += ["compiled UNet"] if s.compile else []
        return {
            "name": self.name,
            "summary": (
                f"InstructPix2Pix ({self.model}) on {self.device} in {self.dtype}, {s.steps} steps,"
                f" guidance {s.guidance_scale:g}, image guidance {s.image_guidance_scale:g}"
                + (f", {', '.join(levers)}" if levers else "")
                + (f" (approximate: {', '.join(approx)}; numbers differ from float32 beyond rounding)" if approx else "")
                + f", {licence_text(card_of(self))}"
            ),
            "is_diffusion": True,
            "model": self.model,
            "device": self.device,
            "dtype": self.dtype,
            "scheduler": "EulerAncestralDiscreteScheduler",
            "approximate": approx,
            **licence_fields(card_of(self)),
        }

    def _edit(
        self, requests: Sequence[EditRequest], *, progress: ProgressFn | None, cancel: CancelToken | None
    ) -> list[EditResult]:
        """Edit every request; results are in request order.

        ``progress`` counts denoising steps over the whole call (steps x
        batches, growing if degenerate outputs are retried).

        Raises:
            Cancelled: ``cancel`` was set; work stops at the next step.
            EditorLoadError: the model cannot be loaded, or the device ran out
                of memory (lower ``batch_size``).
        """
        s, shared = self.spec, self._shared
        pipe, cache = shared.pipe, shared.prompts

        unet, vae = self._speed_parts()
        scale = pipe.vae.config.scaling_factor  # the full VAE's, also when the tiny one runs

        def generate_once(images: list[np.ndarray], prompts: list[str], seeds: list[int], step: Callable[[], None]):
            prompt_embeds, negative_prompt_embeds = cache.batch(prompts)
            with shared.run_lock, pipeline_parts(pipe, unet=unet, vae=vae, cache_interval=s.cache_interval):
                return run_pipeline(
                    pipe,
                    images,
                    seeds,
                    step,
                    label=self._label,
                    batch_size=len(images),
                    image_input=lambda: _image_latents(pipe, images, full_vae_scale=scale),
                    prompt_embeds=prompt_embeds,
                    negative_prompt_embeds=negative_prompt_embeds,
                    num_inference_steps=s.steps,
                    guidance_scale=s.guidance_scale,
                    image_guidance_scale=s.image_guidance_scale,
                )

        def generate(images: list[np.ndarray], prompts: list[str], seeds: list[int], step: Callable[[], None]):
            return split_on_oom(generate_once, images, prompts, seeds, step, shared=shared)

        h, w = max((r.image.shape[:2] for r in requests), key=lambda hw: hw[0] * hw[1])
        batch_size = resolve_batch_size(s.batch_size, device=self.device, dtype=self.dtype, height=h, width=w)
        if shared.oom_batch is not None:
            batch_size = max(1, min(batch_size, shared.oom_batch // 2))
        return edit_in_batches(
            requests,
            generate,
            batch_size=batch_size,
            units_per_batch=s.steps,
            max_retries=s.max_retries,
            size_multiple=pipe.vae_scale_factor,
            progress=progress,
            cancel=cancel,
        )

    def _speed_parts(self) -> tuple[Any, Any]:
        """The UNet and VAE this editor's settings ask for (``None``: the
        pipeline's own), loaded once and shared with ``with_settings()`` variants."""
        s, shared = self.spec, self._shared
        unet = vae = None
        with shared.load_lock:
            if s.vae == "tiny":
                if shared.tiny_vae is None or shared.tiny_vae[0] != s.tiny_vae_model:
                    shared.tiny_vae = (
                        s.tiny_vae_model,
                        load_tiny_vae(s.tiny_vae_model, device=self.device, dtype=self.dtype),
                    )
                vae = shared.tiny_vae[1]
            if s.compile:
                if shared.compiled_unet is None:
                    shared.compiled_unet = _compile_unet(shared.pipe.unet, self.device)
                unet = shared.compiled_unet
        return unet, vae


def _compile_unet(unet: Any, device: str) -> Any:
    """``torch.compile`` of the UNet; on CPU with inductor's freezing (weights
    folded in as constants: 1.2-1.25x per step on the full-size model, where
    plain compiling was 0.9x). The first call compiles (minutes at full size)."""
    import torch

    if device == "cpu":
        import torch._inductor.config as inductor_config

        inductor_config.freezing = True
    return torch.compile(unet)


def _image_latents(pipe: Any, images: list[np.ndarray], *, full_vae_scale: float) -> Any:
    """The VAE latents of the input images, each distinct image encoded once.

    A batch usually holds one image under several prompts; the pipeline
    would encode it once per prompt. It takes ready latents as ``image``
    (4 channels) and uses them as they are. The encoding is the latent
    distribution's mode, exactly what the pipeline itself would use. With the
    tiny VAE (AutoencoderTiny, whose latents come scaled by the full VAE's
    ``full_vae_scale``) the scale is taken off, since InstructPix2Pix
    conditions on unscaled image latents.
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
        encoded = pipe.vae.encode(pixels)
        if hasattr(encoded, "latent_dist"):
            latents = encoded.latent_dist.mode()
        else:  # AutoencoderTiny
            latents = encoded.latents / full_vae_scale
    return latents[rows]
