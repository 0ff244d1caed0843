"""Scores in the Prompt lab (diffusemix/ui/prompt_lab.py), with a tiny DINOv2 scorer built offline."""

from __future__ import annotations

import gradio as gr
import numpy as np
import pytest
from app_helpers import CAR, FLOWER, clean_uploads, ctx  # noqa: F401 (fixtures)
from PIL import Image

from diffusemix.scoring import load_scorer
from diffusemix.ui.prompt_lab import DIM, lab_grid_items, lab_threshold, prompt_lab, score_table
from diffusemix.ui.shared import make_context, scores_unavailable

pytestmark = pytest.mark.filterwarnings("ignore::Warning:gradio.queueing")
PROMPTS = "snowy\nsunset\nwatercolor art"


@pytest.fixture(scope="module")
def scored_ctx(tiny_dino_dir):
    return make_context("preview", scorer="dino", scorer_model=str(tiny_dino_dir))


@pytest.fixture(scope="module")
def lab_run(scored_ctx):
    return prompt_lab([CAR, FLOWER], PROMPTS, "Î generated", 64, 0, None, ctx=scored_ctx)


def test_tiles_show_their_scores_and_the_table_their_mean_and_min(scored_ctx, lab_run):
    grid, keep, _, _, _, lab = lab_run
    table = score_table(lab, None)
    scores = np.array(lab["scores"])
    assert scores.shape == (3, 2) and np.all(scores >= -1) and np.all(scores <= 1)
    # the same scores as the scorer gives directly for (I, Î)
    i0 = lab["rows"][0][0].input
    direct = scored_ctx.scorer.score([i0], [lab["rows"][0][0].generated])[0].value
    assert scores[0, 0] == pytest.approx(direct, abs=1e-6)
    captions = [c for _, c in grid]
    assert captions[0] == f"{scores[0, 0]:.3f} · “snowy” · car.jpg"
    assert captions[5] == f"{scores[2, 1]:.3f} · “watercolor art” · flower.jpg"
    assert keep == ["snowy", "sunset", "watercolor art"]  # no threshold yet: all kept
    rows = table["value"]
    assert [r[0] for r in rows] == ["snowy", "sunset", "watercolor art"]
    for r, s in zip(rows, scores):
        assert r[1] == pytest.approx(s.mean(), abs=1e-4) and r[2] == pytest.approx(s.min(), abs=1e-4)


def test_threshold_dims_the_tiles_and_prompts_it_would_drop(scored_ctx, lab_run):
    lab = lab_run[5]
    scores = np.array(lab["scores"])
    flat = np.sort(scores.ravel())
    t = float((flat[2] + flat[3]) / 2)  # three tiles below, three above
    grid, keep, table = lab_threshold(lab, "Î generated", t, ctx=scored_ctx)
    below = scores < t
    means = scores.mean(axis=1)
    want = [p for p, m in zip(lab["prompts"], means) if m >= t]
    for k, (path, caption) in enumerate(grid["value"]):
        i, j = divmod(k, 2)
        tile = np.asarray(Image.open(path), dtype=np.float32)
        original = lab["rows"][i][j].generated.astype(np.float32)
        dropped = lab["prompts"][i] not in want
        if below[i, j]:
            assert caption.startswith(f"{scores[i, j]:.3f} < {t:g} · ")
        else:
            assert caption.startswith(f"{scores[i, j]:.3f} · ") and " < " not in caption
        assert ("dropped · " in caption) == dropped
        if below[i, j] or dropped:
            np.testing.assert_allclose(tile, original * (1 - DIM) + 255 * DIM, atol=1)
        else:
            np.testing.assert_array_equal(tile, original)
    assert keep["value"] == want
    assert [r[4] for r in table["value"]] == ["yes" if m >= t else "no (dimmed)" for m in means]
    assert [r[3] for r in table["value"]] == [f"{int(b.sum())}/2" for b in below]
    # the A view is dimmed alike
    a_caps = [c for _, c in lab_grid_items(lab, "A augmented", want, t, ctx=scored_ctx)]
    assert [f" < {t:g} · " in c for c in a_caps] == list(below.ravel())
    # the lowest threshold keeps everything, the highest nothing
    assert lab_threshold(lab, "Î generated", -1.0, ctx=scored_ctx)[1]["value"] == lab["prompts"]
    assert lab_threshold(lab, "Î generated", 1.0, ctx=scored_ctx)[1]["value"] == []


def test_a_threshold_given_with_the_run_sets_the_kept_set(scored_ctx, lab_run):
    lab = lab_run[5]
    t = float(np.array(lab["scores"]).mean(axis=1).max()) + 1e-9  # above every mean
    grid, keep, yaml_text, _, _, _ = prompt_lab([CAR, FLOWER], PROMPTS, "Î generated", 64, 0, t, ctx=scored_ctx)
    assert keep == [] and "No prompt kept" in yaml_text
    assert all(" · dropped · " in c for _, c in grid)


def test_without_weights_the_lab_says_scores_are_unavailable_and_how_to_get_them(ctx):
    ctx = make_context("preview", scorer="auto")
    assert not ctx.scorer.available
    grid, keep, _, _, _, lab = prompt_lab([CAR], "snowy\nsunset", "Î generated", 64, 0, 0.9, ctx=ctx)
    assert lab["scores"] is None and score_table(lab, 0.9)["visible"] is False
    assert [c for _, c in grid] == ["“snowy” · car.jpg", "“sunset” · car.jpg"]
    assert keep == ["snowy", "sunset"]
    note = scores_unavailable(ctx)
    assert note.startswith("Scores are unavailable: no scorer weights are available here")
    assert "hf download facebook/dinov2-small" in note and "--score auto" in note


def test_the_lab_takes_no_label_scorer_and_reports_load_errors(tmp_path):
    with pytest.raises(ValueError, match="no class names: use --score dino or clip"):
        make_context("preview", scorer="clip-label")
    from diffusemix.errors import ScorerLoadError

    with pytest.raises(ScorerLoadError, match="does not exist"):
        make_context("preview", scorer="dino", scorer_model=str(tmp_path / "nope"))
    assert load_scorer("none").available is False
