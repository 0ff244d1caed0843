"""Speed levers of the InstructPix2Pix editor (dtype, cache_interval, tiny VAE,
compile, channels_last), automatic batch size and out-of-memory splitting, and
the process-wide allocator setting. On the tiny random pipeline: each lever is
applied, recorded in describe(), and refused clearly where it cannot apply."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from diffusemix.editors import EditorSpec, EditRequest, InstructPix2PixEditor, load_editor
from diffusemix.editors import batching, speed
from diffusemix.errors import EditorLoadError

ROOT = Path(__file__).resolve().parents[1]
STEPS = 4


def ip2p(folder, dtype="float32", **settings):
    settings.setdefault("steps", STEPS)
    return load_editor("instruct-pix2pix", model=str(folder), device="cpu", dtype=dtype, **settings)


@pytest.fixture(scope="module")
def tiny_taesd_dir(tmp_path_factory) -> Path:
    """A tiny random AutoencoderTiny saved like madebyollin/taesd (config.json + weights)."""
    import torch
    from diffusers import AutoencoderTiny

    folder = tmp_path_factory.mktemp("taesd")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        AutoencoderTiny(
            encoder_block_out_channels=(8, 8, 8, 8),
            decoder_block_out_channels=(8, 8, 8, 8),
            num_encoder_blocks=(1, 1, 1, 1),
            num_decoder_blocks=(1, 1, 1, 1),
        ).save_pretrained(folder)
    return folder


# ---------------------------------------------------------------------------
# dtype


def test_default_dtype_is_exact_off_cuda_and_fast_picks_bf16(monkeypatch):
    """The library's default on a CPU is float32 (exact), also where bf16 runs natively; bf16 is asked for by
    name or by the fast preset. (Before the one-schema change the default was bf16 on such CPUs.)"""
    monkeypatch.setattr(speed, "bf16_supported", lambda: True)
    assert speed.default_dtype("cpu") == speed.default_dtype("mps") == "float32"
    assert speed.default_dtype("cuda") == speed.default_dtype("cuda:1") == "float16"
    assert speed.fastest_dtype("cpu") == "bfloat16" and speed.fastest_dtype("cuda") == "float16"
    assert load_editor("instruct-pix2pix", device="cpu").dtype == "float32"
    assert load_editor("instruct-pix2pix", device="cpu", speed="paper").dtype == "float32"
    assert load_editor("instruct-pix2pix", device="cpu", speed="fast").dtype == "bfloat16"
    assert load_editor("instruct-pix2pix", device="cpu", dtype="bf16").dtype == "bfloat16"
    monkeypatch.setattr(speed, "bf16_supported", lambda: False)
    assert speed.fastest_dtype("cpu") == "float32"
    assert load_editor("instruct-pix2pix", device="cpu", speed="fast").dtype == "float32"
    assert load_editor("instruct-pix2pix", device="cpu", dtype="fp32").dtype == "float32"


def test_bf16_support_check_matches_torch():
    import torch

    assert speed.bf16_supported() == bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def test_bf16_is_applied_and_said_to_be_approximate(tiny_ip2p_dir, rgb_image):
    ed = ip2p(tiny_ip2p_dir, dtype="bfloat16")
    (res,) = ed.edit([EditRequest(rgb_image, "snowy", 1)])
    assert res.image.shape == rgb_image.shape
    import torch

    assert ed.pipeline.unet.dtype == torch.bfloat16
    d = ed.describe()
    assert d["dtype"] == "bfloat16" and d["approximate"] == ["bfloat16"]
    assert "approximate: bfloat16" in d["summary"]
    exact = ip2p(tiny_ip2p_dir).describe()
    assert exact["approximate"] == [] and "approximate" not in exact["summary"]


def test_speed_presets_live_in_the_spec():
    fast = load_editor("instruct-pix2pix", device="cpu", speed="fast", steps=30).spec
    assert (fast.steps, fast.cache_interval, fast.vae) == (30, 3, "tiny")  # a setting given explicitly wins
    paper = load_editor("instruct-pix2pix", device="cpu", speed="paper").spec
    assert (paper.steps, paper.cache_interval, paper.vae, paper.dtype) == (100, 1, "full", "float32")
    with pytest.raises(ValueError, match="EditorSpec.speed must be one of paper, fast; got 'turbo'"):
        EditorSpec(name="instruct-pix2pix", speed="turbo")
    with pytest.raises(ValueError, match="speed is not a setting of the img2img editor"):
        load_editor("img2img", speed="fast", device="cpu")


# ---------------------------------------------------------------------------
# channels_last: CUDA only


def test_the_unet_keeps_the_default_memory_layout(tiny_ip2p_dir):
    """channels_last is never applied: slower on the CPU and on an H200 (bench/RESULTS.md)."""
    import torch

    pipe = ip2p(tiny_ip2p_dir).pipeline
    w = pipe.unet.conv_in.weight
    assert w.is_contiguous() and not w.is_contiguous(memory_format=torch.channels_last)
    assert not hasattr(speed, "use_channels_last")


# ---------------------------------------------------------------------------
# cache_interval (DeepCache)


def _count_mid_block(monkeypatch, pipe):
    cls = type(pipe.unet.mid_block)
    real = cls.forward
    calls = []

    def counting(self, *a, **k):
        calls.append(1)
        return real(self, *a, **k)

    monkeypatch.setattr(cls, "forward", counting)
    return calls


def test_cache_interval_skips_the_deep_blocks_and_is_recorded(monkeypatch, tiny_ip2p_dir, rgb_image):
    base = ip2p(tiny_ip2p_dir)
    pipe = base.pipeline
    calls = _count_mid_block(monkeypatch, pipe)
    plain = base.edit([EditRequest(rgb_image, "snowy", 3)])
    assert len(calls) == STEPS
    calls.clear()
    cached = base.with_settings(cache_interval=2)  # shares the loaded pipeline
    (res,) = cached.edit([EditRequest(rgb_image, "snowy", 3)])
    assert len(calls) == STEPS // 2  # the deep features are recomputed every 2nd step only
    assert "forward" not in vars(pipe.unet)  # DeepCache is off again after the call
    assert np.abs(res.image.astype(int) - plain[0].image.astype(int)).max() > 0  # approximate
    calls.clear()
    base.edit([EditRequest(rgb_image, "snowy", 3)])
    assert len(calls) == STEPS  # the variant did not leave the cache on for the base editor
    d = cached.describe()
    assert cached.spec.cache_interval == 2 and "DeepCache interval 2" in d["approximate"]
    assert "DeepCache interval 2" in d["summary"] and "approximate" in d["summary"]
    assert base.spec.cache_interval == 1 and cached.spec.pixel_settings()["cache_interval"] == 2


def test_cache_interval_is_checked_and_refused_where_it_cannot_apply(tiny_ip2p_dir, tiny_img2img_dir):
    with pytest.raises(ValueError, match=r"EditorSpec.cache_interval must be an integer in \[1, 1000\]; got 0"):
        EditorSpec(name="instruct-pix2pix", cache_interval=0)
    with pytest.raises(ValueError, match="compile cannot go with cache_interval > 1"):
        EditorSpec(name="instruct-pix2pix", cache_interval=3, compile=True)
    with pytest.raises(ValueError, match="cache_interval is a setting of the diffusion editors; the preview"):
        load_editor("preview", cache_interval=3)
    with pytest.raises(ValueError, match="vae is a setting of the diffusion editors"):
        load_editor("preview", vae="tiny")
    with pytest.raises(ValueError, match="cache_interval is not a setting of the img2img editor"):
        load_editor("img2img", model=str(tiny_img2img_dir), cache_interval=2)


def test_cache_interval_without_the_package_says_how_to_install_it(monkeypatch, tiny_ip2p_dir, rgb_image):
    monkeypatch.setitem(sys.modules, "DeepCache", None)
    with pytest.raises(EditorLoadError, match=r"pip install DeepCache==0.1.1 \(or set cache_interval=1\)"):
        ip2p(tiny_ip2p_dir, cache_interval=2).edit([EditRequest(rgb_image, "snowy", 0)])


# ---------------------------------------------------------------------------
# vae="tiny"


def test_tiny_vae_is_used_for_encode_and_decode(monkeypatch, tiny_ip2p_dir, tiny_taesd_dir, rgb_image):
    from diffusers import AutoencoderKL, AutoencoderTiny

    used = []
    for cls in (AutoencoderKL, AutoencoderTiny):
        for name in ("encode", "decode"):
            real = getattr(cls, name)

            def wrapped(self, *a, _real=real, _tag=(cls.__name__, name), **k):
                used.append(_tag)
                return _real(self, *a, **k)

            monkeypatch.setattr(cls, name, wrapped)
    ed = ip2p(tiny_ip2p_dir, vae="tiny", tiny_vae_model=str(tiny_taesd_dir))
    (res,) = ed.edit([EditRequest(rgb_image, "snowy", 0)])
    assert res.image.shape == rgb_image.shape
    assert set(used) == {("AutoencoderTiny", "encode"), ("AutoencoderTiny", "decode")}
    assert isinstance(ed.pipeline.vae, AutoencoderKL)  # the pipeline's own VAE is back after the call
    d, px = ed.describe(), ed.spec.pixel_settings()
    assert px["vae"] == "tiny" and px["tiny_vae_model"] == str(tiny_taesd_dir) and "tiny VAE" in d["approximate"]
    assert "tiny_vae_model" not in ip2p(tiny_ip2p_dir).spec.pixel_settings()  # not used, not recorded


def test_tiny_vae_latents_are_unscaled_for_the_image_condition(tiny_ip2p_dir, tiny_taesd_dir, rgb_image):
    import torch

    from diffusemix.editors.instruct_pix2pix import _image_latents

    ed = ip2p(tiny_ip2p_dir, vae="tiny", tiny_vae_model=str(tiny_taesd_dir))
    pipe = ed.pipeline
    _unet, tiny = ed._speed_parts()
    scale = pipe.vae.config.scaling_factor
    with speed.pipeline_parts(pipe, vae=tiny):
        got = _image_latents(pipe, [rgb_image, rgb_image], full_vae_scale=scale)
    pixels = pipe.image_processor.preprocess([__import__("PIL.Image").Image.fromarray(rgb_image)])
    with torch.inference_mode():
        want = tiny.encode(pixels).latents / scale
    assert got.shape[0] == 2 and torch.allclose(got[0], want[0]) and torch.allclose(got[1], want[0])


def test_tiny_vae_weights_missing_is_a_clear_error(monkeypatch, tmp_path, tiny_ip2p_dir, rgb_image):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf-home"))
    ed = ip2p(tiny_ip2p_dir, vae="tiny")
    with pytest.raises(EditorLoadError, match=r"tiny VAE 'madebyollin/taesd' could not be loaded.*hf download.*--vae full"):
        ed.edit([EditRequest(rgb_image, "snowy", 0)])
    with pytest.raises(ValueError, match="vae must be one of full, tiny; got 'small'"):
        EditorSpec(name="instruct-pix2pix", vae="small")


# ---------------------------------------------------------------------------
# compile


def test_compile_is_applied_once_and_recorded(monkeypatch, tiny_ip2p_dir, rgb_image):
    import torch

    compiled = []

    def fake_compile(module, *a, **k):  # records the call; runs the module as it is
        compiled.append(module)
        return module

    monkeypatch.setattr(torch, "compile", fake_compile)
    ed = ip2p(tiny_ip2p_dir, compile=True)
    ed.edit([EditRequest(rgb_image, "snowy", 0)])
    ed.with_settings(steps=2).edit([EditRequest(rgb_image, "snowy", 0)])
    assert compiled == [ed.pipeline.unet]
    d = ed.describe()
    assert ed.spec.compile is True and "compiled UNet" in d["summary"] and d["approximate"] == []
    with pytest.raises(ValueError, match="compile must be True or False; got 'yes'"):
        EditorSpec(name="instruct-pix2pix", compile="yes")


# ---------------------------------------------------------------------------
# batch_size="auto" and out-of-memory splitting


def test_auto_batch_size_from_free_memory():
    kw = dict(dtype="float32", height=256, width=256)
    assert batching.auto_batch_size(64e9, device="cpu", **kw) == 8  # CPU: batching buys nothing beyond
    assert batching.auto_batch_size(80e9, device="cuda", dtype="float16", height=256, width=256) == 32
    assert batching.auto_batch_size(80e9, device="cuda", dtype="float16", height=512, width=512) == 8
    assert batching.auto_batch_size(1e9, device="cpu", **kw) == 1  # never below one
    for device in ("cuda", "cpu"):  # each device kind plans with its own measured working memory
        need = batching.memory_needed(4, device=device, **kw)
        assert batching.auto_batch_size(need / batching.HEADROOM + 1, device=device, **kw) == 4
        assert batching.auto_batch_size(need / batching.HEADROOM - 1, device=device, **kw) == 3
    assert batching.memory_needed(8, device="cuda", **kw) < batching.memory_needed(8, device="cpu", **kw)
    with pytest.raises(ValueError, match="EditorSpec.batch_size must be an integer in \\[1, 4096\\] or auto; got 'big'"):
        EditorSpec(name="instruct-pix2pix", batch_size="big")


def test_free_memory_on_cuda_uses_mem_get_info(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (12_000_000_000, 80_000_000_000))
    assert batching.free_memory_bytes("cuda:0") == 12_000_000_000
    assert batching.free_memory_bytes("cpu") > 0


def _oom_above(monkeypatch, pipe, limit):
    """The pipeline runs out of memory for calls of more than ``limit`` images; returns the call sizes."""
    import torch

    real = type(pipe).__call__
    sizes = []

    def limited(self, *a, **k):
        n = len(k["generator"])
        sizes.append(n)
        if n > limit:
            raise torch.OutOfMemoryError(f"out of memory: {n} images do not fit")
        return real(self, *a, **k)

    monkeypatch.setattr(type(pipe), "__call__", limited)
    return sizes


def test_out_of_memory_batch_is_retried_in_halves(monkeypatch, tiny_ip2p_dir, make_rgb):
    images = [make_rgb(32, 32, k) for k in range(2)]
    reqs = [EditRequest(im, p, 10 + k) for k, (im, p) in enumerate((im, p) for im in images for p in ("a", "b"))]
    one = ip2p(tiny_ip2p_dir, batch_size=1).edit(reqs)
    ed = ip2p(tiny_ip2p_dir, batch_size=4)
    sizes = _oom_above(monkeypatch, ed.pipeline, 2)
    res = ed.edit(reqs)
    assert sizes == [4, 2, 2]
    for a, b in zip(one, res):
        assert a.seed == b.seed and np.abs(a.image.astype(int) - b.image.astype(int)).max() <= 1
    sizes.clear()
    ed.edit(reqs)  # later calls start at half the size that failed
    assert sizes == [2, 2]


def test_auto_batch_size_survives_limited_memory(monkeypatch, tiny_ip2p_dir, make_rgb):
    reqs = [EditRequest(make_rgb(32, 32, k), "snowy", k) for k in range(5)]
    # 1. little free memory: auto picks one image per call
    monkeypatch.setattr(batching, "free_memory_bytes", lambda device: 1e6)
    ed = ip2p(tiny_ip2p_dir, batch_size="auto")
    sizes = _oom_above(monkeypatch, ed.pipeline, 10**6)
    ed.edit(reqs)
    assert sizes == [1, 1, 1, 1, 1]
    # 2. memory reported free but a batch still does not fit: split, never fail
    monkeypatch.undo()
    monkeypatch.setattr(batching, "free_memory_bytes", lambda device: 1e12)
    ed2 = ip2p(tiny_ip2p_dir, batch_size="auto")
    sizes = _oom_above(monkeypatch, ed2.pipeline, 2)
    res = ed2.edit(reqs)
    assert len(res) == 5 and all(r.image is not None for r in res)
    assert sizes == [5, 3, 2, 1, 2]  # 5 fails, 3 fails, then halves that fit
    assert ed2.spec.batch_size == "auto"


# ---------------------------------------------------------------------------
# the allocator setting (process-wide: only the CLI and the app apply it)


def _py(code: str, **env: str) -> str:
    import os

    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT, env={**os.environ, **env}
    ).stdout.strip()


def test_allocator_setting_is_applied_only_when_asked():
    code = (
        "import diffusemix, diffusemix.editors, diffusemix.runtime as r;"
        "print(r._applied is None); print(r.tune_allocator())"
    )
    out = _py(code).splitlines()
    assert out[0] == "True"  # importing the library changes nothing
    if sys.platform.startswith("linux"):
        assert out[1].startswith("applied (glibc mallopt")
    off = _py("import diffusemix.runtime as r; print(r.tune_allocator())", DIFFUSEMIX_MALLOPT="0").splitlines()
    assert off[0].startswith("off (DIFFUSEMIX_MALLOPT=0")


def test_allocator_setting_elsewhere_than_linux(monkeypatch):
    from diffusemix import runtime

    monkeypatch.setattr(runtime, "_applied", None)
    monkeypatch.setattr(runtime.sys, "platform", "darwin")
    assert runtime.tune_allocator(True) == "not available (needs Linux with glibc)"
    assert runtime.tune_allocator(False).startswith("off")
