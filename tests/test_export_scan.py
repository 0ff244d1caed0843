"""Export step 1: scanning the input (labels, names, files that are not images) and the folder checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from diffusemix.errors import DiffuseMixError
from diffusemix.export import plan_export, prompt_slugs, scan_input
from diffusemix.fractals import FractalSet
from diffusemix.imagefolder import find_classes
from export_helpers import (  # noqa: F401  (fixtures: dataset, fractals)
    RECIPE,
    dataset,
    fractals,
    picture,
    preview,
    rows,
    run,
)


def test_flat_folder_has_one_label(tmp_path: Path, fractals: FractalSet) -> None:
    data = tmp_path / "birds"
    data.mkdir()
    for i in range(3):
        Image.fromarray(picture(40, 40, i)).save(data / f"b{i}.png")
    out = tmp_path / "out"
    summary = run(data, out, fractals)
    assert summary.label_mode == "flat folder, one label 'birds'"
    assert "flat folder, one label 'birds'" in str(summary)
    got = rows(out)
    assert len(got) == 6 and {r["class_name"] for r in got} == {"birds"} and {r["label"] for r in got} == {0}
    # its one label is its class folder: torchvision's ImageFolder reads OUTPUT/images as one class
    assert got[0]["file_name"] == "images/birds/b0_sunset_0.png" and (out / "images/birds/b0_sunset_0.png").is_file()
    assert find_classes(str(out / "images")) == (["birds"], {"birds": 0})

    datasets = pytest.importorskip("datasets")
    ds = datasets.load_dataset("imagefolder", data_dir=str(out), split="train")
    assert set(ds["class_name"]) == {"birds"} and set(ds["label"]) == {0} and ds.num_rows == 6


def test_unique_names_for_same_stems_and_subfolders(tmp_path: Path, fractals: FractalSet) -> None:
    data = tmp_path / "data"
    (data / "c" / "x").mkdir(parents=True)
    (data / "c" / "y").mkdir(parents=True)
    for i, name in enumerate(("c/a.png", "c/a.jpg", "c/x/a.png", "c/y/a.png", "c/A.png")):
        Image.fromarray(picture(20, 20, i)).save(data / name)
    scan = scan_input(data)
    stems = [e.out_stem for e in scan.entries]
    assert len(set(s.casefold() for s in stems)) == 5
    assert "c/x/a" in stems and "c/y/a" in stems  # subfolders are mirrored
    assert scan_input(data) == scan  # deterministic
    out = tmp_path / "out"
    summary = run(data, out, fractals)
    assert summary.made == 10 and len({r["file_name"] for r in rows(out)}) == 10


def test_prompt_slugs_are_unique_and_safe() -> None:
    slugs = prompt_slugs(["watercolor art", "a sketch with crayon", "rain!", "rain?", "水彩", "ukiyo-e"])
    assert slugs["watercolor art"] == "watercolor-art" and slugs["ukiyo-e"] == "ukiyo-e"
    assert len(set(slugs.values())) == 6
    assert all("_" not in s and "/" not in s and s for s in slugs.values())


def test_bad_input_files_are_skipped_and_listed(dataset: Path, tmp_path: Path, fractals: FractalSet) -> None:
    (dataset / "dog" / "empty.png").write_bytes(b"")
    good = (dataset / "dog" / "00.png").read_bytes()
    (dataset / "dog" / "truncated.png").write_bytes(good[: len(good) // 2])
    (dataset / "dog" / "fake.jpg").write_text("this is not a picture")
    (dataset / "dog" / "notes.txt").write_text("labels")
    (dataset / "dog" / ".hidden.png").write_bytes(good)
    (dataset / ".cache").mkdir()
    (dataset / ".cache" / "x.png").write_bytes(good)
    out = tmp_path / "out"
    summary = run(dataset, out, fractals)

    assert summary.made == 20
    reasons = dict(summary.failed) | dict(summary.ignored)
    assert set(dict(summary.failed)) == {"dog/empty.png", "dog/truncated.png", "dog/fake.jpg"}
    assert set(dict(summary.ignored)) == {"dog/notes.txt"}
    assert "empty" in reasons["dog/empty.png"]
    assert "truncated" in reasons["dog/truncated.png"] or "corrupt" in reasons["dog/truncated.png"]
    assert "not an image" in reasons["dog/fake.jpg"] and "not an image file" in reasons["dog/notes.txt"]
    text = str(summary)
    assert "failed inputs:    3" in text and "dog/truncated.png" in text
    assert "ignored files:    1" in text
    errors = [json.loads(x) for x in (out / "errors.jsonl").read_text().splitlines()]
    assert {e["source"] for e in errors} == set(reasons)
    assert {e["kind"] for e in errors} == {"unreadable", "ignored"}


def test_class_names_that_look_like_splits_get_a_loading_hint(tmp_path: Path, fractals: FractalSet) -> None:
    data = tmp_path / "data"
    for i, cls in enumerate(("other", "test", "train")):
        (data / cls).mkdir(parents=True)
        Image.fromarray(picture(24, 24, i)).save(data / cls / "x.png")
    out = tmp_path / "out"
    summary = run(data, out, fractals, recipe=RECIPE.replace(prompts=("rain",)))
    assert len(summary.notes) == 1 and "images/test/x_rain_0.png, images/train/x_rain_0.png" in summary.notes[0]
    assert f"load_dataset('{out}') reads README.md" in str(summary)
    datasets = pytest.importorskip("datasets")
    ds = datasets.load_dataset(str(out), split="train")  # the card names the files: no split is guessed
    assert sorted(ds["class_name"]) == ["other", "test", "train"] and sorted(ds["label"]) == [0, 1, 2]
    assert ds.features["label"].names == ["other", "test", "train"]


@pytest.mark.parametrize(
    "case, match",
    [
        ("missing", "does not exist"),
        ("empty", "no images found"),
        ("same", "is the input folder"),
        ("inside", "inside the input folder"),
        ("file", "is a file"),
        ("foreign", "not empty and was not made by diffusemix"),
    ],
)


def test_folder_errors_before_any_work(
    case: str, match: str, dataset: Path, tmp_path: Path, fractals: FractalSet
) -> None:
    inp, out = dataset, tmp_path / "out"
    if case == "missing":
        inp = tmp_path / "nope"
    elif case == "empty":
        inp = tmp_path / "empty"
        (inp / "cls").mkdir(parents=True)
        (inp / "cls" / "readme.txt").write_text("x")
    elif case == "same":
        out = dataset
    elif case == "inside":
        out = dataset / "aug"
    elif case == "file":
        (tmp_path / "f").write_text("x")
        out = tmp_path / "f" / "out"
    elif case == "foreign":
        out.mkdir()
        (out / "mine.txt").write_text("keep me")
    editor = preview()
    with pytest.raises(DiffuseMixError, match=match):
        run(inp, out, fractals, editor=editor)
    assert editor.edited == 0
    if case != "foreign":
        assert not (tmp_path / "out").exists() and not (dataset / "aug").exists()
    if case in ("missing", "empty", "same", "inside", "file"):
        with pytest.raises(DiffuseMixError, match=match):
            plan_export(inp, out, recipe=RECIPE)
