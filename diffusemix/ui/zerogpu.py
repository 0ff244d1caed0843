"""ZeroGPU: the GPU duration asked per call, computed from the request, and
errors raised outside the GPU function.

On a ZeroGPU Space, ``spaces.GPU`` runs the decorated function in a forked
worker with a GPU for at most ``duration`` seconds; what it raises there reaches
the user as a generic error. So :func:`gpu` catches errors inside, carries them
out as a value and raises them again outside, and its ``duration`` may be a
function of the call's arguments (ZeroGPU's dynamic duration), fed by
:func:`gpu_seconds` (pairs x steps x the step time measured on earlier calls).
Elsewhere (no ``spaces`` package) the function just runs. The model itself is
loaded and put on the device at start-up (``make_context``), as ZeroGPU expects.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable
from typing import Any, NoReturn

from diffusemix.errors import Cancelled, DiffuseMixError

__all__ = ["GPU_STEP_SECONDS", "GPU_BASE_SECONDS", "GPU_MAX_SECONDS", "gpu", "gpu_seconds", "record_gpu_time",
           "step_seconds"]

logger = logging.getLogger("diffusemix.app")

#: GPU seconds per (image, prompt) per denoising step, before any run has been timed: the
#: full-size InstructPix2Pix at batch 1 on an H200, float16, 256 px (19.5 ms per step; 3.2 ms
#: per pair at batch 8; bench/RESULTS.md). Replaced by the measured value after every GPU call.
GPU_STEP_SECONDS = {"estimate": 0.02}
#: What every GPU call asks for beyond its steps (moving data, VAE, zipping), and the most.
GPU_BASE_SECONDS, GPU_MAX_SECONDS = 20, 600


def _estimate_key(editor: Any | None) -> str:
    """Where an editor's step time is kept: the instruction editors each their own (their steps cost
    10-40x InstructPix2Pix's), every other editor the shared ``estimate``."""
    name = getattr(editor, "name", None)
    return f"editor:{name}" if name in ("flux2-klein", "qwen-image-edit", "flux-kontext") else "estimate"


def step_seconds(editor: Any | None = None) -> float:
    """The GPU seconds per (pair, step) of ``editor``: measured on an earlier call, else a first guess
    (an instruction editor's: its counted operations at the rate measured on an H200, at its edit size)."""
    key = _estimate_key(editor)
    if key not in GPU_STEP_SECONDS:
        from diffusemix.editors.costs import gpu_seconds_per_image

        s = editor.spec
        passes = (2 if (s.true_cfg_scale or 0) > 1 else 1) if editor.name == "qwen-image-edit" else None
        GPU_STEP_SECONDS[key] = gpu_seconds_per_image(editor.name, s.edit_size, steps=s.steps, passes=passes) / s.steps
    return GPU_STEP_SECONDS[key]


def gpu_seconds(pairs: int, steps: int, *, editor: Any | None = None) -> int:
    """The GPU duration to ask ZeroGPU for: pairs x steps x the measured step time (of ``editor``,
    see :func:`step_seconds`), with a margin, between GPU_BASE_SECONDS and GPU_MAX_SECONDS."""
    need = GPU_BASE_SECONDS + 1.5 * pairs * max(1, steps) * step_seconds(editor)
    return int(min(GPU_MAX_SECONDS, max(GPU_BASE_SECONDS, math.ceil(need))))


def record_gpu_time(seconds: float, pairs: int, steps: int, *, editor: Any | None = None) -> None:
    """Keep the measured seconds per (pair, step) of a finished GPU call (of ``editor``) for the next request."""
    if pairs > 0 and steps > 0 and seconds > 0:
        GPU_STEP_SECONDS[_estimate_key(editor)] = seconds / (pairs * steps)


class _Raised:
    """An error inside a GPU function, carried out as a value: on ZeroGPU an
    exception raised in the forked GPU worker reaches the user as a generic
    message, so it is raised again outside, where the user sees it."""

    def __init__(self, exc: BaseException) -> None:
        self.kind = "cancelled" if isinstance(exc, Cancelled) else "user" if isinstance(exc, DiffuseMixError) else "bug"
        if isinstance(exc, DiffuseMixError):  # in the page's words (the fields do not cross the fork)
            from diffusemix.schema import label_for

            self.message = exc.message(namer=label_for) if exc.owner and exc.field else exc.message()
        else:
            self.message = str(exc) if self.kind != "bug" else f"{type(exc).__name__}: {exc}"

    def reraise(self) -> NoReturn:
        if self.kind == "cancelled":
            raise Cancelled(self.message)
        if self.kind == "user":
            raise DiffuseMixError(self.message)
        raise RuntimeError(self.message)


def gpu(duration: int | Callable[..., int] = 60) -> Callable[[Callable], Callable]:
    """``spaces.GPU(duration=...)`` on a Hugging Face Space with ``spaces``; a no-op
    elsewhere. ``duration`` may be a function of the call's arguments (ZeroGPU's
    dynamic duration). Errors inside are carried out and raised outside (see _Raised)."""

    def decorate(fn: Callable) -> Callable:
        def inside(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except Exception as exc:
                if not isinstance(exc, (DiffuseMixError, Cancelled)):
                    logger.exception("error in the GPU function %s", fn.__name__)
                return _Raised(exc)

        try:
            import spaces  # type: ignore[import-not-found]
        except ImportError:
            on_gpu = inside
        else:
            functools.update_wrapper(inside, fn)
            on_gpu = spaces.GPU(duration=duration)(inside)

        @functools.wraps(fn)
        def outside(*args: Any, **kwargs: Any) -> Any:
            result = on_gpu(*args, **kwargs)
            if isinstance(result, _Raised):
                result.reraise()
            return result

        return outside

    return decorate
