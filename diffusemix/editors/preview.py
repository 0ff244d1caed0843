"""The preview editor: prompt-driven colour and texture filters, no weights.

This is **not a diffusion model**. It exists so that the whole pipeline (mask,
hybrid, fractal blend, export, app) can be tried on any machine, with no GPU
and no downloads, and still show what each prompt is meant to do. Each of the
reference prompts gets a recognisable look; any other prompt gets a colour
grade derived from a stable hash of its text, so different prompts differ.

Everything here is numpy and Pillow: importing or using it never imports torch.
The output is a deterministic function of (image, prompt, seed); the seed only
moves textures (snowflakes, rain streaks, paper grain).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .base import CancelToken, EditRequest, EditResult, ProgressFn, edit_in_batches
from .spec import EditorSpec

__all__ = ["PreviewEditor", "PREVIEW_STYLES", "preview_style", "apply_preview"]

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)

# ---------------------------------------------------------------------------
# small helpers on float32 (H, W, 3) images in [0, 1]


def _luma(x: np.ndarray) -> np.ndarray:
    return x @ _LUMA


def _saturate(x: np.ndarray, s: float) -> np.ndarray:
    lum = _luma(x)[..., None]
    return lum + (x - lum) * np.float32(s)


def _screen(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return 1.0 - (1.0 - x) * (1.0 - y)


def _to_u8(x: np.ndarray) -> np.ndarray:
    return np.clip(x * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _blur(x: np.ndarray, radius: float) -> np.ndarray:
    """Gaussian blur (Pillow, 8-bit precision) of an (H, W, 3) or (H, W) image."""
    if radius <= 0:
        return x
    from PIL import Image, ImageFilter

    im = Image.fromarray(_to_u8(x)).filter(ImageFilter.GaussianBlur(radius))
    return np.asarray(im, dtype=np.float32) * np.float32(1 / 255)


def _edges(lum: np.ndarray) -> np.ndarray:
    """Gradient magnitude of a (H, W) image by central differences."""
    gx = np.zeros_like(lum)
    gy = np.zeros_like(lum)
    if lum.shape[1] > 2:
        gx[:, 1:-1] = lum[:, 2:] - lum[:, :-2]
    if lum.shape[0] > 2:
        gy[1:-1, :] = lum[2:, :] - lum[:-2, :]
    return np.sqrt(gx * gx + gy * gy)


def _norm_edges(e: np.ndarray, gain: float) -> np.ndarray:
    """Edges scaled by their mean so that strokes look alike on any image."""
    return np.clip(e * np.float32(gain / (4.0 * float(e.mean()) + 0.02)), 0.0, 1.0)


def _smooth_noise(h: int, w: int, rng: np.random.Generator, cell: float) -> np.ndarray:
    """Low-frequency noise in about [-1, 1]: a coarse random grid, upsampled."""
    from PIL import Image

    gh, gw = max(2, int(h / cell) + 2), max(2, int(w / cell) + 2)
    grid = rng.standard_normal((gh, gw)).astype(np.float32)
    im = Image.fromarray(grid).resize((w, h), Image.Resampling.BICUBIC)
    return np.asarray(im)


def _grain(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    return rng.standard_normal((h, w), dtype=np.float32)


def _hue_matrix(degrees: float) -> np.ndarray:
    """3x3 RGB matrix rotating hue by ``degrees`` around the grey axis (YIQ)."""
    to_yiq = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
    a = np.deg2rad(degrees)
    rot = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    return (np.linalg.inv(to_yiq) @ rot @ to_yiq).astype(np.float32)


def _spectrum(t: np.ndarray) -> np.ndarray:
    """Rainbow colours for t in [0, 1] (red → violet), shape t.shape + (3,)."""
    a = 2 * np.pi * (0.8 * t)[..., None]
    phase = np.array([0.0, -2 * np.pi / 3, -4 * np.pi / 3], dtype=np.float32)
    return (0.5 + 0.5 * np.cos(a + phase)).astype(np.float32)


# ---------------------------------------------------------------------------
# the looks: f(x, rng, scale) with x float32 (H, W, 3) in [0, 1], scale = min(H, W) / 256


def _autumn(x: np.ndarray, rng: np.random.Generator, s: float) -> np.ndarray:
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    # foliage turns: green that dominates red and blue moves to orange-red
    green = np.clip(g - np.maximum(r, b), 0.0, 1.0)[..., None]
    y = x + green * np.array([1.3, -0.1, -0.5], dtype=np.float32)
    y = y * np.array([1.15, 0.92, 0.7], dtype=np.float32) + np.array([0.08, 0.03, 0.0], dtype=np.float32)
    y = _saturate(y, 1.35)
    return y + 0.015 * _smooth_noise(*x.shape[:2], rng, 24 * s)[..., None]


def _snowy(x: np.ndarray, rng: np.random.Generator, s: float) -> np.ndarray:
    h, w = x.shape[:2]
    y = _saturate(x, 0.35)
    y = 0.3 + 0.75 * y  # lift the shadows, brighten
    y = y * np.array([0.93, 0.98, 1.08], dtype=np.float32)
    flakes = (rng.random((h, w), dtype=np.float32) < 0.015).astype(np.float32)
    flakes = np.clip(_blur(flakes, 0.5 + 0.6 * s) * 3.0, 0.0, 1.0) if min(h, w) > 8 else flakes
    return y + (1.0 - y) * flakes[..., None]


def _watercolor(x: np.ndarray, rng: np.random.Generator, s: float) -> np.ndarray:
    h, w = x.shape[:2]
    b = _blur(_saturate(x, 1.25), 2.0 * s)
    q = np.round(b * 5.0) / 5.0  # pigment pools
    y = 0.5 * b + 0.5 * q
    y = y * (1.0 - 0.55 * _norm_edges(_edges(_luma(b)), 1.0))[..., None]  # darker rims
    y = 0.18 + 0.82 * y  # pale, washed colours
    paper = 1.0 + 0.05 * _smooth_noise(h, w, rng, 10 * s) + 0.02 * _grain(h, w, rng)
    return y * paper[..., None]


def _sunset(x: np.ndarray, rng: np.random.Generator, s: float) -> np.ndarray:
    h, w = x.shape[:2]
    t = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None, None]  # 0 at the top
    top = np.array([1.0, 0.5, 0.15], dtype=np.float32)
    low = np.array([0.55, 0.15, 0.45], dtype=np.float32)
    sky = top * (1 - t) + low * t
    weight = 0.65 - 0.4 * t
    base = x * np.array([1.05, 0.85, 0.7], dtype=np.float32)
    y = (1 - weight) * base + weight * _screen(base, sky) * sky * 1.4
    # the sun: a glow near the top centre
    yy, xx = np.ogrid[:h, :w]
    d2 = ((xx - w / 2) / max(w, 1)) ** 2 + ((yy - 0.15 * h) / max(h, 1)) ** 2
    glow = np.exp(-d2 / 0.02).astype(np.float32)[..., None]
    return _screen(y, glow * np.array([1.0, 0.75, 0.4], dtype=np.float32))


def _rainbow(x: np.ndarray, rng: np.random.Generator, s: float) -> np.ndarray:
    h, w = x.shape[:2]
    yy, xx = np.ogrid[:h, :w]
    d = np.sqrt(((xx - w / 2) / max(w, 1)) ** 2 + ((yy - 1.1 * h) / max(h, 1)) ** 2).astype(np.float32)
    t = (d - 0.55) / 0.45  # the arc: 0 outside-red .. 1 inside-violet
    arc = np.clip(1.0 - np.abs(2 * t - 1.0), 0.0, 1.0) ** 0.5
    colours = _spectrum(np.clip(t, 0.0, 1.0))
    wash = _spectrum(np.broadcast_to((xx / max(w, 1)).astype(np.float32), (h, w)))
    y = _saturate(x, 1.2)
    y = y * (1 - 0.2) + 0.2 * wash
    return y * (1 - 0.6 * arc[..., None]) + 0.6 * arc[..., None] * _screen(y, colours)


def _aurora(x: np.ndarray, rng: np.random.Generator, s: float) -> np.ndarray:
    h, w = x.shape[:2]
    y = _saturate(x, 0.6) * 0.35 * np.array([0.6, 0.8, 1.15], dtype=np.float32)  # night
    yy = np.arange(h, dtype=np.float32)[:, None] / max(h, 1)
    xx = np.arange(w, dtype=np.float32)[None, :] / max(w, 1)
    phase = 1.0 + 0.5 * float(rng.random())  # the seed moves the curtains a little
    out = y
    for k, (colour, height) in enumerate((((0.15, 1.0, 0.45), 0.42), ((0.65, 0.25, 1.0), 0.24))):
        centre = height + 0.06 * np.sin(2 * np.pi * (1.2 + 0.5 * k) * xx + phase + 2 * k)
        # curtains: a sharp lower edge, a long fade upwards, vertical rays
        up = np.where(yy < centre, 0.22, 0.05)
        band = np.exp(-(((yy - centre) / up) ** 2))
        rays = 0.7 + 0.3 * np.sin(2 * np.pi * 23 * xx + 3 * phase + k) * np.sin(2 * np.pi * 7 * xx + phase)
        out = _screen(out, (band * rays)[..., None] * np.array(colour, dtype=np.float32) * 0.85)
    return out


def _mosaic(x: np.ndarray, rng: np.random.Generator, s: float) -> np.ndarray:
    from PIL import Image

    h, w = x.shape[:2]
    cell = max(2, round(12 * s))
    nh, nw = -(-h // cell), -(-w // cell)
    small = np.asarray(
        Image.fromarray(_to_u8(x)).resize((nw, nh), Image.Resampling.BOX), dtype=np.float32
    ) * np.float32(1 / 255)
    small = _saturate(small, 1.3) + 0.05 * rng.standard_normal((nh, nw, 3), dtype=np.float32)
    tiles = np.repeat(np.repeat(small, cell, axis=0), cell, axis=1)[:h, :w]
    grout = (np.arange(h)[:, None] % cell == 0) | (np.arange(w)[None, :] % cell == 0)
    return np.where(grout[..., None], np.float32(0.22), tiles)


def _ukiyo_e(x: np.ndarray, rng: np.random.Generator, s: float) -> np.ndarray:
    h, w = x.shape[:2]
    b = _blur(x, 1.2 * s)
    b = _saturate(b, 1.4) * np.array([0.95, 0.93, 1.0], dtype=np.float32)
    y = np.round(np.clip(b, 0, 1) * 3.0) / 3.0  # flat woodblock colours
    ink = _norm_edges(_edges(_luma(b)), 1.0) > 0.45
    y = y * np.array([0.97, 0.9, 0.74], dtype=np.float32) + np.array([0.05, 0.04, 0.02], dtype=np.float32)
    y = np.where(ink[..., None], np.array([0.1, 0.1, 0.16], dtype=np.float32), y)  # outlines
    return y * (1.0 + 0.03 * _smooth_noise(h, w, rng, 6 * s))[..., None]


def _sketch(x: np.ndarray, rng: np.random.Generator, s: float) -> np.ndarray:
    h, w = x.shape[:2]
    lum = _luma(_blur(x, 0.8 * s))
    strokes = _norm_edges(_edges(lum), 1.2)
    # waxy diagonal crayon texture: random marks smeared along a diagonal
    marks = rng.random((h, w), dtype=np.float32)
    tex = np.zeros_like(marks)
    for k in range(6):
        tex += np.roll(marks, (k, k), axis=(0, 1))
    tex = np.clip((tex / 6.0 - 0.35) * 3.0, 0.0, 1.0)
    shade = np.clip(0.85 - lum, 0.0, 1.0) * 0.6  # hatch the darker areas
    alpha = np.clip(strokes * (0.55 + 0.45 * tex) + shade * tex, 0.0, 1.0)[..., None]
    crayon = np.clip(_saturate(x, 2.0) * 0.8, 0.0, 1.0)
    paper = np.array([0.97, 0.95, 0.89], dtype=np.float32) * (1.0 + 0.02 * _grain(h, w, rng))[..., None]
    return paper * (1 - alpha) + crayon * alpha


def _rain(x: np.ndarray, rng: np.random.Generator, s: float) -> np.ndarray:
    h, w = x.shape[:2]
    y = _saturate(x, 0.65) * 0.7 * np.array([0.86, 0.94, 1.08], dtype=np.float32)
    y = 0.05 + 0.85 * y  # flat, grey light
    drops = (rng.random((h, w), dtype=np.float32) < 0.006).astype(np.float32)
    streaks = np.zeros_like(drops)
    for k in range(max(3, round(14 * s))):
        streaks += np.roll(drops, (k, k // 4), axis=(0, 1))
    streaks = np.clip(streaks, 0.0, 1.0)[..., None]
    return y + streaks * 0.35 * np.array([0.8, 0.85, 0.95], dtype=np.float32)


def _fallback(prompt: str) -> Callable[[np.ndarray, np.random.Generator, float], np.ndarray]:
    """A colour grade and a mild texture derived from a stable hash of ``prompt``."""
    d = hashlib.sha256(_normalise(prompt).encode("utf-8")).digest()
    hue = 30.0 + 300.0 * d[0] / 255.0  # never close to the identity
    sat = 0.6 + 0.9 * d[1] / 255.0
    tint = np.array([0.85 + 0.3 * d[i] / 255.0 for i in (2, 3, 4)], dtype=np.float32)
    gamma = 0.75 + 0.5 * d[5] / 255.0
    grain = 0.02 + 0.03 * d[6] / 255.0
    matrix = _hue_matrix(hue)

    def look(x: np.ndarray, rng: np.random.Generator, s: float) -> np.ndarray:
        y = np.clip(_saturate(x @ matrix.T, sat) * tint, 0.0, 1.0) ** np.float32(gamma)
        h, w = x.shape[:2]
        return y + grain * _smooth_noise(h, w, rng, 4 * s)[..., None]

    return look


# Keywords (regular expressions on the lower-cased prompt), most specific
# first: "rainbow" must win over "rain".
_STYLES: tuple[tuple[str, str, Callable[[np.ndarray, np.random.Generator, float], np.ndarray]], ...] = (
    ("rainbow", r"rainbow", _rainbow),
    ("aurora", r"aurora|northern lights|borealis", _aurora),
    ("sunset", r"sunset|sunrise|dusk|golden hour", _sunset),
    ("snowy", r"\bsnow|\bwinter|\bfrost|\bblizzard", _snowy),
    ("autumn", r"\bautumn|\bfall\b|\bfoliage", _autumn),
    ("watercolor", r"water ?colou?r|aquarelle", _watercolor),
    ("mosaic", r"mosaic|\btiles?\b", _mosaic),
    ("ukiyo-e", r"ukiyo|woodblock|hokusai", _ukiyo_e),
    ("sketch", r"sketch|crayon|pencil|drawing", _sketch),
    ("rain", r"\brain(?!bow)|\bstorm|\bdrizzle", _rain),
)

#: The named looks, in matching order; any other prompt gets a hashed grade.
PREVIEW_STYLES: tuple[str, ...] = tuple(name for name, _, _ in _STYLES)


def _normalise(prompt: str) -> str:
    return " ".join(prompt.lower().split())


def preview_style(prompt: str) -> str | None:
    """The named look a prompt maps to (e.g. ``"a snowy day"`` → ``"snowy"``), or
    ``None`` when the prompt gets the hashed fallback grade."""
    text = _normalise(prompt)
    for name, pattern, _ in _STYLES:
        if re.search(pattern, text):
            return name
    return None


def apply_preview(image: np.ndarray, prompt: str, seed: int) -> np.ndarray:
    """The preview edit of one uint8 (H, W, 3) image; same shape and dtype out.

    Deterministic in (image, prompt, seed); the seed only moves textures.
    """
    style = preview_style(prompt)
    look = _fallback(prompt) if style is None else next(f for n, _, f in _STYLES if n == style)
    x = image.astype(np.float32) * np.float32(1 / 255)
    scale = max(min(image.shape[:2]), 1) / 256.0
    return _to_u8(look(x, np.random.default_rng(int(seed)), scale))


class PreviewEditor:
    """Weight-free stand-in for a diffusion editor (see the module docstring).

    Args:
        spec: ``EditorSpec(name="preview", max_retries=...)``: how many times a
            degenerate output (e.g. from an all-black input) is remade with a
            new seed before it is reported. The preview has no model, device,
            precision or diffusion settings.
        notice: why this editor is in use, when it replaced a diffusion model
            that could not be loaded (``load_editor("auto", fallback=True)`` sets it).
    """

    name = "preview"
    is_diffusion = False
    #: The plain description shown wherever the editor is named.
    SUMMARY = "preview (weight-free colour/texture filters, not a diffusion model)"
    #: Its settings: retries of a blank output, and images per call (the unit an export hands it).
    defaults = {"batch_size": 8, "max_retries": 2}
    presets: dict[str, dict[str, Any]] = {}

    def __init__(self, spec: EditorSpec | None = None, *, notice: str | None = None) -> None:
        from .loading import resolve_spec

        self.spec = resolve_spec(type(self), spec)
        self.notice = notice

    def __repr__(self) -> str:
        return f"PreviewEditor(max_retries={self.max_retries})"

    @property
    def device(self) -> str:
        return "cpu"

    @property
    def max_retries(self) -> int:
        return int(self.spec.max_retries)

    def load(self) -> None:
        """Nothing to load; here so every editor can be loaded the same way."""

    def with_settings(self, **changes: Any) -> "PreviewEditor":
        """The preview with other settings (``max_retries``, ``batch_size``)."""
        return PreviewEditor(self.spec.replace(**changes), notice=self.notice)

    def describe(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "name": self.name,
            "summary": self.SUMMARY,
            "is_diffusion": False,
            "model": None,
            "device": "cpu",
        }
        if self.notice:
            d["notice"] = self.notice
        return d

    def edit(
        self,
        requests: Sequence[EditRequest],
        *,
        progress: ProgressFn | None = None,
        cancel: CancelToken | None = None,
    ) -> list[EditResult]:
        """Edit every request (one progress unit per image); results in order."""

        def generate(images: list[np.ndarray], prompts: list[str], seeds: list[int], step: Callable[[], None]):
            outs = []
            for image, prompt, seed in zip(images, prompts, seeds):
                outs.append(apply_preview(image, prompt, seed))
                step()
            return outs

        return edit_in_batches(
            requests,
            generate,
            batch_size=1,  # one image at a time (``spec.batch_size`` is what an export hands it at once)
            units_per_batch=1,
            max_retries=self.max_retries,
            progress=progress,
            cancel=cancel,
        )
