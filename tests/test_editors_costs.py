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


# ---------------------------------------------------------------------------
# the planner (diffusemix.cost.plan_cost): the one estimate of the dry run and the app


def _on(device: str, name: str, **fields):
    """An editor as the planner sees it, on a device this machine may not have (no model is loaded)."""
    from types import SimpleNamespace

    from diffusemix.editors import load_editor

    ed = load_editor(name, device="cpu", **fields)
    return SimpleNamespace(name=ed.name, is_diffusion=True, spec=ed.spec.replace(device=device), device=device,
                           card=ed.card)


def test_the_planner_counts_the_operations_at_the_measured_rates():
    from diffusemix.cost import plan_cost
    from diffusemix.editors.costs import operations

    # FLUX.2 [klein] 4B on an H200 at 1024 px: the measured 1.01 s per Î, whatever the count of Î
    klein = _on("cuda", "flux2-klein", dtype="bfloat16")
    got = plan_cost(klein, 10, size=256)
    assert got.seconds == pytest.approx(10 * MEASURED_SECONDS[("flux2-klein", "h200", 1024, 1)], rel=1e-6)
    step, fixed = operations("flux2-klein", 1024, steps=4)
    assert got.operations == pytest.approx(10 * (fixed + 4 * step)) and got.edit_size == 1024
    assert "H200" in got.source and "not this GPU" in got.source and "TFLOP" in str(got)
    assert got.memory_gb == pytest.approx(weights_gb("flux2-klein", "bfloat16"), abs=0.1)  # the weights alone
    # the same model on the project's CPU in bfloat16 at 256 px: the measured 257 s, less the text encoder's
    # share (the FLUX editors encode each prompt once for a whole run)
    cpu = plan_cost(_on("cpu", "flux2-klein", dtype="bfloat16", edit_size=256), 1, size=256)
    f = EDITOR_FLOPS[("flux2-klein", 256)]
    assert cpu.seconds == pytest.approx(257.0 * (f.total(4) - f.text) / f.total(4), rel=1e-6)
    # float32 on that CPU: slower by InstructPix2Pix's measured float32 / bfloat16 ratio
    fp32 = plan_cost(_on("cpu", "flux2-klein", dtype="float32", edit_size=256), 1, size=256)
    assert fp32.seconds == pytest.approx(cpu.seconds * 6.59 / 3.43) and "float32: x1.92" in fp32.source
    assert fp32.memory_gb == pytest.approx(weights_gb("flux2-klein", "float32"), abs=0.1)


def test_the_planner_follows_the_settings():
    from diffusemix.cost import plan_cost

    qwen = plan_cost(_on("cuda", "qwen-image-edit", dtype="bfloat16", edit_size=512), 1, size=256)
    assert qwen.seconds == pytest.approx(MEASURED_SECONDS[("qwen-image-edit", "h200", 512, 1)], rel=1e-6)
    no_cfg = plan_cost(_on("cuda", "qwen-image-edit", dtype="bfloat16", edit_size=512, true_cfg_scale=1.0), 1,
                       size=256)
    assert no_cfg.seconds < 0.6 * qwen.seconds  # one transformer pass a step instead of two
    fewer = plan_cost(_on("cuda", "flux-kontext", dtype="bfloat16", steps=14), 1, size=256)
    full = plan_cost(_on("cuda", "flux-kontext", dtype="bfloat16"), 1, size=256)
    assert fewer.seconds < 0.6 * full.seconds and fewer.steps == 14
    # a known non-default checkpoint: its own weights (FLUX.2 [klein] 9B: 17.4 B parameters)
    nine = plan_cost(_on("cuda", "flux2-klein", dtype="bfloat16", model="black-forest-labs/FLUX.2-klein-9B"), 1,
                     size=256)
    assert nine.memory_gb == pytest.approx(2 * 17.353, abs=0.1)


def test_the_planner_says_when_it_has_no_measurement():
    from diffusemix.cost import plan_cost
    from diffusemix.errors import DiffuseMixError

    with pytest.raises(DiffuseMixError, match="no stored measurement of flux2-klein for mps; calibrate"):
        plan_cost(_on("mps", "flux2-klein"), 1, size=256)
    with pytest.raises(DiffuseMixError, match="in float16 on cpu"):
        plan_cost(_on("cpu", "flux2-klein", dtype="float16"), 1, size=256)
    with pytest.raises(DiffuseMixError, match="in float32 on cuda"):
        plan_cost(_on("cuda", "flux-kontext", dtype="float32"), 1, size=256)


def test_zerogpu_asks_each_editor_for_its_own_time(monkeypatch):
    from diffusemix.editors import load_editor
    from diffusemix.ui import zerogpu

    monkeypatch.setattr(zerogpu, "GPU_STEP_SECONDS", {"estimate": 0.02})
    qwen = load_editor("qwen-image-edit", device="cpu")
    first = zerogpu.step_seconds(qwen)  # the H200 rate at its edit size: 31.9 s / 40 steps at 1024 px
    assert first == pytest.approx(MEASURED_SECONDS[("qwen-image-edit", "h200", 1024, 1)] / 40, rel=1e-6)
    assert zerogpu.gpu_seconds(4, 40, editor=qwen) > 5 * zerogpu.gpu_seconds(4, 40)  # InstructPix2Pix's 20 ms a step
    zerogpu.record_gpu_time(8.0, pairs=1, steps=40, editor=qwen)
    assert zerogpu.step_seconds(qwen) == pytest.approx(0.2) and zerogpu.GPU_STEP_SECONDS["estimate"] == 0.02
    assert zerogpu.step_seconds(load_editor("preview")) == 0.02  # every other editor: the shared estimate
