"""Generate Î, score it, and make again those a rule rejects.

A generated image whose score fails the :class:`~diffusemix.scoring.ScoreRule`
counts like a blank one: it is made again with a new seed, recorded, up to
``max_retries`` times; if it still fails, it comes back with
``rejected`` set (and its last score), for the caller to drop and report.

The seed of retry ``k`` is ``retry_seed(drawn_seed, attempts so far)``: the
same sequence the editors use for blank outputs, so a kept Î is reproduced
from its record's seed alone, and a run is reproducible from the master seed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..errors import DiffuseMixError
from ..editors.base import retry_seed
from ..engine import generate
from .base import Score, Scorer, ScoreRule

if TYPE_CHECKING:  # pragma: no cover
    from ..editors.base import CancelToken, Editor, EditResult, ProgressFn
    from ..recipe import SampleRecord

__all__ = ["Scored", "generate_scored"]


@dataclass(frozen=True)
class Scored:
    """One sample after generation, scoring and retries.

    Attributes:
        record: the record with the seed of the returned Î and every attempt counted.
        result: the editor's result for the returned Î (``degenerate`` set if blank).
        score: its score; ``None`` when the scorer gives none or Î is blank.
        rejected: ``None`` when Î passes the rule, else why it failed after
            the last retry (the caller drops it and reports it).
        score_retries: how many times it was made again because of its score.
    """

    record: "SampleRecord"
    result: "EditResult"
    score: Score | None
    rejected: str | None
    score_retries: int = 0


def generate_scored(
    editor: "Editor",
    jobs: Sequence[tuple["SampleRecord", np.ndarray]],
    *,
    scorer: Scorer,
    rule: ScoreRule,
    max_retries: int,
    labels: Sequence[str] | None = None,
    progress: "ProgressFn | None" = None,
    cancel: "CancelToken | None" = None,
) -> list[Scored]:
    """Make Î for each (record, I), score it, and retry those the rule rejects.

    1. One editor call for every job (the editor retries blank outputs itself).
    2. Score every usable Î in one scorer call (``labels``: the class name of
       each job, for ``clip-label``).
    3. Jobs the rule rejects are made again, together, with the next seed of
       their sequence, up to ``max_retries`` rounds; then returned rejected.

    Without an available scorer the results carry no score and nothing is rejected.

    Raises:
        ValueError: the rule needs scores the scorer cannot give.
        Cancelled: from the editor.
    """
    # 1. check inputs
    rule.check_scorer(scorer)
    if scorer.needs_labels and (labels is None or len(labels) != len(jobs)):
        raise DiffuseMixError(f"the {scorer.name} scorer needs one class name per job")
    drawn = [rec.seed for rec, _ in jobs]
    out: list[Scored | None] = [None] * len(jobs)
    pending = list(range(len(jobs)))
    records = [rec for rec, _ in jobs]
    attempts = [0] * len(jobs)
    for round_ in range(max_retries + 1):
        # 2. generate what is pending (a retry starts from the next seed in the sequence)
        batch = [
            (dataclasses.replace(records[i], seed=retry_seed(drawn[i], attempts[i])), jobs[i][1]) for i in pending
        ]
        made = generate(editor, batch, progress=progress, cancel=cancel)
        for i, (rec, res) in zip(pending, made, strict=True):
            res = dataclasses.replace(res, batch=tuple((pending[j], s) for j, s in res.batch))  # indices into jobs
            attempts[i] += rec.attempts
            records[i] = dataclasses.replace(rec, attempts=attempts[i])
            out[i] = Scored(records[i], res, None, None, round_)
        # 3. score the usable ones, in one call
        usable = [i for i, (_, res) in zip(pending, made) if res.degenerate is None]
        if not scorer.available or not usable:
            break
        scores = scorer.score(
            [jobs[i][1] for i in usable],
            [out[i].result.image for i in usable],  # type: ignore[union-attr]
            labels=[labels[i] for i in usable] if scorer.needs_labels and labels is not None else None,
        )
        failing = []
        for i, sc in zip(usable, scores, strict=True):
            why = rule.reject(sc)
            out[i] = dataclasses.replace(out[i], score=sc, rejected=why)  # type: ignore[type-var]
            if why is not None:
                failing.append(i)
        # 4. retry the rejected ones (blank ones were retried by the editor already)
        pending = failing
        if not pending:
            break
    return [o for o in out if o is not None]
