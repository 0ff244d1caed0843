"""Fractal sets: how long loading takes now that every fractal is decoded at load.

``FractalSet.from_folder`` decodes each file in full (so a truncated file is
skipped at once instead of stopping an export half way) and keeps the pixels
in memory. This measures, for the shipped 128 fractals and for a set of 1,000
(copies of the shipped files in a temporary folder):

1. ``load``: ``FractalSet.from_folder`` (median of ``--repeats``), wall and
   CPU seconds, with the default decode threads and with one;
2. ``first pass``: every fractal once at 256 px after loading (resizes only);
3. the reference: what loading used to do, a header check per file, and
   then a first pass that decodes each file on use (the same ``load_image`` +
   ``prepare`` calls), to compare "load + first pass" in one run.

    python bench/bench_fractals.py [--count 1000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def timed(fn: Callable[[], object], repeats: int) -> tuple[float, float, object]:
    """Median wall and CPU seconds of ``fn()`` over ``repeats`` runs, and its last result."""
    walls, cpus, out = [], [], None
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        out = fn()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return statistics.median(walls), statistics.median(cpus), out


def reference_load_and_pass(folder: Path, size: int) -> None:
    """The former way: a header check per file at load, each file decoded on first use."""
    from PIL import Image

    from diffusemix.fractals.loader import _scan
    from diffusemix.images import load_image, prepare

    files = [f for _, f in _scan(folder)]
    for f in files:
        with Image.open(f) as im:
            im.size
    for f in files:
        prepare(load_image(f), size)


def bench(folder: Path, label: str, repeats: int, size: int = 256) -> None:
    from diffusemix.fractals import FractalSet

    FractalSet.from_folder(folder)  # warm the page cache and the imports
    w, c, fs = timed(lambda: FractalSet.from_folder(folder), repeats)
    w1, c1, _ = timed(lambda: FractalSet.from_folder(folder, workers=1), repeats)
    wp, cp, _ = timed(lambda: [fs.array(i, size) for i in range(len(fs))], 1)
    wr, cr, _ = timed(lambda: reference_load_and_pass(folder, size), repeats)
    print(f"{label}: {len(fs)} fractals, {fs.nbytes / 1e6:.0f} MB decoded in memory")
    print(f"  load (default threads):   {w * 1000:7.0f} ms wall, {c * 1000:7.0f} ms CPU")
    print(f"  load (1 thread):          {w1 * 1000:7.0f} ms wall, {c1 * 1000:7.0f} ms CPU")
    print(f"  first pass at {size} px:    {wp * 1000:7.0f} ms wall, {cp * 1000:7.0f} ms CPU")
    print(f"  reference (header check, decode on use): {wr * 1000:.0f} ms wall, {cr * 1000:.0f} ms CPU")
    print(f"  load + first pass vs reference: {(w + wp) / wr:.2f}x the wall time, {(c + cp) / cr:.2f}x the CPU")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1000, help="size of the large set (default 1000)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per timing, median taken (default 3)")
    args = parser.parse_args(argv)

    from diffusemix.fractals import default_fractal_dir

    shipped = sorted(default_fractal_dir().glob("*.png"))
    bench(default_fractal_dir(), "shipped set", args.repeats)
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.count):
            shutil.copyfile(shipped[i % len(shipped)], Path(tmp) / f"f{i:05d}.png")
        bench(Path(tmp), f"{args.count} copies", args.repeats)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
