"""``DiffuseMixDataset``: a torch ``Dataset`` that re-mixes cached Î every epoch.

The costly part of DiffuseMix is Î; the mask, the fractal and λ cost about a
millisecond. So the exporter keeps I and Î (a cache), and this dataset draws
a new layout, fractal and λ for every (seed, epoch, sample) and mixes A
through ``engine.apply_record``, the exporter's own mixing path::

    ds = DiffuseMixDataset("cache/train", p=1.0, include_originals=True, transform=to_tensor)
    for epoch in range(epochs):
        ds.set_epoch(epoch)               # and sampler.set_epoch(epoch) under DDP
        for a, y in DataLoader(ds, batch_size=64, shuffle=True, num_workers=4):
            ...

Items, in index order: first the *slots* of each image (``max_per_image``
of its cached Î, all of them by default; which ones is drawn per epoch when
capped), then, with ``include_originals``, each image's I once (the paper's
union of real and augmented images). A slot is A with probability ``p``,
else the original I. Every draw depends only on (seed, epoch, sample), never
on a worker, a rank or the order of reads.
"""

from __future__ import annotations

import bisect
import os
import warnings
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np
import torch.utils.data

from ..errors import DiffuseMixError
from ..recipe import Recipe
from .cache import Cache, CacheEntry, CacheError, read_cache
from .targets import CacheTargets
from .draws import MixDraw, pick_slots
from .mixing import Remixer, SharedEpoch, recipe_for_cache

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

    from ..fractals import FractalSet

__all__ = ["DiffuseMixDataset", "PREVIEW_WARNING"]

#: Said (as a UserWarning, in ``repr`` and in ``summary``) when Î came from the preview editor.
PREVIEW_WARNING = (
    "Î in this cache came from the preview editor (a weight-free stand-in for trying the tools), "
    "not from a diffusion model: this is not DiffuseMix data. Make the cache with "
    "--editor instruct-pix2pix (on a GPU) before training for real."
)


def _opt_int(name: str, value: Any, low: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise DiffuseMixError(f"{name} must be None or an integer >= {low}; got {value!r}")
    return int(value)


def _low_scored(cache: Cache, min_score: float | None) -> frozenset[str]:
    """Keys of the Î whose manifest ``score`` is below ``min_score``.

    Raises:
        ValueError: ``min_score`` is not a number in [-1, 1].
        CacheError: some rows have no score (the export was made without ``--score``).
    """
    if min_score is None:
        return frozenset()
    if isinstance(min_score, bool) or not isinstance(min_score, (int, float)) or not -1 <= min_score <= 1:
        raise DiffuseMixError(f"min_score must be a number in [-1, 1]; got {min_score!r}")
    unscored = [e for e in cache.entries if not isinstance(e.row.get("score"), (int, float))]
    if unscored:
        raise CacheError(
            f"min_score needs scores, but {len(unscored)} of {len(cache.entries)} rows of {cache.root} have none"
            f" (e.g. {unscored[0].row.get('file_name')}): export with --score dino|clip|clip-label to score each Î"
        )
    return frozenset(e.key for e in cache.entries if float(e.row["score"]) < min_score)


class DiffuseMixDataset(torch.utils.data.Dataset):
    """(A, label) pairs freshly mixed from a cache of Î, every epoch anew.

    Args:
        cache: a cache folder (``python -m diffusemix export ... --cache``),
            an export made with ``--save-stages``, or a ``Cache``.
        recipe: mixing settings (layouts, mask, seam, λ as a number or a
            (low, high) range). Default: those the cache was exported with.
        fractals: a ``FractalSet`` or a folder of fractal images (default:
            the shipped set). Kept in memory once per worker, resized once.
        seed: the training seed (default: the recipe's seed).
        p: probability that an item is augmented A rather than its original I.
        include_originals: also one item per real image (its I), after the slots.
        prompts: the cached prompts to use (default: all).
        max_per_image: at most this many Î slots per image per epoch (drawn
            anew each epoch when an image has more); default: all.
        transform: any callable on a PIL image (torchvision-style), e.g.
            :func:`diffusemix.data.to_tensor`. Default: the PIL image.
        target_transform: any callable on the class index.
        classes: the class names you expect (e.g. your evaluation set's);
            a cache with other classes is refused.
        epoch: the first epoch (see :meth:`set_epoch`).
        target_format: for a cache made with ``--task detect|segment`` the item is (A, target):
            ``"torchvision"`` (default) torchvision's detection dict (``boxes`` XYXY, ``labels`` = category
            index + 1, ``area``, ``iscrowd``, and ``masks`` for COCO / YOLO segmentation) or, for class-id
            masks, an int64 (H, W) tensor; ``"detr"`` 🤗 DETR / YOLOS labels (:mod:`.targets`). A's objects
            are the cached sample's whatever the epoch draws (the mixing keeps geometry). Batch them with
            ``collate_fn=lambda b: tuple(zip(*b))``, as torchvision's detection references do.
        min_score: skip every Î whose manifest score (``--score`` at export:
            a DINOv2/CLIP cosine of I and Î, or CLIP's probability of the
            true class) is below this; ``None`` uses every Î. A cache made
            without ``--score`` has no scores and is refused.

    Attributes:
        classes: class names in ImageFolder's order (sorted).
        class_to_idx: name → index.
        cache: the :class:`~diffusemix.data.cache.Cache` read.

    Raises:
        CacheError: not a cache (which files are missing), classes that do
            not match, a prompt that is not cached.
        ValueError: a bad p, cap, seed, or a recipe of another size.
    """

    def __init__(
        self,
        cache: "str | os.PathLike[str] | Cache",
        *,
        recipe: Recipe | None = None,
        fractals: "FractalSet | str | os.PathLike[str] | None" = None,
        seed: int | None = None,
        p: float = 1.0,
        include_originals: bool = False,
        prompts: Sequence[str] | None = None,
        max_per_image: int | None = None,
        transform: Callable[["Image.Image"], Any] | None = None,
        target_transform: Callable[[int], Any] | None = None,
        classes: Sequence[str] | None = None,
        epoch: int = 0,
        min_score: float | None = None,
        target_format: str = "torchvision",
    ) -> None:
        # 1. the cache and the settings
        if isinstance(cache, Cache):
            if classes is not None:
                cache = read_cache(cache.root, classes=classes)
        else:
            cache = read_cache(cache, classes=classes)
        self.cache = cache
        #: an annotated cache's targets (None: a classification cache, items are (A, class index))
        self.targets = CacheTargets(cache, target_format=target_format) if cache.annotated else None
        recipe = recipe_for_cache(cache, recipe)
        if not isinstance(include_originals, bool):
            raise DiffuseMixError(f"include_originals must be True or False; got {include_originals!r}")
        self.include_originals = include_originals
        self.max_per_image = _opt_int("max_per_image", max_per_image, 1)
        self.transform, self.target_transform = transform, target_transform
        self.remixer = Remixer(cache, recipe, fractals, seed=recipe.seed if seed is None else seed, p=p)
        self._epoch = SharedEpoch(epoch)
        self.classes: list[str] = list(cache.classes)
        self.class_to_idx: dict[str, int] = cache.class_to_idx

        # 2. the prompts used
        if prompts is None:
            self.prompts: tuple[str, ...] = cache.prompts
        else:
            if isinstance(prompts, str):
                raise DiffuseMixError("prompts must be a list of prompts, not one string")
            unknown = [q for q in prompts if q not in cache.prompts]
            if unknown or not prompts:
                raise DiffuseMixError(
                    f"prompt(s) {', '.join(map(repr, unknown)) or '(none given)'} not in the cache; "
                    f"cached prompts: {', '.join(map(repr, cache.prompts))}"
                )
            self.prompts = tuple(q for q in cache.prompts if q in set(prompts))
        used = set(self.prompts)

        # 3. images and their Î (in cache order, those scored below min_score left out), slots per image
        self.min_score = min_score
        low = _low_scored(cache, min_score)
        self.skipped_low_score = sum(1 for e in cache.entries if e.prompt in used and e.key in low)
        self._images = self._group(cache, used, low)
        cap = self.max_per_image
        self._slots = [len(es) if cap is None else min(cap, len(es)) for _, _, es in self._images]
        self._starts = np.concatenate([[0], np.cumsum(self._slots)]).astype(np.int64).tolist()
        self.n_slots = int(self._starts[-1])

        # 4. say so when Î is not DiffuseMix data
        if cache.from_preview:
            warnings.warn(PREVIEW_WARNING, UserWarning, stacklevel=2)

    @staticmethod
    def _group(
        cache: Cache, used: set[str], low: frozenset[str] = frozenset()
    ) -> list[tuple[str, CacheEntry, list[CacheEntry]]]:
        """(source, an entry holding its I, its used Î entries) per image, in cache order."""
        first: dict[str, CacheEntry] = {}
        kept: dict[str, list[CacheEntry]] = {}
        for e in cache.entries:
            first.setdefault(e.source, e)
            lst = kept.setdefault(e.source, [])
            if e.prompt in used and e.key not in low:
                lst.append(e)
        return [(src, first[src], kept[src]) for src in first]

    # -- epochs ------------------------------------------------------------------

    @property
    def epoch(self) -> int:
        return self._epoch.get()

    def set_epoch(self, epoch: int) -> None:
        """Change every draw (call it each epoch, as ``DistributedSampler.set_epoch``).

        Reaches DataLoader workers too, persistent ones included.
        """
        self._epoch.set(epoch)

    # -- items -------------------------------------------------------------------

    @property
    def p(self) -> float:
        return self.remixer.p

    @property
    def seed(self) -> int:
        return self.remixer.seed

    @property
    def recipe(self) -> Recipe:
        return self.remixer.recipe

    def __len__(self) -> int:
        return self.n_slots + (len(self._images) if self.include_originals else 0)

    def locate(self, index: int, epoch: int | None = None) -> tuple[CacheEntry, MixDraw | None]:
        """The cached sample behind ``index`` and its draw (None for an original).

        For an original the entry is one of the image's (its I is what is used).
        """
        n = len(self)
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"index must be an integer; got {type(index).__name__}")
        if not 0 <= index < n:
            raise IndexError(f"index {index} out of range for a dataset of {n} items")
        ep = self.epoch if epoch is None else int(epoch)
        if index >= self.n_slots:
            return self._images[int(index) - self.n_slots][1], None
        i = bisect.bisect_right(self._starts, int(index)) - 1
        src, _, entries = self._images[i]
        picked = pick_slots(len(entries), self._slots[i], seed=self.seed, epoch=ep, key=src)
        entry = entries[picked[int(index) - self._starts[i]]]
        return entry, self.remixer.draw(entry, ep)

    def _render(self, entry: CacheEntry, draw: MixDraw | None) -> np.ndarray:
        img = self.remixer.input(entry)
        if draw is None or not draw.augmented:
            return img
        return self.remixer.mix(draw, img, self.remixer.generated(entry))

    def image(self, index: int, epoch: int | None = None) -> np.ndarray:
        """Item ``index``'s image as uint8 (S, S, 3), before ``transform``."""
        return self._render(*self.locate(index, epoch))

    def mix_with(self, entry: CacheEntry, record: Any) -> np.ndarray:
        """A of a cached sample under a given record (e.g. the exporter's ``entry.record``)."""
        img, gen = self.remixer.input(entry), self.remixer.generated(entry)
        return self.remixer.mix(MixDraw(True, record), img, gen)

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        from PIL import Image

        entry, draw = self.locate(index)
        img = Image.fromarray(self._render(entry, draw))
        label: Any = self.class_to_idx[entry.label] if self.targets is None else self.targets.target(entry)
        if self.transform is not None:
            img = self.transform(img)
        if self.target_transform is not None:
            label = self.target_transform(label)
        return img, label

    # -- telling the user what they train on -----------------------------------

    def _facts(self) -> dict[str, str]:
        r = self.recipe
        n_img = len(self._images)
        per = [len(es) for _, _, es in self._images]
        lam = f"{r.lam[0]}..{r.lam[1]}" if isinstance(r.lam, tuple) else f"{r.lam}"
        mask = f"{r.mask} seam {r.seam} px" if r.mask != "binary" else "binary"
        mask += f", {r.arithmetic} arithmetic"
        editors = ", ".join(self.cache.editors)
        return {
            "cache": f"{self.cache.root} ({self.cache.layout}, {self.cache.size} px)",
            "images": f"{n_img} in {len(self.classes)} classes",
            "prompts": f"{len(self.prompts)} of {len(self.cache.prompts)} cached ({', '.join(self.prompts)})",
            "Î per image": f"{min(per) if per else 0}..{max(per) if per else 0} cached, "
            f"{'all' if self.max_per_image is None else f'at most {self.max_per_image}'} used per epoch",
            "p": f"{self.p:g} (an item is A with probability p, else its original I)",
            **(
                {"min score": f"{self.min_score:g}: {self.skipped_low_score} Î scored below it left out"}
                if self.min_score is not None
                else {}
            ),
            "epoch length": f"{len(self)} = {self.n_slots} slots"
            + (f" + {n_img} originals" if self.include_originals else " (originals not included)"),
            "mixing": f"layouts {', '.join(r.layouts)}, {mask}, λ {lam}, "
            f"{len(self.remixer.fractal_names)} fractals",
            "editor": editors + (" (NOT DiffuseMix data: see the warning)" if self.cache.from_preview else ""),
            **({"targets": f"{self.targets.task} ({self.targets.format}, {len(self.targets.categories)} categories),"
                f" {self.targets.target_format} format"} if self.targets is not None else {}),
            "seed, epoch": f"{self.seed}, {self.epoch}",
        }

    def summary(self) -> str:
        """What training sees: images, classes, prompts, Î per image, p, epoch length, editor."""
        facts = self._facts()
        lines = ["DiffuseMixDataset"] + [f"  {k + ':':<14}{v}" for k, v in facts.items()]
        cls = ", ".join(self.classes[:10]) + (", ..." if len(self.classes) > 10 else "")
        lines.insert(3, f"  {'classes:':<14}{cls}")
        if self.cache.from_preview:
            lines.append(f"  WARNING: {PREVIEW_WARNING}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        r = (
            f"DiffuseMixDataset({str(self.cache.root)!r}, images={len(self._images)}, "
            f"classes={len(self.classes)}, prompts={len(self.prompts)}, "
            f"per_image={'all' if self.max_per_image is None else self.max_per_image}, p={self.p:g}, "
            f"include_originals={self.include_originals}, len={len(self)}, editor={'+'.join(self.cache.editors)!r}"
            f", seed={self.seed}, epoch={self.epoch})"
        )
        if self.cache.from_preview:
            r += "  # preview editor: NOT DiffuseMix data"
        return r
