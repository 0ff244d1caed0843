"""Tests of diffusemix.editors: the preview, the two diffusers editors (on tiny
random-weight pipelines built offline, loaded through the user's code path),
load_editor, and every loading error message."""

from __future__ import annotations

import dataclasses
import itertools
import logging
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from diffusemix.editors import (
    EDITOR_NAMES,
    Editor,
    EditRequest,
    Img2ImgEditor,
    InstructPix2PixEditor,
    EditorSpec,
    PreviewEditor,
    load_editor,
    preview_style,
    retry_seed,
)
from diffusemix.errors import Cancelled, EditorLoadError
from diffusemix.prompts import PAPER_PROMPTS

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PROMPTS = [*PAPER_PROMPTS, "rain"]  # every shipped prompt ("rain" is in the weather set)
STEPS = 2


class Counter:
    """Wraps a callable and counts its calls."""

    def __init__(self, fn):
        self.fn, self.calls = fn, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.fn(*args, **kwargs)


def requests_for(images, prompts, seed0=100):
    return [EditRequest(im, p, seed0 + k) for k, (im, p) in enumerate(itertools.product(images, prompts))]


# ---------------------------------------------------------------------------
# the preview editor (no torch)


def test_preview_is_an_editor_and_says_what_it_is():
    ed = load_editor("preview")
    assert isinstance(ed, PreviewEditor) and isinstance(ed, Editor)
    assert ed.name == "preview" and ed.is_diffusion is False
    assert ed.describe()["summary"] == "preview (weight-free colour/texture filters, not a diffusion model)"
    assert ed.notice is None


@pytest.mark.parametrize("size", [(33, 17), (17, 33), (1, 1), (3, 200), (64, 64), (256, 96)])
def test_preview_output_has_request_size(make_rgb, size):
    im = make_rgb(*size)
    reqs = [EditRequest(im, p, 3) for p in DEFAULT_PROMPTS + ["a photo of a red car"]]
    for res in PreviewEditor().edit(reqs):
        assert res.image.shape == im.shape and res.image.dtype == np.uint8


def test_preview_is_deterministic_and_the_seed_varies_texture(rgb_image):
    ed = PreviewEditor()
    for prompt in DEFAULT_PROMPTS + ["cyberpunk neon"]:
        a, b, c = ed.edit(
            [EditRequest(rgb_image, prompt, 5), EditRequest(rgb_image, prompt, 5), EditRequest(rgb_image, prompt, 6)]
        )
        assert np.array_equal(a.image, b.image), prompt
        # the seed moves textures, it does not change the look: 8x8 block means agree
        blocks = lambda im: im.astype(float).reshape(8, 8, 8, 8, 3).mean(axis=(1, 3))
        assert np.abs(blocks(a.image) - blocks(c.image)).mean() < 6, prompt
    snow5, snow6 = ed.edit([EditRequest(rgb_image, "snowy", 5), EditRequest(rgb_image, "snowy", 6)])
    assert not np.array_equal(snow5.image, snow6.image)  # flakes move with the seed


@pytest.mark.parametrize(
    "prompt, style",
    [
        ("snowy", "snowy"),
        ("snow", "snowy"),
        ("A Snowy Day", "snowy"),
        ("Autumn", "autumn"),
        ("autumn forest", "autumn"),
        ("watercolour painting", "watercolor"),
        ("watercolor art", "watercolor"),
        ("SUNSET", "sunset"),
        ("rainbow", "rainbow"),
        ("rain", "rain"),
        ("a rainy street", "rain"),
        ("aurora", "aurora"),
        ("mosaic", "mosaic"),
        ("ukiyo-e", "ukiyo-e"),
        ("Ukiyo-e print", "ukiyo-e"),
        ("a sketch with crayon", "sketch"),
        ("a photo of a red car", None),
        ("", None),
    ],
)
def test_preview_matches_keywords(prompt, style):
    assert preview_style(prompt) == style


def test_each_default_prompt_has_its_own_look(make_rgb):
    im = make_rgb(96, 96, 3)
    out = {
        p: r.image.astype(np.float32)
        for p, r in zip(DEFAULT_PROMPTS, PreviewEditor().edit([EditRequest(im, p, 0) for p in DEFAULT_PROMPTS]))
    }
    # every pair differs clearly
    for p, q in itertools.combinations(DEFAULT_PROMPTS, 2):
        assert np.abs(out[p] - out[q]).mean() > 8, (p, q)
    x = im.astype(np.float32)
    mean = {p: o.reshape(-1, 3).mean(0) for p, o in out.items()}
    m0 = x.reshape(-1, 3).mean(0)
    sat = lambda a: (a.max(-1) - a.min(-1)).mean()
    # Autumn: warm (red up, blue down)
    assert mean["Autumn"][0] - mean["Autumn"][2] > m0[0] - m0[2] + 40
    # snowy: brighter, cooler, less saturated
    assert mean["snowy"].mean() > m0.mean() + 15 and mean["snowy"][2] - mean["snowy"][0] > m0[2] - m0[0] + 20
    assert sat(out["snowy"]) < 0.6 * sat(x)
    # rain: darker and cooler
    assert mean["rain"].mean() < m0.mean() - 20 and mean["rain"][2] - mean["rain"][0] > m0[2] - m0[0] + 20
    # sunset: warm light from the top
    top, bottom = out["sunset"][:32].reshape(-1, 3).mean(0), out["sunset"][-32:].reshape(-1, 3).mean(0)
    assert top[0] > top[2] + 40 and top.sum() > bottom.sum()
    # aurora: a dark night with green light
    assert mean["aurora"].mean() < m0.mean() and mean["aurora"][1] > mean["aurora"][0]
    # a sketch: mostly paper
    assert np.median(out["a sketch with crayon"].mean(-1)) > 200
    # mosaic: straight grout lines every cell
    grey_rows = (np.abs(out["mosaic"] - 0.22 * 255) < 1).all(axis=(1, 2))
    assert grey_rows.sum() >= 96 // 12


def test_unknown_prompts_get_distinct_hashed_grades(rgb_image):
    prompts = ["a photo of a cat", "cyberpunk neon", "oil painting", "Cyberpunk   NEON"]
    res = PreviewEditor().edit([EditRequest(rgb_image, p, 1) for p in prompts])
    imgs = [r.image.astype(np.float32) for r in res]
    assert np.abs(imgs[0] - imgs[1]).mean() > 8 and np.abs(imgs[1] - imgs[2]).mean() > 8
    assert np.abs(imgs[0] - rgb_image).mean() > 8  # never the identity
    assert np.array_equal(imgs[1], imgs[3])  # case and spacing do not matter


def test_preview_progress_per_image_and_cancel(rgb_image):
    reqs = [EditRequest(rgb_image, p, 0) for p in DEFAULT_PROMPTS[:5]]
    seen = []
    PreviewEditor().edit(reqs, progress=lambda d, t: seen.append((d, t)))
    assert seen[0] == (0, 5) and seen[-1] == (5, 5)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)

    cancel = threading.Event()

    def progress(done, total):
        if done == 2:
            cancel.set()

    with pytest.raises(Cancelled):
        PreviewEditor().edit(reqs, progress=progress, cancel=cancel)


def test_preview_reports_degenerate_outputs(rgb_image):
    black = np.zeros((32, 32, 3), np.uint8)
    res = load_editor("preview", max_retries=2).edit([EditRequest(black, "a photo of a cat", 9), EditRequest(rgb_image, "x", 9)])
    assert res[0].degenerate == "all black" and res[0].attempts == 3 and res[0].seed == retry_seed(9, 2)
    assert res[1].degenerate is None and res[1].attempts == 1 and res[1].seed == 9


def test_bad_requests_are_refused_with_a_clear_message(rgb_image):
    with pytest.raises(ValueError, match="uint8"):
        PreviewEditor().edit([EditRequest(rgb_image.astype(np.float32), "snowy", 0)])
    with pytest.raises(ValueError, match="seed"):
        PreviewEditor().edit([EditRequest(rgb_image, "snowy", -1)])
    with pytest.raises(ValueError, match="prompt"):
        PreviewEditor().edit([EditRequest(rgb_image, None, 0)])  # type: ignore[arg-type]


def test_importing_editors_and_using_the_preview_does_not_import_torch():
    code = (
        "import sys, numpy as np; import diffusemix.editors as e; ed = e.load_editor('preview');"
        " ed.edit([e.EditRequest(np.zeros((8, 8, 3), np.uint8), 'snowy', 0)]);"
        " assert 'torch' not in sys.modules, 'torch was imported'"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=120)


# ---------------------------------------------------------------------------
# settings and load_editor


def test_settings_are_frozen_and_validated():
    s = load_editor("instruct-pix2pix", device="cpu").spec
    assert (s.steps, s.guidance_scale, s.image_guidance_scale, s.max_retries) == (100, 4.0, 1.5, 2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.steps = 3  # type: ignore[misc]
    for field, value in [
        ("steps", 0),
        ("steps", 2.5),
        ("guidance_scale", -1),
        ("image_guidance_scale", float("nan")),
        ("batch_size", 0),
        ("max_retries", -1),
        ("batch_size", True),
    ]:
        with pytest.raises(ValueError, match=rf"EditorSpec.{field} .*{value!r}"):
            EditorSpec(name="instruct-pix2pix", **{field: value})
    i = load_editor("img2img", device="cpu").spec
    assert (i.strength, i.guidance_scale, i.denoising_steps) == (0.5, 7.5, 25)
    for field, value in [("strength", 0), ("strength", 1.5), ("steps", -3)]:
        with pytest.raises(ValueError, match=field):
            EditorSpec(name="img2img", **{field: value})
    with pytest.raises(ValueError, match="steps times strength"):
        load_editor("img2img", steps=1, strength=0.5, device="cpu")


def test_load_editor_names_and_settings(tiny_ip2p_dir):
    with pytest.raises(ValueError, match="auto, instruct-pix2pix, img2img, flux2-klein, qwen-image-edit, flux-kontext,"
                       " preview"):
        load_editor("dall-e")
    with pytest.raises(ValueError, match="strength is not a setting of the instruct-pix2pix editor"):
        load_editor("instruct-pix2pix", model=str(tiny_ip2p_dir), strength=0.5)
    with pytest.raises(ValueError, match="steps"):
        load_editor("instruct-pix2pix", model=str(tiny_ip2p_dir), steps=0)
    with pytest.raises(ValueError, match="EditorSpec has no setting stepz"):
        load_editor("preview", stepz=3)
    assert EDITOR_NAMES == ("auto", "instruct-pix2pix", "img2img", "flux2-klein", "qwen-image-edit", "flux-kontext",
                            "preview")
    ed = load_editor("instruct-pix2pix", model=str(tiny_ip2p_dir), steps=3, batch_size=None, device="cpu")
    assert isinstance(ed, InstructPix2PixEditor) and isinstance(ed, Editor)
    assert not ed.loaded  # lazy
    assert ed.spec.steps == 3 and ed.spec.batch_size == InstructPix2PixEditor.defaults["batch_size"]
    d = ed.describe()
    # the default dtype on a CPU is float32: exact (bfloat16 is asked for by name, or by --speed fast)
    assert d["model"] == str(tiny_ip2p_dir) and d["device"] == "cpu" and d["dtype"] == "float32"
    assert (ed.spec.steps, ed.spec.guidance_scale, ed.spec.image_guidance_scale) == (3, 4.0, 1.5)
    assert load_editor("preview", max_retries=0).max_retries == 0
    with pytest.raises(ValueError, match="preview editor .* has no model, device, precision, steps"):
        load_editor("preview", steps=10)


def test_auto_loads_the_real_model_when_it_can(tiny_ip2p_dir):
    ed = load_editor("auto", model=str(tiny_ip2p_dir), steps=STEPS)
    assert isinstance(ed, InstructPix2PixEditor) and ed.loaded


def test_auto_without_weights_is_an_error_that_says_how_to_get_them(monkeypatch, tmp_path, caplog):
    # issue 8: the library's (and exporter's) "auto" never swaps in the preview by itself.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf-home"))
    with caplog.at_level(logging.WARNING, logger="diffusemix"):
        with pytest.raises(EditorLoadError) as info:
            load_editor("auto", steps=STEPS)
    msg = str(info.value)
    assert "hf download timbrooks/instruct-pix2pix" in msg and "--model" in msg
    assert "--editor preview" in msg and "on purpose" in msg
    assert "..." not in msg and "…" not in msg  # nothing cut short
    assert len(msg) < 600
    assert not [r for r in caplog.records if r.name == "diffusemix"]  # said once, by the error


def test_auto_falls_back_to_the_preview_only_when_asked(monkeypatch, tmp_path, caplog):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf-home"))
    with caplog.at_level(logging.WARNING, logger="diffusemix"):
        ed = load_editor("auto", fallback=True, steps=STEPS)
    assert isinstance(ed, PreviewEditor) and ed.is_diffusion is False
    assert "preview" in ed.notice and "not a diffusion model" in ed.notice
    assert "timbrooks/instruct-pix2pix" in ed.notice and "--model" in ed.notice
    assert ed.describe()["notice"] == ed.notice
    assert any(ed.notice in r.getMessage() for r in caplog.records if r.name == "diffusemix")
    assert ed.edit([EditRequest(np.zeros((8, 8, 3), np.uint8) + 90, "snowy", 0)])[0].image.shape == (8, 8, 3)
    with pytest.raises(ValueError, match="fallback.*only.*auto"):
        load_editor("instruct-pix2pix", fallback=True)


def test_auto_with_fallback_never_swaps_an_asked_for_model_or_device_for_the_preview(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf-home"))
    with pytest.raises(EditorLoadError, match=r"does not exist.*Not falling back to the preview editor.*model="):
        load_editor("auto", fallback=True, model=str(tmp_path / "no-such-folder"))
    with pytest.raises(EditorLoadError, match="Not falling back to the preview editor, since device='cuda'"):
        load_editor("auto", fallback=True, device="cuda")


@pytest.mark.parametrize("given", [{"device": "cuda"}, {"model": "timbrooks/instruct-pix2pix"}, {"dtype": "float16"}])
def test_the_preview_refuses_model_device_and_dtype(given):
    # issue 8: `--device cuda` with the preview was silently accepted (as --steps is refused).
    with pytest.raises(ValueError, match=f"{next(iter(given))}.*preview"):
        load_editor("preview", **given)
    assert load_editor("preview", device="cpu").name == "preview"  # where it runs anyway


def test_prompt_cache_keeps_the_most_recently_used(monkeypatch):
    import torch

    from diffusemix.editors._diffusers_common import PromptCache

    calls = []
    cache = PromptCache(lambda p: calls.append(p) or torch.zeros(1, 2, 3), max_size=2)
    for p in ["a", "b", "a", "c", "a", "b"]:
        cache.get(p)
    assert len(cache) == 2 and calls == ["a", "b", "c", "b"]  # "b" was evicted by "c", "a" kept as recently used


# ---------------------------------------------------------------------------
# loading errors


def test_missing_folder(tmp_path):
    with pytest.raises(EditorLoadError, match="does not exist.*--model"):
        load_editor("instruct-pix2pix", model=str(tmp_path / "no-such-model")).load()
    with pytest.raises(EditorLoadError, match="does not exist"):
        load_editor("img2img", model="./models/sd-1.5").load()


def test_folder_that_is_not_a_pipeline_lists_missing_parts(tmp_path):
    (tmp_path / "unet").mkdir()
    (tmp_path / "model_index.json").write_text("{}")
    with pytest.raises(
        EditorLoadError,
        match=r"not a diffusers pipeline folder: missing vae/, text_encoder/,"
        r" tokenizer/, scheduler/ \(found model_index.json, unet/\)",
    ):
        load_editor("instruct-pix2pix", model=str(tmp_path)).load()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(EditorLoadError, match="missing model_index.json, unet/, vae/"):
        load_editor("img2img", model=str(empty)).load()


def test_a_file_is_not_a_model(tmp_path):
    f = tmp_path / "model.safetensors"
    f.write_bytes(b"")
    with pytest.raises(EditorLoadError, match="is a file"):
        load_editor("instruct-pix2pix", model=str(f)).load()


@pytest.mark.filterwarnings("ignore:The `local_dir_use_symlinks` argument is deprecated")
def test_hub_id_not_cached_says_what_to_do():
    t0 = time.perf_counter()
    with pytest.raises(EditorLoadError) as info:
        load_editor("instruct-pix2pix", model="timbrooks/instruct-pix2pix").load()
    msg = str(info.value)
    assert "not in the local Hugging Face cache" in msg
    assert "--model /path/to/instruct-pix2pix" in msg
    assert "hf download timbrooks/instruct-pix2pix" in msg
    assert "--editor preview" in msg
    assert time.perf_counter() - t0 < 30
    with pytest.raises(EditorLoadError, match="hf download someone/sd-model"):
        load_editor("img2img", model="someone/sd-model").load()


def test_a_text_to_image_checkpoint_is_not_instruct_pix2pix(tiny_img2img_dir):
    with pytest.raises(EditorLoadError, match="not an InstructPix2Pix model.*--editor img2img"):
        load_editor("instruct-pix2pix", model=str(tiny_img2img_dir)).load()


def test_an_instruct_pix2pix_folder_is_not_for_img2img(tiny_ip2p_dir):
    with pytest.raises(EditorLoadError, match="holds an InstructPix2Pix pipeline.*--editor instruct-pix2pix"):
        load_editor("img2img", model=str(tiny_ip2p_dir)).load()


def test_unavailable_device_or_dtype():
    with pytest.raises(EditorLoadError, match="device must be"):
        load_editor("instruct-pix2pix", device="tpu")
    with pytest.raises(ValueError, match="EditorSpec.dtype must be one of auto, float16, bfloat16, float32"):
        load_editor("instruct-pix2pix", device="cpu", dtype="int8")
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(EditorLoadError, match="CUDA is not available"):
            load_editor("img2img", device="cuda")


@pytest.mark.parametrize(
    "editor_cls, folder", [(InstructPix2PixEditor, "tiny_ip2p_dir"), (Img2ImgEditor, "tiny_img2img_dir")]
)
def test_out_of_memory_says_to_lower_the_batch_size(request, monkeypatch, rgb_image, editor_cls, folder):
    import torch

    ed = _make(editor_cls, request.getfixturevalue(folder), batch_size=4)
    pipe = ed.pipeline

    def oom(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(type(pipe), "__call__", oom)
    if editor_cls is InstructPix2PixEditor:  # splits the batch in halves down to one image, then says so
        with pytest.raises(EditorLoadError, match=r"single image at .*even a batch of one does not fit.*--vae tiny"):
            ed.edit([EditRequest(rgb_image, p, k) for k, p in enumerate(["snowy", "sunset", "rainbow"])])
        return
    with pytest.raises(
        EditorLoadError, match=r"out of memory with batch_size=4 .*Lower the batch size \(e.g. --batch-size 2\)"
    ):
        ed.edit([EditRequest(rgb_image, "snowy", 0)])


def test_loading_happens_once_across_threads(monkeypatch, tiny_ip2p_dir):
    from diffusers import StableDiffusionInstructPix2PixPipeline as P

    real = P.from_pretrained

    def slow_from_pretrained(*args, **kwargs):
        time.sleep(0.2)
        return real(*args, **kwargs)

    counter = Counter(slow_from_pretrained)
    monkeypatch.setattr(P, "from_pretrained", counter)
    ed = load_editor("instruct-pix2pix", model=str(tiny_ip2p_dir), device="cpu")
    threads = [threading.Thread(target=ed.load) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ed.load()
    assert counter.calls == 1 and ed.loaded
    # the user's code path: local folder, safety checker off, Euler ancestral
    assert type(ed.pipeline.scheduler).__name__ == "EulerAncestralDiscreteScheduler"
    assert ed.pipeline.safety_checker is None


# ---------------------------------------------------------------------------
# the diffusion editors on tiny pipelines


def _settings(editor_cls, **kw):
    if editor_cls is InstructPix2PixEditor:
        return {"steps": STEPS, **kw}
    return {"steps": 2 * STEPS, "strength": 0.5, **kw}


def _make(editor_cls, folder, **kw):
    """The editor of ``editor_cls`` on a tiny pipeline folder, with the tests' few steps."""
    return load_editor(editor_cls.name, model=str(folder), **_settings(editor_cls, **kw))


@pytest.fixture(params=["instruct-pix2pix", "img2img"])
def diffusion(request):
    """(editor class, pipeline folder) for each diffusers editor."""
    if request.param == "instruct-pix2pix":
        return InstructPix2PixEditor, request.getfixturevalue("tiny_ip2p_dir")
    return Img2ImgEditor, request.getfixturevalue("tiny_img2img_dir")


def test_outputs_have_the_requested_size_for_odd_sizes(diffusion, make_rgb):
    cls, folder = diffusion
    ed = _make(cls, folder, batch_size=4, device="cpu")
    sizes = [(33, 17), (17, 33), (31, 45), (5, 9), (40, 24), (33, 17)]
    images = [make_rgb(h, w, k) for k, (h, w) in enumerate(sizes)]
    res = ed.edit([EditRequest(im, "snowy", k) for k, im in enumerate(images)])
    for im, r in zip(images, res):
        assert r.image.shape == im.shape and r.image.dtype == np.uint8
        assert r.attempts >= 1


def test_a_sample_does_not_depend_on_its_batch(diffusion, make_rgb):
    cls, folder = diffusion
    images = [make_rgb(32, 32, k) for k in range(2)] + [make_rgb(33, 17, 7)]
    reqs = requests_for(images, ["snowy", "Autumn"])
    # float32: the 1-grey-level bound is float rounding; bfloat16 (the CPU default where supported) is approximate
    one = _make(cls, folder, batch_size=1, dtype="float32").edit(reqs)
    four = _make(cls, folder, batch_size=4, dtype="float32").edit(list(reversed(reqs)))[::-1]
    for a, b in zip(one, four):
        assert a.seed == b.seed
        assert np.abs(a.image.astype(int) - b.image.astype(int)).max() <= 1
    assert np.abs(one[0].image.astype(int) - one[1].image.astype(int)).mean() > 0  # prompts matter


def test_same_as_a_plain_pipeline_call_with_a_string_prompt(rgb_image, tiny_ip2p_dir):
    """The reference code's way (one call, string prompt) gives the same image."""
    import torch
    from PIL import Image

    ed = _make(InstructPix2PixEditor, tiny_ip2p_dir)
    (res,) = ed.edit([EditRequest(rgb_image, "watercolor art", 42)])
    ref = ed.pipeline(
        "watercolor art",
        image=Image.fromarray(rgb_image),
        num_inference_steps=STEPS,
        guidance_scale=4.0,
        image_guidance_scale=1.5,
        generator=torch.Generator().manual_seed(42),
        output_type="np",
    ).images[0]
    ref = (np.clip(ref, 0, 1) * 255).round().astype(np.uint8)
    assert np.abs(res.image.astype(int) - ref.astype(int)).max() <= 1


def test_each_distinct_prompt_is_encoded_once(diffusion, rgb_image, odd_image):
    cls, folder = diffusion
    ed = _make(cls, folder, batch_size=2)
    encoder = ed.pipeline.text_encoder
    counter = Counter(encoder.forward)
    encoder.forward = counter  # nn.Module.__call__ looks forward up on the instance
    prompts = ["snowy", "Autumn", "snowy", "rain", "Autumn"]
    reqs = [EditRequest(im, p, k) for k, (im, p) in enumerate(itertools.product([rgb_image, odd_image], prompts))]
    ed.edit(reqs)
    assert counter.calls == 3 + 1  # three prompts and the empty negative prompt, over 5 batches
    ed.edit(reqs[:3])
    assert counter.calls == 4  # cached for the editor's life


def test_degenerate_outputs_are_retried_then_reported(monkeypatch, diffusion, make_rgb):
    cls, folder = diffusion
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
    images = [make_rgb(32, 32, k) for k in range(3)]
    reqs = [EditRequest(im, "snowy", 10 + k) for k, im in enumerate(images)]
    ed = _make(cls, folder, batch_size=2, max_retries=2)
    units = ed.spec.steps if cls is InstructPix2PixEditor else ed.spec.denoising_steps

    # first attempt black for request 1 only: retried once with retry_seed(seed, 1)
    black_seeds.clear()
    black_seeds.add(11)
    seen = []
    res = ed.edit(reqs, progress=lambda d, t: seen.append((d, t)))
    assert [r.attempts for r in res] == [1, 2, 1]
    assert res[1].seed == retry_seed(11, 1) and res[1].degenerate is None
    assert res[0].seed == 10 and res[2].seed == 12
    assert seen[-1] == (3 * units, 3 * units)  # two batches, then one retry batch

    # always black: gives up after max_retries and says why
    black_seeds.update(retry_seed(11, a) for a in (1, 2))
    res = ed.edit(reqs)
    assert res[1].attempts == 3 and res[1].degenerate == "all black" and res[1].seed == retry_seed(11, 2)
    assert not res[1].image.any()
    assert res[0].degenerate is None and res[2].degenerate is None


def test_progress_counts_denoising_steps(diffusion, make_rgb):
    cls, folder = diffusion
    ed = _make(cls, folder, batch_size=2)
    units = ed.spec.steps if cls is InstructPix2PixEditor else ed.spec.denoising_steps
    assert units == STEPS
    reqs = [EditRequest(make_rgb(32, 32, k), "rain", k) for k in range(5)] + [EditRequest(make_rgb(17, 33), "rain", 9)]
    seen = []
    ed.edit(reqs, progress=lambda d, t: seen.append((d, t)))
    total = units * 4  # 5 at 32x32 in batches of 2 -> 3 batches, one 16x32 batch
    assert seen[0] == (0, total) and seen[-1] == (total, total)
    assert all(t == total for _, t in seen)
    done = [d for d, _ in seen]
    assert done == sorted(done) and len(set(done)) == total + 1  # every step reported


def test_cancel_stops_at_the_next_step(diffusion, make_rgb):
    cls, folder = diffusion
    ed = _make(cls, folder, batch_size=1)
    unet = ed.pipeline.unet
    counter = Counter(unet.forward)
    unet.forward = counter
    reqs = [EditRequest(make_rgb(32, 32, k), "rain", k) for k in range(4)]  # 4 batches x 2 steps
    cancel = threading.Event()

    def progress(done, total):
        if done >= 3:
            cancel.set()

    with pytest.raises(Cancelled):
        ed.edit(reqs, progress=progress, cancel=cancel)
    assert counter.calls == 3  # stopped right after the 3rd of 8 planned steps

    counter.calls = 0
    with pytest.raises(Cancelled):
        ed.edit(reqs, cancel=cancel)  # already set: nothing runs
    assert counter.calls == 0


def test_with_settings_shares_the_loaded_pipeline_and_prompt_cache(diffusion, rgb_image):
    cls, folder = diffusion
    ed = _make(cls, folder)
    variant = ed.with_settings(steps=2 * ed.spec.steps)
    assert variant.spec.steps == 2 * ed.spec.steps and ed.spec.steps == _settings(cls)["steps"]
    with pytest.raises(ValueError, match="steps"):
        ed.with_settings(steps=0)
    variant.load()  # loading the variant loads the original too: one model
    assert ed.loaded and variant.pipeline is ed.pipeline
    counter = Counter(ed.pipeline.text_encoder.forward)
    ed.pipeline.text_encoder.forward = counter
    ed.edit([EditRequest(rgb_image, "mosaic", 0)])
    variant.edit([EditRequest(rgb_image, "mosaic", 0)])
    assert counter.calls == 2  # "mosaic" and "" once, for both


def test_weights_note_says_where_the_weights_would_come_from(tiny_ip2p_dir, tmp_path):
    from diffusemix.editors import weights_note

    assert weights_note(load_editor("preview")) is None
    assert weights_note(load_editor("instruct-pix2pix", model=str(tiny_ip2p_dir))) is None  # a folder: here
    note = weights_note(load_editor("instruct-pix2pix"))  # a hub id not in the (empty) test cache
    assert "not in the local Hugging Face cache" in note and "hf download timbrooks/instruct-pix2pix" in note
    assert "--editor preview" in note
    note = weights_note(load_editor("img2img", model=str(tmp_path / "nowhere")))
    assert note.startswith("cannot be loaded:") and "does not exist" in note
