"""Which side of the seam: per object, its share of area on the Î side, against pixel-counting references."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from diffusemix.annotations import rle as rle_ops
from diffusemix.annotations.geometry import polygon_area
from diffusemix.annotations.seam import area_profile, best_layout, generated_share, generated_shares, input_side_area
from diffusemix.annotations.types import ImageAnnotation, ObjectAnnotation
from diffusemix.functional import LAYOUTS, make_mask

KINDS = [("binary", 0), ("linspace", 20), ("linspace", 6), ("ramp", 9), ("ramp", 2.5)]


def _reference_share(fine_mask: np.ndarray, k: int, size: int, layout: str, kind: str, seam: float) -> float:
    """Brute force: the object rasterised k times finer, each fine pixel weighted by 1 - M of its pixel."""
    w = 1.0 - make_mask(size, size, layout, kind=kind, seam=seam).astype(np.float64)
    w_fine = np.kron(w, np.ones((k, k)))
    return float((fine_mask * w_fine).sum() / fine_mask.sum())


@settings(max_examples=120, deadline=None)
@given(
    size=st.integers(8, 64),
    b=st.tuples(st.floats(0, 0.9), st.floats(0, 0.9), st.floats(0.05, 1), st.floats(0.05, 1)),
    layout=st.sampled_from(LAYOUTS),
    ks=st.sampled_from(KINDS),
)
def test_box_share_is_the_mean_generated_weight_over_the_box(size, b, layout, ks) -> None:
    kind, seam = ks
    assume(seam <= size)
    k = 8
    x0, y0 = round(b[0] * size * k) / k, round(b[1] * size * k) / k  # on the fine grid: the reference is exact
    x1 = min(x0 + max(round(b[2] * (size - x0) * k) / k, 1 / k), size)
    y1 = min(y0 + max(round(b[3] * (size - y0) * k) / k, 1 / k), size)
    assume(x1 > x0 and y1 > y0)
    fine = np.zeros((size * k, size * k))
    fine[round(y0 * k) : round(y1 * k), round(x0 * k) : round(x1 * k)] = 1
    obj = ObjectAnnotation(1, (x0, y0, x1, y1))
    ref = _reference_share(fine, k, size, layout, kind, seam)
    assert generated_share(obj, size=size, layout=layout, kind=kind, seam=seam) == pytest.approx(ref, abs=1e-9)


@settings(max_examples=60, deadline=None)
@given(size=st.integers(16, 64), seed=st.integers(0, 2**16), layout=st.sampled_from(LAYOUTS), ks=st.sampled_from(KINDS))
def test_polygon_share_agrees_with_a_fine_rasterisation(size, seed, layout, ks) -> None:
    kind, seam = ks
    assume(seam <= size)
    rng = np.random.default_rng(seed)
    c = rng.uniform(0.2, 0.8, 2) * size
    ang = np.sort(rng.uniform(0, 2 * np.pi, 7))
    rad = rng.uniform(0.15, 0.45) * size * rng.uniform(0.6, 1.0, 7)
    pts = np.clip(np.stack([c[0] + rad * np.cos(ang), c[1] + rad * np.sin(ang)], axis=1), 0, size)
    assume(polygon_area(pts) > 8)
    k = 16
    fine = rle_ops.polygons_to_mask([tuple(pts.ravel() * k)], size * k, size * k).astype(np.float64)
    obj = ObjectAnnotation(
        1, (pts[:, 0].min(), pts[:, 1].min(), pts[:, 0].max(), pts[:, 1].max()), polygons=(tuple(pts.ravel()),)
    )
    ref = _reference_share(fine, k, size, layout, kind, seam)
    assert generated_share(obj, size=size, layout=layout, kind=kind, seam=seam) == pytest.approx(ref, abs=0.01)


@settings(max_examples=60, deadline=None)
@given(
    pts=st.lists(st.tuples(st.floats(0, 40), st.floats(0, 40)), min_size=3, max_size=9), axis=st.sampled_from([0, 1])
)
@example(pts=[(0.0, 0.0), (0.0, 0.0), (1.0, 5e-324)], axis=1)  # a denormal edge: its slope was inf, the area nan
def test_strip_areas_add_up_to_the_polygon_area(pts, axis) -> None:
    ring = np.asarray(pts)
    obj = ObjectAnnotation(1, (0, 0, 40, 40), polygons=(tuple(ring.ravel()),))
    prof = area_profile(obj, size=40, axis=axis)
    # for any ring the strips' signed areas add up to the signed area (the shoelace formula, split)
    x, y = ring[:, 0], ring[:, 1]
    signed = (np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2
    assert abs(prof.sum()) == pytest.approx(abs(signed), abs=1e-6)


def test_mask_share_is_exact() -> None:
    m = np.zeros((32, 32), dtype=bool)
    m[4:20, 10:30] = True
    m[22:30, 2:6] = True
    obj = ObjectAnnotation(1, (2, 4, 30, 30), rle=rle_ops.encode(m))
    for layout in LAYOUTS:
        w = 1.0 - make_mask(32, 32, layout, kind="linspace", seam=8).astype(np.float64)
        assert generated_share(obj, size=32, layout=layout, kind="linspace", seam=8) == pytest.approx(
            w[m].mean(), abs=1e-12
        )


def test_sides_with_a_binary_mask() -> None:
    left_obj = ImageAnnotation("x", 64, 64, (ObjectAnnotation(1, (2, 2, 30, 60)), ObjectAnnotation(2, (34, 2, 60, 20))))
    assert generated_shares(left_obj, layout="left", kind="binary", seam=0) == (0.0, 1.0)
    assert generated_shares(left_obj, layout="right", kind="binary", seam=0) == (1.0, 0.0)
    straddling = ObjectAnnotation(1, (16, 0, 48, 10))
    assert generated_share(straddling, size=64, layout="left", kind="binary", seam=0) == 0.5
    with pytest.raises(ValueError, match="layout must be one of"):
        generated_share(straddling, size=64, layout="middle", kind="binary", seam=0)  # type: ignore[arg-type]


def test_best_layout_keeps_most_object_area_on_the_real_side() -> None:
    # a big object at the bottom right, a small one top left
    ann = ImageAnnotation("x", 64, 64, (ObjectAnnotation(1, (36, 36, 62, 62)), ObjectAnnotation(2, (2, 2, 10, 10))))
    assert best_layout(ann, ("left", "top"), kind="binary", seam=0) == "left"  # both lose the big one: tie -> first
    assert best_layout(ann, ("left", "right", "top", "bottom"), kind="binary", seam=0) == "right"
    assert best_layout(ann, ("left", "top"), kind="binary", seam=0, categories={2}) == "left"
    assert best_layout(ann, ("bottom", "top"), kind="binary", seam=0, categories={2}) == "top"
    empty = ImageAnnotation("x", 64, 64, ())
    assert best_layout(empty, ("top", "left")) == "top"
    assert input_side_area(ann, layout="right", kind="binary", seam=0) == pytest.approx(26 * 26)
    with pytest.raises(ValueError, match="layouts is empty"):
        best_layout(ann, ())
