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

from ..errors import ScorerLoadError, SettingError
from .base import NoScorer, Score, Scorer, ScoreRule, check_pairs
from .clip import DEFAULT_CLIP_MODEL, ClipLabelScorer, ClipScorer, class_phrase
from .dino import DEFAULT_DINO_MODEL, DinoScorer
from .genmix import DEFAULT_GENMIX_MODEL, GENMIX_THRESHOLD, GenMixScorer
from .spec import DEFAULT_TEMPLATE, SCORER_NAMES, ScorerSpec

__all__ = [
    "SCORER_NAMES",
    "ScorerSpec",
    "load_scorer",
    "check_rule",
    "Scorer",
    "Score",
    "ScoreRule",
    "NoScorer",
    "DinoScorer",
    "GenMixScorer",
    "DEFAULT_GENMIX_MODEL",
    "GENMIX_THRESHOLD",
    "ClipScorer",
    "ClipLabelScorer",
    "DEFAULT_DINO_MODEL",
    "DEFAULT_CLIP_MODEL",
    "DEFAULT_TEMPLATE",
    "class_phrase",
    "check_pairs",
    "HOW_TO_GET_WEIGHTS",
]

#: What to do to get scorer weights (shown wherever scores are unavailable).
HOW_TO_GET_WEIGHTS = (
    f"run `hf download {DEFAULT_DINO_MODEL}` (or `hf download {DEFAULT_CLIP_MODEL}`) where the Hugging Face Hub"
    " is reachable, or give a local model folder (--scorer-model DIR)"
)

logger = logging.getLogger("diffusemix")


def _as_spec(spec: ScorerSpec | str, fields: dict) -> ScorerSpec:
    if isinstance(spec, str):
        try:
            return ScorerSpec(name=spec, **fields)
        except TypeError as e:
            raise SettingError(f"has no such setting ({e})", field="ScorerSpec") from None
    if not isinstance(spec, ScorerSpec):
        raise TypeError(f"load_scorer takes a ScorerSpec or a scorer name; got {type(spec).__name__}")
    return spec.replace(**fields) if fields else spec


def check_rule(spec: ScorerSpec, rule: ScoreRule) -> None:
    """Refuse a rule the scorer asked for cannot apply (before any work).

    Raises:
        SettingError: a threshold without a scorer, or a label rank without ``clip-label``.
    """
    from ..schema import NO_VALUE, fail

    if rule.active and not spec.active:
        name = "min_score" if rule.min_score is not None else "max_rank"
        raise fail(rule, name, "needs a scorer (--score dino, clip or clip-label)", value=NO_VALUE)
    if rule.max_rank is not None and spec.name not in ("clip-label", "auto"):
        raise fail(rule, "max_rank", f"needs the clip-label scorer (the {spec.name} scorer gives no rank)",
                   value=NO_VALUE)
    if spec.model is not None and not spec.active:
        raise fail(spec, "model", "needs a scorer (--score dino, clip or clip-label)", value=NO_VALUE)


def load_scorer(spec: ScorerSpec | str = "auto", *, class_names: Sequence[str] | None = None, **fields) -> Scorer:
    """Build the scorer a spec asks for: the only way scorers are made.

    Args:
        spec: a :class:`ScorerSpec`, or a scorer name (``"dino"``, ``"clip"``,
            ``"clip-label"``, ``"auto"``, ``"none"``) with its settings as
            keywords (``model``, ``device``, ``dtype``, ``batch_size``,
            ``template``). ``"auto"`` loads DINOv2 now, else CLIP, and when
            neither has weights here returns a :class:`NoScorer` whose
            ``notice`` says so (also logged as a warning) — unless a model was
            given: then the error is raised. ``"none"`` returns a
            :class:`NoScorer` (scoring off).
        class_names: for ``clip-label``: every class of the dataset.

    Returns:
        A scorer; those named explicitly load lazily (call ``.load()`` to load
        now, e.g. to fail early); ``"auto"`` has already loaded.

    Raises:
        SettingError: an unknown name, or a bad setting.
        ScorerLoadError: the device or dtype is not available; for ``auto``
            with a model asked for, the weights cannot be loaded.
    """
    spec = _as_spec(spec, fields)
    if spec.name == "none":
        return NoScorer("scoring is off (no --score)")
    common = {"device": spec.device, "dtype": spec.dtype, "batch_size": spec.batch_size}
    model = spec.model
    if spec.name == "dino":
        return DinoScorer(model, **common)
    if spec.name == "genmix":
        return GenMixScorer(model, **common)
    if spec.name == "clip":
        return ClipScorer(model, **common)
    if spec.name == "clip-label":
        return ClipLabelScorer(model, class_names=class_names or (), template=spec.template or DEFAULT_TEMPLATE,
                               **common)

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
    logger.warning("%s Details: %s", notice, " | ".join(str(w) for w in whys))  # whole: never cut mid-word
    return NoScorer(notice)
