"""examples/train_cnn.py is now a wrapper of `python -m diffusemix train`: it runs a recipe end to end."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from export_helpers import make_dataset

from diffusemix.editors import load_editor
from diffusemix.export import ExportOptions, export_dataset
from diffusemix.fractals import FractalSet, write_fractal_set
from diffusemix.recipe import Recipe

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_train_cnn_wrapper_runs_a_diffusemix_recipe(tmp_path: Path) -> None:
    train = make_dataset(tmp_path / "train", classes=("a", "b"), per_class=3)
    val = make_dataset(tmp_path / "val", classes=("a", "b"), per_class=2)
    write_fractal_set(tmp_path / "fractals", count=3, size=32, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        export_dataset(
            train,
            tmp_path / "cache",
            recipe=Recipe(size=32, prompts=("sunset", "snowy"), seam=4),
            editor=load_editor("preview"),
            fractals=FractalSet.from_folder(tmp_path / "fractals"),
            options=ExportOptions(cache=True),
            progress_bar=False,
        )
    out = tmp_path / "run"
    cmd = [
        sys.executable, str(ROOT / "examples" / "train_cnn.py"), "cifar-100",
        "--train", str(train), "--val", str(val), "--method", "diffusemix", "--cache", str(tmp_path / "cache"),
        "--set", f"fractals={tmp_path / 'fractals'}", "--model", "tiny-resnet", "--epochs", "1",
        "--set", "batch_size=4", "--workers", "0", "--mixed-precision", "no", "--out", str(out),
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "DiffuseMixDataset" in done.stdout and "epoch length: 21 = 14 slots + 7 originals" in done.stdout
    assert "WARNING: " in done.stdout and "preview editor" in done.stdout  # the stand-in Î is said
    result = json.loads((out / "result.json").read_text())
    assert result["method"] == "diffusemix" and result["data"]["items_per_epoch"] == 21
    assert 0 < result["epochs"][0]["train_loss"] < 100  # finite, a real cross-entropy


@pytest.mark.slow
def test_train_cnn_on_a_set_smaller_than_a_batch_says_what_to_do(tmp_path: Path) -> None:
    """Issue 20: on a small set the old script stayed at chance (batch 64 > the set, drop_last dropping
    samples while the summary counted them); the command now refuses, naming the sizes and the fix."""
    train = make_dataset(tmp_path / "train", classes=("a", "b"), per_class=3)
    val = make_dataset(tmp_path / "val", classes=("a", "b"), per_class=1)
    cmd = [sys.executable, str(ROOT / "examples" / "train_cnn.py"), "cifar-100", "--train", str(train), "--val",
           str(val), "--method", "standard", "--model", "tiny-resnet", "--epochs", "1", "--workers", "0",
           "--mixed-precision", "no", "--out", str(tmp_path / "run")]  # the config's batch: 100 > 7 images
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "the training set has 7 items, fewer than one batch of 100" in done.stderr
    assert "--set batch_size=7" in done.stderr and "Traceback" not in done.stderr
    ok = subprocess.run([*cmd[:-1], str(tmp_path / "run2"), "--set", "batch_size=7"], capture_output=True, text=True,
                        timeout=300)
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert "budget: epochs: 1 steps of 7 images (7 images, 1.00 passes over 7 items)" in ok.stdout
    assert "7 real images" in ok.stdout  # the summary counts what is trained on
