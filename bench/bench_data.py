"""Training data: samples/s of one DataLoader worker, online mixing vs reading fixed A.

One run, the same machine, the same images (256 x 256, two prompts, the
preview editor standing in for the diffusion model):

* plain read: the exporter's fixed A images (PNG, as it writes them), each
  decoded once and made a tensor (``to_tensor``): what training on an export
  costs per sample;
* DiffuseMix online, from a cache (``export --cache``): decode I and Î, draw a
  layout, a fractal and λ, mix through ``engine.apply_record``, make a tensor;
* the same from an export's ``--save-stages`` PNGs (for comparison: PNG
  decoding alone is about as costly as the whole mix).

Each variant is timed in this process with one torch thread (what one
DataLoader worker does), ``--rounds`` times in turn; the best round counts
(the machine is shared). Targets: online ≤ 2.5 × the plain read's time per
sample, and ≥ 300 samples/s per worker.

    python bench/bench_data.py [--images 64] [--rounds 5]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))


def plain_reader(folder: Path) -> tuple[int, Callable[[int], Any]]:
    """Read the export's A files the plain way: one decode, to tensor."""
    from PIL import Image

    from diffusemix.data import read_cache, to_tensor

    paths = [folder / e.row["file_name"] for e in read_cache(folder).entries]

    def get(i: int) -> Any:
        with Image.open(paths[i]) as im:
            im.load()
            return to_tensor(im if im.mode == "RGB" else im.convert("RGB"))

    return len(paths), get


def online_reader(folder: Path) -> tuple[int, Callable[[int], Any]]:
    from diffusemix.data import DiffuseMixDataset, to_tensor

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the preview warning
        ds = DiffuseMixDataset(folder, transform=to_tensor)
    ds[0]  # load the fractal set, as a worker does once
    return len(ds), lambda i: ds[i][0]


def time_reader(reader: tuple[int, Callable[[int], Any]]) -> float:
    n, get = reader
    t0 = time.perf_counter()
    for i in range(n):
        get(i)
    return (time.perf_counter() - t0) / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=64, help="input images (x2 prompts = samples)")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()

    import torch

    from bench_export import make_images
    from diffusemix.editors import load_editor
    from diffusemix.export import ExportOptions, export_dataset
    from diffusemix.fractals import FractalSet
    from diffusemix.recipe import get_preset

    torch.set_num_threads(1)
    recipe = get_preset("quick", size=256)
    editor, fractals = load_editor("preview"), FractalSet.default()
    with tempfile.TemporaryDirectory(prefix="dmx-bench-data-") as tmp:
        root = Path(tmp)
        make_images(root / "in", args.images, h=240, w=320)
        folders = {}
        for name, opts in (("export", {"save_stages": True}), ("cache", {"cache": True})):
            try:
                options = ExportOptions(**opts)
            except TypeError:
                print(f"(this exporter has no {opts} option; skipped)")
                continue
            export_dataset(
                root / "in", root / name, recipe=recipe, editor=editor, fractals=fractals, options=options,
                progress_bar=False,
            )  # fmt: skip
            folders[name] = root / name
        readers = {"plain read of A (PNG)": plain_reader(folders["export"])}
        if "cache" in folders:
            readers["DiffuseMix online, cache"] = online_reader(folders["cache"])
        readers["DiffuseMix online, --save-stages PNG"] = online_reader(folders["export"])
        best = {k: float("inf") for k in readers}
        for _ in range(args.rounds):
            for name, reader in readers.items():
                best[name] = min(best[name], time_reader(reader))
    n = readers["plain read of A (PNG)"][0]
    print(f"{n} samples at 256 px, one worker (1 torch thread), best of {args.rounds} rounds")
    base = best["plain read of A (PNG)"]
    for name, sec in best.items():
        print(f"  {name:<40} {1 / sec:8.0f} samples/s  {1e3 * sec:6.2f} ms/sample  {sec / base:5.2f}x the plain read")
    key = "DiffuseMix online, cache" if "DiffuseMix online, cache" in best else "DiffuseMix online, --save-stages PNG"
    ratio, rate = best[key] / base, 1 / best[key]
    print(
        f"target: online ≤ 2.5x the plain read ({ratio:.2f}x: {'met' if ratio <= 2.5 else 'NOT met'}), "
        f"≥ 300 samples/s per worker ({rate:.0f}: {'met' if rate >= 300 else 'NOT met'})"
    )


if __name__ == "__main__":
    main()
