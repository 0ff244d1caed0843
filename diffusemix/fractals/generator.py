"""A generator of colourful fractals, the tool that makes fractal sets.

In the spirit of the PixMix / FractalDB sets: pure numpy plus matplotlib
colormaps, deterministic from an integer seed (nothing touches the global
RNG). Five families, drawn by :mod:`.chaos` (``ifs``, ``flame``) and
:mod:`.escape` (``mandelbrot``, ``julia``, ``newton``).

:func:`make_fractal` draws one image, :func:`write_fractal_set` writes a
folder of them (``scripts/make_fractals.py`` and ``python -m diffusemix
fractals`` call it; it made ``assets/fractals``). The engine never needs this
module: it reads fractals with :class:`~diffusemix.fractals.FractalSet`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Literal, Sequence, get_args

import numpy as np

from ..errors import DiffuseMixError, FractalError
from .chaos import draw_flame, draw_ifs
from ..limits import MAX_SIZE
from .colour import LUMA, to_uint8
from .escape import draw_julia, draw_mandelbrot, draw_newton

__all__ = ["FractalKind", "KINDS", "make_fractal", "fractal_seed", "write_fractal_set"]

#: The fractal families :func:`make_fractal` can draw.
FractalKind = Literal["ifs", "flame", "mandelbrot", "julia", "newton"]
KINDS: tuple[str, ...] = get_args(FractalKind)

_MIN_SIZE = 8
_MIN_DETAIL = 0.06  # share of edge pixels below which an image is too smooth
_MAX_TRIES = 24  # redraws of a near-empty or dull image before taking the best

#: One drawing function per kind: (rng, size) -> float RGB (size, size, 3) in [0, 1].
_DRAWERS: dict[str, Callable[[np.random.Generator, int], np.ndarray]] = {
    "ifs": draw_ifs,
    "flame": draw_flame,
    "mandelbrot": draw_mandelbrot,
    "julia": draw_julia,
    "newton": draw_newton,
}


def _quality(img: np.ndarray) -> tuple[bool, float]:
    """Whether an image is usable as F (bright, varied, colourful enough) and a score.

    The score (higher is better) ranks draws when none passes, so that even
    then the least dull one is kept.
    """
    x = img.astype(np.float32)
    luma = x @ LUMA
    mean, std = float(luma.mean()), float(luma.std())
    sat = float((x.max(axis=2) - x.min(axis=2)).mean())
    # detail: share of pixels on an edge at about 128 px (a smooth gradient has none)
    k = max(1, luma.shape[0] // 128)
    small = luma[::k, ::k]
    edges = np.abs(np.diff(small, axis=0))[:, :-1] + np.abs(np.diff(small, axis=1))[:-1]
    detail = float(np.mean(edges > 12)) if edges.size else 0.0
    ok = 45 <= mean <= 215 and std >= 20 and sat >= 35 and detail >= _MIN_DETAIL
    score = min(mean, 120.0) / 120.0 + min(std, 60.0) / 60.0 + min(sat, 100.0) / 100.0
    score += min(detail, 0.1) * 10
    return ok, score


def _check_size(size: int) -> int:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)):
        raise DiffuseMixError(f"size must be an integer number of pixels; got {size!r}")
    if not _MIN_SIZE <= int(size) <= MAX_SIZE:
        raise DiffuseMixError(f"size must be between {_MIN_SIZE} and {MAX_SIZE} pixels; got {size}")
    return int(size)


def _check_seed(seed: int, what: str = "seed") -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or int(seed) < 0:
        raise DiffuseMixError(f"{what} must be a non-negative integer; got {seed!r}")
    return int(seed)


def make_fractal(seed: int, size: int = 256, *, kind: FractalKind | None = None) -> np.ndarray:
    """Draw one colourful fractal image, deterministically from ``seed``.

    Near-empty or dull draws (an IFS whose attractor is a speck, a zoom into
    empty space) are redrawn from the same random stream, so the result is
    still a pure function of ``(seed, size, kind)``.

    Args:
        seed: any non-negative integer; the same seed gives the same image.
        size: width and height in pixels (8 to 4096; odd sizes are fine).
        kind: one of :data:`KINDS`, or ``None`` to let the seed choose.

    Returns:
        uint8 array of shape (size, size, 3), RGB.
    """
    seed = _check_seed(seed)
    size = _check_size(size)
    if kind is not None and kind not in KINDS:
        raise DiffuseMixError(f"kind must be one of {', '.join(KINDS)} or None; got {kind!r}")
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    if kind is None:
        kind = KINDS[int(rng.integers(len(KINDS)))]
    draw = _DRAWERS[kind]
    # draw until an image passes the quality check, keeping the best so far
    best, best_score = np.zeros((size, size, 3), np.uint8), -1.0
    for _ in range(_MAX_TRIES):
        img = to_uint8(draw(rng, size))
        ok, score = _quality(img)
        if ok:
            return img
        if score > best_score:
            best, best_score = img, score
    return best


def fractal_seed(seed: int, index: int) -> int:
    """The seed of image ``index`` in a set made from master ``seed``.

    Derived with ``np.random.SeedSequence(seed).spawn``: image ``i`` does not
    depend on how many images the set has, so a set of 128 starts with the
    set of 64.
    """
    seed = _check_seed(seed)
    index = _check_seed(index, "index")
    child = np.random.SeedSequence(seed, spawn_key=(index,))
    return int(child.generate_state(1, np.uint64)[0] >> np.uint64(1))


def _write_png_atomic(img: np.ndarray, path: Path) -> None:
    from PIL import Image

    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        Image.fromarray(np.ascontiguousarray(img)).save(tmp, format="PNG", optimize=True)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_fractal_set(
    folder: str | os.PathLike[str],
    *,
    count: int = 64,
    size: int = 256,
    seed: int = 0,
    kinds: Sequence[FractalKind] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[Path]:
    """Write ``count`` fractals as PNGs into ``folder`` (created if needed).

    Image ``i`` is ``make_fractal(fractal_seed(seed, i), size, kind=kinds[i % len(kinds)])``
    saved as ``fractal_{i:03d}_{kind}.png``; the families take turns so every
    set is balanced. Each file is written to a temporary name and then moved
    into place, so a reader never sees half a PNG. Existing files of the same
    name are replaced; other files are left alone.

    Args:
        folder: where to write.
        count: how many images (>= 1).
        size: width and height in pixels.
        seed: master seed; the same arguments give byte-identical files.
        kinds: families to cycle through (default: all of :data:`KINDS`).
        progress: called as ``progress(done, count)`` after each image.

    Returns:
        The paths written, in order.
    """
    # 1. check inputs
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 1:
        raise DiffuseMixError(f"count must be a positive integer; got {count!r}")
    size = _check_size(size)
    seed = _check_seed(seed)
    kinds = tuple(KINDS if kinds is None else kinds)
    if not kinds or any(k not in KINDS for k in kinds):
        raise DiffuseMixError(f"kinds must be a non-empty list from {', '.join(KINDS)}; got {kinds!r}")
    out = Path(folder)
    if out.exists() and not out.is_dir():
        raise FractalError(f"{out} exists and is not a folder; pass a folder to write the fractals into")
    out.mkdir(parents=True, exist_ok=True)
    # 2. draw and write
    width = max(3, len(str(count - 1)))
    paths = []
    for i in range(int(count)):
        kind = kinds[i % len(kinds)]
        img = make_fractal(fractal_seed(seed, i), size, kind=kind)
        path = out / f"fractal_{i:0{width}d}_{kind}.png"
        _write_png_atomic(img, path)
        paths.append(path)
        if progress is not None:
            progress(i + 1, int(count))
    return paths
