"""The app with an instruction editor (tiny random FLUX.2 [klein]) as its shared editor, and the Prompt lab's
side by side with more editors loaded at start (``--compare-editor``): handlers called directly, and the
running server through gradio_client.
"""

from __future__ import annotations

import sys
from pathlib import Path

import gradio as gr
import pytest
from app_helpers import CAR, FLOWER, ROOT, clean_uploads, explore_args, make_zip, png_bytes  # noqa: F401
from PIL import Image

from diffusemix.editors import EditorSpec
from diffusemix.ui.batch_export import batch_export
from diffusemix.ui.compare import compare_lab, parse_compare_spec
from diffusemix.ui.explore import explore
from diffusemix.ui.prompt_lab import prompt_lab
from diffusemix.ui.shared import make_context, status_markdown

sys.path.insert(0, str(ROOT))

pytestmark = pytest.mark.filterwarnings("ignore::Warning:gradio.queueing")

EDIT = 64


def _spec(name: str, folder: Path) -> EditorSpec:
    return EditorSpec(name=name, model=str(folder), device="cpu", dtype="float32", steps=2, edit_size=EDIT)


@pytest.fixture(scope="module")
def klein_ctx(tiny_flux2_klein_dir):
    return make_context(_spec("flux2-klein", tiny_flux2_klein_dir))


@pytest.fixture(scope="module")
def compare_ctx(tiny_flux2_klein_dir, tiny_flux_kontext_dir, tiny_dino_dir):
    """FLUX.2 [klein] shared, FLUX.1 Kontext and the preview loaded beside it, a tiny DINOv2 scorer."""
    from diffusemix.scoring import ScorerSpec

    return make_context(_spec("flux2-klein", tiny_flux2_klein_dir),
                        compare=[_spec("flux-kontext", tiny_flux_kontext_dir), "preview"],
                        scorer=ScorerSpec(name="dino", model=str(tiny_dino_dir)))


def test_explore_with_an_instruction_editor(klein_ctx):
    gallery, seed, records, summary, state = explore(**explore_args(steps=2, size=64), ctx=klein_ctx)
    assert len(gallery) == 2 * 6
    for path, _ in gallery:
        with Image.open(path) as im:
            assert im.size == (64, 64)
    ed = records["editor"]
    assert ed["name"] == "flux2-klein" and ed["edit_size"] == EDIT and ed["steps"] == 2
    assert "{prompt}" in ed["prompt_template"] and ed["licence"] is None  # toy weights: licence unknown
    assert "Î by **flux2-klein**" in summary


def test_prompt_lab_with_an_instruction_editor(klein_ctx):
    grid, kept, yaml_text, yaml_file, notes, lab = prompt_lab([CAR, FLOWER], "snowy\nsunset", size=64, seed=1,
                                                             ctx=klein_ctx)
    assert len(grid) == 2 * 2 and kept == ["snowy", "sunset"]
    assert all(s.editor == "flux2-klein" and s.generated.shape == (64, 64, 3) for row in lab["rows"] for s in row)


def test_the_banner_names_the_licence_and_the_batch_export_needs_the_operators_acceptance(klein_ctx, tmp_path):
    text = status_markdown(klein_ctx)
    assert "flux2-klein" in text and "Licence of the weights" in text and "licence unknown here" in text
    assert "the Batch export is off" in text and "--accept-license non-commercial" in text
    zip_path = make_zip(tmp_path / "data.zip", {"cat/a.png": png_bytes(), "dog/b.png": png_bytes((10, 200, 30))})
    with pytest.raises(gr.Error, match="Accept licence is needed: the licence of the flux2-klein weights"):
        batch_export(zip_path, ["snowy"], "", ["left"], "linspace", 4, 0.2, 0, 64, 1, False, ctx=klein_ctx)
    klein_ctx.accept_license = "non-commercial"
    try:
        assert "accepted by this app's operator" in status_markdown(klein_ctx)
        summary, archive = batch_export(zip_path, ["snowy"], "", ["left"], "linspace", 4, 0.2, 0, 64, 1, False,
                                        ctx=klein_ctx)
        assert "made:             2 image(s)" in summary and "accepted: non-commercial use of the weights" in summary
        assert Path(archive).is_file()
    finally:
        klein_ctx.accept_license = None


def test_compare_editors_in_the_prompt_lab(compare_ctx):
    tiles, table, note = compare_lab([CAR, FLOWER], "snowy\nsunset", size=64, seed=2, ctx=compare_ctx)
    # labelled by name and, for a model that is not the editor's default, the model's folder name
    editors = ["flux2-klein (pipeline)", "flux-kontext (pipeline)", "preview (not a diffusion model)"]
    # one row per editor, one column per (prompt, image): 3 x 2 x 2 tiles, each scored
    assert len(tiles) == 3 * 2 * 2
    captions = [c for _, c in tiles]
    assert [c.split(" · ")[1] for c in captions[::4]] == editors
    assert all(float(c.split(" · ")[0]) <= 1.0 for c in captions)
    assert "“snowy”" in captions[0] and "car.jpg" in captions[0] and "flower.jpg" in captions[1]
    for path, _ in tiles:
        with Image.open(path) as im:
            assert im.size == (64, 64)
    assert [r[0] for r in table] == [e for e in editors for _ in range(2)]
    assert "licence unknown" in note and "preview" in note
    # the banner names every loaded editor and its licence
    banner = status_markdown(compare_ctx)
    assert "side by side" in banner and "flux-kontext" in banner and "no weights (the preview editor" in banner


def test_compare_needs_a_second_editor(klein_ctx):
    with pytest.raises(gr.Error, match="--compare-editor"):
        compare_lab([CAR], "snowy", ctx=klein_ctx)


def test_the_apps_command_line_takes_the_editors_to_compare_and_the_acceptance(monkeypatch):
    import app

    monkeypatch.delenv("DIFFUSEMIX_EDITOR", raising=False)
    args = app.parse_args(["--editor", "preview", "--compare-editor", "flux2-klein=/models/klein",
                           "--compare-editor", "qwen-image-edit", "--accept-license", "non-commercial"])
    assert [(s.name, s.model) for s in args.compare_specs] == [("flux2-klein", "/models/klein"),
                                                               ("qwen-image-edit", None)]
    assert args.accept_license == "non-commercial"
    monkeypatch.setenv("DIFFUSEMIX_COMPARE_EDITORS", "flux-kontext, preview")
    assert [s.name for s in app.parse_args([]).compare_specs] == ["flux-kontext", "preview"]
    with pytest.raises(SystemExit):
        app.parse_args(["--compare-editor", "dall-e"])
    assert parse_compare_spec("flux2-klein", device="cuda").device == "cuda"


def test_a_compare_editor_that_cannot_load_stops_the_app_at_start(tmp_path, monkeypatch):
    from diffusemix.errors import EditorLoadError

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty"))
    with pytest.raises(EditorLoadError, match="hf download black-forest-labs/FLUX.2-klein-4B"):
        make_context("preview", compare=["flux2-klein"])


def test_the_running_app_serves_the_lab_and_the_side_by_side(compare_ctx):
    import app
    from gradio_client import Client, handle_file

    demo = app.build_demo(ctx=compare_ctx)
    demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True, **app.launch_kwargs(demo.ctx))
    try:
        client = Client(demo.local_url, verbose=False)
        assert "/compare_editors" in client.view_api(print_info=False, return_format="dict")["named_endpoints"]
        images = [{"image": handle_file(CAR), "caption": None}]
        grid, keep, *_ = client.predict(images=images, candidates="snowy", size=64, api_name="/prompt_lab")
        assert len(grid) == 1 and keep == ["snowy"]
        tiles, table, note = client.predict(images=images, candidates="snowy", size=64, api_name="/compare_editors")
        assert len(tiles) == 3 and tiles[0]["caption"].split(" · ")[1] == "flux2-klein (pipeline)"
        assert len(table["data"]) == 3 and "flux-kontext" in note
    finally:
        demo.close()
