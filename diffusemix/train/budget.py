"""Training budgets and the order in which items are seen: pure functions of the settings and the seed.

A DiffuseMix training set is the real set × (prompts + 1), so "300 epochs"
means many more optimizer steps for DiffuseMix than for its baselines (the
fairness question of the authors' issue #6). The budget says what is held
equal:

* ``epochs``: ``epochs`` passes over each method's own training set (how the
  paper and the author's code train): steps = epochs × ⌈items / batch⌉.
* ``steps``: the optimizer steps of ``epochs`` passes over the *real* images,
  whatever the method's dataset size: steps = epochs × ⌈real / batch⌉.
* ``images``: the images seen in ``epochs`` passes over the real images,
  whatever the batch: steps = ⌈epochs × real / batch⌉.

Items are drawn as one endless stream: pass ``e`` is a permutation of the
dataset drawn from ``(seed, e)``, and step ``s`` takes stream positions
``[s·B, (s+1)·B)``; so every batch is full, any step's batch can be computed
without the ones before it (resume starts mid-run with the same batches), and
a process of a multi-process run takes its slice of each global batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from ..errors import DiffuseMixError

__all__ = ["Budget", "plan_budget", "batch_positions", "epoch_of_step"]


@dataclass(frozen=True)
class Budget:
    """How long a run trains, and why.

    Attributes:
        mode: ``epochs``, ``steps`` or ``images``.
        epochs: the config's epochs.
        real_images: training images of the real set (after a k-per-class draw).
        dataset_items: items of the method's training set (real + augmented for DiffuseMix).
        global_batch: images per optimizer step over all processes.
        total_steps: optimizer steps of the run.
        epoch_ends: the step count at the end of each epoch (evaluations and checkpoints happen there).
    """

    mode: str
    epochs: int
    real_images: int
    dataset_items: int
    global_batch: int
    total_steps: int
    epoch_ends: tuple[int, ...]

    @property
    def images_seen(self) -> int:
        return self.total_steps * self.global_batch

    @property
    def passes(self) -> float:
        """Passes over the method's own training set."""
        return self.images_seen / self.dataset_items

    def to_dict(self) -> dict[str, object]:
        return {
            "mode": self.mode,
            "epochs": self.epochs,
            "real_images": self.real_images,
            "dataset_items": self.dataset_items,
            "global_batch": self.global_batch,
            "total_steps": self.total_steps,
            "images_seen": self.images_seen,
            "passes_over_dataset": round(self.passes, 4),
            "epoch_ends": list(self.epoch_ends),
        }


def plan_budget(mode: str, *, epochs: int, real_images: int, dataset_items: int, global_batch: int) -> Budget:
    """The steps of a run and where its epochs end.

    Raises:
        DiffuseMixError: an unknown mode, or a count below 1.
    """
    for name, v in (("epochs", epochs), ("real_images", real_images), ("dataset_items", dataset_items),
                    ("global_batch", global_batch)):  # fmt: skip
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise DiffuseMixError(f"{name} must be an integer >= 1; got {v!r}")
    smallest = dataset_items if mode == "epochs" else real_images
    if mode in ("epochs", "steps") and smallest < global_batch:
        what = "training set" if mode == "epochs" else "set of real images"
        raise DiffuseMixError(
            f"budget {mode}: the {what} has {smallest} items, fewer than one batch of {global_batch}; a batch would"
            f" hold the same images several times and an epoch would be {global_batch / smallest:.1f} passes."
            f" Lower the batch (--set batch_size={max(1, smallest)}, or less across processes)"
        )
    if mode == "epochs":
        per = math.ceil(dataset_items / global_batch)
        ends = tuple(per * (e + 1) for e in range(epochs))
    elif mode == "steps":
        per = math.ceil(real_images / global_batch)
        ends = tuple(per * (e + 1) for e in range(epochs))
    elif mode == "images":
        if real_images < global_batch:
            raise DiffuseMixError(
                f"budget images: an epoch of {real_images} real images is smaller than one batch of {global_batch}; "
                "lower the batch or use budget steps"
            )
        ends = tuple(math.ceil((e + 1) * real_images / global_batch) for e in range(epochs))
    else:
        raise DiffuseMixError(f"budget must be one of epochs, steps, images; got {mode!r}")
    return Budget(mode, epochs, real_images, dataset_items, global_batch, ends[-1], ends)


def epoch_of_step(budget: Budget, step: int) -> int:
    """The (0-based) epoch a step belongs to (steps count from 0)."""
    for e, end in enumerate(budget.epoch_ends):
        if step < end:
            return e
    return budget.epochs - 1


@lru_cache(maxsize=8)
def _permutation(n: int, seed: int, pass_index: int) -> np.ndarray:
    return np.random.default_rng([seed, pass_index, 0x5EED]).permutation(n)


def batch_positions(
    step: int, *, n: int, global_batch: int, seed: int, rank: int = 0, world: int = 1
) -> list[tuple[int, int]]:
    """(pass, item index) for this process's share of step ``step``'s global batch.

    The global batch is stream positions ``[step·B, (step+1)·B)``; process
    ``rank`` of ``world`` takes the ``rank``-th of ``world`` equal slices
    (``B`` must divide by ``world``).
    """
    if global_batch % world:
        raise DiffuseMixError(f"the global batch {global_batch} does not split into {world} equal shares")
    share = global_batch // world
    start = step * global_batch + rank * share
    out = []
    for pos in range(start, start + share):
        p, i = divmod(pos, n)
        out.append((p, int(_permutation(n, seed, p)[i])))
    return out
