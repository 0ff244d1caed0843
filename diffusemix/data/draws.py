"""Training-time draws: a fresh layout, fractal and λ for every (seed, epoch, sample).

Draw first, apply second, as everywhere in diffusemix: :func:`draw_mix` turns
a cached sample's record into the record of this epoch's A (the prompt,
copy and editor seed stay those of the cached Î; the layout, fractal and λ
are drawn anew under the recipe's mixing settings); ``engine.apply_record``
then makes A. Every draw is a pure function of (seed, epoch, key), through
a keyed BLAKE2b hash: no global state, so any DataLoader worker,
any rank of a distributed run and any re-run gives the same A.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Sequence

from ..errors import DiffuseMixError
from ..recipe import Recipe, SampleRecord

__all__ = ["draw_mix", "pick_slots", "MixDraw"]


_SCALE = 1.0 / 2.0**64


def _words(seed: int, epoch: int, purpose: int, key: str, n: int = 4) -> tuple[int, ...]:
    """``n`` independent 64-bit words for (seed, epoch, purpose, key): a keyed hash.

    BLAKE2b is fast (a few µs; a ``SeedSequence`` + generator costs 100+ µs,
    a tenth of a whole sample's mix), the same on every platform and process,
    and its words are uniform for any practical purpose.
    """
    h = hashlib.blake2b(key.encode("utf-8"), digest_size=8 * n, person=b"diffusemix-data")
    h.update(f"\0{int(seed)}\0{int(epoch)}\0{int(purpose)}".encode("ascii"))
    d = h.digest()
    return tuple(int.from_bytes(d[8 * i : 8 * i + 8], "little") for i in range(n))


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
        recipe: its mixing settings are used (layouts, mask, seam, λ, arithmetic).
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
        raise DiffuseMixError("fractal_names is empty: a fractal set with at least one image is needed")
    w = _words(seed, epoch, 0, key)
    augmented = w[0] * _SCALE < p
    layout = str(recipe.layouts[w[1] % len(recipe.layouts)])
    fractal = str(fractal_names[w[2] % len(fractal_names)])
    if isinstance(recipe.lam, tuple):
        lo, hi = recipe.lam
        lam = lo + (hi - lo) * (w[3] * _SCALE)
    else:
        lam = float(recipe.lam)
    record = dataclasses.replace(
        base,
        layout=layout,
        mask=recipe.mask,
        seam=int(recipe.seam) if recipe.mask != "binary" else 0,
        lam=round(lam, 6),
        fractal=fractal,
        arithmetic=recipe.arithmetic,
    )
    return MixDraw(augmented=augmented, record=record)


def pick_slots(count: int, k: int, *, seed: int, epoch: int, key: str) -> list[int]:
    """Which ``k`` of an image's ``count`` cached Î fill its slots this epoch.

    All of them, in cache order, when ``k >= count``; otherwise ``k`` drawn
    without replacement for (seed, epoch, image).
    """
    if k >= count:
        return list(range(count))
    ranks = sorted(range(count), key=lambda j: _words(seed, epoch, 1, f"{key}\0{j}", 1)[0])
    return sorted(ranks[:k])
