"""Inputs and situations that must never stop, hang or corrupt an export (issue 8, section 3).

Each test here failed (or hung) before the fix it guards.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import threading
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from diffusemix.editors import load_editor
from diffusemix.errors import DiffuseMixError
from diffusemix.export import ExportOptions, export_dataset, plan_export, scan_input
from diffusemix.fractals import FractalSet
from export_helpers import (  # noqa: F401  (fixtures: dataset, fractals)
    RECIPE,
    CountingEditor,
    dataset,
    fractals,
    preview,
    rows,
    run,
    tree,
)


def images_on_disk(out: Path) -> set[str]:
    """The output images a user sees (stages and hidden state left out)."""
    found = set()
    for p in out.rglob("*"):
        rel = p.relative_to(out)
        if p.is_file() and rel.parts[0] != "stages" and not any(x.startswith(".") for x in rel.parts):
            if p.suffix in (".png", ".jpg"):
                found.add(rel.as_posix())
    return found


def in_thread(fn, *args: Any, **kwargs: Any) -> tuple[threading.Thread, dict[str, Any]]:
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = fn(*args, **kwargs)
        except BaseException as e:  # noqa: BLE001 - handed to the test
            box["error"] = e

    t = threading.Thread(target=target, daemon=True)
    t.start()
    return t, box


# ---------------------------------------------------------------------------
# file names
# ---------------------------------------------------------------------------


def test_non_utf8_file_names_are_skipped_and_listed_and_the_dry_run_agrees(
    dataset: Path, tmp_path: Path, fractals: FractalSet
) -> None:
    good = (dataset / "cat" / "00.png").read_bytes()
    with open(os.path.join(os.fsencode(dataset / "cat"), b"caf\xe9.png"), "wb") as f:
        f.write(good)
    os.mkdir(os.path.join(os.fsencode(dataset), b"d\xe9j\xe0"))
    with open(os.path.join(os.fsencode(dataset), b"d\xe9j\xe0", b"x.png"), "wb") as f:
        f.write(good)
    out = tmp_path / "out"

    plan = plan_export(dataset, out, recipe=RECIPE)
    summary = run(dataset, out, fractals)

    assert summary.made == 20 and summary.failed == [] and summary.classes == ("cat", "dog", "fish")
    ignored = dict(summary.ignored)
    assert "cat/caf\\xe9.png" in ignored and "not valid UTF-8" in ignored["cat/caf\\xe9.png"]
    assert "d\\xe9j\\xe0" in ignored and "not valid UTF-8" in ignored["d\\xe9j\\xe0"]
    assert (plan.images, len(plan.ignored)) == (10, len(summary.ignored))  # the dry run says the same
    errors = [json.loads(x) for x in (out / "errors.jsonl").read_text(encoding="utf-8").splitlines()]
    assert {"cat/caf\\xe9.png", "d\\xe9j\\xe0"} <= {e["source"] for e in errors}
    assert {r["file_name"] for r in rows(out)} == images_on_disk(out)


def test_a_file_name_with_a_newline_keeps_rows_and_images_together(
    dataset: Path, tmp_path: Path, fractals: FractalSet
) -> None:
    shutil.copy(dataset / "cat" / "00.png", dataset / "cat" / "two\nlines.png")
    out = tmp_path / "out"
    summary = run(dataset, out, fractals)
    assert summary.made == 22
    got = rows(out)
    assert len(got) == 22 and {r["file_name"] for r in got} == images_on_disk(out)
    assert "cat/two\nlines.png" in {r["source"] for r in got}
    again = run(dataset, out, fractals)
    assert again.made == 0 and again.skipped_done == 22 and len(rows(out)) == 22


# ---------------------------------------------------------------------------
# files that are not regular files, or too large
# ---------------------------------------------------------------------------


def test_a_fifo_named_like_an_image_does_not_hang(dataset: Path, tmp_path: Path, fractals: FractalSet) -> None:
    fifo = dataset / "cat" / "x.png"
    os.mkfifo(fifo)
    t, box = in_thread(run, dataset, tmp_path / "out", fractals)
    t.join(60)
    if t.is_alive():  # unblock the reader so that the test process can end, then fail
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        t.join(30)
        pytest.fail("the export hung on a FIFO")
    summary = box["result"]
    assert summary.made == 20
    assert "not a regular file" in dict(summary.ignored)["cat/x.png"]


def test_a_link_to_dev_zero_is_skipped_and_the_batch_survives(
    dataset: Path, tmp_path: Path, fractals: FractalSet
) -> None:
    os.symlink("/dev/zero", dataset / "dog" / "zero.png")
    scan = scan_input(dataset)  # checked before anything reads /dev/zero
    assert "dog/zero.png" not in {e.source for e in scan.entries}
    assert "not a regular file" in dict(scan.ignored)["dog/zero.png"]
    summary = run(dataset, tmp_path / "out", fractals, chunk_size=4)
    assert summary.made == 20
    errors = [json.loads(x) for x in (tmp_path / "out" / "errors.jsonl").read_text().splitlines()]
    assert any(e["source"] == "dog/zero.png" and e["kind"] == "ignored" for e in errors)


def test_a_huge_file_is_skipped_unread(dataset: Path, tmp_path: Path, fractals: FractalSet) -> None:
    with open(dataset / "fish" / "huge.png", "wb") as f:
        f.truncate(2 * 1024**3)  # sparse: 2 GB that take no disk
    scan = scan_input(dataset)
    assert "larger than" in dict(scan.ignored)["fish/huge.png"]
    assert "fish/huge.png" not in {e.source for e in scan.entries}
    assert run(dataset, tmp_path / "out", fractals).made == 20


def test_an_image_that_runs_out_of_memory_loses_only_itself(
    dataset: Path, tmp_path: Path, fractals: FractalSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    import diffusemix.images as images

    real = images.load_image

    def load(path, *a, **kw):
        if str(path).endswith("dog/01.png"):
            raise MemoryError
        return real(path, *a, **kw)

    monkeypatch.setattr(images, "load_image", load)
    summary = run(dataset, tmp_path / "out", fractals, chunk_size=8)
    assert summary.made == 18 and "out of memory" in dict(summary.failed)["dog/01.png"]


# ---------------------------------------------------------------------------
# folders: empty classes, symlink loops
# ---------------------------------------------------------------------------


def test_an_empty_class_folder_is_said_in_the_summary(dataset: Path, tmp_path: Path, fractals: FractalSet) -> None:
    (dataset / "bird").mkdir()
    summary = run(dataset, tmp_path / "out", fractals)
    assert summary.classes == ("cat", "dog", "fish") and summary.empty_classes == ("bird",)
    assert "empty class folders left out: bird" in str(summary)


def test_symlinked_folders_are_read_once(dataset: Path, tmp_path: Path, fractals: FractalSet) -> None:
    os.symlink("..", dataset / "cat" / "loop")  # back to INPUT: would re-read every class as "cat"
    os.symlink("../dog", dataset / "cat" / "dogs")  # dog's images under "cat"
    os.symlink("dog", dataset / "alias")  # a second label for dog's images
    elsewhere = tmp_path / "elsewhere" / "bird"
    elsewhere.mkdir(parents=True)
    shutil.copy(dataset / "dog" / "00.png", elsewhere / "b.png")
    os.symlink(elsewhere, dataset / "bird")  # a class folder kept elsewhere: a real class
    summary = run(dataset, tmp_path / "out", fractals)
    assert summary.classes == ("bird", "cat", "dog", "fish")
    got = rows(tmp_path / "out")
    assert len(got) == 22 and summary.made == 22
    assert all(r["class_name"] == r["source"].split("/")[0] for r in got)
    assert all("/loop/" not in r["source"] and "/dogs/" not in r["source"] for r in got)
    ignored = dict(summary.ignored)
    assert "alias" in ignored and "dog" in ignored["alias"]


# ---------------------------------------------------------------------------
# disk full
# ---------------------------------------------------------------------------


def test_disk_full_names_the_path_and_a_rerun_resumes(
    dataset: Path, tmp_path: Path, fractals: FractalSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref = tmp_path / "ref"
    run(dataset, ref, fractals, chunk_size=4)  # the chunk size is part of the plan: the rows record it
    out = tmp_path / "out"
    real = os.fsync
    calls = {"n": 0}

    def fsync(fd: int) -> None:
        calls["n"] += 1
        if calls["n"] > 6:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(DiffuseMixError, match=r"disk is full.*writing .*out.*run the same command again.*resume"):
        run(dataset, out, fractals, chunk_size=4)
    monkeypatch.setattr(os, "fsync", real)
    again = run(dataset, out, fractals, chunk_size=4)
    assert again.made + again.skipped_done == 20
    assert tree(out) == tree(ref)


# ---------------------------------------------------------------------------
# two runs into one folder
# ---------------------------------------------------------------------------


class GatedEditor(CountingEditor):
    """Waits at its first call until the test opens the gate."""

    def __init__(self) -> None:
        super().__init__(load_editor("preview"))
        self.entered, self.gate = threading.Event(), threading.Event()

    def edit(self, requests, *, progress=None, cancel=None):
        self.entered.set()
        assert self.gate.wait(60)
        return super().edit(requests, progress=progress, cancel=cancel)


def _start(dataset: Path, out: Path, fractals: FractalSet, **opts: Any):
    editor = GatedEditor()
    t, box = in_thread(
        export_dataset,
        dataset,
        out,
        recipe=RECIPE,
        editor=editor,
        fractals=fractals,
        options=ExportOptions(**opts),
        progress_bar=False,
    )
    assert editor.entered.wait(60)
    return t, box, editor


def test_a_second_run_into_a_busy_folder_is_refused(dataset: Path, tmp_path: Path, fractals: FractalSet) -> None:
    ref = tmp_path / "ref"
    run(dataset, ref, fractals, save_stages=True)
    out = tmp_path / "out"
    t, box, editor = _start(dataset, out, fractals, save_stages=True)
    try:
        second = preview()
        with pytest.raises(DiffuseMixError, match=r"in use by another export.*pid \d+"):
            run(dataset, out, fractals, editor=second, save_stages=True)
        assert second.edited == 0
        # a remix of the same folder while the first run goes: refused too
        with pytest.raises(DiffuseMixError, match="in use by another export"):
            run(dataset, out, fractals, recipe=RECIPE.replace(lam=0.5),
                reuse_generated=True)
    finally:
        editor.gate.set()
        t.join(60)
    assert "error" not in box and box["result"].made == 20
    assert tree(out) == tree(ref)
    # the lock went with the run: the next run goes
    assert run(dataset, out, fractals, save_stages=True).skipped_done == 20


def test_shards_run_together_but_not_beside_a_whole_run(dataset: Path, tmp_path: Path, fractals: FractalSet) -> None:
    ref = tmp_path / "ref"
    run(dataset, ref, fractals)
    out = tmp_path / "out"
    t, box, editor = _start(dataset, out, fractals, shard=(0, 2))
    try:
        s1 = run(dataset, out, fractals, shard=(1, 2))  # works together
        assert s1.made == 8  # whole chunks of 8: plan chunk 1
        with pytest.raises(DiffuseMixError, match="in use by another export"):
            run(dataset, out, fractals)
        with pytest.raises(DiffuseMixError, match="in use by another export"):
            run(dataset, out, fractals, recipe=RECIPE.replace(lam=0.5),
                reuse_generated=True, shard=(1, 2))
    finally:
        editor.gate.set()
        t.join(60)
    assert "error" not in box and box["result"].made == 12  # plan chunks 0 and 2
    assert tree(out) == tree(ref)


def test_a_stale_lock_of_a_killed_run_is_taken_over(dataset: Path, tmp_path: Path, fractals: FractalSet) -> None:
    out = tmp_path / "out"
    (out / ".diffusemix").mkdir(parents=True)
    (out / ".diffusemix" / "lock").write_text(json.dumps({"pid": 2**22 + 12345, "mode": "exclusive"}) + "\n")
    assert run(dataset, out, fractals).made == 20
