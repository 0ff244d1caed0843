"""Exports every reader loads (issue 20): torchvision's ImageFolder on OUTPUT/images, 🤗 datasets through the
dataset card, for CLI exports, --cache folders and the app's zip; older folders moved to the new layout."""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from diffusemix.cli import main as cli_main
from diffusemix.errors import DiffuseMixError
from diffusemix.export import folder
from diffusemix.export.card import card_text, infer_features
from diffusemix.export.summary import has_split_word
from diffusemix.fractals import FractalSet, write_fractal_set
from diffusemix.imagefolder import IMG_EXTENSIONS, find_classes, make_dataset
from export_helpers import RECIPE, make_dataset as make_input, picture, rows, run, tree

#: Source names holding every word 🤗 datasets reads as a split (datasets.data_files.SPLIT_KEYWORDS).
SPLIT_NAMED = ("cat_train_0", "x_test", "val_1", "a-validation-2", "dev 3", "eval.4", "training_5", "testing",
               "valid-6", "evaluation_7")


@pytest.fixture(scope="module")
def fractal_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("fr")
    write_fractal_set(d, count=4, size=48, seed=2)
    return d


def _split_named_input(root: Path) -> Path:
    """Two classes, every split word in a source name, and a class folder named like a split."""
    for i, stem in enumerate(SPLIT_NAMED):
        cls = "cat" if i % 2 == 0 else "dog"
        (root / cls).mkdir(parents=True, exist_ok=True)
        Image.fromarray(picture(24, 20, i)).save(root / cls / f"{stem}.png")
    (root / "val").mkdir()
    Image.fromarray(picture(20, 24, 50)).save(root / "val" / "z.png")
    return root


def _cli_export(inp: Path, out: Path, fractal_dir: Path, *extra: str) -> None:
    code = cli_main(["export", str(inp), str(out), "--editor", "preview", "--prompts", "sunset,snowy", "--size", "32",
                     "--seam", "4", "--fractals", str(fractal_dir), "--no-tune-allocator", *extra])
    assert code == 0


def _imagefolder_labels(root: Path) -> tuple[list[str], dict[str, int]]:
    """torchvision's ImageFolder on ``root`` (its find_classes and make_dataset, copied verbatim): the classes and
    every sample's label by its path relative to ``root``."""
    classes, class_to_idx = find_classes(str(root))
    samples = make_dataset(str(root), class_to_idx, extensions=IMG_EXTENSIONS)
    return classes, {Path(p).relative_to(root).as_posix(): t for p, t in samples}


def _assert_imagefolder_equals_manifest(out: Path, manifest_rows: list[dict]) -> None:
    root = out / "images"
    classes, labels = _imagefolder_labels(root)
    assert classes == sorted({r["class_name"] for r in manifest_rows})
    want = {folder.image_relative(r["file_name"]): r["label"] for r in manifest_rows}
    assert labels == want  # every sample once, nothing else, the manifest's label
    for r in manifest_rows:
        assert classes[r["label"]] == r["class_name"]


# ---------------------------------------------------------------------------
# torchvision's ImageFolder


def test_imagefolder_reads_a_cli_export_with_the_manifests_labels(tmp_path, fractal_dir):
    inp = make_input(tmp_path / "in", classes=("b", "a", "C"))
    (inp / "empty_images").mkdir()  # a class whose images all fail: no folder in the output
    (inp / "empty_images" / "bad.png").write_bytes(b"not a picture")
    out = tmp_path / "out"
    _cli_export(inp, out, fractal_dir, "--save-stages")
    assert sorted(os.listdir(out)) == [".diffusemix", "README.md", "errors.jsonl", "images", "metadata.jsonl",
                                       "stages"]
    _assert_imagefolder_equals_manifest(out, rows(out))
    # the saved I are ImageFolder-clean too: stages/input/<class>/... with the same labels
    classes, labels = _imagefolder_labels(out / "stages" / "input")
    assert classes == ["C", "a", "b"] and sorted(set(labels.values())) == [0, 1, 2]


def test_imagefolder_reads_a_cache_with_the_manifests_labels(tmp_path, fractal_dir):
    out = tmp_path / "cache"
    _cli_export(make_input(tmp_path / "in"), out, fractal_dir, "--cache")
    got = rows(out)
    _assert_imagefolder_equals_manifest(out, got)
    # its I folder is a class-folder dataset too
    classes, _ = _imagefolder_labels(out / "inputs")
    assert classes == ["cat", "dog", "fish"]


def test_imagefolder_reads_a_flat_input_export_as_one_class(tmp_path, fractal_dir):
    inp = tmp_path / "birds"
    inp.mkdir()
    for i in range(2):
        Image.fromarray(picture(30, 30, i)).save(inp / f"b{i}.png")
    out = tmp_path / "out"
    _cli_export(inp, out, fractal_dir)
    _assert_imagefolder_equals_manifest(out, rows(out))


def test_the_real_torchvision_imagefolder_agrees(tmp_path, fractal_dir):
    """Where torchvision imports (not on this project's machines: its PyPI wheel is the CUDA build)."""
    datasets_tv = pytest.importorskip("torchvision.datasets")
    out = tmp_path / "out"
    _cli_export(make_input(tmp_path / "in"), out, fractal_dir, "--save-stages")
    tv = datasets_tv.ImageFolder(str(out / "images"))
    got = {Path(p).relative_to(out).as_posix(): t for p, t in tv.samples}
    assert got == {r["file_name"]: r["label"] for r in rows(out)}


def test_imagefolder_reads_the_apps_zip_and_a_stopped_runs_zip(tmp_path):
    pytest.importorskip("gradio")
    from app_helpers import make_zip, png_bytes
    from diffusemix.ui.batch_export import batch_export, partial_zip
    from diffusemix.ui.shared import make_context

    ctx = make_context("preview", scorer="none")
    dataset = make_zip(tmp_path / "pets.zip", {f"pets/{c}/{i}_train.png": png_bytes((40 * i, 90, 40)) for c in
                                               ("dogs", "cats", ".hidden") for i in range(2)})
    _, result = batch_export(dataset, ["snowy"], "", ["left"], "ramp", 8, 0.2, 0, 64, 1, True, ctx=ctx)
    unpacked = tmp_path / "unzipped"
    with zipfile.ZipFile(result) as zf:
        zf.extractall(unpacked)
    got = rows(unpacked)
    assert {r["class_name"] for r in got} == {"cats", "dogs"}
    _assert_imagefolder_equals_manifest(unpacked, got)
    assert (unpacked / "README.md").is_file() and (unpacked / "stages").is_dir()

    # a stopped run's zip: the same layout, its card included
    out = tmp_path / "made"
    run(make_input(tmp_path / "in"), out, FractalSet.from_folder(ctx.fractals.folder))
    stopped = tmp_path / "stopped.zip"
    assert partial_zip(out, stopped) == 20
    with zipfile.ZipFile(stopped) as zf:
        zf.extractall(tmp_path / "stopped")
    _assert_imagefolder_equals_manifest(tmp_path / "stopped", rows(tmp_path / "stopped"))
    assert (tmp_path / "stopped" / "README.md").read_text() == folder.card_path(out).read_text()


# ---------------------------------------------------------------------------
# 🤗 datasets


def test_load_dataset_reads_the_card_whatever_the_names(tmp_path, fractal_dir):
    datasets = pytest.importorskip("datasets")
    inp = _split_named_input(tmp_path / "in")
    out = tmp_path / "out"
    _cli_export(inp, out, fractal_dir)
    manifest_rows = rows(out)
    assert len(manifest_rows) == 2 * (len(SPLIT_NAMED) + 1)
    ds = datasets.load_dataset(str(out), split="train")
    assert ds.num_rows == len(manifest_rows)
    columns = ["image" if k == "file_name" else k for k in manifest_rows[0]]
    assert ds.column_names == columns  # every manifest column, none dropped
    assert ds.features["label"] == datasets.ClassLabel(names=["cat", "dog", "val"])
    assert ds["label"] == [r["label"] for r in manifest_rows]
    assert ds["source"] == [r["source"] for r in manifest_rows] and ds["seed"] == [r["seed"] for r in manifest_rows]
    assert ds[0]["image"].size == (32, 32)
    assert list(datasets.load_dataset(str(out))) == ["train"]  # one split, never guessed


def test_imagefolder_with_data_dir_guesses_splits_and_the_summary_says_so(tmp_path, fractal_dir, capsys):
    """``load_dataset("imagefolder", data_dir=OUTPUT)`` does not read a card (datasets 5.2:
    PackagedDatasetModuleFactory): with split words in the paths it reads splits and drops the manifest.
    Pinned so that the README and the summary stay true."""
    datasets = pytest.importorskip("datasets")
    inp = _split_named_input(tmp_path / "in")
    out = tmp_path / "out"
    _cli_export(inp, out, fractal_dir)
    stdout = capsys.readouterr().out
    assert "hold a split word" in stdout and f"load_dataset('{out}') reads README.md" in stdout
    guessed = datasets.load_dataset("imagefolder", data_dir=str(out))
    assert "class_name" not in next(iter(guessed.values())).column_names
    # without split words the plain call keeps every column
    plain = tmp_path / "plain"
    _cli_export(make_input(tmp_path / "in2"), plain, fractal_dir)
    assert "split word" not in capsys.readouterr().out
    ds = datasets.load_dataset("imagefolder", data_dir=str(plain), split="train")
    assert ds.num_rows == len(rows(plain)) and "class_name" in ds.column_names


def test_a_cache_loads_with_image_and_input_and_a_class_label(tmp_path, fractal_dir):
    datasets = pytest.importorskip("datasets")
    out = tmp_path / "cache"
    _cli_export(_split_named_input(tmp_path / "in"), out, fractal_dir, "--cache")
    ds = datasets.load_dataset(str(out), split="train")
    assert ds.column_names[:2] == ["image", "label"] and "input" in ds.column_names
    assert isinstance(ds.features["input"], datasets.Image) and ds.features["label"].names == ["cat", "dog", "val"]
    assert ds.num_rows == len(rows(out))


def test_dataset_info_features_alone_leave_label_an_int(tmp_path, fractal_dir):
    """Why the card puts the features in its config: datasets 5.2's folder builder replaces
    ``dataset_info.features`` by the metadata file's when the config declares none."""
    datasets = pytest.importorskip("datasets")
    import yaml

    out = tmp_path / "out"
    _cli_export(make_input(tmp_path / "in"), out, fractal_dir)
    text = folder.card_path(out).read_text()
    meta = yaml.safe_load(text.split("---\n")[1])
    assert meta["configs"][0]["features"] == meta["dataset_info"]["features"]
    del meta["configs"][0]["features"]
    folder.card_path(out).write_text("---\n" + yaml.safe_dump(meta, sort_keys=False) + "---\n")
    ds = datasets.load_dataset(str(out), split="train")
    assert ds.features["label"] == datasets.Value("int64")


def test_the_card_declares_the_types_pyarrow_infers(tmp_path, fractal_dir):
    datasets = pytest.importorskip("datasets")
    import pyarrow.json as paj

    for name, extra in (("export", ()), ("cache", ("--cache",)), ("k1", ("--prompts-per-image", "1"))):
        out = tmp_path / name
        _cli_export(make_input(tmp_path / f"in-{name}"), out, fractal_dir, *extra)
        inferred = datasets.Features.from_arrow_schema(paj.read_json(folder.manifest_path(out)).schema)
        card = datasets.Features._from_yaml_list(infer_features(rows(out), ["cat", "dog", "fish"]))
        renamed = {("image" if k == "file_name" else "input" if k == "input_file_name" else k): v
                   for k, v in inferred.items()}
        assert list(card) == list(renamed)
        for k, v in card.items():
            if k == "label":
                assert v == datasets.ClassLabel(names=["cat", "dog", "fish"])
            elif k in ("image", "input"):
                assert isinstance(v, datasets.Image)
            else:
                assert v == renamed[k], k


def test_the_card_says_what_made_the_data():
    rows_ = [{"file_name": "images/a/x.png", "label": 0, "class_name": "a", "seed": 3}]
    settings = {"diffusemix": "0.1.0", "input": "/data/flowers", "recipe": {"prompts": ["sunset", "Autumn"],
                "seed": 42, "size": 256, "lam": 0.2}, "editor": {"name": "instruct-pix2pix",
                "model": "timbrooks/instruct-pix2pix", "model_revision": "a" * 40, "steps": 100},
                "scorer": {"name": "dino", "model": "facebook/dinov2-small", "rule": {"min_score": 0.7}},
                "options": {"cache": False}, "fractals": {"count": 128, "digest": "abc"}}
    text = card_text(rows_, settings, title="flowers", data_files=("metadata.jsonl", "images/**"), images_dir="images")
    for part in ("instruct-pix2pix", "timbrooks/instruct-pix2pix", "https://huggingface.co/timbrooks/instruct-pix2pix",
                 "a" * 40, "steps 100", "sunset, Autumn", "master seed **42**", "dino", "min_score 0.7",
                 "sets no licence", "islam2024diffusemix", "ImageFolder(\"path/to/this/folder/images\")"):
        assert part in text, part
    assert "PREVIEW" not in text
    preview = card_text(rows_, {**settings, "editor": {"name": "preview"}}, title="flowers",
                        data_files=("metadata.jsonl",), images_dir="images")
    assert "(PREVIEW: not DiffuseMix data)" in preview and "NOT a diffusion model" in preview


def test_a_column_of_mixed_types_gives_a_card_without_features():
    rows_ = [{"file_name": "images/a/x.png", "label": 0, "class_name": "a", "odd": 1},
             {"file_name": "images/a/y.png", "label": 0, "class_name": "a", "odd": "one"}]
    text = card_text(rows_, None, title="t", data_files=("metadata.jsonl",), images_dir="images")
    assert "features" not in text.split("---\n")[1] and "column 'odd' holds values of types int64 and string" in text


@pytest.mark.parametrize("name, split", [
    ("images/cat/a_train_1_sunset_0.png", True), ("images/cat/train.png", True), ("images/val/x.png", True),
    ("images/cat_test/x.png", True), ("images/cat/x-eval.png", True), ("images/cat/dev 3_rain_0.png", True),
    ("images/cat/trainer_0.png", False), ("images/cat/Train_0.png", False), ("images/retrain/x.png", False),
    ("images/cat/x_rain_0.png", False), ("images/cats/x.png", False), ("images/cat/x_valid.png", True),
])
def test_split_words_are_found_as_datasets_finds_them(tmp_path, name, split):
    data_files = pytest.importorskip("datasets.data_files")
    assert has_split_word(name) is split
    (tmp_path / name).parent.mkdir(parents=True)
    (tmp_path / name).write_bytes(b"x")
    (tmp_path / "images" / "zz").mkdir(parents=True, exist_ok=True)
    (tmp_path / "images" / "zz" / "plain.png").write_bytes(b"x")
    guessed = data_files.get_data_patterns(str(tmp_path))
    assert (guessed != {"train": ["**"]}) is split


# ---------------------------------------------------------------------------
# folders made before version 4


def _as_version_3(out: Path, *, flat_label: str | None = None) -> None:
    """Turn a version-4 folder back into what version 3 wrote: class folders (or a flat input's files) at the top,
    rows naming them so, no card, run.json version 3."""
    images = out / ".images-v4"
    (out / "images").rename(images)  # (a class may be named images)
    for cls in sorted(os.listdir(images)):
        if flat_label is None:
            (images / cls).rename(out / cls)
        else:
            for f in sorted(os.listdir(images / cls)):
                (images / cls / f).rename(out / f)
            (images / cls).rmdir()
            for sub in [out / "inputs"] + [out / "stages" / s for s in folder.SAVED_STAGES]:
                if (sub / cls).is_dir():
                    for f in sorted(os.listdir(sub / cls)):
                        (sub / cls / f).rename(sub / f)
                    (sub / cls).rmdir()
    images.rmdir()
    folder.card_path(out).unlink()

    def back(row: dict) -> dict:
        row["file_name"] = folder.image_relative(row["file_name"])
        if flat_label is not None:
            row["file_name"] = row["file_name"].split("/", 1)[1]
            if "input_file_name" in row:
                row["input_file_name"] = "inputs/" + row["input_file_name"].split("/", 2)[2]
        return row

    for p in [*(out / ".diffusemix").glob("rows-*.jsonl"), folder.manifest_path(out)]:
        p.write_text("".join(json.dumps(back(json.loads(x)), ensure_ascii=False) + "\n"
                             for x in p.read_text().splitlines()))
    (out / ".diffusemix" / "plan.jsonl").unlink()
    settings = json.loads(folder.settings_path(out).read_text())
    settings["settings_version"] = 3
    folder.settings_path(out).write_text(json.dumps(settings))


@pytest.mark.parametrize("kind", ["stages", "cache"])
def test_a_version_3_folder_is_read_then_moved_on_resume(tmp_path, fractal_dir, kind):
    fractals = FractalSet.from_folder(fractal_dir)
    inp = make_input(tmp_path / "in")
    opts = {"save_stages": True} if kind == "stages" else {"cache": True}
    ref = tmp_path / "ref"
    run(inp, ref, fractals, **opts)
    out = tmp_path / "old"
    shutil.copytree(ref, out)
    _as_version_3(out)
    assert folder.images_root(out) == out and (out / "cat").is_dir()
    from diffusemix.export import ExportOptions, plan_export

    dry = plan_export(inp, out, recipe=RECIPE, options=ExportOptions(**opts))  # counts the old rows, moves nothing
    assert dry.already_done == 20 and (out / "cat").is_dir()
    from diffusemix.data import DiffuseMixDataset

    with pytest.warns(UserWarning, match="preview editor"):
        assert len(DiffuseMixDataset(out, fractals=fractals)) > 0  # read where it is
    # a run killed halfway through the move: one class moved, the others not
    (out / "images").mkdir()
    (out / "cat").rename(out / "images" / "cat")
    summary = run(inp, out, fractals, **opts)
    assert summary.made == 0 and summary.skipped_done == 20
    assert tree(out) == tree(ref)  # the same files, bytes and manifest as a version-4 run, card included
    assert json.loads(folder.settings_path(out).read_text())["settings_version"] == 4


def test_a_version_3_flat_folder_moves_into_its_class_folder(tmp_path, fractal_dir):
    fractals = FractalSet.from_folder(fractal_dir)
    inp = tmp_path / "birds"
    inp.mkdir()
    for i in range(3):
        Image.fromarray(picture(30, 30, i)).save(inp / f"b{i}.png")
    ref = tmp_path / "ref"
    run(inp, ref, fractals, save_stages=True)
    out = tmp_path / "old"
    shutil.copytree(ref, out)
    _as_version_3(out, flat_label="birds")
    assert (out / "b0_sunset_0.png").is_file() and (out / "stages" / "input" / "b0_sunset_0.png").is_file()
    from diffusemix.export import ExportOptions, plan_export

    assert plan_export(inp, out, recipe=RECIPE, options=ExportOptions(save_stages=True)).already_done == 6
    summary = run(inp, out, fractals, save_stages=True)
    assert summary.made == 0 and tree(out) == tree(ref)


def test_a_version_3_folder_with_a_class_named_images_is_refused(tmp_path, fractal_dir):
    fractals = FractalSet.from_folder(fractal_dir)
    inp = make_input(tmp_path / "in", classes=("images", "other"))
    out = tmp_path / "old"
    run(inp, out, fractals)
    _as_version_3(out)
    before = tree(out)
    with pytest.raises(DiffuseMixError, match=r"has a class named 'images'.*Export into a new folder"):
        run(inp, out, fractals)
    assert tree(out) == before  # nothing moved


def test_a_version_3_folder_with_other_settings_is_refused_before_anything_moves(tmp_path, fractal_dir):
    fractals = FractalSet.from_folder(fractal_dir)
    inp = make_input(tmp_path / "in")
    out = tmp_path / "old"
    run(inp, out, fractals)
    _as_version_3(out)
    before = tree(out)
    with pytest.raises(DiffuseMixError, match=r"other settings \(recipe.seed: 0 -> 9\)"):
        run(inp, out, fractals, recipe=RECIPE.replace(seed=9))
    assert tree(out) == before


# ---------------------------------------------------------------------------
# the card's types against pyarrow's JSON inference (what datasets gives without a card)


def _column_values():
    from hypothesis import strategies as st

    scalar = st.sampled_from(["int", "float", "num", "str", "bool", "ints", "floats", "struct"])

    def values(kind: str):
        base = {
            "int": st.integers(-2**40, 2**40), "float": st.floats(-1e6, 1e6, allow_nan=False),
            "num": st.one_of(st.integers(-99, 99), st.floats(-1e3, 1e3, allow_nan=False)),
            "str": st.text(max_size=5), "bool": st.booleans(),
            "ints": st.lists(st.integers(-9, 9), max_size=3), "floats": st.lists(st.floats(0, 1), max_size=3),
            "struct": st.fixed_dictionaries({"a": st.one_of(st.none(), st.integers(0, 9)), "b": st.text(max_size=3)}),
        }[kind]
        return st.one_of(st.none(), base)

    return scalar.flatmap(lambda kind: st.lists(values(kind), min_size=1, max_size=6))


def test_inferred_types_equal_pyarrows_for_any_columns():
    datasets = pytest.importorskip("datasets")
    import io

    import pyarrow.json as paj
    from hypothesis import example, given, settings
    from hypothesis import strategies as st

    @settings(max_examples=int(os.environ.get("DIFFUSEMIX_HYPOTHESIS_EXAMPLES", "60")), deadline=None)
    @example([{"c0": {"a": None, "b": ""}}, {"c0": {"a": 0, "b": ""}}])  # a struct field null, then int
    @example([{"c0": 1}, {"c0": 2.5}, {"c0": None}])  # ints and floats: float64
    @given(st.lists(_column_values(), min_size=1, max_size=4).map(
        lambda cols: [{f"c{j}": col[i % len(col)] for j, col in enumerate(cols)} for i in range(max(map(len, cols)))]
    ))
    def check(table: list[dict]) -> None:
        text = "".join(json.dumps(r) + "\n" for r in table).encode()
        want = datasets.Features.from_arrow_schema(paj.read_json(io.BytesIO(text)).schema)
        got = datasets.Features._from_yaml_list(infer_features(table, []))
        assert got == want

    check()
