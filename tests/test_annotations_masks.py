"""Semantic segmentation pairs: images/ + masks/ of class ids, checked, resized with the image, written back."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from annotation_helpers import make_scene, mask_iou, shape_in_image
from PIL import Image

from diffusemix.annotations.geometry import transform_semantic
from diffusemix.annotations.issues import AnnotationError
from diffusemix.annotations.masks import load_mask, read_classes, read_mask_pairs, write_classes, write_mask
from diffusemix.images import prepare

CLASSES = ["background", "road", "car", "tree"]


def _pair(root: Path, name: str, w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    """An image with two shapes and its class-id mask (a 255 'ignore' border)."""
    scene = make_scene(
        w,
        h,
        [
            ("rect", 2, (int(w * 0.1), int(h * 0.2), int(w * 0.5), int(h * 0.7))),
            ("polygon", 3, [w * 0.6, h * 0.1, w * 0.95, h * 0.3, w * 0.7, h * 0.9]),
        ],
    )
    mask = np.zeros((h, w), dtype=np.uint8)
    x0, y0, x1, y1 = (int(v) for v in scene.shapes[0].box)
    mask[y0:y1, x0:x1] = 2
    mask[scene.shapes[1].mask] = 3
    mask[0, :] = 255
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    Image.fromarray(scene.image).save(root / "images" / f"{name}.jpg", quality=100)
    Image.fromarray(mask).save(root / "masks" / f"{name}.png")
    return scene.image, mask


@pytest.fixture()
def seg_root(tmp_path: Path) -> Path:
    root = tmp_path / "seg"
    _pair(root, "a", 220, 150)
    _pair(root, "b", 150, 221)
    write_classes(root / "classes.txt", CLASSES)
    return root


def test_read_pairs_and_load_a_mask(seg_root: Path) -> None:
    ds = read_mask_pairs(seg_root)
    assert ds.classes == tuple(CLASSES) and ds.format == "masks" and not ds.skipped
    assert [(p.image, p.mask, p.width, p.height) for p in ds.pairs] == [
        ("a.jpg", "a.png", 220, 150),
        ("b.jpg", "b.png", 150, 221),
    ]
    sem = load_mask(ds, ds.get("a.jpg"))
    assert sem.size == (220, 150) and set(np.unique(sem.mask)) == {0, 2, 3, 255}
    assert not sem.mask.flags.writeable


@pytest.mark.parametrize("mode", ["resize", "center-crop"])
def test_a_resized_mask_matches_the_prepared_image(seg_root: Path, mode: str) -> None:
    ds = read_mask_pairs(seg_root)
    for pair in ds.pairs:
        img = np.asarray(Image.open(seg_root / "images" / pair.image).convert("RGB"))
        out = transform_semantic(load_mask(ds, pair), size=128, resize=mode)
        prepared = prepare(img, 128, resize=mode)
        assert out.mask.shape == (128, 128)
        for value, colour_index in ((2, 0), (3, 1)):
            score = mask_iou(out.mask == value, shape_in_image(prepared, colour_index))
            assert score >= 0.97, (pair.image, value, score)


def test_written_masks_read_back_8_and_16_bit(tmp_path: Path, seg_root: Path) -> None:
    ds = read_mask_pairs(seg_root)
    sem = transform_semantic(load_mask(ds, ds.pairs[0]), size=64)
    p = write_mask(tmp_path / "out" / "masks" / "a.png", sem)
    back = np.array(Image.open(p))
    assert back.dtype == np.uint8 and np.array_equal(back, sem.mask)
    from diffusemix.annotations.types import SemanticMask

    wide = SemanticMask(
        np.array([[0, 300], [1000, 65535]], dtype=np.uint16), tuple(str(i) for i in range(1001)), ignore_index=65535
    )
    p16 = write_mask(tmp_path / "m16.png", wide)
    assert np.array_equal(np.array(Image.open(p16)).astype(np.uint16), wide.mask)


def test_sixteen_bit_and_palette_masks_are_class_ids(tmp_path: Path) -> None:
    root = tmp_path / "s"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    Image.new("RGB", (8, 6)).save(root / "images" / "x.png")
    Image.new("RGB", (8, 6)).save(root / "images" / "y.png")
    m16 = np.full((6, 8), 300, dtype=np.uint16)
    Image.fromarray(m16).save(root / "masks" / "x.png")
    pal = Image.fromarray(np.full((6, 8), 2, dtype=np.uint8), mode="P")  # VOC-style: the index is the class
    pal.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0] + [0] * 759)
    pal.save(root / "masks" / "y.png")
    assert Image.open(root / "masks" / "y.png").mode == "P"
    ds = read_mask_pairs(root, classes=[str(i) for i in range(301)], ignore_index=None)
    assert int(load_mask(ds, ds.get("x.png")).mask[0, 0]) == 300
    assert int(load_mask(ds, ds.get("y.png")).mask[0, 0]) == 2


def test_class_lists_from_txt_json_yaml(tmp_path: Path) -> None:
    (tmp_path / "classes.json").write_text(json.dumps(["a", "b"]))
    assert read_classes(tmp_path) == ("a", "b")
    (tmp_path / "classes.json").unlink()
    (tmp_path / "data.yaml").write_text("names: {0: x, 1: y, 2: z}\n")
    assert read_classes(tmp_path) == ("x", "y", "z")
    (tmp_path / "data.yaml").unlink()
    with pytest.raises(AnnotationError, match=r"no class list \(classes.txt, classes.json or data.yaml"):
        read_classes(tmp_path)


# ---------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------


def test_a_mask_of_another_size_than_its_image(seg_root: Path) -> None:
    Image.fromarray(np.zeros((150, 219), dtype=np.uint8)).save(seg_root / "masks" / "a.png")
    with pytest.raises(
        AnnotationError, match=r"a\.png \(image 'a\.jpg'\): the mask is 219x150 but its image is 220x150"
    ):
        read_mask_pairs(seg_root)
    ds = read_mask_pairs(seg_root, on_error="skip")
    assert [p.image for p in ds.pairs] == ["b.jpg"] and ds.errors()[0]["source"] == "a.jpg"


def test_a_value_that_is_not_a_class(seg_root: Path) -> None:
    m = np.zeros((150, 220), dtype=np.uint8)
    m[5, 5], m[6, 6] = 4, 17
    Image.fromarray(m).save(seg_root / "masks" / "a.png")
    with pytest.raises(AnnotationError, match=r"holds value\(s\) 4, 17, but there are 4 classes \(values 0..3 or 255"):
        read_mask_pairs(seg_root)
    ds = read_mask_pairs(seg_root, check_values=False)  # found when the mask is loaded instead
    with pytest.raises(AnnotationError, match=r"holds value\(s\) 4, 17"):
        load_mask(ds, ds.get("a.jpg"))


def test_a_colour_mask_is_refused(seg_root: Path) -> None:
    Image.new("RGB", (220, 150), (128, 0, 0)).save(seg_root / "masks" / "a.png")
    with pytest.raises(AnnotationError, match=r"pixel mode 'RGB'.*map its colours to class ids first"):
        read_mask_pairs(seg_root)


def test_missing_masks_and_masks_without_images(seg_root: Path) -> None:
    (seg_root / "masks" / "a.png").rename(seg_root / "masks" / "zz.png")
    with pytest.raises(AnnotationError, match=r"zz\.png: this mask has no image of the same name"):
        read_mask_pairs(seg_root)
    ds = read_mask_pairs(seg_root, on_error="skip")
    assert [p.image for p in ds.pairs] == ["b.jpg"]
    reasons = sorted(i.reason for i in ds.skipped)
    assert reasons == ["the mask file does not exist", "this mask has no image of the same name"]


def test_ignore_index_must_not_be_a_class_and_folders_must_exist(seg_root: Path, tmp_path: Path) -> None:
    with pytest.raises(AnnotationError, match=r"ignore_index 2 is also a class index \(4 classes\)"):
        read_mask_pairs(seg_root, ignore_index=2)
    with pytest.raises(AnnotationError, match=r"none/images: the images folder does not exist"):
        read_mask_pairs(tmp_path / "none")
