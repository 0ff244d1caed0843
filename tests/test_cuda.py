"""The CUDA paths, on a real GPU: dtype and device placement, per-sample CPU
generators, a sample alone against the same sample in a batch, CPU against
CUDA, ``batch_size="auto"``, out-of-memory turned into smaller batches or a
clear message, and the data loader's pinned memory.

The tests marked ``cuda`` skip without a GPU; ``bash scripts/gpu_check.sh OUT``
runs them (``pytest -m cuda tests/test_cuda.py``) and copies what they
measured (``record_property``) into its JSON and table. The checks they share
with the CPU run unmarked here too, so the helpers cannot rot unseen in CI.

Tolerances (grey levels, 0-255, on the tiny random-weight pipeline, 4 steps):
a sample alone and in a batch run different cuDNN/cuBLAS kernels on CUDA, so
they agree up to float rounding amplified by the denoising loop, not bit for
bit; the bounds below are what the first GPU run is held to, and the figures
measured there are in its JSON (``bench/RESULTS.md`` once the lead has run it).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from diffusemix.editors import EditRequest, EditResult, InstructPix2PixEditor, batching, load_editor
from diffusemix.editors._diffusers_common import BatchOutOfMemory

ROOT = Path(__file__).resolve().parents[1]
CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU (bash scripts/gpu_check.sh OUT runs these)")

STEPS = 4
#: (max, mean) grey-level difference allowed between a sample alone and in a batch, per dtype.
#: Grey levels a sample may move between being alone and in a batch (max, mean). Measured on the first GPU run
#: (H200, torch 2.11, 2026-12-04, bench/RESULTS.md): float32 1 / 0.026, float16 1 / 0.043, bfloat16 0 / 0; the
#: bounds keep one grey level of margin (other GPUs pick other kernels).
BATCH_TOLERANCE = {"float32": (2, 0.1), "float16": (2, 0.1), "bfloat16": (2, 0.1)}
#: The same on the CPU (one kernel path; the environment notes measured <= 1).
CPU_BATCH_TOLERANCE = (2, 0.1)


def editor(folder: Path, *, device: str, dtype: str, **settings) -> InstructPix2PixEditor:
    settings.setdefault("steps", STEPS)
    settings.setdefault("max_retries", 0)
    return load_editor("instruct-pix2pix", model=str(folder), device=device, dtype=dtype, **settings)


def pairs(make_rgb, *, images: int, prompts: tuple[str, ...], size: int, seed0: int = 100) -> list[EditRequest]:
    """``images`` x ``prompts`` requests, each with its own seed."""
    ims = [make_rgb(size, size, k) for k in range(images)]
    return [EditRequest(im, p, seed0 + 10 * i + j) for i, im in enumerate(ims) for j, p in enumerate(prompts)]


def grey_difference(a: list[EditResult], b: list[EditResult]) -> tuple[int, float]:
    """(max, mean) absolute difference in grey levels over every pixel of every pair."""
    d = np.stack([np.abs(x.image.astype(np.int16) - y.image.astype(np.int16)) for x, y in zip(a, b, strict=True)])
    return int(d.max()), float(d.mean())


def _device_type(device: str) -> str:
    return torch.device(device).type


# ---------------------------------------------------------------------------
# helpers the CUDA tests and their CPU twins share


def check_placement(folder: Path, make_rgb, *, device: str, dtype: str) -> None:
    """Every part of the pipeline, the cached prompt embeddings and the image
    latents are on ``device`` in ``dtype``; channels_last on CUDA only; the
    outputs are uint8 at the request's size; describe() says where it ran."""
    from diffusemix.editors.instruct_pix2pix import _image_latents

    ed = editor(folder, device=device, dtype=dtype, batch_size=2)
    ed.load()
    pipe, want = ed.pipeline, getattr(torch, dtype)
    for name in ("unet", "vae", "text_encoder"):
        p = next(getattr(pipe, name).parameters())
        assert (p.device.type, p.dtype) == (_device_type(device), want), name
    conv = pipe.unet.conv_in.weight
    assert conv.is_contiguous(memory_format=torch.channels_last) == device.startswith("cuda")
    emb = ed._shared.prompts.get("snowy")
    assert (emb.device.type, emb.dtype) == (_device_type(device), want)
    a, b = make_rgb(64, 64, 1), make_rgb(64, 64, 2)
    lat = _image_latents(pipe, [a, a, b], full_vae_scale=pipe.vae.config.scaling_factor)
    assert lat.shape == (3, 4, 8, 8) and (lat.device.type, lat.dtype) == (_device_type(device), want)
    assert torch.equal(lat[0], lat[1]) and not torch.equal(lat[0], lat[2])
    res = ed.edit(pairs(make_rgb, images=2, prompts=("snowy",), size=48))
    assert [(r.image.dtype, r.image.shape) for r in res] == [(np.uint8, (48, 48, 3))] * 2
    d = ed.describe()
    assert (d["device"], d["dtype"]) == (device, dtype)


def alone_and_batched(folder: Path, make_rgb, *, device: str, dtype: str) -> dict[str, float]:
    """Four requests (two images x two prompts) in one batch and one at a time,
    and the batch twice; returns the grey-level differences."""
    reqs = pairs(make_rgb, images=2, prompts=("snowy", "sunset"), size=64)
    batched = editor(folder, device=device, dtype=dtype, batch_size=4)
    together = batched.edit(reqs)
    again = batched.edit(reqs)
    alone = batched.with_settings(batch_size=1).edit(reqs)
    assert [r.seed for r in together] == [r.seed for r in alone] == [r.seed for r in reqs]
    batch_max, batch_mean = grey_difference(together, alone)
    repeat_max, repeat_mean = grey_difference(together, again)
    return {"batch_max": batch_max, "batch_mean": batch_mean, "repeat_max": repeat_max, "repeat_mean": repeat_mean}


# ---------------------------------------------------------------------------
# on the CPU (CI): the helpers themselves


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_placement_on_cpu(tiny_ip2p_dir, make_rgb, dtype) -> None:
    check_placement(tiny_ip2p_dir, make_rgb, device="cpu", dtype=dtype)


def test_sample_alone_and_in_a_batch_agree_on_cpu(tiny_ip2p_dir, make_rgb) -> None:
    m = alone_and_batched(tiny_ip2p_dir, make_rgb, device="cpu", dtype="float32")
    assert m["repeat_max"] == 0
    assert m["batch_max"] <= CPU_BATCH_TOLERANCE[0] and m["batch_mean"] <= CPU_BATCH_TOLERANCE[1], m


# ---------------------------------------------------------------------------
# on a GPU


@pytest.mark.cuda
@needs_cuda
@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
def test_placement_on_cuda(tiny_ip2p_dir, make_rgb, dtype) -> None:
    check_placement(tiny_ip2p_dir, make_rgb, device="cuda", dtype=dtype)


@pytest.mark.cuda
@needs_cuda
@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_sample_alone_and_in_a_batch_on_cuda(tiny_ip2p_dir, make_rgb, record_property, dtype) -> None:
    m = alone_and_batched(tiny_ip2p_dir, make_rgb, device="cuda", dtype=dtype)
    for k, v in m.items():
        record_property(k, v)
    most, mean = BATCH_TOLERANCE[dtype]
    assert m["repeat_max"] <= 1, m  # the same batch twice: the same kernels
    assert m["batch_max"] <= most and m["batch_mean"] <= mean, m


@pytest.mark.cuda
@needs_cuda
def test_noise_comes_from_the_cpu_generators(tiny_ip2p_dir, make_rgb, record_property) -> None:
    """A request's noise is drawn on the CPU from its own seed, so the same request
    on CPU and on CUDA (float32) starts from the same noise and ends close; another
    seed on CUDA ends far away."""
    reqs = pairs(make_rgb, images=2, prompts=("snowy",), size=64)
    moved = [EditRequest(r.image, r.prompt, r.seed + 1000) for r in reqs]
    cpu = editor(tiny_ip2p_dir, device="cpu", dtype="float32", batch_size=2).edit(reqs)
    gpu_ed = editor(tiny_ip2p_dir, device="cuda", dtype="float32", batch_size=2)
    same, other = gpu_ed.edit(reqs), gpu_ed.edit(moved)
    same_max, same_mean = grey_difference(cpu, same)
    other_max, other_mean = grey_difference(cpu, other)
    for k, v in dict(cpu_cuda_max=same_max, cpu_cuda_mean=same_mean, other_seed_mean=other_mean).items():
        record_property(k, v)
    assert same_mean < 0.25 * other_mean, (same_mean, other_mean)


@pytest.mark.cuda
@needs_cuda
def test_batch_size_auto_on_cuda(tiny_ip2p_dir, make_rgb, record_property) -> None:
    ed = editor(tiny_ip2p_dir, device="cuda", dtype="float16", batch_size="auto", steps=2)
    ed.load()
    block = torch.empty(256 * 2**20, dtype=torch.uint8, device="cuda")
    del block  # freed into torch's cache: reserved, not allocated
    cached = torch.cuda.memory_reserved() - torch.cuda.memory_allocated()
    driver_free = torch.cuda.mem_get_info()[0]
    free = batching.free_memory_bytes("cuda")
    assert cached >= 256 * 2**20
    assert free >= driver_free + cached - 64 * 2**20
    chosen = batching.resolve_batch_size("auto", device="cuda", dtype="float16", height=256, width=256)
    record_property("free_gb", round(free / 1e9, 2))
    record_property("auto_batch_256px_fp16", chosen)
    assert chosen >= 1
    if free > 8e9:  # the working memory of 32 samples at 256 px in float16 is far below that
        assert chosen == batching.AUTO_CAP["cuda"]
    res = ed.edit(pairs(make_rgb, images=5, prompts=("snowy",), size=64))
    assert len(res) == 5 and all(r.image.shape == (64, 64, 3) for r in res)


def _reserved_peak(ed: InstructPix2PixEditor, reqs: list[EditRequest], batch: int) -> tuple[int, list[EditResult]]:
    """The memory a call needs beyond what is allocated before it: the ALLOCATED peak (the first GPU run, 2026-12-04,
    measured reserved peaks, 324 MB at batch 1 and 2132 MB at 8, and a limit between them raised no out-of-memory:
    the caching allocator reserves more than a call needs, and frees its cache before it fails)."""
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    out = ed.with_settings(batch_size=batch).edit(reqs)
    return torch.cuda.max_memory_allocated() - base, out


@pytest.mark.cuda
@needs_cuda
def test_out_of_memory_on_cuda_splits_the_batch(tiny_ip2p_dir, make_rgb, record_property) -> None:
    """A real CUDA out-of-memory (a memory limit between what one and eight
    samples need) becomes smaller batches that give the same images."""
    reqs = pairs(make_rgb, images=8, prompts=("snowy",), size=768)
    ed = editor(tiny_ip2p_dir, device="cuda", dtype="float32", steps=2)
    ed.with_settings(batch_size=1).edit(reqs[:1])  # warm-up: kernels, workspaces
    one, alone = _reserved_peak(ed, reqs, 1)
    eight, _ = _reserved_peak(ed, reqs, 8)
    record_property("reserved_mb_batch1", one // 2**20)
    record_property("reserved_mb_batch8", eight // 2**20)
    assert eight > 3 * one, "the test's premise: eight samples need several times what one needs"
    torch.cuda.empty_cache()
    total = torch.cuda.get_device_properties(torch.cuda.current_device()).total_memory
    limit = torch.cuda.memory_allocated() + (one + eight) // 2
    ed._shared.oom_batch = None
    torch.cuda.set_per_process_memory_fraction(limit / total)
    try:
        split = ed.with_settings(batch_size=8).edit(reqs)
        failed_at = ed._shared.oom_batch
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
        torch.cuda.empty_cache()
        ed._shared.oom_batch = None
    record_property("failed_batch", failed_at)
    assert failed_at is not None and 2 <= failed_at <= 8
    most, mean = BATCH_TOLERANCE["float32"]
    got_max, got_mean = grey_difference(split, alone)
    record_property("split_vs_alone_max", got_max)
    assert got_max <= most and got_mean <= mean


@pytest.mark.cuda
@needs_cuda
def test_out_of_memory_on_cuda_with_one_image_is_a_clear_error(tiny_ip2p_dir, make_rgb) -> None:
    reqs = pairs(make_rgb, images=1, prompts=("snowy",), size=768)
    ed = editor(tiny_ip2p_dir, device="cuda", dtype="float32", steps=2, batch_size=1)
    one, _ = _reserved_peak(ed, reqs, 1)
    torch.cuda.empty_cache()
    total = torch.cuda.get_device_properties(torch.cuda.current_device()).total_memory
    torch.cuda.set_per_process_memory_fraction((torch.cuda.memory_allocated() + one // 8) / total)
    try:
        with pytest.raises(BatchOutOfMemory, match="even a batch of one does not fit"):
            ed.edit(reqs)
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
        torch.cuda.empty_cache()
    assert len(ed.edit(reqs)) == 1  # and the editor still works once memory is back


@pytest.mark.cuda
@needs_cuda
def test_fast_levers_on_cuda(tiny_ip2p_dir, make_rgb, tmp_path) -> None:
    """DeepCache and the tiny VAE in float16 on CUDA (the `fast` preset's levers)."""
    from diffusers import AutoencoderTiny

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        AutoencoderTiny(
            encoder_block_out_channels=(8, 8, 8, 8),
            decoder_block_out_channels=(8, 8, 8, 8),
            num_encoder_blocks=(1, 1, 1, 1),
            num_decoder_blocks=(1, 1, 1, 1),
        ).save_pretrained(tmp_path / "taesd")
    ed = editor(
        tiny_ip2p_dir, device="cuda", dtype="float16", steps=6, batch_size=2, cache_interval=3, vae="tiny",
        tiny_vae_model=str(tmp_path / "taesd"),
    )  # fmt: skip
    res = ed.edit(pairs(make_rgb, images=2, prompts=("snowy",), size=64))
    assert [r.image.shape for r in res] == [(64, 64, 3)] * 2
    assert next(ed._shared.tiny_vae[1].parameters()).device.type == "cuda"
    assert set(ed.describe()["approximate"]) == {"float16", "DeepCache interval 3", "tiny VAE"}


# ---------------------------------------------------------------------------
# training data on a GPU: pinned batches


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    from diffusemix.editors import load_editor
    from diffusemix.export import ExportOptions, export_dataset
    from diffusemix.fractals import FractalSet, write_fractal_set
    from diffusemix.recipe import Recipe
    from export_helpers import make_dataset

    root = tmp_path_factory.mktemp("cuda-data")
    data = make_dataset(root / "train", classes=("a", "b"), per_class=3)
    write_fractal_set(root / "fractals", count=3, size=32, seed=1)
    export_dataset(
        data,
        root / "cache",
        recipe=Recipe(size=32, prompts=("sunset", "snowy"), seam=4),
        editor=load_editor("preview"),
        fractals=FractalSet.from_folder(root / "fractals"),
        options=ExportOptions(cache=True),
        progress_bar=False,
    )
    return root


@pytest.mark.cuda
@needs_cuda
def test_pinned_batches_reach_the_gpu_unchanged(cache_dir) -> None:
    from torch.utils.data import DataLoader

    from diffusemix.data import DiffuseMixDataset, to_tensor

    ds = DiffuseMixDataset(cache_dir / "cache", fractals=cache_dir / "fractals", seed=3, transform=to_tensor)
    plain = list(DataLoader(ds, batch_size=4, num_workers=0))
    pinned = DataLoader(ds, batch_size=4, num_workers=2, pin_memory=True)
    seen = 0
    for (x, y), (x0, y0) in zip(pinned, plain, strict=True):
        assert x.is_pinned() and y.is_pinned()
        gx, gy = x.to("cuda", non_blocking=True), y.to("cuda", non_blocking=True)
        torch.cuda.synchronize()
        assert torch.equal(gx.cpu(), x0) and torch.equal(gy.cpu(), y0)
        seen += len(y)
    assert seen == len(ds)


@pytest.mark.cuda
@needs_cuda
def test_training_runs_on_cuda_with_mixed_precision_and_attacks(cache_dir, tmp_path) -> None:
    """`python -m diffusemix train` on the GPU: fp16 autocast, kornia's CutMix on CUDA tensors, FGSM/PGD."""
    import json

    out = tmp_path / "run"
    cmd = [
        sys.executable, "-m", "diffusemix", "train", "robustness-cifar-100", "--train", str(cache_dir / "train"),
        "--val", str(cache_dir / "train"), "--model", "tiny-resnet", "--epochs", "2", "--method", "cutmix",
        "--mixed-precision", "fp16", "--set", "load_size=32", "--set", "image_size=32", "--set", "batch_size=4",
        "--set", "robust_samples=4", "--out", str(out),
    ]  # fmt: skip
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((out / "result.json").read_text())
    assert str(result["environment"]["device"]).startswith("cuda"), result["environment"]

