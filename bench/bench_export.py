"""Batch export: peak memory against dataset size, and throughput.

1. Memory: exports of 200 and of 2000 input images (64 x 64, one prompt, the
   preview editor) each run in a fresh subprocess; the child samples its own
   resident memory every 10 ms (psutil, in a thread) and reports the peak and
   ``ru_maxrss``. The export streams, so the peak must not grow with the
   dataset: the difference between the two must stay under 50 MB.
2. Throughput: images/s of a full export at 256 x 256 (inputs 320 x 240, one
   prompt, the preview editor, PNG output), for 1 and 2 worker threads.

The preview editor stands in for the diffusion model so that the figures show
the exporter's own overhead (decode, mix, encode, write, bookkeeping); with a
real model the editor dominates and the CPU work overlaps with it.

    python bench/bench_export.py [--sizes 200,2000] [--throughput-images 200] [--workers 1,2]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def make_images(folder: Path, n: int, *, h: int, w: int, classes: int = 4) -> None:
    """``n`` small gradient-and-disc PNGs spread over ``classes`` class folders."""
    from PIL import Image

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    yy /= h
    xx /= w
    for i in range(n):
        d = folder / f"class{i % classes}"
        d.mkdir(parents=True, exist_ok=True)
        a, b, cy, cx = rng.uniform(0.5, 3.0, 4)
        img = np.stack([0.5 + 0.4 * np.sin(a * xx * 3), 0.5 + 0.4 * np.cos(b * yy * 3), xx * yy], -1)
        img[(yy - cy / 4) ** 2 + (xx - cx / 4) ** 2 < 0.03] = rng.uniform(0, 1, 3)
        Image.fromarray((img * 255).astype(np.uint8)).save(d / f"{i:05d}.png")


def child(inp: str, out: str, size: int, workers: int) -> None:
    """Run one export here and print a JSON line with peak memory and timing."""
    import psutil

    from diffusemix.editors import load_editor
    from diffusemix.export import ExportOptions, export_dataset
    from diffusemix.fractals import FractalSet
    from diffusemix.recipe import Recipe

    proc = psutil.Process()
    peak = [proc.memory_info().rss]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            time.sleep(0.01)

    editor = load_editor("preview")
    fractals = FractalSet.default()
    recipe = Recipe(size=size, prompts=("sunset",), seam=max(1, size // 13))
    base = proc.memory_info().rss
    t = threading.Thread(target=sample, daemon=True)
    t.start()
    t0 = time.perf_counter()
    summary = export_dataset(
        inp,
        out,
        recipe=recipe,
        editor=editor,
        fractals=fractals,
        options=ExportOptions(workers=workers),
        progress_bar=False,
    )
    seconds = time.perf_counter() - t0
    stop.set()
    t.join()
    print(
        json.dumps(
            {
                "made": summary.made,
                "seconds": seconds,
                "rss_before_mb": base / 2**20,
                "peak_rss_mb": peak[0] / 2**20,
                "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        )
    )


def run_child(inp: Path, out: Path, size: int, workers: int) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, __file__, "--child", str(inp), str(out), str(size), str(workers)]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    if res.returncode != 0:
        raise SystemExit(res.stderr)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="200,2000", help="dataset sizes for the memory test")
    ap.add_argument("--throughput-images", type=int, default=200)
    ap.add_argument("--workers", default="1,2", help="worker counts for the throughput test")
    ap.add_argument("--child", nargs=4, metavar=("INPUT", "OUTPUT", "SIZE", "WORKERS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        inp, out, size, workers = args.child
        child(inp, out, int(size), int(workers))
        return

    tmp = Path(tempfile.mkdtemp(prefix="dmx-bench-export-"))
    try:
        print(f"cpu cores: {os.cpu_count()}, load average: {os.getloadavg()[0]:.1f}")
        # 1. memory against dataset size
        sizes = [int(s) for s in args.sizes.split(",")]
        peaks = {}
        for n in sizes:
            inp = tmp / f"in{n}"
            make_images(inp, n, h=64, w=64)
            r = run_child(inp, tmp / f"out{n}", 64, 2)
            peaks[n] = r
            print(
                f"memory  {n:5d} images at 64 px: peak RSS {r['peak_rss_mb']:.1f} MB "
                f"(ru_maxrss {r['maxrss_mb']:.1f} MB, "
                f"{r['rss_before_mb']:.1f} MB before the export), {r['made'] / r['seconds']:.0f} images/s"
            )
            shutil.rmtree(inp)
            shutil.rmtree(tmp / f"out{n}")
        if len(sizes) >= 2:
            lo, hi = peaks[sizes[0]], peaks[sizes[-1]]
            growth = max(hi["peak_rss_mb"] - lo["peak_rss_mb"], hi["maxrss_mb"] - lo["maxrss_mb"])
            verdict = "OK (< 50 MB)" if growth < 50 else "TOO MUCH (>= 50 MB)"
            print(f"memory  growth from {sizes[0]} to {sizes[-1]} images: {growth:+.1f} MB  {verdict}")

        # 2. throughput at 256 px
        n = args.throughput_images
        inp = tmp / "in256"
        make_images(inp, n, h=240, w=320)
        for w in (int(x) for x in args.workers.split(",")):
            r = run_child(inp, tmp / "out256", 256, w)
            print(
                f"speed   {n} images at 256 px, {w} worker(s): {r['made'] / r['seconds']:.1f} images/s "
                f"({r['seconds']:.1f} s, peak RSS {r['peak_rss_mb']:.0f} MB)"
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
