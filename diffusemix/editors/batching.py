"""Batch size from free memory, and out-of-memory batches split in halves.

``batch_size="auto"`` takes the free memory of the device (CUDA:
``torch.cuda.mem_get_info``; CPU: the RAM the OS reports available) and the
measured working memory of the full-size InstructPix2Pix (CPU: bench/bench_fullsize.py,
float32, 256 px: resident 5.0 GB at batch 1 with 4.3 GB of weights, 5.9 GB at batch 4,
6.7 GB at batch 8: about 0.7 GB for the first sample, 0.2-0.3 GB per extra one; CUDA:
the first GPU run, H200, float16: 0.16 GB for the first sample and 0.16 GB per extra one),
scaled by the image area and the dtype's size. (The headroom absorbs the rest.)

On a CPU a bigger batch buys nothing (the UNet is compute-bound: 8 samples in
one call ran 1.025x faster than 8 calls), so ``auto`` stays at most 8 there; on
CUDA it aims for 32 samples at 256 px (fewer for bigger images): on an H200 in
float16, batch 32 gave 7.9x the images per second of batch 1 and batch 64 no more
(bench/RESULTS.md).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from ._diffusers_common import BatchOutOfMemory
from .base import CallOutput

__all__ = [
    "AUTO",
    "WORKING_MEMORY",
    "free_memory_bytes",
    "memory_needed",
    "auto_batch_size",
    "resolve_batch_size",
    "split_on_oom",
]

AUTO = "auto"

#: Measured working memory beyond the weights (bytes), full-size InstructPix2Pix, 256 x 256 px, stated per
#: float32 (scaled by the dtype's size): at batch 1, and per extra sample in the batch. CPU: resident memory,
#: bench/bench_fullsize.py. CUDA: the first GPU run (H200, float16: 0.162 GB and 0.160 GB, bench/RESULTS.md).
WORKING_MEMORY: dict[str, dict[str, float]] = {
    "cpu": {"first_sample": 0.75e9, "per_extra_sample": 0.3e9},
    "cuda": {"first_sample": 0.324e9, "per_extra_sample": 0.32e9},
}

#: Largest automatic batch at 256 x 256 px per device kind.
AUTO_CAP: dict[str, int] = {"cuda": 32, "cpu": 8, "mps": 8}

#: Part of the free memory ``auto`` plans to use (the rest is headroom).
HEADROOM = 0.8

_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}

logger = logging.getLogger("diffusemix")


def free_memory_bytes(device: str) -> int:
    """Free memory on ``device``: on CUDA the driver's free bytes plus what torch's
    caching allocator holds for reuse (reserved but not allocated: the driver counts
    it as used, yet the next batch gets it first), else the RAM available."""
    if device.startswith("cuda"):
        import torch

        dev = torch.device(device)
        free, _total = torch.cuda.mem_get_info(dev)
        cached = 0
        if torch.cuda.is_initialized():
            cached = max(0, int(torch.cuda.memory_reserved(dev)) - int(torch.cuda.memory_allocated(dev)))
        return int(free) + cached
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:  # pragma: no cover - psutil comes with accelerate
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
        raise


def _scale(dtype: str, height: int, width: int) -> float:
    return (height * width) / (256 * 256) * (_BYTES.get(dtype, 4) / 4)


def _working(device: str) -> dict[str, float]:
    return WORKING_MEMORY["cuda" if device.startswith("cuda") else "cpu"]


def memory_needed(batch_size: int, *, dtype: str, height: int, width: int, device: str = "cpu") -> float:
    """Working memory (bytes, beyond the weights) of one call of ``batch_size`` samples."""
    k, w = _scale(dtype, height, width), _working(device)
    return k * (w["first_sample"] + (batch_size - 1) * w["per_extra_sample"])


def auto_batch_size(free_bytes: float, *, device: str, dtype: str, height: int, width: int) -> int:
    """The largest batch whose working memory fits in ``HEADROOM`` of
    ``free_bytes``, capped per device kind (see the module docstring); at least 1."""
    kind = device.split(":")[0]
    cap = max(1, int(AUTO_CAP.get(kind, 8) * (256 * 256) / max(1, height * width)))
    k, w = _scale(dtype, height, width), _working(device)
    budget = HEADROOM * free_bytes - k * w["first_sample"]
    fits = 1 + int(max(0.0, budget) // (k * w["per_extra_sample"]))
    return max(1, min(cap, fits))


def resolve_batch_size(batch_size: int | str, *, device: str, dtype: str, height: int, width: int) -> int:
    """``batch_size``, or the automatic one when it is ``"auto"``."""
    if batch_size != AUTO:
        return int(batch_size)
    free = free_memory_bytes(device)
    chosen = auto_batch_size(free, device=device, dtype=dtype, height=height, width=width)
    logger.info("batch_size auto: %d (%.1f GB free on %s)", chosen, free / 1e9, device)
    return chosen


def split_on_oom(
    run: Callable[[list[np.ndarray], list[str], list[int], Callable[[], None]], np.ndarray],
    images: list[np.ndarray],
    prompts: list[str],
    seeds: list[int],
    step: Callable[[], None],
    *,
    shared: Any,
) -> Any:
    """``run`` on the batch; when it runs out of memory, on its two halves
    instead (recursively, down to one sample, which re-raises). Each sample
    keeps its own seed, so a split batch makes the same images up to float
    rounding; a split returns a :class:`~.base.CallOutput` saying which
    samples ran together (what an exact replay needs). ``shared.oom_batch``
    remembers the size that failed, so the editor's later batches start at
    half of it.

    The halves run only after the failed call's exception is dropped: its
    traceback holds the frames of the failed call, and with them every tensor
    it had made (on a GPU, the activations that did not fit)."""
    n = len(images)
    try:
        return run(images, prompts, seeds, step)
    except BatchOutOfMemory as exc:
        if n <= 1:
            raise
        _drop_traceback(exc)
    shared.oom_batch = n if shared.oom_batch is None else min(shared.oom_batch, n)
    _release_memory()
    half = (n + 1) // 2
    logger.warning("out of memory with %d samples in one call; retrying as %d + %d", n, half, n - half)
    first = _as_call(split_on_oom(run, images[:half], prompts[:half], seeds[:half], step, shared=shared))
    second = _as_call(split_on_oom(run, images[half:], prompts[half:], seeds[half:], step, shared=shared))
    return CallOutput(
        images=np.concatenate([np.asarray(first.images), np.asarray(second.images)]),
        groups=first.groups + [[half + k for k in g] for g in second.groups],
    )


def _as_call(got: Any) -> CallOutput:
    return got if isinstance(got, CallOutput) else CallOutput(images=got, groups=[list(range(len(got)))])


def _drop_traceback(exc: BaseException | None) -> None:
    """Cut ``exc`` and the exceptions it was raised from off their frames."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        exc.__traceback__ = None
        exc = exc.__cause__ or exc.__context__


def _release_memory() -> None:
    """Collect what the failed call left (reference cycles included) and give
    torch's cached CUDA blocks back, so the halves start from a clean device."""
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()
