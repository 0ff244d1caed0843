"""Make docs/train_smoke_compare.png and .md: `train-compare` over smoke runs of every method.

A SMOKE RUN ON SYNTHETIC DATA: three classes of generated pictures, a tiny
random-initialised ResNet, 32 px, a few epochs on the CPU, and Î from the
preview editor (a weight-free stand-in, not a diffusion model). It shows that
the recipes, the budgets and the comparison work end to end; its accuracies
say nothing about DiffuseMix, and the picture and the table say so.

    python scripts/make_train_smoke.py [--work DIR] [--epochs N]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

NOTE = "smoke run on synthetic data"


def _picture(cls: int, seed: int, size: int = 48) -> np.ndarray:
    """A class-dependent picture: class c has a small disc faintly tinted c on a noisy gradient."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / (size - 1)
    img = np.stack([0.4 + 0.3 * xx, 0.4 + 0.3 * yy, 0.5 - 0.2 * xx * yy], -1)
    cy, cx, r = rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8), rng.uniform(0.08, 0.2)
    colour = 0.45 + 0.15 * np.eye(3)[cls]  # a faint cue: the disc is slightly redder, greener or bluer
    img[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = colour
    img += rng.normal(0, 0.12, img.shape)
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def _dataset(root: Path, per_class: int, seed: int) -> Path:
    for c, name in enumerate(("red", "green", "blue")):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.fromarray(_picture(c, seed * 1000 + c * 100 + i)).save(root / name / f"{i:03d}.png")
    return root


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temporary one)")
    ap.add_argument("--epochs", type=int, default=8)
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="diffusemix-train-smoke-"))

    from diffusemix.editors import load_editor
    from diffusemix.export import ExportOptions, export_dataset
    from diffusemix.fractals import FractalSet
    from diffusemix.recipe import Recipe

    train = _dataset(work / "train", per_class=16, seed=1)
    val = _dataset(work / "val", per_class=8, seed=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        export_dataset(train, work / "cache", recipe=Recipe(size=48, prompts=("sunset", "snowy"), seam=4),
                       editor=load_editor("preview"), fractals=FractalSet.default(),
                       options=ExportOptions(cache=True), progress_bar=False)  # fmt: skip
    runs = []
    for method in ("none", "standard", "mixup", "cutmix", "diffusemix"):
        out = work / "runs" / method
        cmd = [sys.executable, "-m", "diffusemix", "train", "cifar-100", "--train", str(train), "--val", str(val),
               "--method", method, "--budget", "steps", "--model", "tiny-resnet", "--epochs", str(args.epochs),
               "--set", "load_size=40", "--set", "image_size=32", "--set", "batch_size=8", "--set", "lr=0.05",
               "--workers", "0", "--mixed-precision", "no", "--device", "cpu", "--out", str(out),
               "--note", NOTE]  # fmt: skip
        if method == "diffusemix":
            cmd += ["--cache", str(work / "cache")]
        subprocess.run(cmd, check=True, cwd=ROOT)
        runs.append(str(out))
    docs = ROOT / "docs"
    subprocess.run([sys.executable, "-m", "diffusemix", "train-compare", *runs, "--out",
                    str(docs / "train_smoke_compare.png"), "--table", str(docs / "train_smoke_compare.md")],
                   check=True, cwd=ROOT)  # fmt: skip


if __name__ == "__main__":
    main()
