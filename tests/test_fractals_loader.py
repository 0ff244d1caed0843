"""Tests for diffusemix.fractals.loader: the shipped set and FractalSet."""

from __future__ import annotations

import io
import pickle
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from diffusemix.errors import FractalError
from diffusemix.fractals import FractalSet, default_fractal_dir, make_fractal
from diffusemix.functional import degenerate_reason

REPO = Path(__file__).resolve().parent.parent


def _png(path: Path, colour: tuple[int, int, int] = (200, 40, 90), size: tuple[int, int] = (20, 12)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)
    return path


# ---------------------------------------------------------------------------
# The shipped set
# ---------------------------------------------------------------------------


def test_default_fractal_dir_is_the_repo_assets() -> None:
    assert default_fractal_dir() == REPO / "assets" / "fractals"


def test_shipped_set_is_complete_small_and_loads() -> None:
    fs = FractalSet.default()
    assert len(fs) >= 64
    assert fs.skipped == ()
    assert all(n.endswith(".png") for n in fs.names)
    total = sum((fs.folder / n).stat().st_size for n in fs.names)
    assert total < 15 * 1024 * 1024
    for name in fs.names:
        img = fs.load(name, 256)
        assert img.shape == (256, 256, 3) and img.dtype == np.uint8
        assert degenerate_reason(img) is None, name


# ---------------------------------------------------------------------------
# FractalSet: scanning
# ---------------------------------------------------------------------------


def test_recursive_scan_sorted_posix_names(tmp_path: Path) -> None:
    _png(tmp_path / "b.png")
    _png(tmp_path / "a" / "c.png")
    (tmp_path / "a" / "b").mkdir()
    Image.new("RGB", (9, 9), "red").save(tmp_path / "a" / "b" / "d.webp", lossless=True)
    Image.new("RGB", (9, 9), "blue").save(tmp_path / "Z.BMP")
    Image.new("RGB", (9, 9), "green").save(tmp_path / "a" / "e.jpeg")
    _png(tmp_path / ".hidden.png")
    _png(tmp_path / ".cache" / "x.png")
    (tmp_path / "notes.txt").write_text("not an image")
    fs = FractalSet.from_folder(tmp_path)
    assert fs.names == ("Z.BMP", "a/b/d.webp", "a/c.png", "a/e.jpeg", "b.png")
    assert len(fs) == 5
    assert fs.folder == tmp_path.resolve()
    assert fs.load("a/b/d.webp", 16)[8, 8].tolist() == [255, 0, 0]


def test_skipped_reports_corrupt_and_empty_files(tmp_path: Path) -> None:
    _png(tmp_path / "good.png")
    (tmp_path / "corrupt.png").write_bytes(b"this is not a png at all" * 10)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "empty.jpg").write_bytes(b"")
    fs = FractalSet.from_folder(tmp_path)
    assert fs.names == ("good.png",)
    reasons = dict(fs.skipped)
    assert set(reasons) == {"corrupt.png", "sub/empty.jpg"}
    assert "not an image" in reasons["corrupt.png"]
    assert "empty" in reasons["sub/empty.jpg"]
    text = fs.summary()
    assert text.startswith(f"1 fractal from {tmp_path.resolve()}")
    assert "2 unreadable skipped" in text and "corrupt.png" in text and "sub/empty.jpg" in text
    assert FractalSet.from_folder(REPO / "assets" / "fractals").summary().endswith(str(default_fractal_dir()))


# ---------------------------------------------------------------------------
# FractalSet: errors
# ---------------------------------------------------------------------------


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(FractalError, match=r"does not exist; pass a folder of fractal images.*make_fractals\.py --out"):
        FractalSet.from_folder(tmp_path / "nope")


def test_not_a_folder(tmp_path: Path) -> None:
    f = _png(tmp_path / "one.png")
    with pytest.raises(FractalError, match="is a file, not a folder"):
        FractalSet.from_folder(f)


def test_empty_folder_and_folder_without_images(tmp_path: Path) -> None:
    with pytest.raises(FractalError, match=r"has no image files .*make_fractals\.py"):
        FractalSet.from_folder(tmp_path)
    (tmp_path / "readme.txt").write_text("hi")
    _png(tmp_path / ".hidden.png")
    with pytest.raises(FractalError, match="has no image files"):
        FractalSet.from_folder(tmp_path)


def test_every_file_unreadable(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(b"")
    (tmp_path / "b.jpg").write_bytes(b"garbage" * 20)
    with pytest.raises(FractalError, match=r"none of the 2 image files .*a\.png: empty file.*b\.jpg: not an image"):
        FractalSet.from_folder(tmp_path)


def test_unknown_name(tmp_path: Path) -> None:
    _png(tmp_path / "a.png")
    fs = FractalSet.from_folder(tmp_path)
    with pytest.raises(FractalError, match=r"no fractal named 'nope\.png' in .*e\.g\. 'a\.png'"):
        fs.load("nope.png", 32)
    assert "a.png" in fs and "nope.png" not in fs


def test_file_cut_after_loading_fails_at_use_naming_it(tmp_path: Path) -> None:
    # Past memory_limit the pixels are decoded again at first use; a file that
    # was fine when the set was loaded but has been cut since is named then.
    buf = io.BytesIO()
    Image.fromarray(make_fractal(1, 64, kind="julia")).save(buf, format="PNG")
    (tmp_path / "cut.png").write_bytes(buf.getvalue())
    fs = FractalSet.from_folder(tmp_path, memory_limit=0)
    assert fs.names == ("cut.png",) and fs.nbytes == 0
    (tmp_path / "cut.png").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(FractalError, match=r"fractal 'cut\.png' in .* cannot be loaded.*changed since"):
        fs.load("cut.png", 32)


def test_bad_sizes_and_indices(tmp_path: Path) -> None:
    _png(tmp_path / "a.png")
    fs = FractalSet.from_folder(tmp_path)
    with pytest.raises(ValueError, match="size must be an integer >= 8"):
        fs.load("a.png", 4)
    with pytest.raises(IndexError, match="out of range for a set of 1"):
        fs.load_index(1, 16)
    with pytest.raises(ValueError, match="cache_size"):
        FractalSet.from_folder(tmp_path, cache_size=-1)


# ---------------------------------------------------------------------------
# FractalSet: loading and the cache
# ---------------------------------------------------------------------------


def test_load_resizes_and_is_cached_and_read_only(tmp_path: Path) -> None:
    _png(tmp_path / "a.png", colour=(10, 200, 30), size=(50, 20))
    _png(tmp_path / "b.png", colour=(250, 250, 0))
    fs = FractalSet.from_folder(tmp_path)
    a = fs.load("a.png", 33)
    assert a.shape == (33, 33, 3) and a.dtype == np.uint8
    assert a[16, 16].tolist() == [10, 200, 30]
    assert fs.load("a.png", 33) is a
    assert fs.load_index(0, 33) is a
    assert fs.load("a.png", 34) is not a
    assert not a.flags.writeable
    with pytest.raises(ValueError):
        a[0, 0, 0] = 1


def test_cache_is_bounded(tmp_path: Path) -> None:
    for n in "abc":
        _png(tmp_path / f"{n}.png")
    fs = FractalSet.from_folder(tmp_path, cache_size=2)
    a = fs.load("a.png", 16)
    fs.load("b.png", 16)
    assert fs.load("a.png", 16) is a  # a is now the most recent
    fs.load("c.png", 16)  # evicts b
    assert fs.load("a.png", 16) is a
    b2 = fs.load("b.png", 16)  # reloaded, evicts c
    np.testing.assert_array_equal(b2, fs.load("b.png", 16))
    no_cache = FractalSet.from_folder(tmp_path, cache_size=0)
    assert no_cache.load("a.png", 16) is not no_cache.load("a.png", 16)


def test_concurrent_loads_agree(tmp_path: Path) -> None:
    for i in range(4):
        Image.fromarray(make_fractal(i, 32, kind="newton")).save(tmp_path / f"{i}.png")
    fs = FractalSet.from_folder(tmp_path, cache_size=3)
    plain = FractalSet.from_folder(tmp_path, cache_size=0)
    expected = {name: plain.load(name, 24) for name in fs.names}
    results: list[tuple[str, np.ndarray]] = []
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            for j in range(20):
                name = fs.names[(k + j) % 4]
                results.append((name, fs.load(name, 24)))
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 80
    for name, array in results:
        np.testing.assert_array_equal(array, expected[name])


def test_pickle_round_trip(tmp_path: Path) -> None:
    _png(tmp_path / "a.png")
    fs = FractalSet.from_folder(tmp_path)
    a = fs.load("a.png", 16)
    fs2 = pickle.loads(pickle.dumps(fs))
    assert fs2.names == fs.names and fs2.folder == fs.folder
    np.testing.assert_array_equal(fs2.load("a.png", 16), a)
    assert "1 images" in repr(fs2)


# ---------------------------------------------------------------------------
# FractalSet: every fractal is decoded once, when the set is loaded
# ---------------------------------------------------------------------------


def _cut_png(path: Path, seed: int = 1) -> Path:
    """A fractal PNG cut in half: its header is valid, its pixel data ends early."""
    buf = io.BytesIO()
    Image.fromarray(make_fractal(seed, 64, kind="julia")).save(buf, format="PNG")
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    return path


def test_truncated_fractal_with_a_valid_header_is_skipped_when_the_set_is_loaded(tmp_path: Path) -> None:
    _png(tmp_path / "a.png")
    _cut_png(tmp_path / "cut.png")
    with Image.open(tmp_path / "cut.png") as im:  # the header alone looks fine
        assert im.size == (64, 64)
    fs = FractalSet.from_folder(tmp_path)
    assert fs.names == ("a.png",)
    reasons = dict(fs.skipped)
    assert set(reasons) == {"cut.png"}
    assert "truncated" in reasons["cut.png"] and str(tmp_path) not in reasons["cut.png"]
    assert "1 unreadable skipped: cut.png: truncated" in fs.summary()


def test_fractals_are_decoded_once_and_resized_once_per_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from diffusemix.fractals import loader
    from diffusemix.images import load_image, prepare

    for i in range(4):
        Image.fromarray(make_fractal(i, 40, kind="newton")).save(tmp_path / f"{i}.png")
    expected = {(i, s): prepare(load_image(tmp_path / f"{i}.png"), s) for i in range(4) for s in (16, 20, 33)}
    decodes, resizes = [], []
    monkeypatch.setattr(loader, "load_image", lambda *a, **k: decodes.append(a) or load_image(*a, **k))
    monkeypatch.setattr(loader, "prepare", lambda *a, **k: resizes.append(a[1]) or prepare(*a, **k))
    fs = FractalSet.from_folder(tmp_path, cache_size=None)
    assert len(decodes) == 4 and fs.nbytes == 4 * 40 * 40 * 3
    for _ in range(3):
        for i in range(4):
            for s in (16, 33):
                a = fs.array(i, s)
                assert a is fs.array(f"{i}.png", s)  # an index and a name mean the same fractal
                np.testing.assert_array_equal(a, expected[(i, s)])  # the same pixels as decoding on use
                assert not a.flags.writeable
    assert len(decodes) == 4  # nothing decoded again
    assert sorted(resizes) == [16] * 4 + [33] * 4  # each fractal resized once per size
    for f in tmp_path.iterdir():  # the pixels live in memory now
        f.unlink()
    np.testing.assert_array_equal(fs.array(2, 20), expected[(2, 20)])
    assert len(decodes) == 4


def test_array_arguments(tmp_path: Path) -> None:
    _png(tmp_path / "a.png")
    fs = FractalSet.from_folder(tmp_path)
    with pytest.raises(TypeError, match="fractal must be an index into names or a name; got 0.5"):
        fs.array(0.5, 16)  # type: ignore[arg-type]
    with pytest.raises(IndexError, match="out of range for a set of 1"):
        fs.array(3, 16)
    with pytest.raises(FractalError, match="no fractal named 'b.png'"):
        fs.array("b.png", 16)
    with pytest.raises(ValueError, match="size must be an integer >= 8"):
        fs.array(0, 7)
    with pytest.raises(ValueError, match="memory_limit must be a number of bytes >= 0"):
        FractalSet.from_folder(tmp_path, memory_limit=-1)
    with pytest.raises(ValueError, match=r"cache_size must be an integer >= 0 or None"):
        FractalSet.from_folder(tmp_path, cache_size=1.5)  # type: ignore[arg-type]


def test_memory_limit_keeps_some_in_memory_and_reads_the_rest_again(tmp_path: Path) -> None:
    for i in range(3):
        Image.fromarray(make_fractal(i, 32, kind="julia")).save(tmp_path / f"{i}.png")
    everything = FractalSet.from_folder(tmp_path)
    part = FractalSet.from_folder(tmp_path, memory_limit=32 * 32 * 3 + 1)
    assert everything.nbytes == 3 * 32 * 32 * 3 and part.nbytes == 32 * 32 * 3
    for i in range(3):
        np.testing.assert_array_equal(part.array(i, 24), everything.array(i, 24))


def test_fifo_device_and_oversized_files_are_skipped_without_reading_them(tmp_path: Path) -> None:
    import os

    from diffusemix.fractals import loader

    _png(tmp_path / "a.png")
    os.mkfifo(tmp_path / "pipe.png")  # opening it to read would wait forever
    (tmp_path / "zero.png").symlink_to("/dev/zero")  # reading it would never end
    big = tmp_path / "big.png"
    with big.open("wb") as f:
        f.truncate(loader._MAX_FILE_BYTES + 1)  # sparse: no disk used
    fs = FractalSet.from_folder(tmp_path)
    assert fs.names == ("a.png",)
    reasons = dict(fs.skipped)
    # the words of the check every reader makes (diffusemix.filecheck)
    assert reasons["pipe.png"].startswith("not a regular file (a FIFO)")
    assert reasons["zero.png"].startswith("not a regular file (a device)")
    assert reasons["big.png"].startswith("larger than 256 MiB")


def test_pickled_set_keeps_its_decoded_pixels(tmp_path: Path) -> None:
    import shutil

    Image.fromarray(make_fractal(5, 24, kind="ifs")).save(tmp_path / "a.png")
    fs = FractalSet.from_folder(tmp_path / ".")
    before = fs.array(0, 16).copy()
    data = pickle.dumps(fs)
    shutil.rmtree(tmp_path)  # a worker gets the pixels in the pickle, not from disk
    fs2 = pickle.loads(data)
    np.testing.assert_array_equal(fs2.array(0, 16), before)
    assert fs2.nbytes == fs.nbytes and not fs2.array(0, 16).flags.writeable
