"""How long an export will take and how much memory it needs, before it starts.

images x prompts x copies = (image, prompt) pairs; each costs its denoising
steps (full UNet evaluations, and with DeepCache cheaper cached ones) plus a
fixed part (VAE encode and decode, pre/post-processing). The per-step and fixed
costs come either from a short calibration on this machine (:func:`calibrate`:
a warm-up call, then ``c`` and ``2c`` steps at batch 1 through the editor itself,
``c`` the cache interval) or from the stored measurement of the full-size
InstructPix2Pix on the project's 2-core CPU (:data:`STORED_CPU`, from
bench/bench_fullsize.py; CPU-seconds at one thread), which says so.

The instruction editors (FLUX.2 [klein], Qwen-Image-Edit, FLUX.1 Kontext)
are planned from their operations per Î (counted on the real architectures,
:mod:`diffusemix.editors.costs`) at the run's edit size and steps, divided by
the rate measured for them (:func:`instruct_costs`: an H200 for a GPU, the
project's CPU for a CPU); the estimate says which, and gives the operations.
"""

from __future__ import annotations

import dataclasses
import math
import resource
import time
from dataclasses import dataclass
from typing import Any

from .errors import DiffuseMixError

__all__ = ["StepCosts", "CostEstimate", "STORED_CPU", "stored_costs", "instruct_costs", "calibrate", "estimate",
           "plan_cost"]


@dataclass(frozen=True)
class StepCosts:
    """Seconds per (image, prompt): one denoising step (averaged over a cache
    cycle when DeepCache is on) and the fixed part; memory in GB."""

    per_step_s: float
    fixed_s: float
    #: Peak resident memory at batch 1 (weights included), and per extra sample.
    peak_gb: float
    per_extra_sample_gb: float
    #: Where the figures come from (printed with the estimate).
    source: str


@dataclass(frozen=True)
class CostEstimate:
    pairs: int
    steps: int
    batch_size: int
    seconds: float
    memory_gb: float
    source: str
    #: Floating-point operations of the whole run, where counted (the instruction editors), and at what edit size.
    operations: float | None = None
    edit_size: int | None = None

    @property
    def hours(self) -> float:
        return self.seconds / 3600

    def __str__(self) -> str:
        t = f"{self.hours:.1f} h" if self.seconds >= 3600 else f"{self.seconds / 60:.1f} min"
        ops = ""
        if self.operations is not None:
            per = self.operations / max(self.pairs, 1) / 1e12
            ops = f", {self.operations / 1e12:,.0f} TFLOP ({per:,.1f} per Î at edit size {self.edit_size} px)"
        return (
            f"{self.pairs} (image, prompt) pair(s) x {self.steps} steps ~ {t}{ops}, about {self.memory_gb:.1f} GB"
            f" of memory at batch {self.batch_size} ({self.source})"
        )


#: Full-size InstructPix2Pix, 256 px, CPU, one thread, CPU-seconds per
#: (image, prompt), measured by bench/bench_fullsize.py on the project's 2-core
#: x86 machine (allocator setting on): UNet full and cached step, the fixed part
#: (VAE encode + decode). Keys: (dtype, vae).
STORED_CPU: dict[tuple[str, str], dict[str, float]] = {
    ("float32", "full"): {"unet": 6.59, "cached": 0.43, "fixed": 8.9},
    ("bfloat16", "full"): {"unet": 3.43, "cached": 0.26, "fixed": 4.6},
    ("float32", "tiny"): {"unet": 6.40, "cached": 0.43, "fixed": 0.7},
    ("bfloat16", "tiny"): {"unet": 3.44, "cached": 0.26, "fixed": 0.4},
}

#: Resident memory (GB) at batch 1 and per extra sample, same bench, full VAE
#: (an upper bound for the tiny VAE): float32 5.0 / 5.9 / 6.7 GB at batch 1 / 4 / 8,
#: bfloat16 2.8 / 4.4 GB at batch 1 / 8.
STORED_MEMORY_CPU: dict[str, tuple[float, float]] = {"float32": (5.0, 0.24), "bfloat16": (2.8, 0.23)}


def stored_costs(
    *, dtype: str, vae: str = "full", cache_interval: int = 1, size: int = 256, device: str = "cpu"
) -> StepCosts:
    """The stored CPU measurement for these settings, scaled by image area.

    Raises:
        DiffuseMixError: no stored measurement for this dtype (e.g. float16 on CPU),
            or ``device`` is not a CPU (a GPU is tens to hundreds of times faster:
            the CPU figures would say nothing about it).
    """
    if device != "cpu":
        raise DiffuseMixError(
            f"there is no stored measurement for {device} (the stored figures are a 2-core CPU's); calibrate, which"
            " times a few steps on this device"
        )
    row = STORED_CPU.get((dtype, vae))
    if row is None:
        raise DiffuseMixError(f"there is no stored CPU measurement for dtype {dtype!r}; calibrate on this machine"
                              " instead")
    k = (size * size) / (256 * 256)
    per_step = (row["unet"] + (cache_interval - 1) * row["cached"]) / cache_interval * k
    return StepCosts(
        per_step_s=per_step,
        fixed_s=row["fixed"] * k,
        peak_gb=STORED_MEMORY_CPU[dtype][0],
        per_extra_sample_gb=STORED_MEMORY_CPU[dtype][1] * k,
        source="stored full-size measurement from a 2-core x86 CPU at one thread, not this machine",
    )


def instruct_costs(editor: Any) -> StepCosts:
    """The stored figures of an instruction editor at its spec's edit size, steps and dtype: its
    operations per step and per Î (counted), at the rate measured for it on an H200 (for a CUDA
    device) or for FLUX.2 [klein] 4B on the project's 2-core CPU (for a CPU; float32 slower by the
    float32/bfloat16 ratio measured there). Memory: the weights alone (activations not counted).

    Raises:
        DiffuseMixError: a device or dtype without a stored measurement (calibrate instead).
    """
    from .editors.costs import CPU_FLOAT32_SLOWDOWN, MEASURED_ON, BYTES_PER_PARAM, EDITOR_PARAMS, _rate, operations
    from .editors.licences import card_of

    s = editor.spec
    device = str(editor.device)
    kind = "cuda" if device.startswith("cuda") else device
    if kind not in ("cuda", "cpu"):
        raise DiffuseMixError(f"there is no stored measurement of {editor.name} for {device}; calibrate, which times"
                              " a few steps on this device")
    if (kind == "cpu" and s.dtype not in ("float32", "bfloat16")) or (kind == "cuda" and s.dtype == "float32"):
        raise DiffuseMixError(f"there is no stored measurement of {editor.name} in {s.dtype} on {kind}; calibrate on"
                              " this machine instead")
    passes = (2 if (s.true_cfg_scale or 0) > 1 else 1) if editor.name == "qwen-image-edit" else None
    step, fixed = operations(editor.name, s.edit_size, steps=s.steps, passes=passes)
    rate, measured = _rate(editor.name, kind, s.edit_size)
    slow = CPU_FLOAT32_SLOWDOWN if kind == "cpu" and s.dtype == "float32" else 1.0
    card = card_of(editor)
    params = card.total_params if card is not None else sum(EDITOR_PARAMS[editor.name].values())
    weights = params * BYTES_PER_PARAM[s.dtype] / 1e9
    note = f"; float32: x{CPU_FLOAT32_SLOWDOWN:.2f} (InstructPix2Pix's float32/bfloat16 there)" if slow > 1 else ""
    return StepCosts(
        per_step_s=step / rate * slow,
        fixed_s=fixed / rate * slow,
        peak_gb=weights,
        per_extra_sample_gb=0.0,
        source=f"counted operations at the rate measured {MEASURED_ON[kind]} ({measured}{note}); memory: the"
        " weights alone",
    )


def calibrate(editor: Any, *, size: int) -> StepCosts:
    """Measure this machine: a 1-step warm-up, then ``c`` and ``2c`` steps of
    one (image, prompt) through ``editor`` (``c`` its cache interval), wall time."""
    import numpy as np

    from .editors import EditRequest

    c = int(editor.spec.cache_interval or 1)
    yy, xx = np.mgrid[0:size, 0:size] / size
    image = (np.stack([np.sin(3 * xx), np.cos(2 * yy), np.sin(xx + yy)], -1) * 100 + 128).astype(np.uint8)
    req = [EditRequest(image, "calibration", 0)]

    own = getattr(type(editor), "defaults", {})
    fixed = {k: v for k, v in {"max_retries": 0, "batch_size": 1}.items() if k in own}

    def timed(steps: int) -> float:
        variant = editor.with_settings(steps=steps, **fixed)
        t = time.perf_counter()
        variant.edit(req)
        return time.perf_counter() - t

    timed(1)
    a, b = timed(c), timed(2 * c)
    per_step = max(1e-6, (b - a) / c)
    fixed = max(0.0, a - c * per_step)
    peak = _peak_gb(editor)
    return StepCosts(
        per_step_s=per_step,
        fixed_s=fixed,
        peak_gb=peak,
        per_extra_sample_gb=0.3 * (size * size) / (256 * 256) * (0.5 if "16" in str(editor.dtype) else 1.0),
        source=f"calibrated on this machine: {per_step:.2f} s/step, {fixed:.1f} s fixed per image",
    )


def _peak_gb(editor: Any) -> float:
    device = str(getattr(editor, "device", "cpu"))
    if device.startswith("cuda"):
        import torch

        return torch.cuda.max_memory_allocated(torch.device(device)) / 1e9
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # KiB on Linux


def estimate(pairs: int, *, steps: int, costs: StepCosts, batch_size: int = 1) -> CostEstimate:
    """Seconds for ``pairs`` (image, prompt) pairs at ``steps`` steps, and the
    peak memory at ``batch_size``. On a CPU the time per pair does not depend on
    the batch (compute-bound); on a GPU a bigger batch is faster, so this is an
    upper bound there."""
    seconds = pairs * (costs.fixed_s + steps * costs.per_step_s)
    memory = costs.peak_gb + max(0, batch_size - 1) * costs.per_extra_sample_gb
    return CostEstimate(
        pairs=pairs,
        steps=steps,
        batch_size=batch_size,
        seconds=seconds,
        memory_gb=math.ceil(memory * 10) / 10,
        source=costs.source,
    )


def plan_cost(editor: Any, pairs: int, *, size: int, costs: StepCosts | None = None) -> CostEstimate | None:
    """The one estimate of a run's time and memory (the dry run and the app's Batch export both use it).

    ``costs``: measured (:func:`calibrate`, or the app's timed GPU calls); ``None`` takes the stored
    measurement (InstructPix2Pix: the CPU's; the instruction editors: :func:`instruct_costs`, whose
    estimate also gives the operations). ``None`` comes back for editors without cost figures (the
    preview, img2img).

    Raises:
        DiffuseMixError: no stored measurement fits the editor's settings (e.g. float16 on a CPU).
    """
    if not editor.is_diffusion:
        return None
    s = editor.spec
    if editor.name in ("flux2-klein", "qwen-image-edit", "flux-kontext"):
        from .editors.costs import operations

        passes = (2 if (s.true_cfg_scale or 0) > 1 else 1) if editor.name == "qwen-image-edit" else None
        step, fixed = operations(editor.name, s.edit_size, steps=s.steps, passes=passes)
        got = estimate(pairs, steps=s.steps, costs=costs if costs is not None else instruct_costs(editor),
                       batch_size=s.batch_size if isinstance(s.batch_size, int) else 1)
        return dataclasses.replace(got, operations=pairs * (fixed + s.steps * step), edit_size=s.edit_size)
    if editor.name != "instruct-pix2pix":
        return None
    if costs is None:
        costs = stored_costs(dtype=s.dtype, vae=s.vae, cache_interval=s.cache_interval, size=size,
                             device=editor.device)
    batch = s.batch_size if isinstance(s.batch_size, int) else 1
    return estimate(pairs, steps=s.steps, costs=costs, batch_size=batch)
