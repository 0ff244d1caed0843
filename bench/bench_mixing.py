"""Throughput of mask + hybrid + blend at 256 x 256: diffusemix against the reference way.

The reference code (per image): PIL images -> float arrays, the ramp mask
built again on every call (linspace, tile, stack, 3 channels, float64),
H = (1 - M) I + M Î, clip and cast to uint8, back to PIL; then the fractal
resized, both -> float arrays, A = 0.8 H + 0.2 F, clip and cast, back to PIL.

diffusemix: uint8 arrays in, the cached float32 mask, H and A in one fused
pass (``functional.mix``), uint8 arrays out.

Both run in this one process on the same inputs, alternating, and the ratio
of their medians is printed (these machines are noisy: read the ratio).

    python bench/bench_mixing.py [--size 256] [--n 200] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from diffusemix.functional import make_mask, mix  # noqa: E402


def reference_mix(original: Image.Image, generated: Image.Image, fractal: Image.Image, seam: int = 20) -> Image.Image:
    """Written the way the reference code does it (its 'horizontal' case)."""
    width, height = original.size
    mask = np.linspace(0, 1, seam).reshape(1, -1)
    mask = np.tile(mask, (height, 1))
    mask = np.hstack(
        [np.zeros((height, width // 2 - seam // 2)), mask, np.ones((height, width // 2 - seam // 2 + seam % 2))]
    )
    mask = np.tile(mask[:, :, np.newaxis], (1, 1, 3))
    o = np.array(original, dtype=np.float32) / 255.0
    g = np.array(generated, dtype=np.float32) / 255.0
    h = (1 - mask) * o + mask * g
    h_img = Image.fromarray(np.clip(h * 255, 0, 255).astype(np.uint8))
    f = fractal.resize(h_img.size)
    base = np.array(h_img, dtype=np.float32)
    over = np.array(f, dtype=np.float32)
    a = (1 - 0.2) * base + 0.2 * over
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


def diffusemix_mix(original: np.ndarray, generated: np.ndarray, fractal: np.ndarray, seam: int = 20) -> np.ndarray:
    h, w = original.shape[:2]
    m = make_mask(h, w, "left", kind="ramp", seam=seam)
    _, a = mix(original, generated, fractal, m, 0.2)
    return a


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--n", type=int, default=200, help="images per timed round")
    ap.add_argument("--repeats", type=int, default=5, help="timed rounds per method")
    args = ap.parse_args()

    rng = np.random.default_rng(0)
    s = args.size
    arrays = [rng.integers(0, 256, (s, s, 3), dtype=np.uint8) for _ in range(3 * 8)]
    triples_np = [tuple(arrays[3 * i : 3 * i + 3]) for i in range(8)]
    triples_pil = [tuple(Image.fromarray(a) for a in t) for t in triples_np]

    # The two agree on the image (same maths, mirrored mask convention).
    ref = np.asarray(reference_mix(*triples_pil[0]), dtype=np.int16)
    ours = diffusemix_mix(*triples_np[0]).astype(np.int16)
    print(f"max |reference - diffusemix| = {np.abs(ref - ours).max()} grey levels (ramp offset by < 1 px)")

    def run_ref() -> float:
        t = time.perf_counter()
        for i in range(args.n):
            reference_mix(*triples_pil[i % 8])
        return time.perf_counter() - t

    def run_ours() -> float:
        t = time.perf_counter()
        for i in range(args.n):
            diffusemix_mix(*triples_np[i % 8])
        return time.perf_counter() - t

    run_ref(), run_ours()  # warm up
    t_ref, t_ours = [], []
    for _ in range(args.repeats):
        t_ref.append(run_ref())
        t_ours.append(run_ours())
    r, o = statistics.median(t_ref), statistics.median(t_ours)
    print(f"mask + hybrid + blend at {s}x{s}, {args.n} images, median of {args.repeats} rounds")
    print(f"  reference way : {args.n / r:8.1f} images/s  ({1000 * r / args.n:.3f} ms/image)")
    print(f"  diffusemix    : {args.n / o:8.1f} images/s  ({1000 * o / args.n:.3f} ms/image)")
    print(f"  speed-up      : {r / o:.1f}x  (target >= 8x)")


if __name__ == "__main__":
    main()
