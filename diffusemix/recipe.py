"""The recipe (settings of the method), its presets, and the per-sample draw.

Draw first, apply second: :func:`draw` turns a recipe, an image's key and the
fractal names into :class:`SampleRecord` s that hold every random choice
(prompt, layout, fractal, λ, editor seed). Applying a record is
deterministic (``engine.apply_record``), so any output can be logged,
replayed and explained.

A record depends only on (master seed, image key, prompt, copy index) and
the recipe's choice lists, never on the order in which images are visited,
so shards, resumed runs and single-image runs all draw the same records.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from .errors import PromptFileError
from .functional import ARITHMETICS, LAYOUTS, MASK_KINDS
from .images import MAX_SIZE, RESIZE_MODES
from .prompts import PAPER_PROMPTS, QUICK_PROMPTS, check_prompts

__all__ = [
    "Recipe",
    "SampleRecord",
    "PRESETS",
    "get_preset",
    "draw",
    "draw_prompts",
    "RESIZE_MODES",
]

_MAX_SEED = 2**63 - 1


def _err(field_name: str, value: Any, what: str) -> ValueError:
    return ValueError(f"Recipe.{field_name} {what}; got {value!r}")


def _number(value: Any) -> float:
    """``float(value)`` for real numbers only (not strings, bools or None)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"not a number: {value!r}")
    return float(value)


@dataclass(frozen=True)
class Recipe:
    """Everything that decides what DiffuseMix makes from an image.

    Command-line flags of ``python -m diffusemix export`` map one-to-one onto
    these fields. The defaults are the ``paper`` preset.
    """

    # Output side S in pixels: I, Î, M, H, F and A are all S x S.
    size: int = 256
    # How I is brought to S x S: "resize" (plain, aspect not kept: the paper)
    # or "center-crop" (short side to S, then the centre).
    resize: str = "resize"
    # Filter-like prompts (the authors' nine, as in prompts.yaml's default set).
    prompts: tuple[str, ...] = PAPER_PROMPTS
    # "all": every prompt for every image (the authors' code; the dataset grows
    # x len(prompts)); or k: k distinct prompts drawn per image from the seed
    # (the paper's text draws one: k = 1 gives a dataset the size of the input).
    prompts_per_image: int | str = "all"
    # Mask layouts drawn from, named by where I is kept. The reference code
    # draws "horizontal" (= left) or "vertical" (= top).
    layouts: tuple[str, ...] = ("left", "top")
    # "linspace" (the authors' ramp: np.linspace(0, 1, seam) across the seam),
    # "ramp" (a centred ramp: seam pixels all mixed, mirror-exact at odd sizes)
    # or "binary" (the paper's equation: a hard edge).
    mask: str = "linspace"
    # Ramp width in pixels at the output size (20 px at 256 in the reference).
    seam: int = 20
    # How H and A are computed from uint8 images: "reference" (the authors'
    # code bit for bit: truncation, A from the uint8 H) or "rounded" (float32,
    # A from the unrounded H, rounded to the nearest grey level).
    arithmetic: str = "reference"
    # Fractal blend weight λ: a number, or (low, high) to draw uniformly from.
    lam: float | tuple[float, float] = 0.2
    # Generated images per (image, prompt).
    images_per_prompt: int = 1
    # Master seed: every random choice of every sample derives from it.
    seed: int = 0

    def __post_init__(self) -> None:
        # Normalise sequences to tuples so that the record stays hashable.
        if isinstance(self.prompts, str):
            raise _err("prompts", self.prompts, "must be a list of prompts, not one string")
        object.__setattr__(self, "prompts", tuple(self.prompts))
        if isinstance(self.layouts, str):
            object.__setattr__(self, "layouts", tuple(s.strip() for s in self.layouts.split(",") if s.strip()))
        object.__setattr__(self, "layouts", tuple(self.layouts))
        if isinstance(self.lam, (list, tuple)):
            try:
                object.__setattr__(self, "lam", tuple(_number(v) for v in self.lam))
            except (TypeError, ValueError):
                raise _err("lam", self.lam, "must be a number in [0, 1] or a (low, high) pair") from None

        if not isinstance(self.size, (int, np.integer)) or isinstance(self.size, bool) or not 8 <= self.size <= MAX_SIZE:
            raise _err("size", self.size, f"must be an integer number of pixels in [8, {MAX_SIZE}]")
        if self.resize not in RESIZE_MODES:
            raise _err("resize", self.resize, f"must be one of {', '.join(RESIZE_MODES)}")
        if not self.prompts:
            raise _err("prompts", self.prompts, "must hold at least one prompt")
        try:  # the same check as the command line's --prompts and the app's prompt boxes
            object.__setattr__(self, "prompts", check_prompts(self.prompts))
        except PromptFileError as e:
            raise ValueError(f"Recipe.prompts: {e}") from None
        if not self.layouts:
            raise _err("layouts", self.layouts, f"must hold at least one of {', '.join(LAYOUTS)}")
        for lay in self.layouts:
            if lay not in LAYOUTS:
                raise _err("layouts", lay, f"must be made of {', '.join(LAYOUTS)}")
        if len(set(self.layouts)) != len(self.layouts):
            raise _err("layouts", self.layouts, "must not repeat a layout")
        if self.mask not in MASK_KINDS:
            raise _err("mask", self.mask, f"must be one of {', '.join(MASK_KINDS)}")
        if self.arithmetic not in ARITHMETICS:
            raise _err("arithmetic", self.arithmetic, f"must be one of {', '.join(ARITHMETICS)}")
        ppi = self.prompts_per_image
        if ppi != "all":
            if not isinstance(ppi, (int, np.integer)) or isinstance(ppi, bool) or not 1 <= ppi <= len(self.prompts):
                raise _err(
                    "prompts_per_image",
                    ppi,
                    f'must be "all" or a whole number from 1 to the number of prompts ({len(self.prompts)})',
                )
            object.__setattr__(self, "prompts_per_image", int(ppi))
        if not isinstance(self.seam, (int, np.integer)) or isinstance(self.seam, bool) or self.seam < 0:
            raise _err("seam", self.seam, "must be a whole number of pixels >= 0")
        if self.seam > self.size:
            raise _err("seam", self.seam, f"must not exceed the output size ({self.size} px)")
        if isinstance(self.lam, tuple):
            if len(self.lam) != 2:
                raise _err("lam", self.lam, "must be a number or a (low, high) pair")
            lo, hi = self.lam
            if not (0.0 <= lo <= hi <= 1.0):
                raise _err("lam", self.lam, "range must satisfy 0 <= low <= high <= 1")
        else:
            try:
                lam = float(self.lam)
            except (TypeError, ValueError):
                raise _err("lam", self.lam, "must be a number in [0, 1] or a (low, high) pair") from None
            if not 0.0 <= lam <= 1.0:
                raise _err("lam", self.lam, "must be in [0, 1]")
            object.__setattr__(self, "lam", lam)
        if (
            not isinstance(self.images_per_prompt, (int, np.integer))
            or isinstance(self.images_per_prompt, bool)
            or not 1 <= self.images_per_prompt <= 1000
        ):
            raise _err("images_per_prompt", self.images_per_prompt, "must be an integer in [1, 1000]")
        if not isinstance(self.seed, (int, np.integer)) or isinstance(self.seed, bool) or not 0 <= self.seed <= _MAX_SEED:
            raise _err("seed", self.seed, f"must be an integer in [0, {_MAX_SEED}]")

    def replace(self, **changes: Any) -> "Recipe":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    @property
    def prompts_each(self) -> int:
        """How many prompts each image gets (all of them, or ``prompts_per_image``)."""
        return len(self.prompts) if self.prompts_per_image == "all" else int(self.prompts_per_image)

    @property
    def samples_per_image(self) -> int:
        """How many augmented images one input image yields."""
        return self.prompts_each * self.images_per_prompt

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["prompts"] = list(self.prompts)
        d["layouts"] = list(self.layouts)
        if isinstance(self.lam, tuple):
            d["lam"] = list(self.lam)
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Recipe":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown recipe field(s): {', '.join(unknown)}; known: {', '.join(sorted(names))}")
        return cls(**dict(data))


PRESETS: dict[str, Recipe] = {
    # The authors' code (METHOD.md): 256 px plain resize, their nine prompts,
    # every prompt for every image, their two layouts with their 20 px ramp,
    # λ = 0.2, their arithmetic: H and A equal theirs bit for bit.
    "paper": Recipe(),
    # The paper's equation literally: a hard binary mask, all four layouts,
    # rounded arithmetic.
    "paper-binary": Recipe(
        mask="binary", seam=0, layouts=("left", "right", "top", "bottom"), arithmetic="rounded"
    ),
    # A quick start: two prompts, as the authors advise (otherwise "paper").
    "quick": Recipe(prompts=QUICK_PROMPTS),
}


def get_preset(name: str, **overrides: Any) -> Recipe:
    """A preset by name, with some fields overridden."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name].replace(**overrides) if overrides else PRESETS[name]


@dataclass(frozen=True)
class SampleRecord:
    """Every random choice behind one augmented image, enough to replay it.

    Attributes:
        source: the image's key (its path relative to the dataset, or a name).
        prompt: the prompt p_j.
        copy: index of this image among ``images_per_prompt`` for the prompt.
        layout: where I is kept (left/right/top/bottom).
        mask: mask kind (binary/ramp).
        seam: ramp width in pixels.
        lam: the fractal blend weight λ used.
        fractal: the fractal's name within its set (its relative path).
        seed: the editor's noise seed (after any degenerate-output retry).
        size: output side in pixels.
        attempts: generations made for this sample (1 unless retried).
        arithmetic: how H and A were computed (``reference`` or ``rounded``;
            rows written before this field existed were ``rounded``).
        resize: how the source image became ``size`` x ``size``
            (``resize`` or ``center-crop``).
    """

    source: str
    prompt: str
    copy: int
    layout: str
    mask: str
    seam: int
    lam: float
    fractal: str
    seed: int
    size: int
    attempts: int = 1
    arithmetic: str = "rounded"
    resize: str = "resize"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "SampleRecord":
        names = [f.name for f in dataclasses.fields(cls)]
        return cls(**{k: data[k] for k in names if k in data})


def _key_words(text: str) -> tuple[int, ...]:
    """A stable (process- and platform-independent) hash of a string as spawn key words."""
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return tuple(int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4))


def draw_prompts(recipe: Recipe, source: str) -> tuple[str, ...]:
    """The prompts image ``source`` gets, in recipe order.

    All of them for ``prompts_per_image="all"``; otherwise k distinct prompts
    drawn without replacement from a generator seeded by (master seed,
    ``source``) alone, so the same seed gives the same draw whatever the
    order in which images are visited, sharded or resumed.
    """
    if recipe.prompts_per_image == "all":
        return recipe.prompts
    k = int(recipe.prompts_per_image)
    ss = np.random.SeedSequence(entropy=recipe.seed, spawn_key=(*_key_words(source), *_key_words("\0prompts")))
    picked = np.random.default_rng(ss).choice(len(recipe.prompts), size=k, replace=False)
    return tuple(recipe.prompts[i] for i in sorted(int(i) for i in picked))


def draw(recipe: Recipe, source: str, fractal_names: Sequence[str]) -> list[SampleRecord]:
    """Draw the records for one image: one per (prompt, copy), prompts in recipe order.

    Args:
        recipe: the settings.
        source: the image's key (e.g. its path relative to the dataset root).
        fractal_names: the names of the fractal set to draw from (in a fixed
            order, e.g. ``FractalSet.names``).

    Returns:
        ``recipe.samples_per_image`` records, for the prompts of
        :func:`draw_prompts`. The record for (source, prompt, copy) depends
        only on the master seed, those three, and the recipe's layouts, λ and
        the fractal names: drawing fewer prompts per image changes which
        samples exist, never what a sample is.
    """
    if not fractal_names:
        raise ValueError("fractal_names is empty: a fractal set with at least one image is needed")
    records = []
    for prompt in draw_prompts(recipe, source):
        for copy in range(recipe.images_per_prompt):
            ss = np.random.SeedSequence(
                entropy=recipe.seed,
                spawn_key=(*_key_words(source), *_key_words(prompt), copy),
            )
            rng = np.random.default_rng(ss)
            layout = str(recipe.layouts[rng.integers(len(recipe.layouts))])
            fractal = str(fractal_names[rng.integers(len(fractal_names))])
            if isinstance(recipe.lam, tuple):
                lam = float(rng.uniform(recipe.lam[0], recipe.lam[1]))
            else:
                rng.uniform()  # keep the stream the same shape for fixed and ranged λ
                lam = float(recipe.lam)
            seed = int(rng.integers(0, 2**32))
            records.append(
                SampleRecord(
                    source=source,
                    prompt=prompt,
                    copy=copy,
                    layout=layout,
                    mask=recipe.mask,
                    seam=int(recipe.seam) if recipe.mask != "binary" else 0,
                    lam=round(lam, 6),
                    fractal=fractal,
                    seed=seed,
                    size=recipe.size,
                    arithmetic=recipe.arithmetic,
                    resize=recipe.resize,
                )
            )
    return records
