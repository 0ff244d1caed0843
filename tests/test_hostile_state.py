"""A hostile export folder (issue 19, section 1): state and outputs are never written through a link.

A folder received from someone else (tar keeps links) or a shared folder may hold a link where the
exporter's lock, journal, settings, plan, markers, manifest, outputs, stages or a cache's inputs go.
The run stops with a message naming the file, and the link's target keeps its bytes. Also: a state
file that is a FIFO or a folder, two shard splits at once, a truncated output remade on rerun, and
the app's zips, which never follow a link. Each test here failed on the code before issue 19.
"""

from __future__ import annotations

import json
import os
import threading
import zipfile
from pathlib import Path
from typing import Any

import pytest

from diffusemix.errors import DiffuseMixError
from diffusemix.export import ExportOptions, export_dataset
from diffusemix.fractals import FractalSet
from export_helpers import RECIPE, CountingEditor, dataset, fractals, preview, rows, run, tree  # noqa: F401
from diffusemix.editors import load_editor

SECRET = b"precious bytes that are not the exporter's to touch\n"


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A file outside the output folder that a link in it points at."""
    p = tmp_path / "elsewhere" / "victim.txt"
    p.parent.mkdir()
    p.write_bytes(SECRET)
    return p


def _state(out: Path) -> Path:
    (out / ".diffusemix").mkdir(parents=True, exist_ok=True)
    return out / ".diffusemix"


def _untouched(victim: Path) -> None:
    assert victim.read_bytes() == SECRET
    assert sorted(p.name for p in victim.parent.iterdir()) == [victim.name]


# ---------------------------------------------------------------------------
# state files that are links: a fresh folder holding only the planted link
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["lock", "rows-0-of-1.jsonl", "run.json", "plan.jsonl", "done-0-of-1.json"])
def test_a_state_file_that_is_a_link_stops_the_run(
    dataset: Path, tmp_path: Path, fractals: FractalSet, victim: Path, name: str
) -> None:
    out = tmp_path / "out"
    os.symlink(victim, _state(out) / name)
    with pytest.raises(DiffuseMixError, match=rf"{name}.*symbolic link|symbolic link.*{name}") as err:
        run(dataset, out, fractals)
    assert "Traceback" not in str(err.value)
    _untouched(victim)


@pytest.mark.parametrize("name", ["metadata.jsonl", "errors.jsonl"])
def test_a_manifest_that_is_a_link_stops_the_run(
    dataset: Path, tmp_path: Path, fractals: FractalSet, victim: Path, name: str
) -> None:
    out = tmp_path / "out"
    run(dataset, out, fractals)
    target = out / name
    target.unlink(missing_ok=True)
    os.symlink(victim, target)
    (out / "images" / "cat" / "00_sunset_0.png").unlink()  # one sample left to make: the manifest is written again
    with pytest.raises(DiffuseMixError, match=rf"{name}.*symbolic link"):
        run(dataset, out, fractals)
    _untouched(victim)


def test_a_state_folder_that_is_a_link_stops_the_run(dataset: Path, tmp_path: Path, fractals: FractalSet,
                                                      victim: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    os.symlink(victim.parent, out / ".diffusemix")
    with pytest.raises(DiffuseMixError, match=r"\.diffusemix.*symbolic link"):
        run(dataset, out, fractals)
    _untouched(victim)


@pytest.mark.parametrize("kind", ["folder", "fifo"])
def test_a_state_file_that_is_a_folder_or_a_fifo_stops_the_run(
    dataset: Path, tmp_path: Path, fractals: FractalSet, kind: str
) -> None:
    out = tmp_path / "out"
    for name in ("rows-0-of-1.jsonl", "run.json"):
        p = _state(out) / name
        p.mkdir() if kind == "folder" else os.mkfifo(p)
    box: dict[str, Any] = {}

    def go() -> None:
        try:
            run(dataset, out, fractals)
        except BaseException as e:  # noqa: BLE001 - handed to the test
            box["error"] = e

    t = threading.Thread(target=go, daemon=True)
    t.start()
    t.join(60)
    if t.is_alive():  # unblock a reader or writer stuck on the FIFOs, then fail
        for name in ("rows-0-of-1.jsonl", "run.json"):
            for flags in (os.O_RDONLY | os.O_NONBLOCK, os.O_WRONLY | os.O_NONBLOCK):
                try:
                    os.close(os.open(_state(out) / name, flags))
                except OSError:
                    pass
        t.join(30)
        pytest.fail("the export hung on a state file that is a FIFO")
    err = box.get("error")
    assert isinstance(err, DiffuseMixError), repr(err)
    assert "run.json" in str(err) and ("a folder" in str(err) if kind == "folder" else "a FIFO" in str(err))


# ---------------------------------------------------------------------------
# outputs, stages and a cache's inputs: never written through a link that leads outside
# ---------------------------------------------------------------------------


def test_an_output_file_that_is_a_link_stops_the_rerun(dataset: Path, tmp_path: Path, fractals: FractalSet,
                                                        victim: Path) -> None:
    out = tmp_path / "out"
    run(dataset, out, fractals)
    a = out / "images" / "cat" / "00_sunset_0.png"
    a.unlink()
    os.symlink(victim, a)
    with pytest.raises(DiffuseMixError, match=r"cat/00_sunset_0\.png.*symbolic link"):
        run(dataset, out, fractals)
    _untouched(victim)
    # and a remix, which rewrites every A, stops there too
    with pytest.raises(DiffuseMixError, match=r"cat/00_sunset_0\.png.*symbolic link"):
        run(dataset, out, fractals, recipe=RECIPE.replace(lam=0.5), reuse_generated=True)
    _untouched(victim)


@pytest.mark.parametrize("where", ["images/cat", "images", "stages", "inputs"])
def test_a_folder_that_is_a_link_out_of_the_output_is_never_written(
    dataset: Path, tmp_path: Path, fractals: FractalSet, victim: Path, where: str
) -> None:
    out = tmp_path / "out"
    opts = {"stages": {"save_stages": True}, "inputs": {"cache": True}}.get(where, {})
    run(dataset, out, fractals, **opts)
    import shutil

    shutil.rmtree(out / where)
    os.symlink(victim.parent, out / where)  # the class folder / stages / inputs now lead outside OUTPUT
    with pytest.raises(DiffuseMixError, match=rf"{where}.*leads outside|outside.*{where}"):
        run(dataset, out, fractals, **opts)
    _untouched(victim)


def test_a_long_non_ascii_file_name_is_exported(dataset: Path, tmp_path: Path, fractals: FractalSet) -> None:
    """83 three-byte characters: a valid 253-byte name whose output name (with the prompt) would pass 255 bytes."""
    import shutil

    name = "猫" * 83 + ".png"
    shutil.copy(dataset / "cat" / "00.png", dataset / "cat" / name)
    summary = run(dataset, tmp_path / "out", fractals)
    assert summary.made == 22 and summary.failed == []
    made = [r["file_name"] for r in rows(tmp_path / "out") if r["source"] == f"cat/{name}"]
    assert len(made) == 2 and all(len(Path(n).name.encode()) <= 255 for n in made)


def test_links_inside_the_output_folder_itself_are_fine(dataset: Path, tmp_path: Path, fractals: FractalSet) -> None:
    """The output folder may itself be a link (a user's choice of disk): only links out of it are refused."""
    real = tmp_path / "big-disk" / "out"
    real.mkdir(parents=True)
    os.symlink(real, tmp_path / "out")
    assert run(dataset, tmp_path / "out", fractals).made == 20
    assert run(dataset, tmp_path / "out", fractals).skipped_done == 20


# ---------------------------------------------------------------------------
# two shard splits, truncated outputs
# ---------------------------------------------------------------------------


class _Gated(CountingEditor):
    def __init__(self) -> None:
        super().__init__(load_editor("preview"))
        self.entered, self.gate = threading.Event(), threading.Event()

    def edit(self, requests, *, progress=None, cancel=None):
        self.entered.set()
        assert self.gate.wait(60)
        return super().edit(requests, progress=progress, cancel=cancel)


def test_a_second_shard_split_beside_a_running_one_is_refused(dataset: Path, tmp_path: Path,
                                                               fractals: FractalSet) -> None:
    out = tmp_path / "out"
    editor = _Gated()
    box: dict[str, Any] = {}

    def first() -> None:
        try:
            box["result"] = export_dataset(dataset, out, recipe=RECIPE, editor=editor, fractals=fractals,
                                           options=ExportOptions(shard=(0, 2)), progress_bar=False)
        except BaseException as e:  # noqa: BLE001
            box["error"] = e

    t = threading.Thread(target=first, daemon=True)
    t.start()
    assert editor.entered.wait(60)
    try:
        with pytest.raises(DiffuseMixError, match=r"shard 0/3.*split.*0/2|split.*2 shards"):
            run(dataset, out, fractals, shard=(0, 3))
        # the same split works together; shards take whole chunks of the plan (20 samples, chunks of 8: 8 + 8 + 4)
        assert run(dataset, out, fractals, shard=(1, 2)).made == 8
    finally:
        editor.gate.set()
        t.join(60)
    assert "error" not in box and box["result"].made == 12
    # once nothing runs, another split may take over the folder (and finishes the same dataset)
    assert run(dataset, out, fractals, shard=(0, 3)).made == 0


@pytest.mark.parametrize("what", ["A", "cache Î", "cache I"])
def test_a_truncated_output_is_made_again_on_rerun(dataset: Path, tmp_path: Path, fractals: FractalSet,
                                                   what: str) -> None:
    out, ref = tmp_path / "out", tmp_path / "ref"
    cache = what != "A"
    run(dataset, ref, fractals, cache=cache)
    run(dataset, out, fractals, cache=cache)
    got = rows(out)[0]
    name = got["input_file_name"] if what == "cache I" else got["file_name"]
    data = (out / name).read_bytes()
    (out / name).write_bytes(data[: len(data) // 2])  # a copy cut short, a disk that lost the end
    again = run(dataset, out, fractals, cache=cache)
    assert again.made == (1 if what != "cache I" else again.made) and again.made >= 1
    assert tree(out) == tree(ref)


def test_the_report_never_writes_through_a_link_in_the_export(dataset: Path, tmp_path: Path, fractals: FractalSet,
                                                               victim: Path) -> None:
    from diffusemix.report import write_report

    out = tmp_path / "out"
    run(dataset, out, fractals)
    rows_ = [json.loads(x) for x in (out / "metadata.jsonl").read_text(encoding="utf-8").splitlines()]
    for i, r in enumerate(rows_):
        r["score"], r["scorer"] = 0.5 + 0.01 * i, "dino"
    (out / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows_), encoding="utf-8")
    os.symlink(victim, out / "report.png")
    with pytest.raises(DiffuseMixError, match=r"report\.png.*symbolic link"):
        write_report(out)
    _untouched(victim)


# ---------------------------------------------------------------------------
# the app's zips
# ---------------------------------------------------------------------------


def test_the_app_zips_never_follow_a_link(tmp_path: Path, victim: Path) -> None:
    from diffusemix.archive import zip_folder

    folder = tmp_path / "result"
    (folder / "cat").mkdir(parents=True)
    (folder / "cat" / "a.png").write_bytes(b"png")
    os.symlink(victim, folder / "cat" / "b.png")
    os.symlink(victim.parent, folder / "dog")
    archive = zip_folder(folder, tmp_path / "result.zip")
    with zipfile.ZipFile(archive) as zf:
        assert zf.namelist() == ["cat/a.png"]
        assert all(zf.read(n) != SECRET for n in zf.namelist())
