"""Explore's optional objects (diffusemix/ui/annotate.py): a COCO JSON, a YOLO label file or typed boxes,
checked, carried to S x S and drawn on I, Î, H and A; handlers called directly with the preview editor."""

from __future__ import annotations

import json
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
from annotation_helpers import iou, make_scene, measure_rectangle
from app_helpers import clean_uploads, ctx, explore_args, upload  # noqa: F401 (fixtures)
from PIL import Image

from diffusemix.annotations.draw import category_colour
from diffusemix.ui.annotate import parse_boxes, read_annotation_file
from diffusemix.ui.explore import explore

pytestmark = pytest.mark.filterwarnings("ignore::Warning:gradio.queueing")


@pytest.fixture(scope="module")
def scene_upload(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, object]:
    d = tmp_path_factory.mktemp("scene")
    scene = make_scene(160, 120, [("rect", 0, (20, 20, 70, 90)), ("rect", 1, (100, 30, 150, 100))])
    Image.fromarray(scene.image).save(d / "scene.png")
    return upload(d / "scene.png"), scene


def _args(image: str, **over):
    return explore_args(image=image, layouts=["left"], mask="binary", seam=0, size=64, **over)


def test_typed_boxes_are_drawn_on_i_generated_h_and_a_and_reported(ctx, scene_upload):
    image, scene = scene_upload
    boxes = "20,20,70,90,cube\n100,30,150,100,block"
    plain = explore(**_args(image), ctx=ctx)
    gallery, _, records, summary, state = explore(**_args(image, boxes=boxes), ctx=ctx)
    # the objects' rows, as the exporter writes them (resize 160 x 120 -> 64: x * 0.4, y * 0.5333)
    sample = records["objects"]["samples"][0]
    assert records["objects"]["categories"] == ["cube", "block"]
    x, y, w, h = sample["objects"]["bbox"][0]
    assert (x, y, x + w, y + h) == pytest.approx((8.0, 10.667, 28.0, 48.0), abs=1e-3)
    assert [o["status"] for o in sample["object_outcomes"]] == ["kept", "kept"]
    assert [o["generated_share"] for o in sample["object_outcomes"]] == [0.0, 1.0]  # left: I's side, right: Î's
    assert "**Objects**: 2 (2 kept, 0 clipped, 0 dropped by the resize)" in summary
    # drawn on I, Î, H and A (their pixels change), never on M and F; the stages themselves are untouched
    for k, name in enumerate(["input", "generated", "mask", "hybrid", "fractal", "augmented"]):
        with Image.open(gallery[k][0]) as a, Image.open(plain[0][k][0]) as b:
            changed = not np.array_equal(np.asarray(a), np.asarray(b))
        assert changed == (name in ("input", "generated", "hybrid", "augmented")), name
    with Image.open(gallery[0][0]) as drawn:
        outline = np.all(np.asarray(drawn) == category_colour(0), axis=-1)
    assert outline[12:47, 8].all() and outline[47, 9:27].all()  # the box's left and bottom edges on its rectangle
    assert np.array_equal(state["stages"][0].input, np.asarray(Image.open(plain[0][0][0])))
    # unticked: nothing drawn, the rows still there
    g2, *_ = explore(**_args(image, boxes=boxes, draw_objects=False), ctx=ctx)
    with Image.open(g2[0][0]) as a, Image.open(plain[0][0][0]) as b:
        assert np.array_equal(np.asarray(a), np.asarray(b))


def test_a_coco_json_or_a_yolo_label_file_gives_the_same_objects(ctx, scene_upload, tmp_path):
    image, scene = scene_upload
    coco = {"images": [{"id": 5, "file_name": "elsewhere/scene.png", "width": 160, "height": 120}],
            "annotations": [{"id": 1, "image_id": 5, "category_id": 3, "bbox": [20, 20, 50, 70]},
                            {"id": 2, "image_id": 5, "category_id": 3, "bbox": [100, 30, 50, 70]}],
            "categories": [{"id": 3, "name": "box"}]}
    (tmp_path / "scene.json").write_text(json.dumps(coco))
    (tmp_path / "scene.txt").write_text("0 0.28125 0.458333 0.3125 0.583333\n0 0.78125 0.541667 0.3125 0.583333\n")
    got = []
    for f in ("scene.json", "scene.txt"):
        _, _, records, _, state = explore(**_args(image, annotation_file=upload(tmp_path / f)), ctx=ctx)
        got.append(records["objects"]["samples"][0]["objects"]["bbox"])
        a = state["stages"][0].input.astype(np.float64)
        for (x, y, w, h), sh in zip(got[-1], scene.shapes):  # on their rectangles in I
            assert iou(measure_rectangle(a, sh.colour_index, (x, y, x + w, y + h), margin=3),
                       (x, y, x + w, y + h)) >= 0.99
    assert np.allclose(got[0], got[1], atol=1e-3)


@pytest.mark.parametrize("boxes,match", [
    ("20,20,70", r"line 1 \('20,20,70'\) is not x0,y0,x1,y1,class"),
    ("20,20,70,90,a\n10,10,5,40,b", r"Boxes line 2: the box has a negative size \(-5 x 30\)"),
    ("20,20,400,90,a", "line 1: the box reaches outside the image"),
    ("a,b,c,d,e", "line 1: x0, y0, x1, y1 must be numbers"),
])
def test_bad_boxes_are_named_by_line(ctx, scene_upload, boxes, match):
    image, _ = scene_upload
    with pytest.raises(gr.Error, match=match):
        explore(**_args(image, boxes=boxes), ctx=ctx)


def test_a_file_for_another_image_is_refused_and_no_server_path_is_shown(ctx, scene_upload, tmp_path):
    image, _ = scene_upload
    coco = {"images": [{"id": 1, "file_name": "a.png", "width": 320, "height": 240},
                       {"id": 2, "file_name": "b.png", "width": 160, "height": 120}],
            "annotations": [], "categories": [{"id": 1, "name": "x"}]}
    (tmp_path / "two.json").write_text(json.dumps(coco))
    with pytest.raises(gr.Error, match=r"lists 2 images \(a.png, b.png\), none named 'scene.png'") as e:
        explore(**_args(image, annotation_file=upload(tmp_path / "two.json")), ctx=ctx)
    assert "/" not in str(e.value).split("none named")[0]
    coco["images"] = coco["images"][:1]
    (tmp_path / "one.json").write_text(json.dumps(coco))
    with pytest.raises(gr.Error, match="the annotation is for a 320x240 image but the image loads as 160x120"):
        explore(**_args(image, annotation_file=upload(tmp_path / "one.json")), ctx=ctx)
    (tmp_path / "bad.txt").write_text("0 0.5 0.5 0.2\n")
    with pytest.raises(gr.Error, match="bad.txt, line 1: it has 3 coordinates"):
        explore(**_args(image, annotation_file=upload(tmp_path / "bad.txt")), ctx=ctx)
    with pytest.raises(gr.Error, match="not both"):
        explore(**_args(image, annotation_file=upload(tmp_path / "bad.txt"), boxes="1,1,5,5,a"), ctx=ctx)


def test_parsers_alone():
    ann, cats = parse_boxes(" 1, 2, 10, 20, red car \n\n5,5,9,9,dog\n3,3,4,4,red car", width=30, height=30)
    assert cats.names == ("red car", "dog") and [o.category_id for o in ann.objects] == [0, 1, 0]
    assert ann.objects[0].box == (1.0, 2.0, 10.0, 20.0) and ann.objects[2].source_id == "line 4"
    with pytest.raises(ValueError, match="neither a COCO .json nor a YOLO .txt"):
        read_annotation_file(Path("x.xml"), image_name="x.png", width=10, height=10)
