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

from .errors import DiffuseMixError, PromptFileError, SettingError
from .functional import ARITHMETICS, LAYOUTS, MASK_KINDS
from .images import RESIZE_MODES
from .limits import MAX_SEED, MAX_SIZE
from .prompts import PAPER_PROMPTS, QUICK_PROMPTS, check_prompts, parse_prompt_list
from .schema import NO_VALUE, check_fields, fail, is_number, register, setting
from . import schema

__all__ = [
    "Recipe",
    "SampleRecord",
    "PRESETS",
    "get_preset",
    "draw",
    "draw_prompts",
    "RESIZE_MODES",
    "MAX_SEED",
    "parse_lam",
    "parse_layouts",
    "parse_prompts_per_image",
]


def parse_lam(text: str) -> float | tuple[float, float]:
    """``"0.2"`` or a range ``"0.1:0.3"`` (λ drawn uniformly per sample)."""
    parts = str(text).split(":")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) == 1:
        return values[0]
    if len(values) == 2:
        return (values[0], values[1])
    raise SettingError("must be a number such as 0.2 or a range such as 0.1:0.3", owner="Recipe", field="lam",
                       value=text)


def parse_layouts(text: str) -> tuple[str, ...]:
    """``"left,top"`` → ``("left", "top")``."""
    return tuple(p.strip() for p in str(text).split(",") if p.strip())


def parse_prompts_per_image(text: str) -> int | str:
    """``"all"`` or a whole number ``"K"``."""
    text = str(text).strip()
    return int(text) if text.isdigit() else text


def _number(value: Any) -> float:
    """``float(value)`` for real numbers only (not strings, bools or None)."""
    if not is_number(value):
        raise TypeError(f"not a number: {value!r}")
    return float(value)


@register
@dataclass(frozen=True)
class Recipe:
    """Everything that decides what DiffuseMix makes from an image.

    Each field is one setting, declared once: the command line's flags, the
    app's controls, the rows and ``run.json`` are made from these fields
    (:mod:`diffusemix.schema`). The defaults are the ``paper`` preset.
    """

    size: int = setting(
        256, kind="int", low=8, high=MAX_SIZE, metavar="S", stage="generation", label="Output size S (px)",
        help="output side S in pixels: I, Î, M, H, F and A are all S x S (the paper: 256)",
    )
    resize: str = setting(
        "resize", choices=RESIZE_MODES, stage="generation", label="Resize",
        help="how inputs become S x S: plain resize, aspect not kept (the paper), or center-crop (short side to S,"
        " then the centre)",
    )
    prompts: tuple[str, ...] = setting(
        PAPER_PROMPTS, parse=parse_prompt_list, metavar='"A,B"', stage="generation", label="Prompts",
        help='filter-like prompts, comma-separated on the command line, e.g. "snowy,sunset" (the paper: the'
        " authors' nine)",
    )
    prompts_per_image: int | str = setting(
        "all", parse=parse_prompts_per_image, metavar="all|K", stage="generation", label="Prompts per image",
        help="all: every prompt for every image (the authors' code; the dataset grows x prompts); K: K distinct"
        " prompts drawn per image from the seed (1: the paper's text, a dataset the size of the input)",
    )
    layouts: tuple[str, ...] = setting(
        ("left", "top"), parse=parse_layouts, metavar="L1,L2", stage="mixing", label="Mask layouts (where I is kept)",
        help=f"mask layouts drawn from, named by where I is kept: {', '.join(LAYOUTS)} (the reference code draws"
        " horizontal = left or vertical = top)",
    )
    mask: str = setting(
        "linspace", choices=MASK_KINDS, stage="mixing", label="Mask kind",
        help="linspace: the authors' ramp, np.linspace(0, 1, seam) across the seam; ramp: a centred ramp, seam pixels"
        " all mixed, mirror-exact at odd sizes; binary: the paper's equation, a hard edge",
    )
    seam: int = setting(
        20, kind="int", low=0, metavar="PX", stage="mixing", label="Seam width (px, linspace and ramp)",
        help="ramp width in pixels at the output size (20 px at 256 in the reference code; 0 for binary)",
    )
    arithmetic: str = setting(
        "reference", choices=ARITHMETICS, stage="mixing", label="Arithmetic",
        help="how H and A are computed from uint8 images: reference (the authors' code bit for bit: truncation,"
        " A from the uint8 H) or rounded (float32, A from the unrounded H, rounded to the nearest grey level)",
    )
    lam: float | tuple[float, float] = setting(
        0.2, parse=parse_lam, metavar="λ", stage="mixing", label="λ (fractal weight)",
        help="fractal blend weight λ in A = (1 - λ) H + λ F: a value (0.2) or a range low:high drawn per sample",
    )
    images_per_prompt: int = setting(
        1, kind="int", low=1, high=1000, metavar="N", stage="generation", label="Images per prompt",
        help="generated images per (image, prompt), each with its own seed",
    )
    seed: int = setting(
        0, kind="int", low=0, high=MAX_SEED, metavar="N", stage="generation", label="Seed",
        help="master seed: every random choice of every sample derives from it",
    )

    def __post_init__(self) -> None:
        # 1. normalise sequences to tuples (the recipe stays hashable)
        if isinstance(self.prompts, str):
            raise fail(self, "prompts", "must be a list of prompts, not one string")
        try:
            object.__setattr__(self, "prompts", tuple(self.prompts))
        except TypeError:
            raise fail(self, "prompts", "must be a list of prompts") from None
        if isinstance(self.layouts, str):
            object.__setattr__(self, "layouts", parse_layouts(self.layouts))
        try:
            object.__setattr__(self, "layouts", tuple(self.layouts))
        except TypeError:
            raise fail(self, "layouts", f"must be a list of {', '.join(LAYOUTS)}") from None
        if isinstance(self.lam, (list, tuple)):
            try:
                object.__setattr__(self, "lam", tuple(_number(v) for v in self.lam))
            except TypeError:
                raise fail(self, "lam", "must be a number in [0, 1] or a (low, high) pair") from None
        # 2. the fields' own checks (types, choices, ranges), then those across fields
        check_fields(self)
        if not self.prompts:
            raise fail(self, "prompts", "must hold at least one prompt")
        try:  # the same check as the command line's --prompts and the app's prompt boxes
            object.__setattr__(self, "prompts", check_prompts(self.prompts))
        except PromptFileError as e:
            raise fail(self, "prompts", f": {e}", value=NO_VALUE) from None
        if not self.layouts:
            raise fail(self, "layouts", f"must hold at least one of {', '.join(LAYOUTS)}")
        for lay in self.layouts:
            if lay not in LAYOUTS:
                raise fail(self, "layouts", f"must be made of {', '.join(LAYOUTS)}", value=lay)
        if len(set(self.layouts)) != len(self.layouts):
            raise fail(self, "layouts", "must not repeat a layout")
        ppi = self.prompts_per_image
        if ppi != "all":
            if not schema.is_int(ppi) or not 1 <= ppi <= len(self.prompts):
                raise fail(
                    self, "prompts_per_image",
                    f'must be "all" or a whole number from 1 to the number of prompts ({len(self.prompts)})',
                )
            object.__setattr__(self, "prompts_per_image", int(ppi))
        if self.seam > self.size:
            raise fail(self, "seam", f"must not exceed the output size ({self.size} px)")
        if isinstance(self.lam, tuple):
            if len(self.lam) != 2:
                raise fail(self, "lam", "must be a number or a (low, high) pair")
            lo, hi = self.lam
            if not (0.0 <= lo <= hi <= 1.0):
                raise fail(self, "lam", "range must satisfy 0 <= low <= high <= 1")
        else:
            if not is_number(self.lam):
                raise fail(self, "lam", "must be a number in [0, 1] or a (low, high) pair")
            if not 0.0 <= float(self.lam) <= 1.0:
                raise fail(self, "lam", "must be in [0, 1]")
            object.__setattr__(self, "lam", float(self.lam))

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
        """The fields as JSON-able values (run.json's ``recipe``)."""
        return schema.to_dict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Recipe":
        """The recipe of :meth:`to_dict` (unknown fields are refused, naming the known ones)."""
        return schema.from_dict(cls, data)


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
        raise SettingError(f"must be one of {', '.join(PRESETS)}", field="preset", value=name)
    return PRESETS[name].replace(**overrides) if overrides else PRESETS[name]


@register
@dataclass(frozen=True)
class SampleRecord:
    """Every random choice behind one augmented image, enough to replay it.

    Its fields, in this order, are the columns of a manifest row after
    ``file_name``, ``label`` and ``class_name`` (:mod:`diffusemix.export.folder`);
    :meth:`from_dict` reads a row back (checked field by field).
    """

    source: str = setting(stage="generation", kind="text", help="the image's key: its path relative to the input folder, or a name")
    prompt: str = setting(stage="generation", kind="text", help="the prompt p_j")
    copy: int = setting(stage="generation", kind="int", low=0, help="index of this image among the prompt's images_per_prompt")
    layout: str = setting(stage="mixing", choices=LAYOUTS, help="where I is kept (left, right, top, bottom)")
    mask: str = setting(stage="mixing", choices=MASK_KINDS, help="the mask kind")
    seam: int = setting(stage="mixing", kind="int", low=0, help="the ramp width in pixels")
    lam: float = setting(stage="mixing", kind="float", low=0.0, high=1.0, help="the fractal blend weight λ used")
    fractal: str = setting(stage="mixing", kind="text", help="the fractal's name within its set (its relative path)")
    seed: int = setting(stage="generation", kind="int", low=0, high=MAX_SEED, help="the editor's noise seed (after any retry)")
    attempts: int = setting(stage="generation", kind="int", low=1, help="generations made for this sample (1 unless retried)")
    size: int = setting(stage="generation", kind="int", low=8, high=MAX_SIZE, help="the output side S in pixels")
    resize: str = setting(stage="generation", choices=RESIZE_MODES, help="how the source image became S x S")
    arithmetic: str = setting(stage="mixing", choices=ARITHMETICS, help="how H and A were computed (reference or rounded)")

    def __post_init__(self) -> None:
        check_fields(self)

    def to_dict(self) -> dict[str, Any]:
        return schema.to_dict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "SampleRecord":
        """The record of a row (other columns are ignored). Rows written before ``arithmetic`` was
        recorded were mixed ``rounded``; before ``attempts``, with one attempt; before ``resize``, resized."""
        names = [f.name for f in dataclasses.fields(cls)]
        legacy = {"attempts": 1, "arithmetic": "rounded", "resize": "resize"}
        missing = [k for k in names if k not in data and k not in legacy]
        if missing:
            raise SettingError(f"lacks {', '.join(missing)}", owner=None, field="record")
        return cls(**{k: data[k] if k in data else legacy[k] for k in names})


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
        raise DiffuseMixError("fractal_names is empty: a fractal set with at least one image is needed")
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
                    attempts=1,
                    size=recipe.size,
                    arithmetic=recipe.arithmetic,
                    resize=recipe.resize,
                )
            )
    return records
