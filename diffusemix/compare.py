"""Side by side: one image through two or more editors, with the same prompts and seed.

A researcher chooses an editor, not only prompts: :func:`compare_editors`
runs one prepared image I through every editor with the same recipe, so every
record (prompt, mask layout, fractal, λ, the editor's seed) is the same for
each editor and only Î differs. With a scorer, each Î is scored against I.
:func:`comparison_figure` tiles the result, one row per editor, one column per
prompt (the app's Prompt lab and ``python -m diffusemix report OUT1 OUT2`` do
the same for their inputs).

Nothing here builds an editor: they are given (``load_editor``), as the
engine takes them.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from .engine import Stages, augment
from .errors import DiffuseMixError

if TYPE_CHECKING:  # pragma: no cover
    from .editors.base import Editor, ProgressFn
    from .fractals import FractalSet
    from .recipe import Recipe
    from .scoring.base import Scorer

__all__ = ["EditorComparison", "editor_label", "compare_editors", "comparison_figure"]


def editor_label(editor: "Editor") -> str:
    """A short name for an editor in a comparison: its name, and its model where that is not the default."""
    model = getattr(getattr(editor, "spec", None), "model", None)
    default = getattr(type(editor), "_default_model", None)
    if not editor.is_diffusion:
        return "preview (not a diffusion model)"
    if not model or model == default:
        return editor.name
    return f"{editor.name} ({Path(model).name if os.path.isabs(model) else model})"


@dataclass(frozen=True)
class EditorComparison:
    """One image through several editors.

    Attributes:
        labels: one per editor, in the order given (distinct).
        prompts: the recipe's prompts, in order (one column each).
        stages: per editor label, the six stages of each sample (recipe order).
        scores: per editor label, each sample's score of Î against I, or ``None`` without a scorer.
        scorer: what scored (its summary), or "" without one.
        descriptions: per editor label, its ``describe()`` summary (model, steps, licence).
        seconds: per editor label, the wall time its samples took (Î and the mixing).
    """

    labels: tuple[str, ...]
    prompts: tuple[str, ...]
    stages: dict[str, list[Stages]]
    scores: dict[str, list[float]] | None = None
    scorer: str = ""
    descriptions: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def mean_scores(self) -> dict[str, float] | None:
        """Each editor's mean score over its samples (``None`` without scores)."""
        if self.scores is None:
            return None
        return {k: float(np.mean(v)) if v else float("nan") for k, v in self.scores.items()}

    def table(self) -> str:
        """Per editor and prompt: the score of Î (when scored), and which Î came out blank."""
        lines = [f"{len(self.labels)} editors, same prompts and seed" + (f"; scores by {self.scorer}" if self.scorer
                                                                          else "; no scorer: no scores")]
        for label in self.labels:
            lines.append(f"  {label}: {self.descriptions.get(label, '')}")
            for k, s in enumerate(self.stages[label]):
                score = f"{self.scores[label][k]:.3f}" if self.scores is not None else "-"
                lines.append(f"    {s.record.prompt:<24} score {score}" + (f"  blank: {s.degenerate}" if s.degenerate
                                                                              else ""))
        return "\n".join(lines) + "\n"


def compare_editors(
    image: np.ndarray,
    recipe: "Recipe",
    editors: Sequence["Editor"],
    fractals: "FractalSet",
    *,
    source: str = "image",
    scorer: "Scorer | None" = None,
    progress: "ProgressFn | None" = None,
) -> EditorComparison:
    """Run ``image`` through every editor with the same recipe (prompts, seed, masks, fractals).

    Args:
        image: I, uint8 (S, S, 3) with S = ``recipe.size`` (``diffusemix.images.prepare``).
        recipe: the settings; every editor gets the same records.
        editors: two or more editors (``load_editor``), e.g. InstructPix2Pix and FLUX.2 [klein].
        fractals: the set F is drawn from.
        source: the image's key (part of every record's seeds).
        scorer: scores each Î against I (``load_scorer``); ``None`` or an unavailable one: no scores.
        progress: ``progress(done, total)`` over every editor's work (editors done, in steps of one).

    Raises:
        DiffuseMixError: fewer than two editors.
    """
    if len(editors) < 2:
        raise DiffuseMixError("needs two or more editors to compare", field="editors", value=len(editors))
    labels: list[str] = []
    for ed in editors:
        label, n = editor_label(ed), 2
        while label in labels:  # the same editor twice (other settings): numbered
            label, n = f"{editor_label(ed)} #{n}", n + 1
        labels.append(label)
    stages: dict[str, list[Stages]] = {}
    seconds: dict[str, float] = {}
    for k, (label, ed) in enumerate(zip(labels, editors)):
        t = time.perf_counter()
        stages[label] = augment(image, recipe, ed, fractals, source=source)
        seconds[label] = time.perf_counter() - t
        if progress is not None:
            progress(k + 1, len(editors))
    scores = None
    if scorer is not None and getattr(scorer, "available", False):
        scores = {}
        for label in labels:
            got = scorer.score([s.input for s in stages[label]], [s.generated for s in stages[label]])
            scores[label] = [float(g.value) for g in got]
    return EditorComparison(
        labels=tuple(labels),
        prompts=tuple(recipe.prompts),
        stages=stages,
        scores=scores,
        scorer=str(scorer.describe().get("summary") or scorer.name) if scores is not None else "",
        descriptions={label: str(ed.describe().get("summary") or ed.name) for label, ed in zip(labels, editors)},
        seconds=seconds,
    )


def comparison_figure(comparison: EditorComparison, *, stage: str = "generated", tile: float = 1.8) -> Any:
    """A matplotlib figure: I first, then one row per editor and one column per sample (its prompt),
    each tile captioned with its score when scored. ``stage``: ``"generated"`` (Î) or ``"augmented"`` (A)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    if stage not in ("generated", "augmented"):
        raise DiffuseMixError("must be generated or augmented", field="stage", value=stage)
    first = comparison.stages[comparison.labels[0]]
    cols = len(first) + 1
    rows = len(comparison.labels)
    fig, axes = plt.subplots(rows, cols, figsize=(tile * cols, tile * rows + 0.4), squeeze=False)
    symbol = "Î" if stage == "generated" else "A"
    for i, label in enumerate(comparison.labels):
        ax = axes[i][0]
        ax.imshow(first[0].input)
        ax.set_title("I (input)" if i == 0 else "", fontsize=8)
        ax.set_ylabel(label, fontsize=8, rotation=0, ha="right", va="center")
        for j, s in enumerate(comparison.stages[label]):
            ax = axes[i][j + 1]
            ax.imshow(getattr(s, stage))
            caption = f"{symbol} “{s.record.prompt}”"
            if comparison.scores is not None:
                caption = f"{comparison.scores[label][j]:.3f} · " + caption
            ax.set_title(caption, fontsize=7)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("Same prompts and seed, one row per editor" + (f"; scores: {comparison.scorer}" if comparison.scorer
                                                                 else ""), fontsize=9)
    fig.tight_layout()
    return fig
