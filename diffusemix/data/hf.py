"""🤗 datasets: fresh A from a cache loaded with ``load_dataset``.

::

    from datasets import load_dataset
    from diffusemix.data import DiffuseMixTransform

    ds = load_dataset("cache/train", split="train")   # reads its card (or "imagefolder", data_dir=...)
    mix = DiffuseMixTransform("cache/train", p=1.0)
    ds.set_transform(mix)        # rows → {"image": [A, ...], "label": [class index, ...]}
    for epoch in range(epochs):
        mix.set_epoch(epoch)
        ...

A cache made with ``--task detect|segment`` also gives each row's ``objects`` (🤗 form: ``bbox`` [x, y, w, h],
``category``, ``area``, ``id``, ``iscrowd``; they hold for every A of the sample), or for class-id masks its
``mask`` (a PIL image of class ids).

A cache's rows carry Î as ``image`` and I as ``input`` (its manifest's
``file_name`` and ``input_file_name``), decoded by ``datasets``. Rows of an
export made with ``--save-stages`` carry the fixed A as ``image``; I and Î are
then read from the export's ``stages/`` folder (pass ``columns=["source",
"prompt", "copy"]`` to ``set_transform`` so that A is not decoded
for nothing).

The draw of a row is keyed by (seed, epoch, source, prompt, copy), exactly as
in :class:`~diffusemix.data.DiffuseMixDataset`, so the two give the same A for
the same sample and epoch.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np

from ..recipe import Recipe
from .cache import Cache, CacheError, read_cache
from .mixing import Remixer, SharedEpoch, recipe_for_cache

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

    from ..fractals import FractalSet

__all__ = ["DiffuseMixTransform"]

_KEY_COLUMNS = ("source", "prompt", "copy")


def _as_rgb(value: Any, size: int, what: str) -> np.ndarray:
    from PIL import Image

    if isinstance(value, Image.Image):
        arr = np.asarray(value if value.mode == "RGB" else value.convert("RGB"))
    else:
        arr = np.asarray(value)
    if arr.dtype != np.uint8 or arr.shape != (size, size, 3):
        raise CacheError(f"the {what} column holds a {arr.dtype} {arr.shape} image, not an RGB {size}x{size} one")
    return arr


class DiffuseMixTransform:
    """A callable for ``Dataset.set_transform`` / ``with_transform``: rows → (A, label).

    Args:
        cache: the folder given to ``load_dataset("imagefolder", data_dir=...)``
            (or a ``Cache``); its manifest maps rows to records.
        recipe, fractals, seed, p, classes: as for ``DiffuseMixDataset``.
        transform: any callable on a PIL image (e.g. ``to_tensor``); default: PIL.
        target_transform: any callable on the class index.
        epoch: the first epoch (see :meth:`set_epoch`).
    """

    def __init__(
        self,
        cache: "str | os.PathLike[str] | Cache",
        *,
        recipe: Recipe | None = None,
        fractals: "FractalSet | str | os.PathLike[str] | None" = None,
        seed: int | None = None,
        p: float = 1.0,
        transform: Callable[["Image.Image"], Any] | None = None,
        target_transform: Callable[[int], Any] | None = None,
        classes: Sequence[str] | None = None,
        epoch: int = 0,
    ) -> None:
        if not isinstance(cache, Cache) or classes is not None:
            cache = read_cache(cache.root if isinstance(cache, Cache) else cache, classes=classes)
        self.cache = cache
        recipe = recipe_for_cache(cache, recipe)
        self.remixer = Remixer(cache, recipe, fractals, seed=recipe.seed if seed is None else seed, p=p)
        self.transform, self.target_transform = transform, target_transform
        self.classes = list(cache.classes)
        self.class_to_idx = cache.class_to_idx
        self._lookup = cache.lookup()
        self._targets = None
        if cache.annotated:  # A's objects (or class-id mask) ride along: the same every epoch
            from .targets import CacheTargets

            self._targets = CacheTargets(cache)
        self._epoch = SharedEpoch(epoch)
        if cache.from_preview:
            import warnings

            from .dataset import PREVIEW_WARNING

            warnings.warn(PREVIEW_WARNING, UserWarning, stacklevel=2)

    @property
    def epoch(self) -> int:
        return self._epoch.get()

    def set_epoch(self, epoch: int) -> None:
        """Change every draw; reaches DataLoader workers too."""
        self._epoch.set(epoch)

    def __call__(self, batch: Mapping[str, Sequence[Any]]) -> dict[str, list[Any]]:
        from PIL import Image

        # 1. check the columns
        absent = [c for c in _KEY_COLUMNS if c not in batch]
        if absent:
            raise CacheError(
                f"rows lack the column(s) {', '.join(absent)}: load the cache's folder with "
                "load_dataset('imagefolder', data_dir=CACHE) and keep its columns "
                f"(set_transform(..., columns=[...]) must include {', '.join(_KEY_COLUMNS)})"
            )
        use_columns = self.cache.layout == "cache" and "image" in batch and "input" in batch
        epoch, size = self.epoch, self.cache.size
        images: list[Any] = []
        labels: list[Any] = []
        objects: list[Any] = []
        # 2. mix each row
        for i in range(len(batch["source"])):
            copy = batch["copy"][i]
            if isinstance(copy, bool) or not isinstance(copy, (int, np.integer)):
                raise CacheError(f"row {i} of this batch has copy {copy!r}, not an integer: the dataset's rows"
                                 f" are not those of the cache {self.cache.root}; load it from that folder")
            key = (str(batch["source"][i]), str(batch["prompt"][i]), int(copy))
            entry = self._lookup.get(key)
            if entry is None:
                raise CacheError(
                    f"row {key} is not in the cache {self.cache.root}: give DiffuseMixTransform the folder "
                    "the dataset was loaded from"
                )
            img = gen = None
            if use_columns:
                img = _as_rgb(batch["input"][i], size, "input")
                gen = _as_rgb(batch["image"][i], size, "image")
            a = Image.fromarray(self.remixer.item(entry, epoch, img, gen))
            label: Any = self.class_to_idx[entry.label]  # the row's own label column may be a name or an index
            images.append(self.transform(a) if self.transform is not None else a)
            labels.append(self.target_transform(label) if self.target_transform is not None else label)
            if self._targets is not None:
                objects.append(self._targets.objects(entry))
        out = {"image": images, "label": labels}
        if self._targets is not None:  # an annotated cache: 🤗 objects (bbox [x, y, w, h], category, ...), or the mask
            out["mask" if self._targets.semantic else "objects"] = objects
        return out

    def __repr__(self) -> str:
        note = "  # preview editor: NOT DiffuseMix data" if self.cache.from_preview else ""
        return (
            f"DiffuseMixTransform({str(self.cache.root)!r}, rows={len(self.cache.entries)}, "
            f"classes={len(self.classes)}, prompts={len(self.cache.prompts)}, p={self.remixer.p:g}, "
            f"seed={self.remixer.seed}, epoch={self.epoch}){note}"
        )
