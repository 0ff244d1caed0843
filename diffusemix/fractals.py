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

from diffusemix.errors import FractalError, ImageError

__all__ = [
    "FractalKind",
    "KINDS",
    "IMAGE_SUFFIXES",
    "make_fractal",
    "fractal_seed",
    "write_fractal_set",
    "default_fractal_dir",
    "FractalSet",
]

#: The fractal families :func:`make_fractal` can draw.
FractalKind = Literal["ifs", "flame", "mandelbrot", "julia", "newton"]
KINDS: tuple[str, ...] = get_args(FractalKind)

#: File name endings (lower case) that :class:`FractalSet` treats as images.
IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".webp", ".bmp")

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


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A soft two-colour gradient, dim but not black: float32 (size, size, 3)."""
    table = _pick_lut(rng)
    c0 = _apply(table, np.float32(rng.random())) * rng.uniform(0.18, 0.4)
    c1 = _apply(table, np.float32(rng.random())) * rng.uniform(0.05, 0.25)
    t = np.linspace(-1.0, 1.0, size, dtype=np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    if rng.random() < 0.5:  # linear gradient at a random angle
        g = (np.cos(angle) * t[None, :] + np.sin(angle) * t[:, None]) * 0.5 + 0.5
    else:  # radial glow from a random centre
        cx, cy = rng.uniform(-0.5, 0.5, 2)
        g = np.clip(np.hypot(t[None, :] - cx, t[:, None] - cy) / 1.5, 0, 1)
    g = np.clip(g, 0.0, 1.0)[..., None]
    return (c0 * (1 - g) + c1 * g).astype(np.float32)


def _to_uint8(rgb: np.ndarray) -> np.ndarray:
    return (np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _score(img: np.ndarray) -> float:
    """How usable an image is as F: 0 when too dark, flat or grey; higher is better."""
    x = img.astype(np.float32)
    luma = x @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    mean, std = float(luma.mean()), float(luma.std())
    sat = float((x.max(axis=2) - x.min(axis=2)).mean())
    if mean < 45 or mean > 215 or std < 20 or sat < 35:
        return 0.0
    return min(mean, 120.0) / 120.0 + min(std, 60.0) / 60.0 + min(sat, 100.0) / 100.0


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
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Iterate ``n_points`` points in parallel; returns x, y and colour index c.

    Each point picks a map per step with probability ``probs``; its colour
    coordinate moves half way to the map's colour, so regions made by
    different maps get different colours (as in fractal flames).
    """
    k = len(maps)
    a, b, c, d, e, f = (maps[:, j] for j in range(6))
    colours = np.linspace(0.0, 1.0, k) if k > 1 else np.array([0.5])
    colours = rng.permutation(colours)
    cum = np.cumsum(probs)
    cum[-1] = 1.0
    x, y = rng.uniform(-1.0, 1.0, (2, n_points))
    col = rng.random(n_points)
    xs, ys, cs = [], [], []
    for step in range(n_iter):
        j = np.searchsorted(cum, rng.random(n_points), side="right")
        x, y = a[j] * x + b[j] * y + e[j], c[j] * x + d[j] * y + f[j]
        if variations is not None:
            nx, ny = np.zeros_like(x), np.zeros_like(y)
            for m in range(k):
                sel = j == m
                if not sel.any():
                    continue
                for name, w in variations[m]:
                    vx, vy = _variation(name, x[sel], y[sel])
                    nx[sel] += w * vx
                    ny[sel] += w * vy
            x, y = nx, ny
            bad = ~(np.isfinite(x) & np.isfinite(y)) | (np.abs(x) > 1e6) | (np.abs(y) > 1e6)
            if bad.any():  # a point flew off (e.g. spherical at 0): restart it
                x[bad], y[bad] = rng.uniform(-1.0, 1.0, (2, int(bad.sum())))
        col = 0.5 * (col + colours[j])
        if step >= skip:
            xs.append(x)
            ys.append(y)
            cs.append(col)
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(cs)


def _frame(x: np.ndarray, y: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Flat pixel indices of points fitted into the image (outliers dropped)."""
    lo_x, hi_x = np.percentile(x, [0.5, 99.5])
    lo_y, hi_y = np.percentile(y, [0.5, 99.5])
    span = max(hi_x - lo_x, hi_y - lo_y, 1e-12)
    scale = size * rng.uniform(0.8, 0.95) / span
    px = (x - 0.5 * (lo_x + hi_x)) * scale + size / 2.0
    py = (y - 0.5 * (lo_y + hi_y)) * scale + size / 2.0
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
    density = np.log1p(count * (4.0 / max(float(np.mean(count[hit])), 1e-6)))
    top = float(np.percentile(density[hit], 99.5)) if hit.any() else 1.0
    alpha = np.clip(density / max(top, 1e-6), 0.0, 1.0) ** rng.uniform(0.45, 0.8)
    table = _pick_lut(rng)
    # colour by map (mean colour coordinate) blended with density
    mix_w = rng.uniform(0.3, 0.8)
    v = mix_w * mean_col + (1 - mix_w) * alpha
    fg = _apply(table, v.astype(np.float32))
    fg = fg * (0.55 + 0.45 * alpha[..., None])  # dense parts brighter
    bg = _background(rng, size)
    return bg * (1 - alpha[..., None]) + fg * alpha[..., None]


def _coverage_ok(x: np.ndarray, y: np.ndarray) -> float:
    """Fraction of a 48x48 grid covered by the attractor (framed like the image)."""
    lo_x, hi_x = np.percentile(x, [0.5, 99.5])
    lo_y, hi_y = np.percentile(y, [0.5, 99.5])
    span = max(hi_x - lo_x, hi_y - lo_y, 1e-12)
    gx = np.clip(((x - lo_x) / span * 48).astype(np.intp), 0, 47)
    gy = np.clip(((y - lo_y) / span * 48).astype(np.intp), 0, 47)
    return np.count_nonzero(np.bincount(gy * 48 + gx, minlength=48 * 48)) / (48 * 48)


def _draw_chaos(rng: np.random.Generator, size: int, *, flame: bool) -> tuple[np.ndarray, float]:
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
    # 1. a cheap probe run decides whether the attractor fills enough of the frame
    px, py, _ = _chaos_game(rng, maps, probs, variations, 2048, 30, 10)
    cover = _coverage_ok(px, py)
    if not (0.06 <= cover <= 0.75):
        return np.zeros((size, size, 3), np.float32), 0.0
    # 2. the full run: about 16 samples per pixel
    n_points = max(2048, size * size // 3)
    x, y, col = _chaos_game(rng, maps, probs, variations, n_points, 60, 12)
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
    z = np.ravel(z).copy()
    c = np.broadcast_to(c, z.shape).copy()
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
    c, nu = _boundary_points(rng, 3000, 400)
    near = c[(nu > 25) & (nu < 400)]
    if near.size == 0:
        near = c
    centre = complex(near[int(rng.integers(near.size))])
    decades = rng.uniform(0.3, 3.5)
    half_width = 10.0**-decades
    max_iter = int(120 + 90 * decades)
    angle = rng.uniform(0, 2 * np.pi)
    z = _grid(size, centre, half_width, angle)
    nu, final = _escape(np.zeros_like(z), z, max_iter)
    return _colour_escape(rng, nu, final, size)


def _draw_julia(rng: np.random.Generator, size: int) -> np.ndarray:
    c, nu = _boundary_points(rng, 3000, 200)
    near = c[(nu > 12) & (nu < 200)]
    if near.size == 0:
        near = c
    k = complex(near[int(rng.integers(near.size))])
    half_width = 1.6 * 10.0 ** -rng.uniform(0.0, 1.0)
    centre = complex(*rng.uniform(-0.4, 0.4, 2))
    z = _grid(size, centre, half_width, rng.uniform(0, 2 * np.pi))
    nu, final = _escape(z, np.asarray(k), 300)
    return _colour_escape(rng, nu, final, size)


def _draw_newton(rng: np.random.Generator, size: int) -> np.ndarray:
    degree = int(rng.integers(3, 7))
    if rng.random() < 0.4:  # z^n - 1, rotated: the classic symmetric picture
        roots = np.exp(2j * np.pi * (np.arange(degree) / degree + rng.random()))
    else:
        roots = rng.uniform(0.2, 1.0, degree) * np.exp(2j * np.pi * rng.random(degree))
    coeffs = np.poly(roots)
    dcoeffs = np.polyder(coeffs)
    relax = rng.uniform(0.7, 1.6) * np.exp(1j * rng.uniform(-0.35, 0.35))
    z = _grid(size, complex(*rng.uniform(-0.5, 0.5, 2)), rng.uniform(0.6, 1.8), rng.uniform(0, 2 * np.pi))
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
    draw: Callable[[np.random.Generator, int], np.ndarray]
    if kind in ("ifs", "flame"):
        flame = kind == "flame"

        def draw(r: np.random.Generator, s: int) -> np.ndarray:
            return _draw_chaos(r, s, flame=flame)[0]

    else:
        draw = {"mandelbrot": _draw_mandelbrot, "julia": _draw_julia, "newton": _draw_newton}[kind]
    # score at a small size when the image is big: cheap and the same verdict
    best, best_score = None, -1.0
    for _ in range(_MAX_TRIES):
        img = _to_uint8(draw(rng, size))
        score = _score(img)
        if score > 0.0:
            return img
        if score > best_score:
            best, best_score = img, score
    assert best is not None
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
        Image.fromarray(img, mode="RGB").save(tmp, format="PNG", optimize=True)
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
