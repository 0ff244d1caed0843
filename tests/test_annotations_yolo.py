"""The YOLO layout: reading with checks, Ultralytics' label paths, and a round trip through the geometry."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import yaml
from annotation_helpers import iou, make_scene, mask_iou, measure_rectangle, shape_in_image, write_yolo_dataset
from PIL import Image

from diffusemix.annotations.geometry import transform_annotation
from diffusemix.annotations.issues import AnnotationError
from diffusemix.annotations.targets import object_mask
from diffusemix.annotations.types import Categories, ImageAnnotation, ObjectAnnotation
from diffusemix.annotations.yolo import (
    read_data_yaml,
    read_yolo,
    write_data_yaml,
    write_yolo_label,
    yolo_label_path,
    yolo_lines,
)
from diffusemix.images import prepare


def _scenes():
    return {
        "one.png": make_scene(220, 150, [("rect", 0, (20, 30, 90, 100)), ("polygon", 2, [120, 20, 200, 40, 160, 120])]),
        "two.png": make_scene(97, 160, [("rect", 1, (10, 20, 80, 90))]),
    }


@pytest.fixture()
def yolo_root(tmp_path: Path) -> Path:
    return write_yolo_dataset(tmp_path / "ds", _scenes())


def test_yolo_label_path_follows_ultralytics() -> None:
    sep = os.sep
    assert yolo_label_path(f"{sep}d{sep}images{sep}train{sep}a.jpg") == Path(f"{sep}d{sep}labels{sep}train{sep}a.txt")
    # the last /images/ only
    assert yolo_label_path(f"{sep}images{sep}x{sep}images{sep}a.b.png") == Path(
        f"{sep}images{sep}x{sep}labels{sep}a.b.txt"
    )
    assert yolo_label_path(f"{sep}d{sep}a.png") == Path(f"{sep}d{sep}a.txt")


def test_read_yolo_denormalises_boxes_and_segments(yolo_root: Path) -> None:
    ds = read_yolo(yolo_root)
    assert ds.format == "yolo" and ds.categories.names == ("a", "b", "c") and ds.categories.ids == (0, 1, 2)
    one = ds.get("one.png")
    assert one.size == (220, 150)
    box, seg = one.objects
    assert box.category_id == 0 and box.box == pytest.approx((20, 30, 90, 100), abs=1e-5)
    assert box.source_id == "line 1" and box.geometry == "box"
    assert seg.geometry == "polygon" and seg.polygons[0] == pytest.approx((120, 20, 200, 40, 160, 120), abs=1e-5)
    assert seg.box == pytest.approx((120, 20, 200, 120), abs=1e-5)


def test_an_image_without_a_label_file_has_no_objects(yolo_root: Path) -> None:
    os.remove(yolo_root / "labels" / "two.txt")
    assert read_yolo(yolo_root).get("two.png").objects == ()


@pytest.mark.parametrize("mode", ["resize", "center-crop"])
def test_yolo_round_trip_through_the_geometry(yolo_root: Path, tmp_path: Path, mode: str) -> None:
    # read -> transform -> write labels beside the prepared images + the same data.yaml -> read again
    size = 128
    ds = read_yolo(yolo_root)
    scenes = _scenes()
    out = tmp_path / "out"
    write_data_yaml(out / "data.yaml", ds.categories, extra=ds.meta)
    expected = {}
    for ann in ds:
        res = transform_annotation(ann, size=size, resize=mode, min_visibility=0.0)
        img = prepare(scenes[ann.file_name].image, size, resize=mode)
        (out / "images").mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(out / "images" / ann.file_name)
        write_yolo_label(yolo_label_path(out / "images" / ann.file_name), res.annotation, ds.categories)
        expected[ann.file_name] = (res.annotation, img)
    again = read_yolo(out)
    assert again.categories == ds.categories
    for ann in again:
        before, img = expected[ann.file_name]
        assert len(ann.objects) == len(before.objects)
        shapes = scenes[ann.file_name].shapes
        for o1, o2, sh in zip(before.objects, ann.objects, shapes):
            assert o2.category_id == o1.category_id
            assert o2.box == pytest.approx(o1.box, abs=size * 1e-6)  # 6 decimals of a normalised coordinate
            if sh.kind == "rect":
                assert iou(measure_rectangle(img, sh.colour_index, o2.box), o2.box) >= 0.99
            else:
                assert mask_iou(object_mask(o2, width=size, height=size), shape_in_image(img, sh.colour_index)) >= 0.97


def test_written_data_yaml_keeps_the_other_keys(tmp_path: Path) -> None:
    cats = Categories.from_names(["cat", "dog"])
    p = write_data_yaml(tmp_path / "data.yaml", cats, extra={"path": ".", "train": "images", "names": ["x"]})
    data = yaml.safe_load(p.read_text())
    assert data == {"path": ".", "train": "images", "nc": 2, "names": {0: "cat", 1: "dog"}}
    assert read_data_yaml(p)[0] == cats


def test_yolo_lines_refuse_what_a_line_cannot_hold() -> None:
    from diffusemix.annotations import rle as rle_ops

    cats = Categories.from_names(["a"])
    m = np.zeros((8, 8), dtype=bool)
    m[2:4, 2:4] = True
    with pytest.raises(ValueError, match="has a mask \\(RLE\\), which YOLO labels cannot hold"):
        yolo_lines(ImageAnnotation("x", 8, 8, (ObjectAnnotation(0, (2, 2, 4, 4), rle=rle_ops.encode(m)),)), cats)
    two = ((1.0, 1.0, 3.0, 1.0, 2.0, 3.0), (5.0, 5.0, 7.0, 5.0, 6.0, 7.0))
    with pytest.raises(ValueError, match="has 2 polygons; a YOLO line holds one"):
        yolo_lines(ImageAnnotation("x", 8, 8, (ObjectAnnotation(0, (1, 1, 7, 7), polygons=two),)), cats)
    assert yolo_lines(ImageAnnotation("x", 8, 8, (ObjectAnnotation(0, (2, 2, 6, 4)),)), cats) == [
        "0 0.500000 0.375000 0.500000 0.250000"
    ]


# ---------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------

BAD_LINES = [
    ("0 0.5 0.5 -0.2 0.3", r"negative size"),
    ("0 0.5 0.5 0 0.3", r"zero size"),
    ("0 0.9 0.5 0.4 0.2", r"the box reaches outside the image \(x from 154 to 242; the image is 220 px wide"),
    ("5 0.5 0.5 0.2 0.2", r"category id 5 is not in the categories \(ids 0, 1, 2\)"),
    ("0.5 0.5 0.5 0.2 0.2", r"the class '0.5' is not a whole number"),
    ("0 0.1 0.1 0.2 0.2 0.3 0.3", r"the polygon has zero area"),
    ("0 0.1 0.1 0.2 0.2 0.3 1.5", r"the polygon reaches outside the image \(y from"),
    # (two points are four numbers: a box, as Ultralytics reads them)
    ("0 0.1 0.1", r"the polygon has 1 point\(s\); a polygon needs at least 3"),
    ("0 0.1 0.1 0.2", r"it has 3 coordinates after the class"),
    ("0 a b c d", r"it is not a list of numbers"),
]


@pytest.mark.parametrize("line,match", BAD_LINES)
def test_a_bad_label_line_names_the_file_and_line(yolo_root: Path, line: str, match: str) -> None:
    label = yolo_root / "labels" / "one.txt"
    label.write_text(label.read_text() + line + "\n")
    with pytest.raises(AnnotationError, match=match) as e:
        read_yolo(yolo_root)
    assert e.value.file == str(label) and e.value.object == "line 3" and e.value.image == "one.png"
    ds = read_yolo(yolo_root, on_error="skip")
    assert [a.file_name for a in ds] == ["two.png"] and ds.errors()[0]["source"] == "one.png"


def test_a_label_file_without_its_image(yolo_root: Path) -> None:
    (yolo_root / "labels" / "ghost.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    with pytest.raises(AnnotationError, match=r"ghost\.txt: this label file names an image that does not exist"):
        read_yolo(yolo_root)
    ds = read_yolo(yolo_root, on_error="skip")
    assert len(ds) == 2 and "ghost.txt" in ds.skipped[0].file


def test_names_are_required_and_checked(yolo_root: Path) -> None:
    (yolo_root / "data.yaml").write_text("nc: 3\n")
    with pytest.raises(AnnotationError, match=r"has no 'names'.*Add names"):
        read_yolo(yolo_root)
    (yolo_root / "data.yaml").write_text("names: {0: a, 2: b}\n")
    with pytest.raises(AnnotationError, match=r"'names' keys must be 0, 1, ..., 1"):
        read_yolo(yolo_root)
    (yolo_root / "data.yaml").write_text("names: [a, b]\nnc: 3\n")
    with pytest.raises(AnnotationError, match=r"'nc' is 3 but 'names' lists 2"):
        read_yolo(yolo_root)
    (yolo_root / "data.yaml").write_text("names: [a]\nkpt_shape: [17, 3]\n")
    with pytest.raises(AnnotationError, match=r"pose \(keypoint\) labels are not supported"):
        read_yolo(yolo_root)
    (yolo_root / "data.yaml").write_text("names: [a, b, c\n")
    with pytest.raises(AnnotationError, match=r"cannot be read"):
        read_yolo(yolo_root)
    os.remove(yolo_root / "data.yaml")
    with pytest.raises(AnnotationError, match=r"no dataset YAML"):
        read_yolo(yolo_root)


def test_an_unreadable_image(yolo_root: Path) -> None:
    (yolo_root / "images" / "bad.png").write_bytes(b"not a png")
    with pytest.raises(AnnotationError, match=r"bad\.png: the image cannot be read"):
        read_yolo(yolo_root)
    assert len(read_yolo(yolo_root, on_error="skip")) == 2


def test_exif_turned_images_normalise_by_their_displayed_size(tmp_path: Path) -> None:
    # Ultralytics reads labels against the EXIF-corrected size, as load_image returns the image
    root = tmp_path / "ds"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    (root / "data.yaml").write_text("names: [a]\n")
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (100, 40)).save(root / "images" / "t.jpg", exif=exif)  # displayed 40 x 100
    (root / "labels" / "t.txt").write_text("0 0.5 0.5 0.5 0.5\n")
    ann = read_yolo(root).images[0]
    assert ann.size == (40, 100) and ann.objects[0].box == pytest.approx((10, 25, 30, 75))
