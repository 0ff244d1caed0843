"""Training-time draws: a fresh layout, fractal and λ for every (seed, epoch, sample).

Draw first, apply second, as everywhere in diffusemix: :func:`draw_mix` turns
a cached sample's record into the record of this epoch's A (the prompt,
copy and editor seed stay those of the cached Î; the layout, fractal and λ
are drawn anew under the recipe's mixing settings); ``engine.apply_record``
then makes A. Every draw is a pure function of (seed, epoch, key), through
``numpy.random.SeedSequence``: no global state, so any DataLoader worker,
any rank of a distributed run and any re-run gives the same A.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Sequence

import numpy as np

from ..recipe import Recipe, SampleRecord

__all__ = ["draw_mix", "pick_slots", "MixDraw"]


def _words(text: str) -> tuple[int, ...]:
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return tuple(int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4))


def _rng(seed: int, epoch: int, purpose: int, key: str) -> np.random.Generator:
    ss = np.random.SeedSequence(entropy=int(seed), spawn_key=(int(epoch), purpose, *_words(key)))
    return np.random.default_rng(ss)


@dataclasses.dataclass(frozen=True)
class MixDraw:
    """The draw for one item: whether it is augmented, and the record of its A."""

    augmented: bool
    record: SampleRecord


def draw_mix(
    recipe: Recipe,
    base: SampleRecord,
    fractal_names: Sequence[str],
    *,
    seed: int,
    epoch: int,
    key: str,
    p: float = 1.0,
) -> MixDraw:
    """This epoch's draw for one cached sample.

    Args:
        recipe: its mixing settings are used (layouts, mask, seam, λ).
        base: the cached sample's record (prompt, copy, editor seed, size).
        fractal_names: the fractal set's names, in its fixed order.
        seed: the training seed.
        epoch: the epoch (see ``DiffuseMixDataset.set_epoch``).
        key: the sample's stable identity (``CacheEntry.key``).
        p: probability that the item is augmented rather than its original I.

    Returns:
        A :class:`MixDraw`; its record always holds a drawn layout, fractal
        and λ (so the stream of draws does not depend on ``p``).
    """
    if not fractal_names:
        raise ValueError("fractal_names is empty: a fractal set with at least one image is needed")
    rng = _rng(seed, epoch, 0, key)
    augmented = bool(rng.random() < p)
    layout = str(recipe.layouts[rng.integers(len(recipe.layouts))])
    fractal = str(fractal_names[rng.integers(len(fractal_names))])
    if isinstance(recipe.lam, tuple):
        lam = float(rng.uniform(recipe.lam[0], recipe.lam[1]))
    else:
        lam = float(recipe.lam)
    record = dataclasses.replace(
        base,
        layout=layout,
        mask=recipe.mask,
        seam=int(recipe.seam) if recipe.mask == "ramp" else 0,
        lam=round(lam, 6),
        fractal=fractal,
    )
    return MixDraw(augmented=augmented, record=record)


def pick_slots(count: int, k: int, *, seed: int, epoch: int, key: str) -> list[int]:
    """Which ``k`` of an image's ``count`` cached Î fill its slots this epoch.

    All of them, in cache order, when ``k >= count``; otherwise ``k`` drawn
    without replacement for (seed, epoch, image).
    """
    if k >= count:
        return list(range(count))
    rng = _rng(seed, epoch, 1, key)
    return sorted(int(i) for i in rng.choice(count, size=k, replace=False))
