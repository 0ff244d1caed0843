"""What the tabs share (diffusemix/ui/shared.py): boundary checks, the status banner, the GPU functions.
"""

from __future__ import annotations

import gradio as gr
import pytest
from app_helpers import CAR, clean_uploads, ctx, explore_args, make_zip, png_bytes  # noqa: F401 (fixtures)
from PIL import Image

from diffusemix.ui import batch_export as batch_export_tab
from diffusemix.ui import explore as explore_tab
from diffusemix.ui import prompt_lab as prompt_lab_tab
from diffusemix.ui.batch_export import batch_export
from diffusemix.ui.explore import explore
from diffusemix.ui.prompt_lab import prompt_lab
from diffusemix.ui.shared import editor_for, gpu, make_context, status_markdown

pytestmark = pytest.mark.filterwarnings("ignore::Warning:gradio.queueing")


def test_files_outside_the_upload_folder_are_refused(ctx, tmp_path):
    outside = tmp_path / "elsewhere.png"  # a real image, but not uploaded
    Image.new("RGB", (20, 20)).save(outside)
    with pytest.raises(gr.Error, match="must be an uploaded file"):
        explore(**explore_args(image=str(outside)), ctx=ctx)
    with pytest.raises(gr.Error, match="must be an uploaded file"):
        prompt_lab([str(outside)], "snowy", "Î generated", 64, 0, ctx=ctx)
    with pytest.raises(gr.Error, match="must be an uploaded file"):
        batch_export(str(outside), ["snowy"], "", ["left"], "ramp", 8, 0.2, 0, 64, 1, False, ctx=ctx)


def test_status_line_says_the_preview_is_not_a_diffusion_model(ctx):
    text = status_markdown(ctx)
    assert "preview editor" in text and "not a diffusion model" in text
    assert "--editor instruct-pix2pix" in text and "--model /path/to/local/folder" in text


def test_auto_editor_falls_back_to_the_preview_with_its_notice():
    auto = make_context("auto")  # no weights are cached in the tests (conftest: empty HF_HOME, offline)
    assert auto.editor.name == "preview"
    assert "Why the preview" in status_markdown(auto)


def test_gpu_functions_take_and_return_picklable_data(ctx, tmp_path, monkeypatch):
    """On ZeroGPU they run in a forked worker: arguments and results cross by pickle."""
    import pickle

    seen = []
    for module, name in ((explore_tab, "_run_augment"), (prompt_lab_tab, "_run_augment"),
                         (batch_export_tab, "_run_export")):
        original = getattr(module, name)

        def checked(*args, _original=original, **kwargs):
            pickle.dumps((args, kwargs))
            result = _original(*args, **kwargs)
            pickle.dumps(result)
            seen.append(_original.__name__)
            return result

        monkeypatch.setattr(module, name, checked)
    explore(**explore_args(), ctx=ctx)
    prompt_lab([CAR], "snowy", "Î generated", 64, 0, ctx=ctx)
    dataset = make_zip(tmp_path / "d.zip", {"cats/a.png": png_bytes(), "dogs/b.png": png_bytes()})
    batch_export(dataset, ["snowy"], "", ["left"], "ramp", 8, 0.2, 0, 64, 1, False, ctx=ctx)
    assert seen == ["_run_augment", "_run_augment", "_run_export"]


def test_gpu_decorator_is_a_no_op_without_spaces():
    def f(x):
        return x + 1

    assert gpu(duration=10)(f)(1) == 2


@pytest.mark.slow
def test_app_on_the_tiny_instruct_pix2pix(tiny_ip2p_dir):
    ctx = make_context("instruct-pix2pix", model=str(tiny_ip2p_dir), device="cpu")
    status = status_markdown(ctx)
    assert "Î is made by instruct-pix2pix" in status and str(tiny_ip2p_dir) in status
    gallery, _, records, _, _ = explore(**explore_args(set_prompts=[], extra_prompts="snowy", steps=2), ctx=ctx)
    assert len(gallery) == 6 and records["editor"]["steps"] == 2
    assert ctx.editor.spec.steps == 100  # the shared editor keeps its own settings
    variant = editor_for(ctx, steps=2, strength=0.3)  # strength is img2img's: ignored
    assert variant is not ctx.editor and variant.spec.steps == 2 and variant.pipeline is ctx.editor.pipeline
    assert editor_for(ctx, steps=100) is ctx.editor
