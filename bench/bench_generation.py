"""Benchmark: batched editing against the reference code's one call per pair.

Runs on a tiny random-weight InstructPix2Pix pipeline built offline (the same
builder the tests use), so it measures the editor's overheads and the gain from
batching, not a real model's speed. For 8 (image, prompt) pairs (4 images x 2
prompts) at 64 and 256 px, with the same number of steps:

  reference  one pipeline call per pair with a string prompt (re-encoded each call)
  batched    InstructPix2PixEditor(batch_size=8): one call, each prompt encoded once

Targets: batched at least 3x faster at 64 px and 1.3x at 256 px; the preview
editor under 30 ms per 256x256 image.

    python bench/bench_generation.py [--steps 10] [--repeats 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import numpy as np

from diffusemix.editors import EditRequest, PreviewEditor, load_editor
from diffusemix.prompts import PAPER_PROMPTS  # noqa: E402

PROMPTS = ["snowy", "Autumn"]
DEFAULT_PROMPTS = list(PAPER_PROMPTS)


def images(size: int, n: int = 4) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    out = []
    for k in range(n):
        yy, xx = np.mgrid[0:size, 0:size] / size
        base = np.stack([np.sin(3 * xx + k), np.cos(2 * yy + k), np.sin(xx + yy + 2 * k)], -1) * 0.4 + 0.5
        base += rng.normal(0, 0.03, base.shape)
        out.append((np.clip(base, 0, 1) * 255).astype(np.uint8))
    return out


def timed_pair(a, b, repeats: int) -> tuple[float, float]:
    """Best-of-``repeats`` times of ``a`` and ``b``, interleaved so that load from
    other processes on a shared machine hits both alike (the minimum is the
    least disturbed run)."""
    a(), b()  # warm-up
    ta, tb = [], []
    for _ in range(repeats):
        for fn, times in ((a, ta), (b, tb)):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    return min(ta), min(tb)


def bench_size(folder: Path, size: int, steps: int, repeats: int) -> tuple[float, float]:
    import torch
    from PIL import Image

    pairs = [(im, p) for im in images(size) for p in PROMPTS]
    from diffusers import EulerAncestralDiscreteScheduler, StableDiffusionInstructPix2PixPipeline

    editor = load_editor("instruct-pix2pix", model=str(folder), steps=steps, batch_size=8, device="cpu")
    editor.load()
    # the reference code's pipeline: loaded plainly, Euler ancestral, safety checker off
    pipe = StableDiffusionInstructPix2PixPipeline.from_pretrained(
        str(folder), safety_checker=None, requires_safety_checker=False
    )
    pipe.scheduler = EulerAncestralDiscreteScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)

    def reference() -> None:
        for k, (im, prompt) in enumerate(pairs):
            pipe(
                prompt,
                image=Image.fromarray(im),
                num_inference_steps=steps,
                guidance_scale=4.0,
                image_guidance_scale=1.5,
                generator=torch.Generator().manual_seed(k),
            )

    requests = [EditRequest(im, prompt, k) for k, (im, prompt) in enumerate(pairs)]

    def batched() -> None:
        editor.edit(requests)

    return timed_pair(reference, batched, repeats)


def bench_preview(repeats: int) -> float:
    ed = PreviewEditor()
    reqs = [EditRequest(im, p, 0) for im in images(256, 2) for p in DEFAULT_PROMPTS + ["a photo of a cat"]]
    t, _ = timed_pair(lambda: ed.edit(reqs), lambda: None, repeats)
    return t / len(reqs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = ap.parse_args()

    import torch
    from tiny_pipelines import build_tiny_ip2p

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="diffusemix-bench-") as tmp:
        folder = build_tiny_ip2p(Path(tmp) / "tiny-ip2p")
        print(
            f"tiny InstructPix2Pix, 8 pairs (4 images x {len(PROMPTS)} prompts), {args.steps} steps,"
            f" CPU, {args.threads} torch threads, best of {args.repeats}"
        )
        print(f"{'size':>6} {'reference s':>12} {'batched s':>10} {'speed-up':>9} {'target':>7}")
        for size, target in ((64, 3.0), (256, 1.3)):
            ref, bat = bench_size(folder, size, args.steps, args.repeats)
            ratio = ref / bat
            print(
                f"{size:>4}px {ref:>12.3f} {bat:>10.3f} {ratio:>8.2f}x {target:>6.1f}x"
                f"  {'ok' if ratio >= target else 'MISSED'}"
            )
    per_image = bench_preview(args.repeats)
    print(
        f"preview editor: {per_image * 1000:.1f} ms per 256x256 image (target < 30 ms)"
        f"  {'ok' if per_image < 0.030 else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
