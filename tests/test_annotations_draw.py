"""Drawing annotations for the app: boxes, polygon and mask outlines, names; pure functions."""

from __future__ import annotations

import numpy as np
import pytest

from diffusemix.annotations import rle as rle_ops
from diffusemix.annotations.draw import category_colour, draw_annotations, draw_semantic, mask_outline
from diffusemix.annotations.types import Categories, Category, ImageAnnotation, ObjectAnnotation, SemanticMask

CATS = Categories((Category(1, "person"), Category(3, "car")))


def _grey(h: int = 64, w: int = 80) -> np.ndarray:
    return np.full((h, w, 3), 128, dtype=np.uint8)


def test_a_box_is_drawn_on_its_edge_pixels_and_nothing_else_changes() -> None:
    img = _grey()
    ann = ImageAnnotation("x", 80, 64, (ObjectAnnotation(3, (10, 20, 40, 50)),))
    out = draw_annotations(img, ann, CATS, width=1, labels=False)
    assert np.array_equal(img, _grey())  # input untouched
    colour = category_colour(1)  # "car" is the second category
    changed = np.any(out != 128, axis=2)
    rows, cols = np.nonzero(changed)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (20, 49, 10, 39)
    assert tuple(out[20, 25]) == colour and tuple(out[35, 10]) == colour and tuple(out[49, 39]) == colour
    assert not changed[21:49, 11:39].any()  # the inside is left alone


def test_labels_write_the_category_name_near_the_box() -> None:
    ann = ImageAnnotation("x", 80, 64, (ObjectAnnotation(1, (10, 30, 40, 50)),))
    with_name = draw_annotations(_grey(), ann, CATS, width=1)
    without = draw_annotations(_grey(), ann, CATS, width=1, labels=False)
    diff = np.any(with_name != without, axis=2)
    rows, cols = np.nonzero(diff)
    assert rows.max() < 30 and cols.min() >= 10  # a tag above the box, from its left edge


def test_polygon_and_mask_outlines() -> None:
    m = np.zeros((64, 80), dtype=bool)
    m[40:60, 50:75] = True
    ann = ImageAnnotation(
        "x",
        80,
        64,
        (
            ObjectAnnotation(1, (5, 5, 35, 35), polygons=((5.0, 5.0, 35.0, 5.0, 20.0, 35.0),)),
            ObjectAnnotation(3, (50, 40, 75, 60), rle=rle_ops.encode(m)),
        ),
    )
    out = draw_annotations(_grey(), ann, CATS, width=1, labels=False)
    assert tuple(out[40, 60]) == category_colour(1) and tuple(out[50, 50]) == category_colour(1)
    assert tuple(out[50, 62]) == (128, 128, 128)  # inside the mask
    assert tuple(out[20, 12]) == category_colour(0)  # on the triangle's left side (y = 2x - 5)


def test_mask_outline_is_the_edge_band() -> None:
    m = np.zeros((10, 10), dtype=bool)
    m[2:8, 2:8] = True
    edge = mask_outline(m, width=1)
    assert edge.sum() == 36 - 16 and not edge[3:7, 3:7].any()
    assert mask_outline(m, width=2).sum() == 36 - 4


def test_size_mismatch_and_bad_images_are_refused() -> None:
    ann = ImageAnnotation("x", 100, 64, ())
    with pytest.raises(ValueError, match=r"for a 100x64 image but the image is 80x64.*transform_annotation"):
        draw_annotations(_grey(), ann)
    with pytest.raises(ValueError, match=r"image must be uint8 \(H, W, 3\)"):
        draw_annotations(np.zeros((64, 100), np.uint8), ann)


def test_without_categories_ids_are_shown() -> None:
    ann = ImageAnnotation("x", 80, 64, (ObjectAnnotation(42, (10, 20, 40, 50)),))
    out = draw_annotations(_grey(), ann, None, width=1, labels=True)
    assert tuple(out[35, 10]) == category_colour(42)


def test_draw_semantic_tints_classes_and_leaves_ignore_and_background() -> None:
    m = np.zeros((64, 80), dtype=np.uint8)
    m[10:30, 10:40] = 1
    m[40:60, 50:70] = 2
    m[0, :] = 255
    out = draw_semantic(_grey(), SemanticMask(m, ("bg", "road", "car")), alpha=0.5, labels=False)
    assert tuple(out[20, 20]) == tuple(np.rint(0.5 * 128 + 0.5 * np.array(category_colour(1))).astype(int))
    assert tuple(out[10, 10]) == category_colour(1)  # the outline
    assert tuple(out[0, 5]) == (128, 128, 128) and tuple(out[35, 5]) == (128, 128, 128)
    named = draw_semantic(_grey(), SemanticMask(m, ("bg", "road", "car")))
    assert np.any(named != out)
