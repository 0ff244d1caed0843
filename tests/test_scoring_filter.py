"""generate_scored: a low score counts like a blank Î (retried with recorded seeds, then rejected)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from diffusemix.editors import PreviewEditor, retry_seed
from diffusemix.editors.base import EditRequest, EditResult
from diffusemix.recipe import Recipe, draw
from diffusemix.scoring import NoScorer, Score, ScoreRule, load_scorer
from diffusemix.scoring.filter import generate_scored


class SeedEditor:
    """A test editor: Î = I shifted by the seed; remembers which seed made which array."""

    name = "seed-test"
    is_diffusion = False

    def __init__(self) -> None:
        self.made: dict[int, int] = {}

    def describe(self) -> dict:
        return {"name": self.name}

    def edit(self, requests, *, progress=None, cancel=None) -> list[EditResult]:
        out = []
        for r in requests:
            image = (r.image.astype(np.uint16) + int(r.seed) % 200 + 1).astype(np.uint8)
            self.made[id(image)] = int(r.seed)
            out.append(EditResult(image=image, seed=int(r.seed)))
        return out


class SeedScorer:
    """A test scorer: 0.0 for Î made from a seed in ``low``, else 0.9 (forces low scores)."""

    name = "dino"
    available = True
    needs_labels = False

    def __init__(self, editor: SeedEditor, low: set[int]) -> None:
        self.editor, self.low, self.calls = editor, low, 0

    def describe(self) -> dict:
        return {"name": self.name}

    def score(self, inputs: Sequence[np.ndarray], generated: Sequence[np.ndarray], *, labels=None) -> list[Score]:
        self.calls += 1
        return [Score(0.0 if self.editor.made[id(g)] in self.low else 0.9, self.name) for g in generated]


def _jobs(make_rgb, n=3):
    recipe = Recipe(prompts=("snowy", "sunset"), size=32, seed=7)
    image = make_rgb(32, 32, seed=1)
    records = [r for k in range(n) for r in draw(recipe, f"img{k}.png", ["f0", "f1"])]
    return [(r, image) for r in records], image


def test_low_scores_are_retried_with_recorded_seeds_then_rejected(make_rgb):
    editor = SeedEditor()
    jobs, image = _jobs(make_rgb)
    first, second = jobs[0][0], jobs[1][0]
    # job 0 fails once then passes; job 1 fails every time; the rest pass at once
    low = {first.seed} | {retry_seed(second.seed, a) for a in range(4)}
    scorer = SeedScorer(editor, low)
    out = generate_scored(editor, jobs, scorer=scorer, rule=ScoreRule(min_score=0.5), max_retries=2)
    assert len(out) == len(jobs)
    a, b = out[0], out[1]
    assert a.rejected is None and a.score.value == 0.9 and a.score_retries == 1
    assert a.record.seed == retry_seed(first.seed, 1) and a.record.attempts == 2
    # the kept Î is reproduced from its record's seed alone
    again = editor.edit([EditRequest(image, a.record.prompt, a.record.seed)])[0].image
    np.testing.assert_array_equal(again, a.result.image)
    assert b.rejected == "dino score 0.000 < min 0.5" and b.score.value == 0.0
    assert b.record.attempts == 3 and b.record.seed == retry_seed(second.seed, 2) and b.score_retries == 2
    for o, (rec, _) in zip(out[2:], jobs[2:]):
        assert o.rejected is None and o.record.seed == rec.seed and o.record.attempts == 1 and o.score_retries == 0
    assert scorer.calls == 3  # one scorer call per round, not per sample


def test_no_retries_rejects_at_once(make_rgb):
    editor = SeedEditor()
    jobs, _ = _jobs(make_rgb, 1)
    scorer = SeedScorer(editor, {rec.seed for rec, _ in jobs})
    out = generate_scored(editor, jobs, scorer=scorer, rule=ScoreRule(min_score=0.5), max_retries=0)
    assert all(o.rejected and o.record.attempts == 1 for o in out)


def test_without_a_scorer_nothing_is_scored_or_rejected(make_rgb):
    jobs, _ = _jobs(make_rgb, 1)
    out = generate_scored(PreviewEditor(), jobs, scorer=NoScorer("no weights"), rule=ScoreRule(), max_retries=2)
    assert all(o.score is None and o.rejected is None for o in out)
    with pytest.raises(ValueError, match="needs scores, but no scorer is loaded"):
        generate_scored(PreviewEditor(), jobs, scorer=NoScorer("no weights"), rule=ScoreRule(min_score=0.1),
                        max_retries=1)


def test_real_tiny_scorer_with_an_impossible_threshold_drops_everything(make_rgb, tiny_dino_dir):
    # Î from the preview always differs from I, so no cosine reaches 1.0.
    jobs, _ = _jobs(make_rgb, 1)
    scorer = load_scorer("dino", model=str(tiny_dino_dir))
    out = generate_scored(PreviewEditor(), jobs, scorer=scorer, rule=ScoreRule(min_score=1.0), max_retries=1)
    assert all(o.rejected and o.rejected.startswith("dino score") and o.record.attempts == 2 for o in out)
    kept = generate_scored(PreviewEditor(), jobs, scorer=scorer, rule=ScoreRule(min_score=-1.0), max_retries=1)
    assert all(o.rejected is None and -1 <= o.score.value <= 1 and o.record.attempts == 1 for o in kept)


def test_label_scorer_needs_labels(make_rgb, tiny_clip_dir):
    jobs, _ = _jobs(make_rgb, 1)
    scorer = load_scorer("clip-label", model=str(tiny_clip_dir), class_names=["cat", "dog"])
    with pytest.raises(ValueError, match="needs one class name per job"):
        generate_scored(PreviewEditor(), jobs, scorer=scorer, rule=ScoreRule(), max_retries=0)
    out = generate_scored(PreviewEditor(), jobs, scorer=scorer, rule=ScoreRule(max_rank=2), max_retries=0,
                          labels=["cat", "dog"])
    assert [o.score.rank for o in out] and all(o.rejected is None for o in out)
