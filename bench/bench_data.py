"""Training data: samples/s of one DataLoader worker, online mixing vs reading fixed A.

One run, the same machine, the same images (256 x 256, two prompts, the
preview editor standing in for the diffusion model):

* plain read: the exporter's fixed A images (PNG, as it writes them), each
  decoded once and made a tensor (``to_tensor``): what training on an export
  costs per sample;
* DiffuseMix online, from a cache (``export --cache``): decode I and Î, draw a
  layout, a fractal and λ, mix through ``engine.apply_record``, make a tensor;
* the same from an export's ``--save-stages`` PNGs (for comparison: PNG
  decoding alone is about as costly as the whole mix);
* for reference, the plain read of A exported as BMP (``--format bmp``): the
  cheapest read there is, so the difference to the online row is the mix.

Each variant is timed in this process with one torch thread (what one
DataLoader worker does), ``--rounds`` times in turn; the best round counts.
Both the worker's CPU time (what it does with a core to itself) and the wall
time are printed: on a shared machine the wall time also counts the waits
for a core (the load average is printed). Targets: online ≤ 2.5 × the plain read's time per
sample, and ≥ 300 samples/s per worker.

    python bench/bench_data.py [--images 64] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
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

    from diffusemix.data import to_tensor

    lines = (folder / "metadata.jsonl").read_text(encoding="utf-8").splitlines()
    paths = [folder / json.loads(line)["file_name"] for line in lines]

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


def time_reader(reader: tuple[int, Callable[[int], Any]]) -> tuple[float, float]:
    """(wall, CPU) seconds per sample over one pass."""
    n, get = reader
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(n):
        get(i)
    return (time.perf_counter() - t0) / n, (time.process_time() - c0) / n


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
        variants = (("export", {"save_stages": True}), ("cache", {"cache": True}), ("export-bmp", {"format": "bmp"}))
        for name, opts in variants:
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
        if "export-bmp" in folders:
            readers["plain read of A (BMP, for reference)"] = plain_reader(folders["export-bmp"])
        wall = {k: float("inf") for k in readers}
        cpu = {k: float("inf") for k in readers}
        for _ in range(args.rounds):
            for name, reader in readers.items():
                w, c = time_reader(reader)
                wall[name], cpu[name] = min(wall[name], w), min(cpu[name], c)
    n = readers["plain read of A (PNG)"][0]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"{n} samples at 256 px, one worker (1 torch thread), best of {args.rounds} rounds; "
        f"{os.cpu_count()} cores, load average {load:.1f} at the end"
    )
    print("  (CPU: the worker's own CPU time, what it does with a core to itself; wall: as measured)")
    base_w, base_c = wall["plain read of A (PNG)"], cpu["plain read of A (PNG)"]
    for name in readers:
        print(
            f"  {name:<38} CPU {1 / cpu[name]:6.0f} samples/s {1e3 * cpu[name]:5.2f} ms {cpu[name] / base_c:5.2f}x"
            f"  | wall {1 / wall[name]:6.0f} samples/s {wall[name] / base_w:5.2f}x"
        )
    key = "DiffuseMix online, cache" if "DiffuseMix online, cache" in cpu else "DiffuseMix online, --save-stages PNG"
    ratio, rate = cpu[key] / base_c, 1 / cpu[key]
    print(
        f"target ({key}, CPU): ≤ 2.5x the plain read ({ratio:.2f}x: {'met' if ratio <= 2.5 else 'NOT met'}), "
        f"≥ 300 samples/s per worker ({rate:.0f}: {'met' if rate >= 300 else 'NOT met'})"
    )


if __name__ == "__main__":
    main()
