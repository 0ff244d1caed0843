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
from diffusemix.ui.batch_export import batch_export

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
