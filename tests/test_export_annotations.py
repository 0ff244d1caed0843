"""Issue 23's "Done when", through the exporter: boxes, polygons and masks carried through DiffuseMix.

Synthetic images with solid rectangles, polygons and blobs, their COCO / YOLO / mask annotations, exported
through the command line (the preview editor and the tiny InstructPix2Pix; resize and center-crop):

- every exported box lies on its rectangle: measured in I (the saved input stage, the exact I of the sample),
  and in A itself for every object wholly on the real side of a binary mask (a flat fractal lets A be undone
  to I's scale); every polygon and mask matches its shape's pixels; the class-id masks are nearest-neighbour
  resizes of the source masks and match their shapes;
- pycocotools loads the COCO export, the library's readers read every export back (YOLO and masks round
  trip), and the rows' ``objects`` are the files' objects;
- the annotations do not depend on the editor; shards and a killed and resumed run give identical files;
- bad annotations are skipped and listed in errors.jsonl (or stop the run, named); settings follow the schema.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from annotation_helpers import (
    BACKGROUND,
    coco_dict,
    iou,
    make_scene,
    mask_iou,
    measure_rectangle,
    shape_in_image,
    write_coco_dataset,
    write_mask_dataset,
    write_yolo_dataset,
)
from export_helpers import tree
from PIL import Image

from diffusemix.annotations import read_annotations
from diffusemix.annotations.geometry import transform_semantic
from diffusemix.annotations.masks import load_mask, read_mask_pairs
from diffusemix.annotations.yolo import read_yolo
from diffusemix.cli import main
from diffusemix.errors import RecordError
from diffusemix.export import folder
from diffusemix.functional import make_mask
from diffusemix.images import prepare

REPO = Path(__file__).resolve().parents[1]
SIZE = 128
LAM, FLAT = 0.2, 40  # A = 0.8 H + 0.2 F with a flat fractal F = 40: undone to I's scale exactly
#: Category ids by format: COCO's own ids, YOLO's class indices, the masks' class values.
CATS = {"coco": (1, 3, 7), "yolo": (0, 1, 2), "masks": (1, 2, 3)}
PROMPTS = "sunset,snowy,Autumn,mosaic"


def scenes(fmt: str) -> dict[str, Any]:
    """Two non-square scenes: at center-crop one rectangle is cut (clipped), one falls out (dropped), one polygon
    is cut; a blob (an RLE mask in COCO; not annotated in YOLO)."""
    c = CATS["coco" if fmt == "coco-segment" else fmt]
    return {
        "s1.png": make_scene(200, 150, [
            ("rect", c[0], (30, 20, 80, 70)),
            ("polygon", c[1], [100, 15, 160, 30, 120, 90]),
            ("rect", c[2], (150, 95, 195, 140)),
            ("rect", c[0], (2, 100, 20, 140)),
        ]),
        "sub/s2.png": make_scene(150, 200, [
            ("rect", c[1], (20, 30, 70, 100)),
            ("polygon", c[2], [90, 120, 140, 130, 110, 190]),
            ("blob", c[0], (100, 50, 15, 12)),
        ]),
    }


def annotated_shapes(fmt: str, scene: Any) -> list[Any]:
    """The shapes the dataset annotates, in its order (YOLO's writer annotates rectangles and polygons)."""
    return [sh for sh in scene.shapes if fmt != "yolo" or sh.kind != "blob"]


def write_dataset(root: Path, fmt: str) -> Path:
    sc = scenes(fmt)
    if fmt == "yolo":
        return write_yolo_dataset(root, sc)
    if fmt == "masks":
        return write_mask_dataset(root, sc)
    write_coco_dataset(root, sc)
    if fmt == "coco-segment":  # every object with a shape: rectangles as 4-point polygons
        data = coco_dict(sc)
        for a in data["annotations"]:
            if "segmentation" not in a:
                x, y, w, h = a["bbox"]
                a["segmentation"] = [[x, y, x + w, y, x + w, y + h, x, y + h]]
        (root / "annotations" / "instances.json").write_text(json.dumps(data))
    return root


@pytest.fixture(scope="module")
def flat_fractal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("flat-fractal")
    Image.fromarray(np.full((64, 64, 3), FLAT, dtype=np.uint8)).save(d / "flat.png")
    return d


def export_args(inp: Path, out: Path, fractals: Path, *, task: str, size: int = SIZE, resize: str = "center-crop",
                extra: tuple[str, ...] = ()) -> list[str]:
    return ["export", str(inp), str(out), "--editor", "preview", "--prompts", PROMPTS, "--size", str(size),
            "--resize", resize, "--mask", "binary", "--layouts", "left,right,top,bottom", "--lam", str(LAM),
            "--fractals", str(fractals), "--no-progress", "--task", task, *extra]


def undo_a(a: np.ndarray) -> np.ndarray:
    """A back at I's scale (A = trunc(0.8 H + 0.2 F) with F flat): H, exactly where H is I."""
    return (a.astype(np.float64) + 0.5 - LAM * FLAT) / (1 - LAM)


def rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def row_objects(row: dict[str, Any]) -> list[tuple[float, float, float, float]]:
    return [(x, y, x + w, y + h) for x, y, w, h in row["objects"]["bbox"]]


def check_objects_on_shapes(out: Path, fmt: str, rows: list[dict[str, Any]], exported: dict[str, Any]) -> int:
    """Every exported object on its shape in I (and in A when wholly on the real side); returns how many were
    measured in A. ``exported``: file name -> (boxes, masks or None) read from the export's own files."""
    in_a = 0
    for row in rows:
        source = row["source"].split("/", 1)[1]  # images/<name> -> the scene's key
        scene = scenes(fmt)[source]
        image = rgb(folder.stage_path(out, "input", row["file_name"]))  # I: the sample's own, S x S
        assert np.array_equal(image, prepare(scene.image, SIZE, resize=row["resize"]))
        real = make_mask(SIZE, SIZE, row["layout"], kind="binary", seam=0)[..., None] > 0.5  # 1 where I is kept
        a = np.where(real, undo_a(rgb(out / row["file_name"])), BACKGROUND)  # A on I's side, at I's scale
        outcomes = row["object_outcomes"]
        shapes = annotated_shapes(fmt, scene)
        assert [o["source_id"] for o in outcomes] == (
            [f"line {k + 1}" for k in range(len(shapes))] if fmt == "yolo" else [o["source_id"] for o in outcomes])
        kept = [(sh, o) for sh, o in zip(shapes, outcomes, strict=True) if o["status"] != "dropped"]
        boxes, masks = exported[row["file_name"]]
        assert len(boxes) == len(kept) == row["object_count"]
        np.testing.assert_allclose(np.reshape(row_objects(row), (-1, 4)), np.reshape(boxes, (-1, 4)), atol=2e-3,
                                   err_msg="the row's objects are the file's")
        for k, ((sh, o), box) in enumerate(zip(kept, boxes)):
            if sh.kind == "rect":
                assert iou(measure_rectangle(image, sh.colour_index, box), box) >= 0.99, (row["file_name"], sh)
                if o["generated_share"] == 0.0:  # wholly on I's side of the binary mask: found in A too
                    assert iou(measure_rectangle(a, sh.colour_index, box), box) >= 0.99, (row["file_name"], sh)
                    in_a += 1
            if masks is not None and masks[k] is not None:
                assert mask_iou(masks[k], shape_in_image(image, sh.colour_index)) >= 0.97, (row["file_name"], sh)
    return in_a


def coco_exported(out: Path) -> dict[str, Any]:
    from pycocotools.coco import COCO

    coco = COCO(str(folder.coco_path(out)))
    got = {}
    for info in coco.loadImgs(sorted(coco.getImgIds())):
        assert (folder.images_root(out) / info["file_name"]).is_file()
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[info["id"]]))
        boxes = [(a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]) for a in anns]
        masks = [coco.annToMask(a).astype(bool) if a["segmentation"] else None for a in anns]
        for a, m in zip(anns, masks):
            if m is not None:
                assert a["area"] == m.sum()  # recomputed, as COCO counts it
        got[folder.image_file_name(info["file_name"])] = (boxes, masks)
    return got


# ---------------------------------------------------------------------------
# every exported box on its rectangle, every mask on its shape


@pytest.mark.parametrize("resize", ["resize", "center-crop"])
@pytest.mark.parametrize("fmt,task", [("coco", "detect"), ("coco-segment", "segment"), ("yolo", "detect")])
def test_boxes_polygons_and_rle_masks_land_on_their_shapes(tmp_path, flat_fractal, fmt, task, resize):
    inp = write_dataset(tmp_path / "data", fmt)
    out = tmp_path / "out"
    assert main(export_args(inp, out, flat_fractal, task=task, resize=resize, extra=("--save-stages",))) == 0
    rows = folder.read_rows(out)  # the schema's check of every row (objects included)
    assert len(rows) == 2 * 4 and {r["class_name"] for r in rows} == {"data"} and {r["label"] for r in rows} == {0}
    base = "coco" if fmt.startswith("coco") else fmt
    if base == "coco":
        exported = coco_exported(out)
        assert [json.loads(line)["file_name"] for line in folder.manifest_path(out).read_text().splitlines()] == list(
            exported)  # image ids in manifest order
    else:
        ds = read_yolo(out)  # Ultralytics' layout: OUTPUT/data.yaml, OUTPUT/images, OUTPUT/labels (the round trip)
        assert ds.categories.names == ("a", "b", "c") and not ds.skipped
        from diffusemix.annotations.targets import object_mask

        exported = {folder.image_file_name(a.file_name): (
            [o.box for o in a.objects],
            [object_mask(o, width=SIZE, height=SIZE) if o.polygons else None for o in a.objects],
        ) for a in ds.images}
    assert sorted(exported) == sorted(r["file_name"] for r in rows)
    in_a = check_objects_on_shapes(out, base, rows, exported)
    assert in_a >= 4  # rectangles measured in A itself (those wholly on I's side)
    # the library reads the export back in the input's format, the same objects
    back = read_annotations(out)
    assert back.format == base and len(back) == len(rows)
    statuses = [o["status"] for r in rows for o in r["object_outcomes"]]
    if resize == "center-crop":
        assert "clipped" in statuses and "dropped" in statuses
    else:
        assert set(statuses) == {"kept"}


@pytest.mark.parametrize("resize", ["resize", "center-crop"])
def test_class_id_masks_are_resized_with_their_image(tmp_path, flat_fractal, resize):
    inp = write_dataset(tmp_path / "data", "masks")
    out = tmp_path / "out"
    assert main(export_args(inp, out, flat_fractal, task="segment", resize=resize, extra=("--save-stages",))) == 0
    rows = folder.read_rows(out)
    source_ds = read_mask_pairs(inp)
    back = read_mask_pairs(out)  # images/ + masks/ + classes.txt: the round trip
    assert back.classes == ("background", "a", "b", "c") and len(back) == len(rows) and not back.skipped
    for row in rows:
        name = folder.image_relative(row["file_name"])
        mask = load_mask(back, back.get(name)).mask
        assert row["class_mask_file_name"] == folder.mask_name(row["file_name"])
        src = source_ds.get(row["source"].split("/", 1)[1])
        want = transform_semantic(load_mask(source_ds, src), size=SIZE, resize=resize).mask
        assert np.array_equal(mask, want)  # nearest neighbour over prepare's box, exactly
        image = rgb(folder.stage_path(out, "input", row["file_name"]))
        scene = scenes("masks")[row["source"].split("/", 1)[1]]
        by_value: dict[int, list[int]] = {}
        for sh in scene.shapes:
            by_value.setdefault(sh.category_id, []).append(sh.colour_index)
        for value, colours in by_value.items():
            drawn = np.any([shape_in_image(image, c) for c in colours], axis=0)
            if drawn.sum() > 20:
                assert mask_iou(mask == value, drawn) >= 0.97, (row["file_name"], value)
        assert sum(row["class_pixels"].values()) == SIZE * SIZE
        assert set(row["class_generated_share"]) == set(row["class_pixels"])


@pytest.mark.parametrize("resize", ["resize", "center-crop"])
def test_the_annotations_do_not_depend_on_the_editor(tmp_path, flat_fractal, tiny_ip2p_dir, resize):
    inp = write_dataset(tmp_path / "data", "coco")
    preview, model = tmp_path / "preview", tmp_path / "ip2p"
    assert main(export_args(inp, preview, flat_fractal, task="detect", resize=resize)) == 0
    args = export_args(inp, model, flat_fractal, task="detect", resize=resize, extra=("--save-stages",))
    args[args.index("preview")] = "instruct-pix2pix"
    assert main([*args, "--model", str(tiny_ip2p_dir), "--steps", "2", "--device", "cpu"]) == 0
    # the same records and geometry: the same COCO file, byte for byte; the rows' objects alike
    assert folder.coco_path(model).read_bytes() == folder.coco_path(preview).read_bytes()
    rows = folder.read_rows(model)
    assert {r["editor"] for r in rows} == {"instruct-pix2pix"}
    assert [r["objects"] for r in rows] == [r["objects"] for r in folder.read_rows(preview)]
    for row in rows:  # the boxes on their rectangles in the diffusion model's run
        image = rgb(folder.stage_path(model, "input", row["file_name"]))
        shapes = annotated_shapes("coco", scenes("coco")[row["source"].split("/", 1)[1]])
        kept = [sh for sh, o in zip(shapes, row["object_outcomes"]) if o["status"] != "dropped"]
        for sh, box in zip(kept, row_objects(row)):
            if sh.kind == "rect":
                assert iou(measure_rectangle(image, sh.colour_index, box), box) >= 0.99, (row["file_name"], sh)


# ---------------------------------------------------------------------------
# shards, resume


@pytest.mark.parametrize("fmt,task", [("coco", "detect"), ("yolo", "detect"), ("masks", "segment")])
def test_shards_give_the_files_of_one_run(tmp_path, flat_fractal, fmt, task):
    inp = write_dataset(tmp_path / "data", fmt)
    one, split = tmp_path / "one", tmp_path / "split"
    extra = ("--chunk-size", "1")
    assert main(export_args(inp, one, flat_fractal, task=task, size=64, extra=extra)) == 0
    assert main(export_args(inp, split, flat_fractal, task=task, size=64, extra=(*extra, "--shard", "1/2"))) == 0
    assert not folder.manifest_path(split).exists() and not folder.coco_path(split).exists()  # shard 0 is pending
    assert main(export_args(inp, split, flat_fractal, task=task, size=64, extra=(*extra, "--shard", "0/2"))) == 0
    files = tree(one)
    assert files == tree(split)
    wanted = {"coco": "annotations/instances.json", "yolo": "data.yaml", "masks": "classes.txt"}[fmt]
    assert wanted in files
    # a merge by hand writes them again, the same
    assert main(["merge", str(split)]) == 0
    assert tree(split) == files


def _journal_lines(out: Path) -> int:
    try:
        return sum(p.read_bytes().count(b"\n") for p in (out / folder.STATE_DIR).glob("rows-*.jsonl"))
    except FileNotFoundError:
        return 0


@pytest.mark.slow
def test_kill_9_then_resume_gives_the_same_annotations(tmp_path, flat_fractal, tiny_ip2p_dir):
    """A real process, killed in the middle of a COCO export with the tiny InstructPix2Pix, then run again."""
    root = tmp_path / "data"
    many = {}
    for k in range(6):  # 12 images x 4 prompts in chunks of 2
        for name, scene in scenes("coco").items():
            many[f"{k}/{name}"] = scene
    write_coco_dataset(root, many)
    args = export_args(root, Path("OUT"), flat_fractal, task="detect", size=32)
    args[args.index("preview")] = "instruct-pix2pix"
    args += ["--model", str(tiny_ip2p_dir), "--steps", "3", "--batch-size", "2", "--device", "cpu", "--save-stages"]
    cmd = [sys.executable, "-m", "diffusemix"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}

    def argv(out: Path) -> list[str]:
        return cmd + [str(out) if a == "OUT" else a for a in args]

    ref = tmp_path / "ref"
    t0 = time.perf_counter()
    done = subprocess.run(argv(ref), cwd=REPO, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    assert done.returncode == 0, done.stderr
    out = tmp_path / "out"
    proc = subprocess.Popen(argv(out), cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10 * seconds + 60
    while _journal_lines(out) < 6 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    killed = proc.poll() is None
    if killed:
        proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert killed, f"the export finished before it could be killed ({seconds:.1f} s)"
    assert not folder.coco_path(out).exists()
    resumed = subprocess.run(argv(out), cwd=REPO, env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert tree(out) == tree(ref)
    assert len(json.loads(folder.coco_path(out).read_text())["images"]) == 12 * 4


# ---------------------------------------------------------------------------
# bad input, settings, the dry run


def test_bad_annotations_are_skipped_and_listed_or_stop_the_run(tmp_path, flat_fractal, capsys):
    inp = write_dataset(tmp_path / "data", "coco")
    data = json.loads((inp / "annotations" / "instances.json").read_text())
    first = data["annotations"][0]
    data["annotations"] += [
        {**first, "id": 90, "bbox": [190, 10, 50, 20]},  # far outside its 200 px wide image
        {**first, "id": 91, "image_id": 999},  # an image the JSON does not list
    ]
    data["images"].append({"id": 30, "file_name": "gone.png", "width": 10, "height": 10})  # no such file
    (inp / "annotations" / "instances.json").write_text(json.dumps(data))
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(inp / "images" / "unlisted.png")
    out = tmp_path / "out"
    assert main(export_args(inp, out, flat_fractal, task="detect", size=64)) == 0
    rows = folder.read_rows(out)
    assert {r["source"] for r in rows} == {"images/sub/s2.png"}  # s1 left out whole: one bad object
    errors = {(e["source"], e["kind"]): e for e in folder.read_errors(out)}
    bad = errors[("images/s1.png", "annotation")]
    assert bad["object"] == "annotation id 90" and "outside" in bad["reason"]
    assert bad["annotation_file"] == "annotations/instances.json"
    assert errors[("images/gone.png", "annotation")]["reason"].startswith("the image file does not exist")
    assert any(k[1] == "annotation" and "image_id 999" in e["reason"] for k, e in errors.items())
    assert "no annotation" in errors[("images/unlisted.png", "ignored")]["reason"]
    assert "left out for their annotations" in capsys.readouterr().out
    # --annotation-errors raise: exit 2, one line naming the file, the image and the object
    stop = tmp_path / "stop"
    assert main(export_args(inp, stop, flat_fractal, task="detect", size=64,
                            extra=("--annotation-errors", "raise"))) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert "instances.json" in err and "gone.png" in err and not stop.exists()


def test_a_task_that_does_not_fit_the_input_is_refused_by_its_flag(tmp_path, flat_fractal, capsys):
    masks = write_dataset(tmp_path / "masks", "masks")
    assert main(export_args(masks, tmp_path / "o1", flat_fractal, task="detect", size=64)) == 2
    assert "error: --task does not fit a masks input" in capsys.readouterr().err
    assert main(export_args(masks, tmp_path / "o1", flat_fractal, task="segment", size=64,
                            extra=("--layout-choice", "keep-objects"))) == 2
    assert "error: --layout-choice does not fit a masks input" in capsys.readouterr().err
    coco = write_dataset(tmp_path / "coco", "coco")
    assert main(export_args(coco, tmp_path / "o2", flat_fractal, task="segment", size=64)) == 2
    err = capsys.readouterr().err
    assert "has only a box; --task segment needs a polygon or a mask" in err
    assert main(export_args(tmp_path / "coco" / "images", tmp_path / "o3", flat_fractal, task="detect", size=64,
                            extra=("--annotations-path", str(tmp_path / "nope.json")))) == 2
    assert "--annotations-path does not exist" in capsys.readouterr().err
    # the annotation file given, INPUT the images folder: the same export as found from INPUT
    assert main(export_args(coco / "images", tmp_path / "o4", flat_fractal, task="detect", size=64,
                            extra=("--annotations-path", str(coco / "annotations" / "instances.json")))) == 0
    rows = folder.read_rows(tmp_path / "o4")
    assert {r["source"] for r in rows} == {"s1.png", "sub/s2.png"} and {r["class_name"] for r in rows} == {"coco"}


def test_settings_follow_the_schema_new_geometry_new_folder_layout_choice_a_remix(tmp_path, flat_fractal, capsys):
    from diffusemix.annotations.seam import input_side_area
    from diffusemix.export.replay import replay_row
    from diffusemix.export.settings import read_run
    from diffusemix.fractals import FractalSet

    inp = write_dataset(tmp_path / "data", "yolo")
    out = tmp_path / "out"
    assert main(export_args(inp, out, flat_fractal, task="detect", size=64, extra=("--save-stages",))) == 0
    run = read_run(out)
    assert run.annotations["task"] == "detect" and run.annotations["format"] == "yolo"
    assert [c["name"] for c in run.annotations["categories"]] == ["a", "b", "c"]
    # a setting that changes the objects: a new folder, named by its key
    assert main(export_args(inp, out, flat_fractal, task="detect", size=64,
                            extra=("--save-stages", "--min-visibility", "0.5"))) == 2
    assert "annotations.min_visibility: 0.25 -> 0.5" in capsys.readouterr().err
    # the layout choice is a mixing setting: a remix from the saved Î; the chosen layout is in each row
    before = {r["file_name"]: r for r in folder.read_rows(out)}
    assert main(export_args(inp, out, flat_fractal, task="detect", size=64,
                            extra=("--save-stages", "--layout-choice", "keep-objects", "--reuse-generated"))) == 0
    rows = folder.read_rows(out)
    assert read_run(out).annotations["layout_choice"] == "keep-objects"
    fractals = FractalSet.from_folder(flat_fractal)
    annotations = {folder.image_file_name(a.file_name): a for a in read_yolo(out).images}
    changed = 0
    for row in rows:
        old = before[row["file_name"]]
        assert row["objects"] == old["objects"] and row["seed"] == old["seed"]
        real = {lay: input_side_area(annotations[row["file_name"]], layout=lay, kind="binary", seam=0)
                for lay in ("left", "right", "top", "bottom")}
        # the layout that keeps the most object area real (the labels' 6 decimals move areas by 1e-6 relative)
        assert real[row["layout"]] == pytest.approx(max(real.values()), rel=1e-5)
        changed += row["layout"] != old["layout"]
        st = replay_row(row, inp, fractals)  # the row alone remakes A: the chosen layout is recorded
        assert np.array_equal(st.augmented, rgb(out / row["file_name"]))
    assert changed >= 1


def test_the_per_sample_step_travels_to_other_processes(tmp_path):
    # an engine whose writers run elsewhere (Ray) pickles the Writer's annotation step: the same files and fields
    import pickle

    from diffusemix.annotations.export_step import AnnotationOptions
    from diffusemix.export.annotation_writer import AnnotationWriter
    from diffusemix.export.plan import iter_samples
    from diffusemix.export.options import ExportOptions
    from diffusemix.export.scan import scan_input
    from diffusemix.recipe import Recipe

    inp = write_dataset(tmp_path / "data", "yolo")
    scan = scan_input(inp, annotations=AnnotationOptions(task="detect"))
    recipe = Recipe(size=64, resize="center-crop", prompts=("sunset",))
    writer = AnnotationWriter(tmp_path / "out", scan.annotations, recipe)
    copy = pickle.loads(pickle.dumps(writer))
    for s in iter_samples(scan, recipe, ["f"], ExportOptions(chunk_size=2)):
        assert copy.sample(s.entry, s.file_name, s.record) == writer.sample(s.entry, s.file_name, s.record)
        (name, data), = writer.sample(s.entry, s.file_name, s.record)[0].items()
        assert name == folder.label_name(s.file_name) and data.endswith(b"\n")


def test_the_dry_run_names_the_annotations(tmp_path, flat_fractal, capsys):
    inp = write_dataset(tmp_path / "data", "coco")
    assert main([*export_args(inp, tmp_path / "out", flat_fractal, task="detect", size=64), "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert "COCO detection annotations (instances.json), one label 'data'" in text
    assert "annotations: coco" in text and "7 objects" in text and not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------
# rows: the schema, the card


def test_rows_with_bad_objects_are_refused_by_the_schema(tmp_path, flat_fractal):
    inp = write_dataset(tmp_path / "data", "coco")
    out = tmp_path / "out"
    assert main(export_args(inp, out, flat_fractal, task="detect", size=64)) == 0
    row = folder.read_rows(out)[0]
    folder.check_row(out, row)
    for bad, match in [
        ({**row["objects"], "bbox": [[0, 0, -1, 2]] * len(row["objects"]["bbox"])}, "bbox 0 must be"),
        ({**row["objects"], "category": [-1] * len(row["objects"]["category"])}, "category 0 must be"),
        ({**row["objects"], "iscrowd": [1]}, "lists of one length"),
        ({"bbox": []}, "must be an object of lists"),
    ]:
        with pytest.raises(RecordError, match=match):
            folder.check_row(out, {**row, "objects": bad})
    with pytest.raises(RecordError, match="leaves its folder"):
        folder.check_row(out, {**row, "class_mask_file_name": "../x.png"})
    with pytest.raises(RecordError, match="object_count.*must be an integer >= 0"):
        folder.check_row(out, {**row, "object_count": -1})


def test_the_card_gives_objects_with_category_names_to_load_dataset(tmp_path, flat_fractal):
    datasets = pytest.importorskip("datasets")
    inp = write_dataset(tmp_path / "data", "coco")
    out = tmp_path / "out"
    assert main(export_args(inp, out, flat_fractal, task="detect", size=64)) == 0
    ds = datasets.load_dataset(str(out), split="train")
    rows = folder.read_rows(out)
    assert ds["objects"] == [r["objects"] for r in rows]
    names = ds.features["objects"]["category"].feature.names
    assert names == ["red thing", "green thing", "blue thing"]
    card = folder.card_path(out).read_text()
    assert "object-detection" in card and "An object detection dataset" in card


def test_the_only_module_naming_annotation_files_is_the_folder_module():
    # the readers (diffusemix.annotations) name the files of the input's layout; an export's are folder.py's
    root = REPO / "diffusemix"
    offenders = [str(p.relative_to(root)) for sub in ("export", "data", "ui") for p in (root / sub).rglob("*.py")
                 if p != root / "export" / "folder.py"
                 and any(s in p.read_text(encoding="utf-8") for s in ('"instances.json"', '"classes.txt"', '"data.yaml"'))]
    assert offenders == []
