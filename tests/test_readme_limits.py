"""The app's limits are stated once (diffusemix/ui/limits.py): the page and the README say the same words."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest.importorskip("gradio")

from diffusemix.ui.limits import app_limits_text, export_limits_text  # noqa: E402

README = re.sub(r"\s+", " ", (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8"))


def test_the_readme_states_the_pages_limits_word_for_word():
    assert export_limits_text() in README
    assert app_limits_text() in README


def test_the_batch_export_page_states_them_from_the_same_place():
    import gradio as gr

    from diffusemix.ui import batch_export
    from diffusemix.ui.shared import make_context

    ctx = make_context("preview", scorer="none")
    with gr.Blocks() as page:
        batch_export.build_tab(ctx)
    texts = [b.value for b in page.blocks.values() if isinstance(b, gr.Markdown) and isinstance(b.value, str)]
    note = next(t for t in texts if t.startswith("Upload a **.zip of class folders**"))
    assert f"Limits: {export_limits_text()}." in note
