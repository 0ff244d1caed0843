"""The editor interface: (image, prompt, seed) triples in, edited images out.

An editor produces the generated image Î = D(I, p) of the method. The engine
receives an editor; it never builds one. Editors know nothing of masks,
fractals or files.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol, Sequence, runtime_checkable

import numpy as np

__all__ = [
    "EditRequest",
    "EditResult",
    "Editor",
    "ProgressFn",
    "CancelToken",
    "retry_seed",
]

#: ``progress(done, total)``: units of work (denoising steps summed over the
#: whole call for diffusion editors, images for the preview) done so far.
ProgressFn = Callable[[int, int], None]


@runtime_checkable
class CancelToken(Protocol):
    """Anything with ``is_set()``, e.g. ``threading.Event``."""

    def is_set(self) -> bool: ...


@dataclass(frozen=True)
class EditRequest:
    """One edit to make.

    Attributes:
        image: uint8 array of shape (H, W, 3), the input I at output size.
        prompt: the filter-like text prompt.
        seed: the seed for this sample's noise (one CPU torch.Generator each).
    """

    image: np.ndarray
    prompt: str
    seed: int


@dataclass(frozen=True)
class EditResult:
    """The outcome of one :class:`EditRequest`.

    Attributes:
        image: uint8 array of shape (H, W, 3), the same H and W as the request.
        seed: the seed that produced ``image`` (differs from the request's seed
            when a degenerate output was retried; see :func:`retry_seed`).
        attempts: how many generations were made (1 when the first was fine).
        degenerate: ``None`` when the image is usable, else the reason from
            :func:`diffusemix.functional.degenerate_reason` for the last attempt.
    """

    image: np.ndarray
    seed: int
    attempts: int = 1
    degenerate: str | None = None


@runtime_checkable
class Editor(Protocol):
    """What the engine, the exporter and the app need of an editor."""

    #: Short machine name: "instruct-pix2pix", "img2img" or "preview".
    name: str
    #: True for a real diffusion model, False for the weight-free preview.
    is_diffusion: bool

    def describe(self) -> dict[str, Any]:
        """JSON-able description (name, model id or folder, device, dtype,
        steps, guidance values...) written to manifests and shown in the app."""
        ...

    def edit(
        self,
        requests: Sequence[EditRequest],
        *,
        progress: ProgressFn | None = None,
        cancel: CancelToken | None = None,
    ) -> list[EditResult]:
        """Edit every request; results are in request order.

        Raises :class:`diffusemix.errors.Cancelled` if ``cancel`` is set.
        """
        ...


def retry_seed(seed: int, attempt: int) -> int:
    """The seed for retry number ``attempt`` (1, 2, ...) of a sample.

    Deterministic, so a retried sample is reproducible from its record.
    """
    if attempt < 0:
        raise ValueError(f"attempt must be >= 0, got {attempt}")
    if attempt == 0:
        return int(seed)
    ss = np.random.SeedSequence(entropy=int(seed), spawn_key=(int(attempt),))
    return int(ss.generate_state(1, dtype=np.uint32)[0])
