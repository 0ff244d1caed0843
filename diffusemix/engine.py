"""Run images through an editor and the recipe: the six stages I, Î, M, H, F, A.

The engine receives an editor (``diffusemix.editors.load_editor``); it never
builds one. The app, the exporter and the figures all consume :class:`Stages`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import numpy as np

from .errors import DiffuseMixError
from .editors.base import CancelToken, Editor, EditRequest, EditResult, ProgressFn
from .functional import ARITHMETICS, make_mask, mix, mix_reference
from .recipe import Recipe, SampleRecord, draw

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

    from .fractals import FractalSet

__all__ = ["Stages", "STAGE_NAMES", "STAGE_SYMBOLS", "apply_record", "augment", "generate", "replay"]

#: Field names of :class:`Stages` in the method's order.
STAGE_NAMES: tuple[str, ...] = ("input", "generated", "mask", "hybrid", "fractal", "augmented")
#: The paper's symbols for them.
STAGE_SYMBOLS: dict[str, str] = {
    "input": "I",
    "generated": "Î",
    "mask": "M",
    "hybrid": "H",
    "fractal": "F",
    "augmented": "A",
}


@dataclass(frozen=True, eq=False)
class Stages:
    """All six stages of one augmented sample, and the record that made them.

    Attributes:
        input: I, uint8 (S, S, 3).
        generated: Î, uint8 (S, S, 3).
        mask: M, float32 (S, S) in [0, 1], 1 where I is kept.
        hybrid: H = M ⊙ I + (1 − M) ⊙ Î, uint8 (S, S, 3).
        fractal: F, uint8 (S, S, 3).
        augmented: A = (1 − λ) H + λ F, uint8 (S, S, 3), with the label of I.
        record: every choice behind it (prompt, layout, fractal, λ, seed...).
        degenerate: ``None``, or why Î was still unusable after the editor's
            retries (such samples must be reported, not kept silently).
        editor: the name of the editor that made Î (``"preview"`` marks a
            weight-free stand-in, which figures then say), or ``None`` when
            not known (stages built by hand with :func:`apply_record`).
    """

    input: np.ndarray
    generated: np.ndarray
    mask: np.ndarray
    hybrid: np.ndarray
    fractal: np.ndarray
    augmented: np.ndarray
    record: SampleRecord
    degenerate: str | None = None
    editor: str | None = None

    def items(self) -> Iterator[tuple[str, np.ndarray]]:
        """(name, array) for the six stages in order."""
        for name in STAGE_NAMES:
            yield name, getattr(self, name)

    def mask_uint8(self) -> np.ndarray:
        """M as an 8-bit grey image (0 = Î kept, 255 = I kept)."""
        return (self.mask * 255.0 + 0.5).astype(np.uint8)

    def image(self, name: str) -> "Image.Image":
        """One stage as a PIL image (the mask as mode "L")."""
        from PIL import Image

        if name not in STAGE_NAMES:
            raise DiffuseMixError(f"unknown stage {name!r}; stages are {', '.join(STAGE_NAMES)}")
        if name == "mask":
            return Image.fromarray(self.mask_uint8(), mode="L")
        return Image.fromarray(getattr(self, name), mode="RGB")


def apply_record(
    record: SampleRecord,
    image: np.ndarray,
    generated: np.ndarray,
    fractal: np.ndarray,
    *,
    degenerate: str | None = None,
) -> Stages:
    """Apply a drawn record to (I, Î, F): deterministic, no randomness.

    The one mixing path: the app, the exporter and the training dataset all
    call it, so an image is the same whichever of them made it.

    Args:
        record: the sample's choices (layout, mask kind, seam, λ) and the
            arithmetic (``reference``: the authors' code bit for bit;
            ``rounded``: see :mod:`diffusemix.functional`).
        image: I, uint8 (S, S, 3).
        generated: Î, uint8, same shape.
        fractal: F, uint8, same shape.

    Returns:
        The six stages.
    """
    if image.dtype != np.uint8 or generated.dtype != np.uint8 or fractal.dtype != np.uint8:
        raise DiffuseMixError(
            f"I, Î and F must be uint8 arrays; got {image.dtype}, {generated.dtype}, {fractal.dtype}"
        )
    if record.arithmetic not in ARITHMETICS:
        raise DiffuseMixError(f"record.arithmetic must be one of {', '.join(ARITHMETICS)}; got {record.arithmetic!r}")
    h, w = image.shape[:2]
    m = make_mask(h, w, record.layout, kind=record.mask, seam=record.seam)  # type: ignore[arg-type]
    if record.arithmetic == "reference":
        hyb, aug = mix_reference(
            image, generated, fractal, record.layout, record.lam, kind=record.mask, seam=record.seam  # type: ignore[arg-type]
        )
    else:
        hyb, aug = mix(image, generated, fractal, m, record.lam)
    return Stages(
        input=image,
        generated=generated,
        mask=m,
        hybrid=hyb,
        fractal=fractal,
        augmented=aug,
        record=record,
        degenerate=degenerate,
    )


def generate(
    editor: Editor,
    jobs: Sequence[tuple[SampleRecord, np.ndarray]],
    *,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
) -> list[tuple[SampleRecord, EditResult]]:
    """Make Î for many (record, I) pairs in one editor call (the editor batches).

    Returns each record updated with the seed actually used and the number of
    attempts (they differ from the drawn ones after a degenerate retry),
    together with the editor's result (whose ``batch`` indexes ``jobs``).
    """
    requests = [EditRequest(image=img, prompt=rec.prompt, seed=rec.seed) for rec, img in jobs]
    results = editor.edit(requests, progress=progress, cancel=cancel)
    if len(results) != len(requests):
        raise RuntimeError(f"editor {editor.name!r} returned {len(results)} results for {len(requests)} requests")
    out = []
    for (rec, img), res in zip(jobs, results):
        if res.image.shape != img.shape:
            raise RuntimeError(
                f"editor {editor.name!r} returned shape {res.image.shape} for an input of shape {img.shape}"
            )
        out.append((dataclasses.replace(rec, seed=int(res.seed), attempts=int(res.attempts)), res))
    return out


def augment(
    image: np.ndarray,
    recipe: Recipe,
    editor: Editor,
    fractals: "FractalSet",
    *,
    source: str = "image",
    fractal_name: str | None = None,
    fractal_override: np.ndarray | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
) -> list[Stages]:
    """Run one prepared image through every prompt of the recipe.

    Args:
        image: I, uint8 (S, S, 3) with S = recipe.size (see ``images.prepare``).
        recipe: the settings; records are drawn from its master seed.
        editor: makes Î (any :class:`~diffusemix.editors.base.Editor`).
        fractals: the set F is drawn from.
        source: the image's key; part of every record and of its seeds.
        fractal_name: use this fractal of ``fractals`` for every sample
            instead of the drawn one (the app's "pick a fractal").
        fractal_override: use this F (uint8 (S, S, 3)) for every sample
            instead of the drawn one (the app's "upload a fractal"); recorded
            as ``"(uploaded)"``.
        progress, cancel: passed to the editor.

    Returns:
        One :class:`Stages` per (prompt, copy), in recipe order. Samples whose
        Î stayed degenerate after the editor's retries carry ``degenerate``.
    """
    # 1. check inputs
    _check_augment_args(image, recipe, editor, fractals)
    s = recipe.size
    if image.shape != (s, s, 3) or image.dtype != np.uint8:
        raise DiffuseMixError(
            f"image must be uint8 of shape ({s}, {s}, 3) for recipe.size={s}; got {image.dtype} {image.shape}. "
            "Use diffusemix.images.prepare(img, recipe.size) first."
        )
    if fractal_override is not None and (fractal_override.shape != (s, s, 3) or fractal_override.dtype != np.uint8):
        raise DiffuseMixError(f"fractal_override must be uint8 of shape ({s}, {s}, 3); got {fractal_override.shape}")
    # 2. draw every random choice
    records = draw(recipe, source, fractals.names)
    if fractal_name is not None:
        if fractal_name not in fractals.names:
            raise DiffuseMixError(f"fractal {fractal_name!r} is not in the fractal set {fractals.folder}")
        records = [dataclasses.replace(r, fractal=fractal_name) for r in records]
    if fractal_override is not None:
        records = [dataclasses.replace(r, fractal="(uploaded)") for r in records]
    # 3. generate Î (the only costly step; the editor batches)
    made = generate(editor, [(r, image) for r in records], progress=progress, cancel=cancel)
    # 4. mix
    stages = []
    for rec, res in made:
        f = fractal_override if fractal_override is not None else fractals.load(rec.fractal, s)
        stages.append(dataclasses.replace(apply_record(rec, image, res.image, f, degenerate=res.degenerate),
                                          editor=editor.name))
    return stages


def _check_augment_args(image: object, recipe: object, editor: object, fractals: object) -> None:
    """TypeErrors that say what to pass, for arguments of the wrong kind."""
    from .fractals import FractalSet

    if not isinstance(image, np.ndarray):
        raise TypeError(
            f"image must be a uint8 numpy array of shape (S, S, 3); got {type(image).__module__.split('.')[0]}."
            f"{type(image).__name__}. Make one with diffusemix.prepare(load_image(path), recipe.size)"
            " (or prepare(pil_image, recipe.size))."
        )
    if not isinstance(recipe, Recipe):
        raise TypeError(
            f"recipe must be a Recipe; got {type(recipe).__name__}. Build one with Recipe(**d) or"
            " Recipe.from_dict(d), or take a preset: get_preset('paper')."
        )
    if not (callable(getattr(editor, "edit", None)) and isinstance(getattr(editor, "name", None), str)):
        raise TypeError(
            f"editor must be an editor (with .name and .edit()); got {editor!r}. Load one with"
            " load_editor('instruct-pix2pix') (the paper's model) or load_editor('preview') (weight-free filters)."
        )
    if not isinstance(fractals, FractalSet):
        raise TypeError(
            f"fractals must be a FractalSet; got {type(fractals).__name__}. Use FractalSet.default() (the"
            " shipped set) or FractalSet.from_folder(path)."
        )


def replay(
    record: SampleRecord,
    image: np.ndarray,
    editor: Editor,
    fractals: "FractalSet",
    *,
    batch: Sequence[tuple[np.ndarray, str, int]] | None = None,
    position: int = 0,
) -> Stages:
    """Rebuild one sample from its record (e.g. a manifest row).

    Î is made with the record's seed (the one that made the kept Î), in one model call, without retries.
    ``batch``: every sample of the model call that made Î, as (I, prompt, seed) in call order, this record's at
    ``position``: a diffusion model's numbers depend on the call a sample is in, so the same call gives the same
    Î bit for bit (on the same kind of device).
    """
    if batch:
        requests = [EditRequest(image=im, prompt=p, seed=int(sd)) for im, p, sd in batch]
        if not 0 <= position < len(requests):
            raise DiffuseMixError(f"position {position} is outside the batch of {len(requests)}", field="position")
    else:
        requests, position = [EditRequest(image=image, prompt=record.prompt, seed=record.seed)], 0
    changes: dict[str, Any] = {"max_retries": 0}
    if getattr(getattr(editor, "spec", None), "batch_size", None) is not None:  # an editor that makes one at a time
        changes["batch_size"] = len(requests)                                  # (no batch size) has calls of one
    res = editor.with_settings(**changes).edit(requests)[position]
    stages = apply_record(record, image, res.image, fractals.load(record.fractal, record.size), degenerate=res.degenerate)
    return dataclasses.replace(stages, editor=editor.name)

