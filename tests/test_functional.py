"""The maths: masks, hybrid, blend, mix and the degenerate check."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from diffusemix.functional import (
    LAYOUTS,
    MASK_KINDS,
    blend,
    degenerate_reason,
    generated_weight,
    hybrid,
    make_mask,
    mix,
)

SIZES = [(256, 256), (33, 17), (17, 33), (1, 1), (2, 3), (64, 48)]


# --- an independent reference, written straight from the equations ---------


def ref_mask(h: int, w: int, layout: str, kind: str, seam: float) -> np.ndarray:
    """Per pixel, with Python loops: M = 1 where I is kept."""
    m = np.zeros((h, w), dtype=np.float64)
    for y in range(h):
        for x in range(w):
            # distance of the pixel centre from the midline, positive into the kept half
            if layout == "left":
                d = w / 2 - (x + 0.5)
                n = w
                idx = x
            elif layout == "right":
                d = (x + 0.5) - w / 2
                n = w
                idx = w - 1 - x
            elif layout == "top":
                d = h / 2 - (y + 0.5)
                n = h
                idx = y
            else:
                d = (y + 0.5) - h / 2
                n = h
                idx = h - 1 - y
            if kind == "binary" or seam == 0:
                m[y, x] = 1.0 if idx < n // 2 else 0.0
            elif kind == "linspace":
                # the authors: weight of Î 0 before the ramp, k/(seam-1) on it, 1 after
                t = idx - (n // 2 - seam // 2)
                if t < 0:
                    m[y, x] = 1.0
                elif t < seam:
                    m[y, x] = 1.0 - (t / (seam - 1) if seam > 1 else 0.0)
                else:
                    m[y, x] = 0.0
            else:
                m[y, x] = min(1.0, max(0.0, 0.5 + d / seam))
    return m


def ref_augmented(i, g, f, m, lam):
    i, g, f = (a.astype(np.float64) for a in (i, g, f))
    hyb = m[..., None] * i + (1 - m[..., None]) * g
    return hyb, (1 - lam) * hyb + lam * f


def rand_img(rng, h, w):
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


# --- masks ------------------------------------------------------------------


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("kind", MASK_KINDS)
@pytest.mark.parametrize("h,w", SIZES)
def test_mask_matches_reference(layout, kind, h, w):
    m = make_mask(h, w, layout, kind=kind, seam=5)
    assert m.shape == (h, w) and m.dtype == np.float32
    np.testing.assert_allclose(m, ref_mask(h, w, layout, kind, 5), atol=1e-6)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("h,w", SIZES)
def test_binary_mask_is_exactly_zero_one_and_keeps_the_intended_half(layout, h, w):
    m = make_mask(h, w, layout, kind="binary")
    assert set(np.unique(m)) <= {0.0, 1.0}
    kept = np.argwhere(m == 1.0)
    n_axis = w if layout in ("left", "right") else h
    other = h if layout in ("left", "right") else w
    assert len(kept) == (n_axis // 2) * other
    if len(kept):
        ys, xs = kept[:, 0], kept[:, 1]
        if layout == "left":
            assert xs.max() < w // 2 + (w % 2 == 0) * 0 and xs.max() == w // 2 - 1
        if layout == "right":
            assert xs.min() == w - w // 2
        if layout == "top":
            assert ys.max() == h // 2 - 1
        if layout == "bottom":
            assert ys.min() == h - h // 2


@pytest.mark.parametrize("h,w", SIZES)
def test_opposite_layouts_are_mirror_images(h, w):
    for kind in MASK_KINDS:
        np.testing.assert_array_equal(make_mask(h, w, "right", kind=kind), make_mask(h, w, "left", kind=kind)[:, ::-1])
        np.testing.assert_array_equal(make_mask(h, w, "bottom", kind=kind), make_mask(h, w, "top", kind=kind)[::-1, :])


def test_even_size_halves_cover_every_pixel_once():
    for kind in MASK_KINDS:
        left = make_mask(64, 64, "left", kind=kind, seam=20)
        right = make_mask(64, 64, "right", kind=kind, seam=20)
        np.testing.assert_allclose(left + right, 1.0, atol=1e-6)
        top = make_mask(64, 64, "top", kind=kind, seam=20)
        bottom = make_mask(64, 64, "bottom", kind=kind, seam=20)
        np.testing.assert_allclose(top + bottom, 1.0, atol=1e-6)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_ramp_is_monotone_across_its_seam_and_zero_one_outside(layout):
    seam = 20
    m = make_mask(256, 256, layout, kind="ramp", seam=seam)
    # the profile along the axis that crosses the seam, walking away from the kept side
    profile = {"left": m[0, :], "right": m[0, ::-1], "top": m[:, 0], "bottom": m[::-1, 0]}[layout]
    assert np.all(np.diff(profile) <= 0)
    inner = (profile > 0) & (profile < 1)
    assert inner.sum() == seam  # exactly `seam` pixels on the ramp
    idx = np.flatnonzero(inner)
    assert idx[0] == 128 - seam // 2 and idx[-1] == 128 + seam // 2 - 1
    assert np.all(np.diff(profile[idx]) < 0)  # strictly decreasing on the seam
    assert np.all(profile[: idx[0]] == 1.0) and np.all(profile[idx[-1] + 1 :] == 0.0)
    # constant along the other axis
    assert np.all(m == (m[:1, :] if layout in ("left", "right") else m[:, :1]))


@pytest.mark.parametrize("layout", LAYOUTS)
def test_linspace_is_the_authors_ramp_at_256(layout):
    # input weight 1, 18/19, ..., 1/19, 0 on pixels 118..137 (counted from the kept side)
    m = make_mask(256, 256, layout, kind="linspace", seam=20).astype(np.float64)
    profile = {"left": m[0, :], "right": m[0, ::-1], "top": m[:, 0], "bottom": m[::-1, 0]}[layout]
    np.testing.assert_allclose(profile[118:138], 1 - np.arange(20) / 19, atol=1e-7)
    assert np.all(profile[:119] == 1.0) and np.all(profile[137:] == 0.0)
    # it is the centred ramp with one pixel less
    np.testing.assert_allclose(m, make_mask(256, 256, layout, kind="ramp", seam=19), atol=1e-6)


def test_generated_weight_holds_the_authors_float64_values():
    m = generated_weight(256, 256, "left", kind="linspace", seam=20)
    assert m.dtype == np.float64 and m.shape == (256,)
    np.testing.assert_array_equal(m[118:138], np.linspace(0, 1, 20))  # exactly, not via float32
    np.testing.assert_array_equal(generated_weight(256, 64, "bottom", kind="linspace", seam=20), m[::-1])
    np.testing.assert_allclose(1 - m, make_mask(8, 256, "left", kind="linspace", seam=20)[0], atol=1e-7)


@pytest.mark.parametrize("n,seam", [(33, 20), (256, 19), (17, 30), (5, 1)])
def test_linspace_at_sizes_where_the_authors_code_crashes(n, seam):
    # their zeros + linspace + ones only add up to n for even n and even seam
    m = make_mask(n, n, "left", kind="linspace", seam=seam)[0].astype(np.float64)
    start = n // 2 - seam // 2
    ramp = np.linspace(0, 1, seam)
    want = np.array([0.0 if x < start else (ramp[x - start] if x < start + seam else 1.0) for x in range(n)])
    np.testing.assert_allclose(m, 1 - want, atol=1e-7)
    assert np.all(np.diff(m) <= 0)


def test_ramp_with_zero_seam_is_binary():
    np.testing.assert_array_equal(make_mask(33, 17, "top", kind="ramp", seam=0), make_mask(33, 17, "top", kind="binary"))


def test_mask_is_cached_and_read_only():
    a = make_mask(40, 40, "left", kind="ramp", seam=10)
    assert a is make_mask(40, 40, "left", kind="ramp", seam=10)
    with pytest.raises(ValueError):
        a[0, 0] = 0.5


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(height=8, width=8, layout="middle"), "layout must be one of left, right, top, bottom; got 'middle'"),
        (dict(height=8, width=8, layout="left", kind="soft"), "mask kind must be one of binary, linspace, ramp; got 'soft'"),
        (dict(height=0, width=8, layout="left"), "at least 1x1; got 0x8"),
        (dict(height=8, width=8, layout="left", seam=-1), "seam must be a width in pixels >= 0; got -1"),
        (dict(height=8, width=8, layout="left", seam=float("nan")), "seam must be"),
        (dict(height=8, width=8, layout="left", kind="linspace", seam=2.5), "whole number of pixels; got 2.5"),
    ],
)
def test_mask_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_mask(**kwargs)


# --- hybrid, blend, mix ---------------------------------------------------------


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("kind", MASK_KINDS)
@pytest.mark.parametrize("h,w", [(256, 256), (33, 17)])
def test_hybrid_blend_mix_match_reference_within_one_grey_level(layout, kind, h, w):
    rng = np.random.default_rng(1)
    i, g, f = rand_img(rng, h, w), rand_img(rng, h, w), rand_img(rng, h, w)
    m = make_mask(h, w, layout, kind=kind, seam=20 if h >= 20 else 4)
    ref_h, ref_a = ref_augmented(i, g, f, m.astype(np.float64), 0.2)
    hh = hybrid(i, g, m)
    assert hh.dtype == np.uint8 and hh.shape == i.shape
    assert np.abs(hh - ref_h).max() <= 0.5 + 1e-4  # rounded, never truncated
    aa = blend(hh, f, 0.2)
    assert np.abs(aa - ref_a).max() <= 1.0
    mh, ma = mix(i, g, f, m, 0.2)
    np.testing.assert_array_equal(mh, hh)
    assert np.abs(ma - ref_a).max() <= 0.5 + 1e-4


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("h,w", [(32, 32), (33, 17)])
def test_binary_hybrid_keeps_exactly_the_intended_half_of_I(layout, h, w):
    rng = np.random.default_rng(2)
    i, g = rand_img(rng, h, w), rand_img(rng, h, w)
    m = make_mask(h, w, layout, kind="binary")
    hh = hybrid(i, g, m)
    kept = m.astype(bool)
    np.testing.assert_array_equal(hh[kept], i[kept])
    np.testing.assert_array_equal(hh[~kept], g[~kept])


def test_blend_identities():
    rng = np.random.default_rng(3)
    hh, f = rand_img(rng, 33, 17), rand_img(rng, 33, 17)
    np.testing.assert_array_equal(blend(hh, f, 0.0), hh)
    np.testing.assert_array_equal(blend(hh, f, 1.0), f)
    i, g = rand_img(rng, 33, 17), rand_img(rng, 33, 17)
    m = make_mask(33, 17, "left", kind="ramp", seam=6)
    h0, a0 = mix(i, g, f, m, 0.0)
    np.testing.assert_array_equal(a0, h0)
    _, a1 = mix(i, g, f, m, 1.0)
    np.testing.assert_array_equal(a1, f)


def test_inputs_are_not_modified():
    rng = np.random.default_rng(4)
    i, g, f = rand_img(rng, 16, 16), rand_img(rng, 16, 16), rand_img(rng, 16, 16)
    copies = [a.copy() for a in (i, g, f)]
    m = make_mask(16, 16, "top")
    mix(i, g, f, m, 0.3)
    hybrid(i, g, m)
    blend(i, f, 0.5)
    for a, c in zip((i, g, f), copies):
        np.testing.assert_array_equal(a, c)


def test_float_images_keep_their_dtype():
    rng = np.random.default_rng(5)
    i, g, f = (rng.random((9, 7, 3)).astype(np.float32) for _ in range(3))
    m = make_mask(9, 7, "bottom", kind="ramp", seam=3)
    hh = hybrid(i, g, m)
    assert hh.dtype == np.float32
    ref_h, ref_a = ref_augmented(i, g, f, m.astype(np.float64), 0.25)
    np.testing.assert_allclose(hh, ref_h, atol=1e-5)
    np.testing.assert_allclose(blend(hh, f, 0.25), ref_a, atol=1e-5)


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda a, b, m: hybrid(a, b[:8], m), "same shape"),
        (lambda a, b, m: hybrid(a, b, m[:8]), "mask shape"),
        (lambda a, b, m: hybrid(a[..., 0], b[..., 0], m), r"\(H, W, 3\)"),
        (lambda a, b, m: blend(a, b, 1.5), r"lam .* must be in \[0, 1\]; got 1.5"),
        (lambda a, b, m: blend(a, b, -0.1), r"must be in \[0, 1\]"),
        (lambda a, b, m: mix(a, b, b[:4], m, 0.2), "image and fractal must have the same shape"),
    ],
)
def test_bad_input_messages(call, match):
    a = np.zeros((16, 16, 3), np.uint8)
    b = np.zeros((16, 16, 3), np.uint8)
    with pytest.raises(ValueError, match=match):
        call(a, b, make_mask(16, 16, "left"))


# --- property tests -----------------------------------------------------------

dims = st.integers(min_value=1, max_value=40)


@settings(max_examples=60, deadline=None)
@given(
    h=dims,
    w=dims,
    layout=st.sampled_from(LAYOUTS),
    kind=st.sampled_from(MASK_KINDS),
    seam=st.integers(min_value=0, max_value=30),
    lam=st.floats(min_value=0.0, max_value=1.0),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_property_mix_agrees_with_reference(h, w, layout, kind, seam, lam, seed):
    rng = np.random.default_rng(seed)
    i, g, f = rand_img(rng, h, w), rand_img(rng, h, w), rand_img(rng, h, w)
    m = make_mask(h, w, layout, kind=kind, seam=seam)
    assert m.min() >= 0.0 and m.max() <= 1.0
    np.testing.assert_allclose(m, ref_mask(h, w, layout, kind, seam), atol=1e-6)
    hh, aa = mix(i, g, f, m, lam)
    ref_h, ref_a = ref_augmented(i, g, f, m.astype(np.float64), lam)
    assert np.abs(hh - ref_h).max() <= 1.0
    assert np.abs(aa - ref_a).max() <= 1.0
    # A lies between the per-pixel minimum and maximum of I, Î and F
    lo = np.minimum(np.minimum(i, g), f).astype(np.int16)
    hi = np.maximum(np.maximum(i, g), f).astype(np.int16)
    assert np.all(aa >= lo - 1) and np.all(aa <= hi + 1)


@settings(max_examples=40, deadline=None)
@given(h=dims, w=dims, kind=st.sampled_from(MASK_KINDS), seam=st.integers(0, 30))
def test_property_opposite_masks_sum_to_one_except_the_odd_middle(h, w, kind, seam):
    left, right = make_mask(h, w, "left", kind=kind, seam=seam), make_mask(h, w, "right", kind=kind, seam=seam)
    s = left + right
    if kind == "linspace" and seam > 0:
        # the authors' ramp is centred when w and the seam have the same parity
        if seam >= 2 and (w - seam) % 2 == 0:
            np.testing.assert_allclose(s, 1.0, atol=1e-6)
        return
    if w % 2 == 0 or (kind == "ramp" and seam > 0):
        np.testing.assert_allclose(s, 1.0, atol=1e-6)
    else:  # binary, odd width: the middle column belongs to Î in both layouts
        mid = w // 2
        np.testing.assert_array_equal(s[:, mid], 0.0)
        np.testing.assert_allclose(np.delete(s, mid, axis=1), 1.0)


@settings(max_examples=40, deadline=None)
@given(
    lam=st.floats(min_value=0.0, max_value=1.0),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_property_blend_is_monotone_in_lambda(lam, seed):
    rng = np.random.default_rng(seed)
    hh, f = rand_img(rng, 8, 8), rand_img(rng, 8, 8)
    a = blend(hh, f, lam).astype(np.int16)
    # distance to F shrinks (within rounding) as λ grows, and equals (1-λ)|H-F|
    d = np.abs(a - f.astype(np.int16))
    np.testing.assert_allclose(d, (1 - lam) * np.abs(hh.astype(np.int16) - f), atol=1.0)


# --- degenerate check -------------------------------------------------------------


def test_degenerate_reasons():
    rng = np.random.default_rng(6)
    assert degenerate_reason(np.zeros((32, 32, 3), np.uint8)) == "all black"
    noisy_black = rng.integers(0, 8, (32, 32, 3), dtype=np.uint8)
    assert degenerate_reason(noisy_black) == "all black"
    assert degenerate_reason(np.full((32, 32, 3), 255, np.uint8)) == "all white"
    assert degenerate_reason(np.full((32, 32, 3), 128, np.uint8)) == "near-constant"
    assert degenerate_reason(rand_img(rng, 32, 32)) is None
    # a real-looking image with a black half is fine
    img = rand_img(rng, 32, 32)
    img[:, :16] = 0
    assert degenerate_reason(img) is None
    # grey-level images and float images in [0, 1] work too
    assert degenerate_reason(np.zeros((8, 8), np.uint8)) == "all black"
    assert degenerate_reason(np.ones((8, 8, 3), np.float32)) == "all white"


def test_degenerate_bad_input():
    with pytest.raises(ValueError, match="expected an"):
        degenerate_reason(np.zeros((0, 0, 3), np.uint8))
