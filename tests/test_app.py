"""The Gradio app: its handlers called directly, and the running server through gradio_client.

Everything uses the preview editor (no weights), at 64-128 px, except one
test that runs the app on the tiny InstructPix2Pix pipeline from conftest.
"""

from __future__ import annotations

import io
import json
import os
import stat
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("DIFFUSEMIX_EDITOR", "preview")  # importing app must not load a diffusion model

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import gradio as gr  # noqa: E402

import app  # noqa: E402
from diffusemix.archive import safe_extract  # noqa: E402
from diffusemix.prompts import load_prompts  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::Warning:gradio.queueing")

EXAMPLES = ROOT / "assets" / "examples"
CAR = str(EXAMPLES / "car.jpg")
FLOWER = str(EXAMPLES / "flower.jpg")


@pytest.fixture(scope="module", autouse=True)
def _clean_uploads():
    yield
    import shutil

    from gradio.utils import get_upload_folder

    shutil.rmtree(Path(get_upload_folder()) / "diffusemix-tests", ignore_errors=True)


@pytest.fixture(scope="module")
def ctx():
    return app.make_context("preview")


@pytest.fixture(scope="module")
def demo(ctx):
    return app.build_demo(ctx=ctx)


def explore_args(**over):
    """Explore's inputs, in the API's order, as keywords."""
    args = dict(
        image=CAR,
        set_prompts=["snowy"],
        extra_prompts="sunset",
        layouts=["left", "top"],
        mask="ramp",
        seam=8,
        lam=0.2,
        fractal="random",
        fractal_name=None,
        fractal_image=None,
        seed=3,
        randomize_seed=False,
        size=64,
        steps=5,
        guidance_scale=4.0,
        image_guidance_scale=1.5,
        strength=0.5,
    )
    args.update(over)
    return args


def png_bytes(colour=(200, 30, 30), size=(40, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "PNG")
    return buf.getvalue()


def upload(path: Path) -> str:
    """Put a file where gradio keeps uploads (handlers open nothing else but the bundled assets)."""
    from gradio.utils import get_upload_folder

    folder = Path(get_upload_folder()) / "diffusemix-tests" / os.urandom(6).hex()
    folder.mkdir(parents=True)
    target = folder / path.name
    target.write_bytes(path.read_bytes())
    return str(target)


def make_zip(path: Path, entries: dict[str, bytes]) -> str:
    """A zip with these entries, uploaded."""
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return upload(path)


# ---------------------------------------------------------------------------
# Explore
# ---------------------------------------------------------------------------


def test_explore_returns_six_stages_per_prompt_in_order(demo, ctx):
    gallery, seed, records, summary, state = app.explore(**explore_args(), ctx=ctx)
    assert len(gallery) == 2 * 6
    captions = [c for _, c in gallery]
    assert [c.split("·")[0].strip() for c in captions] == ["I", "Î", "M", "H", "F", "A"] * 2
    assert captions[0] == "I · input" and captions[3] == "H · hybrid" and captions[4] == "F · fractal"
    assert "snowy" in captions[1] and "sunset" in captions[7]
    for path, _ in gallery:
        with Image.open(path) as im:
            assert im.format == "PNG" and im.size == (64, 64)
    with Image.open(gallery[2][0]) as mask:
        assert mask.mode == "L"  # the mask, lossless grey
    with Image.open(gallery[5][0]) as a:
        assert np.array_equal(np.asarray(a), state["stages"][0].augmented)  # lossless
    assert seed == 3
    assert records["editor"]["name"] == "preview"
    assert [r["prompt"] for r in records["samples"]] == ["snowy", "sunset"]
    assert records["recipe"]["seed"] == 3 and records["recipe"]["size"] == 64
    assert "master seed **3**" in summary
    assert len(state["stages"]) == 2


def test_explore_is_reproducible_and_randomise_shows_the_seed_used(ctx):
    a = app.explore(**explore_args(), ctx=ctx)
    b = app.explore(**explore_args(), ctx=ctx)
    for (x, _), (y, _) in zip(a[0], b[0]):
        assert np.array_equal(np.asarray(Image.open(x)), np.asarray(Image.open(y)))
    _, seed, records, _, _ = app.explore(**explore_args(randomize_seed=True), ctx=ctx)
    assert 0 <= seed <= app.MAX_SEED and records["recipe"]["seed"] == seed


def test_explore_picked_and_uploaded_fractals(ctx, tmp_path):
    name = ctx.fractals.names[5]
    *_, state = app.explore(**explore_args(fractal="pick", fractal_name=name), ctx=ctx)
    assert {s.record.fractal for s in state["stages"]} == {name}
    assert np.array_equal(state["stages"][0].fractal, ctx.fractals.load(name, 64))

    fractal = tmp_path / "my_fractal.png"
    Image.new("RGB", (50, 70), (0, 200, 100)).save(fractal)
    *_, state = app.explore(**explore_args(fractal="upload", fractal_image=upload(fractal)), ctx=ctx)
    assert state["stages"][0].record.fractal == "(uploaded)"
    assert (state["stages"][0].fractal == np.array([0, 200, 100], np.uint8)).all()


@pytest.mark.parametrize(
    "over, message",
    [
        ({"image": None}, "No image"),
        ({"set_prompts": [], "extra_prompts": ""}, "at least one prompt"),
        ({"layouts": []}, "at least one mask layout"),
        ({"lam": 5}, r"Recipe.lam must be in \[0, 1\]"),
        ({"mask": "soft"}, "Recipe.mask must be one of"),
        ({"size": 4000}, "size must be between 64 and 512"),
        ({"seed": 1.5}, "seed must be a whole number"),
        ({"lam": None}, r"λ \(lam\) must be a number"),
        ({"seed": "abc"}, "seed must be a number"),
        ({"extra_prompts": "a, b, c, d, e, f, g, h, i, j, k, l, m"}, "at most 12"),
        ({"fractal": "pick", "fractal_name": None}, "Pick a fractal"),
        ({"fractal": "upload"}, "Upload a fractal image"),
        ({"fractal": "mandelbrot"}, "fractal must be one of"),
        ({"image": "/etc/hostname"}, "must be an uploaded file"),
        ({"image": "/tmp/../etc/hostname"}, "must be an uploaded file"),
        ({"fractal": "upload", "fractal_image": "/etc/passwd"}, "must be an uploaded file"),
    ],
)
def test_explore_bad_input_is_a_readable_gr_error(ctx, over, message):
    with pytest.raises(gr.Error, match=message):
        app.explore(**explore_args(**over), ctx=ctx)


def test_explore_non_image_upload_names_the_problem(ctx, tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_text("this is not an image")
    with pytest.raises(gr.Error, match="not an image Pillow can read"):
        app.explore(**explore_args(image=upload(bad)), ctx=ctx)


def test_downloads_figure_and_zip_with_records(ctx):
    *_, state = app.explore(**explore_args(), ctx=ctx)
    files = app.make_downloads(state, ctx=ctx)["value"]
    png, pdf, archive = map(Path, files)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and pdf.read_bytes()[:5] == b"%PDF-"
    with zipfile.ZipFile(archive) as zf:
        names = zf.namelist()
        rows = [json.loads(line) for line in zf.read("records.jsonl").decode().splitlines()]
        assert sum(n.endswith(".png") for n in names) == 12
        first = Image.open(io.BytesIO(zf.read(rows[0]["files"]["augmented"])))
        assert first.format == "PNG" and first.size == (64, 64)
    assert [r["prompt"] for r in rows] == ["snowy", "sunset"]
    assert rows[0]["editor"]["name"] == "preview" and "lam" in rows[0] and "seed" in rows[0]
    with pytest.raises(gr.Error, match="press Generate first"):
        app.make_downloads(None, ctx=ctx)


def test_prompt_set_picker_fills_the_checkboxes(ctx):
    update = app.show_set("weather", ctx=ctx, check="two")
    assert update["choices"][0] == "Autumn" and update["value"] == ["Autumn", "snowy"]
    assert app.show_set("art", ctx=ctx, check="all")["value"] == list(ctx.book.get("art"))
    with pytest.raises(gr.Error, match="unknown prompt set"):
        app.show_set("nope", ctx=ctx)


# ---------------------------------------------------------------------------
# Prompt lab
# ---------------------------------------------------------------------------


def test_prompt_lab_grid_rows_are_prompts_columns_are_images(ctx):
    images = [(CAR, None), (FLOWER, None)]  # what an interactive gallery sends
    grid, keep, yaml_text, yaml_file, lab = app.prompt_lab(images, "snowy\nsunset\nwatercolor art", "Î generated",
                                                          64, 0, ctx=ctx)
    items = grid["value"]
    assert grid["columns"] == 2 and len(items) == 6
    assert [c for _, c in items[:2]] == ["“snowy” · car.jpg", "“snowy” · flower.jpg"]
    assert items[5][1] == "“watercolor art” · flower.jpg"
    assert keep["choices"] == keep["value"] == ["snowy", "sunset", "watercolor art"]
    assert "my-set" in yaml_text and Path(yaml_file).read_text() == yaml_text

    # the A switch re-renders from the kept stages, without generating again
    a_grid = app.lab_grid_items(lab, "A augmented", ctx=ctx)["value"]
    assert np.array_equal(np.asarray(Image.open(items[0][0])), lab["rows"][0][0].generated)
    assert np.array_equal(np.asarray(Image.open(a_grid[0][0])), lab["rows"][0][0].augmented)


def test_kept_set_yaml_is_a_loadable_prompt_file(ctx, tmp_path):
    text, path = app.kept_set(["snowy", "watercolor art"], "winter-art", ctx=ctx)
    book = load_prompts(path)
    assert book.default == "winter-art" and book.get() == ("snowy", "watercolor art")
    text, path = app.kept_set([], "x", ctx=ctx)
    assert path is None and "No prompt kept" in text
    text, path = app.kept_set(["snowy"], "bad name!", ctx=ctx)
    assert path is None and "not allowed" in text


def test_prompt_lab_errors(ctx, tmp_path):
    with pytest.raises(gr.Error, match="No images"):
        app.prompt_lab([], "snowy", "Î generated", 64, 0, ctx=ctx)
    with pytest.raises(gr.Error, match="at least one prompt"):
        app.prompt_lab([CAR], " \n ", "Î generated", 64, 0, ctx=ctx)
    with pytest.raises(gr.Error, match="at most 8"):
        app.prompt_lab([CAR] * 9, "snowy", "Î generated", 64, 0, ctx=ctx)


def test_save_kept_needs_the_flag(ctx, tmp_path):
    with pytest.raises(gr.Error, match="--allow-save-prompts"):
        app.save_kept(["snowy"], "mine", ctx=ctx)

    prompts = tmp_path / "prompts.yaml"
    prompts.write_text((ROOT / "prompts.yaml").read_text())
    writable = app.make_context("preview", prompts_path=prompts, allow_save_prompts=True)
    message, choices, _ = app.save_kept(["snowy", "rain"], "mine", ctx=writable)
    assert "Saved set **mine**" in message and "mine" in choices["choices"]
    assert load_prompts(prompts).get("mine") == ("snowy", "rain")
    with pytest.raises(gr.Error, match="already exists in prompts.yaml; choose another name"):
        app.save_kept(["snowy"], "mine", ctx=writable)


def test_save_is_forced_off_on_a_space(monkeypatch):
    monkeypatch.setenv("SPACE_ID", "someone/diffusemix")
    assert app.parse_args(["--allow-save-prompts"]).allow_save_prompts is False
    assert app.make_context("preview", allow_save_prompts=True).allow_save_prompts is False
    for var in ("SPACE_ID", "DIFFUSEMIX_EDITOR", "GRADIO_SERVER_NAME", "GRADIO_SERVER_PORT"):
        monkeypatch.delenv(var, raising=False)
    args = app.parse_args(["--allow-save-prompts"])
    assert args.allow_save_prompts is True and args.host == "127.0.0.1" and args.port == 7860
    assert args.share is False and args.editor == "auto"


# ---------------------------------------------------------------------------
# Batch export and zip safety
# ---------------------------------------------------------------------------


def test_batch_export_returns_a_zip_with_metadata_and_class_folders(ctx, tmp_path):
    dataset = make_zip(
        tmp_path / "pets.zip",
        {
            "pets/cats/a.png": png_bytes((200, 40, 40)),
            "pets/cats/b.png": png_bytes((180, 90, 40)),
            "pets/dogs/c.png": png_bytes((40, 40, 200)),
            "pets/dogs/readme.txt": b"not an image",
            "__MACOSX/pets/cats/._a.png": b"junk",
        },
    )
    summary, result = app.batch_export(dataset, ["snowy"], "sunset", ["left"], "ramp", 8, 0.2, 0, 64, 1, False,
                                       ctx=ctx)
    assert "made:             6 image(s)" in summary and "2 classes (cats, dogs)" in summary
    assert str(ctx.workdir) not in summary  # no server paths in the page
    with zipfile.ZipFile(result) as zf:
        names = zf.namelist()
        rows = [json.loads(x) for x in zf.read("metadata.jsonl").decode().splitlines()]
    assert "metadata.jsonl" in names
    assert sum(n.startswith("cats/") for n in names) == 4 and sum(n.startswith("dogs/") for n in names) == 2
    assert len(rows) == 6 and all(r["file_name"] in names for r in rows)
    assert not (Path(result).parent / "input").exists()  # the unpacked upload is gone


@pytest.mark.parametrize(
    "entries, message",
    [
        ({"../evil.png": b"x", "cats/a.png": b"x"}, "points outside the archive"),
        ({"/abs/evil.png": b"x"}, "points outside the archive"),
        ({"cats/../../evil.png": b"x"}, "points outside the archive"),
        ({"C:/evil.png": b"x"}, "points outside the archive"),
        ({"a.png": png_bytes(), "b.png": png_bytes()}, "no class folders"),
        ({"cats/readme.txt": b"hello"}, "holds no images"),
        ({"cats/a.png": png_bytes(), "cats/a.png/b.png": png_bytes()}, "a file and a folder share its path"),
        ({"cats/a.png/b.png": png_bytes(), "cats/a.png": png_bytes()}, "a file and a folder share its path"),
    ],
)
def test_bad_zips_are_refused_with_a_message(ctx, tmp_path, entries, message):
    dataset = make_zip(tmp_path / "bad.zip", entries)
    with pytest.raises(gr.Error, match=message):
        app.batch_export(dataset, ["snowy"], "", ["left"], "ramp", 8, 0.2, 0, 64, 1, False, ctx=ctx)
    assert not any(ctx.workdir.glob("*/input/*"))  # nothing left unpacked
    assert not (tmp_path.parent / "evil.png").exists()


def test_corrupt_zip_and_missing_zip(ctx, tmp_path):
    corrupt = tmp_path / "corrupt.zip"
    corrupt.write_bytes(b"PK\x03\x04 this is not really a zip")
    with pytest.raises(gr.Error, match="not a readable zip"):
        app.batch_export(upload(corrupt), ["snowy"], "", ["left"], "ramp", 8, 0.2, 0, 64, 1, False, ctx=ctx)
    with pytest.raises(gr.Error, match="No dataset"):
        app.batch_export(None, ["snowy"], "", ["left"], "ramp", 8, 0.2, 0, 64, 1, False, ctx=ctx)


def test_files_outside_the_upload_folder_are_refused(ctx, tmp_path):
    outside = tmp_path / "elsewhere.png"  # a real image, but not uploaded
    Image.new("RGB", (20, 20)).save(outside)
    with pytest.raises(gr.Error, match="must be an uploaded file"):
        app.explore(**explore_args(image=str(outside)), ctx=ctx)
    with pytest.raises(gr.Error, match="must be an uploaded file"):
        app.prompt_lab([str(outside)], "snowy", "Î generated", 64, 0, ctx=ctx)
    with pytest.raises(gr.Error, match="must be an uploaded file"):
        app.batch_export(str(outside), ["snowy"], "", ["left"], "ramp", 8, 0.2, 0, 64, 1, False, ctx=ctx)


def test_symlinks_zip_bombs_and_counts_are_refused(tmp_path):
    link = tmp_path / "link.zip"
    with zipfile.ZipFile(link, "w") as zf:
        info = zipfile.ZipInfo("cats/a.png")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(ValueError, match="symbolic link"):
        safe_extract(link, tmp_path / "out1")

    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("cats/huge.png", b"\0" * (3 * 2**20))  # 3 MB of zeros: a few KB compressed
    assert bomb.stat().st_size < 50_000
    with pytest.raises(ValueError, match="unpacks to 3 MB; the limit is 1 MB"):
        safe_extract(bomb, tmp_path / "out2", max_bytes=2**20)

    many = make_zip(tmp_path / "many.zip", {f"cats/{i}.png": b"x" for i in range(5)})
    with pytest.raises(ValueError, match="5 images; the limit is 4"):
        safe_extract(many, tmp_path / "out3", max_images=4)
    with pytest.raises(ValueError, match="5 entries; the limit is 3"):
        safe_extract(many, tmp_path / "out4", max_entries=3)
    assert safe_extract(many, tmp_path / "out5") == 5


def test_export_refuses_too_many_outputs(ctx, tmp_path, monkeypatch):
    monkeypatch.setattr(app, "MAX_EXPORT_OUTPUTS", 3)
    dataset = make_zip(tmp_path / "d.zip", {"cats/a.png": png_bytes(), "dogs/b.png": png_bytes()})
    with pytest.raises(gr.Error, match="2 images x 2 per image = 4 augmented images; the limit here is 3"):
        app.batch_export(dataset, ["snowy", "rain"], "", ["left"], "ramp", 8, 0.2, 0, 64, 1, False, ctx=ctx)


# ---------------------------------------------------------------------------
# status line, editors, ZeroGPU
# ---------------------------------------------------------------------------


def test_status_line_says_the_preview_is_not_a_diffusion_model(ctx):
    text = app.status_markdown(ctx)
    assert "preview editor" in text and "not a diffusion model" in text
    assert "--editor instruct-pix2pix" in text and "--model /path/to/local/folder" in text


def test_auto_editor_falls_back_to_the_preview_with_its_notice():
    auto = app.make_context("auto")  # no weights are cached in the tests (conftest: empty HF_HOME, offline)
    assert auto.editor.name == "preview"
    assert "Why the preview" in app.status_markdown(auto)


def test_gpu_functions_take_and_return_picklable_data(ctx, tmp_path, monkeypatch):
    """On ZeroGPU they run in a forked worker: arguments and results cross by pickle."""
    import pickle

    seen = []
    for name in ("_run_augment", "_run_export"):
        original = getattr(app, name)

        def checked(*args, _original=original, **kwargs):
            pickle.dumps((args, kwargs))
            result = _original(*args, **kwargs)
            pickle.dumps(result)
            seen.append(_original.__name__)
            return result

        monkeypatch.setattr(app, name, checked)
    app.explore(**explore_args(), ctx=ctx)
    app.prompt_lab([CAR], "snowy", "Î generated", 64, 0, ctx=ctx)
    dataset = make_zip(tmp_path / "d.zip", {"cats/a.png": png_bytes(), "dogs/b.png": png_bytes()})
    app.batch_export(dataset, ["snowy"], "", ["left"], "ramp", 8, 0.2, 0, 64, 1, False, ctx=ctx)
    assert seen == ["_run_augment", "_run_augment", "_run_export"]


def test_gpu_decorator_is_a_no_op_without_spaces():
    def f(x):
        return x + 1

    assert app.gpu(duration=10)(f)(1) == 2


@pytest.mark.slow
def test_app_on_the_tiny_instruct_pix2pix(tiny_ip2p_dir):
    ctx = app.make_context("instruct-pix2pix", model=str(tiny_ip2p_dir), device="cpu")
    status = app.status_markdown(ctx)
    assert "Î is made by instruct-pix2pix" in status and str(tiny_ip2p_dir) in status
    gallery, _, records, _, _ = app.explore(**explore_args(set_prompts=[], extra_prompts="snowy", steps=2), ctx=ctx)
    assert len(gallery) == 6 and records["editor"]["steps"] == 2
    assert ctx.editor.settings.steps == 100  # the shared editor keeps its own settings
    variant = app._editor_for(ctx, steps=2, strength=0.3)  # strength is img2img's: ignored
    assert variant is not ctx.editor and variant.settings.steps == 2 and variant.pipeline is ctx.editor.pipeline
    assert app._editor_for(ctx, steps=100) is ctx.editor


# ---------------------------------------------------------------------------
# the running app, through gradio_client
# ---------------------------------------------------------------------------


def test_running_app_through_gradio_client(demo):
    from gradio_client import Client, handle_file

    demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True, **app.launch_kwargs(demo.ctx))
    try:
        client = Client(demo.local_url, verbose=False)
        args = explore_args(image=handle_file(CAR))

        gallery, seed, records, _summary = client.predict(**args, api_name="/explore")
        assert len(gallery) == 12 and seed == 3
        assert [g["caption"].split("·")[0].strip() for g in gallery] == ["I", "Î", "M", "H", "F", "A"] * 2
        with Image.open(gallery[5]["image"]) as im:
            assert im.format == "PNG" and im.size == (64, 64)  # lossless, at the chosen size
        assert records["editor"]["name"] == "preview"

        # out of range through the API: a readable message, not a trace
        with pytest.raises(Exception, match="greater than maximum value 1") as err:
            client.predict(**{**args, "lam": 5}, api_name="/explore")
        assert "Traceback" not in str(err.value)
        with pytest.raises(Exception, match="No image"):
            client.predict(**{**args, "image": None}, api_name="/explore")

        # and the app still serves
        gallery, *_ = client.predict(**{**args, "extra_prompts": ""}, api_name="/explore")
        assert len(gallery) == 6

        # the server hands out the bundled assets, nothing else of the machine
        import httpx

        def status(path: Path | str) -> int:
            return httpx.get(f"{demo.local_url}gradio_api/file={path}").status_code

        assert status(EXAMPLES / "car.jpg") == 200
        assert status(ROOT / "app.py") == 403 and status(ROOT / "prompts.yaml") == 403
        assert status("/etc/passwd") == 403
    finally:
        demo.close()
