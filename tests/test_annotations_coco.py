"""COCO instances JSON: reading with checks, writing that pycocotools loads with objects on the right pixels."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import numpy as np
import pytest
from annotation_helpers import (
    coco_dict,
    iou,
    make_scene,
    mask_iou,
    measure_rectangle,
    shape_in_image,
    write_coco_dataset,
)
from PIL import Image

from diffusemix.annotations import rle as rle_ops
from diffusemix.annotations.coco import CocoWriter, read_coco
from diffusemix.annotations.geometry import transform_annotation
from diffusemix.annotations.issues import AnnotationError
from diffusemix.images import prepare

pytest.importorskip("pycocotools")
from pycocotools.coco import COCO


def _scenes():
    return {
        "a.png": make_scene(
            220,
            150,
            [
                ("rect", 1, (20, 30, 90, 100)),
                ("polygon", 3, [120, 20, 200, 40, 160, 120]),
                ("blob", 7, (60, 125, 30, 15)),
            ],
        ),
        "sub/b.png": make_scene(160, 240, [("rect", 7, (30, 40, 130, 110)), ("rect", 1, (10, 150, 70, 230))]),
        "empty.png": make_scene(64, 64, []),
    }


@pytest.fixture()
def coco_root(tmp_path: Path) -> Path:
    write_coco_dataset(tmp_path, _scenes())
    return tmp_path


def _write_json(tmp_path: Path, data: dict, name: str = "ann.json") -> Path:
    p = tmp_path / name
    p.write_text(json.dumps(data))
    return p


# ---------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------


def test_read_coco_gives_every_object_in_its_shape(coco_root: Path) -> None:
    ds = read_coco(coco_root / "annotations" / "instances.json", images_dir=coco_root / "images")
    assert ds.format == "coco" and not ds.skipped
    assert ds.categories.ids == (1, 3, 7) and ds.categories.name(3) == "green thing"
    assert [a.file_name for a in ds] == ["a.png", "empty.png", "sub/b.png"]
    a = ds.get("a.png")
    assert a.size == (220, 150) and a.image_id == 10
    assert [o.geometry for o in a.objects] == ["box", "polygon", "mask"]
    assert a.objects[0].box == (20.0, 30.0, 90.0, 100.0)
    assert a.objects[1].polygons[0] == (120.0, 20.0, 200.0, 40.0, 160.0, 120.0)
    assert rle_ops.decode(a.objects[2].rle).sum() == _scenes()["a.png"].shapes[2].mask.sum()
    assert ds.get("empty.png").objects == ()


def test_read_coco_accepts_uncompressed_crowd_rle_and_derives_a_missing_bbox(tmp_path: Path) -> None:
    m = np.zeros((10, 12), dtype=np.uint8)
    m[2:5, 3:9] = 1
    counts = []  # column-major runs, starting with zeros
    flat = m.flatten(order="F")
    cur, n = 0, 0
    for v in flat:
        if v == cur:
            n += 1
        else:
            counts.append(n)
            cur, n = v, 1
    counts.append(n)
    data = {
        "images": [{"id": 1, "file_name": "x.png", "width": 12, "height": 10}],
        "annotations": [
            {
                "id": 5,
                "image_id": 1,
                "category_id": 2,
                "iscrowd": 1,
                "segmentation": {"size": [10, 12], "counts": counts},
            }
        ],
        "categories": [{"id": 2, "name": "crowd"}],
    }
    ds = read_coco(_write_json(tmp_path, data), check_images=False)
    o = ds.images[0].objects[0]
    assert o.iscrowd and o.box == (3.0, 2.0, 9.0, 5.0)
    assert np.array_equal(rle_ops.decode(o.rle), m.astype(bool))


# ---------------------------------------------------------------------------
# writing: pycocotools loads it and the objects land on the right pixels
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["resize", "center-crop"])
def test_written_coco_loads_in_pycocotools_and_objects_land_on_their_pixels(
    coco_root: Path, tmp_path: Path, mode: str
) -> None:
    size = 128
    ds = read_coco(coco_root / "annotations" / "instances.json", images_dir=coco_root / "images")
    scenes = _scenes()
    out = tmp_path / "out"
    writer = CocoWriter(ds.categories)
    prepared = {}
    for k, ann in enumerate(ds):
        res = transform_annotation(ann, size=size, resize=mode, min_visibility=0.25)
        img = prepare(scenes[ann.file_name].image, size, resize=mode)
        name = f"A_{k}.png"
        (out / "images").mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(out / "images" / name)
        writer.add(name, res.annotation, extra={"source": ann.file_name})
        prepared[name] = (ann.file_name, img, res)
    path = writer.write(out / "instances.json")

    coco = COCO(str(path))
    assert sorted(coco.getImgIds()) == [1, 2, 3]
    assert [c["id"] for c in coco.loadCats(coco.getCatIds())] == [1, 3, 7]
    for img_info in coco.loadImgs(coco.getImgIds()):
        source, img, res = prepared[img_info["file_name"]]
        assert img_info["source"] == source and (img_info["width"], img_info["height"]) == (size, size)
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[img_info["id"]]))
        kept = [o for o in res.outcomes if o.object is not None]
        assert len(anns) == len(kept)
        shapes = [sh for sh, o in zip(scenes[source].shapes, res.outcomes) if o.object is not None]
        for a, sh in zip(anns, shapes):
            x, y, w, h = a["bbox"]
            if sh.kind == "rect":
                measured = measure_rectangle(img, sh.colour_index, (x, y, x + w, y + h))
                assert iou(measured, (x, y, x + w, y + h)) >= 0.99
                assert a["area"] == pytest.approx(w * h, abs=0.01)
            else:
                m = coco.annToMask(a).astype(bool)
                assert mask_iou(m, shape_in_image(img, sh.colour_index)) >= 0.97, (source, sh.kind)
                assert a["area"] == m.sum()  # recomputed: the mask's pixels, as COCO does
            assert a["iscrowd"] == 0


def test_written_coco_reads_back_the_same_objects(coco_root: Path, tmp_path: Path) -> None:
    ds = read_coco(coco_root / "annotations" / "instances.json", images_dir=coco_root / "images")
    writer = CocoWriter(ds.categories, meta={"info": {"description": "test"}})
    results = []
    for ann in ds:
        res = transform_annotation(ann, size=96, resize="center-crop", min_visibility=0.0)
        writer.add(ann.file_name, res.annotation)
        results.append(res.annotation)
    again = read_coco(writer.write(tmp_path / "w.json"), check_images=False)
    assert json.loads((tmp_path / "w.json").read_text())["info"] == {"description": "test"}
    for before, after in zip(results, again):
        assert after.size == (96, 96) and len(after.objects) == len(before.objects)
        for o1, o2 in zip(before.objects, after.objects):
            assert o2.box == pytest.approx(o1.box, abs=1e-3)
            assert o2.category_id == o1.category_id and o2.geometry == o1.geometry
            if o1.rle is not None:
                assert o2.rle == o1.rle


def test_writer_refuses_an_unknown_category() -> None:
    from diffusemix.annotations.types import Categories, ImageAnnotation, ObjectAnnotation

    w = CocoWriter(Categories.from_names(["a"], start=1))
    with pytest.raises(ValueError, match="category id 9 is not in the writer's categories"):
        w.add("x.png", ImageAnnotation("x.png", 10, 10, (ObjectAnnotation(9, (1, 1, 5, 5)),)))


# ---------------------------------------------------------------------------
# bad input: a clear error naming file and object, or a skip with a reason
# ---------------------------------------------------------------------------


def _base(tmp_path: Path) -> dict:
    scenes = {
        "a.png": make_scene(100, 80, [("rect", 1, (10, 10, 50, 50))]),
        "b.png": make_scene(100, 80, [("rect", 3, (20, 20, 60, 60))]),
    }
    for fn, s in scenes.items():
        Image.fromarray(s.image).save(tmp_path / fn)
    return coco_dict(scenes)


def _break(data: dict, ann: int = 0, **changes) -> dict:
    d = copy.deepcopy(data)
    d["annotations"][ann].update(changes)
    return d


BAD_OBJECTS = [
    ({"bbox": [90, 10, 30, 20]}, r"reaches outside the image \(x from 90 to 120; the image is 100 px wide"),
    ({"bbox": [10, 10, -5, 20]}, r"negative size \(-5 x 20\)"),
    ({"bbox": [10, 10, 0, 20]}, r"zero size"),
    ({"bbox": [10, 10, 20]}, r"'bbox' must be \[x, y, width, height\]"),
    ({"bbox": [10, "a", 5, 5]}, r"'bbox' must be 4 numbers"),
    ({"segmentation": [[10, 10, 20, 20]]}, r"has 2 point\(s\); a polygon needs at least 3"),
    ({"segmentation": [[10, 10, 20, 20, 30]]}, r"odd count of numbers"),
    ({"segmentation": [[10, 10, 20, 20, 30, 30]]}, r"zero area"),
    ({"segmentation": [10, 10, 20, 20, 30, 10]}, r"must be a list of polygons"),
    ({"category_id": 99}, r"category id 99 is not in the categories \(ids 1, 3, 7\)"),
    ({"segmentation": {"size": [40, 50], "counts": "abc"}}, r"the RLE mask is 50x40 .* but its image is 100x80"),
    ({"segmentation": {"size": [80, 100], "counts": [5, 10]}}, r"RLE counts add up to 15 pixels, not 80 x 100"),
    ({"iscrowd": 3}, r"iscrowd must be 0 or 1"),
]


@pytest.mark.parametrize("change,match", BAD_OBJECTS)
def test_a_bad_object_raises_naming_file_image_and_object(tmp_path: Path, change: dict, match: str) -> None:
    path = _write_json(tmp_path, _break(_base(tmp_path), **change))
    with pytest.raises(AnnotationError, match=match) as e:
        read_coco(path)
    assert e.value.file == str(path) and e.value.image == "a.png" and e.value.object == "annotation id 1"
    assert str(path) in str(e.value) and "annotation id 1" in str(e.value)


@pytest.mark.parametrize("change,match", BAD_OBJECTS[:3])
def test_skip_leaves_out_the_whole_image_and_lists_why(tmp_path: Path, change: dict, match: str) -> None:
    path = _write_json(tmp_path, _break(_base(tmp_path), **change))
    ds = read_coco(path, on_error="skip")
    assert [a.file_name for a in ds] == ["b.png"]
    (issue,) = ds.skipped
    assert issue.image == "a.png" and issue.object == "annotation id 1"
    err = ds.errors()[0]
    assert err["source"] == "a.png" and err["kind"] == "annotation" and err["annotation_file"] == str(path)
    import re

    assert re.search(match, err["reason"])


def test_a_box_within_the_tolerance_is_clipped_to_the_image(tmp_path: Path) -> None:
    path = _write_json(tmp_path, _break(_base(tmp_path), bbox=[-0.4, 10, 100.9, 20]))
    assert read_coco(path).get("a.png").objects[0].box == (0.0, 10.0, 100.0, 30.0)
    with pytest.raises(AnnotationError, match="reaches outside"):
        read_coco(path, tolerance=0.0)


def test_an_annotation_naming_a_missing_image_id(tmp_path: Path) -> None:
    path = _write_json(tmp_path, _break(_base(tmp_path), image_id=999))
    with pytest.raises(AnnotationError, match=r"names image_id 999, which is not in 'images'.*Every annotation"):
        read_coco(path)
    ds = read_coco(path, on_error="skip")
    assert [a.file_name for a in ds] == ["a.png", "b.png"] and ds.get("a.png").objects == ()
    assert ds.skipped[0].object == "annotation id 1"


def test_an_image_file_that_is_missing(tmp_path: Path) -> None:
    data = _base(tmp_path)
    os.remove(tmp_path / "a.png")
    path = _write_json(tmp_path, data)
    with pytest.raises(AnnotationError, match=r"the image file does not exist: .*a\.png.*Give the right images folder"):
        read_coco(path)
    ds = read_coco(path, on_error="skip")
    assert [a.file_name for a in ds] == ["b.png"] and ds.skipped[0].image == "a.png"
    assert [a.file_name for a in read_coco(path, check_images=False)] == ["a.png", "b.png"]


def test_an_image_of_another_size_than_the_json_says(tmp_path: Path) -> None:
    data = _base(tmp_path)
    data["images"][0]["width"] = 120
    with pytest.raises(AnnotationError, match=r"the JSON says the image is 120x80 but the file is 100x80"):
        read_coco(_write_json(tmp_path, data))


def test_exif_orientation_is_named_when_it_explains_the_size(tmp_path: Path) -> None:
    data = _base(tmp_path)
    img = Image.open(tmp_path / "a.png").convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90: displayed 80 x 100
    img.save(tmp_path / "a.jpg", exif=exif)
    data["images"][0]["file_name"] = "a.jpg"
    with pytest.raises(AnnotationError, match=r"the file is 80x100 \(its EXIF orientation turns it\)"):
        read_coco(_write_json(tmp_path, data))


def test_the_json_size_is_bounded_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "huge.json"
    path.write_bytes(b"{" + b" " * 5000)  # not even JSON: the size is refused first
    with pytest.raises(AnnotationError, match=r"5,001 bytes, more than the limit of 4,096 \(max_json_bytes\)"):
        read_coco(path, max_json_bytes=4096)


@pytest.mark.parametrize(
    "text,match",
    [
        ('{"images": [', r"not valid JSON: .* at line 1, column 13"),
        ("[1, 2]", r"not a COCO instances file"),
        ('{"images": [], "annotations": []}', r"'categories' must be a non-empty list"),
        ('{"images": [], "annotations": [], "categories": [{"id": "1", "name": "x"}]}', r"categories\[0\] must have"),
        (
            '{"images": [], "annotations": [], "categories": [{"id": 1, "name": "x"}, {"id": 1, "name": "y"}]}',
            r"category id 1 appears twice",
        ),
    ],
)
def test_a_broken_file_always_raises(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "x.json"
    path.write_text(text)
    with pytest.raises(AnnotationError, match=match):
        read_coco(path, on_error="skip")


def test_not_utf8_not_a_file_and_missing(tmp_path: Path) -> None:
    (tmp_path / "l1.json").write_bytes('{"images": "é"}'.encode("latin-1"))
    with pytest.raises(AnnotationError, match="not UTF-8"):
        read_coco(tmp_path / "l1.json")
    with pytest.raises(AnnotationError, match="does not exist"):
        read_coco(tmp_path / "nope.json")
    os.mkfifo(tmp_path / "fifo.json")
    with pytest.raises(AnnotationError, match="not a regular file"):
        read_coco(tmp_path / "fifo.json")


def test_duplicate_image_ids_and_names_and_unsafe_names(tmp_path: Path) -> None:
    data = _base(tmp_path)
    dup = copy.deepcopy(data)
    dup["images"][1]["id"] = dup["images"][0]["id"]
    with pytest.raises(AnnotationError, match=r"image id 10 appears twice"):
        read_coco(_write_json(tmp_path, dup), on_error="skip")
    same = copy.deepcopy(data)
    same["images"][1]["file_name"] = "a.png"
    ds = read_coco(_write_json(tmp_path, same), on_error="skip")
    assert len(ds) == 1 and "listed twice" in ds.skipped[0].reason
    for bad in ("../a.png", "/etc/passwd"):
        esc = copy.deepcopy(data)
        esc["images"][0]["file_name"] = bad
        with pytest.raises(AnnotationError, match=r"must be a path inside the images folder"):
            read_coco(_write_json(tmp_path, esc))
    noint = copy.deepcopy(data)
    noint["images"][0]["width"] = 0
    with pytest.raises(AnnotationError, match=r"images\[0\]: 'width' and 'height' must be positive integers"):
        read_coco(_write_json(tmp_path, noint))


def test_annotation_error_fields(tmp_path: Path) -> None:
    from diffusemix.errors import DiffuseMixError

    path = _write_json(tmp_path, _break(_base(tmp_path), category_id=99))
    with pytest.raises(DiffuseMixError) as e:
        read_coco(path)
    err = e.value
    assert isinstance(err, AnnotationError) and isinstance(err, ValueError)
    assert (err.file, err.path, err.image, err.object) == (str(path), str(path), "a.png", "annotation id 1")
    assert err.reason == "category id 99 is not in the categories (ids 1, 3, 7)"
    assert str(err) == err.message() == f"{path} (image 'a.png'), annotation id 1: {err.reason}"
