"""Speed levers of the diffusion editors, each an editor setting that is
written into ``describe()`` (and so into every manifest row).

Measured on the full-size InstructPix2Pix, CPU, 256 px (bench/bench_fullsize.py):

- ``dtype``: bfloat16 weights about 2x float32 on CPUs with bf16 support
  (asked for by name, or by the ``fast`` preset), float16 on CUDA (the
  default there). Approximate: one UNet evaluation differs by about 1e-2
  (relative) from float32.
- ``cache_interval``: DeepCache (the ``DeepCache`` package) reuses the UNet's
  deep features for ``cache_interval - 1`` steps out of every ``cache_interval``;
  about 1.9x at 2, 2.6x at 3. Approximate. 1 = off.
- ``vae="tiny"``: AutoencoderTiny (TAESD, ``madebyollin/taesd``) encodes and
  decodes about 10x faster; it matters only at few steps. Approximate.
- ``compile``: ``torch.compile`` of the UNet (with inductor freezing on CPU):
  1.2x per step after 1.5-2.5 minutes of compiling and about 5 GB more memory,
  so it pays only for long exports (hundreds of (image, prompt) pairs). Exact
  up to float rounding.
- channels_last: not used. On CPU it made the full-size UNet 3-12 % slower, and
  on an H200 (float16, batch 32) 1.17x slower (bench/RESULTS.md), against
  diffusers' advice for CUDA.

:func:`pipeline_parts` puts the parts a call's settings ask for into the
shared pipeline for that call (callers hold the run lock), so editors made by
``with_settings()`` with different levers can share one loaded model.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from ..errors import EditorLoadError

__all__ = [
    "APPROXIMATE_DTYPES",
    "default_dtype",
    "fastest_dtype",
    "bf16_supported",
    "load_tiny_vae",
    "pipeline_parts",
]

#: dtypes whose numbers differ from float32 beyond rounding.
APPROXIMATE_DTYPES: frozenset[str] = frozenset({"float16", "bfloat16"})


def default_dtype(device: str) -> str:
    """The dtype ``auto`` stands for: float16 on CUDA (the authors' choice there), float32
    elsewhere (exact; bfloat16 is asked for by name or by the ``fast`` preset)."""
    return "float16" if device.startswith("cuda") else "float32"


def bf16_supported() -> bool:
    """Whether this CPU runs bfloat16 matrix maths natively (oneDNN's check)."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a torch build without oneDNN
        return False


def fastest_dtype(device: str) -> str:
    """The ``fast`` preset's dtype: float16 on CUDA; bfloat16 on a CPU with native bf16
    support (about 2x float32 there, approximate); float32 otherwise (float16 on CPU is over
    25x slower, and on Apple's mps it can give black images)."""
    if device.startswith("cuda"):
        return "float16"
    if device == "cpu" and bf16_supported():
        return "bfloat16"
    return "float32"


def load_tiny_vae(model: str, *, device: str, dtype: str) -> Any:
    """AutoencoderTiny from a Hub id or a local folder, on ``device`` in ``dtype``.

    Raises:
        EditorLoadError: the weights are not cached/reachable or the folder is
            not an AutoencoderTiny, with what to do.
    """
    import torch
    from diffusers import AutoencoderTiny

    from pathlib import Path

    local = Path(model).expanduser().is_dir()
    try:
        vae = AutoencoderTiny.from_pretrained(model, dtype=getattr(torch, dtype), local_files_only=local)
    except OSError as exc:
        raise EditorLoadError(
            f"the tiny VAE {model!r} could not be loaded ({str(exc).splitlines()[0] if str(exc) else 'OSError'})."
            f" Download it where the Hub is reachable (`hf download {model} --local-dir DIR`) and pass"
            " the folder as tiny_vae_model (--tiny-vae DIR), or use vae='full' (--vae full)."
        ) from exc
    except Exception as exc:
        raise EditorLoadError(f"could not load the tiny VAE from {model!r}: {type(exc).__name__}: {exc}") from exc
    return vae.to(device).eval()


@contextlib.contextmanager
def _deepcache(pipe: Any, interval: int) -> Iterator[None]:
    try:
        from DeepCache import DeepCacheSDHelper
    except ImportError as exc:
        raise EditorLoadError(
            "cache_interval > 1 needs the DeepCache package: pip install DeepCache==0.1.1 (or set cache_interval=1)"
        ) from exc
    modules = list(pipe.unet.modules())
    own = [m for m in modules if "forward" in vars(m)]
    helper = DeepCacheSDHelper(pipe=pipe)
    helper.set_params(cache_interval=interval, cache_branch_id=0)
    helper.enable()
    try:
        yield
    finally:
        helper.disable()
        # disable() puts the original bound methods back as instance attributes;
        # drop them so the modules are exactly as they were.
        for m in modules:
            if "forward" in vars(m) and not any(m is o for o in own):
                del m.forward


@contextlib.contextmanager
def pipeline_parts(pipe: Any, *, unet: Any = None, vae: Any = None, cache_interval: int = 1) -> Iterator[Any]:
    """``pipe`` with ``unet`` / ``vae`` swapped in (when given) and DeepCache on
    (when ``cache_interval > 1``) for the body; restored afterwards, even on error.
    Yields the pipeline. The caller holds the pipeline's run lock."""
    saved = {"unet": pipe.unet, "vae": pipe.vae}
    try:
        if unet is not None:
            pipe.unet = unet
        if vae is not None:
            pipe.vae = vae
        with _deepcache(pipe, cache_interval) if cache_interval > 1 else contextlib.nullcontext():
            yield pipe
    finally:
        for name, part in saved.items():
            if getattr(pipe, name) is not part:
                setattr(pipe, name, part)
