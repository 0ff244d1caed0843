"""What the app starts with on a Hugging Face Space without a GPU, and why.

On a free CPU Space, ``auto`` would download InstructPix2Pix (about 5 GB) and run the paper's 100 steps on two
vCPUs: about six minutes per image and prompt (this project's full-size measurement: about 670 CPU-seconds per
(image, prompt) at 256 px on one thread, 1.5-1.9x faster on two). So there the app starts with the preview
editor and its banner says why and which hardware runs the model. A model asked for by name
(``DIFFUSEMIX_EDITOR=instruct-pix2pix``, ``DIFFUSEMIX_MODEL``, ``DIFFUSEMIX_SPEED``, a device or dtype) is never
swapped: the owner of the Space chose it. A ZeroGPU Space (``SPACES_ZERO_GPU``) or any machine where CUDA is available
loads the model as everywhere else.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from diffusemix.editors import EditorSpec

__all__ = ["SUGGESTED_HARDWARE", "on_space", "space_without_gpu_reason"]

#: What the README's front matter suggests (``suggested_hardware``) and the banner names.
SUGGESTED_HARDWARE = "ZeroGPU (zero-a10g)"


def on_space(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether this process is a Hugging Face Space (the Hub sets ``SPACE_ID``)."""
    return bool(environ.get("SPACE_ID"))


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return False
    return bool(torch.cuda.is_available())


def space_without_gpu_reason(spec: EditorSpec, environ: Mapping[str, str] = os.environ) -> str | None:
    """Why the app starts with the preview instead of ``spec`` (a sentence), or None to load ``spec`` as asked.

    Only on a Space (``SPACE_ID``) that is not ZeroGPU (``SPACES_ZERO_GPU``) and has no CUDA, and only for
    ``auto`` with no model, device, dtype or speed preset asked for.
    """
    if not on_space(environ) or environ.get("SPACES_ZERO_GPU") or spec.name != "auto":
        return None
    if any(getattr(spec, k) is not None for k in ("model", "device", "dtype", "speed")):
        return None
    if _cuda_available():
        return None
    return (
        "This Space runs on CPU: InstructPix2Pix at the paper's 100 steps would take about six minutes per image and"
        f" prompt here, so the preview is used. To run the paper's model, choose {SUGGESTED_HARDWARE} or a GPU"
        " (e.g. T4, A10G) in the Space's settings (or duplicate it onto one); to run it on this CPU anyway, set the"
        " Space variables DIFFUSEMIX_EDITOR=instruct-pix2pix and DIFFUSEMIX_SPEED=fast (20 steps, approximate:"
        " about 30 CPU-seconds per image and prompt)."
    )
