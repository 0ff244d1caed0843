"""Export --cache: I (once per image) and Î with their records, no mixing; resumable and shardable."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from diffusemix.errors import DiffuseMixError
from diffusemix.export import ExportOptions, folder, plan_export
from diffusemix.fractals import FractalSet
from export_helpers import (  # noqa: F401  (fixtures: dataset, fractals)
    RECIPE,
    dataset,
    fractals,
    load,
    make_dataset,
    preview,
    rows,
    run,
    temp_files,
    tree,
)


def test_cache_keeps_i_once_and_generated_images_without_mixing(
    dataset: Path, tmp_path: Path, fractals: FractalSet
) -> None:
    ref = tmp_path / "ref"
    run(dataset, ref, fractals, save_stages=True)
    out = tmp_path / "cache"
    s = run(dataset, out, fractals, cache=True)
    assert s.made == 10 * 2 and s.manifest == out / "metadata.jsonl"
    assert "a cache: I (inputs/) and the generated images, nothing mixed" in s.format()
    files = tree(out)
    inputs = sorted(k for k in files if k.startswith("inputs/"))
    assert inputs == sorted(f"inputs/{p.parent.name}/{p.stem}.bmp" for p in dataset.rglob("*.*"))
    assert not (out / "stages").exists()
    got = rows(out)
    assert [r["file_name"] for r in got] == [r["file_name"].replace(".png", ".bmp") for r in rows(ref)]
    for r, e in zip(got, rows(ref)):
        assert "layout" not in r and "lam" not in r and "fractal" not in r and "arithmetic" not in r  # nothing mixed
        assert (r["source"], r["prompt"], r["copy"], r["seed"], r["label"]) == (
            e["source"], e["prompt"], e["copy"], e["seed"], e["label"]
        )  # fmt: skip
        # Î and I are the export's saved stages, pixel for pixel (BMP and PNG are both lossless)
        assert np.array_equal(load(out / r["file_name"]), load(folder.stage_path(ref, "generated", e["file_name"])))
        assert np.array_equal(load(out / r["input_file_name"]), load(folder.stage_path(ref, "input", e["file_name"])))
    settings = json.loads((out / ".diffusemix" / "run.json").read_text())
    assert settings["options"] == {"chunk_size": 8, "format": "bmp", "quality": None, "cache": True}
    assert {k: settings["recipe"][k] for k in ("layouts", "mask", "seam", "lam", "arithmetic")} == {
        "layouts": ["left", "top"], "mask": "linspace", "seam": 4, "lam": 0.2, "arithmetic": "reference"}
    assert settings["fractals"] is None  # a cache mixes nothing: the training's fractals are used


def test_cache_resumes_and_shards_to_the_same_folder(dataset: Path, tmp_path: Path, fractals: FractalSet) -> None:
    one = tmp_path / "one"
    run(dataset, one, fractals, cache=True)
    again = run(dataset, one, fractals, cache=True, editor=(ed := preview()))
    assert again.made == 0 and ed.edited == 0
    (one / "inputs" / "cat" / "01.bmp").unlink()  # a lost I is made again with its samples
    redo = run(dataset, one, fractals, cache=True)
    assert redo.made == 2 and (one / "inputs" / "cat" / "01.bmp").is_file()
    two = tmp_path / "two"
    run(dataset, two, fractals, cache=True, shard=(1, 2))
    s = run(dataset, two, fractals, cache=True, shard=(0, 2))
    assert s.manifest is not None
    assert tree(one) == tree(two)
    assert temp_files(two) == []


def test_cache_png_format_and_option_checks(dataset: Path, tmp_path: Path, fractals: FractalSet) -> None:
    out = tmp_path / "png"
    run(dataset, out, fractals, cache=True, format="png")
    assert all(r["file_name"].endswith(".png") and r["input_file_name"].endswith(".png") for r in rows(out))
    with pytest.raises(ValueError, match=r"ExportOptions.format must be one of bmp, png for a cache \(lossless\)"):
        ExportOptions(cache=True, format="jpeg")
    with pytest.raises(ValueError, match="cannot go with save_stages, reuse_generated or write_originals"):
        ExportOptions(cache=True, save_stages=True)
    assert ExportOptions().format == "png" and ExportOptions(cache=True).format == "bmp"


def test_cache_into_an_export_folder_is_refused(dataset: Path, tmp_path: Path, fractals: FractalSet) -> None:
    out = tmp_path / "out"
    run(dataset, out, fractals)
    with pytest.raises(DiffuseMixError, match=r"made with other settings \(.*options.cache"):
        run(dataset, out, fractals, cache=True)


def test_classes_named_like_the_folders_own_files_are_fine_under_the_images_root(
    tmp_path: Path, fractals: FractalSet
) -> None:
    """Since the class folders live under images/, a class may be called inputs, stages or metadata.jsonl."""
    data = make_dataset(tmp_path / "data", classes=("inputs", "stages", "metadata.jsonl"), per_class=1)
    out = tmp_path / "cache"
    run(data, out, fractals, cache=True)
    assert sorted({r["class_name"] for r in rows(out)}) == ["inputs", "metadata.jsonl", "stages"]
    assert (out / "images" / "inputs").is_dir() and (out / "inputs" / "inputs").is_dir()
    plan = plan_export(data, tmp_path / "x", recipe=RECIPE, options=ExportOptions())
    assert plan.images == 4
