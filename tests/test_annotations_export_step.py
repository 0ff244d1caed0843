"""The exporter's annotation step (prototype): records in, A's annotation and row fields out."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from annotation_helpers import iou, make_scene, measure_rectangle

from diffusemix.annotations.export_step import (
    AnnotationOptions,
    annotate_sample,
    annotate_semantic_sample,
    check_image_size,
    plan_annotations,
    prepare_annotation,
)
from diffusemix.annotations.issues import AnnotationError
from diffusemix.errors import SettingError
from diffusemix.annotations.seam import generated_shares
from diffusemix.annotations.types import Categories, Category, ImageAnnotation, ObjectAnnotation, SemanticMask
from diffusemix.engine import apply_record
from diffusemix.images import prepare
from diffusemix.recipe import Recipe, draw

CATS = Categories((Category(1, "a"), Category(3, "b"), Category(7, "c")))


def _scene():
    # rectangles left, right, top-left and straddling the vertical seam of a 300 x 200 image
    return make_scene(
        300,
        200,
        [
            ("rect", 1, (60, 30, 120, 90)),
            ("rect", 3, (200, 110, 270, 180)),
            ("rect", 7, (130, 120, 170, 170)),
            ("rect", 1, (5, 150, 45, 195)),
        ],
    )


def _ann(scene) -> ImageAnnotation:
    return ImageAnnotation(
        "s.png",
        scene.width,
        scene.height,
        tuple(ObjectAnnotation(sh.category_id, sh.box, source_id=i + 1) for i, sh in enumerate(scene.shapes)),
    )


def test_rows_are_json_and_record_every_object(tmp_path: Path) -> None:
    scene = _scene()
    recipe = Recipe(size=128, resize="center-crop", prompts=("snowy", "sunset"), seed=3)
    records = draw(recipe, "s.png", ["f0", "f1"])
    out_records, samples = plan_annotations(_ann(scene), records, recipe, CATS)
    assert out_records == records  # "drawn": the method's layouts stand
    for rec, s in zip(records, samples):
        row = json.loads(json.dumps(s.row))
        # centre square of 300 x 200: x in [50, 250); the last object is cut to 0, the first kept
        statuses = [o["status"] for o in row["object_outcomes"]]
        assert statuses == ["kept", "clipped", "kept", "dropped"]
        assert row["object_count"] == 3 and row["objects_clipped"] == 1 and row["objects_dropped"] == 1
        assert row["object_outcomes"][3]["generated_share"] is None and row["object_outcomes"][3]["reason"]
        assert row["object_outcomes"][1]["visible"] == pytest.approx(50 / 70, abs=1e-3)
        assert s.generated_share == generated_shares(s.annotation, layout=rec.layout, kind=rec.mask, seam=rec.seam)
        assert [o["generated_share"] for o in row["object_outcomes"][:3]] == pytest.approx(
            list(s.generated_share), abs=1e-3
        )
        assert row["objects"]["category"] == [0, 1, 2] and len(row["objects"]["bbox"]) == 3
        x, y, w, h = row["objects"]["bbox"][0]
        assert (x, y, x + w, y + h) == pytest.approx((10 * 0.64, 30 * 0.64, 70 * 0.64, 90 * 0.64), abs=1e-3)


def test_keep_objects_changes_only_the_layout_and_records_it() -> None:
    scene = _scene()
    recipe = Recipe(
        size=128,
        prompts=("snowy", "sunset", "aurora"),
        layouts=("left", "right", "top", "bottom"),
        mask="binary",
        seam=0,
    )
    records = draw(recipe, "s.png", ["f0"])
    opts = AnnotationOptions(layout_choice="keep-objects")
    chosen, samples = plan_annotations(_ann(scene), records, recipe, CATS, opts)
    for before, after, s in zip(records, chosen, samples):
        assert dataclasses.replace(after, layout=before.layout) == before
        assert after.layout == "bottom"  # three of the four objects lie in the lower half
        assert s.row["object_outcomes"][1]["generated_share"] == 0.0
    only_first = AnnotationOptions(layout_choice="keep-objects", keep_categories=(1,))
    chosen, _ = plan_annotations(_ann(scene), records, recipe, CATS, only_first)
    assert {r.layout for r in chosen} == {"left"}  # category 1: the top-left and bottom-left rectangles


def test_boxes_hold_on_a_through_the_mixing_path() -> None:
    # I from prepare, Î = I (an editor that moves nothing), a flat fractal: A = 0.8 H + 0.2 F with the
    # reference arithmetic; every exported box is found on its rectangle in A, for every layout
    scene = _scene()
    recipe = Recipe(size=128, resize="center-crop", prompts=("snowy",), layouts=("left", "right", "top", "bottom"))
    ann = _ann(scene)
    image = prepare(scene.image, 128, resize="center-crop")
    fractal = np.full_like(image, 40)
    for layout in recipe.layouts:
        rec = dataclasses.replace(draw(recipe, "s.png", ["flat"])[0], layout=layout)
        stages = apply_record(rec, image, image.copy(), fractal)
        a = stages.augmented.astype(np.float64)
        undone = (a + 0.5 - 0.2 * 40) / 0.8  # back to I's scale (the reference arithmetic truncates)
        sample = annotate_sample(prepare_annotation(ann, recipe, AnnotationOptions()), rec, CATS)
        kept = [sh for sh, o in zip(scene.shapes, sample.row["object_outcomes"]) if o["status"] != "dropped"]
        for sh, obj in zip(kept, sample.annotation.objects):
            assert iou(measure_rectangle(undone, sh.colour_index, obj.box), obj.box) >= 0.99, layout


def test_boxes_hold_on_a_with_the_preview_editor_on_the_real_side() -> None:
    # With a real (preview) Î the objects wholly on I's side (generated share 0, binary mask) are measured on A
    from diffusemix.editors.preview import apply_preview

    scene = _scene()
    recipe = Recipe(size=128, prompts=("sunset",), layouts=("left", "right", "top", "bottom"), mask="binary", seam=0)
    ann = _ann(scene)
    image = prepare(scene.image, 128)
    generated = apply_preview(image, "sunset", seed=0)
    fractal = np.full_like(image, 40)
    measured = 0
    for layout in recipe.layouts:
        rec = dataclasses.replace(draw(recipe, "s.png", ["flat"])[0], layout=layout)
        a = apply_record(rec, image, generated, fractal).augmented.astype(np.float64)
        undone = (a + 0.5 - 0.2 * 40) / 0.8
        sample = annotate_sample(prepare_annotation(ann, recipe, AnnotationOptions()), rec, CATS)
        for sh, obj, share in zip(scene.shapes, sample.annotation.objects, sample.generated_share):
            if share == 0.0:
                assert iou(measure_rectangle(undone, sh.colour_index, obj.box, margin=3), obj.box) >= 0.99
                measured += 1
    assert measured >= 6


def test_check_image_size_names_exif() -> None:
    ann = ImageAnnotation("p.jpg", 640, 480, ())
    check_image_size(ann, (640, 480))
    with pytest.raises(AnnotationError, match=r"for a 640x480 image but the image loads as 480x640 \(EXIF"):
        check_image_size(ann, (480, 640))


def test_a_record_at_another_size_is_refused() -> None:
    scene = _scene()
    recipe = Recipe(size=128, prompts=("snowy",))
    prepared = prepare_annotation(_ann(scene), recipe, AnnotationOptions())
    rec = dataclasses.replace(draw(recipe, "s.png", ["f"])[0], size=256)
    with pytest.raises(ValueError, match="prepared at 128 px but the record is at 256 px"):
        annotate_sample(prepared, rec, CATS)


def test_semantic_sample_row() -> None:
    m = np.zeros((100, 200), dtype=np.uint8)
    m[:, :100] = 1  # the left half is class 1
    m[0, :] = 255
    recipe = Recipe(size=64, prompts=("snowy",), layouts=("left",), mask="binary", seam=0)
    rec = draw(recipe, "m.png", ["f"])[0]
    out, row = annotate_semantic_sample(SemanticMask(m, ("bg", "road")), rec)
    assert out.mask.shape == (64, 64)
    assert row["class_generated_share"] == {"road": 0.0, "bg": 1.0}
    assert sum(row["class_pixels"].values()) == 64 * 64 - 64  # the top row is ignored


@pytest.mark.parametrize(
    "field,value,match",
    [
        ("min_visibility", 1.5, r"AnnotationOptions.min_visibility must be a number in \[0, 1\]; got 1.5"),
        ("layout_choice", "best", "layout_choice must be one of drawn, keep-objects"),
        ("format", "voc", "format must be one of auto, coco, yolo, masks"),
        ("task", "classification", "task must be one of classify, detect, segment"),
        ("on_error", "ignore", "on_error must be one of raise, skip"),
        ("tolerance", -1, "tolerance must be a number >= 0"),
        ("keep_categories", ("a",), "keep_categories must be category ids"),
        ("path", "x.json", "path goes with task detect or segment"),
    ],
)
def test_options_are_checked(field: str, value, match: str) -> None:
    with pytest.raises(SettingError, match=match):
        AnnotationOptions(**{field: value})


def test_options_are_settings_with_help_choices_and_flags() -> None:
    import argparse

    from diffusemix import schema

    for f in dataclasses.fields(AnnotationOptions):
        assert f.metadata.get("help"), f.name
    assert dataclasses.fields(AnnotationOptions)[0].metadata["choices"] == ("classify", "detect", "segment")
    parser = argparse.ArgumentParser()
    schema.add_flags(parser, AnnotationOptions)
    args = parser.parse_args(["--task", "detect", "--annotations", "coco", "--annotations-path", "a.json",
                              "--min-visibility", "0.5", "--layout-choice", "keep-objects", "--keep-categories", "1,3"])
    opts = AnnotationOptions(**schema.flag_values(AnnotationOptions, args))
    assert (opts.task, opts.format, opts.path, opts.min_visibility) == ("detect", "coco", "a.json", 0.5)
    assert opts.layout_choice == "keep-objects" and opts.keep_categories == (1, 3) and opts.active
    assert schema.flag_for(AnnotationOptions, "format") == "--annotations"
    with pytest.raises(SettingError, match="must be category ids separated by commas"):
        schema.flag_values(AnnotationOptions, parser.parse_args(["--keep-categories", "a,b"]))
    # what a field changes: the entries and their geometry make a new folder; the layout choice is a remix
    assert schema.fields_by_stage(AnnotationOptions, "mixing") == ("layout_choice", "keep_categories")
