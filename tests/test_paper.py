"""The ``paper`` preset end to end: an export reproduces the authors' arithmetic bit for bit.

Every H and A of a ``--preset paper --save-stages`` export is recomputed from
the saved I, Î and F with ``authors_port`` (independent of the library) and
must be 0 grey levels apart.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from authors_port import ORIENTATION_OF_LAYOUT, authors_blend, authors_combine
from PIL import Image

from diffusemix.cli import main
from diffusemix.export import folder
from diffusemix.fractals import write_fractal_set
from diffusemix.prompts import PAPER_PROMPTS


def _picture(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([np.sin(xx / (7 + seed)), np.cos(yy / 11), np.sin((xx + yy) / 13)], -1) * 0.4 + 0.5
    img += rng.normal(0.0, 0.03, img.shape)
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def fractal_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("fractals")
    write_fractal_set(folder, count=4, size=64, seed=5)
    return folder


def _dataset(root: Path) -> Path:
    for ci, cls in enumerate(("cat", "dog")):
        (root / cls).mkdir(parents=True)
        Image.fromarray(_picture(300 + 40 * ci, 220, ci)).save(root / cls / "a.png")
    return root


def _stage(out: Path, stage: str, file_name: str) -> np.ndarray:
    with Image.open(folder.stage_path(out, stage, file_name)) as im:
        return np.asarray(im.convert("RGB"))


@pytest.mark.parametrize("size", [256, 512])
def test_paper_export_is_the_authors_arithmetic_bit_for_bit(tmp_path: Path, fractal_dir: Path, size: int, capsys):
    data = _dataset(tmp_path / "data")
    out = tmp_path / "out"
    args = ["export", str(data), str(out), "--preset", "paper", "--editor", "preview", "--save-stages"]
    args += ["--fractals", str(fractal_dir), "--no-progress", "--workers", "1", "--size", str(size)]
    assert main(args) == 0, capsys.readouterr().err
    rows = [json.loads(line) for line in (out / "metadata.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 2 * len(PAPER_PROMPTS) == 18  # all nine prompts for every image
    assert {r["prompt"] for r in rows} == set(PAPER_PROMPTS)
    assert {r["layout"] for r in rows} == {"left", "top"}  # both of the authors' layouts occur
    for row in rows:
        assert (row["mask"], row["seam"], row["lam"], row["size"]) == ("linspace", 20, 0.2, size)
        i, g, f = (_stage(out, s, row["file_name"]) for s in ("input", "generated", "fractal"))
        want_h = authors_combine(i, g, ORIENTATION_OF_LAYOUT[row["layout"]], blend_width=20)
        want_a = authors_blend(want_h, f, 0.2)
        np.testing.assert_array_equal(_stage(out, "hybrid", row["file_name"]), want_h)
        with Image.open(out / row["file_name"]) as im:
            np.testing.assert_array_equal(np.asarray(im), want_a)


# --- rows carry everything that made their image ------------------------------------


def _rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metadata.jsonl").read_text(encoding="utf-8").splitlines()]


def _export(data: Path, out: Path, fractal_dir: Path, *extra: str) -> None:
    args = ["export", str(data), str(out), "--editor", "preview", "--fractals", str(fractal_dir)]
    assert main([*args, "--no-progress", "--workers", "1", *extra]) == 0


def test_a_center_crop_export_replays_byte_identical_from_its_rows_alone(tmp_path: Path, fractal_dir: Path):
    from diffusemix.editors import load_editor
    from diffusemix.engine import replay
    from diffusemix.export import replay_row
    from diffusemix.fractals import FractalSet
    from diffusemix.images import load_image, prepare
    from diffusemix.recipe import SampleRecord

    data = _dataset(tmp_path / "data")
    Image.fromarray(_picture(90, 200, 7)).save(data / "dog" / "wide.png")  # cropping matters most here
    out = tmp_path / "out"
    _export(data, out, fractal_dir, "--resize", "center-crop", "--size", "64", "--prompts", "snowy,sunset")
    rows = _rows(out)
    assert len(rows) == 6
    fractals = FractalSet.from_folder(fractal_dir)
    for row in rows:
        # only the row, the input file and the fractal folder: no run.json
        assert row["resize"] == "center-crop" and row["size"] == 64 and row["arithmetic"] == "reference"
        a = replay_row(row, data, fractals).augmented
        buf = __import__("io").BytesIO()
        Image.fromarray(a).save(buf, format="PNG")
        assert buf.getvalue() == (out / row["file_name"]).read_bytes(), row["file_name"]
    # the same replay with the plain resize (what a row without "resize" implied) does not give the file
    row = next(r for r in rows if r["source"] == "dog/wide.png")
    rec = SampleRecord.from_dict({**row, "resize": "resize"})
    image = prepare(load_image(data / row["source"]), rec.size, resize="resize")
    with Image.open(out / row["file_name"]) as im:
        assert not np.array_equal(replay(rec, image, load_editor("preview"), fractals).augmented, np.asarray(im))


def test_rows_and_run_json_record_the_arithmetic_mask_resize_and_editor(tmp_path: Path, fractal_dir: Path):
    data = _dataset(tmp_path / "data")
    out = tmp_path / "out"
    _export(data, out, fractal_dir, "--prompts", "snowy", "--arithmetic", "rounded", "--mask", "ramp", "--size", "32")
    for row in _rows(out):
        assert (row["arithmetic"], row["mask"], row["seam"], row["resize"]) == ("rounded", "ramp", 20, "resize")
        assert row["prompts_per_image"] == "all" and row["model_revision"] is None  # the preview has no model
        assert json.loads(row["editor_settings"]) == {"batch_size": 8, "max_retries": 2}  # what changes Î
    run = json.loads((out / ".diffusemix" / "run.json").read_text(encoding="utf-8"))
    assert run["recipe"]["arithmetic"] == "rounded" and run["recipe"]["prompts_per_image"] == "all"
    assert run["editor"] == {"name": "preview", "batch_size": 8, "max_retries": 2, "model_revision": None}


def test_a_folder_made_before_arithmetic_was_recorded_resumes_only_as_rounded(tmp_path: Path, fractal_dir: Path, capsys):
    data = _dataset(tmp_path / "data")
    out = tmp_path / "out"
    flags = ("--prompts", "snowy", "--mask", "ramp", "--size", "32")
    _export(data, out, fractal_dir, *flags, "--arithmetic", "rounded")
    p = out / ".diffusemix" / "run.json"
    now = json.loads(p.read_text(encoding="utf-8"))
    r = now["recipe"]
    run = {  # as version 1 wrote it: no arithmetic (all rounded), prompts_per_image or model_revision
        "diffusemix": "0.1.0", "settings_version": 1, "input": now["input"], "labels": now["labels"],
        "generation": {**{k: r[k] for k in ("size", "resize", "prompts", "images_per_prompt", "seed")},
                       "editor": {"name": "preview", "is_diffusion": False, "max_retries": 2, "model": None}},
        "mixing": {**{k: r[k] for k in ("layouts", "mask", "seam", "lam")}, "fractals": now["fractals"],
                   "format": "png", "quality": None},
    }
    p.write_text(json.dumps(run), encoding="utf-8")
    capsys.readouterr()
    args = ["export", str(data), str(out), "--editor", "preview", "--fractals", str(fractal_dir), *flags]
    assert main(args) == 2  # the default arithmetic is the reference one: those images were rounded
    assert 'recipe.arithmetic: "rounded" -> "reference"' in capsys.readouterr().err
    _export(data, out, fractal_dir, *flags, "--arithmetic", "rounded")  # the same settings resume


def test_model_revision_is_known_from_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from huggingface_hub import constants

    from diffusemix.export.settings import model_revision

    commit = "0123456789abcdef0123456789abcdef01234567"
    snap = tmp_path / "hub" / "models--org--m" / "snapshots" / commit
    snap.mkdir(parents=True)
    (tmp_path / "hub" / "models--org--m" / "refs").mkdir()
    (tmp_path / "hub" / "models--org--m" / "refs" / "main").write_text(commit + "\n")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    assert model_revision("org/m") == commit  # a Hub id: what the cache resolves main to
    assert model_revision(str(snap)) == commit  # a snapshot folder names its commit
    assert model_revision("org/not-cached") is None
    assert model_revision(str(tmp_path)) is None and model_revision(None) is None


# --- one prompt per image -------------------------------------------------------------


def test_one_prompt_per_image_gives_a_dataset_the_size_of_the_input(tmp_path: Path, fractal_dir: Path):
    from diffusemix.recipe import draw_prompts, get_preset

    data = tmp_path / "data"
    for cls in ("cat", "dog"):
        (data / cls).mkdir(parents=True)
        for k in range(6):
            Image.fromarray(_picture(40, 40, k)).save(data / cls / f"{k}.png")
    runs = {}
    for name, seed in (("a", "0"), ("b", "0"), ("c", "1")):
        _export(data, tmp_path / name, fractal_dir, "--prompts-per-image", "1", "--size", "32", "--seed", seed)
        runs[name] = _rows(tmp_path / name)
    rows = runs["a"]
    assert len(rows) == 12  # twelve images in, twelve out
    assert sorted(r["source"] for r in rows) == sorted(f"{c}/{k}.png" for c in ("cat", "dog") for k in range(6))
    recipe = get_preset("paper", prompts_per_image=1, size=32)
    for r in rows:  # the prompt drawn from the seed, recorded in the row and in the file name
        assert r["prompts_per_image"] == 1
        assert (r["prompt"],) == draw_prompts(recipe, r["source"])
        assert r["prompt"] in PAPER_PROMPTS and (tmp_path / "a" / r["file_name"]).is_file()
    assert len({r["prompt"] for r in rows}) > 3  # drawn, not one prompt for all
    assert runs["b"] == rows  # same seed, same draw (and same images)
    assert [r["prompt"] for r in runs["c"]] != [r["prompt"] for r in rows]


def test_prompts_per_image_errors_name_the_flag(tmp_path: Path, fractal_dir: Path, capsys):
    data = _dataset(tmp_path / "data")
    args = ["export", str(data), str(tmp_path / "out"), "--editor", "preview", "--prompts", "snowy,sunset"]
    assert main([*args, "--prompts-per-image", "3", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert 'error: --prompts-per-image must be "all" or a whole number from 1 to the number of prompts (2); got 3' in err
    assert main([*args, "--prompts-per-image", "some", "--dry-run"]) == 2
    assert "got 'some'" in capsys.readouterr().err
    assert main([*args, "--prompts-per-image", "1", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "1 drawn per image from the seed" in out and "would make 2 image(s)" in out


def test_editor_from_row_rebuilds_a_diffusion_editor_with_its_settings():
    from diffusemix.editors import load_editor
    from diffusemix.export import editor_from_row
    made = load_editor("instruct-pix2pix", model="org/some-ip2p", device="cpu", steps=7, guidance_scale=5.5)
    row = {"editor": made.name, "editor_settings": made.spec.settings_text(), "file_name": "x.png"}
    again = editor_from_row(row, device="cpu")
    assert type(again) is type(made) and again.model == "org/some-ip2p" and not again.loaded
    assert again.spec == made.spec
    with pytest.raises(ValueError, match="editor_settings is not a JSON object"):
        editor_from_row({**row, "editor_settings": "{oops"})
