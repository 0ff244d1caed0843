"""The ``reference`` arithmetic equals the authors' code bit for bit.

Held against ``authors_port`` (an independent, literal port written from the
description of their code) for both of their layouts at both sizes their
code has used (256 and 512 px, blend width 20), for any size through
hypothesis, and through ``engine.apply_record`` with the ``paper`` preset.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from authors_port import ORIENTATION_OF_LAYOUT, authors_blend, authors_combine
from hypothesis import given, settings
from hypothesis import strategies as st

from diffusemix.engine import apply_record
from diffusemix.functional import (
    blend_reference,
    hybrid_reference,
    make_mask,
    mix,
    mix_reference,
)
from diffusemix.recipe import PRESETS, draw


def rand_img(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def smooth_pair(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Two photo-like images that differ a little (as I and Î do): many seam pixels land near .5."""
    base = rng.integers(0, 256, (n, n, 3), dtype=np.int16)
    other = np.clip(base + rng.integers(-3, 4, (n, n, 3)), 0, 255)
    return base.astype(np.uint8), other.astype(np.uint8)


@pytest.mark.parametrize("size", [256, 512])
@pytest.mark.parametrize("layout", ["left", "top"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mix_reference_is_the_authors_code_bit_for_bit(size, layout, seed):
    rng = np.random.default_rng(seed)
    i, g, f = rand_img(rng, size, size), rand_img(rng, size, size), rand_img(rng, size, size)
    want_h = authors_combine(i, g, ORIENTATION_OF_LAYOUT[layout])
    want_a = authors_blend(want_h, f, 0.2)
    h, a = mix_reference(i, g, f, layout, 0.2, kind="linspace", seam=20)
    assert h.dtype == np.uint8 and a.dtype == np.uint8
    np.testing.assert_array_equal(h, want_h)
    np.testing.assert_array_equal(a, want_a)
    np.testing.assert_array_equal(hybrid_reference(i, g, layout, kind="linspace", seam=20), want_h)
    np.testing.assert_array_equal(blend_reference(want_h, f, 0.2), want_a)


@pytest.mark.parametrize("layout", ["left", "top"])
def test_the_rounded_arithmetic_is_not_the_authors(layout):
    """Why the reference path exists: rounding (and A from the unrounded H) differs from their code."""
    rng = np.random.default_rng(7)
    i, g = smooth_pair(rng, 256)
    f = rand_img(rng, 256, 256)
    want_h = authors_combine(i, g, ORIENTATION_OF_LAYOUT[layout])
    want_a = authors_blend(want_h, f, 0.2)
    h, a = mix(i, g, f, make_mask(256, 256, layout, kind="linspace", seam=20), 0.2)
    assert np.count_nonzero(a != want_a) > 0.2 * a.size  # truncation vs rounding: a large share of A
    assert np.count_nonzero(h != want_h) > 0
    # ... only upwards, by at most 2 grey levels (H truncated in the seam, then A truncated)
    d = a.astype(np.int16) - want_a
    assert d.min() >= 0 and d.max() <= 2


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(min_value=2, max_value=70),
    other=st.integers(min_value=1, max_value=40),
    layout=st.sampled_from(["left", "top"]),
    seam=st.integers(min_value=1, max_value=24),
    lam=st.floats(min_value=0.0, max_value=1.0),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_property_reference_equals_the_port_at_any_size(n, other, layout, seam, lam, seed):
    """Odd sides and odd seams included: the port fills the rest with ones, as the project defines."""
    if seam > n:
        seam = n
    h_, w_ = (other, n) if layout == "left" else (n, other)
    rng = np.random.default_rng(seed)
    i, g, f = rand_img(rng, h_, w_), rand_img(rng, h_, w_), rand_img(rng, h_, w_)
    want_h = authors_combine(i, g, ORIENTATION_OF_LAYOUT[layout], blend_width=seam)
    h, a = mix_reference(i, g, f, layout, lam, kind="linspace", seam=seam)
    np.testing.assert_array_equal(h, want_h)
    np.testing.assert_array_equal(a, authors_blend(want_h, f, lam))


@settings(max_examples=40, deadline=None)
@given(
    h=st.integers(1, 30),
    w=st.integers(1, 30),
    layout=st.sampled_from(["left", "right", "top", "bottom"]),
    kind=st.sampled_from(["binary", "ramp", "linspace"]),
    seam=st.integers(0, 30),
    lam=st.floats(min_value=0.0, max_value=1.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_property_reference_is_within_one_grey_level_below_exact(h, w, layout, kind, seam, lam, seed):
    """For every mask kind: H and A truncate the exact values (so at most 1 below, never above)."""
    rng = np.random.default_rng(seed)
    i, g, f = rand_img(rng, h, w), rand_img(rng, h, w), rand_img(rng, h, w)
    hh, aa = mix_reference(i, g, f, layout, lam, kind=kind, seam=seam)
    m = make_mask(h, w, layout, kind=kind, seam=seam).astype(np.float64)[..., None]
    exact_h = m * i + (1 - m) * g
    assert np.all(hh <= exact_h + 1e-3) and np.all(hh >= exact_h - 1 - 1e-3)
    exact_a = (1 - lam) * hh.astype(np.float64) + lam * f
    assert np.all(aa <= exact_a + 1e-3) and np.all(aa >= exact_a - 1 - 1e-3)
    # identities: a binary mask copies the halves exactly; λ = 0 gives H, λ = 1 gives F
    if kind == "binary" or seam == 0:
        keep = m[..., 0] == 1.0
        np.testing.assert_array_equal(hh[keep], i[keep])
        np.testing.assert_array_equal(hh[~keep], g[~keep])
    np.testing.assert_array_equal(blend_reference(hh, f, 0.0), hh)
    np.testing.assert_array_equal(blend_reference(hh, f, 1.0), f)


def test_reference_rejects_float_images():
    a = np.zeros((8, 8, 3), np.float32)
    with pytest.raises(ValueError, match="the reference arithmetic works on uint8 images; got float32"):
        hybrid_reference(a, a, "left", seam=4)
    with pytest.raises(ValueError, match=r"lam .* must be in \[0, 1\]"):
        blend_reference(np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8, 3), np.uint8), 2.0)


@pytest.mark.parametrize("size", [256, 512])
def test_apply_record_with_the_paper_preset_is_the_authors_code(size):
    recipe = PRESETS["paper"].replace(size=size)
    records = draw(recipe, "cat/001.jpg", ["f0.png", "f1.png"])
    assert {r.arithmetic for r in records} == {"reference"} and {r.mask for r in records} == {"linspace"}
    assert {r.layout for r in records} <= {"left", "top"}
    rng = np.random.default_rng(size)
    i = rand_img(rng, size, size)
    for rec in records + [dataclasses.replace(records[0], layout=lay) for lay in ("left", "top")]:
        g, f = rand_img(rng, size, size), rand_img(rng, size, size)
        st_ = apply_record(rec, i, g, f)
        want_h = authors_combine(i, g, ORIENTATION_OF_LAYOUT[rec.layout])
        np.testing.assert_array_equal(st_.hybrid, want_h)
        np.testing.assert_array_equal(st_.augmented, authors_blend(want_h, f, 0.2))


def test_apply_record_follows_the_recorded_arithmetic():
    rng = np.random.default_rng(3)
    i, g = smooth_pair(rng, 64)
    f = rand_img(rng, 64, 64)
    rec = draw(PRESETS["paper"].replace(size=64), "x", ["f"])[0]
    ref = apply_record(rec, i, g, f)
    rounded = apply_record(dataclasses.replace(rec, arithmetic="rounded"), i, g, f)
    np.testing.assert_array_equal(rounded.augmented, mix(i, g, f, ref.mask, rec.lam)[1])
    assert not np.array_equal(ref.augmented, rounded.augmented)
    with pytest.raises(ValueError, match="SampleRecord.arithmetic must be one of reference, rounded; got 'exact'"):
        apply_record(dataclasses.replace(rec, arithmetic="exact"), i, g, f)
