"""What the GPU paths would have broken on, checked on the CPU (issue 25).

Each test failed on the code before its fix:

- an out-of-memory batch was retried in halves while the failed call's
  exception still held its frames, so the failed batch's tensors (on a GPU:
  its activations) were still alive when the halves ran;
- the image latents were encoded outside the out-of-memory handling, so a VAE
  encode that ran out of memory left the editor as a raw ``OutOfMemoryError``
  instead of a smaller batch;
- ``batch_size="auto"`` on CUDA counted the memory torch's caching allocator
  keeps for reuse as used, so every call after the first planned smaller batches;
- the dry run's cost took the stored CPU figures for a CUDA editor in bfloat16
  (about a hundred times too slow), and the calibration read the peak memory of
  the current CUDA device rather than the editor's.
"""

from __future__ import annotations

import weakref

import numpy as np
import pytest
import torch

from diffusemix.editors import EditRequest, InstructPix2PixEditor, batching, load_editor
from diffusemix.editors._diffusers_common import BatchOutOfMemory, SharedPipeline


def ip2p(folder, **settings) -> InstructPix2PixEditor:
    settings.setdefault("steps", 3)
    return load_editor("instruct-pix2pix", model=str(folder), device="cpu", dtype="float32", **settings)


# ---------------------------------------------------------------------------
# out of memory: the failed batch is released before the halves run


def test_split_on_oom_releases_the_failed_batch_before_the_halves() -> None:
    alive_when_halves_ran: list[bool] = []
    refs: list[weakref.ref] = []

    def deep_call(n: int) -> None:
        activations = torch.ones(n, 1000)  # what a failed UNet call holds in its frames
        refs.append(weakref.ref(activations))
        raise torch.OutOfMemoryError(f"CUDA out of memory: {n} samples")

    def run(images, prompts, seeds, step):
        if len(images) > 2:
            try:
                deep_call(len(images))
            except torch.OutOfMemoryError as exc:
                raise BatchOutOfMemory("ran out of memory") from exc
        alive_when_halves_ran.append(any(r() is not None for r in refs))
        return np.zeros((len(images), 2, 2, 3), np.uint8)

    images = [np.zeros((2, 2, 3), np.uint8)] * 4
    out = batching.split_on_oom(run, images, ["p"] * 4, [0, 1, 2, 3], lambda: None, shared=SharedPipeline())
    assert out.images.shape == (4, 2, 2, 3) and out.groups == [[0, 1], [2, 3]]  # which samples ran together
    assert alive_when_halves_ran == [False, False]


def test_split_on_oom_still_raises_for_a_single_sample() -> None:
    def run(images, prompts, seeds, step):
        raise BatchOutOfMemory("even one does not fit")

    with pytest.raises(BatchOutOfMemory, match="even one does not fit"):
        batching.split_on_oom(run, [np.zeros((2, 2, 3), np.uint8)], ["p"], [0], lambda: None, shared=SharedPipeline())


def test_image_latents_out_of_memory_splits_the_batch(monkeypatch, tiny_ip2p_dir, make_rgb) -> None:
    reqs = [EditRequest(make_rgb(32, 32, k), "snowy", k) for k in range(4)]
    one = ip2p(tiny_ip2p_dir, batch_size=1).edit(reqs)
    ed = ip2p(tiny_ip2p_dir, batch_size=4)
    vae = ed.pipeline.vae
    real_encode = vae.encode
    sizes: list[int] = []

    def encode(pixels, *a, **k):
        sizes.append(len(pixels))
        if len(pixels) > 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_encode(pixels, *a, **k)

    monkeypatch.setattr(vae, "encode", encode)
    res = ed.edit(reqs)
    assert sizes == [4, 2, 2]
    assert ed._shared.oom_batch == 4
    for a, b in zip(one, res, strict=True):
        assert np.abs(a.image.astype(int) - b.image.astype(int)).max() <= 1


def test_image_latents_out_of_memory_with_one_image_is_a_clear_error(monkeypatch, tiny_ip2p_dir, make_rgb) -> None:
    ed = ip2p(tiny_ip2p_dir, batch_size=1)

    def encode(pixels, *a, **k):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(ed.pipeline.vae, "encode", encode)
    with pytest.raises(BatchOutOfMemory, match="even a batch of one does not fit"):
        ed.edit([EditRequest(make_rgb(32, 32, 0), "snowy", 0)])


# ---------------------------------------------------------------------------
# batch_size="auto" on CUDA: the caching allocator's reserve is free memory


def test_free_memory_on_cuda_counts_the_caching_allocators_reserve(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (10_000_000_000, 80_000_000_000))
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device=None: 30_000_000_000)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: 4_000_000_000)
    assert batching.free_memory_bytes("cuda:0") == 36_000_000_000


def test_auto_batch_size_does_not_shrink_after_the_first_call(monkeypatch) -> None:
    # a 16 GB card at 512 px: before the first call 10 GB are free; after it, torch keeps
    # 6 GB reserved for reuse, which the driver reports as used
    state = {"reserved": 0}
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (10e9 - state["reserved"], 16e9))
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device=None: 2e9 + state["reserved"])
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: 2e9)
    kw = dict(device="cuda", dtype="float16", height=512, width=512)
    first = batching.resolve_batch_size("auto", **kw)
    assert first == 8
    state["reserved"] = 6e9
    assert batching.resolve_batch_size("auto", **kw) == first


# ---------------------------------------------------------------------------
# the dry run's cost on a GPU


def test_stored_costs_are_not_used_for_a_gpu() -> None:
    from diffusemix.cost import stored_costs

    assert stored_costs(dtype="bfloat16", device="cpu").per_step_s > 0
    with pytest.raises(ValueError, match="no stored measurement for cuda .*calibrate"):
        stored_costs(dtype="bfloat16", device="cuda")
    with pytest.raises(ValueError, match="no stored measurement for cuda:1"):
        stored_costs(dtype="float16", device="cuda:1")


def test_calibration_reads_the_peak_of_the_editors_device(monkeypatch) -> None:
    from diffusemix import cost

    asked: list = []
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device=None: asked.append(device) or 3e9)

    class Editor:
        device = "cuda:1"

    assert cost._peak_gb(Editor()) == pytest.approx(3.0)
    assert asked == [torch.device("cuda:1")]

