#!/usr/bin/env python
"""Write a folder of colourful fractal images, the F of A = (1 − λ) H + λ F.

This is the deterministic script that made ``assets/fractals``:

    python scripts/make_fractals.py --out assets/fractals --count 64 --size 256 --seed 0

The same arguments give byte-identical files; image i depends only on the
seed and i, so ``--count 128`` starts with the 64 images of ``--count 64``.
Use it to make more fractals, or larger ones for larger output sizes.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from diffusemix.errors import DiffuseMixError  # noqa: E402
from diffusemix.fractals import KINDS, write_fractal_set  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder to write into (created if needed)")
    parser.add_argument("--count", type=int, default=64, help="how many images (default 64)")
    parser.add_argument("--size", type=int, default=256, help="width and height in pixels (default 256)")
    parser.add_argument("--seed", type=int, default=0, help="master seed (default 0)")
    parser.add_argument(
        "--kinds",
        nargs="+",
        choices=KINDS,
        default=None,
        help=f"fractal families to take turns with (default: all of {' '.join(KINDS)})",
    )
    args = parser.parse_args(argv)

    start = time.perf_counter()

    def progress(done: int, total: int) -> None:
        print(f"\r{done}/{total} fractals", end="", file=sys.stderr, flush=True)

    try:
        paths = write_fractal_set(
            args.out, count=args.count, size=args.size, seed=args.seed, kinds=args.kinds, progress=progress
        )
    except (DiffuseMixError, ValueError) as e:
        print(f"\nerror: {e}", file=sys.stderr)
        return 2
    total = sum(p.stat().st_size for p in paths)
    print(
        f"\nwrote {len(paths)} fractals ({total / 1e6:.1f} MB) to {args.out} "
        f"in {time.perf_counter() - start:.1f} s",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
