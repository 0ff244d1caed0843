"""Library readers given a hostile path or file (issue 19, sections 3 and 4).

Every reader of a user's path checks "a regular file of bounded size" before it reads (one shared
check, :mod:`diffusemix.filecheck`): a FIFO or ``/dev/zero`` is refused at once. Each reader runs in
a child process with a timeout and a memory cap, so a reader that hangs or reads forever fails the
test instead of taking the machine. Header bombs are named as too large by every reader, in its own
error type. Each test here failed (or hung) on the code before issue 19.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from diffusemix.errors import DiffuseMixError, SettingError
from hostile_helpers import ROOT, bmp_bomb, in_child, png_bomb

#: Seconds a reader may take to refuse a FIFO or /dev/zero (it should take milliseconds).
PROMPT = 60


@pytest.fixture(params=["fifo", "dev-zero", "link-to-dev-zero"])
def special(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, Path]:
    """A path that names no regular file: a FIFO, /dev/zero, or a link to it named like a real file."""
    kind = request.param
    if kind == "fifo":
        path = tmp_path / "special.png"
        os.mkfifo(path)
    elif kind == "dev-zero":
        path = Path("/dev/zero")
    else:
        path = tmp_path / "special.png"
        os.symlink("/dev/zero", path)
    return kind, path


def _refused(code: str, *, expect: str) -> str:
    child = in_child(code, timeout=PROMPT)
    assert not child.timed_out, "the reader hung"
    assert child.returncode == 0, child.err[-2000:]
    out = child.out.strip()
    assert out.startswith(expect), out
    return out


def test_load_image_refuses_a_fifo_and_dev_zero_at_once(special: tuple[str, Path]) -> None:
    kind, path = special
    out = _refused(f"""
        from diffusemix.errors import ImageError
        from diffusemix.images import load_image
        try:
            load_image({str(path)!r})
        except ImageError as e:
            print("ImageError", e)
    """, expect="ImageError")
    assert "not a regular file" in out and ("FIFO" in out if kind == "fifo" else "device" in out)


def test_load_prompts_refuses_a_fifo_and_dev_zero_at_once(special: tuple[str, Path]) -> None:
    _kind, path = special
    out = _refused(f"""
        from diffusemix.errors import PromptFileError
        from diffusemix.prompts import load_prompts
        try:
            load_prompts({str(path)!r})
        except PromptFileError as e:
            print("PromptFileError", e)
    """, expect="PromptFileError")
    assert "not a regular file" in out and str(path) in out


def test_annotation_readers_refuse_a_fifo_and_dev_zero_at_once(special: tuple[str, Path], tmp_path: Path) -> None:
    _kind, path = special
    out = _refused(f"""
        from pathlib import Path
        from diffusemix.errors import DiffuseMixError
        from diffusemix.annotations.files import image_size
        from diffusemix.annotations.yolo import read_data_yaml
        for fn in (read_data_yaml, image_size):
            try:
                fn(Path({str(path)!r}))
            except DiffuseMixError as e:
                print("DiffuseMixError", type(e).__name__, e)
    """, expect="DiffuseMixError")
    assert out.count("not a regular file") == 2, out


def test_yolo_labels_and_a_class_list_that_are_fifos_do_not_hang(tmp_path: Path) -> None:
    root = tmp_path / "yolo"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    Image.new("RGB", (40, 30), (200, 10, 10)).save(root / "images" / "a.png")
    (root / "data.yaml").write_text("names: [cat]\n", encoding="utf-8")
    os.mkfifo(root / "labels" / "a.txt")
    masks = tmp_path / "masks"
    masks.mkdir()
    os.mkfifo(masks / "classes.txt")
    out = _refused(f"""
        from pathlib import Path
        from diffusemix.errors import DiffuseMixError
        from diffusemix.annotations.yolo import read_yolo
        from diffusemix.annotations.masks import read_classes
        try:
            read_yolo({str(root)!r})
        except DiffuseMixError as e:
            print("DiffuseMixError", e)
        try:
            read_classes(Path({str(masks)!r}))
        except DiffuseMixError as e:
            print("DiffuseMixError", e)
    """, expect="DiffuseMixError")
    assert out.count("not a regular file") == 2, out


def test_a_fractal_folder_with_a_fifo_and_dev_zero_loads_the_rest(tmp_path: Path) -> None:
    """Held before issue 19 (the loader checked itself); now through the shared check."""
    from diffusemix.fractals import write_fractal_set

    folder = tmp_path / "fractals"
    write_fractal_set(folder, count=2, size=32, seed=1)
    os.mkfifo(folder / "fifo.png")
    os.symlink("/dev/zero", folder / "zero.png")
    out = _refused(f"""
        from diffusemix.fractals import FractalSet
        s = FractalSet.from_folder({str(folder)!r})
        print("loaded", len(s), sorted(n for n, _ in s.skipped), [why for _, why in s.skipped])
    """, expect="loaded 2")
    assert "fifo.png" in out and "zero.png" in out and out.count("not a regular file") == 2


def test_the_exporter_and_load_image_refuse_with_the_same_words(tmp_path: Path) -> None:
    """One check: the scan's reason for a FIFO is load_image's."""
    fifo = tmp_path / "x.png"
    os.mkfifo(fifo)
    _refused(f"""
        from diffusemix.errors import ImageError
        from diffusemix.export.scan import input_file_problem
        from diffusemix.images import load_image
        try:
            load_image({str(fifo)!r})
        except ImageError as e:
            print("same" if e.reason == input_file_problem({str(fifo)!r}) else f"differ: {{e.reason!r}}")
    """, expect="same")


# ---------------------------------------------------------------------------
# header bombs: named as too large by every reader, in its own error type
# ---------------------------------------------------------------------------


def test_a_header_bomb_in_a_cache_is_a_cache_error(tmp_path: Path) -> None:
    from diffusemix.data import CacheError, DiffuseMixDataset
    from diffusemix.fractals import FractalSet, write_fractal_set
    from export_helpers import make_dataset, run

    fr = tmp_path / "fr"
    write_fractal_set(fr, count=3, size=32, seed=2)
    fractals = FractalSet.from_folder(fr)
    out = tmp_path / "cache"
    run(make_dataset(tmp_path / "data", per_class=1), out, fractals, cache=True)
    row = json.loads((out / "metadata.jsonl").read_text(encoding="utf-8").splitlines()[0])
    bmp_bomb(out / row["file_name"], 30000, 30000)  # a cached Î replaced by 54 bytes claiming 900 MP
    with pytest.warns(UserWarning, match="preview editor"):
        ds = DiffuseMixDataset(out, fractals=fractals)
    with pytest.raises(CacheError, match=r"is 30000x30000 = 900,000,000 pixels, more than the limit"):
        for i in range(len(ds)):
            ds[i]


def test_a_header_bomb_is_named_by_the_annotation_and_training_readers(tmp_path: Path) -> None:
    from diffusemix.annotations.files import image_size
    from diffusemix.train.data import checked_loader

    bomb = png_bomb(tmp_path / "bomb.png", 30000, 30000)
    with pytest.raises(DiffuseMixError, match="900,000,000 pixels"):
        image_size(bomb)
    with pytest.raises(DiffuseMixError, match="900,000,000 pixels"):
        checked_loader(str(bomb))


def test_the_cli_shows_no_raw_decompression_bomb_warning(tmp_path: Path) -> None:
    """A 9500 x 9500 input (90 MP: past Pillow's warning, under its hard limit): the CLI's own words only."""
    from export_helpers import make_dataset

    data = make_dataset(tmp_path / "data", per_class=1)
    png_bomb(data / "cat" / "big.png", 9500, 9500)
    fr = tmp_path / "fr"
    subprocess.run([sys.executable, "-m", "diffusemix", "fractals", str(fr), "--count", "2", "--size", "32"],
                   cwd=ROOT, check=True, capture_output=True)
    p = subprocess.run(
        [sys.executable, "-m", "diffusemix", "export", str(data), str(tmp_path / "out"), "--editor", "preview",
         "--prompts", "sunset", "--size", "32", "--fractals", str(fr), "--no-progress"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert p.returncode == 0, p.stderr
    assert "DecompressionBombWarning" not in p.stderr + p.stdout and "site-packages" not in p.stderr
    errors = [json.loads(x) for x in (tmp_path / "out" / "errors.jsonl").read_text(encoding="utf-8").splitlines()]
    big = [e for e in errors if e["source"] == "cat/big.png"]
    assert big and "90,250,000 pixels" in big[0]["reason"] and "limit" in big[0]["reason"]


# ---------------------------------------------------------------------------
# the label template
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("template", ["{0}{1}{}", "a {} of {x}", "a {}{", "{!r}", "{:>{}}"])
def test_a_label_template_that_cannot_be_filled_is_blamed_on_the_template(template: str) -> None:
    from diffusemix.scoring import ScorerSpec
    from diffusemix.scoring.clip import ClipLabelScorer

    with pytest.raises(SettingError, match="template") as err:
        ScorerSpec(name="clip-label", template=template)
    assert err.value.field == "template" and "CLIP" not in str(err.value)
    with pytest.raises(SettingError, match="template"):
        ClipLabelScorer("unused-model", class_names=("cat", "dog"), template=template)


def test_the_cli_blames_a_bad_label_template_on_its_flag(tmp_path: Path) -> None:
    from export_helpers import make_dataset

    data = make_dataset(tmp_path / "data", per_class=1)
    p = subprocess.run(
        [sys.executable, "-m", "diffusemix", "export", str(data), str(tmp_path / "out"), "--editor", "preview",
         "--score", "clip-label", "--label-template", "{0}{1}{}", "--no-progress"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert p.returncode == 2 and "--label-template" in p.stderr and "Traceback" not in p.stderr, p.stderr
    assert "model" not in p.stderr.split("--label-template", 1)[1].split("\n")[0].lower()
    shutil.rmtree(tmp_path / "out", ignore_errors=True)
