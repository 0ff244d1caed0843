"""The scorer interface: does a generated image Î still show what I showed?

A scorer compares each generated image Î with its input I (image–image
similarity) or with the name of its class (label consistency). Scorers know
nothing of masks, fractals or files; the exporter, the app and the report
read their :class:`Score` values, and a :class:`ScoreRule` decides which Î
are kept.

A score is always measured by a model that was loaded; when no scorer
weights are available there are no scores (:class:`NoScorer` says why),
never a stand-in value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..errors import DiffuseMixError
from ..schema import NO_VALUE, check_fields, fail, register, setting

__all__ = [
    "Score",
    "Scorer",
    "NoScorer",
    "ScoreRule",
    "check_pairs",
]


@dataclass(frozen=True)
class Score:
    """One measured score of a generated image Î.

    Attributes:
        value: the score the rule thresholds: a cosine similarity in [-1, 1]
            (``dino``, ``clip``), or the zero-shot probability of the true
            class for Î in [0, 1] (``clip-label``).
        scorer: the scorer's name (``"dino"``, ``"clip"`` or ``"clip-label"``).
        rank: ``clip-label`` only: rank of the true class among all class
            names for Î (1 = the most likely class).
        input_value, input_rank: ``clip-label`` only: the same probability and
            rank for the input I, to compare with.
    """

    value: float
    scorer: str
    rank: int | None = None
    input_value: float | None = None
    input_rank: int | None = None

    def to_row(self) -> dict[str, Any]:
        """The manifest fields for this score (rounded to 6 decimals)."""
        row: dict[str, Any] = {"score": round(float(self.value), 6), "scorer": self.scorer}
        if self.rank is not None:
            row["label_rank"] = int(self.rank)
        if self.input_value is not None:
            row["input_score"] = round(float(self.input_value), 6)
        if self.input_rank is not None:
            row["input_label_rank"] = int(self.input_rank)
        return row


@runtime_checkable
class Scorer(Protocol):
    """What the exporter, the app and the report need of a scorer."""

    #: ``"dino"``, ``"clip"``, ``"clip-label"`` (or ``"none"`` for :class:`NoScorer`).
    name: str
    #: True when :meth:`score` gives scores (False only for :class:`NoScorer`).
    available: bool
    #: True when :meth:`score` needs the class name of each pair.
    needs_labels: bool
    #: Why there are no scores (``NoScorer``), else None.
    notice: str | None

    def load(self) -> None:
        """Load the model now (idempotent; weights that cannot be loaded raise ScorerLoadError)."""
        ...

    def describe(self) -> dict[str, Any]:
        """JSON-able description (name, model id or folder, device, template...)
        written to manifests and shown in the app."""
        ...

    def score(
        self,
        inputs: Sequence[np.ndarray],
        generated: Sequence[np.ndarray],
        *,
        labels: Sequence[str] | None = None,
    ) -> list[Score]:
        """Score each (I, Î) pair; results are in pair order.

        ``inputs`` and ``generated`` are uint8 (H, W, 3) arrays; the same input
        array may appear in several pairs (its features are computed once).
        """
        ...


@dataclass(frozen=True)
class NoScorer:
    """No scorer is loaded (``auto`` found no weights, or scoring is off).

    It gives no scores: :meth:`score` raises. ``notice`` says why, plainly,
    and what to do to get scores.
    """

    notice: str = "no scorer was asked for"
    name: str = "none"
    available: bool = False
    needs_labels: bool = False

    def load(self) -> None:
        """Nothing to load."""

    def describe(self) -> dict[str, Any]:
        return {"name": "none", "notice": self.notice, "summary": f"no scores ({self.notice})"}

    def score(
        self, inputs: Sequence[np.ndarray], generated: Sequence[np.ndarray], *, labels: Any = None
    ) -> list[Score]:
        raise RuntimeError(f"no scores: {self.notice}")


@register
@dataclass(frozen=True)
class ScoreRule:
    """Which scored Î are kept: a failing Î counts like a blank one (remade with the next recorded
    seed up to the editor's ``max_retries``, then dropped and listed in errors.jsonl)."""

    min_score: float | None = setting(
        None, kind="float", low=-1.0, high=1.0, optional=True, flag="--min-similarity", metavar="X",
        stage="generation", label="Threshold",
        help="keep Î whose score is at least X (a cosine for genmix, dino and clip; the true class's probability for"
        " clip-label). A threshold belongs to the features it was set on: 0.7 is GenMix's, for --score genmix (DINO"
        " ViT-B/16, 224 x 224); none is published for dino (DINOv2) or for clip between I and Î (DiffCoRe-Mix's 0.6"
        " compares Î with a real image of its class): choose one from `diffusemix report`",
    )
    max_rank: int | None = setting(
        None, kind="int", low=1, optional=True, flag="--max-label-rank", metavar="K", stage="generation",
        label="Max label rank",
        help="with --score clip-label: keep Î whose true class is among CLIP's top K class names",
    )

    def __post_init__(self) -> None:
        check_fields(self)

    @property
    def active(self) -> bool:
        """True when the rule can reject anything."""
        return self.min_score is not None or self.max_rank is not None

    def check_scorer(self, scorer: Scorer) -> None:
        """Raise :class:`SettingError` when the rule asks for what ``scorer`` cannot give."""
        if self.active and not scorer.available:
            name = "min_score" if self.min_score is not None else "max_rank"
            raise fail(self, name, f"needs scores, but no scorer is loaded ({getattr(scorer, 'notice', 'no scorer')})",
                       value=NO_VALUE)
        if self.max_rank is not None and scorer.name != "clip-label":
            raise fail(self, "max_rank", f"needs the clip-label scorer (the {scorer.name} scorer gives no rank)",
                       value=NO_VALUE)

    def reject(self, score: Score) -> str | None:
        """``None`` when ``score`` passes, else a short reason naming the rule."""
        if self.min_score is not None and not score.value >= self.min_score:
            return f"{score.scorer} score {score.value:.3f} < min {self.min_score:g}"
        if self.max_rank is not None and (score.rank is None or score.rank > self.max_rank):
            return f"true class ranked {score.rank} > max rank {self.max_rank}"
        return None

    def describe(self) -> dict[str, Any]:
        return {"min_score": self.min_score, "max_rank": self.max_rank}


def check_pairs(
    inputs: Sequence[np.ndarray],
    generated: Sequence[np.ndarray],
    labels: Sequence[str] | None,
    *,
    needs_labels: bool,
    class_names: Sequence[str] = (),
) -> None:
    """Raise ValueError naming the first pair a scorer cannot take."""
    if len(inputs) != len(generated):
        raise DiffuseMixError(f"got {len(inputs)} input images for {len(generated)} generated images")
    for what, images in (("input", inputs), ("generated", generated)):
        for k, im in enumerate(images):
            if not isinstance(im, np.ndarray) or im.dtype != np.uint8 or im.ndim != 3 or im.shape[2] != 3:
                got = f"{im.dtype} array of shape {im.shape}" if isinstance(im, np.ndarray) else type(im).__name__
                raise DiffuseMixError(f"{what} image {k} must be a uint8 (H, W, 3) array; got {got}")
            if im.shape[0] < 1 or im.shape[1] < 1:
                raise DiffuseMixError(f"{what} image {k} is empty (shape {im.shape})")
    if needs_labels:
        if labels is None or len(labels) != len(inputs):
            n = "none" if labels is None else len(labels)
            raise DiffuseMixError(f"the label scorer needs one class name per pair; got {n} for {len(inputs)} pairs")
        unknown = sorted({lab for lab in labels if lab not in class_names})
        if unknown:
            raise DiffuseMixError(
                f"class name(s) {', '.join(map(repr, unknown[:5]))} are not among the scorer's class names"
                f" ({', '.join(map(repr, list(class_names)[:10]))}{', ...' if len(class_names) > 10 else ''})"
            )
