"""``ScorerSpec``: which scorer measures Î and where, every setting declared once.

The rule that keeps or drops a scored Î is :class:`~diffusemix.scoring.base.ScoreRule`
(its own fields: ``min_score``, ``max_rank``). :func:`diffusemix.scoring.load_scorer`
builds a scorer from a spec; the command line's score flags, the app's
``--score`` and a run's ``run.json`` go through these two classes.
"""

from __future__ import annotations

import dataclasses
import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .. import schema
from ..schema import check_fields, fail, register, setting

__all__ = ["ScorerSpec", "SCORER_NAMES", "DEFAULT_TEMPLATE", "template_problem"]

#: Names accepted by ``load_scorer`` and ``--score`` (``none``: scoring off; ``auto``: the first
#: scorer whose weights are here, else no scores, said plainly).
SCORER_NAMES: tuple[str, ...] = ("none", "auto", "genmix", "dino", "clip", "clip-label")

#: clip-label's text for each class name.
DEFAULT_TEMPLATE = "a photo of a {}"


def template_problem(template: object) -> str | None:
    """Why ``template`` cannot be clip-label's text for a class name, or None.

    It must hold ``{}`` once and no other ``{...}`` field (``{0}``, ``{x}``, ``{!r}``, ``{:>{}}``,
    a lone brace): what ``str.format`` fills with one class name and nothing else.
    """
    if not isinstance(template, str):
        return "must be a string with {} once, for the class name"
    try:
        fields = [(name, spec, conv) for _, name, spec, conv in string.Formatter().parse(template) if name is not None]
    except ValueError as e:
        return f"is not a format string ({e}); write a literal brace twice ({{{{ or }}}})"
    if fields != [("", "", None)]:
        return ("must contain {} once, for the class name, and no other {...} field (a literal brace is written"
                " twice: {{ or }})")
    return None


@register
@dataclass(frozen=True)
class ScorerSpec:
    """Which scorer measures each Î against its I (or its class), and where it runs."""

    name: str = setting(
        "none", choices=SCORER_NAMES, flag="--score", stage="generation", label="Scorer",
        help="score each Î and write the score into its row: genmix (GenMix's filter: DINO ViT-B/16 class-token cosine"
        " of I and Î at 224 x 224, its threshold 0.7), dino (DINOv2 class-token cosine; no published threshold), clip"
        " (CLIP image cosine; no published threshold for I vs Î), clip-label (CLIP zero-shot probability of the true"
        " class among the class names), auto (dino, else clip, if the weights are here; otherwise no scores, said"
        " plainly), none",
    )
    model: str | None = setting(
        None, kind="str", optional=True, flag="--scorer-model", metavar="ID_OR_FOLDER", stage="generation",
        label="Scorer model",
        default_text="genmix: facebook/dino-vitb16; dino: facebook/dinov2-small; clip and clip-label:"
        " openai/clip-vit-base-patch32",
        help="Hugging Face id or local folder of the scorer",
    )
    template: str | None = setting(
        None, kind="str", optional=True, flag="--label-template", metavar="TEXT", stage="generation",
        label="Label template", default_text=repr(DEFAULT_TEMPLATE),
        help="clip-label's text for each class name, with {} for the name",
    )
    device: str | None = setting(
        None, kind="str", optional=True, cli=False, stage="run", label="Scorer device",
        help="where the scorer runs (default: the editor's device)",
    )
    dtype: str | None = setting(
        None, choices=("auto", "float16", "bfloat16", "float32"), optional=True, cli=False, stage="generation",
        label="Scorer precision", help="the scorer's precision (default: float16 on CUDA, float32 elsewhere)",
    )
    batch_size: int = setting(
        32, kind="int", low=1, high=4096, cli=False, stage="run", label="Scorer batch size",
        help="images per scorer forward pass",
    )

    def __post_init__(self) -> None:
        check_fields(self)
        if self.template is not None:
            problem = template_problem(self.template)
            if problem is not None:
                raise fail(self, "template", problem)
            if self.name not in ("clip-label",):
                raise fail(self, "template", "is a setting of the clip-label scorer", value=self.name)

    def replace(self, **changes: Any) -> "ScorerSpec":
        return dataclasses.replace(self, **changes)

    @property
    def active(self) -> bool:
        """Whether scoring is asked for (not ``none``)."""
        return self.name != "none"

    def to_dict(self) -> dict[str, Any]:
        return schema.to_dict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ScorerSpec":
        return schema.from_dict(cls, data)
