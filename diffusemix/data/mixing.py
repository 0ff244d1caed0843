"""What the torch dataset and the 🤗 datasets transform share: the recipe's
mixing settings resolved against a cache, the fractal set in memory, fast
decoding of cached I and Î, and the epoch counter that DataLoader workers see.

The mix itself is ``engine.apply_record``, the one mixing path of the
project: a training A is bit-identical to the exporter's A for the same record.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import schema
from ..engine import apply_record
from ..errors import DiffuseMixError, SettingError
from ..recipe import Recipe
from .cache import Cache, CacheEntry, CacheError
from .draws import MixDraw, draw_mix

if TYPE_CHECKING:  # pragma: no cover
    from ..fractals import FractalSet

__all__ = ["Remixer", "SharedEpoch", "read_rgb", "recipe_for_cache"]


def read_rgb(path: Path, size: int) -> np.ndarray:
    """A cached image as uint8 (size, size, 3), decoded without extra copies.

    Raises:
        CacheError: the file is unreadable or not ``size`` x ``size``.
    """
    from ..images import open_image

    def fail(reason: str) -> CacheError:
        reason = reason.split(". Shrink the image")[0]  # a cache is remade, not given a larger limit
        return CacheError(f"cached image {path} {reason}; make the cache again")

    try:
        with open_image(path, fail=fail) as im:  # a regular file, a header bomb named as too large
            im.load()
            if im.mode != "RGB":
                im = im.convert("RGB")
            arr = np.asarray(im)
    except (OSError, ValueError, SyntaxError) as e:
        if isinstance(e, CacheError):
            raise
        raise CacheError(f"cached image {path} cannot be read ({e}); make the cache again") from None
    if arr.shape != (size, size, 3):
        raise CacheError(
            f"cached image {path} is {arr.shape[1]}x{arr.shape[0]}, not {size}x{size} like the rest of the cache; "
            "make the cache again"
        )
    return arr


def recipe_for_cache(cache: Cache, recipe: Recipe | None) -> Recipe:
    """The recipe whose mixing settings training uses.

    ``None`` takes the mixing settings the cache was exported with (the
    ``paper`` preset's for a cache made with ``--cache``, which mixes
    nothing), at the cache's size. A recipe given must have the cache's size.
    """
    if recipe is None:
        made = cache.settings.get("recipe") or {}
        kw: dict[str, Any] = {"size": cache.size, "prompts": cache.prompts}
        mixing = set(schema.fields_by_stage(Recipe, "mixing"))  # layouts, mask, seam, lam, arithmetic
        kw.update({k: (tuple(v) if isinstance(v, list) else v) for k, v in made.items() if k in mixing})
        if isinstance(made.get("seed"), int):
            kw["seed"] = made["seed"]
        return Recipe(**kw)
    if not isinstance(recipe, Recipe):
        raise TypeError(f"recipe must be a diffusemix.Recipe; got {type(recipe).__name__}")
    if recipe.size != cache.size:
        raise SettingError(
            f"does not match the cache's {cache.size} px images", owner="Recipe", field="size", value=recipe.size,
            hint=f"Use recipe.replace(size={cache.size}) (I and Î are cached at that size)",
        )
    return recipe


#: The largest epoch: what the shared int64 holds.
MAX_EPOCH = 2**63 - 1


class SharedEpoch:
    """An epoch number every DataLoader worker reads, also persistent ones.

    Held in a one-element shared-memory torch tensor (the way timm shares its
    epoch with workers), so ``set_epoch`` in the main process reaches workers
    started earlier, whatever the start method.
    """

    def __init__(self, epoch: int = 0) -> None:
        import torch

        self._value = torch.zeros(1, dtype=torch.int64).share_memory_()
        self.set(epoch)

    def get(self) -> int:
        return int(self._value[0])

    def set(self, epoch: int) -> None:
        if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or epoch < 0:
            raise DiffuseMixError(f"epoch must be an integer >= 0; got {epoch!r}")
        if epoch > MAX_EPOCH:
            raise DiffuseMixError(f"epoch must be an integer in [0, {MAX_EPOCH}] (it is kept in an int64); got"
                                  f" {epoch!r}")
        self._value[0] = int(epoch)


class Remixer:
    """Mixes a cached sample into this epoch's A (or gives back its I).

    Args:
        cache: the cache read by ``read_cache``.
        recipe: mixing settings (see :func:`recipe_for_cache`).
        fractals: a ``FractalSet`` or a folder of fractal images (default:
            the set shipped with diffusemix); loaded in each process on first
            use, every fractal decoded and resized once and then kept.
        seed: the training seed.
        p: probability that an item is augmented rather than its original I.
    """

    def __init__(
        self,
        cache: Cache,
        recipe: Recipe,
        fractals: "FractalSet | str | os.PathLike[str] | None",
        *,
        seed: int,
        p: float,
    ) -> None:
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= float(p) <= 1.0:
            raise DiffuseMixError(f"p (the probability that an item is augmented) must be in [0, 1]; got {p!r}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise DiffuseMixError(f"seed must be an integer >= 0; got {seed!r}")
        self.cache, self.recipe, self.seed, self.p = cache, recipe, int(seed), float(p)
        self._fractals_arg = fractals
        self._set: FractalSet | None = fractals if _is_fractal_set(fractals) else None  # type: ignore[assignment]
        self._names: tuple[str, ...] | None = self._set.names if self._set is not None else None
        self._memory: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()
        if self._set is None:
            self.fractal_set()  # fail early on a bad folder; names are needed for every draw

    # -- fractals, once per process ------------------------------------------

    def fractal_set(self) -> "FractalSet":
        with self._lock:
            if self._set is None:
                from ..fractals import FractalSet

                arg = self._fractals_arg
                if arg is None:
                    self._set = FractalSet.default()
                else:
                    self._set = FractalSet.from_folder(arg)  # type: ignore[arg-type]
                self._names = self._set.names
            return self._set

    @property
    def fractal_names(self) -> tuple[str, ...]:
        if self._names is None:
            self.fractal_set()
        return self._names  # type: ignore[return-value]

    def fractal(self, name: str) -> np.ndarray:
        """F at the cache's size, decoded and resized once per process."""
        f = self._memory.get(name)
        if f is None:
            f = self.fractal_set().load(name, self.cache.size)
            self._memory[name] = f
        return f

    def __getstate__(self) -> dict[str, Any]:
        # A worker builds its own set and memory (from the folder) on first use.
        state = dict(self.__dict__)
        state["_memory"] = {}
        state["_lock"] = None
        if not _is_fractal_set(self._fractals_arg):
            state["_set"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    # -- one sample ------------------------------------------------------------

    def draw(self, entry: CacheEntry, epoch: int) -> MixDraw:
        return draw_mix(
            self.recipe, entry.record, self.fractal_names, seed=self.seed, epoch=epoch, key=entry.key, p=self.p
        )

    def input(self, entry: CacheEntry) -> np.ndarray:
        return read_rgb(entry.input_path, self.cache.size)

    def generated(self, entry: CacheEntry) -> np.ndarray:
        return read_rgb(entry.generated_path, self.cache.size)

    def mix(self, draw: MixDraw, image: np.ndarray, generated: np.ndarray) -> np.ndarray:
        """A for a drawn record, through ``engine.apply_record``."""
        return apply_record(draw.record, image, generated, self.fractal(draw.record.fractal)).augmented

    def item(
        self, entry: CacheEntry, epoch: int, image: np.ndarray | None = None, generated: np.ndarray | None = None
    ) -> np.ndarray:
        """This epoch's image for one cached sample: A with probability p, else I."""
        d = self.draw(entry, epoch)
        img = self.input(entry) if image is None else image
        if not d.augmented:
            return img
        gen = self.generated(entry) if generated is None else generated
        return self.mix(d, img, gen)


def _is_fractal_set(obj: object) -> bool:
    return hasattr(obj, "names") and hasattr(obj, "load")
