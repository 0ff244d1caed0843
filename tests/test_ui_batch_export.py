"""The Batch export tab (diffusemix/ui/batch_export.py): its handlers called directly, with the preview editor.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import gradio as gr
import pytest
from app_helpers import clean_uploads, ctx, make_zip, png_bytes, upload  # noqa: F401 (fixtures)

from diffusemix.ui import batch_export as batch_export_tab
from diffusemix.ui.batch_export import batch_export, stop_export

pytestmark = pytest.mark.filterwarnings("ignore::Warning:gradio.queueing")


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
    summary, result = batch_export(dataset, ["snowy"], "sunset", ["left"], "ramp", 8, 0.2, 0, 64, 1, False,
                                       ctx=ctx)
    assert "made:             6 image(s)" in summary and "2 classes (cats, dogs)" in summary
    assert str(ctx.workdir) not in summary  # no server paths in the page
    with zipfile.ZipFile(result) as zf:
        names = zf.namelist()
        rows = [json.loads(x) for x in zf.read("metadata.jsonl").decode().splitlines()]
    assert "metadata.jsonl" in names
    assert sum(n.startswith("images/cats/") for n in names) == 4
    assert sum(n.startswith("images/dogs/") for n in names) == 2
    assert "README.md" in names  # the dataset card
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
        batch_export(dataset, ["snowy"], "", ["left"], "ramp", 8, 0.2, 0, 64, 1, False, ctx=ctx)
    assert not any(ctx.workdir.glob("*/input/*"))  # nothing left unpacked
    assert not (tmp_path.parent / "evil.png").exists()


def test_corrupt_zip_and_missing_zip(ctx, tmp_path):
    corrupt = tmp_path / "corrupt.zip"
    corrupt.write_bytes(b"PK\x03\x04 this is not really a zip")
    with pytest.raises(gr.Error, match="not a readable zip"):
        batch_export(upload(corrupt), ["snowy"], "", ["left"], "ramp", 8, 0.2, 0, 64, 1, False, ctx=ctx)
    with pytest.raises(gr.Error, match="No dataset"):
        batch_export(None, ["snowy"], "", ["left"], "ramp", 8, 0.2, 0, 64, 1, False, ctx=ctx)


def test_export_refuses_too_many_outputs(ctx, tmp_path, monkeypatch):
    monkeypatch.setattr(batch_export_tab, "MAX_EXPORT_OUTPUTS", 3)
    dataset = make_zip(tmp_path / "d.zip", {"cats/a.png": png_bytes(), "dogs/b.png": png_bytes()})
    with pytest.raises(gr.Error, match="2 images x 2 per image = 4 augmented images; the limit here is 3"):
        batch_export(dataset, ["snowy", "rain"], "", ["left"], "ramp", 8, 0.2, 0, 64, 1, False, ctx=ctx)


# ---------------------------------------------------------------------------
# bounded work (issue 8, "The app")
# ---------------------------------------------------------------------------


def test_exports_do_not_take_the_queue_slots_of_explore(ctx):
    import app

    demo = app.build_demo(ctx=ctx)
    by_api = {fn.api_name: fn for fn in demo.fns.values() if fn.api_name}
    assert by_api["export"].concurrency_id != by_api["explore"].concurrency_id
    assert by_api["explore"].concurrency_id == by_api["prompt_lab"].concurrency_id
    assert by_api["export"].concurrency_limit == 1


def test_zip_pixels_are_bounded_from_headers(ctx, tmp_path, monkeypatch):
    monkeypatch.setattr(batch_export_tab, "MAX_ZIP_PIXELS", 3000)
    dataset = make_zip(tmp_path / "d.zip", {f"cats/{i}.png": png_bytes(size=(40, 30)) for i in range(3)})
    with pytest.raises(gr.Error, match=r"3 images of 3,600 pixels in all; the app takes up to 3,000"):
        batch_export(dataset, ["snowy"], "", ["left"], "ramp", 8, 0.2, 0, 64, 1, False, ctx=ctx)


def test_a_huge_image_in_a_zip_is_refused_before_decoding(ctx, tmp_path):
    import io
    import time

    from PIL import Image

    buf = io.BytesIO()
    Image.new("1", (9000, 9000)).save(buf, "PNG")  # 81 MP in a few KB
    entries = {"cats/a.png": png_bytes(), **{f"dogs/{i}.png": buf.getvalue() for i in range(150)}}
    dataset = make_zip(tmp_path / "bomb.zip", entries)
    t0 = time.perf_counter()
    with pytest.raises(gr.Error, match=r"dogs/0.png is 9,000 x 9,000 = 81,000,000 pixels") as err:
        batch_export(dataset, ["snowy"], "", ["left"], "ramp", 8, 0.2, 0, 64, 1, False, ctx=ctx)
    assert time.perf_counter() - t0 < 20 and "/tmp" not in str(err.value)


@pytest.mark.slow
def test_a_one_gigabyte_member_is_streamed_not_read_whole(ctx, tmp_path):
    import tracemalloc

    path = tmp_path / "big.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        zf.writestr("cats/a.png", png_bytes())
        with zf.open("dogs/big.png", "w", force_zip64=True) as member:
            chunk = b"\0" * 2**24
            for _ in range(64):  # 1 GiB of zeros: about 1 MB compressed
                member.write(chunk)
    assert path.stat().st_size < 8 * 2**20
    dataset = upload(path)
    tracemalloc.start()
    try:
        with pytest.raises(gr.Error, match=r"dogs/big.png unpacks to more than 64 MB"):
            batch_export(dataset, ["snowy"], "", ["left"], "ramp", 8, 0.2, 0, 64, 1, False, ctx=ctx)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 32 * 2**20, f"peak {peak / 2**20:.0f} MB"


def test_a_stopped_export_gives_a_dataset_zip(ctx, tmp_path):
    dataset = make_zip(tmp_path / "d.zip", {f"{c}/{i}.png": png_bytes((i * 20, 90, 40)) for c in ("cats", "dogs")
                                            for i in range(6)})

    class Request:
        session_hash = "stop-me"

    calls = []

    def progress(*args, **kwargs):  # stop after the exporter has reported a few images
        calls.append(args)
        if len(calls) == 2:
            stop_export(Request(), ctx=ctx)

    summary, result = batch_export(dataset, ["snowy"], "", ["left"], "ramp", 8, 0.2, 0, 64, 1, True, Request(),
                                   progress, ctx=ctx)
    assert "run the same command" not in summary
    assert summary.startswith("Stopped") and "The zip holds the" in summary
    with zipfile.ZipFile(result) as zf:
        names = set(zf.namelist())
        rows = [json.loads(x) for x in zf.read("metadata.jsonl").decode().splitlines()]
    assert 0 < len(rows) < 12 and {r["file_name"] for r in rows} | {"metadata.jsonl", "README.md"} == names
    assert all(r["class_name"] in ("cats", "dogs") for r in rows)
    present = sorted({r["class_name"] for r in rows})  # label: the class index ImageFolder gives the zip
    assert all(r["label"] == present.index(r["class_name"]) for r in rows)
    assert not any(n.startswith("stages/") for n in names)


def test_batch_export_draws_prompts_per_image(ctx, tmp_path):
    files = {f"pets/{c}/{k}.png": png_bytes((40 * k, 90, 40)) for c in ("cats", "dogs") for k in range(1, 4)}
    dataset = make_zip(tmp_path / "pets.zip", files)
    args = (dataset, ["snowy", "Autumn", "mosaic"], "", ["left"], "linspace", 8, 0.2, 3, 64, 1, False)
    summary, result = batch_export(*args, prompts_per_image="1", ctx=ctx)
    assert "made:             6 image(s)" in summary  # one per uploaded image, not x 3 prompts
    with zipfile.ZipFile(result) as zf:
        rows = [json.loads(x) for x in zf.read("metadata.jsonl").decode().splitlines()]
    assert len(rows) == 6 and all(r["prompts_per_image"] == 1 for r in rows)
    assert {r["prompt"] for r in rows} <= {"snowy", "Autumn", "mosaic"}
    _, again = batch_export(*args, prompts_per_image=1, ctx=ctx)  # same seed, same draw
    with zipfile.ZipFile(again) as zf:
        assert [json.loads(x)["prompt"] for x in zf.read("metadata.jsonl").decode().splitlines()] == [
            r["prompt"] for r in rows
        ]
    with pytest.raises(gr.Error, match=r"Prompts per image must be \"all\" or a whole number from 1 to .* \(3\); got 4"):
        batch_export(*args, prompts_per_image="4", ctx=ctx)
    with pytest.raises(gr.Error, match="prompts per image must be a number; got 'some'"):
        batch_export(*args, prompts_per_image="some", ctx=ctx)
