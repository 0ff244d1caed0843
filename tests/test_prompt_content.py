"""One prompt check (issue 20): a prompt that seems to describe content is warned about in Explore, the Prompt
lab and the exporter (CLI, library, the app's Batch export) alike, and the lab never keeps it by itself."""

from __future__ import annotations

import numpy as np
import pytest
from app_helpers import CAR, clean_uploads, ctx, explore_args, make_zip, png_bytes  # noqa: F401 (fixtures)
from PIL import Image

from diffusemix.cli import main as cli_main
from diffusemix.prompt_content import content_note, content_warning, content_warnings
from diffusemix.ui.batch_export import batch_export
from diffusemix.ui.explore import explore
from diffusemix.ui.prompt_lab import lab_threshold, passing_prompts, prompt_lab, score_table
from diffusemix.ui.shared import make_context
from export_helpers import make_dataset

pytestmark = pytest.mark.filterwarnings("ignore::Warning:gradio.queueing")
CONTENT = "a man holding a dog"
SENTENCE = content_note(CONTENT, content_warning(CONTENT) or "")


def test_the_check_and_its_sentence():
    assert content_warnings(["snowy", CONTENT, "watercolor art"]) == [(CONTENT, "names a thing ('man')")]
    assert SENTENCE.startswith(f"prompt “{CONTENT}” names a thing ('man'): it may describe content, not a filter")


def test_explore_warns_in_its_summary(ctx):
    *_, summary, _ = explore(**explore_args(set_prompts=["snowy"], extra_prompts=CONTENT), ctx=ctx)
    assert f"Warning: {SENTENCE}" in summary and summary.count("Warning:") == 1


def test_the_prompt_lab_warns_and_keeps_a_warned_prompt_only_by_hand(ctx):
    _, kept, yaml_text, _, notes, lab = prompt_lab([CAR], f"snowy\n{CONTENT}", ctx=ctx)
    assert kept == ["snowy"] and CONTENT not in yaml_text  # not kept by itself, and said so
    assert SENTENCE in notes and "tick it by hand to keep it" in notes
    assert passing_prompts(lab, None) == ["snowy"]


def test_the_threshold_does_not_keep_a_warned_prompt(tiny_dino_dir):
    scored = make_context("preview", scorer="dino", scorer_model=str(tiny_dino_dir))
    *_, notes, lab = prompt_lab([CAR], f"snowy\n{CONTENT}", "Î generated", 64, 0, None, ctx=scored)
    low = float(np.min(lab["scores"])) - 1  # every prompt passes the score
    _, keep, table = lab_threshold(lab, "Î generated", low, ctx=scored)
    assert keep["value"] == ["snowy"]
    verdicts = {r[0]: r[4] for r in score_table(lab, low)["value"]}
    assert verdicts == {"snowy": "yes", CONTENT: "yes, warned: not kept by itself"}


def test_the_exporter_warns_in_the_dry_run_and_the_summary(tmp_path, capsys):
    data = make_dataset(tmp_path / "in", classes=("a", "b"), per_class=1)
    args = ["export", str(data), str(tmp_path / "out"), "--editor", "preview", "--size", "32", "--prompts",
            f"sunset,{CONTENT}"]
    assert cli_main([*args, "--dry-run"]) == 0
    assert f"warning:  {SENTENCE}" in capsys.readouterr().out
    assert cli_main(args) == 0
    assert f"note: {SENTENCE}" in capsys.readouterr().out


def test_the_apps_batch_export_warns_in_its_summary(ctx, tmp_path):
    dataset = make_zip(tmp_path / "d.zip", {"cats/a.png": png_bytes(), "dogs/b.png": png_bytes()})
    summary, _ = batch_export(dataset, ["snowy"], CONTENT, ["left"], "ramp", 8, 0.2, 0, 64, 1, False, ctx=ctx)
    assert SENTENCE in summary


def test_a_small_upload_is_named_as_upscaled(ctx, tmp_path):
    small = tmp_path / "tiny.png"
    Image.fromarray(np.full((20, 20, 3), 90, np.uint8)).save(small)
    from app_helpers import upload

    *_, summary, _ = explore(**explore_args(image=upload(small), size=256), ctx=ctx)
    assert "The image is 20 × 20 px: upscaled 12.8× to 256 × 256 px" in summary
    *_, summary, _ = explore(**explore_args(size=64), ctx=ctx)  # the car photo is larger: nothing said
    assert "upscaled" not in summary
    *_, notes, _ = prompt_lab([upload(small)], "snowy", "Î generated", 64, 0, ctx=ctx)
    assert "tiny.png: The image is 20 × 20 px: upscaled 3.2× to 64 × 64 px" in notes
