"""Batch export: round trips, labels, datasets loading, stages, resume, shards, reuse, bad input."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pytest
from PIL import Image

from diffusemix import manifest
from diffusemix.editors import load_editor
from diffusemix.editors.base import EditRequest, EditResult
from diffusemix.errors import DiffuseMixError
from diffusemix.export import (
    ExportOptions,
    export_dataset,
    merge_manifests,
    plan_export,
    prompt_slugs,
    scan_input,
)
from diffusemix.fractals import FractalSet, write_fractal_set
from diffusemix.recipe import Recipe

# ---------------------------------------------------------------------------
# helpers and fixtures
# ---------------------------------------------------------------------------


def _picture(h: int, w: int, seed: int) -> np.ndarray:
    """A real-looking uint8 image: colour gradients, a disc and a bar, mild noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    yy /= max(h - 1, 1)
    xx /= max(w - 1, 1)
    a, b = rng.uniform(0.5, 3.0, 2)
    img = np.stack([0.5 + 0.4 * np.sin(a * np.pi * xx), 0.5 + 0.4 * np.cos(b * np.pi * yy), 0.3 + 0.5 * xx * yy], -1)
    cy, cx, r = rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7), rng.uniform(0.1, 0.25)
    img[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = rng.uniform(0.1, 0.9, 3)
    img[(np.abs(yy - 0.8) < 0.05)] = rng.uniform(0.1, 0.9, 3)
    img += rng.normal(0.0, 0.02, img.shape)
    return (np.clip(img, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)


def make_dataset(
    root: Path, classes: Sequence[str] = ("cat", "dog", "fish"), per_class: int = 3, size=(48, 40)
) -> Path:
    """root/<class>/<i>.png plus an odd-sized JPEG in the first class."""
    for ci, cls in enumerate(classes):
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.fromarray(_picture(size[0] + 8 * i, size[1], 10 * ci + i)).save(root / cls / f"{i:02d}.png")
    Image.fromarray(_picture(33, 17, 99)).save(root / classes[0] / "odd.jpg", quality=95)
    return root


@pytest.fixture(scope="module")
def fractals(tmp_path_factory: pytest.TempPathFactory) -> FractalSet:
    folder = tmp_path_factory.mktemp("fractals")
    write_fractal_set(folder, count=5, size=64, seed=3)
    return FractalSet.from_folder(folder)


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    return make_dataset(tmp_path / "data")


RECIPE = Recipe(size=32, prompts=("sunset", "snowy"), seam=4)


class CountingEditor:
    """Wraps an editor and counts the images it is asked to edit."""

    def __init__(self, inner: Any, blank_prompts: Sequence[str] = ()) -> None:
        self.inner, self.blank_prompts = inner, tuple(blank_prompts)
        self.name, self.is_diffusion = inner.name, inner.is_diffusion
        self.calls: list[int] = []

    def describe(self) -> dict[str, Any]:
        return self.inner.describe()

    def edit(self, requests: Sequence[EditRequest], *, progress=None, cancel=None) -> list[EditResult]:
        self.calls.append(len(requests))
        out = self.inner.edit(requests, progress=progress, cancel=cancel)
        return [
            EditResult(np.zeros_like(r.image), r.seed, 3, "all black") if q.prompt in self.blank_prompts else r
            for q, r in zip(requests, out, strict=True)
        ]

    @property
    def edited(self) -> int:
        return sum(self.calls)


def preview() -> CountingEditor:
    return CountingEditor(load_editor("preview"))


def run(inp: Path, out: Path, fractals: FractalSet, *, recipe: Recipe = RECIPE, editor=None, **opts):
    editor = editor or preview()
    return export_dataset(
        inp, out, recipe=recipe, editor=editor, fractals=fractals, options=ExportOptions(**opts), progress_bar=False
    )


def rows(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "metadata.jsonl").read_text(encoding="utf-8").splitlines()]


def tree(out: Path) -> dict[str, bytes]:
    """Every visible file (the dataset as a user sees it): path -> bytes."""
    files = {}
    for p in sorted(out.rglob("*")):
        rel = p.relative_to(out)
        if p.is_file() and not any(part.startswith(".") for part in rel.parts):
            files[rel.as_posix()] = p.read_bytes()
    return files


def temp_files(out: Path) -> list[Path]:
    return [p for p in out.rglob("*") if p.name.endswith(".tmp")]


def load(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im).astype(np.float64)


# ---------------------------------------------------------------------------
# round trips
# ---------------------------------------------------------------------------


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
        assert row["label"] == row["source"].split("/")[0] == row["file_name"].split("/")[0]
        assert row["prompt"] in RECIPE.prompts and row["layout"] in RECIPE.layouts
        assert row["editor"] == "preview" and json.loads(row["editor_settings"])["max_retries"] == 2
        with Image.open(out / row["file_name"]) as im:
            assert im.format == "PNG" and im.size == (32, 32) and im.mode == "RGB"
    # plan order: classes, then images, then prompts in recipe order
    assert [r["file_name"] for r in got[:4]] == [
        "cat/00_sunset_0.png",
        "cat/00_snowy_0.png",
        "cat/01_sunset_0.png",
        "cat/01_snowy_0.png",
    ]
    assert "cat/odd_sunset_0.png" in {r["file_name"] for r in got}
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
    assert sorted(set(ds["label"])) == ["cat", "dog", "fish"]
    for ex in ds:
        assert ex["label"] == ex["source"].split("/")[0]
        assert ex["image"].size == (32, 32)


def test_tiny_diffusion_model_round_trip(tiny_ip2p_dir: Path, tmp_path: Path, fractals: FractalSet) -> None:
    data = tmp_path / "data"
    for cls in ("a", "b"):
        (data / cls).mkdir(parents=True)
        Image.fromarray(_picture(64, 64, ord(cls))).save(data / cls / "x.png")
    editor = CountingEditor(load_editor("instruct-pix2pix", model=str(tiny_ip2p_dir), device="cpu", steps=2))
    recipe = Recipe(size=64, prompts=("snowy",), seam=8)
    out = tmp_path / "out"
    summary = run(data, out, fractals, recipe=recipe, editor=editor, batch_size=2)

    assert summary.made + summary.degenerate == 2 and editor.calls[0] == 2  # one batched call
    got = rows(out)
    assert [r["label"] for r in got] == ["a", "b"][: len(got)]
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
            Image.fromarray(_picture(64, 64, 10 * ord(cls) + i)).save(data / cls / f"{i}.png")
    editor = CountingEditor(load_editor("instruct-pix2pix", model=str(tiny_ip2p_dir), device="cpu", steps=2))
    recipe = Recipe(size=64, prompts=("snowy",), seam=8)
    ref = tmp_path / "ref"
    run(data, ref, fractals, recipe=recipe, editor=editor, batch_size=3)
    assert editor.calls == [3, 1]
    out = tmp_path / "out"
    shutil.copytree(ref, out)
    lost = rows(ref)[1]["file_name"]  # the middle of the first chunk
    (out / lost).unlink()
    (out / "metadata.jsonl").unlink()
    resumed = run(data, out, fractals, recipe=recipe, editor=editor, batch_size=3)
    assert resumed.made == 1 and resumed.skipped_done == 3
    assert editor.calls == [3, 1, 3]  # the whole first chunk again, the second not at all
    assert tree(out) == tree(ref)


def test_flat_folder_has_one_label(tmp_path: Path, fractals: FractalSet) -> None:
    data = tmp_path / "birds"
    data.mkdir()
    for i in range(3):
        Image.fromarray(_picture(40, 40, i)).save(data / f"b{i}.png")
    out = tmp_path / "out"
    summary = run(data, out, fractals)
    assert summary.label_mode == "flat folder, one label 'birds'"
    assert "flat folder, one label 'birds'" in str(summary)
    got = rows(out)
    assert len(got) == 6 and {r["label"] for r in got} == {"birds"}
    assert got[0]["file_name"] == "b0_sunset_0.png" and (out / "b0_sunset_0.png").is_file()

    datasets = pytest.importorskip("datasets")
    ds = datasets.load_dataset("imagefolder", data_dir=str(out), split="train")
    assert set(ds["label"]) == {"birds"} and ds.num_rows == 6


def test_jpeg_format(dataset: Path, tmp_path: Path, fractals: FractalSet) -> None:
    out = tmp_path / "out"
    run(dataset, out, fractals, format="jpeg", quality=80)
    got = rows(out)
    assert all(r["file_name"].endswith(".jpg") for r in got)
    with Image.open(out / got[0]["file_name"]) as im:
        assert im.format == "JPEG" and im.size == (32, 32)
    assert not list(out.rglob("*.png"))


def test_unique_names_for_same_stems_and_subfolders(tmp_path: Path, fractals: FractalSet) -> None:
    data = tmp_path / "data"
    (data / "c" / "x").mkdir(parents=True)
    (data / "c" / "y").mkdir(parents=True)
    for i, name in enumerate(("c/a.png", "c/a.jpg", "c/x/a.png", "c/y/a.png", "c/A.png")):
        Image.fromarray(_picture(20, 20, i)).save(data / name)
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


# ---------------------------------------------------------------------------
# stages and reuse
# ---------------------------------------------------------------------------


def test_saved_stages_reproduce_the_equations(dataset: Path, tmp_path: Path, fractals: FractalSet) -> None:
    out = tmp_path / "out"
    run(dataset, out, fractals, save_stages=True, format="png")
    for row in rows(out):
        stage = {
            s: load(out / "stages" / s / row["file_name"]) for s in ("input", "generated", "mask", "hybrid", "fractal")
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
    with pytest.raises(DiffuseMixError, match=r"other settings.*mixing.lam: 0.2 -> 0.5.*--reuse-generated"):
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
    with pytest.raises(DiffuseMixError, match=r"generation.prompts.*new output folder"):
        run(dataset, out, fractals, recipe=RECIPE.replace(prompts=("rain",)), reuse_generated=True)


# ---------------------------------------------------------------------------
# resume and shards
# ---------------------------------------------------------------------------


def test_interrupted_run_resumes_to_the_same_dataset(dataset: Path, tmp_path: Path, fractals: FractalSet) -> None:
    ref = tmp_path / "ref"
    run(dataset, ref, fractals, batch_size=3)

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
        options=ExportOptions(batch_size=3),
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
    (out / "cat" / ".02_snowy_0.png.dmx0of1-99999.tmp").write_bytes(b"\x89PNG partial")

    editor = preview()
    resumed = run(dataset, out, fractals, editor=editor, batch_size=3)
    assert resumed.skipped_done + resumed.made == 20 and resumed.skipped_done >= 6
    assert editor.edited < 20
    assert tree(out) == tree(ref)
    assert temp_files(out) == []


def test_two_shards_equal_one_run(dataset: Path, tmp_path: Path, fractals: FractalSet) -> None:
    ref = tmp_path / "ref"
    run(dataset, ref, fractals, save_stages=True)

    out = tmp_path / "out"
    s0 = run(dataset, out, fractals, save_stages=True, shard_index=0, shard_count=2)
    assert s0.made == 10 and s0.manifest is None and s0.pending_shards == [(1, 2)]
    assert not (out / "metadata.jsonl").exists() and "waiting for 1/2" in str(s0)
    s1 = run(dataset, out, fractals, save_stages=True, shard_index=1, shard_count=2)
    assert s1.made == 10 and s1.manifest == out / "metadata.jsonl"
    assert tree(out) == tree(ref)

    # merge by hand gives the same file
    before = (out / "metadata.jsonl").read_bytes()
    (out / "metadata.jsonl").unlink()
    assert merge_manifests(out) == out / "metadata.jsonl"
    assert (out / "metadata.jsonl").read_bytes() == before


def test_shards_balance_and_never_share_a_file(dataset: Path, tmp_path: Path) -> None:
    recipe = RECIPE.replace(prompts=("a", "b", "c"))
    plans = [
        plan_export(dataset, tmp_path / "o", recipe=recipe, options=ExportOptions(shard_index=i, shard_count=4))
        for i in range(4)
    ]
    assert [p.samples for p in plans] == [8, 8, 7, 7] and sum(p.samples for p in plans) == 30


def test_merge_refuses_a_folder_that_is_not_an_export(tmp_path: Path) -> None:
    with pytest.raises(DiffuseMixError, match="not a diffusemix export folder"):
        merge_manifests(tmp_path)


# ---------------------------------------------------------------------------
# dry run, bad input, degenerate outputs
# ---------------------------------------------------------------------------


def test_plan_counts_and_writes_nothing(dataset: Path, tmp_path: Path, fractals: FractalSet) -> None:
    out = tmp_path / "out"
    recipe = RECIPE.replace(images_per_prompt=3)
    plan = plan_export(dataset, out, recipe=recipe)
    assert not out.exists()
    assert (plan.images, plan.samples, plan.samples_total, plan.already_done) == (10, 60, 60, 0)
    assert plan.classes == ("cat", "dog", "fish") and plan.est_bytes > 0
    text = str(plan)
    assert "would make 60 image(s)" in text and "nothing was written" in text
    assert "MB" in text or "kB" in text

    run(dataset, out, fractals)
    assert plan_export(dataset, out, recipe=RECIPE).already_done == 20


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


def test_different_settings_into_the_same_output_are_refused(
    dataset: Path, tmp_path: Path, fractals: FractalSet
) -> None:
    out = tmp_path / "out"
    run(dataset, out, fractals)
    editor = preview()
    with pytest.raises(DiffuseMixError, match=r"other settings.*generation.seed: 0 -> 7.*new output folder"):
        run(dataset, out, fractals, recipe=RECIPE.replace(seed=7), editor=editor)
    assert editor.edited == 0
    other = make_dataset(tmp_path / "other")
    with pytest.raises(DiffuseMixError, match="made from another input"):
        run(other, out, fractals)


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(format="gif"), r"ExportOptions.format must be one of png, jpeg; got 'gif'"),
        (dict(quality=0), r"ExportOptions.quality"),
        (dict(shard_index=2, shard_count=2), r"ExportOptions.shard_index must be an integer in \[0, 1\]"),
        (dict(shard_count=0), r"ExportOptions.shard_count"),
        (dict(batch_size=0), r"ExportOptions.batch_size"),
        (dict(workers=0), r"ExportOptions.workers"),
        (dict(save_stages="yes"), r"ExportOptions.save_stages"),
    ],
)
def test_options_are_checked(kw: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ExportOptions(**kw)


def test_options_accept_jpg_alias() -> None:
    assert ExportOptions(format="JPG").format == "jpeg" and ExportOptions(format="jpg").extension == ".jpg"


def test_journal_drops_a_truncated_last_line(tmp_path: Path) -> None:
    p = tmp_path / ".diffusemix" / "rows-0-of-1.jsonl"
    p.parent.mkdir()
    p.write_bytes(b'{"file_name": "a"}\n{"file_na')
    j = manifest.Journal(p)
    j.append({"file_name": "b"})
    j.close()
    assert p.read_bytes() == b'{"file_name": "a"}\n{"file_name": "b"}\n'
    assert [r["file_name"] for r in manifest.read_journal_rows(tmp_path)] == ["a", "b"]


def test_editor_gets_fixed_chunks_of_batch_size(dataset: Path, tmp_path: Path, fractals: FractalSet) -> None:
    """The editor sees fixed chunks of batch_size samples (the same on every run)."""
    editor = preview()
    run(dataset, tmp_path / "out", fractals, editor=editor, batch_size=4)
    assert editor.calls == [4, 4, 4, 4, 4]


def test_class_names_that_look_like_splits_get_a_loading_hint(tmp_path: Path, fractals: FractalSet) -> None:
    data = tmp_path / "data"
    for i, cls in enumerate(("other", "test", "train")):
        (data / cls).mkdir(parents=True)
        Image.fromarray(_picture(24, 24, i)).save(data / cls / "x.png")
    out = tmp_path / "out"
    summary = run(data, out, fractals, recipe=RECIPE.replace(prompts=("rain",)))
    assert len(summary.notes) == 1 and "data_files" in str(summary) and "test, train" in summary.notes[0]
    datasets = pytest.importorskip("datasets")
    ds = datasets.load_dataset(
        "imagefolder", data_files={"train": [str(out / "metadata.jsonl"), str(out / "**")]}, split="train"
    )
    assert sorted(ds["label"]) == ["other", "test", "train"]


def test_rerun_after_inputs_change_keeps_the_manifest_to_the_current_inputs(
    dataset: Path, tmp_path: Path, fractals: FractalSet
) -> None:
    """Adding a file with the same stem renames outputs; removing an input drops its rows."""
    out = tmp_path / "out"
    run(dataset, out, fractals)
    n_prompts = len(RECIPE.prompts)
    # a new cat/00.jpg beside cat/00.png: both now get hashed names
    Image.fromarray(_picture(40, 40, 7)).save(dataset / "cat" / "00.jpg")
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
