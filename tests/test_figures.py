"""The stage grid figure: built from synthetic stages, written as PNG and PDF."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest
from PIL import Image

from diffusemix.engine import STAGE_NAMES, apply_record
from diffusemix.figures import sample_label, save_figure, stage_grid, stage_label
from diffusemix.recipe import Recipe, draw

S = 40


def _stages(n: int, *, prompts: tuple[str, ...] | None = None):
    """n samples of synthetic stages (I, Î, F from a seeded generator)."""
    rng = np.random.default_rng(n)
    prompts = prompts or tuple(f"prompt {k}" for k in range(n))
    records = draw(Recipe(size=S, prompts=prompts, layouts=("left", "top")), "synthetic", ["f0", "f1"])
    image = rng.integers(0, 256, (S, S, 3), dtype=np.uint8)
    out = []
    for rec in records:
        generated = rng.integers(0, 256, (S, S, 3), dtype=np.uint8)
        fractal = rng.integers(0, 256, (S, S, 3), dtype=np.uint8)
        out.append(apply_record(rec, image, generated, fractal))
    return out


def test_labels_name_symbol_stage_and_editor():
    assert stage_label("input") == "I  input"
    assert stage_label("generated", "preview") == "Î  generated (preview)"
    assert stage_label("augmented").startswith("A")
    with pytest.raises(ValueError, match="unknown stage 'nope'"):
        stage_label("nope")
    label = sample_label(_stages(1, prompts=("watercolor art",))[0])
    assert "watercolor art" in label and "λ = 0.20" in label


def test_long_prompt_is_wrapped_not_cut_off():
    label = sample_label(_stages(1, prompts=("a sketch with crayon on rough paper, very long indeed",))[0])
    first, second = label.splitlines()[:2]
    assert len(first) <= 22 and second.endswith("…”")


def test_grid_has_one_axes_per_stage_and_sample():
    fig = stage_grid(_stages(3), title="t", editor="preview")
    assert len(fig.axes) == 3 * len(STAGE_NAMES)
    texts = [t.get_text() for t in fig.texts]
    assert r"$\hat{I}$  generated (preview)" in texts and r"$A$  augmented" in texts and "t" in texts
    assert sum("prompt" in t for t in texts) == 3


def test_grid_does_not_touch_pyplot_state():
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    stage_grid(_stages(1))
    assert plt.get_fignums() == before
    assert matplotlib.get_backend()  # still answerable: nothing switched


def test_columns_subset_and_bad_input():
    fig = stage_grid(_stages(2), columns=("input", "augmented"))
    assert len(fig.axes) == 4
    with pytest.raises(ValueError, match="at least one sample"):
        stage_grid([])
    with pytest.raises(ValueError, match="unknown stage 'x'"):
        stage_grid(_stages(1), columns=("x",))


def test_png_and_pdf_are_written_and_grow_with_rows(tmp_path):
    sizes = []
    for rows in (1, 3):
        fig = stage_grid(_stages(rows), editor="preview")
        png = save_figure(fig, tmp_path / f"grid{rows}.png", dpi=100)
        pdf = save_figure(fig, tmp_path / f"grid{rows}.pdf")
        assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 5_000
        with Image.open(png) as im:
            assert im.format == "PNG"
            sizes.append(im.size)
    (w1, h1), (w3, h3) = sizes
    assert w1 == w3 and h3 > 2 * h1 * 0.9  # same width, three rows about three times as tall
    assert w1 > 6 * 100  # six cells of more than an inch at 100 dpi


def test_save_figure_refuses_unknown_format_and_missing_folder(tmp_path):
    fig = stage_grid(_stages(1))
    with pytest.raises(ValueError, match="format"):
        save_figure(fig, tmp_path / "grid.jpg")
    with pytest.raises(ValueError, match="does not exist"):
        save_figure(fig, tmp_path / "missing" / "grid.png")


def test_prompts_with_dollar_signs_are_plain_text(tmp_path):
    fig = stage_grid(_stages(2, prompts=("price $\\frac$ tag", "a $100 bill and $5 coin")), title="cost $x$")
    png = save_figure(fig, tmp_path / "dollars.png", dpi=60)  # mathtext would fail to parse the first
    assert png.stat().st_size > 1000
    texts = [t for t in fig.texts if "bill" in t.get_text() or "tag" in t.get_text() or "cost" in t.get_text()]
    assert len(texts) == 3 and all(t.get_parse_math() is False for t in texts)


def test_a_figure_made_with_the_preview_says_so_in_its_title(tmp_path):
    # issue 8: the library's figure (not only the app's) says when Î is a stand-in
    from diffusemix.editors import load_editor
    from diffusemix.engine import augment
    from diffusemix.fractals import FractalSet
    from diffusemix.fractals import write_fractal_set

    write_fractal_set(tmp_path / "f", count=2, size=32, seed=1)
    image = np.random.default_rng(0).integers(0, 256, (S, S, 3), dtype=np.uint8)
    stages = augment(image, Recipe(size=S, prompts=("snowy",)), load_editor("preview"),
                     FractalSet.from_folder(tmp_path / "f"))
    for title in (None, "my figure"):
        texts = [t.get_text() for t in stage_grid(stages, title=title).texts]
        assert any("preview editor" in t and "not a diffusion model" in t for t in texts), texts
        assert title is None or any(title in t for t in texts)
    # stages from elsewhere (no editor known) and a named diffusion editor carry no such title
    texts = [t.get_text() for t in stage_grid(_stages(1)).texts]
    assert not any("preview" in t for t in texts)
    texts = [t.get_text() for t in stage_grid(_stages(1), editor="preview").texts]
    assert any("not a diffusion model" in t for t in texts)
