"""How the GPU check times and counts: CUDA events around a call, two step
counts per cell so that the per-step and the fixed parts come apart, and the
per-Î figures EXTRAPOLATED to the full step count (as the CPU bench does);
FLOPs counted the same way with torch's FlopCounterMode; host-device
synchronisations counted with torch's sync debug mode.
"""

from __future__ import annotations

import statistics
import time
import warnings
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["extrapolate", "timed", "measure", "count_flops", "sync_count"]


def extrapolate(t1: float, t2: float, s1: int, s2: int, full_steps: int) -> dict[str, float]:
    """Per-step and fixed parts from two runs of ``s1`` and ``s2`` steps, and the
    whole call at ``full_steps``. Pure: the same arithmetic the CPU bench uses."""
    if not s2 > s1 > 0:
        raise ValueError(f"need 0 < s1 < s2; got {s1}, {s2}")
    per_step = max(0.0, (t2 - t1) / (s2 - s1))
    fixed = max(0.0, t1 - s1 * per_step)
    return {"per_step": per_step, "fixed": fixed, "full": fixed + full_steps * per_step}


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn: Callable[[], Any], device: str) -> float:
    """Seconds ``fn()`` takes: CUDA events around it on a GPU, else a wall clock."""
    import torch

    if device.startswith("cuda"):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def measure(
    call: Callable[[int], Any], *, device: str, steps: tuple[int, int], repeats: int, full_steps: int, batch: int
) -> dict[str, Any]:
    """One cell: ``call(n)`` makes ``batch`` Î at ``n`` steps. A warm-up call, then
    ``steps`` = (s1, s2) each timed ``repeats`` times (median); per-Î figures
    extrapolated to ``full_steps``; peak memory on CUDA."""
    import torch

    s1, s2 = steps
    cuda = device.startswith("cuda")
    warm = timed(lambda: call(1), device)  # kernels, workspaces, allocator pools at this batch size
    if cuda:
        _sync(device)
        torch.cuda.reset_peak_memory_stats()
        weights = torch.cuda.memory_allocated()
    t1 = statistics.median(timed(lambda: call(s1), device) for _ in range(repeats))
    t2 = statistics.median(timed(lambda: call(s2), device) for _ in range(repeats))
    ex = extrapolate(t1, t2, s1, s2, full_steps)
    rec: dict[str, Any] = {
        "warmup_s": round(warm, 4),
        "t_s1": round(t1, 5),
        "t_s2": round(t2, 5),
        "per_step_s": ex["per_step"],
        "fixed_s": ex["fixed"],
        "call_s": ex["full"],
        "per_image_s": ex["full"] / batch,
        "images_per_s": batch / ex["full"] if ex["full"] > 0 else None,
        "step_per_image_s": ex["per_step"] / batch,
    }
    if cuda:
        peak = torch.cuda.max_memory_allocated()
        rec.update(
            weights_gb=round(weights / 1e9, 3),
            peak_gb=round(peak / 1e9, 3),
            peak_reserved_gb=round(torch.cuda.max_memory_reserved() / 1e9, 3),
            working_gb=round((peak - weights) / 1e9, 3),
        )
    return rec


def count_flops(call: Callable[[int], Any], *, steps: tuple[int, int], full_steps: int) -> dict[str, Any]:
    """FLOPs of one Î's own run (``call(n)``: one Î at ``n`` steps) at s1 and s2
    steps, counted with torch's FlopCounterMode, extrapolated to ``full_steps``."""
    from torch.utils.flop_counter import FlopCounterMode

    s1, s2 = steps
    call(1)  # the prompt's embedding is cached by the editor after its first call: count steps, not text
    counts = []
    for s in (s1, s2):
        with FlopCounterMode(display=False) as fc:
            call(s)
        counts.append(float(fc.get_total_flops()))
    ex = extrapolate(counts[0], counts[1], s1, s2, full_steps)
    return {"flops_s1": counts[0], "flops_s2": counts[1], "flops_per_step": ex["per_step"],
            "flops_fixed": ex["fixed"], "flops_per_image": ex["full"]}  # fmt: skip


def sync_count(call: Callable[[int], Any], *, device: str, steps: tuple[int, int]) -> dict[str, Any]:
    """Host-device synchronisations per denoising step of ``call(n)`` (torch's
    sync debug mode), and the Python lines they come from."""
    import torch

    if not device.startswith("cuda"):
        return {"note": "CUDA only"}
    counts: list[int] = []
    where: Counter[str] = Counter()
    for s in steps:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                call(s)
            finally:
                torch.cuda.set_sync_debug_mode(0)
        syncs = [w for w in caught if "synchroniz" in str(w.message)]
        counts.append(len(syncs))
        where.update(f"{Path(w.filename).name}:{w.lineno}" for w in syncs)
    s1, s2 = steps
    return {"syncs_s1": counts[0], "syncs_s2": counts[1], "syncs_per_step": (counts[1] - counts[0]) / (s2 - s1),
            "sources": dict(where.most_common(8))}  # fmt: skip
