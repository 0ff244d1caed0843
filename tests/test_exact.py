"""Batches are part of the plan (issue 18): with a real diffusion model, what was made together is fixed.

A diffusion model's Î depends on the batch a sample is in (the tiny InstructPix2Pix in bfloat16 on this CPU moves
up to several grey levels between batch sizes). So the plan fixes the model calls: chunk k is plan positions
[k*c, (k+1)*c) of the whole plan, shards take whole chunks, the editor cuts a chunk into calls of its batch size,
and each row records its chunk and the call that made its Î. The identity this gives, shown here for the tiny
InstructPix2Pix in float32 and bfloat16, batch sizes 1, 3 and 8:

- one run, two shards, and a run killed (kill -9) and resumed make the same files and rows, byte for byte;
- ``replay_row`` of every row makes the exported A again, pixel for pixel (same device, same threads).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from diffusemix.editors import load_editor
from diffusemix.errors import RecordError
from diffusemix.export import ExportOptions, export_dataset, folder, replay_row
from diffusemix.fractals import FractalSet, write_fractal_set
from diffusemix.recipe import Recipe

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from export_helpers import make_dataset, tree  # noqa: E402

REPO = HERE.parent
RECIPE = Recipe(size=32, prompts=("sunset", "snowy"), seam=4)
STEPS = 2


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("exact")
    data = make_dataset(root / "data", classes=("cat", "dog"), per_class=2)  # 5 images x 2 prompts = 10 samples
    write_fractal_set(root / "fractals", count=4, size=32, seed=2)
    return data, root / "fractals"


def _editor(folder_: Path, dtype: str, batch: int):
    return load_editor("instruct-pix2pix", model=str(folder_), device="cpu", dtype=dtype, steps=STEPS, batch_size=batch)


def _export(data: Path, out: Path, fractal_dir: Path, editor, **options) -> None:
    export_dataset(data, out, recipe=RECIPE, editor=editor, fractals=FractalSet.from_folder(fractal_dir),
                   options=ExportOptions(**options), progress_bar=False)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("batch", [1, 3, 8])
def test_shards_and_replay_are_exact_with_a_diffusion_model(inputs, tiny_ip2p_dir, tmp_path, dtype, batch):
    data, fractal_dir = inputs
    editor = _editor(tiny_ip2p_dir, dtype, batch)
    one = tmp_path / "one"
    _export(data, one, fractal_dir, editor)
    rows = folder.read_rows(one)
    assert len(rows) == 10
    # 1. the rows say which call made each Î: chunks of the batch size, calls of the batch size
    for row in rows:
        assert row["chunk"] == rows.index(row) // batch
        assert len(row["batch"]) == min(batch, 10 - row["chunk"] * batch)
        assert {"source": row["source"], "prompt": row["prompt"], "copy": row["copy"], "seed": row["seed"]} in row[
            "batch"]
    # 2. two shards (whole chunks each) make the same folder, byte for byte
    two = tmp_path / "two"
    _export(data, two, fractal_dir, editor, shard=(1, 2))
    _export(data, two, fractal_dir, editor, shard=(0, 2))
    assert tree(two) == tree(one)
    # 3. every row replays to its file: the same model call again, on a fresh editor built from a row
    from diffusemix.export import editor_from_row

    fractals = FractalSet.from_folder(fractal_dir)
    fresh = editor_from_row(rows[0], device="cpu")  # one model load for all rows (each row names the same editor)
    assert fresh.spec.pixel_settings() == editor.spec.pixel_settings()
    for row in rows:
        stages = replay_row(row, data, fractals, editor=fresh)
        with Image.open(folder.resolve_in(one, row["file_name"])) as im:
            assert np.array_equal(stages.augmented, np.asarray(im)), row["file_name"]


@pytest.mark.slow
def test_the_batch_size_changes_a_diffusion_models_output_so_it_is_recorded(inputs, tiny_ip2p_dir, tmp_path):
    """Why batches are part of the plan: bfloat16 on this CPU gives other Î at another batch size."""
    data, fractal_dir = inputs
    outs = {}
    for batch in (1, 8):
        out = tmp_path / f"b{batch}"
        _export(data, out, fractal_dir, _editor(tiny_ip2p_dir, "bfloat16", batch), cache=True)
        outs[batch] = out
        run = json.loads(folder.settings_path(out).read_text())
        assert run["editor"]["batch_size"] == batch and run["options"]["chunk_size"] == batch
    diffs = []
    for r1, r8 in zip(folder.read_rows(outs[1]), folder.read_rows(outs[8])):
        a = np.asarray(Image.open(folder.resolve_in(outs[1], r1["file_name"])), dtype=int)
        b = np.asarray(Image.open(folder.resolve_in(outs[8], r8["file_name"])), dtype=int)
        diffs.append(int(np.abs(a - b).max()))
    assert max(diffs) > 0, "bfloat16 gave the same Î at batch 1 and 8 here: the premise of recording calls"
    # resuming a folder with another batch size is another setting, refused by name
    from diffusemix.errors import DiffuseMixError

    with pytest.raises(DiffuseMixError, match=r"editor.batch_size: 1 -> 8"):
        _export(data, outs[1], fractal_dir, _editor(tiny_ip2p_dir, "bfloat16", 8), cache=True)


@pytest.mark.slow
def test_auto_batch_size_is_fixed_when_the_folder_is_made(inputs, tiny_ip2p_dir, tmp_path, monkeypatch):
    data, fractal_dir = inputs
    from diffusemix.editors import batching

    kw = dict(device="cpu", dtype="float32", height=32, width=32)
    big, small = batching.auto_batch_size(1.0e12, **kw), batching.auto_batch_size(3.0e7, **kw)
    assert big > 10 > small > 1  # the premise: auto chooses by free memory
    monkeypatch.setattr(batching, "free_memory_bytes", lambda device: 1.0e12)
    out = tmp_path / "auto"
    _export(data, out, fractal_dir, load_editor("instruct-pix2pix", model=str(tiny_ip2p_dir), device="cpu",
                                                 dtype="float32", steps=STEPS, batch_size="auto"), cache=True)
    assert json.loads(folder.settings_path(out).read_text())["editor"]["batch_size"] == big
    # a resumed run on a machine with less memory keeps the folder's batch size: the same calls
    monkeypatch.setattr(batching, "free_memory_bytes", lambda device: 3.0e7)
    before = tree(out)
    folder.manifest_path(out).unlink()
    for p in (out / "cat").glob("00_*"):  # half a chunk lost: it is made again, with the same calls
        p.unlink()
    _export(data, out, fractal_dir, load_editor("instruct-pix2pix", model=str(tiny_ip2p_dir), device="cpu",
                                                 dtype="float32", steps=STEPS, batch_size="auto"), cache=True)
    assert tree(out) == before
    assert [len(r["batch"]) for r in folder.read_rows(out)] == [10] * 10  # one call: the folder's batch size


def test_replay_says_what_it_needs_before_any_work(inputs, tmp_path):
    data, fractal_dir = inputs
    row = {"source": "cat/00.png", "prompt": "sunset", "copy": 0, "layout": "left", "mask": "linspace", "seam": 4,
           "lam": 0.2, "fractal": FractalSet.from_folder(fractal_dir).names[0], "seed": 5, "attempts": 1, "size": 32,
           "resize": "resize", "arithmetic": "reference", "editor": "preview",
           "editor_settings": json.dumps({"max_retries": 2}),
           "batch": [{"source": "cat/00.png", "prompt": "sunset", "copy": 0, "seed": 5},
                     {"source": "cat/gone.png", "prompt": "sunset", "copy": 0, "seed": 9}]}
    with pytest.raises(RecordError, match=r"needs the input image\(s\) cat/gone.png .* one model call \(2 in all\)"):
        replay_row(row, data, FractalSet.from_folder(fractal_dir))
    with pytest.raises(RecordError, match=r"field 'batch': must list the model call's samples"):
        replay_row({**row, "batch": [{"source": "cat/00.png", "prompt": "sunset", "copy": 0, "seed": 6}]}, data,
                   FractalSet.from_folder(fractal_dir))
    with pytest.raises(RecordError, match="leaves its folder"):
        replay_row({**row, "batch": [*row["batch"][:1], {"source": "../x.png", "prompt": "a", "copy": 0, "seed": 1}]},
                   data, FractalSet.from_folder(fractal_dir))


def _journal_lines(out: Path) -> int:
    try:
        return sum(p.read_bytes().count(b"\n") for p in (out / folder.STATE_DIR).glob("rows-*.jsonl"))
    except FileNotFoundError:
        return 0


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_kill_9_then_resume_is_exact_with_a_diffusion_model(tmp_path, tiny_ip2p_dir, fractals_dir_big, dtype):
    """A real process, killed in the middle of a batch-3 export of the tiny InstructPix2Pix, then run again."""
    data = make_dataset(tmp_path / "data", classes=("cat", "dog"), per_class=5, size=(40, 48))  # 11 x 2 = 22
    args = ["--model", str(tiny_ip2p_dir), "--dtype", dtype, "--steps", "3", "--batch-size", "3", "--prompts",
            "sunset,snowy", "--size", "32", "--seam", "4", "--fractals", str(fractals_dir_big), "--no-progress",
            "--save-stages"]
    cmd = [sys.executable, "-m", "diffusemix", "export"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    ref = tmp_path / "ref"
    t0 = time.perf_counter()
    done = subprocess.run(cmd + [str(data), str(ref)] + args, cwd=REPO, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    assert done.returncode == 0, done.stderr
    out = tmp_path / "out"
    proc = subprocess.Popen(cmd + [str(data), str(out)] + args, cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10 * seconds + 60
    while _journal_lines(out) < 8 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    killed = proc.poll() is None
    if killed:
        proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert killed, f"the export finished before it could be killed ({seconds:.1f} s)"
    resumed = subprocess.run(cmd + [str(data), str(out)] + args, cwd=REPO, env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert tree(out) == tree(ref)


@pytest.fixture(scope="module")
def fractals_dir_big(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder_ = tmp_path_factory.mktemp("fractals-exact")
    write_fractal_set(folder_, count=4, size=32, seed=4)
    return folder_
