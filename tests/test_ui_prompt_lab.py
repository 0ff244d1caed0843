"""The Prompt lab tab (diffusemix/ui/prompt_lab.py): its handlers called directly, with the preview editor.
"""

from __future__ import annotations

from pathlib import Path

import gradio as gr
import numpy as np
import pytest
from app_helpers import CAR, FLOWER, ROOT, clean_uploads, ctx  # noqa: F401 (fixtures)
from PIL import Image

from diffusemix.prompts import load_prompts
from diffusemix.ui.prompt_lab import (
    content_warning,
    kept_set,
    lab_grid,
    lab_grid_items,
    prompt_lab,
    prompt_lab_page,
    save_kept,
)
from diffusemix.ui.shared import make_context

pytestmark = pytest.mark.filterwarnings("ignore::Warning:gradio.queueing")


def test_prompt_lab_grid_rows_are_prompts_columns_are_images(ctx):
    images = [(CAR, None), (FLOWER, None)]  # what an interactive gallery sends
    grid, keep, yaml_text, yaml_file, notes, lab = prompt_lab_page(
        images, "snowy\nsunset\nwatercolor art", "Î generated", 64, 0, ctx=ctx
    )
    items = grid["value"]
    assert grid["columns"] == 2 and len(items) == 6
    assert [c for _, c in items[:2]] == ["“snowy” · car.jpg", "“snowy” · flower.jpg"]
    assert items[5][1] == "“watercolor art” · flower.jpg"
    assert keep["choices"] == keep["value"] == ["snowy", "sunset", "watercolor art"]
    assert "my-set" in yaml_text and Path(yaml_file).read_text() == yaml_text

    # the A switch re-renders from the kept stages, without generating again
    a_grid = lab_grid_items(lab, "A augmented", ctx=ctx)
    assert np.array_equal(np.asarray(Image.open(items[0][0])), lab["rows"][0][0].generated)
    assert np.array_equal(np.asarray(Image.open(a_grid[0][0])), lab["rows"][0][0].augmented)


def test_prompt_lab_returns_plain_values_for_the_api(ctx):
    grid, keep, yaml_text, yaml_file, notes, lab = prompt_lab([CAR], "snowy\nsunset", ctx=ctx)
    assert isinstance(grid, list) and [c for _, c in grid] == ["“snowy” · car.jpg", "“sunset” · car.jpg"]
    assert keep == ["snowy", "sunset"] and notes == ""


def test_preview_tiles_say_when_a_prompt_has_no_look(ctx):
    grid, _, _, _, notes, _ = prompt_lab([CAR], "snowy\nfoggy\nneon lights", ctx=ctx)
    captions = [c for _, c in grid]
    assert captions[0] == "“snowy” · car.jpg"  # a built-in look: nothing added
    assert captions[1] == "“foggy” · car.jpg · preview: no look for this prompt"
    assert captions[2].endswith("preview: no look for this prompt")
    assert "no look for “foggy”, “neon lights”" in notes and "hash" in notes


@pytest.mark.parametrize(
    "prompt, flagged",
    [
        ("a dog on a sofa", True),
        ("a man holding an umbrella", True),
        ("cat", True),
        ("two red cars parked in a very long street", True),
        ("snowy", False),
        ("watercolor art", False),
        ("a snowy day", False),
        ("a sketch with crayon", False),  # in the paper's set
        ("a castle", True),
        ("sunset", False),
        ("ukiyo-e", False),
    ],
)
def test_content_warning_heuristic(prompt, flagged):
    assert (content_warning(prompt) is not None) is flagged


def test_prompt_lab_warns_about_content_prompts(ctx):
    *_, notes, _ = prompt_lab([CAR], "snowy\na dog on a sofa", ctx=ctx)
    assert "“a dog on a sofa”" in notes and "describe content, not a filter" in notes
    assert "“snowy”" not in notes


def test_dropped_prompts_dim_in_the_grid(ctx):
    *_, lab = prompt_lab([CAR], "snowy\nsunset", ctx=ctx)
    kept_all = lab_grid_items(lab, "Î generated", ["snowy", "sunset"], ctx=ctx)
    dropped = lab_grid_items(lab, "Î generated", ["snowy"], ctx=ctx)
    assert dropped[0][1] == kept_all[0][1] and dropped[1][1] == "dropped · “sunset” · car.jpg"
    same = np.asarray(Image.open(dropped[0][0])).astype(int)
    assert np.array_equal(same, np.asarray(Image.open(kept_all[0][0])).astype(int))
    before = np.asarray(Image.open(kept_all[1][0])).astype(float)
    after = np.asarray(Image.open(dropped[1][0])).astype(float)
    assert after.mean() > before.mean() + 50 and after.std() < 0.5 * before.std()  # faded towards white
    assert lab_grid(lab, "Î generated", ["snowy"], ctx=ctx)["columns"] == 1


def test_kept_set_yaml_is_a_loadable_prompt_file(ctx, tmp_path):
    text, path = kept_set(["snowy", "watercolor art"], "winter-art", ctx=ctx)
    book = load_prompts(path)
    assert book.default == "winter-art" and book.get() == ("snowy", "watercolor art")
    text, path = kept_set([], "x", ctx=ctx)
    assert path is None and "No prompt kept" in text
    text, path = kept_set(["snowy"], "bad name!", ctx=ctx)
    assert path is None and "not allowed" in text


def test_prompt_lab_errors(ctx, tmp_path):
    with pytest.raises(gr.Error, match="No images"):
        prompt_lab([], "snowy", "Î generated", 64, 0, ctx=ctx)
    with pytest.raises(gr.Error, match="at least one prompt"):
        prompt_lab([CAR], " \n ", "Î generated", 64, 0, ctx=ctx)
    with pytest.raises(gr.Error, match="at most 8"):
        prompt_lab([CAR] * 9, "snowy", "Î generated", 64, 0, ctx=ctx)


def test_save_kept_needs_the_flag(ctx, tmp_path):
    with pytest.raises(gr.Error, match="--allow-save-prompts"):
        save_kept(["snowy"], "mine", ctx=ctx)

    prompts = tmp_path / "prompts.yaml"
    prompts.write_text((ROOT / "prompts.yaml").read_text())
    writable = make_context("preview", prompts_path=prompts, allow_save_prompts=True)
    message, choices, _ = save_kept(["snowy", "rain"], "mine", ctx=writable)
    assert "Saved set **mine**" in message and "mine" in choices["choices"]
    assert load_prompts(prompts).get("mine") == ("snowy", "rain")
    with pytest.raises(gr.Error, match="already exists in prompts.yaml; choose another name"):
        save_kept(["snowy"], "mine", ctx=writable)
