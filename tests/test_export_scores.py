"""Exporter with scores (--score, --min-similarity, --max-label-rank): rows, retries, drops, summary, CLI."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from export_helpers import RECIPE, dataset, fractals, preview, rows  # noqa: F401 (fixtures)
from PIL import Image

from diffusemix import cli
from diffusemix.editors import PreviewEditor, retry_seed
from diffusemix.editors.base import EditRequest
from diffusemix.errors import DiffuseMixError
from diffusemix.export import ExportOptions, export_dataset, folder
from diffusemix.recipe import draw
from diffusemix.scoring import Score, ScoreRule, load_scorer


class FirstRoundLow:
    """A test scorer: in its first call, pairs at even positions score 0.1; every other score is 0.9."""

    name, available, needs_labels = "dino", True, False

    def __init__(self) -> None:
        self.calls = 0

    def describe(self) -> dict:
        return {"name": "dino", "model": "test-scorer", "summary": "dino (test-scorer)"}

    def score(self, inputs: Sequence[np.ndarray], generated: Sequence[np.ndarray], *, labels=None) -> list[Score]:
        self.calls += 1
        return [Score(0.1 if self.calls == 1 and k % 2 == 0 else 0.9, "dino") for k in range(len(generated))]


def run(inp: Path, out: Path, fractals, *, editor=None, scorer=None, score_rule=None, **opts):
    return export_dataset(inp, out, recipe=RECIPE, editor=editor or preview(), fractals=fractals,
                          options=ExportOptions(**opts), progress_bar=False, scorer=scorer, score_rule=score_rule)


def _errors(out: Path) -> list[dict]:
    path = out / "errors.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_scores_go_into_every_row_and_the_summary(dataset, fractals, tmp_path, tiny_dino_dir):
    scorer = load_scorer("dino", model=str(tiny_dino_dir))
    summary = run(dataset, tmp_path / "out", fractals, scorer=scorer, score_rule=ScoreRule(min_score=-1.0),
                  chunk_size=4)
    got = rows(tmp_path / "out")
    assert len(got) == summary.made == 20 and summary.rejected == 0
    assert all(r["scorer"] == "dino" and -1 <= r["score"] <= 1 and "label_rank" not in r for r in got)
    text = summary.format()
    assert f"scorer:           dino ({tiny_dino_dir}), keeps min -1" in text
    for prompt in RECIPE.prompts:
        mean = np.mean([r["score"] for r in got if r["prompt"] == prompt])
        assert f"mean score {mean:.3f}  dropped 0/10 (0%)" in text
    settings = json.loads((tmp_path / "out" / ".diffusemix" / "run.json").read_text())
    assert settings["scorer"]["name"] == "dino"
    assert settings["scorer"]["rule"] == {"min_score": -1.0, "max_rank": None}


def test_unscored_export_has_no_score_columns(dataset, fractals, tmp_path):
    run(dataset, tmp_path / "out", fractals)
    assert "score" not in rows(tmp_path / "out")[0]


def test_a_scored_cache_carries_the_scores_for_training(dataset, fractals, tmp_path, tiny_dino_dir):
    from diffusemix.data import DiffuseMixDataset

    out = tmp_path / "cache"
    scorer = load_scorer("dino", model=str(tiny_dino_dir))
    run(dataset, out, fractals, scorer=scorer, score_rule=ScoreRule(), cache=True)
    got = rows(out)
    assert got and all("input_file_name" in r and -1 <= r["score"] <= 1 for r in got)
    median = float(np.median([r["score"] for r in got]))
    with pytest.warns(UserWarning):  # the preview's Î is not DiffuseMix data
        ds = DiffuseMixDataset(out, fractals=fractals.folder, min_score=median)
    assert ds.skipped_low_score == sum(r["score"] < median for r in got) > 0


def test_a_low_score_is_retried_with_a_recorded_seed(dataset, fractals, tmp_path):
    out = tmp_path / "out"
    summary = run(dataset, out, fractals, scorer=FirstRoundLow(), score_rule=ScoreRule(min_score=0.5),
                  chunk_size=100, save_stages=True)
    got = rows(out)
    assert summary.made == len(got) == 20 and summary.rejected == 0 and not _errors(out)
    drawn = {}
    for src in {r["source"] for r in got}:
        for rec in draw(RECIPE, src, fractals.names):
            drawn[(src, rec.prompt)] = rec.seed
    retried = [r for r in got if r["attempts"] == 2]
    assert len(retried) == 10  # the even positions of the one chunk
    editor = PreviewEditor()
    for r in got:
        s0 = drawn[(r["source"], r["prompt"])]
        assert r["seed"] == (retry_seed(s0, 1) if r["attempts"] == 2 else s0)
        assert r["score"] == 0.9
        # the saved Î is what the recorded seed makes
        i = np.asarray(Image.open(folder.stage_path(out, "input", r["file_name"])))
        gen = np.asarray(Image.open(folder.stage_path(out, "generated", r["file_name"])))
        np.testing.assert_array_equal(gen, editor.edit([EditRequest(i, r["prompt"], r["seed"])])[0].image)


def test_a_score_below_the_threshold_after_every_retry_is_dropped_and_listed(dataset, fractals, tmp_path,
                                                                              tiny_dino_dir):
    out = tmp_path / "out"
    scorer = load_scorer("dino", model=str(tiny_dino_dir))
    editor = preview()
    # the preview's Î always differs from I: no cosine reaches 1.0
    summary = run(dataset, out, fractals, editor=editor, scorer=scorer, score_rule=ScoreRule(min_score=1.0),
                  save_stages=True)
    assert summary.made == 0 and summary.rejected == 20 and editor.edited == 20 * 3  # max_retries 2
    errs = [e for e in _errors(out) if e["kind"] == "low-score"]
    assert len(errs) == 20
    e = errs[0]
    assert e["attempts"] == 3 and e["scorer"] == "dino" and -1 <= e["score"] < 1.0
    assert e["reason"] == f"generated image rejected: dino score {e['score']:.3f} < min 1 after 3 attempts"
    assert (out / "metadata.jsonl").read_text() == ""
    assert not (out / e["file_name"]).exists()
    assert folder.stage_path(out, "rejected", e["file_name"]).is_file()
    text = summary.format()
    assert "low score:        20" in text and "dropped 10/10 (100%)" in text and "errors listed in" in text
    # a second run skips them (reported, not retried) and writes the same lists
    again = run(dataset, out, fractals, editor=preview(), scorer=scorer, score_rule=ScoreRule(min_score=1.0),
                save_stages=True)
    assert again.made == 0 and again.rejected == 0 and again.skipped_done == 0
    assert len([x for x in _errors(out) if x["kind"] == "low-score"]) == 20


def test_another_threshold_is_another_output(dataset, fractals, tmp_path):
    run(dataset, tmp_path / "out", fractals, scorer=FirstRoundLow(), score_rule=ScoreRule(min_score=0.5))
    with pytest.raises(DiffuseMixError, match="made with other settings"):
        run(dataset, tmp_path / "out", fractals, scorer=FirstRoundLow(), score_rule=ScoreRule(min_score=0.6))


def test_a_rule_without_a_scorer_is_refused(dataset, fractals, tmp_path):
    with pytest.raises(ValueError, match="needs scores, but no scorer is loaded"):
        run(dataset, tmp_path / "out", fractals, score_rule=ScoreRule(min_score=0.5))


# -- command line ---------------------------------------------------------------


def _cli(dataset, out, fractal_dir, *extra) -> list[str]:
    return ["export", str(dataset), str(out), "--editor", "preview", "--size", "32", "--prompts", "sunset,snowy",
            "--fractals", str(fractal_dir), "--no-progress", *extra]


def test_cli_label_scores_and_rank_rule(dataset, fractals, tmp_path, tiny_clip_dir, capsys):
    out = tmp_path / "out"
    code = cli.main(_cli(dataset, out, fractals.folder, "--score", "clip-label", "--scorer-model", str(tiny_clip_dir),
                         "--max-label-rank", "3", "--label-template", "a picture of a {}"))
    text = capsys.readouterr().out
    assert code == 0
    got = rows(out)
    assert all(0 <= r["score"] <= 1 and 1 <= r["label_rank"] <= 3 and 1 <= r["input_label_rank"] <= 3
               and 0 <= r["input_score"] <= 1 for r in got)
    assert "scorer:           clip-label" in text and "true class in the top 3" in text
    settings = json.loads((out / ".diffusemix" / "run.json").read_text())
    assert settings["scorer"]["template"] == "a picture of a {}"


def test_cli_score_flag_errors(dataset, fractals, tmp_path, capsys, tiny_dino_dir):
    cases = [
        (["--min-similarity", "0.5"], r"--min-similarity needs a scorer \(--score dino, clip or clip-label\)"),
        (["--score", "dino", "--max-label-rank", "1"], "--max-label-rank needs the clip-label scorer"),
        (["--score", "dino", "--min-similarity", "2"], r"--min-similarity must be a number in \[-1, 1\]"),
        (["--score", "auto", "--min-similarity", "0.5"], "--min-similarity needs scores, but no scorer is loaded"
                                                          r" \(no scores: no scorer weights are available here"),
        (["--score", "dino"], "`hf download facebook/dinov2-small`"),
        (["--score", "clip", "--scorer-model", str(tiny_dino_dir)], "holds a 'dinov2' model"),
    ]
    for k, (extra, message) in enumerate(cases):
        code = cli.main(_cli(dataset, tmp_path / f"out{k}", fractals.folder, *extra))
        err = capsys.readouterr().err
        assert code == 2, extra
        import re

        assert re.search(message, err), (extra, err)


def test_cli_auto_without_weights_exports_without_scores_and_says_so(dataset, fractals, tmp_path, capsys):
    code = cli.main(_cli(dataset, tmp_path / "out", fractals.folder, "--score", "auto"))
    captured = capsys.readouterr()
    assert code == 0 and "note: no scores: no scorer weights are available here" in captured.err
    assert "hf download facebook/dinov2-small" in captured.err
    assert "score" not in rows(tmp_path / "out")[0] and "scorer:" not in captured.out
