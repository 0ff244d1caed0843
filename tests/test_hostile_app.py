"""The app given hostile uploads and careless API calls (issue 19, section 4).

An output budget per upload (images and bytes, stated on the page and in the README, from
``diffusemix.ui.limits``); a zip member whose name is too long for the disk; a 30000 x 30000 PNG
(a few hundred bytes) named as over the pixel limit, not "not an image"; wrongly typed API values
answered with a plain message instead of Gradio's "Could not preprocess input component". Each test
here failed on the code before issue 19.
"""

from __future__ import annotations

import re
import sys

import gradio as gr
import pytest
from app_helpers import CAR, ROOT, clean_uploads, ctx, make_zip, png_bytes, upload  # noqa: F401 (fixtures)

from diffusemix.ui import batch_export as batch_export_tab
from diffusemix.ui.batch_export import batch_export
from diffusemix.ui.limits import MAX_EXPORT_OUTPUT_MB, MAX_EXPORT_OUTPUTS
from hostile_helpers import png_bomb

pytestmark = pytest.mark.filterwarnings("ignore::Warning:gradio.queueing")


def _export(ctx, dataset: str, *, prompts=("snowy",), size=64, stages=False):
    return batch_export(dataset, list(prompts), "", ["left"], "ramp", 8, 0.2, 0, size, 1, stages, ctx=ctx)


# ---------------------------------------------------------------------------
# the output budget per upload
# ---------------------------------------------------------------------------


def test_the_output_budget_counts_bytes_as_well_as_images(ctx, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(batch_export_tab, "MAX_EXPORT_OUTPUT_MB", 1)
    dataset = make_zip(tmp_path / "d.zip", {"cats/a.png": png_bytes(), "dogs/b.png": png_bytes()})
    # 2 images x 2 prompts at 512 px: 4 x 0.75 MB = 3 MB of images, over a 1 MB budget
    with pytest.raises(gr.Error, match=r"4 augmented images of 512 x 512.*3 MB.*the limit here is 1 MB"):
        _export(ctx, dataset, prompts=("snowy", "sunset"), size=512)
    # saved stages count too: 2 images at 256 px are 0.375 MB, with five stages each 2.25 MB
    with pytest.raises(gr.Error, match=r"with the saved stages.*the limit here is 1 MB"):
        _export(ctx, dataset, size=256, stages=True)
    summary, _zip = _export(ctx, dataset, size=256)  # under the budget: runs
    assert "made:             2 image(s)" in summary


def test_the_budget_is_stated_on_the_page_and_in_the_readme(ctx) -> None:
    with gr.Blocks() as demo:
        batch_export_tab.build_tab(ctx)
    notes = " ".join(str(getattr(b, "value", "")) for b in demo.blocks.values() if isinstance(b, gr.Markdown))
    images, mb = f"{MAX_EXPORT_OUTPUTS:,} augmented images", f"{MAX_EXPORT_OUTPUT_MB:,} MB of images"
    assert images in notes and mb in notes, notes
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert images in readme and mb in readme
    assert MAX_EXPORT_OUTPUTS <= 2000  # the 2,000 outputs of a 71 KB zip at 512 px were the case


# ---------------------------------------------------------------------------
# uploads: names too long, header bombs
# ---------------------------------------------------------------------------


def test_a_zip_member_with_a_300_character_name_is_named(ctx, tmp_path) -> None:
    long = "a" * 300 + ".png"
    dataset = make_zip(tmp_path / "long.zip", {f"cats/{long}": png_bytes(), "dogs/b.png": png_bytes()})
    with pytest.raises(gr.Error) as err:
        _export(ctx, dataset)
    message = str(err.value)
    assert "Internal error" not in message and "OSError" not in message, message
    assert "aaaa" in message and "255" in message and "rename" in message.lower(), message


def test_a_30000_pixel_square_png_is_over_the_pixel_limit_not_unreadable(ctx, tmp_path) -> None:
    from diffusemix.ui.uploads import open_upload

    bomb = png_bomb(tmp_path / "bomb.png", 30000, 30000)
    assert bomb.stat().st_size < 1000
    with pytest.raises(gr.Error, match=r"bomb\.png is 30,000 x 30,000 = 900,000,000 pixels.*up to") as err:
        open_upload(upload(bomb), "image")
    assert "not an image" not in str(err.value)
    dataset = make_zip(tmp_path / "bomb.zip", {"cats/bomb.png": bomb.read_bytes(), "dogs/b.png": png_bytes()})
    with pytest.raises(gr.Error, match=r"cats/bomb\.png is 30,000 x 30,000 = 900,000,000 pixels"):
        _export(ctx, dataset)


# ---------------------------------------------------------------------------
# wrongly typed API values: a plain message, not Gradio's preprocessing error
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client(ctx):
    from gradio_client import Client

    sys.path.insert(0, str(ROOT))
    import app

    demo = app.build_demo(ctx=ctx)
    demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True, **app.launch_kwargs(ctx))
    try:
        yield Client(demo.local_url, verbose=False)
    finally:
        demo.close()


@pytest.mark.parametrize("name, value, words", [
    ("lam", "abc", r"λ.*must be a number; got 'abc'"),
    ("seam", "wide", r"[Ss]eam.*must be a number; got 'wide'"),
    ("size", None, r"[Ss]ize.*must be a number; got None"),
    ("seed", [1], r"[Ss]eed.*must be a number; got \[1\]"),
])
def test_wrongly_typed_api_values_get_a_plain_message(client, name, value, words) -> None:
    from gradio_client import handle_file

    with pytest.raises(Exception) as err:
        client.predict(image=handle_file(CAR), **{name: value}, api_name="/explore")
    message = str(err.value)
    assert "Could not preprocess" not in message and "index" not in message and "Traceback" not in message, message
    assert re.search(words, message), message


def test_a_threshold_of_none_through_the_api_means_no_threshold(client) -> None:
    from gradio_client import handle_file

    grid, keep, *_ = client.predict(images=[{"image": handle_file(CAR), "caption": None}], candidates="snowy\nfoggy",
                                    threshold=None, api_name="/prompt_lab")
    assert keep == ["snowy", "foggy"] and len(grid) == 2
    with pytest.raises(Exception) as err:
        client.predict(images=[{"image": handle_file(CAR), "caption": None}], candidates="snowy", threshold="high",
                       api_name="/prompt_lab")
    assert "Could not preprocess" not in str(err.value) and "must be a number; got 'high'" in str(err.value)
