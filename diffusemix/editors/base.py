"""The editor interface: (image, prompt, seed) triples in, edited images out.

An editor produces the generated image Î = D(I, p) of the method. The engine
receives an editor; it never builds one. Editors know nothing of masks,
fractals or files.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, NamedTuple, Protocol, Sequence, runtime_checkable

import numpy as np

from ..errors import Cancelled, DiffuseMixError
from ..functional import degenerate_reason
from ..limits import MAX_SEED
from .spec import EditorSpec

__all__ = [
    "EditRequest",
    "EditResult",
    "Editor",
    "ProgressFn",
    "CancelToken",
    "retry_seed",
    "check_requests",
    "GenerateFn",
    "CallOutput",
    "edit_in_batches",
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
        batch: the model call that made ``image``: (request index, seed) of
            every sample in it, in call order (its own included). A diffusion
            model's numbers depend on the batch a sample is in, so this is what
            replaying the image exactly needs; ``()`` when unknown.
    """

    image: np.ndarray
    seed: int
    attempts: int = 1
    degenerate: str | None = None
    batch: tuple[tuple[int, int], ...] = ()


@runtime_checkable
class Editor(Protocol):
    """What the engine, the exporter, the app and replay use of an editor."""

    #: Short machine name: "instruct-pix2pix", "img2img" or "preview".
    name: str
    #: True for a real diffusion model, False for the weight-free preview.
    is_diffusion: bool
    #: Every setting, resolved (the editor's defaults filled in): what its rows record.
    spec: EditorSpec
    #: Why this editor is in use when it stands in for another (the app's preview fallback), else None.
    notice: str | None

    @property
    def device(self) -> str:
        """Where it runs (``"cpu"``, ``"cuda:0"``, ...)."""
        ...

    @property
    def max_retries(self) -> int:
        """Times a blank output (or one a score rule rejects) is remade with a new recorded seed."""
        ...

    def load(self) -> None:
        """Load the model now (idempotent; a model that cannot be loaded raises EditorLoadError)."""
        ...

    def with_settings(self, **changes: Any) -> "Editor":
        """This editor with some settings changed (validated), sharing the loaded model."""
        ...

    def describe(self) -> dict[str, Any]:
        """JSON-able description for people: ``summary`` (one line), ``name``, ``model``,
        ``device``, ``dtype``, ``licence`` ... (the app's banner, the dry run, the summary)."""
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
        raise DiffuseMixError(f"attempt must be >= 0, got {attempt}")
    if attempt == 0:
        return int(seed)
    ss = np.random.SeedSequence(entropy=int(seed), spawn_key=(int(attempt),))
    return int(ss.generate_state(1, dtype=np.uint32)[0])


def check_requests(requests: Sequence[EditRequest]) -> None:
    """Raise ``ValueError`` naming the first request that cannot be edited.

    A request needs a uint8 (H, W, 3) image with H, W >= 1, a ``str`` prompt
    and an integer seed in [0, MAX_SEED].
    """
    for k, r in enumerate(requests):
        if not isinstance(r, EditRequest):
            raise DiffuseMixError(f"request {k} must be an EditRequest; got {type(r).__name__}")
        im = r.image
        if not isinstance(im, np.ndarray) or im.dtype != np.uint8 or im.ndim != 3 or im.shape[2] != 3:
            got = f"{im.dtype} array of shape {im.shape}" if isinstance(im, np.ndarray) else type(im).__name__
            raise DiffuseMixError(f"request {k}: image must be a uint8 (H, W, 3) array; got {got}")
        if im.shape[0] < 1 or im.shape[1] < 1:
            raise DiffuseMixError(f"request {k}: image is empty (shape {im.shape})")
        if not isinstance(r.prompt, str):
            raise DiffuseMixError(f"request {k}: prompt must be a str; got {type(r.prompt).__name__}")
        if isinstance(r.seed, bool) or not isinstance(r.seed, (int, np.integer)) or not 0 <= int(r.seed) <= MAX_SEED:
            raise DiffuseMixError(f"request {k}: seed must be an integer in [0, {MAX_SEED}]; got {r.seed!r}")


class CallOutput(NamedTuple):
    """What a ``generate`` that split its batch returns: the images, and the groups of positions (in the
    batch) that were run together (e.g. the halves of a batch that ran out of memory)."""

    images: Sequence[np.ndarray]
    groups: list[list[int]]


#: ``generate(images, prompts, seeds, step)``: make one batch. ``images`` are
#: uint8 (h, w, 3) arrays all of one size; returns one uint8 (h, w, 3) array
#: per image, in order (or a :class:`CallOutput` when it ran the batch as
#: several model calls). ``step()`` is called once per unit of work (a
#: denoising step) and raises :class:`Cancelled` when the cancel token is set.
GenerateFn = Callable[[list[np.ndarray], list[str], list[int], Callable[[], None]], Any]


def _resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """``image`` resized to (height, width) with bicubic filtering (a no-op at that size)."""
    if image.shape[:2] == (height, width):
        return image
    from PIL import Image

    return np.asarray(Image.fromarray(image).resize((width, height), Image.Resampling.BICUBIC))


def _work_size(height: int, width: int, multiple: int) -> tuple[int, int]:
    """The nearest size whose sides are multiples of ``multiple`` (at least one multiple)."""
    if multiple <= 1:
        return height, width
    return (
        max(multiple, int(height / multiple + 0.5) * multiple),
        max(multiple, int(width / multiple + 0.5) * multiple),
    )


class _Tracker:
    """Progress over a whole ``edit()`` call; checks the cancel token at each step."""

    def __init__(self, progress: ProgressFn | None, cancel: CancelToken | None) -> None:
        self.progress, self.cancel = progress, cancel
        self.done = self.total = self.batch_end = 0

    def check(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled("edit cancelled")

    def _report(self) -> None:
        if self.progress is not None:
            self.progress(self.done, self.total)

    def add(self, units: int) -> None:
        self.total += units
        self._report()

    def start_batch(self, units: int) -> None:
        self.check()
        self.batch_end = self.done + units

    def step(self) -> None:
        self.check()
        # A scheduler may take more or fewer steps than predicted; never pass
        # the batch's share, and catch up in end_batch.
        if self.done < self.batch_end:
            self.done += 1
            self._report()
            self.check()  # a cancel from inside the progress callback stops now

    def end_batch(self) -> None:
        if self.done != self.batch_end:
            self.done = self.batch_end
            self._report()


def edit_in_batches(
    requests: Sequence[EditRequest],
    generate: GenerateFn,
    *,
    batch_size: int,
    units_per_batch: int,
    max_retries: int,
    size_multiple: int = 1,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
) -> list[EditResult]:
    """The edit loop every editor shares: batch, generate, check, retry.

    1. Requests are grouped by working size (each side rounded to the nearest
       multiple of ``size_multiple``, e.g. 8 for Stable Diffusion's VAE), in
       order of first appearance, and cut into batches of ``batch_size``.
    2. Each batch is one ``generate`` call on the inputs resized to the working
       size; its outputs are resized back to each request's exact size.
    3. Outputs that :func:`degenerate_reason` rejects are made again with
       ``retry_seed(seed, attempt)``, up to ``max_retries`` times; the last
       reason is reported in :attr:`EditResult.degenerate`, never dropped.

    Each result records the model call that made it (:attr:`EditResult.batch`).

    ``progress(done, total)`` counts ``units_per_batch`` units per batch
    (denoising steps, or images); ``total`` grows when retries are needed.

    Raises:
        ValueError: a malformed request (see :func:`check_requests`).
        Cancelled: ``cancel`` was set (checked before each batch and each step).
    """
    check_requests(requests)
    n = len(requests)
    images: list[np.ndarray | None] = [None] * n
    used_seeds = [int(r.seed) for r in requests]
    attempts = [0] * n
    reasons: list[str | None] = [None] * n
    calls: list[tuple[tuple[int, int], ...]] = [()] * n
    tracker = _Tracker(progress, cancel)
    tracker.check()

    pending = list(range(n))
    for attempt in range(max_retries + 1):
        if not pending:
            break
        # 1. plan: group by working size, keep request order, cut into batches
        groups: dict[tuple[int, int], list[int]] = {}
        for i in pending:
            h, w = requests[i].image.shape[:2]
            groups.setdefault(_work_size(h, w, size_multiple), []).append(i)
        batches = [
            (size, idx[k : k + batch_size]) for size, idx in groups.items() for k in range(0, len(idx), batch_size)
        ]
        tracker.add(units_per_batch * len(batches))
        # 2. generate each batch and bring the outputs back to request size
        for (wh, ww), batch in batches:
            tracker.start_batch(units_per_batch)
            seeds = [retry_seed(requests[i].seed, attempt) for i in batch]
            got = generate(
                [_resize(requests[i].image, wh, ww) for i in batch],
                [requests[i].prompt for i in batch],
                seeds,
                tracker.step,
            )
            tracker.end_batch()
            outs, groups = (got.images, got.groups) if isinstance(got, CallOutput) else (got, [list(range(len(batch)))])
            for group in groups:
                call = tuple((batch[k], seeds[k]) for k in group)
                for k in group:
                    calls[batch[k]] = call
            for i, seed, out in zip(batch, seeds, outs, strict=True):
                h, w = requests[i].image.shape[:2]
                images[i] = _resize(np.ascontiguousarray(out, dtype=np.uint8), h, w)
                used_seeds[i] = seed
                attempts[i] += 1
                reasons[i] = degenerate_reason(images[i])
        # 3. retry what came out blank
        pending = [i for i in pending if reasons[i] is not None]

    return [
        EditResult(image=images[i], seed=used_seeds[i], attempts=attempts[i], degenerate=reasons[i],  # type: ignore[arg-type]
                   batch=calls[i])
        for i in range(n)
    ]
