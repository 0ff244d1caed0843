"""Tests for diffusemix.fractals.generator: make_fractal, fractal_seed, write_fractal_set, the script."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from diffusemix.errors import FractalError
from diffusemix.fractals import (
    KINDS,
    FractalSet,
    fractal_seed,
    make_fractal,
    write_fractal_set,
)
from diffusemix.functional import degenerate_reason

REPO = Path(__file__).resolve().parent.parent


def _saturation(img: np.ndarray) -> float:
    x = img.astype(np.float32)
    return float((x.max(axis=2) - x.min(axis=2)).mean())


# ---------------------------------------------------------------------------
# make_fractal
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_same_seed_same_image_and_different_seeds_differ(kind: str) -> None:
    a = make_fractal(11, 48, kind=kind)
    b = make_fractal(11, 48, kind=kind)
    c = make_fractal(12, 48, kind=kind)
    np.testing.assert_array_equal(a, b)
    assert np.mean(a != c) > 0.2


def test_kind_none_is_chosen_by_the_seed() -> None:
    np.testing.assert_array_equal(make_fractal(5, 40), make_fractal(5, 40))
    # over a few seeds the seed picks more than one family
    images = [make_fractal(s, 24) for s in range(8)]
    assert len({img.tobytes() for img in images}) == 8


@pytest.mark.parametrize("size", [8, 17, 33, 64])
@pytest.mark.parametrize("kind", KINDS)
def test_shape_and_dtype(kind: str, size: int) -> None:
    img = make_fractal(3, size, kind=kind)
    assert img.shape == (size, size, 3)
    assert img.dtype == np.uint8


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**63 - 1), size=st.integers(8, 40))
def test_any_seed_and_size_gives_an_rgb_image(seed: int, size: int) -> None:
    img = make_fractal(seed, size)
    assert img.shape == (size, size, 3) and img.dtype == np.uint8


@pytest.mark.parametrize("kind", KINDS)
def test_fractals_are_colourful_not_blank(kind: str) -> None:
    for seed in range(3):
        img = make_fractal(seed, 96, kind=kind)
        assert degenerate_reason(img) is None
        luma = img.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        assert 40 <= luma.mean() <= 220, (kind, seed, luma.mean())
        assert luma.std() >= 15, (kind, seed, luma.std())
        assert _saturation(img) >= 30, (kind, seed, _saturation(img))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"seed": -1}, "seed must be a non-negative integer"),
        ({"seed": 1.5}, "seed must be a non-negative integer"),
        ({"seed": 0, "size": 7}, "size must be between 8 and"),
        ({"seed": 0, "size": 32.0}, "size must be an integer"),
        ({"seed": 0, "kind": "sierpinski"}, "kind must be one of ifs, flame"),
    ],
)
def test_make_fractal_rejects_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make_fractal(**kwargs)


def test_fractal_seed_is_stable_and_distinct() -> None:
    seeds = [fractal_seed(0, i) for i in range(50)]
    assert len(set(seeds)) == 50
    assert seeds == [fractal_seed(0, i) for i in range(50)]
    assert fractal_seed(1, 0) != fractal_seed(0, 0)
    assert all(0 <= s < 2**63 for s in seeds)


# ---------------------------------------------------------------------------
# write_fractal_set
# ---------------------------------------------------------------------------


def test_write_fractal_set_then_load_it(tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    paths = write_fractal_set(tmp_path / "out", count=6, size=40, seed=3, progress=lambda d, t: calls.append((d, t)))
    assert [p.name for p in paths] == [
        "fractal_000_ifs.png",
        "fractal_001_flame.png",
        "fractal_002_mandelbrot.png",
        "fractal_003_julia.png",
        "fractal_004_newton.png",
        "fractal_005_ifs.png",
    ]
    assert calls == [(i, 6) for i in range(1, 7)]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [p.name for p in paths]  # no temp files left
    # the file holds exactly make_fractal's image
    with Image.open(paths[2]) as im:
        written = np.asarray(im.convert("RGB"))
    np.testing.assert_array_equal(written, make_fractal(fractal_seed(3, 2), 40, kind="mandelbrot"))
    fs = FractalSet.from_folder(tmp_path / "out")
    assert fs.names == tuple(p.name for p in paths)
    assert fs.skipped == ()
    assert fs.load(fs.names[0], 33).shape == (33, 33, 3)


def test_write_fractal_set_is_deterministic_and_prefix_stable(tmp_path: Path) -> None:
    a = write_fractal_set(tmp_path / "a", count=3, size=24, seed=9, kinds=["julia", "newton"])
    b = write_fractal_set(tmp_path / "b", count=5, size=24, seed=9, kinds=["julia", "newton"])
    assert [p.name for p in a] == [p.name for p in b[:3]]
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b[:3]]
    c = write_fractal_set(tmp_path / "c", count=3, size=24, seed=10, kinds=["julia", "newton"])
    assert a[0].read_bytes() != c[0].read_bytes()


def test_write_fractal_set_errors(tmp_path: Path) -> None:
    target = tmp_path / "file.txt"
    target.write_text("x")
    with pytest.raises(FractalError, match="is not a folder"):
        write_fractal_set(target, count=1, size=16)
    with pytest.raises(ValueError, match="count must be a positive integer"):
        write_fractal_set(tmp_path / "x", count=0)
    with pytest.raises(ValueError, match="kinds must be a non-empty list"):
        write_fractal_set(tmp_path / "x", count=1, kinds=["spiral"])


def _load_script():
    spec = importlib.util.spec_from_file_location("make_fractals", REPO / "scripts" / "make_fractals.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_make_fractals_script(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    script = _load_script()
    assert script.main(["--out", str(tmp_path / "set"), "--count", "2", "--size", "20", "--seed", "4"]) == 0
    assert sorted(p.name for p in (tmp_path / "set").iterdir()) == ["fractal_000_ifs.png", "fractal_001_flame.png"]
    assert "wrote 2 fractals" in capsys.readouterr().err
    assert script.main(["--out", str(tmp_path / "bad"), "--count", "0"]) == 2
    assert "count must be a positive integer" in capsys.readouterr().err


# ---------------------------------------------------------------------------
# The shipped set is what the generator makes
# ---------------------------------------------------------------------------


def test_shipped_set_is_what_the_script_makes() -> None:
    fs = FractalSet.default()
    name = fs.names[3]
    assert name == "fractal_003_julia.png"
    remade = make_fractal(fractal_seed(0, 3), 256, kind="julia")
    # equal up to last-bit differences of libm across CPUs
    assert np.mean(np.abs(fs.load(name, 256).astype(int) - remade) <= 2) > 0.98
