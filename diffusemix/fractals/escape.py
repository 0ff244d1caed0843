"""Escape-time fractal families for the generator: ``mandelbrot``, ``julia``, ``newton``.

``mandelbrot``  zooms onto the Mandelbrot set's boundary, smooth colouring;
``julia``       Julia sets for parameters near that boundary;
``newton``      basins of Newton's method on a random polynomial.

Each drawer is ``(rng, size) -> float RGB (size, size, 3) in [0, 1]``.
"""

from __future__ import annotations

import math

import numpy as np

from .colour import apply_lut, blur, downsample, pick_lut, pingpong, supersample

__all__ = ["draw_mandelbrot", "draw_julia", "draw_newton"]


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
    table = pick_lut(rng)
    inside = nu < 0
    out_nu = nu[~inside]
    lo = float(np.percentile(out_nu, 1)) if out_nu.size else 0.0
    hi = float(np.percentile(out_nu, 99)) if out_nu.size else 1.0
    s = np.log1p(np.maximum(nu - lo, 0.0)) / max(math.log1p(max(hi - lo, 1e-6)), 1e-6)
    v = pingpong(s * rng.uniform(1.0, 3.0) + rng.uniform(0.0, 2.0))
    rgb = apply_lut(table, v.astype(np.float32))
    shade = 0.35 + 0.65 * np.clip(s, 0, 1) ** 0.5
    rgb = rgb * shade[:, None]
    if inside.any():  # the set's inside: a dim colour shaded by the final |z|
        inner = apply_lut(pick_lut(rng), pingpong(final[inside] * rng.uniform(1.0, 4.0)).astype(np.float32))
        rgb[inside] = inner * rng.uniform(0.25, 0.6)
    return rgb.reshape(size, size, 3)


def _boundary_points(rng: np.random.Generator, n: int, max_iter: int) -> tuple[np.ndarray, np.ndarray]:
    """Random c near the Mandelbrot set's boundary and their escape times."""
    c = rng.uniform(-2.1, 0.6, n) + 1j * rng.uniform(-1.2, 1.2, n)
    nu, _ = _escape(np.zeros(n, complex), c, max_iter)
    return c, nu


def draw_mandelbrot(rng: np.random.Generator, size: int) -> np.ndarray:
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
    ss = supersample(size)
    z = _grid(size * ss, centre, target, rng.uniform(0, 2 * np.pi))
    nu, final = _escape(np.zeros_like(z), z, max_iter)
    return downsample(_colour_escape(rng, nu, final, size * ss), ss)


def draw_julia(rng: np.random.Generator, size: int) -> np.ndarray:
    """The Julia set of z² + k for k near the Mandelbrot boundary, zoomed up to 10x."""
    c, nu = _boundary_points(rng, 3000, 200)
    near = c[(nu > 12) & (nu < 200)]
    if near.size == 0:
        near = c
    k = complex(near[int(rng.integers(near.size))])
    half_width = 1.6 * 10.0 ** -rng.uniform(0.0, 1.0)
    centre = complex(*rng.uniform(-0.4, 0.4, 2))
    ss = supersample(size)
    z = _grid(size * ss, centre, half_width, rng.uniform(0, 2 * np.pi))
    nu, final = _escape(z, np.asarray(k), 300)
    return downsample(_colour_escape(rng, nu, final, size * ss), ss)


def draw_newton(rng: np.random.Generator, size: int) -> np.ndarray:
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
    table = pick_lut(rng)
    offsets = rng.permutation(np.linspace(0.05, 0.95, degree))
    v = np.where(which >= 0, offsets[np.maximum(which, 0)], 0.0)
    rgb = apply_lut(table, v.astype(np.float32))
    shade = 1.0 - 0.85 * (n_conv / max_iter) ** rng.uniform(0.35, 0.7)
    rgb = rgb * shade[:, None]
    return blur(rgb.reshape(size, size, 3))
