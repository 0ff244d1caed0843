"""The ``paper`` preset end to end: an export reproduces the authors' arithmetic bit for bit.

Every H and A of a ``--preset paper --save-stages`` export is recomputed from
the saved I, Î and F with ``authors_port`` (independent of the library) and
must be 0 grey levels apart.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from authors_port import ORIENTATION_OF_LAYOUT, authors_blend, authors_combine
from PIL import Image

from diffusemix.cli import main
from diffusemix.fractals import write_fractal_set
from diffusemix.prompts import PAPER_PROMPTS


def _picture(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([np.sin(xx / (7 + seed)), np.cos(yy / 11), np.sin((xx + yy) / 13)], -1) * 0.4 + 0.5
    img += rng.normal(0.0, 0.03, img.shape)
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def fractal_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("fractals")
    write_fractal_set(folder, count=4, size=64, seed=5)
    return folder


def _dataset(root: Path) -> Path:
    for ci, cls in enumerate(("cat", "dog")):
        (root / cls).mkdir(parents=True)
        Image.fromarray(_picture(300 + 40 * ci, 220, ci)).save(root / cls / "a.png")
    return root


def _stage(out: Path, stage: str, file_name: str) -> np.ndarray:
    with Image.open(out / "stages" / stage / Path(file_name).with_suffix(".png")) as im:
        return np.asarray(im.convert("RGB"))


@pytest.mark.parametrize("size", [256, 512])
def test_paper_export_is_the_authors_arithmetic_bit_for_bit(tmp_path: Path, fractal_dir: Path, size: int, capsys):
    data = _dataset(tmp_path / "data")
    out = tmp_path / "out"
    args = ["export", str(data), str(out), "--preset", "paper", "--editor", "preview", "--save-stages"]
    args += ["--fractals", str(fractal_dir), "--no-progress", "--workers", "1", "--size", str(size)]
    assert main(args) == 0, capsys.readouterr().err
    rows = [json.loads(line) for line in (out / "metadata.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 2 * len(PAPER_PROMPTS) == 18  # all nine prompts for every image
    assert {r["prompt"] for r in rows} == set(PAPER_PROMPTS)
    assert {r["layout"] for r in rows} == {"left", "top"}  # both of the authors' layouts occur
    for row in rows:
        assert (row["mask"], row["seam"], row["lam"], row["size"]) == ("linspace", 20, 0.2, size)
        i, g, f = (_stage(out, s, row["file_name"]) for s in ("input", "generated", "fractal"))
        want_h = authors_combine(i, g, ORIENTATION_OF_LAYOUT[row["layout"]], blend_width=20)
        want_a = authors_blend(want_h, f, 0.2)
        np.testing.assert_array_equal(_stage(out, "hybrid", row["file_name"]), want_h)
        with Image.open(out / row["file_name"]) as im:
            np.testing.assert_array_equal(np.asarray(im), want_a)
