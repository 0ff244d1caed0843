"""Annotations through prepare's geometry: the same box and scale, found again on the prepared pixels."""

from __future__ import annotations

import numpy as np
import pytest
from annotation_helpers import iou, make_scene, mask_iou, measure_rectangle, shape_in_image
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from PIL import Image

from diffusemix.annotations import rle as rle_ops
from diffusemix.annotations.geometry import (
    Geometry,
    clip_polygon,
    polygon_area,
    resize_nearest,
    transform_annotation,
    transform_semantic,
)
from diffusemix.annotations.targets import object_mask
from diffusemix.annotations.types import ImageAnnotation, ObjectAnnotation, SemanticMask
from diffusemix.images import prepare, source_box

MODES = ("resize", "center-crop")


def _objects(scene):
    out = []
    for sh in scene.shapes:
        out.append(
            ObjectAnnotation(
                sh.category_id,
                sh.box,
                polygons=(sh.polygon,) if sh.kind == "polygon" else (),
                rle=rle_ops.encode(sh.mask) if sh.kind == "blob" else None,
                source_id=len(out) + 1,
            )
        )
    return ImageAnnotation("scene.png", scene.width, scene.height, tuple(out))


def _scene(w: int, h: int):
    return make_scene(
        w,
        h,
        [
            ("rect", 1, (int(w * 0.1), int(h * 0.15), int(w * 0.45), int(h * 0.5))),
            ("polygon", 3, [w * 0.55, h * 0.1, w * 0.9, h * 0.2, w * 0.7, h * 0.6]),
            ("blob", 7, (w * 0.3, h * 0.75, w * 0.15, h * 0.12)),
            ("rect", 3, (int(w * 0.72), int(h * 0.68), int(w * 0.97), int(h * 0.95))),
        ],
    )


# ---------------------------------------------------------------------------
# the box is prepare's box
# ---------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(w=st.integers(1, 90), h=st.integers(1, 90), size=st.integers(8, 70), mode=st.sampled_from(MODES))
def test_prepare_resamples_exactly_source_box(w: int, h: int, size: int, mode: str) -> None:
    # prepare must be Pillow's bicubic resize of source_box, pixel for pixel: the geometry's only input
    rng = np.random.default_rng(w * 1000 + h)
    img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    expected = np.array(
        Image.fromarray(img).resize((size, size), Image.Resampling.BICUBIC, box=source_box(w, h, resize=mode))
    )
    assert np.array_equal(prepare(img, size, resize=mode), expected)


def test_source_box_of_center_crop_starts_at_half_pixels() -> None:
    assert source_box(221, 150, resize="center-crop") == (35.5, 0.0, 185.5, 150.0)
    assert source_box(150, 220, resize="center-crop") == (0.0, 35.0, 150.0, 185.0)
    assert source_box(33, 17, resize="resize") == (0.0, 0.0, 33.0, 17.0)
    with pytest.raises(ValueError, match="resize must be one of"):
        source_box(10, 10, resize="crop")  # type: ignore[arg-type]


@settings(max_examples=80, deadline=None)
@given(
    w=st.integers(1, 60),
    h=st.integers(1, 60),
    size=st.integers(1, 80),
    fx=st.floats(0, 0.5),
    fy=st.floats(0, 0.5),
    fw=st.floats(0.05, 1),
    fh=st.floats(0.05, 1),
    dtype=st.sampled_from([np.uint8, np.int32]),
)
def test_resize_nearest_is_pillows_nearest(w, h, size, fx, fy, fw, fh, dtype) -> None:
    # any box inside the array, fractional edges included
    x0, y0 = fx * w, fy * h
    x1, y1 = min(x0 + fw * w, w), min(y0 + fh * h, h)
    assume(x1 > x0 and y1 > y0)
    rng = np.random.default_rng(size)
    a = rng.integers(0, 200, (h, w)).astype(dtype)
    mode = "L" if dtype == np.uint8 else "I"
    ref = np.array(Image.fromarray(a, mode=mode).resize((size, size), Image.Resampling.NEAREST, box=(x0, y0, x1, y1)))
    assert np.array_equal(resize_nearest(a, (x0, y0, x1, y1), size), ref)


@settings(max_examples=40, deadline=None)
@given(w=st.integers(8, 400), h=st.integers(8, 400), size=st.sampled_from([96, 224, 256, 300]))
def test_resize_nearest_matches_pillow_on_center_crops(w: int, h: int, size: int) -> None:
    box = source_box(w, h, resize="center-crop")
    a = (np.arange(w * h, dtype=np.int64).reshape(h, w) % 251).astype(np.uint8)
    ref = np.array(Image.fromarray(a).resize((size, size), Image.Resampling.NEAREST, box=box))
    assert np.array_equal(resize_nearest(a, box, size), ref)


# ---------------------------------------------------------------------------
# drawn shapes found again on the prepared image
# ---------------------------------------------------------------------------

SIZES = [
    (220, 150, 128),
    (333, 200, 256),
    (640, 480, 256),
    (201, 120, 96),
    (75, 51, 256),
    (150, 221, 128),
    (41, 40, 300),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("w,h,size", SIZES)
def test_every_box_lands_on_its_rectangle(w: int, h: int, size: int, mode: str) -> None:
    scene = _scene(w, h)
    result = transform_annotation(_objects(scene), size=size, resize=mode, min_visibility=0.0)
    img = prepare(scene.image, size, resize=mode)
    found = 0
    for sh, out in zip(scene.shapes, result.outcomes):
        if sh.kind != "rect" or out.object is None:
            continue
        measured = measure_rectangle(img, sh.colour_index, out.object.box)
        assert iou(measured, out.object.box) >= 0.99, (sh, out)
        # and to a tenth of a pixel: a half-pixel error in the crop box fails here
        assert max(abs(a - b) for a, b in zip(measured, out.object.box)) < 0.12 * max(1.0, size / max(w, h)), (
            measured,
            out.object.box,
        )
        found += 1
    assert found >= 1


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("w,h,size", [(220, 150, 128), (333, 200, 256), (640, 480, 256), (201, 120, 96)])
def test_every_mask_matches_its_shape(w: int, h: int, size: int, mode: str) -> None:
    # polygons (rasterised by pycocotools at S) and RLE blobs (nearest neighbour) against the bicubic pixels
    scene = _scene(w, h)
    result = transform_annotation(_objects(scene), size=size, resize=mode, min_visibility=0.0)
    img = prepare(scene.image, size, resize=mode)
    for sh, out in zip(scene.shapes, result.outcomes):
        if sh.kind == "rect":
            continue
        assert out.object is not None
        mask = object_mask(out.object, width=size, height=size)
        drawn = shape_in_image(img, sh.colour_index)
        score = mask_iou(mask, drawn)
        assert score >= 0.98, (sh.kind, score)
        # a mask one pixel off scores clearly lower: the check has the power to see it
        assert mask_iou(np.roll(mask, 1, axis=1), drawn) < score - 0.01


def test_a_transformed_mask_is_the_nearest_resize_of_the_source_mask() -> None:
    scene = _scene(333, 200)
    ann = _objects(scene)
    for mode in MODES:
        out = transform_annotation(ann, size=128, resize=mode, min_visibility=0.0)
        box = source_box(333, 200, resize=mode)
        blob = scene.shapes[2].mask
        ref = np.array(Image.fromarray(blob.astype(np.uint8)).resize((128, 128), Image.Resampling.NEAREST, box=box))
        assert np.array_equal(rle_ops.decode(out.outcomes[2].object.rle), ref.astype(bool))


# ---------------------------------------------------------------------------
# rules: kept / clipped / dropped
# ---------------------------------------------------------------------------


def _box_ann(w: int, h: int, *boxes) -> ImageAnnotation:
    return ImageAnnotation("x.png", w, h, tuple(ObjectAnnotation(1, b, source_id=i) for i, b in enumerate(boxes)))


def test_center_crop_keeps_clips_and_drops_by_visible_share() -> None:
    # 300 x 100 -> centre square x in [100, 200)
    ann = _box_ann(
        300,
        100,
        (120, 10, 180, 90),  # inside: kept
        (80, 10, 120, 50),  # half inside: clipped, 0.5
        (10, 10, 90, 90),  # outside: dropped
        (190, 0, 230, 100),
    )  # a quarter inside: 0.25, kept at min_visibility 0.25
    r = transform_annotation(ann, size=50, resize="center-crop")
    st_ = [(o.status, round(o.visible, 6)) for o in r.outcomes]
    assert st_ == [("kept", 1.0), ("clipped", 0.5), ("dropped", 0.0), ("clipped", 0.25)]
    assert r.outcomes[2].reason == "outside the crop"
    assert r.annotation.objects[1].box == pytest.approx((0.0, 5.0, 10.0, 25.0))
    assert r.annotation.objects[2].box == pytest.approx((45.0, 0.0, 50.0, 50.0))
    stricter = transform_annotation(ann, size=50, resize="center-crop", min_visibility=0.3)
    assert [o.status for o in stricter.outcomes] == ["kept", "clipped", "dropped", "dropped"]
    assert "below min_visibility 0.3" in stricter.outcomes[3].reason
    assert len(stricter.annotation.objects) == 2 and stricter.count("dropped") == 2


def test_a_clipped_polygon_gets_the_box_of_its_visible_part() -> None:
    # a triangle whose tip pokes into the crop: the clipped box is the tip's, not the old box's corner
    tri = (40.0, 0.0, 140.0, 50.0, 40.0, 100.0)  # the crop of 300x100 starts at x = 100
    ann = ImageAnnotation("x.png", 300, 100, (ObjectAnnotation(1, (40, 0, 140, 100), polygons=(tri,)),))
    r = transform_annotation(ann, size=100, resize="center-crop", min_visibility=0.0)
    o = r.outcomes[0]
    assert o.status == "clipped"
    # the tip right of x = 100 runs from y = 30 to 70 there: 40 x 40 / 2 of the 100 x 100 / 2 triangle
    assert o.visible == pytest.approx((40 * 40 / 2) / (100 * 100 / 2))
    assert o.object.box == pytest.approx((0.0, 30.0, 40.0, 70.0))


def test_half_pixel_crop_counts_partial_mask_pixels() -> None:
    # 5 x 4 -> centre square x in [0.5, 4.5): a mask column 0 is half inside
    m = np.zeros((4, 5), dtype=bool)
    m[:, 0] = True
    ann = ImageAnnotation("x.png", 5, 4, (ObjectAnnotation(1, (0, 0, 1, 4), rle=rle_ops.encode(m)),))
    r = transform_annotation(ann, size=8, resize="center-crop", min_visibility=0.0)
    assert r.outcomes[0].visible == pytest.approx(0.5)
    assert r.outcomes[0].object.box == pytest.approx((0.0, 0.0, 1.0, 8.0))


def test_a_mask_that_resizing_loses_is_dropped_with_its_reason() -> None:
    m = np.zeros((100, 100), dtype=bool)
    m[1, 1] = True  # one pixel between the samples of a 10x downscale
    ann = ImageAnnotation("x.png", 100, 100, (ObjectAnnotation(1, (1, 1, 2, 2), rle=rle_ops.encode(m)),))
    r = transform_annotation(ann, size=10)
    assert r.outcomes[0].status == "dropped" and "no pixel" in r.outcomes[0].reason


@pytest.mark.parametrize("bad", [-0.1, 1.5, True, float("nan")])
def test_min_visibility_is_checked(bad) -> None:
    with pytest.raises(ValueError, match="min_visibility must be a share in"):
        transform_annotation(_box_ann(10, 10, (1, 1, 5, 5)), size=8, min_visibility=bad)


# ---------------------------------------------------------------------------
# properties
# ---------------------------------------------------------------------------

box_st = st.tuples(st.floats(0, 1), st.floats(0, 1), st.floats(0.01, 1), st.floats(0.01, 1))


@settings(max_examples=150, deadline=None)
@given(w=st.integers(1, 500), h=st.integers(1, 500), size=st.integers(8, 512), b=box_st)
def test_resize_scales_every_box_exactly_and_keeps_it(w, h, size, b) -> None:
    x0, y0 = b[0] * w * 0.99, b[1] * h * 0.99
    box = (x0, y0, x0 + max(b[2] * (w - x0), 1e-3), y0 + max(b[3] * (h - y0), 1e-3))
    assume(box[2] <= w and box[3] <= h)
    r = transform_annotation(_box_ann(w, h, box), size=size, resize="resize")
    o = r.outcomes[0]
    assert o.status == "kept" and o.visible == 1.0
    expected = (box[0] * size / w, box[1] * size / h, box[2] * size / w, box[3] * size / h)
    assert o.object.box == pytest.approx(expected, rel=1e-12, abs=1e-9)


@settings(max_examples=200, deadline=None)
@given(w=st.integers(1, 500), h=st.integers(1, 500), size=st.integers(8, 512), b=box_st, mv=st.floats(0, 1))
def test_center_crop_box_rule(w, h, size, b, mv) -> None:
    x0, y0 = b[0] * w, b[1] * h
    box = (x0, y0, x0 + b[2] * (w - x0) + 1e-3, y0 + b[3] * (h - y0) + 1e-3)
    assume(box[2] <= w + 1e-3 and box[3] <= h + 1e-3)
    r = transform_annotation(_box_ann(w, h, box), size=size, resize="center-crop", min_visibility=mv)
    o = r.outcomes[0]
    # independent: the crop window and the share of the box inside it
    side = min(w, h)
    cx0, cy0 = (w - side) / 2, (h - side) / 2
    ix = max(0.0, min(box[2], cx0 + side) - max(box[0], cx0))
    iy = max(0.0, min(box[3], cy0 + side) - max(box[1], cy0))
    share = ix * iy / ((box[2] - box[0]) * (box[3] - box[1]))
    assert o.visible == pytest.approx(share, abs=1e-9)
    if share <= 0 or share < mv:
        assert o.status == "dropped" and o.object is None
        return
    assert o.status == ("kept" if share >= 1 - 1e-9 else "clipped")
    s = size / side
    expected = (
        max(box[0], cx0) - cx0,
        max(box[1], cy0) - cy0,
        min(box[2], cx0 + side) - cx0,
        min(box[3], cy0 + side) - cy0,
    )
    assert o.object.box == pytest.approx(tuple(v * s for v in expected), abs=1e-6)
    assert all(0.0 <= v <= size for v in o.object.box)


ring_st = st.lists(st.tuples(st.floats(-50, 150), st.floats(-50, 150)), min_size=3, max_size=8)


@settings(max_examples=200, deadline=None)
@given(pts=ring_st, box=st.tuples(st.floats(0, 40), st.floats(0, 40), st.floats(50, 100), st.floats(50, 100)))
def test_clip_polygon_properties(pts, box) -> None:
    ring = np.asarray(pts, dtype=np.float64)
    cut = clip_polygon(ring, box)
    # every point of the result inside the box, never more area than before
    if len(cut):
        assert cut[:, 0].min() >= box[0] - 1e-9 and cut[:, 0].max() <= box[2] + 1e-9
        assert cut[:, 1].min() >= box[1] - 1e-9 and cut[:, 1].max() <= box[3] + 1e-9
    # clipping to a box is idempotent
    if len(cut) >= 3:
        assert polygon_area(clip_polygon(cut, box)) == pytest.approx(polygon_area(cut), abs=1e-6)


@settings(max_examples=200, deadline=None)
@given(
    r=st.tuples(st.floats(-50, 150), st.floats(-50, 150), st.floats(1, 120), st.floats(1, 120)),
    box=st.tuples(st.floats(0, 40), st.floats(0, 40), st.floats(50, 100), st.floats(50, 100)),
)
def test_clipping_a_rectangle_gives_the_intersection(r, box) -> None:
    x0, y0, w, h = r
    ring = np.array([[x0, y0], [x0 + w, y0], [x0 + w, y0 + h], [x0, y0 + h]])
    ix = max(0.0, min(x0 + w, box[2]) - max(x0, box[0]))
    iy = max(0.0, min(y0 + h, box[3]) - max(y0, box[1]))
    assert polygon_area(clip_polygon(ring, box)) == pytest.approx(ix * iy, abs=1e-6)


@settings(max_examples=60, deadline=None)
@given(
    w=st.integers(8, 200),
    h=st.integers(8, 200),
    size=st.integers(8, 128),
    mode=st.sampled_from(MODES),
    seed=st.integers(0, 2**16),
)
def test_polygon_share_agrees_with_its_rasterised_mask(w, h, size, mode, seed) -> None:
    # the exact clipped-area share against counting pixels of the polygon's fine rasterisation
    rng = np.random.default_rng(seed)
    cx, cy = rng.uniform(0, w), rng.uniform(0, h)
    ang = np.sort(rng.uniform(0, 2 * np.pi, 6))
    rad = rng.uniform(0.2, 0.6) * min(w, h)
    pts = np.stack([cx + rad * np.cos(ang), cy + rad * np.sin(ang)], axis=1)
    pts[:, 0] = np.clip(pts[:, 0], 0, w)
    pts[:, 1] = np.clip(pts[:, 1], 0, h)
    assume(polygon_area(pts) > 4.0)
    poly = tuple(pts.ravel())
    ann = ImageAnnotation(
        "x.png",
        w,
        h,
        (ObjectAnnotation(1, (pts[:, 0].min(), pts[:, 1].min(), pts[:, 0].max(), pts[:, 1].max()), polygons=(poly,)),),
    )
    o = transform_annotation(ann, size=size, resize=mode, min_visibility=0.0).outcomes[0]
    k = 8  # 8x finer raster
    fine = rle_ops.polygons_to_mask([tuple(pts.ravel() * k)], h * k, w * k)
    x0, y0, x1, y1 = (v * k for v in source_box(w, h, resize=mode))
    inside = fine[round(y0) : round(y1), round(x0) : round(x1)].sum()
    assert o.visible == pytest.approx(inside / fine.sum(), abs=0.05)


def test_transform_semantic_is_nearest_over_the_crop() -> None:
    m = (np.arange(33 * 17).reshape(17, 33) % 5).astype(np.uint8)
    sem = SemanticMask(m, ("a", "b", "c", "d", "e"))
    out = transform_semantic(sem, size=64, resize="center-crop")
    ref = np.array(
        Image.fromarray(m).resize((64, 64), Image.Resampling.NEAREST, box=source_box(33, 17, resize="center-crop"))
    )
    assert np.array_equal(out.mask, ref) and out.classes == sem.classes
    big = SemanticMask(m.astype(np.uint16) * 300, tuple(str(i) for i in range(1201)), ignore_index=None)
    assert transform_semantic(big, size=40).mask.dtype == np.uint16


def test_geometry_maps_the_box_onto_the_output_square() -> None:
    g = Geometry.of(221, 150, size=128, resize="center-crop")
    assert g.map_box(g.box) == pytest.approx((0.0, 0.0, 128.0, 128.0))
    assert g.scale == pytest.approx((128 / 150, 128 / 150))
