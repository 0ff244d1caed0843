"""Export steps 3-4: round trips, datasets loading, stages, reuse, resume, shards, settings, degenerate outputs."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from diffusemix.editors import load_editor
from diffusemix.errors import DiffuseMixError
from diffusemix.export import ExportOptions, export_dataset, folder, manifest, merge_manifests
from diffusemix.fractals import FractalSet
from diffusemix.imagefolder import find_classes
from diffusemix.recipe import Recipe
from export_helpers import (  # noqa: F401  (fixtures: dataset, fractals)
    RECIPE,
    CountingEditor,
    dataset,
    fractals,
    load,
    make_dataset,
    picture,
    preview,
    rows,
    run,
    temp_files,
    tree,
)


def test_round_trip_class_folders_keeps_labels(dataset: Path, tmp_path: Path, fractals: FractalSet) -> None:
    out = tmp_path / "out"
    summary = run(dataset, out, fractals)

    n_images = 3 * 3 + 1
    assert summary.made == n_images * 2 and summary.skipped_done == 0 and summary.failed == []
    assert summary.degenerate == 0 and summary.manifest == out / "metadata.jsonl"
    assert summary.label_mode == "class folders" and summary.classes == ("cat", "dog", "fish")
    text = str(summary)
    assert "made:" in text and "20 image(s)" in text and str(out) in text and "skipped as done:  0" in text

    got = rows(out)
    assert len(got) == 20
    assert list(got[0]) == list(manifest.MANIFEST_COLUMNS)
    for row in got:
        assert row["file_name"].startswith("images/")  # the images root: class folders alone
        assert row["class_name"] == row["source"].split("/")[0] == row["file_name"].split("/")[1]
        assert ("cat", "dog", "fish")[row["label"]] == row["class_name"]
        assert row["prompt"] in RECIPE.prompts and row["layout"] in RECIPE.layouts
        assert row["editor"] == "preview" and json.loads(row["editor_settings"])["max_retries"] == 2
        with Image.open(out / row["file_name"]) as im:
            assert im.format == "PNG" and im.size == (32, 32) and im.mode == "RGB"
    # plan order: classes, then images, then prompts in recipe order
    assert [r["file_name"] for r in got[:4]] == [
        "images/cat/00_sunset_0.png",
        "images/cat/00_snowy_0.png",
        "images/cat/01_sunset_0.png",
        "images/cat/01_snowy_0.png",
    ]
    assert "images/cat/odd_sunset_0.png" in {r["file_name"] for r in got}
    assert not (out / "errors.jsonl").exists() and temp_files(out) == []

    # the same command again makes nothing and leaves every byte as it was
    before = tree(out)
    again = run(dataset, out, fractals)
    assert again.made == 0 and again.skipped_done == 20
    assert tree(out) == before


def test_datasets_loads_the_output_with_its_labels(dataset: Path, tmp_path: Path, fractals: FractalSet) -> None:
    datasets = pytest.importorskip("datasets")
    out = tmp_path / "out"
    run(dataset, out, fractals, save_stages=True)  # stages/ must not become data

    ds = datasets.load_dataset("imagefolder", data_dir=str(out), split="train")
    assert ds.num_rows == 20
    for col in (
        "image",
        "label",
        "class_name",
        "source",
        "prompt",
        "layout",
        "mask",
        "seam",
        "lam",
        "fractal",
        "seed",
        "attempts",
        "copy",
        "editor",
        "editor_settings",
    ):
        assert col in ds.column_names
    assert sorted(set(ds["class_name"])) == ["cat", "dog", "fish"]
    for ex in ds:
        assert ex["class_name"] == ex["source"].split("/")[0]
        assert ex["image"].size == (32, 32)


def test_datasets_label_is_the_imagefolder_class_index(dataset: Path, tmp_path: Path, fractals: FractalSet) -> None:
    """``label`` is what torchvision's ImageFolder gives on OUTPUT/images (the index in the sorted class
    folders), ready for training; ``class_name`` says the class. ``load_dataset("imagefolder",
    data_dir=OUTPUT)`` reads metadata.jsonl's columns as they are (an int64); ``load_dataset(OUTPUT)``
    reads the card, which declares ``label`` a ClassLabel with the same indices."""
    datasets = pytest.importorskip("datasets")
    (dataset / "ant").mkdir()  # a class whose images all fail: absent from the output, as ImageFolder sees it
    (dataset / "ant" / "bad.png").write_bytes(b"not a picture")
    out = tmp_path / "out"
    run(dataset, out, fractals, save_stages=True)
    image_folder_classes, _ = find_classes(str(out / "images"))  # torchvision's own code, copied verbatim
    assert image_folder_classes == ["cat", "dog", "fish"]

    ds = datasets.load_dataset("imagefolder", data_dir=str(out), split="train")
    assert ds.features["label"] == datasets.Value("int64")
    assert ds.features["class_name"] == datasets.Value("string")
    assert sorted(set(ds["label"])) == [0, 1, 2]
    for ex in ds:
        assert image_folder_classes[ex["label"]] == ex["class_name"] == ex["source"].split("/")[0]
    # the card makes it a ClassLabel with every index kept
    carded = datasets.load_dataset(str(out), split="train")
    assert carded.features["label"] == datasets.ClassLabel(names=image_folder_classes)
    assert carded["label"] == ds["label"] and carded.column_names == ds.column_names
    # the manifest says the class by name too, and a merge writes the same
    got = rows(out)
    assert [(r["label"], r["class_name"]) for r in got[:1]] == [(0, "cat")]
    before = (out / "metadata.jsonl").read_bytes()
    merge_manifests(out)
    assert (out / "metadata.jsonl").read_bytes() == before


def test_tiny_diffusion_model_round_trip(tiny_ip2p_dir: Path, tmp_path: Path, fractals: FractalSet) -> None:
    data = tmp_path / "data"
    for cls in ("a", "b"):
        (data / cls).mkdir(parents=True)
        Image.fromarray(picture(64, 64, ord(cls))).save(data / cls / "x.png")
    editor = CountingEditor(load_editor("instruct-pix2pix", model=str(tiny_ip2p_dir), device="cpu", steps=2))
    recipe = Recipe(size=64, prompts=("snowy",), seam=8)
    out = tmp_path / "out"
    summary = run(data, out, fractals, recipe=recipe, editor=editor, chunk_size=2)

    assert summary.made + summary.degenerate == 2 and editor.calls[0] == 2  # one batched call
    got = rows(out)
    assert [r["class_name"] for r in got] == ["a", "b"][: len(got)]
    for r in got:
        assert r["editor"] == "instruct-pix2pix"
        settings = json.loads(r["editor_settings"])
        assert settings["steps"] == 2 and "device" not in settings
        with Image.open(out / r["file_name"]) as im:
            assert im.size == (64, 64)


def test_tiny_diffusion_resume_regenerates_whole_chunks(
    tiny_ip2p_dir: Path, tmp_path: Path, fractals: FractalSet
) -> None:
    """A lost sample is remade in the same editor batch as before, so its pixels are identical."""
    data = tmp_path / "data"
    for cls in ("a", "b"):
        (data / cls).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(picture(64, 64, 10 * ord(cls) + i)).save(data / cls / f"{i}.png")
    editor = CountingEditor(load_editor("instruct-pix2pix", model=str(tiny_ip2p_dir), device="cpu", steps=2))
    recipe = Recipe(size=64, prompts=("snowy",), seam=8)
    ref = tmp_path / "ref"
    run(data, ref, fractals, recipe=recipe, editor=editor, chunk_size=3)
    assert editor.calls == [3, 1]
    out = tmp_path / "out"
    shutil.copytree(ref, out)
    lost = rows(ref)[1]["file_name"]  # the middle of the first chunk
    (out / lost).unlink()
    (out / "metadata.jsonl").unlink()
    resumed = run(data, out, fractals, recipe=recipe, editor=editor, chunk_size=3)
    assert resumed.made == 1 and resumed.skipped_done == 3
    assert editor.calls == [3, 1, 3]  # the whole first chunk again, the second not at all
    assert tree(out) == tree(ref)


def test_jpeg_format(dataset: Path, tmp_path: Path, fractals: FractalSet) -> None:
    out = tmp_path / "out"
    run(dataset, out, fractals, format="jpeg", quality=80)
    got = rows(out)
    assert all(r["file_name"].endswith(".jpg") for r in got)
    with Image.open(out / got[0]["file_name"]) as im:
        assert im.format == "JPEG" and im.size == (32, 32)
    assert not list(out.rglob("*.png"))


def test_saved_stages_reproduce_the_equations(dataset: Path, tmp_path: Path, fractals: FractalSet) -> None:
    out = tmp_path / "out"
    run(dataset, out, fractals, save_stages=True, format="png")
    for row in rows(out):
        stage = {
            s: load(folder.stage_path(out, s, row["file_name"])) for s in ("input", "generated", "mask", "hybrid",
                                                                           "fractal")
        }
        a = load(out / row["file_name"])
        m = stage["mask"][..., None] / 255.0
        h = m * stage["input"] + (1 - m) * stage["generated"]
        assert np.abs(h - stage["hybrid"]).max() <= 1.0
        lam = row["lam"]
        assert np.abs((1 - lam) * stage["hybrid"] + lam * stage["fractal"] - a).max() <= 1.0
        assert np.abs((1 - lam) * h + lam * stage["fractal"] - a).max() <= 1.5
        # the input stage is the source resized to S x S
        assert stage["input"].shape == (32, 32, 3)


def test_reuse_generated_gives_identical_output_without_the_editor(
    dataset: Path, tmp_path: Path, fractals: FractalSet
) -> None:
    first = tmp_path / "first"
    run(dataset, first, fractals, save_stages=True)
    # a fresh folder that holds only the saved Î
    second = tmp_path / "second"
    shutil.copytree(first / "stages" / "generated", second / "stages" / "generated")
    editor = preview()
    summary = run(dataset, second, fractals, editor=editor, save_stages=True, reuse_generated=True)
    assert editor.edited == 0 and summary.made == 20
    assert tree(second) == tree(first)

    # the same folder after losing its augmented images: rebuilt from Î alone
    for r in rows(first):
        (first / r["file_name"]).unlink()
    (first / "metadata.jsonl").unlink()
    editor = preview()
    run(dataset, first, fractals, editor=editor, save_stages=True, reuse_generated=True)
    assert editor.edited == 0 and tree(first) == tree(second)


def test_remix_with_new_lambda_needs_reuse_generated(dataset: Path, tmp_path: Path, fractals: FractalSet) -> None:
    out = tmp_path / "out"
    run(dataset, out, fractals, save_stages=True)
    old = rows(out)
    with pytest.raises(DiffuseMixError, match=r"other settings.*recipe.lam: 0.2 -> 0.5.*--reuse-generated"):
        run(dataset, out, fractals, recipe=RECIPE.replace(lam=0.5), save_stages=True)
    editor = preview()
    summary = run(dataset, out, fractals, recipe=RECIPE.replace(lam=0.5), editor=editor, reuse_generated=True)
    assert editor.edited == 0 and summary.made == 20
    new = rows(out)
    assert [r["lam"] for r in new] == [0.5] * 20
    assert [r["seed"] for r in new] == [r["seed"] for r in old]
    # the old mix's saved M, H, F would contradict the new A: gone; the saved Î stays
    for stage, left in (("mask", 0), ("hybrid", 0), ("fractal", 0), ("generated", 20)):
        assert len(list((out / "stages" / stage).rglob("*.png"))) == left, stage
    # a generation setting cannot change in the same folder, reuse or not
    with pytest.raises(DiffuseMixError, match=r"recipe.prompts.*new output folder"):
        run(dataset, out, fractals, recipe=RECIPE.replace(prompts=("rain",)), reuse_generated=True)


def test_interrupted_run_resumes_to_the_same_dataset(dataset: Path, tmp_path: Path, fractals: FractalSet) -> None:
    ref = tmp_path / "ref"
    run(dataset, ref, fractals, chunk_size=3)

    out = tmp_path / "out"
    stop = threading.Event()
    seen = []

    def progress(done: int, total: int) -> None:
        seen.append((done, total))
        if done >= 6:
            stop.set()

    summary = export_dataset(
        dataset,
        out,
        recipe=RECIPE,
        editor=preview(),
        fractals=fractals,
        options=ExportOptions(chunk_size=3),
        progress=progress,
        cancel=stop,
        progress_bar=False,
    )
    assert summary.cancelled and summary.manifest is None and 6 <= summary.made < 20
    assert "cancelled" in str(summary) and "resume" in str(summary)
    assert seen[-1][1] == 20
    # what a kill -9 can leave behind: a half-written journal line and a temp file
    journal = out / ".diffusemix" / "rows-0-of-1.jsonl"
    with open(journal, "ab") as f:
        f.write(b'{"file_name": "cat/02_sn')
    (out / "images" / "cat" / ".02_snowy_0.png.dmx0of1-99999.tmp").write_bytes(b"\x89PNG partial")

    editor = preview()
    resumed = run(dataset, out, fractals, editor=editor, chunk_size=3)
    assert resumed.skipped_done + resumed.made == 20 and resumed.skipped_done >= 6
    assert editor.edited < 20
    assert tree(out) == tree(ref)
    assert temp_files(out) == []


def test_two_shards_equal_one_run(dataset: Path, tmp_path: Path, fractals: FractalSet) -> None:
    ref = tmp_path / "ref"
    run(dataset, ref, fractals, save_stages=True)

    out = tmp_path / "out"
    s0 = run(dataset, out, fractals, save_stages=True, shard=(0, 2))  # whole chunks of 8: plan chunks 0 and 2
    assert s0.made == 12 and s0.manifest is None and s0.pending_shards == [(1, 2)]
    assert not (out / "metadata.jsonl").exists() and "waiting for 1/2" in str(s0)
    s1 = run(dataset, out, fractals, save_stages=True, shard=(1, 2))  # plan chunk 1
    assert s1.made == 8 and s1.manifest == out / "metadata.jsonl"
    assert tree(out) == tree(ref)

    # merge by hand gives the same file
    before = (out / "metadata.jsonl").read_bytes()
    (out / "metadata.jsonl").unlink()
    assert merge_manifests(out) == out / "metadata.jsonl"
    assert (out / "metadata.jsonl").read_bytes() == before


def test_degenerate_outputs_are_reported_not_written(dataset: Path, tmp_path: Path, fractals: FractalSet) -> None:
    out = tmp_path / "out"
    editor = CountingEditor(load_editor("preview"), blank_prompts=("snowy",))
    summary = run(dataset, out, fractals, editor=editor)
    assert summary.made == 10 and summary.degenerate == 10
    assert "degenerate:       10" in str(summary)
    assert not list(out.rglob("*_snowy_*.png"))
    errors = [json.loads(x) for x in (out / "errors.jsonl").read_text().splitlines()]
    assert len(errors) == 10 and all(
        e["kind"] == "degenerate" and "all black after 3 attempts" in e["reason"] for e in errors
    )
    assert all(r["prompt"] == "sunset" for r in rows(out))
    # a rerun does not try them again
    again = CountingEditor(load_editor("preview"), blank_prompts=("snowy",))
    s2 = run(dataset, out, fractals, editor=again)
    assert again.edited == 0 and s2.degenerate == 10 and s2.made == 0


def test_different_settings_into_the_same_output_are_refused(
    dataset: Path, tmp_path: Path, fractals: FractalSet
) -> None:
    out = tmp_path / "out"
    run(dataset, out, fractals)
    editor = preview()
    with pytest.raises(DiffuseMixError, match=r"other settings.*recipe.seed: 0 -> 7.*new output folder"):
        run(dataset, out, fractals, recipe=RECIPE.replace(seed=7), editor=editor)
    assert editor.edited == 0
    other = make_dataset(tmp_path / "other")
    with pytest.raises(DiffuseMixError, match="made from another input"):
        run(other, out, fractals)


def test_rerun_after_inputs_change_keeps_the_manifest_to_the_current_inputs(
    dataset: Path, tmp_path: Path, fractals: FractalSet
) -> None:
    """Adding a file with the same stem renames outputs; removing an input drops its rows."""
    out = tmp_path / "out"
    run(dataset, out, fractals)
    n_prompts = len(RECIPE.prompts)
    # a new cat/00.jpg beside cat/00.png: both now get hashed names
    Image.fromarray(picture(40, 40, 7)).save(dataset / "cat" / "00.jpg")
    (dataset / "dog" / "01.png").unlink()
    summary = run(dataset, out, fractals)
    got = rows(out)
    sources = [r["source"] for r in got]
    n_images = sum(1 for p in dataset.rglob("*") if p.is_file())
    assert len(got) == n_images * n_prompts
    assert len(set((r["source"], r["prompt"]) for r in got)) == len(got)  # no sample twice
    assert "dog/01.png" not in sources and sources.count("cat/00.jpg") == n_prompts
    assert all((out / r["file_name"]).is_file() for r in got)
    assert any("no longer match an input image" in note for note in summary.notes)
    # merging again by hand gives the same manifest
    before = (out / "metadata.jsonl").read_bytes()
    merge_manifests(out)
    assert (out / "metadata.jsonl").read_bytes() == before


def test_a_truncated_fractal_is_left_out_and_the_export_finishes_saying_so(dataset: Path, tmp_path: Path) -> None:
    import io

    from diffusemix.fractals import make_fractal

    # a fractal PNG cut in half after a valid header, sorted between good ones
    folder = tmp_path / "fractals"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(make_fractal(i, 48, kind="newton")).save(folder / f"{i}.png")
    buf = io.BytesIO()
    Image.fromarray(make_fractal(7, 64, kind="julia")).save(buf, format="PNG")
    (folder / "1_cut.png").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with Image.open(folder / "1_cut.png") as im:
        assert im.size == (64, 64)  # its header reads fine
    summary = run(dataset, tmp_path / "out", FractalSet.from_folder(folder))
    assert summary.made == 20 and not summary.cancelled  # (9 + 1 images) x 2 prompts, none lost
    made = rows(tmp_path / "out")
    assert len(made) == 20 and {r["fractal"] for r in made} <= {"0.png", "1.png", "2.png"}
    assert "note: fractal set: 3 fractals from" in str(summary)
    assert "1 unreadable skipped: 1_cut.png: truncated" in str(summary)


def test_write_originals_writes_each_input_once_at_the_output_size(dataset: Path, tmp_path: Path,
                                                                  fractals: FractalSet) -> None:
    """--write-originals: I at S x S, once per image (the authors' original_resized), an ImageFolder of its own."""
    import numpy as np

    from diffusemix.export import folder
    from diffusemix.imagefolder import find_classes
    from diffusemix.images import load_image, prepare

    out = tmp_path / "out"
    summary = run(dataset, out, fractals, write_originals=True)
    originals = sorted((out / "originals").rglob("*.png"))
    assert summary.made == 20 and len(originals) == 10  # 10 images x 2 prompts; one original each
    assert find_classes(str(out / "originals"))[0] == ["cat", "dog", "fish"]
    row = folder.read_rows(out)[0]
    with Image.open(out / folder.original_name(folder.image_relative(row["file_name"]).rsplit("_", 2)[0])) as im:
        assert np.array_equal(np.asarray(im), prepare(load_image(dataset / row["source"]), RECIPE.size))
    again = run(dataset, out, fractals, write_originals=True)
    assert again.made == 0 and again.skipped_done == 20
    (out / "originals" / "cat" / "00.png").unlink()  # an original lost: its image's samples are made again
    assert run(dataset, out, fractals, write_originals=True).made == 2
