"""Colour for the fractal generator: colormap tables, blur, luma, backgrounds.

Shared by the chaos-game families (:mod:`.chaos`) and the escape-time
families (:mod:`.escape`). Colour values are float32 RGB in [0, 1] until
:func:`to_uint8`. Nothing here draws random numbers except through the
``numpy.random.Generator`` passed in.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

#: Colormaps the generator picks from: colourful ones only (no greys).
CMAPS: tuple[str, ...] = (
    "viridis", "plasma", "inferno", "magma", "twilight", "twilight_shifted",
    "hsv", "turbo", "jet", "rainbow", "gist_rainbow", "nipy_spectral",
    "gist_ncar", "cool", "spring", "summer", "autumn", "winter", "Wistia",
    "Spectral", "coolwarm", "RdYlBu", "RdYlGn", "PiYG", "PRGn", "BrBG", "PuOr",
    "cubehelix", "CMRmap", "gnuplot", "gnuplot2", "hot", "afmhot", "terrain",
    "ocean", "gist_earth", "brg", "YlOrRd", "YlGnBu", "cividis",
)


@lru_cache(maxsize=None)
def lut(name: str) -> np.ndarray:
    """A colormap as a read-only float32 (1024, 3) table of RGB in [0, 1]."""
    from matplotlib import colormaps  # heavy import, only when drawing

    table = colormaps[name](np.linspace(0.0, 1.0, 1024))[:, :3].astype(np.float32)
    table.setflags(write=False)
    return table


def pick_lut(rng: np.random.Generator) -> np.ndarray:
    """A random colourful colormap, reversed half of the time."""
    table = lut(CMAPS[int(rng.integers(len(CMAPS)))])
    return table[::-1] if rng.random() < 0.5 else table


def apply_lut(table: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Colours for values ``v`` in [0, 1] (any shape) -> float32 (..., 3)."""
    idx = np.clip(v * (len(table) - 1) + 0.5, 0, len(table) - 1).astype(np.intp)
    return table[idx]


def pingpong(v: np.ndarray) -> np.ndarray:
    """Map any real ``v`` onto [0, 1] by a triangle wave (continuous, period 2)."""
    f = np.mod(v, 2.0)
    return np.where(f > 1.0, 2.0 - f, f)


def blur(x: np.ndarray) -> np.ndarray:
    """A [1, 2, 1] / 4 blur along both image axes (edges replicated)."""
    p = np.pad(x, [(1, 1), (1, 1)] + [(0, 0)] * (x.ndim - 2), mode="edge")
    p = (p[:-2] + 2 * p[1:-1] + p[2:]) * 0.25
    return (p[:, :-2] + 2 * p[:, 1:-1] + p[:, 2:]) * 0.25


LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def with_luma(rgb: np.ndarray, target: float | np.ndarray) -> np.ndarray:
    """Scale colours (..., 3) towards luma ``target`` (by at most 4x), then clip."""
    luma = rgb @ LUMA
    scale = np.minimum(target / np.maximum(luma, 1e-3), 4.0)
    return np.clip(rgb * scale[..., None], 0.0, 1.0)


def background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A soft two-colour gradient, dim but not black: float32 (size, size, 3)."""
    table = pick_lut(rng)
    c0 = with_luma(apply_lut(table, np.float32(rng.random())), rng.uniform(0.22, 0.42))
    c1 = with_luma(apply_lut(table, np.float32(rng.random())), rng.uniform(0.08, 0.28))
    t = np.linspace(-1.0, 1.0, size, dtype=np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    if rng.random() < 0.5:  # linear gradient at a random angle
        g = (np.cos(angle) * t[None, :] + np.sin(angle) * t[:, None]) * 0.5 + 0.5
    else:  # radial glow from a random centre
        cx, cy = rng.uniform(-0.5, 0.5, 2)
        g = np.clip(np.hypot(t[None, :] - cx, t[:, None] - cy) / 1.5, 0, 1)
    g = np.clip(g, 0.0, 1.0)[..., None]
    return (c0 * (1 - g) + c1 * g).astype(np.float32)


def supersample(size: int) -> int:
    """Samples per pixel side for escape-time renders (2 up to 1024 px, then 1)."""
    return 2 if size <= 1024 else 1


def downsample(rgb: np.ndarray, factor: int) -> np.ndarray:
    """Average ``factor`` x ``factor`` blocks: (S*f, S*f, 3) -> (S, S, 3)."""
    if factor == 1:
        return rgb
    s = rgb.shape[0] // factor
    return rgb.reshape(s, factor, s, factor, 3).mean(axis=(1, 3))


def to_uint8(rgb: np.ndarray) -> np.ndarray:
    return (np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
