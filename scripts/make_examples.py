"""Render the app's bundled example images (assets/examples/*.jpg).

The project has no photographs it may redistribute, so it draws its own:
simple but shaded scenes, made with numpy and Pillow from fixed seeds. The
output is CC0 (see assets/examples/README.md).

    python scripts/make_examples.py [--out assets/examples] [--size 512]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

Canvas = np.ndarray  # float32 (H, W, 3) in [0, 1]

SUPERSAMPLE = 2  # draw at 2x, then downsample: cheap anti-aliasing


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def grid(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates in [0, 1]: x grows right, y grows down."""
    t = (np.arange(n, dtype=np.float32) + 0.5) / n
    return np.meshgrid(t, t)


def rgb(hexcode: str) -> np.ndarray:
    h = hexcode.lstrip("#")
    return np.array([int(h[i : i + 2], 16) / 255.0 for i in (0, 2, 4)], dtype=np.float32)


def paint(canvas: Canvas, alpha: np.ndarray, colour: np.ndarray | float) -> None:
    """canvas = alpha * colour + (1 - alpha) * canvas, in place."""
    a = np.clip(alpha, 0.0, 1.0)[..., None]
    canvas *= 1.0 - a
    canvas += a * colour


def smooth_noise(rng: np.random.Generator, n: int, scales: tuple[int, ...]) -> np.ndarray:
    """Value noise: sum of bilinearly upsampled random grids, in about [-1, 1]."""
    out = np.zeros((n, n), dtype=np.float32)
    for i, s in enumerate(scales):
        small = rng.standard_normal((s, s)).astype(np.float32)
        img = Image.fromarray(small, mode="F").resize((n, n), Image.Resampling.BICUBIC)
        out += np.asarray(img) / (2**i)
    return out / max(1e-6, float(np.abs(out).max()))


def ridge(rng: np.random.Generator, n: int, base: float, amp: float, scales: tuple[int, ...]) -> np.ndarray:
    """A 1-D skyline height (fraction of the image, from the top) per column."""
    out = np.zeros(n, dtype=np.float32)
    x = np.linspace(0, 1, n, dtype=np.float32)
    for i, s in enumerate(scales):
        knots = rng.uniform(-1, 1, s + 1).astype(np.float32)
        out += np.interp(x, np.linspace(0, 1, s + 1), knots) / (1.6**i)
    return base + amp * out / max(1e-6, float(np.abs(out).max()))


def soft(d: np.ndarray, px: float) -> np.ndarray:
    """Coverage of a shape from a signed distance d (negative inside), edge px wide."""
    return np.clip(0.5 - d / px, 0.0, 1.0)


def finish(canvas: Canvas, size: int, rng: np.random.Generator, grain: float = 0.012) -> Image.Image:
    """Add a little film grain and a vignette, downsample to size x size."""
    n = canvas.shape[0]
    x, y = grid(n)
    vignette = 1.0 - 0.22 * ((x - 0.5) ** 2 + (y - 0.5) ** 2) * 2.0
    out = canvas * vignette[..., None] + rng.normal(0, grain, canvas.shape).astype(np.float32)
    img = Image.fromarray((np.clip(out, 0, 1) * 255 + 0.5).astype(np.uint8))
    return img.resize((size, size), Image.Resampling.LANCZOS)


# ---------------------------------------------------------------------------
# scenes
# ---------------------------------------------------------------------------


def landscape(size: int, rng: np.random.Generator) -> Image.Image:
    """Evening hills under a low sun, with a lake and a few pines."""
    n = size * SUPERSAMPLE
    x, y = grid(n)
    px = 1.0 / n
    # 1. sky: deep blue at the top to a warm horizon
    t = np.clip(y / 0.62, 0, 1)[..., None]
    sky = rgb("#2b4c8c") * (1 - t) ** 1.4 + rgb("#f6b26b") * (1 - (1 - t) ** 1.4)
    canvas = sky.astype(np.float32).copy()
    clouds = smooth_noise(rng, n, (4, 8, 16, 32))
    cloud_a = np.clip((clouds - 0.15) * 2.2, 0, 1) * np.clip(1 - y / 0.45, 0, 1) * 0.55
    paint(canvas, cloud_a, rgb("#fde4d0"))
    # 2. sun with a glow
    sx, sy, r = 0.68, 0.47, 0.055
    d = np.hypot(x - sx, y - sy)
    paint(canvas, np.exp(-((d / 0.22) ** 2)) * 0.55, rgb("#ffd38a"))
    paint(canvas, soft(d - r, 1.5 * px), rgb("#fff4d6"))
    # 3. three ranges of hills, hazier with distance
    layers = [
        (0.50, 0.06, (3, 7, 15), "#7d7fa8", 0.0),
        (0.58, 0.05, (2, 5, 11), "#4f6b5a", 0.35),
        (0.66, 0.045, (2, 4, 9), "#2f5a33", 0.7),
    ]
    for base, amp, scales, colour, texture in layers:
        h = ridge(rng, n, base, amp, scales)
        inside = soft(h[None, :] - y, 1.5 * px)
        shade = 1.0 - 0.25 * np.clip((y - h[None, :]) / 0.25, 0, 1)
        tex = 1.0 + texture * 0.08 * smooth_noise(rng, n, (16, 48, 96))
        paint(canvas, inside, (rgb(colour) * (shade * tex)[..., None]).astype(np.float32))
    # 4. a lake in the foreground: sky reflection, a sun glitter path, ripples
    lx, ly, rx, ry = 0.5, 0.81, 0.36, 0.075
    lake = soft(np.hypot((x - lx) / rx, (y - ly) / ry) - 1, 2 * px / ry)
    mirror = np.clip(0.55 - (y - (ly - ry)) / (2 * ry) * 0.5, 0, 1)  # far shore mirrors the horizon
    refl = sky[np.clip((mirror * n).astype(int), 0, n - 1), 0]
    water = 0.5 * refl + 0.5 * rgb("#2f5f9a")
    ripples = 1.0 + 0.04 * np.sin(y * n * 0.45 + 4 * smooth_noise(rng, n, (8, 32)))
    glitter = np.exp(-(((x - sx) / 0.03) ** 2)) * (0.5 + 0.5 * np.sin(y * n * 0.6)) * 0.5
    paint(canvas, lake, (water * ripples[..., None] + glitter[..., None] * rgb("#ffe2a8")).astype(np.float32))
    # 5. meadow at the bottom edges, then pines
    grass = soft((0.9 + 0.02 * np.sin(x * 17)) - y, 2 * px)
    paint(canvas, grass, rgb("#3d6b2a") * (0.8 + 0.2 * smooth_noise(rng, n, (32, 96)))[..., None])
    for cx, base, hgt in [(0.12, 0.70, 0.16), (0.18, 0.72, 0.12), (0.86, 0.69, 0.18), (0.93, 0.71, 0.13)]:
        half = 0.045 * hgt / 0.16 * (y - (base - hgt)) / hgt
        tri = (y > base - hgt) & (y < base) & (np.abs(x - cx) < half)
        paint(canvas, tri.astype(np.float32) * 0.95, rgb("#1d3b22"))
        trunk = (np.abs(x - cx) < 0.006) & (y >= base) & (y < base + 0.03)
        paint(canvas, trunk.astype(np.float32), rgb("#3b2a1d"))
    return finish(canvas, size, rng)


def still_life(size: int, rng: np.random.Generator) -> Image.Image:
    """A shaded sphere, cube and vase on a wooden table against a wall."""
    n = size * SUPERSAMPLE
    x, y = grid(n)
    px = 1.0 / n
    light = np.array([-0.55, -0.6, 0.58], dtype=np.float32)
    light /= np.linalg.norm(light)
    # 1. wall and table
    wall = rgb("#d9cdb8") * (0.75 + 0.3 * (1 - np.hypot(x - 0.3, y - 0.25)))[..., None]
    canvas = wall.astype(np.float32)
    table_y = 0.62
    grain = np.sin((y * 90 + 4 * smooth_noise(rng, n, (4, 12))) * np.pi) * 0.06
    wood = rgb("#8a5a36") * (0.85 + grain + 0.25 * (y - table_y))[..., None]
    paint(canvas, soft(table_y - y, px), wood.astype(np.float32))
    paint(canvas, soft(np.abs(y - table_y) - 0.002, px) * 0.5, rgb("#5e3b22"))
    # 2. shadows on the table (soft ellipses, cast to the right)
    for cx, w in [(0.34, 0.17), (0.70, 0.13), (0.52, 0.06)]:
        d = np.hypot((x - cx - 0.06) / w, (y - 0.80 + 0.05 * (cx < 0.5)) / 0.035)
        paint(canvas, np.clip(1.1 - d, 0, 1) * 0.45 * (y > table_y), rgb("#2a1a10"))
    # 3. cube (three faces, flat shaded)
    cx0, cy0, s = 0.62, 0.60, 0.17

    def quad(pts: list[tuple[float, float]]) -> np.ndarray:
        inside = np.ones_like(x, dtype=bool)
        for (x1, y1), (x2, y2) in zip(pts, pts[1:] + pts[:1]):
            inside &= (x2 - x1) * (y - y1) - (y2 - y1) * (x - x1) >= 0
        return inside.astype(np.float32)

    a, b, c = (cx0, cy0 + 0.1), (cx0 + s, cy0 + 0.13), (cx0 + s + 0.07, cy0 + 0.03)
    e, f = (cx0, cy0 - s + 0.1), (cx0 + s, cy0 - s + 0.13)
    g, h = (cx0 + s + 0.07, cy0 - s + 0.03), (cx0 + 0.07, cy0 - s)
    blue = rgb("#3f6fb5")
    paint(canvas, quad([a, b, f, e][::-1]), blue * 0.95)  # front
    paint(canvas, quad([b, c, g, f][::-1]), blue * 0.62)  # side
    paint(canvas, quad([e, f, g, h][::-1]), blue * 1.18)  # top
    # 4. sphere (Lambert + Blinn specular)
    sx, sy, r = 0.34, 0.62, 0.15
    dx, dy = (x - sx) / r, (y - sy) / r
    rr = dx * dx + dy * dy
    inside = rr < 1
    nz = np.sqrt(np.clip(1 - rr, 0, 1))
    lam = np.clip(dx * light[0] + dy * light[1] + nz * light[2], 0, 1)
    half = light + np.array([0, 0, 1], dtype=np.float32)
    half /= np.linalg.norm(half)
    spec = np.clip(dx * half[0] + dy * half[1] + nz * half[2], 0, 1) ** 60
    colour = rgb("#e0692a") * (0.18 + 0.85 * lam)[..., None] + spec[..., None] * 0.9
    paint(canvas, soft(np.sqrt(rr) - 1, 1.5 * px / r) * inside, colour.astype(np.float32))
    # 5. a slim vase (a surface of revolution, shaded by its normal)
    vx, top, bot = 0.52, 0.34, 0.74
    t = np.clip((y - top) / (bot - top), 0, 1)
    radius = 0.025 + 0.045 * np.sin(np.pi * (0.15 + 0.8 * t)) ** 2
    u = (x - vx) / radius
    body = (np.abs(u) < 1) & (y > top) & (y < bot)
    nzv = np.sqrt(np.clip(1 - u * u, 0, 1))
    lam_v = np.clip(u * light[0] + nzv * light[2] + 0.1, 0, 1)
    spec_v = np.clip(u * half[0] + nzv * half[2], 0, 1) ** 40
    vase = rgb("#3a8f7a") * (0.2 + 0.8 * lam_v)[..., None] + spec_v[..., None] * 0.7
    paint(canvas, body.astype(np.float32), vase.astype(np.float32))
    return finish(canvas, size, rng)


def car(size: int, rng: np.random.Generator) -> Image.Image:
    """A red hatchback in side view on a street, city behind."""
    n = size * SUPERSAMPLE
    x, y = grid(n)
    px = 1.0 / n
    # 1. sky and skyline
    canvas = (rgb("#9cc7ea") * (1 - y * 0.6)[..., None] + rgb("#e7f1f8") * (y * 0.6)[..., None]).astype(np.float32)
    for i in range(14):
        bx, bw = rng.uniform(-0.05, 1.0), rng.uniform(0.05, 0.12)
        bh = rng.uniform(0.15, 0.4)
        shade = rng.uniform(0.55, 0.8)
        block = (np.abs(x - bx) < bw / 2) & (y > 0.62 - bh) & (y < 0.62)
        paint(canvas, block.astype(np.float32), rgb("#7a8597") * shade)
        win = block & (np.mod(x * 60, 1) < 0.45) & (np.mod(y * 45, 1) < 0.5)
        paint(canvas, win.astype(np.float32) * 0.5, rgb("#dfe9f2"))
    # 2. pavement and road
    paint(canvas, (y > 0.62).astype(np.float32), rgb("#b9b4aa"))
    road = rgb("#3c3d40") * (0.9 + 0.1 * smooth_noise(rng, n, (32, 128)))[..., None]
    paint(canvas, (y > 0.68).astype(np.float32), road.astype(np.float32))
    dash = (np.abs(y - 0.9) < 0.006) & (np.mod(x * 5, 1) < 0.5)
    paint(canvas, dash.astype(np.float32), rgb("#e9e3c9"))
    # 3. shadow under the car
    paint(canvas, np.clip(1 - np.hypot((x - 0.5) / 0.36, (y - 0.775) / 0.025), 0, 1) * 0.7, rgb("#111111"))
    # 4. body: a rounded box plus a cabin, shaded top to bottom
    def rbox(cx: float, cy: float, hw: float, hh: float, rad: float) -> np.ndarray:
        qx = np.abs(x - cx) - hw + rad
        qy = np.abs(y - cy) - hh + rad
        return np.hypot(np.maximum(qx, 0), np.maximum(qy, 0)) + np.minimum(np.maximum(qx, qy), 0) - rad

    body = rbox(0.5, 0.69, 0.33, 0.065, 0.05)
    slope = (y - 0.49) - np.where(x < 0.5, -(x - 0.33) * 1.2, (x - 0.70) * 1.5)
    cabin = np.maximum(rbox(0.52, 0.58, 0.2, 0.08, 0.05), -slope)
    shape = np.minimum(body, np.maximum(cabin, y - 0.68))
    red = rgb("#c62828") * (1.25 - 0.9 * (y - 0.5))[..., None]
    gloss = np.exp(-(((y - 0.645) / 0.01) ** 2)) * 0.5
    paint(canvas, soft(shape, 1.5 * px), (red + gloss[..., None]).astype(np.float32))
    # 5. windows, door line, lights
    glass = np.maximum(cabin + 0.018, y - 0.625)
    glass = np.maximum(glass, -(np.abs(x - 0.535) - 0.006))
    tint = rgb("#27384a") * (0.7 + 0.6 * (1 - (y - 0.5) / 0.13))[..., None]
    paint(canvas, soft(glass, 1.5 * px), tint.astype(np.float32))
    paint(canvas, ((np.abs(x - 0.535) < 0.002) & (y > 0.6) & (y < 0.73)).astype(np.float32) * 0.6, rgb("#5b0f0f"))
    paint(canvas, soft(rbox(0.19, 0.665, 0.012, 0.014, 0.008), px), rgb("#fff2b0"))
    paint(canvas, soft(rbox(0.82, 0.665, 0.01, 0.016, 0.006), px), rgb("#ff5a3c"))
    # 6. wheels: tyre, rim, hub
    for wx in (0.31, 0.69):
        d = np.hypot(x - wx, y - 0.755)
        paint(canvas, soft(d - 0.062, 1.5 * px), rgb("#151515"))
        rim = rgb("#b8bcc2") * (0.7 + 0.5 * np.clip(-(y - 0.755) / 0.04 + 0.5, 0, 1))[..., None]
        paint(canvas, soft(d - 0.036, 1.5 * px), rim.astype(np.float32))
        spokes = np.abs(np.sin(5 * np.arctan2(y - 0.755, x - wx))) < 0.3
        paint(canvas, (spokes & (d < 0.032) & (d > 0.01)).astype(np.float32) * 0.6, rgb("#55595e"))
        paint(canvas, soft(d - 0.009, px), rgb("#2e3135"))
    return finish(canvas, size, rng, grain=0.01)


def flower(size: int, rng: np.random.Generator) -> Image.Image:
    """A daisy-like flower in front of a soft green garden (bokeh)."""
    n = size * SUPERSAMPLE
    x, y = grid(n)
    px = 1.0 / n
    # 1. blurred garden background with bokeh discs
    bg = smooth_noise(rng, n, (3, 6))
    canvas = (rgb("#2f5d2a") * (0.8 + 0.35 * bg)[..., None] + rgb("#a6c97a") * (0.25 * (1 - y))[..., None]).astype(
        np.float32
    )
    for _ in range(26):
        bx, by, br = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.02, 0.06)
        colour = rgb(["#e9f5c6", "#ffd9e8", "#fff4b8"][int(rng.integers(3))])
        paint(canvas, soft(np.hypot(x - bx, y - by) - br, 6 * px) * rng.uniform(0.12, 0.3), colour)
    # 2. stem and two leaves
    stem_x = 0.5 + 0.04 * np.sin((y - 0.45) * 4)
    paint(canvas, soft(np.abs(x - stem_x) - 0.008, 1.5 * px) * (y > 0.45), rgb("#3f7d2c"))
    for sign, ly in ((-1, 0.78), (1, 0.7)):
        lx = 0.5 + sign * 0.09
        u, v = (x - lx) * np.cos(0.5 * sign) + (y - ly) * np.sin(0.5 * sign), -(x - lx) * np.sin(
            0.5 * sign
        ) + (y - ly) * np.cos(0.5 * sign)
        leaf = (u / 0.1) ** 2 + (v / 0.03) ** 2
        shade = 0.8 + 0.3 * (v / 0.03)
        paint(canvas, soft(np.sqrt(leaf) - 1, 3 * px / 0.05), rgb("#4e9a36") * np.clip(shade, 0.5, 1.2)[..., None])
    # 3. petals: ellipses around the centre, lit from the top-left
    cx, cy = 0.5, 0.4
    ang = np.arctan2(y - cy, x - cx)
    dist = np.hypot(x - cx, y - cy)
    k = 17
    for layer, (length, width, offset, tone) in enumerate([(0.2, 0.036, 0.0, 0.9), (0.18, 0.034, np.pi / k, 1.0)]):
        for i in range(k):
            a0 = 2 * np.pi * i / k + offset
            u = (x - cx) * np.cos(a0) + (y - cy) * np.sin(a0)
            v = -(x - cx) * np.sin(a0) + (y - cy) * np.cos(a0)
            e = np.hypot((u - length * 0.55) / (length * 0.55), v / width)
            vein = 1 - 0.12 * np.exp(-((v / (width * 0.15)) ** 2))
            lit = tone * (0.82 + 0.18 * np.cos(a0 + 2.3)) * vein * (0.85 + 0.15 * np.clip(u / length, 0, 1))
            paint(canvas, soft(e - 1, 2.5 * px / width * 0.5) * (u > 0), rgb("#fbfaf4") * lit[..., None])
    # 4. centre disc with a phyllotaxis of seeds
    core = soft(dist - 0.075, 1.5 * px)
    shade = 1.05 - 0.6 * np.clip((x - cx + y - cy) / 0.15 + 0.5, 0, 1)
    paint(canvas, core, rgb("#e0a81a") * shade[..., None])
    golden = np.pi * (3 - np.sqrt(5))
    for j in range(180):
        rr = 0.072 * np.sqrt((j + 0.5) / 180)
        sxj, syj = cx + rr * np.cos(j * golden), cy + rr * np.sin(j * golden)
        paint(canvas, soft(np.hypot(x - sxj, y - syj) - 0.0042, px) * 0.55, rgb("#8a5a0c"))
    del ang
    return finish(canvas, size, rng, grain=0.01)


SCENES: dict[str, Callable[[int, np.random.Generator], Image.Image]] = {
    "landscape": landscape,
    "still_life": still_life,
    "car": car,
    "flower": flower,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "assets" / "examples")
    parser.add_argument("--size", type=int, default=512)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for i, (name, scene) in enumerate(SCENES.items()):
        img = scene(args.size, np.random.default_rng(1000 + i))
        path = args.out / f"{name}.jpg"
        img.save(path, quality=92, optimize=True)
        print(f"wrote {path} ({path.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
