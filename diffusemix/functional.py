"""The maths of DiffuseMix as pure functions over numpy arrays.

Symbols (see README):
    I  input      uint8 (H, W, 3)
    Î  generated  uint8 (H, W, 3)
    M  mask       float32 (H, W) in [0, 1]; 1 where the input is kept
    H  hybrid     M ⊙ I + (1 − M) ⊙ Î
    F  fractal    uint8 (H, W, 3)
    A  augmented  (1 − λ) H + λ F

Nothing here knows about files, models or the app. Every function is
deterministic; randomness is drawn elsewhere (``recipe.draw``).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal, get_args

import numpy as np

__all__ = [
    "Layout",
    "MaskKind",
    "LAYOUTS",
    "MASK_KINDS",
    "make_mask",
    "hybrid",
    "blend",
    "mix",
    "degenerate_reason",
]

#: Where the input I is kept: ``left`` keeps the left half of I and takes the
#: right half from Î (the reference code's "horizontal"); ``top`` keeps the top
#: half (the reference code's "vertical").
Layout = Literal["left", "right", "top", "bottom"]
#: ``binary``: the paper's hard 0/1 mask. ``ramp``: a linear seam ``seam``
#: pixels wide centred on the midline (the reference code's 20 px at 256).
MaskKind = Literal["binary", "ramp"]

LAYOUTS: tuple[str, ...] = get_args(Layout)
MASK_KINDS: tuple[str, ...] = get_args(MaskKind)


def _check_layout(layout: str) -> None:
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}; got {layout!r}")


def _profile(n: int, kind: str, seam: float) -> np.ndarray:
    """Mask values along the axis that crosses the seam, keeping the first half.

    For ``n`` pixels with centres at ``x + 0.5``, the seam is at ``n / 2``.
    ``binary`` keeps the first ``n // 2`` pixels (for odd n the middle pixel
    goes to Î, so the kept part is mirror-symmetric between opposite layouts).
    ``ramp`` is ``clip(0.5 + (n/2 − (x + 0.5)) / seam, 0, 1)``: 1 before the
    seam, 0 after it, linear and strictly decreasing across it.
    """
    x = np.arange(n, dtype=np.float64)
    if kind == "binary" or seam == 0:
        return (x < n // 2).astype(np.float32)
    return np.clip(0.5 + (n / 2.0 - (x + 0.5)) / float(seam), 0.0, 1.0).astype(np.float32)


@lru_cache(maxsize=64)
def _cached_mask(height: int, width: int, layout: str, kind: str, seam: float) -> np.ndarray:
    if layout in ("left", "right"):
        p = _profile(width, kind, seam)
        if layout == "right":
            p = p[::-1]
        m = np.broadcast_to(p[None, :], (height, width))
    else:
        p = _profile(height, kind, seam)
        if layout == "bottom":
            p = p[::-1]
        m = np.broadcast_to(p[:, None], (height, width))
    m = np.ascontiguousarray(m, dtype=np.float32)
    m.setflags(write=False)
    return m


def make_mask(
    height: int,
    width: int,
    layout: Layout,
    *,
    kind: MaskKind = "ramp",
    seam: float = 20,
) -> np.ndarray:
    """The mask M for one layout.

    Args:
        height, width: size in pixels (any size >= 1, odd sizes included).
        layout: where the input is kept (``left``, ``right``, ``top``, ``bottom``).
        kind: ``binary`` (exactly 0/1) or ``ramp`` (linear seam).
        seam: ramp width in pixels (ignored for ``binary``; 0 gives ``binary``).

    Returns:
        float32 array of shape (height, width) in [0, 1], 1 where I is kept.
        The array is cached and read-only; copy it before writing.
    """
    _check_layout(layout)
    if kind not in MASK_KINDS:
        raise ValueError(f"mask kind must be one of {', '.join(MASK_KINDS)}; got {kind!r}")
    if int(height) < 1 or int(width) < 1:
        raise ValueError(f"mask size must be at least 1x1; got {height}x{width}")
    if not np.isfinite(seam) or seam < 0:
        raise ValueError(f"seam must be a width in pixels >= 0; got {seam!r}")
    return _cached_mask(int(height), int(width), layout, kind, float(seam) if kind == "ramp" else 0.0)


def _check_pair(a: np.ndarray, b: np.ndarray, names: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{names} must have the same shape; got {a.shape} and {b.shape}")
    if a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"images must be (H, W, 3) arrays; got shape {a.shape}")


def _check_mask(mask: np.ndarray, image: np.ndarray) -> None:
    if mask.shape != image.shape[:2]:
        raise ValueError(f"mask shape {mask.shape} does not match image size {image.shape[:2]}")


def _check_lam(lam: float) -> None:
    if not (0.0 <= float(lam) <= 1.0):
        raise ValueError(f"lam (the fractal blend weight λ) must be in [0, 1]; got {lam!r}")


def _to_dtype(x: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Round float32 results back to ``dtype`` (uint8: round half up, clip)."""
    if np.issubdtype(dtype, np.integer):
        x += 0.5
        np.clip(x, 0, 255, out=x)
        return x.astype(dtype)
    return x.astype(dtype, copy=False)


def hybrid(image: np.ndarray, generated: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """H = M ⊙ I + (1 − M) ⊙ Î.

    Args:
        image: I, (H, W, 3) uint8 (or float in [0, 1]).
        generated: Î, same shape and dtype as ``image``.
        mask: M, (H, W) float in [0, 1].

    Returns:
        H with the shape and dtype of ``image`` (uint8 results are rounded).
    """
    _check_pair(image, generated, "image and generated")
    _check_mask(mask, image)
    # Î + M (I − Î): one multiply, two adds, all in float32.
    out = image.astype(np.float32)
    g = generated.astype(np.float32)
    out -= g
    out *= mask[:, :, None]
    out += g
    return _to_dtype(out, image.dtype)


def blend(hybrid_image: np.ndarray, fractal: np.ndarray, lam: float) -> np.ndarray:
    """A = (1 − λ) H + λ F.

    Args:
        hybrid_image: H, (H, W, 3) uint8 (or float in [0, 1]).
        fractal: F, same shape and dtype.
        lam: λ in [0, 1]; 0 gives H back, 1 gives F.

    Returns:
        A with the shape and dtype of ``hybrid_image``.
    """
    _check_pair(hybrid_image, fractal, "hybrid and fractal")
    _check_lam(lam)
    lam = float(lam)
    if lam == 0.0:
        return hybrid_image.copy()
    if lam == 1.0:
        return fractal.astype(hybrid_image.dtype, copy=True)
    out = hybrid_image.astype(np.float32)
    out *= 1.0 - lam
    f = fractal.astype(np.float32)
    f *= lam
    out += f
    return _to_dtype(out, hybrid_image.dtype)


def mix(
    image: np.ndarray,
    generated: np.ndarray,
    fractal: np.ndarray,
    mask: np.ndarray,
    lam: float,
) -> tuple[np.ndarray, np.ndarray]:
    """H and A in one pass: the fast path used by the engine.

    A is computed from the unrounded H, so it may differ from
    ``blend(hybrid(...), ...)`` by at most one grey level.

    Returns:
        (H, A), both with the shape and dtype of ``image``.
    """
    _check_pair(image, generated, "image and generated")
    _check_pair(image, fractal, "image and fractal")
    _check_mask(mask, image)
    _check_lam(lam)
    lam = float(lam)
    h = image.astype(np.float32)
    g = generated.astype(np.float32)
    h -= g
    h *= mask[:, :, None]
    h += g  # h = H (float)
    a = np.multiply(h, 1.0 - lam, out=g)  # reuse Î's buffer for A
    if lam:
        a += lam * fractal.astype(np.float32)
    if np.issubdtype(image.dtype, np.integer):
        return _to_dtype(h, image.dtype), _to_dtype(a, image.dtype)
    return h.astype(image.dtype, copy=False), a.astype(image.dtype, copy=False)


def degenerate_reason(
    image: np.ndarray,
    *,
    dark: int = 12,
    bright: int = 243,
    coverage: float = 0.98,
    min_std: float = 2.0,
) -> str | None:
    """Why a generated image is unusable, or ``None`` if it is fine.

    A diffusion model sometimes returns a blank image (a safety filter's black
    output, a collapsed tiny input). Such an Î must be retried or reported,
    never mixed into a dataset silently.

    Args:
        image: (H, W, 3) or (H, W) uint8.
        dark, bright: grey levels (of luma) at or below / at or above which a
            pixel counts as black / white.
        coverage: fraction of pixels that must be black (white) for the image
            to be called all black (all white).
        min_std: luma standard deviation (grey levels) under which the image
            is near-constant.

    Returns:
        ``"all black"``, ``"all white"``, ``"near-constant"`` or ``None``.
    """
    if image.ndim not in (2, 3) or image.size == 0:
        raise ValueError(f"expected an (H, W, 3) or (H, W) image; got shape {image.shape}")
    x = image.astype(np.float32)
    if np.issubdtype(image.dtype, np.floating):
        x = x * 255.0
    luma = x if x.ndim == 2 else x[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    n = luma.size
    if np.count_nonzero(luma <= dark) >= coverage * n:
        return "all black"
    if np.count_nonzero(luma >= bright) >= coverage * n:
        return "all white"
    if float(luma.std()) < min_std:
        return "near-constant"
    return None
