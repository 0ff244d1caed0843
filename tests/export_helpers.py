"""What the exporter's tests share: a small class-folder dataset, a fractal set, a counting editor, readers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pytest
from PIL import Image

from diffusemix.editors import load_editor
from diffusemix.editors.base import EditRequest, EditResult
from diffusemix.export import ExportOptions, export_dataset
from diffusemix.fractals import FractalSet, write_fractal_set
from diffusemix.recipe import Recipe


def picture(h: int, w: int, seed: int) -> np.ndarray:
    """A real-looking uint8 image: colour gradients, a disc and a bar, mild noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    yy /= max(h - 1, 1)
    xx /= max(w - 1, 1)
    a, b = rng.uniform(0.5, 3.0, 2)
    img = np.stack([0.5 + 0.4 * np.sin(a * np.pi * xx), 0.5 + 0.4 * np.cos(b * np.pi * yy), 0.3 + 0.5 * xx * yy], -1)
    cy, cx, r = rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7), rng.uniform(0.1, 0.25)
    img[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = rng.uniform(0.1, 0.9, 3)
    img[(np.abs(yy - 0.8) < 0.05)] = rng.uniform(0.1, 0.9, 3)
    img += rng.normal(0.0, 0.02, img.shape)
    return (np.clip(img, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)


def make_dataset(
    root: Path, classes: Sequence[str] = ("cat", "dog", "fish"), per_class: int = 3, size=(48, 40)
) -> Path:
    """root/<class>/<i>.png plus an odd-sized JPEG in the first class."""
    for ci, cls in enumerate(classes):
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.fromarray(picture(size[0] + 8 * i, size[1], 10 * ci + i)).save(root / cls / f"{i:02d}.png")
    Image.fromarray(picture(33, 17, 99)).save(root / classes[0] / "odd.jpg", quality=95)
    return root


@pytest.fixture(scope="module")
def fractals(tmp_path_factory: pytest.TempPathFactory) -> FractalSet:
    folder = tmp_path_factory.mktemp("fractals")
    write_fractal_set(folder, count=5, size=64, seed=3)
    return FractalSet.from_folder(folder)


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    return make_dataset(tmp_path / "data")


RECIPE = Recipe(size=32, prompts=("sunset", "snowy"), seam=4)


class CountingEditor:
    """Wraps an editor and counts the images it is asked to edit."""

    def __init__(self, inner: Any, blank_prompts: Sequence[str] = ()) -> None:
        self.inner, self.blank_prompts = inner, tuple(blank_prompts)
        self.name, self.is_diffusion = inner.name, inner.is_diffusion
        self.calls: list[int] = []

    def describe(self) -> dict[str, Any]:
        return self.inner.describe()

    def __getattr__(self, name: str) -> Any:  # spec, device, max_retries, load, ... of the editor it wraps
        return getattr(self.inner, name)

    def edit(self, requests: Sequence[EditRequest], *, progress=None, cancel=None) -> list[EditResult]:
        self.calls.append(len(requests))
        out = self.inner.edit(requests, progress=progress, cancel=cancel)
        return [
            EditResult(np.zeros_like(r.image), r.seed, 3, "all black") if q.prompt in self.blank_prompts else r
            for q, r in zip(requests, out, strict=True)
        ]

    @property
    def edited(self) -> int:
        return sum(self.calls)


def preview() -> CountingEditor:
    return CountingEditor(load_editor("preview"))


def run(inp: Path, out: Path, fractals: FractalSet, *, recipe: Recipe = RECIPE, editor=None, **opts):
    editor = editor or preview()
    return export_dataset(
        inp, out, recipe=recipe, editor=editor, fractals=fractals, options=ExportOptions(**opts), progress_bar=False
    )


def rows(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "metadata.jsonl").read_text(encoding="utf-8").splitlines()]


def tree(out: Path) -> dict[str, bytes]:
    """Every visible file (the dataset as a user sees it): path -> bytes."""
    files = {}
    for p in sorted(out.rglob("*")):
        rel = p.relative_to(out)
        if p.is_file() and not any(part.startswith(".") for part in rel.parts):
            files[rel.as_posix()] = p.read_bytes()
    return files


def temp_files(out: Path) -> list[Path]:
    return [p for p in out.rglob("*") if p.name.endswith(".tmp")]


def load(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im).astype(np.float64)
