"""``--annotations auto``: telling COCO, YOLO and mask folders apart, and reading through one entry point."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from annotation_helpers import make_scene, write_coco_dataset, write_yolo_dataset
from PIL import Image

from diffusemix.annotations.detect import detect_format, read_annotations
from diffusemix.annotations.issues import AnnotationError


def _scenes():
    return {"a.png": make_scene(60, 40, [("rect", 1, (5, 5, 30, 30))])}


def _masks(root: Path) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    Image.new("RGB", (8, 6)).save(root / "images" / "x.png")
    Image.fromarray(np.ones((6, 8), np.uint8)).save(root / "masks" / "x.png")
    (root / "classes.txt").write_text("bg\nthing\n")
    return root


def test_each_layout_is_detected_and_read(tmp_path: Path) -> None:
    coco = tmp_path / "coco"
    write_coco_dataset(coco, _scenes())
    found = detect_format(coco)
    assert (found.format, found.annotation_file.name, found.images_dir) == ("coco", "instances.json", coco / "images")
    assert read_annotations(coco).get("a.png").objects[0].box == (5.0, 5.0, 30.0, 30.0)
    # the JSON itself, and COCO's own layout (instances_<split>.json beside <split>/)
    assert detect_format(coco / "annotations" / "instances.json").root == coco
    split = tmp_path / "coco2017"
    (split / "annotations").mkdir(parents=True)
    shutil.copytree(coco / "images", split / "val2017")
    shutil.copy(coco / "annotations" / "instances.json", split / "annotations" / "instances_val2017.json")
    assert detect_format(split).images_dir == split / "val2017"
    assert len(read_annotations(split, format="coco")) == 1

    yolo = write_yolo_dataset(tmp_path / "yolo", {"a.png": make_scene(60, 40, [("rect", 0, (5, 5, 30, 30))])})
    assert detect_format(yolo).format == "yolo"
    assert read_annotations(yolo).format == "yolo"

    masks = _masks(tmp_path / "masks")
    assert detect_format(masks).format == "masks"
    assert read_annotations(masks).classes == ("bg", "thing")
    assert read_annotations(masks, format="masks", classes=["a", "b"]).classes == ("a", "b")


def test_ambiguous_or_empty_folders_say_what_they_found(tmp_path: Path) -> None:
    both = tmp_path / "both"
    write_coco_dataset(both, _scenes())
    _masks(both / "m")
    shutil.copytree(both / "m" / "masks", both / "masks")
    with pytest.raises(AnnotationError, match=r"matches several annotation formats: coco .*; masks .*--annotations"):
        detect_format(both)
    assert read_annotations(both, format="coco").format == "coco"  # naming the format settles it
    (both / "annotations" / "instances_b.json").write_text((both / "annotations" / "instances.json").read_text())
    with pytest.raises(
        AnnotationError, match=r"several COCO JSON files: annotations/instances.json, annotations/instances_b"
    ):
        detect_format(both)
    with pytest.raises(AnnotationError, match=r"2 COCO JSON files here"):
        read_annotations(both, format="coco")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(AnnotationError, match=r"no annotations found: looked for a COCO JSON"):
        detect_format(empty)
    with pytest.raises(AnnotationError, match=r"does not exist"):
        detect_format(tmp_path / "nope")
    (tmp_path / "x.txt").write_text("")
    with pytest.raises(AnnotationError, match=r"must be a COCO \.json"):
        detect_format(tmp_path / "x.txt")
    with pytest.raises(ValueError, match="annotations format must be one of auto, coco, yolo, masks"):
        read_annotations(empty, format="voc")  # type: ignore[arg-type]


def test_a_json_that_is_not_coco_is_not_taken_for_it(tmp_path: Path) -> None:
    _masks(tmp_path)
    (tmp_path / "config.json").write_text('{"lr": 0.1}')
    assert detect_format(tmp_path).format == "masks"
