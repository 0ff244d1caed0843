"""Throughput of mask + hybrid + blend at 256 x 256: diffusemix against the reference way.

The reference code (per image): PIL images -> float arrays, the ramp mask
built again on every call (linspace, tile, stack, 3 channels, float64),
H = (1 - M) I + M Î, clip and cast to uint8, back to PIL; then the fractal
resized, both -> float arrays, A = 0.8 H + 0.2 F, clip and cast, back to PIL.

diffusemix, the exact arithmetic (``functional.mix_reference``, what the
``paper`` preset uses): uint8 arrays in; pixels whose mask weight is exactly 0
or 1 copied, only the 20 seam columns computed in float64; A through a
65,536-entry table per λ; uint8 arrays out, equal to the reference's bit for
bit (checked on every input before timing). The ``rounded`` arithmetic
(``functional.mix``: the cached float32 mask, H and A in one fused pass) is
timed too.

All run in this one process on the same inputs, alternating, and the ratios
of their medians are printed (these machines are noisy: read the ratios).

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

from diffusemix.functional import make_mask, mix, mix_reference  # noqa: E402


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


def diffusemix_exact(original: np.ndarray, generated: np.ndarray, fractal: np.ndarray, seam: int = 20) -> np.ndarray:
    _, a = mix_reference(original, generated, fractal, "left", 0.2, kind="linspace", seam=seam)
    return a


def diffusemix_rounded(original: np.ndarray, generated: np.ndarray, fractal: np.ndarray, seam: int = 20) -> np.ndarray:
    h, w = original.shape[:2]
    m = make_mask(h, w, "left", kind="linspace", seam=seam)
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

    # The exact arithmetic gives the reference's A bit for bit; the rounded one within 2 grey levels.
    worst_exact = worst_rounded = 0
    for t_np, t_pil in zip(triples_np, triples_pil):
        ref = np.asarray(reference_mix(*t_pil), dtype=np.int16)
        worst_exact = max(worst_exact, int(np.abs(ref - diffusemix_exact(*t_np)).max()))
        worst_rounded = max(worst_rounded, int(np.abs(ref - diffusemix_rounded(*t_np)).max()))
    print(f"max |reference - diffusemix exact|   = {worst_exact} grey levels")
    print(f"max |reference - diffusemix rounded| = {worst_rounded} grey levels")
    if worst_exact:
        sys.exit("the exact arithmetic does not reproduce the reference: fix functional.mix_reference")

    def timed(fn, triples) -> float:  # noqa: ANN001
        t = time.perf_counter()
        for i in range(args.n):
            fn(*triples[i % 8])
        return time.perf_counter() - t

    ways = {
        "reference way": (reference_mix, triples_pil),
        "diffusemix exact": (diffusemix_exact, triples_np),
        "diffusemix rounded": (diffusemix_rounded, triples_np),
    }
    times: dict[str, list[float]] = {name: [] for name in ways}
    for fn, triples in ways.values():
        timed(fn, triples)  # warm up
    for _ in range(args.repeats):
        for name, (fn, triples) in ways.items():
            times[name].append(timed(fn, triples))
    med = {name: statistics.median(t) for name, t in times.items()}
    print(f"mask + hybrid + blend at {s}x{s}, {args.n} images, median of {args.repeats} rounds")
    for name, t in med.items():
        print(f"  {name:<19}: {args.n / t:8.1f} images/s  ({1000 * t / args.n:.3f} ms/image)")
    r = med["reference way"]
    print(f"  speed-up, exact   : {r / med['diffusemix exact']:.1f}x  (target >= 8x; same pixels as the reference)")
    print(f"  speed-up, rounded : {r / med['diffusemix rounded']:.1f}x")


if __name__ == "__main__":
    main()
