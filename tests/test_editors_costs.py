"""The instruction editors' cost data: consistent with the model cards and the bench, and usable."""

from __future__ import annotations

import pytest

from diffusemix.editors.costs import EDITOR_FLOPS, EDITOR_PARAMS, MEASURED_SECONDS, flops_per_image, weights_gb
from diffusemix.editors.model_cards import MODEL_CARDS

DEFAULTS = {
    "flux2-klein": "black-forest-labs/FLUX.2-klein-4B",
    "qwen-image-edit": "Qwen/Qwen-Image-Edit-2511",
    "flux-kontext": "black-forest-labs/FLUX.1-Kontext-dev",
}


@pytest.mark.parametrize("editor", sorted(DEFAULTS))
def test_parameter_counts_agree_with_the_cards(editor):
    card = MODEL_CARDS[DEFAULTS[editor]]
    counts = EDITOR_PARAMS[editor]
    assert counts["transformer"] == pytest.approx(card.transformer_params, rel=1e-3)
    assert sum(counts.values()) == pytest.approx(card.total_params, rel=1e-3)


def test_weights_in_gigabytes():
    assert weights_gb("flux2-klein", "bfloat16") == pytest.approx(15.96, abs=0.01)
    assert weights_gb("qwen-image-edit", "float32") == pytest.approx(2 * weights_gb("qwen-image-edit", "bfloat16"))
    with pytest.raises(ValueError, match="dtype must be one of"):
        weights_gb("flux2-klein", "int8")
    with pytest.raises(ValueError, match="no parameter counts for editor 'nope'"):
        weights_gb("nope", "float32")


def test_operations_per_image():
    p = EDITOR_FLOPS[("flux2-klein", 512)]
    assert flops_per_image("flux2-klein", 512, steps=4) == pytest.approx(
        p.text + 4 * p.step + p.vae_encode + p.vae_decode
    )
    # the text encoder cached (FLUX: once per distinct prompt) takes its part away
    assert flops_per_image("flux2-klein", 512, steps=4, text_passes=0) == pytest.approx(
        flops_per_image("flux2-klein", 512, steps=4) - p.text
    )
    # between the counted sizes: interpolated on the image tokens, monotonic
    a, m, b = (flops_per_image("qwen-image-edit", s, steps=40) for s in (512, 768, 1024))
    assert a < m < b
    with pytest.raises(ValueError, match="outside the counted sizes 256-1024"):
        flops_per_image("flux2-klein", 2048, steps=4)
    with pytest.raises(ValueError, match="no operation counts for editor"):
        flops_per_image("preview", 256, steps=1)


def test_each_editor_costs_more_at_larger_sizes_and_guidance_doubles_qwen():
    for editor in DEFAULTS:
        costs = [EDITOR_FLOPS[(editor, s)] for s in (256, 512, 1024)]
        assert all(x.step < y.step for x, y in zip(costs, costs[1:]))
        assert all(x.vae_decode < y.vae_decode for x, y in zip(costs, costs[1:]))
    assert EDITOR_FLOPS[("qwen-image-edit", 1024)].passes == 2 and EDITOR_FLOPS[("flux2-klein", 1024)].passes == 1


def test_measured_seconds_follow_the_operations():
    """On one GPU, seconds per Î grow with the operations (same editor, two sizes)."""
    for editor in ("flux2-klein", "qwen-image-edit", "flux-kontext"):
        small = MEASURED_SECONDS[(editor, "h200", 512, 1)]
        large = MEASURED_SECONDS[(editor, "h200", 1024, 1)]
        steps = MODEL_CARDS[DEFAULTS[editor]].steps
        ratio_ops = flops_per_image(editor, 1024, steps=steps, text_passes=0) / flops_per_image(
            editor, 512, steps=steps, text_passes=0
        )
        assert 1 < large / small <= ratio_ops  # bigger problems use the GPU better
