"""Training targets: torchvision's detection dict (tv_tensors optional), segmentation, 🤗 objects, DETR labels."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import torch

from diffusemix.annotations import rle as rle_ops
from diffusemix.annotations import targets as targets_mod
from diffusemix.annotations.targets import (
    detection_target,
    detr_target,
    hf_objects,
    object_mask,
    segmentation_target,
    tv_tensors_available,
)
from diffusemix.annotations.types import Categories, Category, ImageAnnotation, ObjectAnnotation, SemanticMask

CATS = Categories((Category(1, "person"), Category(3, "car"), Category(7, "dog")))


def _shaped() -> ImageAnnotation:
    m = np.zeros((32, 40), dtype=bool)
    m[20:30, 5:15] = True
    return ImageAnnotation(
        "x.png",
        40,
        32,
        (
            ObjectAnnotation(3, (2, 2, 12, 10), polygons=((2.0, 2.0, 12.0, 2.0, 12.0, 10.0, 2.0, 10.0),), source_id=11),
            ObjectAnnotation(7, (5, 20, 15, 30), rle=rle_ops.encode(m), iscrowd=True, source_id=12),
        ),
    )


def test_detection_target_types_and_values() -> None:
    ann = _shaped()
    t = detection_target(ann, CATS, tv_tensors=False)
    assert set(t) == {"boxes", "labels", "area", "iscrowd", "masks"}
    assert t["boxes"].dtype == torch.float32 and t["boxes"].shape == (2, 4)
    assert t["boxes"].tolist() == [[2, 2, 12, 10], [5, 20, 15, 30]]
    assert t["labels"].dtype == torch.int64 and t["labels"].tolist() == [2, 3]  # index + 1: 0 is the background
    assert t["masks"].dtype == torch.uint8 and t["masks"].shape == (2, 32, 40)
    assert t["masks"][0].sum() == 80 and t["masks"][1].sum() == 100
    assert t["masks"][0, 2:10, 2:12].all() and t["masks"][1, 20:30, 5:15].all()
    assert t["area"].tolist() == [80.0, 100.0] and t["iscrowd"].tolist() == [0, 1]
    assert detection_target(ann, CATS, labels="index", tv_tensors=False)["labels"].tolist() == [1, 2]
    assert detection_target(ann, CATS, labels="category_id", tv_tensors=False)["labels"].tolist() == [3, 7]


def test_masks_are_never_invented_for_a_box() -> None:
    ann = ImageAnnotation("x.png", 20, 20, (ObjectAnnotation(1, (1, 1, 5, 5)),))
    assert "masks" not in detection_target(ann, CATS, tv_tensors=False)  # auto: a box alone, no masks
    with pytest.raises(ValueError, match=r"x\.png: object 0 has only a box.*masks=False"):
        detection_target(ann, CATS, masks=True, tv_tensors=False)
    assert "masks" not in detection_target(_shaped(), CATS, masks=False, tv_tensors=False)


def test_an_image_without_objects() -> None:
    t = detection_target(ImageAnnotation("e.png", 16, 8, ()), CATS, masks=True, tv_tensors=False)
    assert t["boxes"].shape == (0, 4) and t["labels"].shape == (0,) and t["masks"].shape == (0, 8, 16)


def test_without_torchvision_auto_gives_plain_tensors_and_true_says_why() -> None:
    if tv_tensors_available():
        pytest.skip("torchvision imports here")
    t = detection_target(_shaped(), CATS)
    assert type(t["boxes"]) is torch.Tensor and type(t["masks"]) is torch.Tensor
    with pytest.raises(ImportError, match="tv_tensors=True needs torchvision, which does not import here"):
        detection_target(_shaped(), CATS, tv_tensors=True)
    with pytest.raises(ValueError, match="tv_tensors must be True, False or 'auto'"):
        detection_target(_shaped(), CATS, tv_tensors="yes")


def test_with_tv_tensors_boxes_carry_format_and_canvas(monkeypatch: pytest.MonkeyPatch) -> None:
    # torchvision cannot be imported on this machine: a stand-in module records how it is called.
    # (It checks our calls against the tv_tensors API, BoundingBoxes(data, format=, canvas_size=) and
    # Mask(data); it proves nothing about torchvision itself.)
    calls = []

    class BoundingBoxes(torch.Tensor):
        def __new__(cls, data, *, format, canvas_size):
            calls.append(("boxes", format, canvas_size))
            return data.as_subclass(cls)

    class Mask(torch.Tensor):
        def __new__(cls, data):
            calls.append(("mask",))
            return data.as_subclass(cls)

    tv = types.ModuleType("torchvision.tv_tensors")
    tv.BoundingBoxes, tv.Mask = BoundingBoxes, Mask
    pkg = types.ModuleType("torchvision")
    pkg.tv_tensors = tv
    monkeypatch.setitem(sys.modules, "torchvision", pkg)
    monkeypatch.setitem(sys.modules, "torchvision.tv_tensors", tv)
    targets_mod._tv_tensors.cache_clear()
    try:
        t = detection_target(_shaped(), CATS)
        assert isinstance(t["boxes"], BoundingBoxes) and isinstance(t["masks"], Mask)
        assert calls == [("boxes", "XYXY", (32, 40)), ("mask",)]
        seg = segmentation_target(SemanticMask(np.zeros((3, 4), np.uint8), ("a",)))
        assert isinstance(seg, Mask)
        assert type(detection_target(_shaped(), CATS, tv_tensors=False)["boxes"]) is torch.Tensor
    finally:
        targets_mod._tv_tensors.cache_clear()


def test_segmentation_target_is_int64_class_ids() -> None:
    m = np.array([[0, 1], [255, 2]], dtype=np.uint8)
    t = segmentation_target(SemanticMask(m, ("a", "b", "c")), tv_tensors=False)
    assert t.dtype == torch.int64 and t.tolist() == [[0, 1], [255, 2]]


def test_hf_objects_column() -> None:
    o = hf_objects(_shaped(), CATS)
    assert o == {
        "id": [11, 12],
        "bbox": [[2.0, 2.0, 10.0, 8.0], [5.0, 20.0, 10.0, 10.0]],
        "category": [1, 2],
        "area": [80.0, 100.0],
        "iscrowd": [0, 1],
    }
    assert hf_objects(_shaped(), CATS, bbox_format="xyxy")["bbox"][0] == [2.0, 2.0, 12.0, 10.0]
    yolo_like = ImageAnnotation("y", 10, 10, (ObjectAnnotation(1, (1, 1, 2, 2), source_id="line 1"),))
    assert hf_objects(yolo_like, CATS)["id"] == [0]


def test_object_mask_of_a_box_is_none() -> None:
    assert object_mask(ObjectAnnotation(1, (1, 1, 3, 3)), width=4, height=4) is None


def test_a_tiny_detr_style_model_trains_on_the_targets() -> None:
    # YOLOS from a config (random weights, pure torch): one optimiser step on targets from an annotation
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("scipy")  # the Hungarian matcher of the DETR loss
    torch.manual_seed(0)
    config = transformers.YolosConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        image_size=[64, 64],
        patch_size=16,
        num_detection_tokens=10,
        num_labels=len(CATS),
    )
    model = transformers.YolosForObjectDetection(config)
    anns = [
        ImageAnnotation("a", 64, 64, (ObjectAnnotation(1, (4, 4, 30, 40)), ObjectAnnotation(7, (35, 10, 60, 60)))),
        ImageAnnotation("b", 64, 64, (ObjectAnnotation(3, (10, 20, 50, 44)),)),
    ]
    labels = [detr_target(a, CATS) for a in anns]
    assert labels[0]["class_labels"].tolist() == [0, 2]
    assert labels[0]["boxes"][0].tolist() == pytest.approx([17 / 64, 22 / 64, 26 / 64, 36 / 64])
    pixels = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    out = model(pixel_values=pixels, labels=labels)
    assert torch.isfinite(out.loss)
    out.loss.backward()
    opt.step()
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_categories_and_from_mask() -> None:
    assert CATS.index(7) == 2 and CATS.name(3) == "car" and 3 in CATS and 4 not in CATS
    assert CATS == Categories((Category(1, "person"), Category(3, "car"), Category(7, "dog")))
    with pytest.raises(KeyError, match=r"unknown category id 4; known ids: \[1, 3, 7\]"):
        CATS.index(4)
    with pytest.raises(ValueError, match="category id 3 appears twice \\('car' and 'cat'\\)"):
        Categories((Category(3, "car"), Category(3, "cat")))
    m = np.zeros((10, 12), dtype=bool)
    m[2:5, 3:9] = True
    o = ObjectAnnotation.from_mask(3, m, iscrowd=True)
    assert o.box == (3.0, 2.0, 9.0, 5.0) and o.iscrowd and np.array_equal(rle_ops.decode(o.rle), m)
    with pytest.raises(ValueError, match="the mask is empty"):
        ObjectAnnotation.from_mask(3, np.zeros((4, 4)))
