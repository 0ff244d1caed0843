"""Chaos-game fractal families for the generator: ``ifs`` and ``flame``.

``ifs``    affine iterated function systems drawn by a vectorised chaos game,
           rendered as log density under a colormap;
``flame``  the same chaos game with non-linear "variations" (sinusoidal,
           swirl, spherical, ...), as in fractal flames.

Each drawer is ``(rng, size) -> float RGB (size, size, 3) in [0, 1]``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .colour import LUMA, apply_lut, background, blur, pick_lut, with_luma

__all__ = ["draw_ifs", "draw_flame"]


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
    count, csum = blur(count), blur(csum)
    hit = count > 1e-6
    mean_col = np.where(hit, csum / np.maximum(count, 1e-6), 0.0)
    if hit.any():  # stretch the colour coordinate so the whole colormap is used
        lo, hi = np.percentile(mean_col[hit], [2, 98])
        mean_col = np.clip((mean_col - lo) / max(hi - lo, 1e-6), 0.0, 1.0)
    density = np.log1p(count * (4.0 / max(float(np.mean(count[hit])), 1e-6)))
    top = float(np.percentile(density[hit], 97)) if hit.any() else 1.0
    alpha = np.clip(density / max(top, 1e-6), 0.0, 1.0) ** rng.uniform(0.35, 0.7)
    table = pick_lut(rng)
    # colour by map (mean colour coordinate) blended with density
    mix_w = rng.uniform(0.3, 0.8)
    v = mix_w * mean_col + (1 - mix_w) * alpha
    fg = apply_lut(table, v.astype(np.float32))
    fg = with_luma(fg, 0.35 + 0.65 * (fg @ LUMA)) * (0.6 + 0.6 * alpha[..., None])
    bg = background(rng, size)
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


def draw_ifs(rng: np.random.Generator, size: int) -> np.ndarray:
    return _draw_chaos(rng, size, flame=False)[0]


def draw_flame(rng: np.random.Generator, size: int) -> np.ndarray:
    return _draw_chaos(rng, size, flame=True)[0]
