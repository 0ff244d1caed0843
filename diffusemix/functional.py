"""The maths of DiffuseMix as pure functions over numpy arrays.

Symbols (see README):
    I  input      uint8 (H, W, 3)
    Î  generated  uint8 (H, W, 3)
    M  mask       float32 (H, W) in [0, 1]; 1 where the input is kept
    H  hybrid     M ⊙ I + (1 − M) ⊙ Î
    F  fractal    uint8 (H, W, 3)
    A  augmented  (1 − λ) H + λ F

Two arithmetics make H and A from uint8 images (``ARITHMETICS``):

* ``rounded`` (:func:`hybrid`, :func:`blend`, :func:`mix`): float32, A from
  the unrounded H, each result rounded to the nearest grey level.
* ``reference`` (:func:`hybrid_reference`, :func:`blend_reference`,
  :func:`mix_reference`): the authors' code bit for bit. I and Î as float32
  / 255, the weight of Î in float64, H = (1 − m) I + m Î times 255, clipped
  and truncated to uint8; then A = (1 − λ) H + λ F in float32 from that uint8
  H, clipped and truncated. It is up to one grey level darker than rounding
  and never brighter.

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
    "Arithmetic",
    "LAYOUTS",
    "MASK_KINDS",
    "ARITHMETICS",
    "make_mask",
    "generated_weight",
    "hybrid",
    "blend",
    "mix",
    "hybrid_reference",
    "blend_reference",
    "mix_reference",
    "degenerate_reason",
]

#: Where the input I is kept: ``left`` keeps the left half of I and takes the
#: right half from Î (the reference code's "horizontal"); ``top`` keeps the top
#: half (the reference code's "vertical").
Layout = Literal["left", "right", "top", "bottom"]
#: ``binary``: the paper's hard 0/1 mask. ``linspace``: the authors' ramp
#: (``np.linspace(0, 1, seam)`` across ``seam`` pixels; 20 at 256 px), so the
#: input's weight runs 1, (seam−2)/(seam−1), ..., 0. ``ramp``: a centred ramp
#: with ``seam`` mixed pixels, clip(0.5 + (n/2 − (x + 0.5)) / seam, 0, 1),
#: which equals ``linspace`` with one pixel more.
MaskKind = Literal["binary", "linspace", "ramp"]
#: ``reference``: the authors' arithmetic (truncation; A from the uint8 H).
#: ``rounded``: float32, A from the unrounded H, rounded (see the module text).
Arithmetic = Literal["reference", "rounded"]

LAYOUTS: tuple[str, ...] = get_args(Layout)
MASK_KINDS: tuple[str, ...] = get_args(MaskKind)
ARITHMETICS: tuple[str, ...] = get_args(Arithmetic)


def _check_layout(layout: str) -> None:
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}; got {layout!r}")


def _linspace_weight(n: int, seam: int) -> np.ndarray:
    """The authors' weight of Î along the axis (float64), for ``seam`` >= 1.

    Their ``combine_images``: zeros for the first ``n//2 − seam//2`` pixels,
    ``np.linspace(0, 1, seam)``, then ones. Their code only runs when that
    adds up to ``n`` (even n, even seam); here pixel x takes
    ``linspace[x − (n//2 − seam//2)]`` inside the ramp, 0 before it and 1
    after it, which is theirs where theirs runs and is defined for every n
    (a ramp wider than the image is cut at its edges).
    """
    start = n // 2 - seam // 2
    out = np.zeros(n, dtype=np.float64)
    ramp = np.linspace(0, 1, seam)
    lo, hi = max(start, 0), min(start + seam, n)
    if hi > lo:
        out[lo:hi] = ramp[lo - start : hi - start]
    out[max(start + seam, 0) :] = 1.0
    return out


def _profile(n: int, kind: str, seam: float) -> np.ndarray:
    """Mask values (weight of I, float64) along the axis that crosses the seam, keeping the first half.

    For ``n`` pixels with centres at ``x + 0.5``, the seam is at ``n / 2``.
    ``binary`` keeps the first ``n // 2`` pixels (for odd n the middle pixel
    goes to Î, so the kept part is mirror-symmetric between opposite layouts).
    ``ramp`` is ``clip(0.5 + (n/2 − (x + 0.5)) / seam, 0, 1)``: 1 before the
    seam, 0 after it, linear and strictly decreasing across it.
    ``linspace`` is 1 minus the authors' weight of Î (:func:`_linspace_weight`).
    """
    x = np.arange(n, dtype=np.float64)
    if kind == "binary" or seam == 0:
        return (x < n // 2).astype(np.float64)
    if kind == "linspace":
        return 1.0 - _linspace_weight(n, int(seam))
    return np.clip(0.5 + (n / 2.0 - (x + 0.5)) / float(seam), 0.0, 1.0)


@lru_cache(maxsize=64)
def _cached_weight(n: int, layout: str, kind: str, seam: float) -> np.ndarray:
    """The weight m of Î (float64, read-only) along the axis crossing the seam, in image order."""
    if kind == "linspace" and seam > 0:
        m = _linspace_weight(n, int(seam))
    else:
        m = 1.0 - _profile(n, kind, seam)
    if layout in ("right", "bottom"):
        m = m[::-1]
    m = np.ascontiguousarray(m)
    m.setflags(write=False)
    return m


@lru_cache(maxsize=64)
def _cached_mask(height: int, width: int, layout: str, kind: str, seam: float) -> np.ndarray:
    if layout in ("left", "right"):
        p = _profile(width, kind, seam).astype(np.float32)
        if layout == "right":
            p = p[::-1]
        m = np.broadcast_to(p[None, :], (height, width))
    else:
        p = _profile(height, kind, seam).astype(np.float32)
        if layout == "bottom":
            p = p[::-1]
        m = np.broadcast_to(p[:, None], (height, width))
    m = np.ascontiguousarray(m, dtype=np.float32)
    m.setflags(write=False)
    return m


def _check_kind_seam(kind: str, seam: float) -> float:
    """The seam as the cache key uses it (0 for ``binary``), after checking both."""
    if kind not in MASK_KINDS:
        raise ValueError(f"mask kind must be one of {', '.join(MASK_KINDS)}; got {kind!r}")
    if not np.isfinite(seam) or seam < 0:
        raise ValueError(f"seam must be a width in pixels >= 0; got {seam!r}")
    if kind == "linspace" and float(seam) != int(seam):
        raise ValueError(f"seam of a linspace mask must be a whole number of pixels; got {seam!r}")
    return 0.0 if kind == "binary" else float(seam)


def make_mask(
    height: int,
    width: int,
    layout: Layout,
    *,
    kind: MaskKind = "linspace",
    seam: float = 20,
) -> np.ndarray:
    """The mask M for one layout.

    Args:
        height, width: size in pixels (any size >= 1, odd sizes included).
        layout: where the input is kept (``left``, ``right``, ``top``, ``bottom``).
        kind: ``binary`` (exactly 0/1), ``linspace`` (the authors' ramp) or
            ``ramp`` (the centred ramp); see :data:`MaskKind`.
        seam: ramp width in pixels (ignored for ``binary``; 0 gives ``binary``).

    Returns:
        float32 array of shape (height, width) in [0, 1], 1 where I is kept.
        The array is cached and read-only; copy it before writing.
    """
    _check_layout(layout)
    seam = _check_kind_seam(kind, seam)
    if int(height) < 1 or int(width) < 1:
        raise ValueError(f"mask size must be at least 1x1; got {height}x{width}")
    return _cached_mask(int(height), int(width), layout, kind, seam)


def generated_weight(
    height: int, width: int, layout: Layout, *, kind: MaskKind = "linspace", seam: float = 20
) -> np.ndarray:
    """The weight m of Î along the axis that crosses the seam, as the reference arithmetic uses it.

    Returns:
        float64, read-only, of length ``width`` (layouts left/right) or
        ``height`` (top/bottom), in image order; ``M = 1 − m`` broadcast over
        the other axis. For ``linspace`` these are the authors' exact values
        (``np.linspace`` output), not ``1 − float32(M)``.
    """
    _check_layout(layout)
    seam = _check_kind_seam(kind, seam)
    if int(height) < 1 or int(width) < 1:
        raise ValueError(f"mask size must be at least 1x1; got {height}x{width}")
    n = int(width) if layout in ("left", "right") else int(height)
    return _cached_weight(n, layout, kind, seam)


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


# ---------------------------------------------------------------------------
# the authors' arithmetic, bit for bit
# ---------------------------------------------------------------------------

#: float64(float32(v) / 255) * 255 truncated, for v = 0..255: what the
#: reference arithmetic makes of a pixel whose mask weight is exactly 0 or 1.
_PURE = (np.arange(256, dtype=np.float32) / np.float32(255.0)).astype(np.float64) * 255
_PURE_LUT = np.clip(_PURE, 0, 255).astype(np.uint8)
_PURE_IS_IDENTITY = bool(np.array_equal(_PURE_LUT, np.arange(256)))


def _check_uint8(*arrays: np.ndarray) -> None:
    for a in arrays:
        if a.dtype != np.uint8:
            raise ValueError(f"the reference arithmetic works on uint8 images; got {a.dtype}")


def _runs(m: np.ndarray) -> list[tuple[int, int, int]]:
    """(start, stop, class) runs along m: class 0 where m == 0, 1 where m == 1, 2 in between."""
    cls = np.where(m == 0.0, 0, np.where(m == 1.0, 1, 2))
    edges = np.flatnonzero(np.diff(cls)) + 1
    bounds = [0, *edges.tolist(), len(m)]
    return [(a, b, int(cls[a])) for a, b in zip(bounds[:-1], bounds[1:])]


def hybrid_reference(
    image: np.ndarray,
    generated: np.ndarray,
    layout: Layout,
    *,
    kind: MaskKind = "linspace",
    seam: float = 20,
) -> np.ndarray:
    """H with the authors' arithmetic: ``uint8(clip(((1 − m) I/255 + m Î/255) · 255))``.

    I and Î become float32 / 255, the weight m of Î is float64
    (:func:`generated_weight`), the sum is float64, and the cast truncates.
    Pixels where m is exactly 0 or 1 are copied through a 256-entry table
    (the identity on IEEE machines); only the seam is computed in float64.

    Args:
        image: I, uint8 (H, W, 3).
        generated: Î, uint8, same shape.
        layout, kind, seam: the mask, as for :func:`make_mask`.

    Returns:
        H, uint8 (H, W, 3), equal to the authors' ``combine_images`` output.
    """
    _check_pair(image, generated, "image and generated")
    _check_uint8(image, generated)
    h, w = image.shape[:2]
    m = generated_weight(h, w, layout, kind=kind, seam=seam)
    out = np.empty_like(image)
    # work along axis 1 (columns); rows of a top/bottom layout become columns of a transposed view
    i_v, g_v, o_v = (a if layout in ("left", "right") else a.transpose(1, 0, 2) for a in (image, generated, out))
    for a, b, cls in _runs(m):
        if cls < 2:
            src = (i_v if cls == 0 else g_v)[:, a:b]
            o_v[:, a:b] = src if _PURE_IS_IDENTITY else _PURE_LUT[src]
            continue
        mm = m[None, a:b, None]
        o = i_v[:, a:b].astype(np.float32) / np.float32(255.0)
        g = g_v[:, a:b].astype(np.float32) / np.float32(255.0)
        mixed = (1 - mm) * o + mm * g
        o_v[:, a:b] = np.clip(mixed * 255, 0, 255).astype(np.uint8)
    return out


@lru_cache(maxsize=16)
def _blend_table(lam: float) -> np.ndarray:
    """A for every (H, F) pair, index ``H * 256 + F``: float32 (1 − λ) H + λ F, clipped, truncated."""
    v = np.arange(256, dtype=np.float32)
    a = np.float32(1.0 - lam) * v[:, None] + np.float32(lam) * v[None, :]
    table = np.clip(a, 0, 255).astype(np.uint8).ravel()
    table.setflags(write=False)
    return table


def blend_reference(hybrid_image: np.ndarray, fractal: np.ndarray, lam: float) -> np.ndarray:
    """A with the authors' arithmetic: ``uint8(clip((1 − λ) · float32(H) + λ · float32(F)))``.

    The products and the sum are float32 (λ and 1 − λ rounded to float32, as
    numpy does for a Python float times a float32 array) and the cast
    truncates. Computed through a 65,536-entry table per λ.

    Args:
        hybrid_image: H, uint8 (H, W, 3) (the truncated uint8 H, as the authors blend it).
        fractal: F, uint8, same shape.
        lam: λ in [0, 1].

    Returns:
        A, uint8 (H, W, 3).
    """
    _check_pair(hybrid_image, fractal, "hybrid and fractal")
    _check_uint8(hybrid_image, fractal)
    _check_lam(lam)
    idx = hybrid_image.astype(np.uint16)
    idx <<= 8
    idx |= fractal
    return _blend_table(float(lam))[idx]


def mix_reference(
    image: np.ndarray,
    generated: np.ndarray,
    fractal: np.ndarray,
    layout: Layout,
    lam: float,
    *,
    kind: MaskKind = "linspace",
    seam: float = 20,
) -> tuple[np.ndarray, np.ndarray]:
    """H and A with the authors' arithmetic (:func:`hybrid_reference`, then :func:`blend_reference`).

    Returns:
        (H, A), uint8 (H, W, 3) each, equal to the reference code's
        ``combine_images`` and ``blend_images_with_resize`` outputs for the
        same I, Î, F and mask.
    """
    _check_pair(image, fractal, "image and fractal")
    _check_lam(lam)
    hyb = hybrid_reference(image, generated, layout, kind=kind, seam=seam)
    return hyb, blend_reference(hyb, fractal, lam)


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
