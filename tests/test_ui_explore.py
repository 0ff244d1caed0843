"""The Explore tab (diffusemix/ui/explore.py): its handlers called directly, with the preview editor.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
from app_helpers import CAR, clean_uploads, ctx, explore_args, upload  # noqa: F401 (fixtures)
from PIL import Image

from diffusemix.ui.explore import explore, make_downloads
from diffusemix.ui.shared import mask_kind_changed
from diffusemix.ui.shared import MAX_SEED, show_set

pytestmark = pytest.mark.filterwarnings("ignore::Warning:gradio.queueing")


def test_explore_returns_six_stages_per_prompt_in_order(ctx):
    gallery, seed, records, summary, state = explore(**explore_args(), ctx=ctx)
    assert len(gallery) == 2 * 6
    captions = [c for _, c in gallery]
    assert [c.split("·")[0].strip() for c in captions] == ["I", "Î", "M", "H", "F", "A"] * 2
    assert captions[0] == "I · input" and captions[3] == "H · hybrid" and captions[4] == "F · fractal"
    assert "snowy" in captions[1] and "sunset" in captions[7]
    for path, _ in gallery:
        with Image.open(path) as im:
            assert im.format == "PNG" and im.size == (64, 64)
    with Image.open(gallery[2][0]) as mask:
        assert mask.mode == "L"  # the mask, lossless grey
    with Image.open(gallery[5][0]) as a:
        assert np.array_equal(np.asarray(a), state["stages"][0].augmented)  # lossless
    assert seed == 3
    assert records["editor"]["name"] == "preview"
    assert [r["prompt"] for r in records["samples"]] == ["snowy", "sunset"]
    assert records["recipe"]["seed"] == 3 and records["recipe"]["size"] == 64
    assert "master seed **3**" in summary
    assert len(state["stages"]) == 2


def test_explore_is_reproducible_and_randomise_shows_the_seed_used(ctx):
    a = explore(**explore_args(), ctx=ctx)
    b = explore(**explore_args(), ctx=ctx)
    for (x, _), (y, _) in zip(a[0], b[0]):
        assert np.array_equal(np.asarray(Image.open(x)), np.asarray(Image.open(y)))
    _, seed, records, _, _ = explore(**explore_args(randomize_seed=True), ctx=ctx)
    assert 0 <= seed <= MAX_SEED and records["recipe"]["seed"] == seed


def test_explore_picked_and_uploaded_fractals(ctx, tmp_path):
    name = ctx.fractals.names[5]
    *_, state = explore(**explore_args(fractal="pick", fractal_name=name), ctx=ctx)
    assert {s.record.fractal for s in state["stages"]} == {name}
    assert np.array_equal(state["stages"][0].fractal, ctx.fractals.load(name, 64))

    fractal = tmp_path / "my_fractal.png"
    Image.new("RGB", (50, 70), (0, 200, 100)).save(fractal)
    *_, state = explore(**explore_args(fractal="upload", fractal_image=upload(fractal)), ctx=ctx)
    assert state["stages"][0].record.fractal == "(uploaded)"
    assert (state["stages"][0].fractal == np.array([0, 200, 100], np.uint8)).all()


@pytest.mark.parametrize(
    "over, message",
    [
        ({"image": None}, "No image"),
        ({"set_prompts": [], "extra_prompts": ""}, "at least one prompt"),
        ({"layouts": []}, "at least one mask layout"),
        ({"lam": 5}, r"λ \(fractal weight\) must be in \[0, 1\]; got 5.0"),  # the control's label, not Recipe.lam
        ({"mask": "soft"}, "Mask kind must be one of binary, linspace, ramp; got 'soft'"),
        ({"size": 4000}, r"Output size S \(px\) must be between 64 and 512"),
        ({"seed": 1.5}, "seed must be a whole number"),
        ({"lam": None}, r"λ \(fractal weight\) must be a number"),
        ({"seed": "abc"}, "seed must be a number"),
        ({"extra_prompts": "a, b, c, d, e, f, g, h, i, j, k, l, m"}, "at most 12"),
        ({"fractal": "pick", "fractal_name": None}, "Pick a fractal"),
        ({"fractal": "pick", "fractal_name": "../../etc/passwd"}, "is not one of its 128 names"),
        ({"fractal": "upload"}, "Upload a fractal image"),
        ({"fractal": "mandelbrot"}, "fractal must be one of"),
        ({"image": "/etc/hostname"}, "must be an uploaded file"),
        ({"image": "/tmp/../etc/hostname"}, "must be an uploaded file"),
        ({"fractal": "upload", "fractal_image": "/etc/passwd"}, "must be an uploaded file"),
    ],
)
def test_explore_bad_input_is_a_readable_gr_error(ctx, over, message):
    with pytest.raises(gr.Error, match=message):
        explore(**explore_args(**over), ctx=ctx)


def test_explore_non_image_upload_names_the_problem(ctx, tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_text("this is not an image")
    with pytest.raises(gr.Error, match="not an image Pillow can read"):
        explore(**explore_args(image=upload(bad)), ctx=ctx)


def test_downloads_figure_and_zip_with_records(ctx):
    *_, state = explore(**explore_args(), ctx=ctx)
    files = make_downloads(state, ctx=ctx)["value"]
    png, pdf, archive = map(Path, files)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and pdf.read_bytes()[:5] == b"%PDF-"
    with zipfile.ZipFile(archive) as zf:
        names = zf.namelist()
        rows = [json.loads(line) for line in zf.read("records.jsonl").decode().splitlines()]
        assert sum(n.endswith(".png") for n in names) == 12
        first = Image.open(io.BytesIO(zf.read(rows[0]["files"]["augmented"])))
        assert first.format == "PNG" and first.size == (64, 64)
    assert [r["prompt"] for r in rows] == ["snowy", "sunset"]
    assert rows[0]["editor"]["name"] == "preview" and "lam" in rows[0] and "seed" in rows[0]
    with pytest.raises(gr.Error, match="press Generate first"):
        make_downloads(None, ctx=ctx)


def test_prompt_set_picker_fills_the_checkboxes(ctx):
    update = show_set("weather", ctx=ctx, check="two")
    assert update["choices"][0] == "Autumn" and update["value"] == ["Autumn", "snowy"]
    assert show_set("art", ctx=ctx, check="all")["value"] == list(ctx.book.get("art"))
    with pytest.raises(gr.Error, match="unknown prompt set"):
        show_set("nope", ctx=ctx)


def test_records_and_zip_rows_leave_the_fallback_notice_to_the_banner(tmp_path):
    from diffusemix.editors.preview import PreviewEditor
    from diffusemix.ui.shared import make_context, status_markdown

    notice = "InstructPix2Pix could not be loaded from /work/some/checkout/path: " + "x" * 900
    fallback = make_context(PreviewEditor(notice=notice))
    _, _, records, _, state = explore(**explore_args(), ctx=fallback)
    assert "notice" not in records["editor"] and "checkout" not in json.dumps(records)
    files = make_downloads(state, ctx=fallback)["value"]
    with zipfile.ZipFile(files[2]) as zf:
        text = zf.read("records.jsonl").decode()
    assert "checkout" not in text and "notice" not in text
    assert "Why the preview" in status_markdown(fallback)  # the banner still says it


def test_download_names_differ_per_image_and_run(ctx):
    names = []
    for image in (CAR, upload(Path(CAR).with_name("flower.jpg")), CAR):
        *_, state = explore(**explore_args(image=image, seed=0), ctx=ctx)
        names.append([Path(p).name for p in make_downloads(state, ctx=ctx)["value"]])
    flat = [n for run in names for n in run]
    assert len(set(flat)) == len(flat), flat
    assert names[0][0].startswith("diffusemix-car-0-") and names[1][0].startswith("diffusemix-flower-0-")


def test_seam_slider_follows_the_mask_kind():
    assert mask_kind_changed("binary")["interactive"] is False
    assert mask_kind_changed("ramp")["interactive"] is True
    assert mask_kind_changed("linspace")["interactive"] is True


def test_explore_defaults_match_the_page(ctx):
    gallery, seed, records, _, _ = explore(CAR, ctx=ctx)
    assert len(gallery) == 12 and seed == 0
    assert [r["prompt"] for r in records["samples"]] == list(ctx.book.get())[:2]
    assert records["recipe"]["size"] == 256 and records["recipe"]["mask"] == "linspace"
    assert records["recipe"]["arithmetic"] == "reference"


def test_pixel_cap_is_read_from_the_header(ctx, tmp_path):
    huge = tmp_path / "huge.png"
    Image.new("1", (9000, 9000)).save(huge)  # 81 MP, a few KB on disk
    with pytest.raises(gr.Error, match=r"huge.png is 9,000 x 9,000 = 81,000,000 pixels; the app takes") as err:
        explore(**explore_args(image=upload(huge)), ctx=ctx)
    assert "/" not in str(err.value)
