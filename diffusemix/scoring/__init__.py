"""Scorers: does a generated image Î still show what its input I showed?

Three scorers share the :class:`Scorer` protocol, all through transformers:

- ``dino``: cosine similarity of DINOv2 features of I and Î (GenMix's kind of
  filter), default ``facebook/dinov2-small``.
- ``clip``: cosine similarity of CLIP image embeddings of I and Î
  (DiffCoRe-Mix's kind), default ``openai/clip-vit-base-patch32``.
- ``clip-label``: CLIP zero-shot probability and rank of the true class among
  all class names, for Î and for I (template "a photo of a {}").

Weights load like the editors': a Hub id or a local folder, lazily, once.
``load_scorer("auto")`` scores when weights are there and otherwise returns
:class:`NoScorer`, whose ``notice`` says plainly that there are no scores and
how to get them. No score is ever made up. Importing this package is cheap:
torch and transformers are imported when a model is loaded.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from ..errors import ScorerLoadError
from .base import NoScorer, Score, Scorer, ScoreRule, check_pairs
from .clip import DEFAULT_CLIP_MODEL, DEFAULT_TEMPLATE, ClipLabelScorer, ClipScorer, class_phrase
from .dino import DEFAULT_DINO_MODEL, DinoScorer

__all__ = [
    "SCORER_NAMES",
    "load_scorer",
    "Scorer",
    "Score",
    "ScoreRule",
    "NoScorer",
    "DinoScorer",
    "ClipScorer",
    "ClipLabelScorer",
    "DEFAULT_DINO_MODEL",
    "DEFAULT_CLIP_MODEL",
    "DEFAULT_TEMPLATE",
    "class_phrase",
    "check_pairs",
    "HOW_TO_GET_WEIGHTS",
]

#: Names accepted by :func:`load_scorer` (and ``--score``).
SCORER_NAMES: tuple[str, ...] = ("none", "auto", "dino", "clip", "clip-label")

#: What to do to get scorer weights (shown wherever scores are unavailable).
HOW_TO_GET_WEIGHTS = (
    f"run `hf download {DEFAULT_DINO_MODEL}` (or `hf download {DEFAULT_CLIP_MODEL}`) where the Hugging Face Hub"
    " is reachable, or give a local model folder (--scorer-model DIR)"
)

logger = logging.getLogger("diffusemix")


def load_scorer(
    name: str = "auto",
    *,
    model: str | None = None,
    device: str | None = None,
    dtype: str | None = None,
    batch_size: int = 32,
    class_names: Sequence[str] | None = None,
    template: str = DEFAULT_TEMPLATE,
) -> Scorer:
    """Build a scorer by name.

    Args:
        name: ``"dino"``, ``"clip"``, ``"clip-label"``, ``"auto"`` or
            ``"none"``. ``"auto"`` loads DINOv2 now, else CLIP, and when
            neither has weights here returns a :class:`NoScorer` whose
            ``notice`` says so (also logged as a warning) — unless ``model``
            was given: then the error is raised.
            ``"none"`` returns a :class:`NoScorer` (scoring off).
        model: a Hugging Face Hub id or a local folder (default: the scorer's).
        device, dtype: where to run (pass the editor's device); ``None`` picks.
        batch_size: images per forward pass.
        class_names, template: for ``clip-label`` (every class of the dataset;
            the text template with ``{}`` for the name).

    Returns:
        A scorer; those named explicitly load lazily (call ``.load()`` to load
        now, e.g. to fail early); ``"auto"`` has already loaded.

    Raises:
        ValueError: an unknown name, or a bad setting.
        ScorerLoadError: the device or dtype is not available; for ``auto``
            with a model asked for, the weights cannot be loaded.
    """
    if name not in SCORER_NAMES:
        raise ValueError(f"unknown scorer {name!r}; choose one of {', '.join(SCORER_NAMES)}")
    if name == "none":
        return NoScorer("scoring is off (no --score)")
    common = {"device": device, "dtype": dtype, "batch_size": batch_size}
    if name == "dino":
        return DinoScorer(model, **common)
    if name == "clip":
        return ClipScorer(model, **common)
    if name == "clip-label":
        return ClipLabelScorer(model, class_names=class_names or (), template=template, **common)

    # "auto": the first scorer whose weights load; else no scores, said plainly.
    whys: list[ScorerLoadError] = []
    for cls in (DinoScorer, ClipScorer):
        try:
            scorer = cls(model, **common)
            scorer.load()
            return scorer
        except ScorerLoadError as exc:
            whys.append(exc)
    if model is not None:
        raise ScorerLoadError(
            f"no scorer could be loaded with model={model!r}: " + " | ".join(str(w) for w in whys)
        ) from whys[-1]
    notice = (
        "no scores: no scorer weights are available here (neither "
        f"{DEFAULT_DINO_MODEL} nor {DEFAULT_CLIP_MODEL} is in the local Hugging Face cache). To get scores, "
        + HOW_TO_GET_WEIGHTS
        + "."
    )
    logger.warning("%s Details: %s", notice, " | ".join(str(w)[:200] for w in whys))
    return NoScorer(notice)
