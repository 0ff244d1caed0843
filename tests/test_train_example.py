"""examples/train_cnn.py runs end to end on a tiny synthetic dataset (no claim about accuracy)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from diffusemix.editors import load_editor
from diffusemix.export import ExportOptions, export_dataset
from diffusemix.fractals import FractalSet, write_fractal_set
from diffusemix.recipe import Recipe
from export_helpers import make_dataset

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_train_cnn_runs_one_epoch_with_and_without_diffusemix(tmp_path: Path) -> None:
    train = make_dataset(tmp_path / "train", classes=("a", "b"), per_class=3)
    val = make_dataset(tmp_path / "val", classes=("a", "b"), per_class=2)
    write_fractal_set(tmp_path / "fractals", count=3, size=32, seed=1)
    export_dataset(
        train,
        tmp_path / "cache",
        recipe=Recipe(size=32, prompts=("sunset", "snowy"), seam=4),
        editor=load_editor("preview"),
        fractals=FractalSet.from_folder(tmp_path / "fractals"),
        options=ExportOptions(cache=True),
        progress_bar=False,
    )
    cmd = [
        sys.executable, str(ROOT / "examples" / "train_cnn.py"),
        "--train", str(train), "--val", str(val), "--cache", str(tmp_path / "cache"),
        "--fractals", str(tmp_path / "fractals"),
        "--epochs", "1", "--size", "32", "--batch-size", "4", "--workers", "0",
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "DiffuseMixDataset" in out and "epoch length: 21 = 14 slots + 7 originals" in out
    losses = {m[0]: float(m[1]) for m in re.findall(r"\[(plain|diffusemix)\] epoch 1/1  loss (\S+)", out)}
    assert set(losses) == {"plain", "diffusemix"}
    assert all(0 < v < 100 for v in losses.values())  # finite, and a real cross-entropy
    assert re.search(r"\[diffusemix\] epoch 1/1 .* val acc \d+\.\d\d%", out)
