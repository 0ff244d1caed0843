"""The instruction editors (FLUX.2 [klein], Qwen-Image-Edit, FLUX.1 Kontext) on tiny random pipelines.

Each tiny pipeline (tests/tiny_editors.py) is the real diffusers pipeline class
with the real architectures at toy sizes, saved with save_pretrained and
loaded by the editor through from_pretrained(folder, local_files_only=True),
as a user's download would be. Random weights make noise, not edits: these
tests check the plumbing (sizes, seeds, batching, caching, retries, progress,
cancel, errors), never the look of an image.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from diffusemix.editors import EditorSpec, EditRequest, load_editor, retry_seed, weights_note
from diffusemix.editors._instruct_common import DEFAULT_PROMPT_TEMPLATE, apply_template
from diffusemix.editors.flux2_klein import Flux2KleinEditor, per_sample_image_latents
from diffusemix.editors.flux_kontext import FluxKontextEditor
from diffusemix.editors.model_cards import APACHE_2, MODEL_CARDS, card_by_id, card_for
from diffusemix.editors.qwen_image_edit import QwenImageEditEditor, passes_per_step, vae_reference_area
from diffusemix.errors import Cancelled, EditorLoadError, SettingError

STEPS = 2
EDIT = 64


PIPELINES = {
    Flux2KleinEditor: "Flux2KleinPipeline",
    QwenImageEditEditor: "QwenImageEditPlusPipeline",
    FluxKontextEditor: "FluxKontextPipeline",
}
#: Transformer evaluations per step: Qwen-Image-Edit runs true CFG (two), the FLUX models one.
PASSES = {Flux2KleinEditor: 1, QwenImageEditEditor: 2, FluxKontextEditor: 1}


def _make(cls, model=None, **kw):
    """``cls`` through the one door (load_editor), CPU float32, the tests' steps and edit size."""
    fields = {"steps": STEPS, "edit_size": EDIT, "device": "cpu", "dtype": "float32", **kw}
    return load_editor(cls.name, model=None if model is None else str(model), **fields)


def _batched(cls, n: int) -> dict:
    """``batch_size=n`` for the editors that batch (diffusers' Qwen-Image-Edit takes one sample a call)."""
    return {} if cls is QwenImageEditEditor else {"batch_size": n}


@pytest.fixture(params=["flux2-klein", "qwen-image-edit", "flux-kontext"])
def instruct(request):
    """(editor class, pipeline folder) for each instruction editor."""
    cls = {"flux2-klein": Flux2KleinEditor, "qwen-image-edit": QwenImageEditEditor, "flux-kontext": FluxKontextEditor}[
        request.param
    ]
    return cls, request.getfixturevalue(f"tiny_{request.param.replace('-', '_')}_dir")


def _editor(instruct, **kw):
    cls, folder = instruct
    return _make(cls, folder, **kw)


class Recorder:
    """Wraps a callable and records the shapes of its first argument and result."""

    def __init__(self, fn):
        self.fn, self.inputs, self.outputs, self.calls = fn, [], [], 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        x = args[0] if args else next(iter(kwargs.values()))  # the transformer takes keywords only
        self.inputs.append(tuple(x.shape))
        out = self.fn(*args, **kwargs)
        sample = out[0] if isinstance(out, tuple) else getattr(out, "sample", None)
        if sample is not None:
            self.outputs.append(tuple(sample.shape))
        return out


# ---------------------------------------------------------------------------
# loading, describing


def test_loads_the_real_pipeline_from_the_folder(instruct):
    cls, folder = instruct
    ed = _editor(instruct)
    assert not ed.loaded and ed.is_diffusion
    ed.load()
    expected = PIPELINES[cls]
    assert type(ed.pipeline).__name__ == expected
    assert type(ed.pipeline.scheduler).__name__ == "FlowMatchEulerDiscreteScheduler"
    d = ed.describe()
    json.dumps(d)  # JSON-able, for manifests
    assert d["name"] == cls.name and d["model"] == str(folder) and d["pipeline"] == expected
    assert d["edit_size"] == EDIT and d["prompt_template"] == DEFAULT_PROMPT_TEMPLATE and d["steps"] == STEPS
    # toy weights are no known checkpoint: the licence is unknown, and said so
    assert d["licence"] is None and d["commercial_use"] is None and "licence unknown" in d["summary"]
    assert "licence" in d["notice"] and ed.notice == d["notice"]


def test_card_defaults_are_the_settings_defaults():
    klein, qwen = load_editor("flux2-klein", device="cpu").spec, load_editor("qwen-image-edit", device="cpu").spec
    card = MODEL_CARDS["black-forest-labs/FLUX.2-klein-4B"]
    assert (klein.steps, klein.edit_size) == (card.steps, card.edit_size) and card.guidance is None
    card = MODEL_CARDS["Qwen/Qwen-Image-Edit-2511"]
    assert (qwen.steps, qwen.true_cfg_scale, qwen.edit_size) == (card.steps, card.guidance, card.edit_size)
    assert qwen.negative_prompt == " " and passes_per_step(qwen.true_cfg_scale) == 2
    assert qwen.batch_size is None  # one sample a call: no batch size to set
    kontext = load_editor("flux-kontext", device="cpu").spec
    assert (kontext.steps, kontext.guidance_scale) == (28, 2.5)
    # a Base checkpoint's card: 50 steps with guidance 4 (the distilled 4B's 4 steps would be wrong for it)
    base = load_editor("flux2-klein", model="black-forest-labs/FLUX.2-klein-base-4B", device="cpu").spec
    assert (base.steps, base.guidance_scale) == (50, 4.0)
    # given values win over the card's
    assert load_editor("flux2-klein", device="cpu", steps=8).spec.steps == 8


def test_licences_of_known_weights_without_loading_them():
    ed = load_editor("flux2-klein", device="cpu")
    assert ed.licence is APACHE_2 and ed.licence.commercial_use and ed.notice is None
    assert "Apache-2.0, commercial use allowed" in ed.describe()["summary"]
    nine = load_editor("flux2-klein", model="black-forest-labs/FLUX.2-klein-9B", device="cpu")
    assert nine.licence.commercial_use is False and "commercial use NOT allowed" in nine.describe()["summary"]
    assert "FLUX.2 [klein] 9B are for non-commercial use" in nine.notice == nine.describe()["notice"]
    kontext = load_editor("flux-kontext", device="cpu")
    assert kontext.licence.commercial_use is False and "non-commercial use" in kontext.notice
    assert kontext.describe()["licence"] == "FLUX.1 [dev] Non-Commercial License"
    qwen = load_editor("qwen-image-edit", device="cpu")
    assert qwen.model == "Qwen/Qwen-Image-Edit-2511" and qwen.licence.name == "Apache-2.0"
    assert qwen.describe()["model_card"]["card_steps"] == 40
    # a card belongs to one editor
    assert card_for("Qwen/Qwen-Image-Edit-2511", editor="flux2-klein") is None
    assert card_by_id("black-forest-labs/flux.2-klein-4b").title == "FLUX.2 [klein] 4B"


def test_a_local_folder_is_recognised_by_its_transformer(tmp_path):
    def folder(name, config):
        (tmp_path / name / "transformer").mkdir(parents=True)
        (tmp_path / name / "transformer" / "config.json").write_text(json.dumps(config))
        return str(tmp_path / name)

    four = folder("k4", {"num_layers": 5, "num_single_layers": 20, "num_attention_heads": 24, "in_channels": 128})
    nine = folder("k9", {"num_layers": 8, "num_single_layers": 24, "num_attention_heads": 32})
    other = folder("x", {"num_layers": 1, "num_single_layers": 1, "num_attention_heads": 2})
    assert card_for(four, editor="flux2-klein").licence is APACHE_2  # 4B and 4B Base: both Apache-2.0
    assert card_for(nine, editor="flux2-klein").licence.commercial_use is False
    assert card_for(other, editor="flux2-klein") is None
    assert card_for(four, editor="qwen-image-edit") is None
    assert load_editor("flux2-klein", model=nine, device="cpu").describe()["commercial_use"] is False


def test_importing_the_editors_does_not_import_torch():
    code = (
        "import sys; import diffusemix.editors.flux2_klein, diffusemix.editors.qwen_image_edit,"
        " diffusemix.editors.flux_kontext, diffusemix.editors.model_cards, diffusemix.editors.costs;"
        " print('torch' in sys.modules, 'diffusers' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert out.stdout.split() == ["False", "False"]


# ---------------------------------------------------------------------------
# settings


@pytest.mark.parametrize(
    ("name", "changes", "match"),
    [
        ("flux2-klein", {"edit_size": 100}, r"EditorSpec.edit_size must be a multiple of 16 for flux2-klein"),
        ("flux2-klein", {"edit_size": 32}, r"EditorSpec.edit_size must be an integer in \[64, 2048\]"),
        ("qwen-image-edit", {"edit_size": 80}, "edit_size must be a multiple of 32 for qwen-image-edit"),
        ("flux2-klein", {"prompt_template": "no placeholder"}, "prompt_template must contain {prompt} exactly once"),
        ("qwen-image-edit", {"prompt_template": "{prompt} and {prompt}"}, "exactly once"),
        ("flux2-klein", {"steps": 0}, r"EditorSpec.steps must be an integer in \[1, 10000\]"),
        ("flux2-klein", {"batch_size": 0}, "batch_size"),
        ("flux-kontext", {"batch_size": "auto"}, "auto is measured for InstructPix2Pix only"),
        ("qwen-image-edit", {"true_cfg_scale": -1.0}, "true_cfg_scale"),
        ("qwen-image-edit", {"negative_prompt": 3}, "negative_prompt must be a string"),
        # settings of other editors are refused, naming the editor's own
        ("qwen-image-edit", {"batch_size": 2}, "batch_size is not a setting of the qwen-image-edit editor"),
        ("flux2-klein", {"true_cfg_scale": 4.0}, "true_cfg_scale is not a setting of the flux2-klein editor"),
        ("flux-kontext", {"cache_interval": 3}, "cache_interval is not a setting of the flux-kontext"),
        ("flux2-klein", {"vae": "tiny"}, "vae is not a setting"),
        ("qwen-image-edit", {"compile": True}, "compile is not a setting"),
        ("flux2-klein", {"speed": "fast"}, "speed is not a setting"),
    ],
)
def test_settings_are_checked(name, changes, match):
    with pytest.raises(SettingError, match=match):
        load_editor(name, device="cpu", **changes)


def test_with_settings_checks_the_same_way(tiny_flux2_klein_dir):
    ed = _make(Flux2KleinEditor, tiny_flux2_klein_dir)
    with pytest.raises(SettingError, match="multiple of 16"):
        ed.with_settings(edit_size=72)
    with pytest.raises(SettingError, match="image_guidance_scale is not a setting of the flux2-klein"):
        ed.with_settings(image_guidance_scale=1.5)
    assert ed.with_settings(edit_size=80).spec.edit_size == 80


def test_the_template_takes_the_prompt_as_it_is():
    assert apply_template("Make it {prompt}.", "  snowy ") == "Make it snowy."
    assert apply_template("{prompt}", "a {braced} word") == "a {braced} word"  # no str.format
    assert apply_template(DEFAULT_PROMPT_TEMPLATE, "ukiyo-e").startswith("Change the look of this image to: ukiyo-e.")
    assert EditorSpec(name="flux2-klein", prompt_template="Style: {prompt}").prompt_template == "Style: {prompt}"
    with pytest.raises(SettingError, match="prompt_template must be a non-empty string"):
        EditorSpec(name="flux2-klein", prompt_template=42)


# ---------------------------------------------------------------------------
# sizes, seeds, batches


def test_the_pipeline_sees_the_edit_size_and_the_result_has_the_request_size(instruct, make_rgb):
    cls, _ = instruct
    ed = _editor(instruct, edit_size=96)
    vae = ed.pipeline.vae
    encode, decode = Recorder(vae.encode), Recorder(vae.decode)
    vae.encode, vae.decode = encode, decode
    try:
        sizes = [(40, 40), (33, 17), (256, 256)]
        images = [make_rgb(h, w, k) for k, (h, w) in enumerate(sizes)]
        res = ed.edit([EditRequest(im, "snowy", k) for k, im in enumerate(images)])
    finally:
        del vae.encode, vae.decode
    for im, r in zip(images, res):
        assert r.image.shape == im.shape and r.image.dtype == np.uint8
    # the VAE encodes the input at the edit size and decodes Î at the edit size
    assert encode.inputs and all(shape[-2:] == (96, 96) for shape in encode.inputs)
    assert decode.outputs and all(shape[-2:] == (96, 96) for shape in decode.outputs)
    assert ed.describe()["edit_size"] == 96


def test_same_seed_same_image_alone_and_in_a_batch_and_seeds_matter(instruct, make_rgb):
    cls, _ = instruct
    images = [make_rgb(48, 48, k) for k in range(3)]
    reqs = [EditRequest(im, p, 100 + k) for k, (im, p) in enumerate(zip(images, ["snowy", "Autumn", "mosaic"]))]
    batched = _editor(instruct, **_batched(cls, 3)).edit(reqs)
    alone = _editor(instruct).edit([reqs[1]])
    # measured: 0 grey levels in float32 on this CPU (the pipeline's arithmetic
    # per sample does not depend on the batch); 1 allows for other BLAS paths
    assert np.abs(batched[1].image.astype(int) - alone[0].image.astype(int)).max() <= 1
    other_seed = _editor(instruct).edit([EditRequest(images[1], "Autumn", 999)])
    assert np.abs(other_seed[0].image.astype(int) - alone[0].image.astype(int)).mean() > 1


def test_same_as_a_plain_pipeline_call_with_the_instruction(instruct, make_rgb):
    """The editor's way (cached embeddings, per-sample references, its own
    generators) gives the image the pipeline gives for the instruction as a string."""
    import torch
    from PIL import Image

    cls, _ = instruct
    ed = _editor(instruct)
    image = make_rgb(EDIT, EDIT, 5)  # at the edit size: no resizing on either side
    (res,) = ed.edit([EditRequest(image, "watercolor art", 42)])
    pipe, text, pil = ed.pipeline, apply_template(DEFAULT_PROMPT_TEMPLATE, "watercolor art"), Image.fromarray(image)
    common = {"prompt": text, "num_inference_steps": STEPS, "height": EDIT, "width": EDIT, "output_type": "np"}
    generator = [torch.Generator().manual_seed(42)]
    if cls is Flux2KleinEditor:
        out = pipe(image=[pil], guidance_scale=1.0, generator=generator, **common)
    elif cls is QwenImageEditEditor:
        with vae_reference_area(EDIT * EDIT):  # the editor's reference size (the card's at 1024)
            out = pipe(image=[pil], negative_prompt=" ", true_cfg_scale=4.0, generator=generator, **common)
    else:
        out = pipe(
            image=pil, guidance_scale=2.5, max_area=EDIT * EDIT, _auto_resize=False, generator=generator, **common
        )
    ref = (np.clip(out.images[0], 0, 1) * 255).round().astype(np.uint8)
    assert np.abs(res.image.astype(int) - ref.astype(int)).max() <= 1


def test_each_sample_of_a_klein_batch_has_its_own_reference(tiny_flux2_klein_dir, make_rgb):
    """Different images in one call: each Î equals the one made alone."""
    images = [make_rgb(64, 64, k) for k in range(4)]
    reqs = [EditRequest(im, "watercolor art", 5) for im in images]  # same seed and prompt: only I differs
    ed = _make(Flux2KleinEditor, tiny_flux2_klein_dir, batch_size=4)
    together = ed.edit(reqs)
    apart = [ed.edit([r])[0] for r in reqs]
    for a, b in zip(together, apart):
        assert np.abs(a.image.astype(int) - b.image.astype(int)).max() <= 1
    # (random weights barely let the reference move the output, so which
    # reference each sample got is checked on the latents, below)


def test_one_reference_per_sample_is_the_pipelines_own_for_one_sample(tiny_flux2_klein_dir, make_rgb):
    import torch
    from PIL import Image

    ed = _make(Flux2KleinEditor, tiny_flux2_klein_dir)
    pipe = ed.pipeline
    pixels = pipe.image_processor.preprocess(Image.fromarray(make_rgb(64, 64, 3)), height=64, width=64)
    ours = per_sample_image_latents(pipe, [pixels], 1, None, "cpu", torch.float32)
    theirs = type(pipe).prepare_image_latents(pipe, [pixels], 1, None, "cpu", torch.float32)
    assert torch.equal(ours[0], theirs[0]) and torch.equal(ours[1], theirs[1])
    # two samples of one image: the pipeline's own result for a batch of two
    ours = per_sample_image_latents(pipe, [pixels, pixels.clone()], 2, None, "cpu", torch.float32)
    theirs = type(pipe).prepare_image_latents(pipe, [pixels], 2, None, "cpu", torch.float32)
    assert torch.equal(ours[0], theirs[0]) and torch.equal(ours[1], theirs[1])
    # three samples, two images: each sample gets its own image's latent alone
    other = pipe.image_processor.preprocess(Image.fromarray(make_rgb(64, 64, 4)), height=64, width=64)
    ours = per_sample_image_latents(pipe, [pixels, other, pixels], 3, None, "cpu", torch.float32)
    for b, image in enumerate([pixels, other, pixels]):
        alone = type(pipe).prepare_image_latents(pipe, [image], 1, None, "cpu", torch.float32)
        assert torch.equal(ours[0][b : b + 1], alone[0]) and torch.equal(ours[1][b : b + 1], alone[1])
    assert not torch.equal(ours[0][0], ours[0][1])
    # the pipeline's own method would give every sample both references
    both = type(pipe).prepare_image_latents(pipe, [pixels, other], 2, None, "cpu", torch.float32)
    assert both[0].shape[1] == 2 * ours[0].shape[1]


# ---------------------------------------------------------------------------
# prompts and the text-encoder cache


def _spy_texts(ed, cls):
    """Record the texts the text encoder is asked to encode."""
    pipe, seen = ed.pipeline, []
    if cls is not QwenImageEditEditor:
        real = pipe.encode_prompt

        def spy(prompt=None, **kw):
            if kw.get("prompt_embeds") is None:  # the pipeline also calls it with ready embeddings
                seen.append(prompt)
            return real(prompt=prompt, **kw)

        pipe.encode_prompt = spy
    else:
        real = pipe._get_qwen_prompt_embeds

        def spy(prompt, image=None, device=None, dtype=None):
            seen.extend(prompt)
            return real(prompt, image, device, dtype)

        pipe._get_qwen_prompt_embeds = spy
    return seen


def test_the_prompt_goes_in_the_template_and_each_text_is_encoded_once(instruct, make_rgb):
    cls, _ = instruct
    ed = _editor(instruct)
    seen = _spy_texts(ed, cls)
    images = [make_rgb(32, 32, 0), make_rgb(32, 32, 1)]
    prompts = ["snowy", "Autumn", "snowy"]
    reqs = [EditRequest(im, p, k) for k, (im, p) in enumerate((im, p) for im in images for p in prompts)]
    ed.edit(reqs)
    instructions = {apply_template(DEFAULT_PROMPT_TEMPLATE, p) for p in prompts}
    if cls is not QwenImageEditEditor:
        assert sorted(seen) == sorted(instructions)  # the text alone: once per instruction
    else:
        # Qwen2.5-VL reads the image with the text: once per (image, text); the
        # negative prompt once per image, not once per prompt
        assert sorted(seen) == sorted([*instructions, *instructions, " ", " "])
    before = len(seen)
    ed.edit(reqs[:2])
    assert len(seen) == before  # cached for the editor's life

    custom = ed.with_settings(prompt_template="Render in the style of {prompt}")
    custom.edit(reqs[:1])
    assert seen[-1] == "Render in the style of snowy"
    assert custom.describe()["prompt_template"] == "Render in the style of {prompt}"
    assert custom.pipeline is ed.pipeline  # one model for both


def test_a_base_klein_checkpoint_uses_guidance(tmp_path, make_rgb):
    from tiny_editors import build_tiny_flux2_klein

    folder = build_tiny_flux2_klein(tmp_path / "base", distilled=False)
    ed = _make(Flux2KleinEditor, folder, guidance_scale=4.0)
    seen = _spy_texts(ed, Flux2KleinEditor)
    transformer = ed.pipeline.transformer
    calls = Recorder(transformer.forward)
    transformer.forward = calls
    ed.edit([EditRequest(make_rgb(32, 32), "snowy", 1), EditRequest(make_rgb(32, 32, 1), "snowy", 2)])
    assert "" in seen and ed.describe()["guidance_applied"] is True  # the empty negative prompt
    assert calls.calls == 2 * STEPS  # conditional and unconditional pass per step, one batch
    distilled = ed.with_settings(guidance_scale=1.0)
    assert distilled.describe()["guidance_applied"] is False


def test_the_kv_cache_pipeline_runs_too(tmp_path, tiny_flux2_klein_dir, make_rgb):
    """FLUX.2 [klein] 9B KV's pipeline (Flux2KleinKVPipeline: the references' keys and values
    computed at the first step and reused) on the same tiny parts."""
    from diffusers import Flux2KleinKVPipeline, Flux2KleinPipeline

    parts = Flux2KleinPipeline.from_pretrained(tiny_flux2_klein_dir).components
    Flux2KleinKVPipeline(**parts).save_pretrained(tmp_path / "kv")
    ed = _make(Flux2KleinEditor, tmp_path / "kv", batch_size=2)
    reqs = [EditRequest(make_rgb(32, 32, k), "snowy", k) for k in range(2)]
    res = ed.edit(reqs)
    assert type(ed.pipeline).__name__ == "Flux2KleinKVPipeline" and ed.describe()["guidance_applied"] is False
    assert [r.image.shape for r in res] == [(32, 32, 3)] * 2
    alone = ed.edit(reqs[1:])
    assert np.abs(alone[0].image.astype(int) - res[1].image.astype(int)).max() <= 1


# ---------------------------------------------------------------------------
# retries, progress, cancel


def test_degenerate_outputs_are_retried_then_reported(monkeypatch, instruct, make_rgb):
    cls, _ = instruct
    module = sys.modules[cls.__module__]
    real = module.run_pipeline
    black_seeds: set[int] = set()

    def blacken(pipe, images, seeds, step, **kw):
        out = real(pipe, images, seeds, step, **kw)
        for k, s in enumerate(seeds):
            if s in black_seeds:
                out[k] = 0
        return out

    monkeypatch.setattr(module, "run_pipeline", blacken)
    reqs = [EditRequest(make_rgb(32, 32, k), "snowy", 10 + k) for k in range(3)]
    ed = _editor(instruct, max_retries=2, **_batched(cls, 2))
    black_seeds.add(11)
    seen = []
    res = ed.edit(reqs, progress=lambda d, t: seen.append((d, t)))
    assert [r.attempts for r in res] == [1, 2, 1]
    assert res[1].seed == retry_seed(11, 1) and res[1].degenerate is None
    calls = 3 if cls is QwenImageEditEditor else 2  # batches of the first attempt
    assert seen[-1] == ((calls + 1) * STEPS, (calls + 1) * STEPS)

    black_seeds.update(retry_seed(11, a) for a in (1, 2))
    res = ed.edit(reqs)
    assert res[1].attempts == 3 and res[1].degenerate == "all black" and res[1].seed == retry_seed(11, 2)
    assert res[0].degenerate is None and res[2].degenerate is None


def test_progress_counts_steps_and_cancel_stops_at_the_next_one(instruct, make_rgb):
    cls, _ = instruct
    ed = _editor(instruct, **_batched(cls, 1))
    reqs = [EditRequest(make_rgb(32, 32, k), "rain", k) for k in range(3)]
    seen = []
    ed.edit(reqs, progress=lambda d, t: seen.append((d, t)))
    total = 3 * STEPS
    assert seen[0] == (0, total) and seen[-1] == (total, total)
    assert [d for d, _ in seen] == list(range(total + 1))  # every step reported

    transformer = ed.pipeline.transformer
    calls = Recorder(transformer.forward)
    transformer.forward = calls
    cancel = threading.Event()

    def progress(done, total):
        if done >= 3:
            cancel.set()

    with pytest.raises(Cancelled):
        ed.edit(reqs, progress=progress, cancel=cancel)
    assert calls.calls == 3 * PASSES[cls]  # stopped right after the 3rd of 6 planned steps
    calls.calls = 0
    with pytest.raises(Cancelled):
        ed.edit(reqs, cancel=cancel)  # already set: nothing runs
    assert calls.calls == 0


def test_out_of_memory_splits_the_batch_then_says_to_lower_the_edit_size(monkeypatch, instruct, make_rgb):
    import torch

    cls, _ = instruct
    ed = _editor(instruct, **_batched(cls, 4))
    pipe = ed.pipeline
    real = type(pipe).__call__
    calls = []

    def oom_above_one(self, *args, **kwargs):
        calls.append(len(kwargs["generator"]))
        if len(kwargs["generator"]) > 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(type(pipe), "__call__", oom_above_one)
    reqs = [EditRequest(make_rgb(32, 32, k), "snowy", k) for k in range(3)]
    res = ed.edit(reqs)
    assert [r.image.shape for r in res] == [(32, 32, 3)] * 3
    if cls is not QwenImageEditEditor:
        assert calls[:3] == [3, 2, 1]  # 3 -> 2 + 1 -> (1 + 1) + 1
        calls.clear()
        ed.edit(reqs)
        assert max(calls) == 1  # later batches start at half the size that failed

    def oom(self, *args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(type(pipe), "__call__", oom)
    with pytest.raises(EditorLoadError, match=r"single image at edit size 128 px.*Lower edit_size \(e.g. 64\)"):
        ed.with_settings(edit_size=128).edit(reqs[:1])


def test_the_vae_reference_area_is_restored(tiny_qwen_image_edit_dir):
    import diffusers.pipelines.qwenimage.pipeline_qwenimage_edit_plus as plus

    before = plus.VAE_IMAGE_SIZE
    with pytest.raises(RuntimeError), vae_reference_area(64 * 64):
        assert plus.VAE_IMAGE_SIZE == 64 * 64
        raise RuntimeError("boom")
    assert plus.VAE_IMAGE_SIZE == before == 1024 * 1024


# ---------------------------------------------------------------------------
# what is not these models, and missing weights


@pytest.mark.parametrize(
    ("cls", "folder", "match"),
    [
        (
            Flux2KleinEditor,
            "tiny_ip2p_dir",
            "holds a StableDiffusionInstructPix2PixPipeline, not a FLUX.2 .*use --editor instruct-pix2pix",
        ),
        (
            Flux2KleinEditor,
            "tiny_qwen_image_edit_dir",
            "holds a QwenImageEditPlusPipeline.*use --editor qwen-image-edit",
        ),
        (QwenImageEditEditor, "tiny_flux2_klein_dir", "holds a Flux2KleinPipeline.*use --editor flux2-klein"),
        (QwenImageEditEditor, "tiny_img2img_dir", "holds a StableDiffusionImg2ImgPipeline.*use --editor img2img"),
        (FluxKontextEditor, "tiny_flux2_klein_dir", "holds a Flux2KleinPipeline, not a FLUX.1 Kontext pipeline"),
        (Flux2KleinEditor, "tiny_flux_kontext_dir", "holds a FluxKontextPipeline.*use --editor flux-kontext"),
    ],
)
def test_another_architecture_is_refused_naming_its_editor(request, cls, folder, match):
    with pytest.raises(EditorLoadError, match=match):
        _make(cls, request.getfixturevalue(folder)).load()


def test_unknown_pipelines_and_incomplete_folders(tmp_path):
    (tmp_path / "wan").mkdir()
    (tmp_path / "wan" / "model_index.json").write_text(json.dumps({"_class_name": "WanPipeline"}))
    with pytest.raises(EditorLoadError, match="holds a WanPipeline.*the editors are .*flux2-klein.*qwen-image-edit"):
        _make(Flux2KleinEditor, tmp_path / "wan").load()
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "model_index.json").write_text(json.dumps({"_class_name": "QwenImageEditPlusPipeline"}))
    (tmp_path / "half" / "vae").mkdir()
    with pytest.raises(EditorLoadError, match="missing transformer/, text_encoder/, tokenizer/, processor/"):
        _make(QwenImageEditEditor, tmp_path / "half").load()
    (tmp_path / "v1").mkdir()
    (tmp_path / "v1" / "model_index.json").write_text(json.dumps({"_class_name": "QwenImageEditPipeline"}))
    with pytest.raises(EditorLoadError, match="2509 and later .*Qwen/Qwen-Image-Edit-2511"):
        _make(QwenImageEditEditor, tmp_path / "v1").load()
    with pytest.raises(EditorLoadError, match="does not exist"):
        _make(Flux2KleinEditor, tmp_path / "nowhere" / "x y").load()


@pytest.mark.parametrize(
    ("cls", "hub_id"),
    [
        (Flux2KleinEditor, "black-forest-labs/FLUX.2-klein-4B"),
        (QwenImageEditEditor, "Qwen/Qwen-Image-Edit-2511"),
        (FluxKontextEditor, "black-forest-labs/FLUX.1-Kontext-dev"),
    ],
)
def test_missing_weights_say_how_to_get_them(cls, hub_id):
    with pytest.raises(EditorLoadError) as info:
        _make(cls, hub_id).load()
    msg = str(info.value)
    assert "not in the local Hugging Face cache" in msg
    assert f"hf download {hub_id}" in msg and "--model /path/to/" in msg and "--editor preview" in msg


def test_weights_note_says_where_the_weights_would_come_from(instruct, tiny_ip2p_dir):
    """One function for every editor (the dry run's): a complete folder, the default Hub id
    (not in this test's empty cache), a folder of another pipeline (names its editor)."""
    cls, folder = instruct
    assert weights_note(_make(cls, folder)) is None
    note = weights_note(_make(cls))
    assert "not in the local Hugging Face cache" in note and f"hf download {cls._default_model}" in note
    note = weights_note(_make(cls, tiny_ip2p_dir))
    assert "holds a StableDiffusionInstructPix2PixPipeline" in note and "--editor instruct-pix2pix" in note
    # and the other way round: an instruction editor's folder given to InstructPix2Pix
    note = weights_note(load_editor("instruct-pix2pix", model=str(folder), device="cpu"))
    assert f"use --editor {cls.name}" in note


def test_an_instruction_editors_folder_is_refused_by_the_stable_diffusion_editors(tiny_flux_kontext_dir):
    with pytest.raises(EditorLoadError, match="holds a FluxKontextPipeline.*use --editor flux-kontext"):
        load_editor("instruct-pix2pix", model=str(tiny_flux_kontext_dir), device="cpu").load()
    with pytest.raises(EditorLoadError, match="holds a FluxKontextPipeline.*use --editor flux-kontext"):
        load_editor("img2img", model=str(tiny_flux_kontext_dir), device="cpu").load()


def test_qwen_says_when_it_builds_its_processor_without_torchvision(tiny_qwen_image_edit_dir):
    from transformers.utils import is_torchvision_available

    ed = _make(QwenImageEditEditor, tiny_qwen_image_edit_dir)
    ed.load()
    if is_torchvision_available():
        assert type(ed.pipeline.processor).__name__ == "Qwen2VLProcessor"
        assert "torchvision" not in (ed.notice or "")
    else:
        assert type(ed.pipeline.processor).__name__ == "ImageOnlyQwen2VLProcessor"
        assert "torchvision is not installed" in ed.notice and "torchvision" in ed.describe()["notice"]


def test_dtype_auto_is_bfloat16_on_cuda_and_exact_on_the_cpu(monkeypatch, tiny_flux2_klein_dir):
    import torch

    from diffusemix.editors._instruct_common import instruct_dtype

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert instruct_dtype("cuda") == "bfloat16" and instruct_dtype("cuda:1") == "bfloat16"  # the cards' dtype
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert instruct_dtype("cuda") == "float16"  # a GPU without bfloat16
    assert instruct_dtype("cpu") == "float32"  # the library's exact default off CUDA
    assert load_editor("flux2-klein", model=str(tiny_flux2_klein_dir), device="cpu").dtype == "float32"
    assert load_editor("flux2-klein", model=str(tiny_flux2_klein_dir), device="cpu", dtype="bf16").dtype == "bfloat16"
