"""diffusemix.compare: one image through several editors with the same prompts and seed."""

from __future__ import annotations

import numpy as np
import pytest

from diffusemix.compare import compare_editors, comparison_figure, editor_label
from diffusemix.editors import load_editor
from diffusemix.errors import DiffuseMixError
from diffusemix.fractals import FractalSet
from diffusemix.images import prepare
from diffusemix.recipe import Recipe


@pytest.fixture(scope="module")
def editors(tiny_flux2_klein_dir, tiny_ip2p_dir):
    return [
        load_editor("flux2-klein", model=str(tiny_flux2_klein_dir), device="cpu", dtype="float32", steps=2,
                    edit_size=64),
        load_editor("instruct-pix2pix", model=str(tiny_ip2p_dir), device="cpu", steps=2),
        load_editor("preview"),
    ]


def test_the_same_records_for_every_editor_and_only_i_hat_differs(editors, make_rgb, tiny_dino_dir):
    from diffusemix.scoring import load_scorer

    recipe = Recipe(prompts=("snowy", "sunset"), size=48, seed=4, seam=4)
    image = prepare(make_rgb(60, 50, 1), recipe.size)
    scorer = load_scorer("dino", model=str(tiny_dino_dir))
    got = compare_editors(image, recipe, editors, FractalSet.default(), source="cat.png", scorer=scorer)
    assert got.labels == ("flux2-klein (pipeline)", "instruct-pix2pix (pipeline)", "preview (not a diffusion model)")
    assert got.prompts == ("snowy", "sunset")
    first = got.stages[got.labels[0]]
    for label in got.labels:
        stages = got.stages[label]
        assert [s.record for s in stages] == [s.record for s in first]  # prompt, layout, fractal, λ, seed
        for s, f in zip(stages, first):
            assert np.array_equal(s.input, f.input) and np.array_equal(s.mask, f.mask)
            assert np.array_equal(s.fractal, f.fractal) and s.generated.shape == (48, 48, 3)
    assert not np.array_equal(first[0].generated, got.stages[got.labels[2]][0].generated)
    assert set(got.scores) == set(got.labels) and all(len(v) == 2 for v in got.scores.values())
    assert all(-1.0 <= v <= 1.0 for v in got.mean_scores().values())
    assert "dino" in got.scorer and "edit size 64 px" in got.descriptions[got.labels[0]]
    assert set(got.seconds) == set(got.labels)
    text = got.table()
    assert "same prompts and seed" in text and "score " in text and "snowy" in text
    fig = comparison_figure(got)
    assert len(fig.axes) == 3 * 3  # one row per editor: I, then one tile per sample
    assert fig.axes[1].get_title().startswith(f"{got.scores[got.labels[0]][0]:.3f} · Î")


def test_without_a_scorer_there_are_no_scores_and_two_editors_are_needed(editors, make_rgb):
    recipe = Recipe(prompts=("snowy",), size=32, seed=1, seam=4)
    image = prepare(make_rgb(32, 32, 2), recipe.size)
    got = compare_editors(image, recipe, [editors[2], editors[2].with_settings(max_retries=0)], FractalSet.default())
    assert got.scores is None and got.mean_scores() is None and "no scorer" in got.table()
    assert got.labels == ("preview (not a diffusion model)", "preview (not a diffusion model) #2")
    with pytest.raises(DiffuseMixError, match="needs two or more editors"):
        compare_editors(image, recipe, editors[:1], FractalSet.default())
    assert editor_label(load_editor("flux2-klein", device="cpu")) == "flux2-klein"  # the default model: its name
