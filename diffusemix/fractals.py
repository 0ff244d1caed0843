"""Fractal images: the F of A = (1 − λ) H + λ F.

Two halves, readable on their own:

1. A generator of colourful fractals in the spirit of the PixMix / FractalDB
   sets, pure numpy plus matplotlib colormaps, deterministic from an integer
   seed (nothing touches the global RNG):

   ``ifs``         affine iterated function systems drawn by a vectorised chaos
                   game, rendered as log density under a colormap;
   ``flame``       the same chaos game with non-linear "variations" (sinusoidal,
                   swirl, spherical, ...), as in fractal flames;
   ``mandelbrot``  zooms onto the Mandelbrot set's boundary, smooth colouring;
   ``julia``       Julia sets for parameters near that boundary;
   ``newton``      basins of Newton's method on a random polynomial.

   :func:`make_fractal` draws one image, :func:`write_fractal_set` writes a
   folder of them (``scripts/make_fractals.py`` made ``assets/fractals`` so).

2. :class:`FractalSet`, a loader for ANY folder of images (the shipped set, or
   the PixMix / IPMix fractal sets), scanned recursively, with a bounded,
   thread-safe cache of resized images.
"""

from __future__ import annotations

import math
import os
import threading
from collections import OrderedDict
from functools import lru_cache
from pathlib import Path
from typing import Callable, Literal, Sequence, get_args

import numpy as np

from .errors import FractalError, ImageError
from .images import IMAGE_EXTENSIONS, load_image, prepare

__all__ = [
    "FractalKind",
    "KINDS",
    "make_fractal",
    "fractal_seed",
    "write_fractal_set",
    "default_fractal_dir",
    "FractalSet",
]

#: The fractal families :func:`make_fractal` can draw.
FractalKind = Literal["ifs", "flame", "mandelbrot", "julia", "newton"]
KINDS: tuple[str, ...] = get_args(FractalKind)

#: Colormaps the generator picks from: colourful ones only (no greys).
_CMAPS: tuple[str, ...] = (
    "viridis", "plasma", "inferno", "magma", "twilight", "twilight_shifted",
    "hsv", "turbo", "jet", "rainbow", "gist_rainbow", "nipy_spectral",
    "gist_ncar", "cool", "spring", "summer", "autumn", "winter", "Wistia",
    "Spectral", "coolwarm", "RdYlBu", "RdYlGn", "PiYG", "PRGn", "BrBG", "PuOr",
    "cubehelix", "CMRmap", "gnuplot", "gnuplot2", "hot", "afmhot", "terrain",
    "ocean", "gist_earth", "brg", "YlOrRd", "YlGnBu", "cividis",
)

_MIN_SIZE = 8
_MAX_SIZE = 4096
_MIN_DETAIL = 0.06  # share of edge pixels below which an image is too smooth
_MAX_TRIES = 24  # redraws of a near-empty or dull image before taking the best


# ---------------------------------------------------------------------------
# Colour helpers
# ---------------------------------------------------------------------------


@lru_cache(maxsize=None)
def _lut(name: str) -> np.ndarray:
    """A colormap as a read-only float32 (1024, 3) table of RGB in [0, 1]."""
    from matplotlib import colormaps  # heavy import, only when drawing

    table = colormaps[name](np.linspace(0.0, 1.0, 1024))[:, :3].astype(np.float32)
    table.setflags(write=False)
    return table


def _pick_lut(rng: np.random.Generator) -> np.ndarray:
    """A random colourful colormap, reversed half of the time."""
    table = _lut(_CMAPS[int(rng.integers(len(_CMAPS)))])
    return table[::-1] if rng.random() < 0.5 else table


def _apply(table: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Colours for values ``v`` in [0, 1] (any shape) -> float32 (..., 3)."""
    idx = np.clip(v * (len(table) - 1) + 0.5, 0, len(table) - 1).astype(np.intp)
    return table[idx]


def _pingpong(v: np.ndarray) -> np.ndarray:
    """Map any real ``v`` onto [0, 1] by a triangle wave (continuous, period 2)."""
    f = np.mod(v, 2.0)
    return np.where(f > 1.0, 2.0 - f, f)


def _blur(x: np.ndarray) -> np.ndarray:
    """A [1, 2, 1] / 4 blur along both image axes (edges replicated)."""
    p = np.pad(x, [(1, 1), (1, 1)] + [(0, 0)] * (x.ndim - 2), mode="edge")
    p = (p[:-2] + 2 * p[1:-1] + p[2:]) * 0.25
    return (p[:, :-2] + 2 * p[:, 1:-1] + p[:, 2:]) * 0.25


_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _with_luma(rgb: np.ndarray, target: float | np.ndarray) -> np.ndarray:
    """Scale colours (..., 3) towards luma ``target`` (by at most 4x), then clip."""
    luma = rgb @ _LUMA
    scale = np.minimum(target / np.maximum(luma, 1e-3), 4.0)
    return np.clip(rgb * scale[..., None], 0.0, 1.0)


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A soft two-colour gradient, dim but not black: float32 (size, size, 3)."""
    table = _pick_lut(rng)
    c0 = _with_luma(_apply(table, np.float32(rng.random())), rng.uniform(0.22, 0.42))
    c1 = _with_luma(_apply(table, np.float32(rng.random())), rng.uniform(0.08, 0.28))
    t = np.linspace(-1.0, 1.0, size, dtype=np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    if rng.random() < 0.5:  # linear gradient at a random angle
        g = (np.cos(angle) * t[None, :] + np.sin(angle) * t[:, None]) * 0.5 + 0.5
    else:  # radial glow from a random centre
        cx, cy = rng.uniform(-0.5, 0.5, 2)
        g = np.clip(np.hypot(t[None, :] - cx, t[:, None] - cy) / 1.5, 0, 1)
    g = np.clip(g, 0.0, 1.0)[..., None]
    return (c0 * (1 - g) + c1 * g).astype(np.float32)


def _supersample(size: int) -> int:
    """Samples per pixel side for escape-time renders (2 up to 1024 px, then 1)."""
    return 2 if size <= 1024 else 1


def _downsample(rgb: np.ndarray, factor: int) -> np.ndarray:
    """Average ``factor`` x ``factor`` blocks: (S*f, S*f, 3) -> (S, S, 3)."""
    if factor == 1:
        return rgb
    s = rgb.shape[0] // factor
    return rgb.reshape(s, factor, s, factor, 3).mean(axis=(1, 3))


def _to_uint8(rgb: np.ndarray) -> np.ndarray:
    return (np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _quality(img: np.ndarray) -> tuple[bool, float]:
    """Whether an image is usable as F (bright, varied, colourful enough) and a score.

    The score (higher is better) ranks draws when none passes, so that even
    then the least dull one is kept.
    """
    x = img.astype(np.float32)
    luma = x @ _LUMA
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


# ---------------------------------------------------------------------------
# Chaos game families: ifs, flame
# ---------------------------------------------------------------------------


def _affine_maps(rng: np.random.Generator, k: int, *, contractive: bool) -> np.ndarray:
    """``k`` affine maps as rows (a, b, c, d, e, f): p -> (a x + b y + e, c x + d y + f)."""
    maps = np.empty((k, 6))
    for i in range(k):
        if contractive:  # rotation . diag(s1, ±s2) . rotation, singular values < 1
            t1, t2 = rng.uniform(0, 2 * np.pi, 2)
            r1 = np.array([[np.cos(t1), -np.sin(t1)], [np.sin(t1), np.cos(t1)]])
            r2 = np.array([[np.cos(t2), -np.sin(t2)], [np.sin(t2), np.cos(t2)]])
            s = np.diag([rng.uniform(0.3, 0.9), rng.uniform(0.15, 0.85) * rng.choice([-1.0, 1.0])])
            m = r1 @ s @ r2
        else:
            m = rng.uniform(-1.0, 1.0, (2, 2))
        maps[i] = (m[0, 0], m[0, 1], m[1, 0], m[1, 1], *rng.uniform(-1.0, 1.0, 2))
    return maps


def _variation(name: str, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One fractal-flame variation V(x, y) (Draves & Reckase's numbering names)."""
    r2 = x * x + y * y + 1e-9
    r = np.sqrt(r2)
    if name == "sinusoidal":
        return np.sin(x), np.sin(y)
    if name == "spherical":
        return x / r2, y / r2
    if name == "swirl":
        s, c = np.sin(r2), np.cos(r2)
        return x * s - y * c, x * c + y * s
    if name == "horseshoe":
        return (x - y) * (x + y) / r, 2 * x * y / r
    theta = np.arctan2(x, y)
    if name == "polar":
        return theta / np.pi, r - 1
    if name == "handkerchief":
        return r * np.sin(theta + r), r * np.cos(theta - r)
    if name == "heart":
        return r * np.sin(theta * r), -r * np.cos(theta * r)
    if name == "disc":
        return theta / np.pi * np.sin(np.pi * r), theta / np.pi * np.cos(np.pi * r)
    if name == "spiral":
        return (np.cos(theta) + np.sin(r)) / r, (np.sin(theta) - np.cos(r)) / r
    if name == "hyperbolic":
        return np.sin(theta) / r, r * np.cos(theta)
    if name == "diamond":
        return np.sin(theta) * np.cos(r), np.cos(theta) * np.sin(r)
    if name == "fisheye":
        return 2 * y / (r + 1), 2 * x / (r + 1)
    if name == "bubble":
        return 4 * x / (r2 + 4), 4 * y / (r2 + 4)
    return x, y  # "linear"


_VARIATIONS = (
    "linear", "sinusoidal", "spherical", "swirl", "horseshoe", "polar", "handkerchief",
    "heart", "disc", "spiral", "hyperbolic", "diamond", "fisheye", "bubble",
)


def _chaos_game(
    rng: np.random.Generator,
    maps: np.ndarray,
    probs: np.ndarray,
    variations: Sequence[tuple[tuple[str, float], ...]] | None,
    n_points: int,
    n_iter: int,
    skip: int,
    symmetry: int = 1,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Iterate ``n_points`` points in parallel; returns x, y and colour index c.

    Each point picks a map per step with probability ``probs``; its colour
    coordinate moves half way to the map's colour, so regions made by
    different maps get different colours (as in fractal flames). With
    ``symmetry`` n > 1 every step also rotates each point by a random multiple
    of 2π/n, which makes the attractor n-fold rotationally symmetric.
    """
    k = len(maps)
    colours = rng.permutation(np.linspace(0.0, 1.0, k)) if k > 1 else np.array([0.5])
    x, y = rng.uniform(-1.0, 1.0, (2, n_points))
    col = rng.random(n_points)
    xs, ys, cs = [], [], []
    for step in range(n_iter):
        # Points are exchangeable, so "each point picks a map" is the same in
        # distribution as: shuffle the points, then give map m the next
        # counts[m] of them. Contiguous slices are much faster than masks.
        counts = rng.multinomial(n_points, probs)
        perm = rng.permutation(n_points)
        x, y, col = x[perm], y[perm], col[perm]
        nx, ny = np.empty_like(x), np.empty_like(y)
        start = 0
        for m in range(k):
            sl = slice(start, start + int(counts[m]))
            start += int(counts[m])
            a, b, c, d, e, f = maps[m]
            xm, ym = x[sl], y[sl]
            tx, ty = a * xm + b * ym + e, c * xm + d * ym + f
            if variations is not None:
                sx, sy = np.zeros_like(tx), np.zeros_like(ty)
                for name, w in variations[m]:
                    vx, vy = _variation(name, tx, ty)
                    sx += w * vx
                    sy += w * vy
                tx, ty = sx, sy
            nx[sl], ny[sl] = tx, ty
            col[sl] = 0.5 * (col[sl] + colours[m])
        x, y = nx, ny
        if symmetry > 1:
            turn = rng.integers(symmetry, size=n_points) * (2 * np.pi / symmetry)
            cs_, sn_ = np.cos(turn), np.sin(turn)
            x, y = cs_ * x - sn_ * y, sn_ * x + cs_ * y
        if variations is not None:
            bad = ~(np.isfinite(x) & np.isfinite(y)) | (np.abs(x) > 1e6) | (np.abs(y) > 1e6)
            if bad.any():  # a point flew off (e.g. spherical at 0): restart it
                x[bad], y[bad] = rng.uniform(-1.0, 1.0, (2, int(bad.sum())))
        if step >= skip:
            xs.append(x)
            ys.append(y)
            cs.append(col.copy())
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(cs)


def _bounds(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """Centre and span of a point cloud, ignoring the outer 0.5 % each side."""
    step = max(1, x.size // 50_000)  # percentiles of a subsample: same frame, 20x cheaper
    lo_x, hi_x = np.percentile(x[::step], [0.5, 99.5])
    lo_y, hi_y = np.percentile(y[::step], [0.5, 99.5])
    return 0.5 * (lo_x + hi_x), 0.5 * (lo_y + hi_y), max(hi_x - lo_x, hi_y - lo_y, 1e-12)


def _frame(
    x: np.ndarray, y: np.ndarray, size: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Flat pixel indices of the points that land in the image, and which did."""
    cx, cy, span = _bounds(x, y)
    scale = size * rng.uniform(0.8, 0.95) / span
    px = (x - cx) * scale + size / 2.0
    py = (y - cy) * scale + size / 2.0
    px, py = (px, py) if rng.random() < 0.5 else (py, px)  # transpose half the time
    ok = (px >= 0) & (px < size) & (py >= 0) & (py < size)
    return py[ok].astype(np.intp) * size + px[ok].astype(np.intp), ok


def _render_points(
    rng: np.random.Generator, x: np.ndarray, y: np.ndarray, col: np.ndarray, size: int
) -> np.ndarray:
    """Density -> log -> colormap over a dim background, as float RGB in [0, 1]."""
    idx, ok = _frame(x, y, size, rng)
    n = size * size
    count = np.bincount(idx, minlength=n).astype(np.float32).reshape(size, size)
    csum = np.bincount(idx, weights=col[ok], minlength=n).astype(np.float32).reshape(size, size)
    count, csum = _blur(count), _blur(csum)
    hit = count > 1e-6
    mean_col = np.where(hit, csum / np.maximum(count, 1e-6), 0.0)
    if hit.any():  # stretch the colour coordinate so the whole colormap is used
        lo, hi = np.percentile(mean_col[hit], [2, 98])
        mean_col = np.clip((mean_col - lo) / max(hi - lo, 1e-6), 0.0, 1.0)
    density = np.log1p(count * (4.0 / max(float(np.mean(count[hit])), 1e-6)))
    top = float(np.percentile(density[hit], 97)) if hit.any() else 1.0
    alpha = np.clip(density / max(top, 1e-6), 0.0, 1.0) ** rng.uniform(0.35, 0.7)
    table = _pick_lut(rng)
    # colour by map (mean colour coordinate) blended with density
    mix_w = rng.uniform(0.3, 0.8)
    v = mix_w * mean_col + (1 - mix_w) * alpha
    fg = _apply(table, v.astype(np.float32))
    fg = _with_luma(fg, 0.35 + 0.65 * (fg @ _LUMA)) * (0.6 + 0.6 * alpha[..., None])
    bg = _background(rng, size)
    return bg * (1 - alpha[..., None]) + fg * alpha[..., None]


def _coverage(x: np.ndarray, y: np.ndarray) -> float:
    """Fraction of a 48x48 grid covered by the attractor (framed like the image)."""
    cx, cy, span = _bounds(x, y)
    gx = np.clip(((x - cx) / span * 48 + 24).astype(np.intp), 0, 47)
    gy = np.clip(((y - cy) / span * 48 + 24).astype(np.intp), 0, 47)
    return np.count_nonzero(np.bincount(gy * 48 + gx, minlength=48 * 48)) / (48 * 48)


def _draw_chaos(rng: np.random.Generator, size: int, *, flame: bool) -> tuple[np.ndarray, float]:
    """An ``ifs`` (contractive affine maps) or ``flame`` (any affine maps, each
    followed by a blend of variations) image, and the attractor's coverage;
    an all-zero image when the attractor is a speck or fills the whole frame."""
    k = int(rng.integers(2, 6)) if flame else int(rng.integers(2, 5))
    maps = _affine_maps(rng, k, contractive=not flame)
    if flame:
        probs = rng.uniform(0.2, 1.0, k)
        variations = []
        for _ in range(k):
            names = rng.choice(len(_VARIATIONS), size=int(rng.integers(1, 3)), replace=False)
            w = rng.dirichlet(np.ones(len(names)))
            variations.append(tuple((_VARIATIONS[int(i)], float(wi)) for i, wi in zip(names, w)))
    else:
        probs = np.abs(maps[:, 0] * maps[:, 3] - maps[:, 1] * maps[:, 2]) + 0.03
        variations = None
    probs = probs / probs.sum()
    symmetry = int(rng.choice([1, 1, 2, 3, 4, 5, 6])) if flame else 1
    # 1. a cheap probe run decides whether the attractor fills enough of the frame
    px, py, _ = _chaos_game(rng, maps, probs, variations, 2048, 30, 10, symmetry)
    cover = _coverage(px, py)
    if not (0.1 <= cover <= 0.75):
        return np.zeros((size, size, 3), np.float32), 0.0
    # 2. the full run: about 16 samples per pixel
    n_points = max(2048, size * size // 3)
    x, y, col = _chaos_game(rng, maps, probs, variations, n_points, 60, 12, symmetry)
    return _render_points(rng, x, y, col, size), cover


# ---------------------------------------------------------------------------
# Escape-time families: mandelbrot, julia, newton
# ---------------------------------------------------------------------------


def _grid(size: int, centre: complex, half_width: float, angle: float) -> np.ndarray:
    t = (np.arange(size, dtype=np.float64) + 0.5) / size * 2.0 - 1.0
    z = (t[None, :] - 1j * t[:, None]) * half_width
    return centre + z * np.exp(1j * angle)


def _escape(z: np.ndarray, c: np.ndarray, max_iter: int) -> tuple[np.ndarray, np.ndarray]:
    """Smooth escape time of z -> z² + c: (nu, final |z|); nu = -1 inside.

    Only points still iterating are updated, so cost falls as points escape.
    """
    z, c = np.broadcast_arrays(np.asarray(z, complex), np.asarray(c, complex))
    z, c = z.ravel().copy(), c.ravel().copy()
    nu = np.full(z.shape, -1.0)
    final = np.zeros(z.shape)
    active = np.arange(z.size)
    bail = 256.0**2
    for n in range(max_iter):
        z = z * z + c
        r2 = z.real * z.real + z.imag * z.imag
        out = r2 > bail
        if out.any():
            i = active[out]
            nu[i] = n + 1 - np.log2(0.5 * np.log(r2[out]))
            keep = ~out
            z, c, active = z[keep], c[keep], active[keep]
            if active.size == 0:
                break
    final[active] = np.abs(z)
    return nu, final


def _colour_escape(
    rng: np.random.Generator, nu: np.ndarray, final: np.ndarray, size: int
) -> np.ndarray:
    """Smooth colouring: log-scaled escape time through a ping-pong colormap."""
    table = _pick_lut(rng)
    inside = nu < 0
    out_nu = nu[~inside]
    lo = float(np.percentile(out_nu, 1)) if out_nu.size else 0.0
    hi = float(np.percentile(out_nu, 99)) if out_nu.size else 1.0
    s = np.log1p(np.maximum(nu - lo, 0.0)) / max(math.log1p(max(hi - lo, 1e-6)), 1e-6)
    v = _pingpong(s * rng.uniform(1.0, 3.0) + rng.uniform(0.0, 2.0))
    rgb = _apply(table, v.astype(np.float32))
    shade = 0.35 + 0.65 * np.clip(s, 0, 1) ** 0.5
    rgb = rgb * shade[:, None]
    if inside.any():  # the set's inside: a dim colour shaded by the final |z|
        inner = _apply(_pick_lut(rng), _pingpong(final[inside] * rng.uniform(1.0, 4.0)).astype(np.float32))
        rgb[inside] = inner * rng.uniform(0.25, 0.6)
    return rgb.reshape(size, size, 3)


def _boundary_points(rng: np.random.Generator, n: int, max_iter: int) -> tuple[np.ndarray, np.ndarray]:
    """Random c near the Mandelbrot set's boundary and their escape times."""
    c = rng.uniform(-2.1, 0.6, n) + 1j * rng.uniform(-1.2, 1.2, n)
    nu, _ = _escape(np.zeros(n, complex), c, max_iter)
    return c, nu


def _draw_mandelbrot(rng: np.random.Generator, size: int) -> np.ndarray:
    """A zoom of 10^0.3 to 10^3.5 onto the Mandelbrot set's boundary."""
    # 1. a start point near the boundary, from a coarse random scan
    c, nu = _boundary_points(rng, 3000, 300)
    near = c[(nu > 25) & (nu < 300)]
    centre = complex((near if near.size else c)[int(rng.integers(max(near.size, 1)))])
    # 2. zoom in by steps of 8x, each time moving to one of the slowest-escaping
    #    points of the current window, so the boundary stays in view
    decades = rng.uniform(0.3, 3.5)
    target = 10.0**-decades
    max_iter = int(120 + 80 * decades)
    width = 0.5
    while width > target:
        width = max(width / 8.0, target)
        cand = centre + (rng.uniform(-1, 1, 256) + 1j * rng.uniform(-1, 1, 256)) * width
        nu, _ = _escape(np.zeros_like(cand), cand, max_iter)
        escaped = np.flatnonzero(nu >= 0)
        if escaped.size:
            top = escaped[np.argsort(nu[escaped])[-5:]]
            centre = complex(cand[int(rng.choice(top))])
    # 3. render, 2x supersampled against aliasing in the finest filaments
    ss = _supersample(size)
    z = _grid(size * ss, centre, target, rng.uniform(0, 2 * np.pi))
    nu, final = _escape(np.zeros_like(z), z, max_iter)
    return _downsample(_colour_escape(rng, nu, final, size * ss), ss)


def _draw_julia(rng: np.random.Generator, size: int) -> np.ndarray:
    """The Julia set of z² + k for k near the Mandelbrot boundary, zoomed up to 10x."""
    c, nu = _boundary_points(rng, 3000, 200)
    near = c[(nu > 12) & (nu < 200)]
    if near.size == 0:
        near = c
    k = complex(near[int(rng.integers(near.size))])
    half_width = 1.6 * 10.0 ** -rng.uniform(0.0, 1.0)
    centre = complex(*rng.uniform(-0.4, 0.4, 2))
    ss = _supersample(size)
    z = _grid(size * ss, centre, half_width, rng.uniform(0, 2 * np.pi))
    nu, final = _escape(z, np.asarray(k), 300)
    return _downsample(_colour_escape(rng, nu, final, size * ss), ss)


def _draw_newton(rng: np.random.Generator, size: int) -> np.ndarray:
    """Basins of (relaxed) Newton's method on a random polynomial of degree 3 to 6,
    coloured by the root reached and shaded by the steps it took."""
    degree = int(rng.integers(3, 7))
    if rng.random() < 0.4:  # z^n - 1, rotated: the classic symmetric picture
        roots = np.exp(2j * np.pi * (np.arange(degree) / degree + rng.random()))
    else:
        roots = rng.uniform(0.2, 1.0, degree) * np.exp(2j * np.pi * rng.random(degree))
    coeffs = np.poly(roots)
    dcoeffs = np.polyder(coeffs)
    relax = rng.uniform(0.7, 1.6) * np.exp(1j * rng.uniform(-0.35, 0.35))
    if rng.random() < 0.4:  # the whole picture around the origin
        centre, half_width = complex(*rng.uniform(-0.3, 0.3, 2)), rng.uniform(0.7, 1.6)
    else:  # closer in, between two roots, where basin boundaries run
        i, j = rng.choice(degree, size=2, replace=False)
        centre = 0.5 * (roots[i] + roots[j]) + complex(*rng.normal(0.0, 0.1, 2))
        half_width = rng.uniform(0.2, 0.7)
    z = _grid(size, centre, half_width, rng.uniform(0, 2 * np.pi))
    z = z.ravel()
    max_iter, tol = 48, 1e-3
    n_conv = np.full(z.size, float(max_iter))
    which = np.full(z.size, -1)
    active = np.arange(z.size)
    for n in range(max_iter):
        zz = z[active]
        dp = np.polyval(dcoeffs, zz)
        dp[dp == 0] = 1e-12
        zz = zz - relax * np.polyval(coeffs, zz) / dp
        z[active] = zz
        dist = np.abs(zz[:, None] - roots[None, :])
        nearest = dist.argmin(axis=1)
        d = dist[np.arange(zz.size), nearest]
        done = d < tol
        if done.any():
            i = active[done]
            # smooth count: how far inside the tolerance the last step landed
            n_conv[i] = n + np.clip(np.log(d[done] + 1e-300) / math.log(tol), 1.0, 4.0) ** -1
            which[i] = nearest[done]
            active = active[~done]
            if active.size == 0:
                break
    table = _pick_lut(rng)
    offsets = rng.permutation(np.linspace(0.05, 0.95, degree))
    v = np.where(which >= 0, offsets[np.maximum(which, 0)], 0.0)
    rgb = _apply(table, v.astype(np.float32))
    shade = 1.0 - 0.85 * (n_conv / max_iter) ** rng.uniform(0.35, 0.7)
    rgb = rgb * shade[:, None]
    return _blur(rgb.reshape(size, size, 3))


def _draw_ifs(rng: np.random.Generator, size: int) -> np.ndarray:
    return _draw_chaos(rng, size, flame=False)[0]


def _draw_flame(rng: np.random.Generator, size: int) -> np.ndarray:
    return _draw_chaos(rng, size, flame=True)[0]


#: One drawing function per kind: (rng, size) -> float RGB (size, size, 3) in [0, 1].
_DRAWERS: dict[str, Callable[[np.random.Generator, int], np.ndarray]] = {
    "ifs": _draw_ifs,
    "flame": _draw_flame,
    "mandelbrot": _draw_mandelbrot,
    "julia": _draw_julia,
    "newton": _draw_newton,
}


# ---------------------------------------------------------------------------
# Public generator API
# ---------------------------------------------------------------------------


def _check_size(size: int) -> int:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)):
        raise ValueError(f"size must be an integer number of pixels; got {size!r}")
    if not _MIN_SIZE <= int(size) <= _MAX_SIZE:
        raise ValueError(f"size must be between {_MIN_SIZE} and {_MAX_SIZE} pixels; got {size}")
    return int(size)


def _check_seed(seed: int, what: str = "seed") -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or int(seed) < 0:
        raise ValueError(f"{what} must be a non-negative integer; got {seed!r}")
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
        raise ValueError(f"kind must be one of {', '.join(KINDS)} or None; got {kind!r}")
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    if kind is None:
        kind = KINDS[int(rng.integers(len(KINDS)))]
    draw = _DRAWERS[kind]
    # draw until an image passes the quality check, keeping the best so far
    best, best_score = np.zeros((size, size, 3), np.uint8), -1.0
    for _ in range(_MAX_TRIES):
        img = _to_uint8(draw(rng, size))
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
        raise ValueError(f"count must be a positive integer; got {count!r}")
    size = _check_size(size)
    seed = _check_seed(seed)
    kinds = tuple(KINDS if kinds is None else kinds)
    if not kinds or any(k not in KINDS for k in kinds):
        raise ValueError(f"kinds must be a non-empty list from {', '.join(KINDS)}; got {kinds!r}")
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


# ---------------------------------------------------------------------------
# Loading a fractal set
# ---------------------------------------------------------------------------

_MAKE_HINT = "python scripts/make_fractals.py --out DIR"


def default_fractal_dir() -> Path:
    """The set shipped with the repository: ``<repo>/assets/fractals``."""
    return Path(__file__).resolve().parent.parent / "assets" / "fractals"


def _scan(folder: Path) -> list[tuple[str, Path]]:
    """Image files under ``folder`` as (POSIX name relative to folder, path), sorted.

    Hidden files and folders (names starting with ``.``, e.g. macOS ``._x.png``
    or a half-written ``.x.png.tmp``) are ignored.
    """
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for f in files:
            if f.startswith(".") or os.path.splitext(f)[1].lower() not in IMAGE_EXTENSIONS:
                continue
            path = Path(root) / f
            found.append((path.relative_to(folder).as_posix(), path))
    found.sort(key=lambda item: item[0])
    return found


def _header_problem(path: Path) -> str | None:
    """Why ``path`` cannot be an image, from its size and header only; None if fine."""
    from PIL import Image, UnidentifiedImageError

    try:
        if path.stat().st_size == 0:
            return "empty file (0 bytes)"
        with Image.open(path) as img:
            w, h = img.size
    except UnidentifiedImageError:
        return "not an image Pillow can read"
    except Image.DecompressionBombError:
        return "too many pixels (Pillow refuses it as a decompression bomb)"
    except OSError as e:
        return f"cannot be read ({e.strerror or e})"
    except (SyntaxError, ValueError, EOFError) as e:
        return f"corrupt header ({e})"
    if w < 1 or h < 1:
        return f"has no pixels ({w}x{h})"
    return None


def _list_problems(skipped: Sequence[tuple[str, str]], limit: int = 3) -> str:
    text = "; ".join(f"{name}: {why}" for name, why in skipped[:limit])
    if len(skipped) > limit:
        text += f"; and {len(skipped) - limit} more"
    return text


class FractalSet:
    """A folder of fractal images, the set F is drawn from.

    Any folder of images works: the shipped ``assets/fractals``, the PixMix or
    IPMix fractal sets, your own. Files are found recursively; a fractal's
    name is its POSIX path relative to the folder (``"sub/a.png"``), and
    ``names`` is sorted, so an index or a name means the same file on every
    machine. Each file's header is checked when the folder is scanned;
    unreadable files are left out and listed in ``skipped``. Pixels are
    decoded on first use and kept in a bounded, thread-safe LRU cache.

    Build one with :meth:`from_folder` or :meth:`default`.

    Attributes:
        folder: the folder scanned (absolute).
        names: the usable images, sorted relative POSIX paths.
        skipped: ``(name, reason)`` for each image file that could not be read.
    """

    def __init__(
        self,
        folder: str | os.PathLike[str],
        names: Sequence[str],
        skipped: Sequence[tuple[str, str]] = (),
        *,
        cache_size: int = 256,
    ) -> None:
        """Wrap already-checked ``names`` under ``folder``; prefer :meth:`from_folder`."""
        if isinstance(cache_size, bool) or not isinstance(cache_size, int) or cache_size < 0:
            raise ValueError(f"cache_size must be an integer >= 0; got {cache_size!r}")
        if not names:
            raise FractalError(f"a fractal set needs at least one image; {folder} gave none")
        self._folder = Path(folder).resolve()
        self._names = tuple(names)
        self._index = {name: i for i, name in enumerate(self._names)}
        self._skipped = tuple((str(n), str(r)) for n, r in skipped)
        self._cache_size = cache_size
        self._cache: OrderedDict[tuple[str, int], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    # -- construction -------------------------------------------------------

    @classmethod
    def from_folder(cls, path: str | os.PathLike[str], *, cache_size: int = 256) -> FractalSet:
        """Scan ``path`` recursively for images (see ``images.IMAGE_EXTENSIONS``).

        Args:
            path: a folder of images, possibly in subfolders.
            cache_size: how many resized images to keep in memory (0: none).

        Raises:
            FractalError: the folder does not exist, is not a folder, holds no
                image files, or none of them can be read.
        """
        # 1. the folder itself
        folder = Path(path).expanduser()
        if not folder.exists():
            raise FractalError(
                f"fractal folder {folder} does not exist; pass a folder of fractal images, "
                f"e.g. assets/fractals, or make one with {_MAKE_HINT}"
            )
        if not folder.is_dir():
            raise FractalError(
                f"fractal folder {folder} is a file, not a folder; pass the folder that holds "
                "the fractal images"
            )
        # 2. the image files in it
        found = _scan(folder)
        if not found:
            kinds = ", ".join(sorted(IMAGE_EXTENSIONS))
            raise FractalError(
                f"fractal folder {folder} has no image files ({kinds}), subfolders included; "
                f"add fractal images to it, or make some with {_MAKE_HINT}"
            )
        # 3. a cheap header check of each
        names, skipped = [], []
        for name, file in found:
            problem = _header_problem(file)
            if problem is None:
                names.append(name)
            else:
                skipped.append((name, problem))
        if not names:
            raise FractalError(
                f"none of the {len(found)} image files in fractal folder {folder} can be read "
                f"({_list_problems(skipped)}); replace them with working PNG or JPEG files, "
                f"or make a fresh set with {_MAKE_HINT}"
            )
        return cls(folder, names, skipped, cache_size=cache_size)

    @classmethod
    def default(cls, *, cache_size: int = 256) -> FractalSet:
        """The set shipped with the repository (:func:`default_fractal_dir`)."""
        return cls.from_folder(default_fractal_dir(), cache_size=cache_size)

    # -- description --------------------------------------------------------

    @property
    def folder(self) -> Path:
        return self._folder

    @property
    def names(self) -> tuple[str, ...]:
        return self._names

    @property
    def skipped(self) -> tuple[tuple[str, str], ...]:
        return self._skipped

    def __len__(self) -> int:
        return len(self._names)

    def __contains__(self, name: object) -> bool:
        return name in self._index

    def __repr__(self) -> str:
        return f"FractalSet({str(self._folder)!r}, {len(self)} images, {len(self._skipped)} skipped)"

    def summary(self) -> str:
        """One line for logs and the app, e.g. ``"64 fractals from /x (1 unreadable skipped: a.png: ...)"``."""
        text = f"{len(self)} fractal{'s' if len(self) != 1 else ''} from {self._folder}"
        if self._skipped:
            text += f" ({len(self._skipped)} unreadable skipped: {_list_problems(self._skipped)})"
        return text

    describe = summary

    def path(self, name: str) -> Path:
        """The file behind ``name``; FractalError if the set has no such name."""
        if name not in self._index:
            example = f", e.g. {self._names[0]!r}"
            raise FractalError(
                f"no fractal named {name!r} in {self._folder}; names are paths relative to "
                f"that folder{example} (see FractalSet.names)"
            )
        return self._folder / name

    # -- loading ------------------------------------------------------------

    def load(self, name: str, size: int) -> np.ndarray:
        """Fractal ``name`` resized to ``size`` x ``size`` (plain resize, as for I).

        Returns:
            A read-only uint8 array of shape (size, size, 3), shared with the
            cache: copy it before writing.

        Raises:
            FractalError: unknown name, or the file cannot be decoded (it may
                be truncated, or have changed since the folder was scanned).
        """
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 8:
            raise ValueError(f"size must be an integer >= 8; got {size!r}")
        key = (name, int(size))
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        file = self.path(name)
        try:  # decode outside the lock so threads load different files at once
            array = prepare(load_image(file), int(size))
        except ImageError as e:
            raise FractalError(
                f"fractal {name!r} in {self._folder} cannot be loaded: {e}; "
                "remove or replace that file and scan the folder again"
            ) from e
        array.setflags(write=False)
        with self._lock:
            if self._cache_size:
                array = self._cache.setdefault(key, array)  # another thread may have won
                self._cache.move_to_end(key)
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return array

    def load_index(self, index: int, size: int) -> np.ndarray:
        """Fractal number ``index`` (into ``names``) resized; see :meth:`load`."""
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"index must be an integer; got {index!r}")
        if not 0 <= index < len(self._names):
            raise IndexError(f"fractal index {index} out of range for a set of {len(self)}")
        return self.load(self._names[int(index)], size)

    # -- pickling (e.g. into DataLoader workers): no lock, an empty cache ---

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        del state["_lock"]
        state["_cache"] = OrderedDict()
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
