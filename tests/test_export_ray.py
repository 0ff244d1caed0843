"""The exporter on Ray Data (``engine="ray"``, issue 22): the same chunks through the same functions, on a cluster.

One local Ray (2 CPUs, no dashboard) serves the module. Shown here:

- a Ray export with 2 editor actors and batch 3 is byte-identical to a local one, every file and every manifest row
  (errors.jsonl included), with the preview (and a scorer whose rule retries and drops Î) and with the tiny
  InstructPix2Pix;
- an editor actor killed (kill -9) mid-run is restarted, its chunk done again, and the export ends identical, with
  no duplicate or missing row; a second driver on the same OUTPUT is refused by the folder's lock;
- a driver killed mid-run: the same command resumes and ends identical;
- a node that cannot see INPUT fails the run with a DiffuseMixError naming the node and the path;
- the dry run states the actors, their GPUs and CPUs and the planner's time divided across them;
- without Ray installed, ``--engine ray`` says how to get it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from diffusemix import cli
from diffusemix.editors import load_editor
from diffusemix.errors import DiffuseMixError, SettingError
from diffusemix.export import ExportOptions, export_dataset, folder
from diffusemix.fractals import FractalSet, write_fractal_set
from diffusemix.recipe import Recipe

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from export_helpers import make_dataset, tree  # noqa: E402

REPO = HERE.parent
RECIPE = Recipe(size=32, prompts=("sunset", "snowy"), seam=4)
#: 2 editor actors on a 2-CPU cluster: half a CPU each leaves a CPU for the decode and write tasks
RAY = dict(engine="ray", ray_actors=2, ray_cpus_per_actor=0.5)


@pytest.fixture(scope="module")
def cluster():
    """A local Ray for this module (workers inherit the test environment: offline Hugging Face, this checkout)."""
    import ray

    if ray.is_initialized():  # pragma: no cover - another module left one running
        ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join([str(REPO), str(HERE)])}})
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, FractalSet]:
    root = tmp_path_factory.mktemp("ray")
    data = make_dataset(root / "data", classes=("cat", "dog"), per_class=2)  # 5 images x 2 prompts = 10 samples
    (data / "dog" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not an image")  # an errors.jsonl entry
    write_fractal_set(root / "fractals", count=4, size=32, seed=2)
    return data, FractalSet.from_folder(root / "fractals")


@pytest.fixture
def one_thread():
    """Torch on one thread here, as in the actors (half a CPU each: one thread): bfloat16 Î and float32 scores
    move in their last bits with the thread count, on any engine. (List it after the tiny model fixtures: building
    one sets the tests' thread count.)"""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _export(data: Path, out: Path, fractals: FractalSet, editor, **options):
    return export_dataset(data, out, recipe=RECIPE, editor=editor, fractals=fractals,
                          options=ExportOptions(**options), progress_bar=False)


def _ip2p(model: Path, dtype: str = "float32", batch: int = 3):
    return load_editor("instruct-pix2pix", model=str(model), device="cpu", dtype=dtype, steps=2, batch_size=batch)


def _editor_actors(*, busy: bool = False) -> list[int]:
    """Pids of the editor actors' processes: Ray titles them ``ray::MapWorker(MapBatches(EditorActor))``, with
    ``.submit`` while they run a chunk (``busy``)."""
    import psutil

    pids = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        try:
            title = " ".join(p.info["cmdline"] or [])
        except psutil.Error:  # pragma: no cover - gone meanwhile
            continue
        if "MapBatches(EditorActor)" in title and (not busy or "EditorActor)).submit" in title):
            pids.append(p.info["pid"])
    return pids


# ---------------------------------------------------------------------------
# identity
# ---------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("which", ["preview-scored", "tiny-ip2p", "tiny-qwen"])
def test_a_ray_export_is_byte_identical_to_a_local_one(cluster, inputs, tiny_ip2p_dir, tiny_dino_dir,
                                                       tiny_qwen_image_edit_dir, tmp_path, which, one_thread):
    """2 actors, chunks of 3: the preview (batch 3) with a scorer whose rule retries and drops Î; the tiny
    InstructPix2Pix (batch 3); the tiny Qwen-Image-Edit, whose spec has no batch size (one sample a call)."""
    from diffusemix.scoring import ScoreRule, load_scorer

    data, fractals = inputs
    kw: dict = {}
    options: dict = {}
    if which == "preview-scored":
        def make():
            return load_editor("preview", batch_size=3)

        first = _scores(data, tmp_path / "scores", fractals, load_scorer("dino", model=str(tiny_dino_dir)))
        # about half the first Î are rejected and made again with new recorded seeds, some of them dropped
        kw = dict(score_rule=ScoreRule(min_score=float(np.median(first))))
    elif which == "tiny-ip2p":
        def make():
            return _ip2p(tiny_ip2p_dir)
    else:
        def make():
            return load_editor("qwen-image-edit", model=str(tiny_qwen_image_edit_dir), device="cpu", dtype="float32",
                               steps=2, edit_size=64)

        options = dict(chunk_size=3, accept_license="non-commercial")  # a folder of weights it does not know
        assert make().spec.batch_size is None
    summaries = {}
    for engine, extra in (("local", {}), ("ray", RAY)):
        if which == "preview-scored":
            kw["scorer"] = load_scorer("dino", model=str(tiny_dino_dir))
        summaries[engine] = export_dataset(data, tmp_path / engine, recipe=RECIPE, editor=make(), fractals=fractals,
                                           options=ExportOptions(save_stages=True, **options, **extra),
                                           progress_bar=False, **kw)
    want, got = tree(tmp_path / "local"), tree(tmp_path / "ray")
    assert sorted(got) == sorted(want)
    assert [name for name in want if got[name] != want[name]] == []
    assert "metadata.jsonl" in got and "errors.jsonl" in got  # the rows and the unreadable input, identical
    local, on_ray = summaries["local"], summaries["ray"]
    fields = ("made", "failed", "degenerate", "rejected", "scores", "skipped_done", "editor")
    assert [getattr(on_ray, f) for f in fields] == [getattr(local, f) for f in fields]
    assert [src for src, _ in on_ray.failed] == ["dog/broken.png"]
    rows = list(folder.read_journal_rows(tmp_path / "ray"))  # kept and dropped
    assert len(rows) == 10 and sorted(r["chunk"] for r in rows) == [k // 3 for k in range(10)]  # the planned calls
    if which == "preview-scored":
        assert any(r["attempts"] > 1 for r in rows) and on_ray.rejected > 0, "the rule did not bite"
    if which == "tiny-qwen":  # one model call per sample, as locally
        assert all(len(r["batch"]) == 1 for r in rows)
    assert all(name.startswith(f"{folder.IMAGES_DIR}/") for name in got if name.endswith(".png")
               and not name.startswith("stages/")), "A is under images/"


@pytest.mark.slow
@pytest.mark.parametrize("fmt,task", [("coco", "detect"), ("masks", "segment")])
def test_an_annotated_ray_export_is_byte_identical_to_a_local_one(cluster, tmp_path, fmt, task):
    """--task detect (COCO: the rows' objects, instances.json at collect) and segment (a class-id mask per A):
    the write tasks write the same annotation files and row fields, and the summary counts the same objects."""
    from annotation_helpers import make_scene, write_coco_dataset, write_mask_dataset

    from diffusemix.annotations.export_step import AnnotationOptions

    scenes = {  # one rectangle cut by the crop, one dropped by it; a polygon
        "s1.png": make_scene(60, 40, [("rect", 1, (5, 5, 25, 30)), ("rect", 3, (52, 10, 59, 30)),
                                      ("polygon", 1, [30, 5, 45, 10, 35, 30])]),
        "s2.png": make_scene(40, 56, [("rect", 3, (8, 12, 30, 40))]),
    }
    data = tmp_path / "data"
    (write_coco_dataset if fmt == "coco" else write_mask_dataset)(data, scenes)
    write_fractal_set(tmp_path / "fractals", count=3, size=32, seed=5)
    fractals = FractalSet.from_folder(tmp_path / "fractals")
    recipe = Recipe(size=32, prompts=("sunset", "snowy", "mosaic"), seam=4, resize="center-crop")
    summaries = {}
    for engine, extra in (("local", {}), ("ray", RAY)):
        summaries[engine] = export_dataset(
            data, tmp_path / engine, recipe=recipe, editor=load_editor("preview", batch_size=2), fractals=fractals,
            options=ExportOptions(save_stages=True, **extra), annotations=AnnotationOptions(task=task),
            progress_bar=False)
    want, got = tree(tmp_path / "local"), tree(tmp_path / "ray")
    assert sorted(got) == sorted(want)
    assert [name for name in want if got[name] != want[name]] == []
    wanted = {"coco": ["annotations/instances.json"], "masks": ["classes.txt"] + [
        n for n in want if n.startswith("masks/")]}[fmt]
    assert wanted[0] in got and len(wanted) == (1 if fmt == "coco" else 7)  # masks: one per A (6) and the classes
    rows = [json.loads(line) for line in got["metadata.jsonl"].decode().splitlines()]
    assert len(rows) == 6 and all(("objects" in r) == (fmt == "coco") for r in rows)
    local, on_ray = summaries["local"], summaries["ray"]
    assert on_ray.notes == local.notes and any("annotations:" in n for n in on_ray.notes)
    if fmt == "coco":
        assert any("kept" in n and "dropped by the crop" in n for n in on_ray.notes)  # the objects were counted


def _scores(data: Path, out: Path, fractals: FractalSet, scorer) -> list[float]:
    from diffusemix.scoring import ScoreRule

    export_dataset(data, out, recipe=RECIPE, editor=load_editor("preview", batch_size=3), fractals=fractals,
                   options=ExportOptions(cache=True), progress_bar=False, scorer=scorer,
                   score_rule=ScoreRule(min_score=-1.0))
    return [r["score"] for r in folder.read_rows(out)]


# ---------------------------------------------------------------------------
# faults
# ---------------------------------------------------------------------------


@pytest.mark.slow
def test_an_editor_actor_killed_mid_run_is_restarted_and_the_export_ends_identical(cluster, tmp_path, tiny_ip2p_dir,
                                                                                     one_thread, monkeypatch):
    """kill -9 of an editor actor's process while it edits a chunk; bfloat16, whose Î depend on the call."""
    from diffusemix.export import ray_engine

    data = make_dataset(tmp_path / "data", classes=("cat", "dog"), per_class=3)  # 7 x 2 = 14 samples, 5 chunks
    write_fractal_set(tmp_path / "fractals", count=4, size=32, seed=4)
    fractals = FractalSet.from_folder(tmp_path / "fractals")
    _export(data, tmp_path / "ref", fractals, _ip2p(tiny_ip2p_dir, "bfloat16"), save_stages=True)
    out = tmp_path / "ray"
    killed: list[int] = []
    before: set[int] = set()  # the actors' processes when one was killed
    refused: list[str] = []
    streams: list = []
    run = ray_engine.RayStream.run

    def keep(self):  # the driver's stream, to read which actor processes made the chunks
        streams.append(self)
        return run(self)

    def kill_a_busy_actor() -> None:  # beside the driver: the first actor seen working on a chunk
        deadline = time.monotonic() + 300
        while not stop.is_set() and time.monotonic() < deadline:
            pids = _editor_actors(busy=True)
            if pids:
                before.update(_editor_actors())
                os.kill(pids[0], signal.SIGKILL)  # in the middle of its chunk
                killed.append(pids[0])
                return
            time.sleep(0.002)

    def on_progress(done: int, total: int) -> None:
        if done >= 3 and not refused:  # a second driver on the same OUTPUT: refused by the lock, before any work
            try:
                _export(data, out, fractals, load_editor("preview", batch_size=3), save_stages=True, **RAY)
            except DiffuseMixError as e:
                refused.append(str(e))

    stop = threading.Event()
    watcher = threading.Thread(target=kill_a_busy_actor, daemon=True)
    watcher.start()
    monkeypatch.setattr(ray_engine.RayStream, "run", keep)
    try:
        export_dataset(data, out, recipe=RECIPE, editor=_ip2p(tiny_ip2p_dir, "bfloat16"), fractals=fractals,
                       options=ExportOptions(save_stages=True, **RAY), progress_bar=False, progress=on_progress)
    finally:
        stop.set()
        watcher.join()
    assert killed, "the export finished before an actor could be killed"
    assert refused and "in use by another export" in refused[0]
    made_by = streams[0].editor_pids  # the processes that made the chunks
    assert killed[0] in before and made_by - before, f"no restarted actor made a chunk: {made_by}, {before}"
    assert tree(out) == tree(tmp_path / "ref")
    journal = [json.loads(line) for p in sorted((out / folder.STATE_DIR).glob("rows-*.jsonl"))
               for line in p.read_text().splitlines()]
    names = [r["file_name"] for r in journal]
    assert len(names) == len(set(names)) == 14  # each row once: none lost, none twice


@pytest.mark.slow
def test_a_killed_driver_resumes_with_the_same_command(cluster, tmp_path):
    data = make_dataset(tmp_path / "data", classes=("cat", "dog"), per_class=12, size=(40, 48))  # 25 x 2 = 50
    write_fractal_set(tmp_path / "fractals", count=4, size=32, seed=4)
    address = cluster.get_runtime_context().gcs_address
    args = ["--editor", "preview", "--batch-size", "3", "--prompts", "sunset,snowy", "--size", "32", "--seam", "4",
            "--fractals", str(tmp_path / "fractals"), "--no-progress", "--save-stages"]
    ray_args = ["--engine", "ray", "--ray-address", address, "--ray-actors", "2", "--ray-cpus-per-actor", "0.5"]
    cmd = [sys.executable, "-m", "diffusemix", "export"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(REPO)}
    ref = tmp_path / "ref"
    done = subprocess.run(cmd + [str(data), str(ref)] + args, cwd=REPO, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    out = tmp_path / "out"
    proc = subprocess.Popen(cmd + [str(data), str(out)] + args + ray_args, cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 180
    while _journal_lines(out) < 6 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    killed = proc.poll() is None
    if killed:
        proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert killed, "the export finished before its driver could be killed"
    assert 6 <= _journal_lines(out) < 50
    resumed = subprocess.run(cmd + [str(data), str(out)] + args + ray_args, cwd=REPO, env=env, capture_output=True,
                             text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert "skipped as done:" in resumed.stdout
    # the exporter's bar stands for Ray Data's: no Ray warning that its bars are off, and how to turn them on
    assert "Progress bars disabled" not in resumed.stderr
    assert tree(out) == tree(ref)


def _journal_lines(out: Path) -> int:
    try:
        return sum(p.read_bytes().count(b"\n") for p in (out / folder.STATE_DIR).glob("rows-*.jsonl"))
    except FileNotFoundError:
        return 0


# ---------------------------------------------------------------------------
# storage
# ---------------------------------------------------------------------------


def test_check_storage_on_a_ray_node_names_the_node_and_the_path(cluster, tmp_path):
    from diffusemix.export import ray_engine, ray_stages

    task = cluster.remote(num_cpus=0)(ray_stages.check_storage)
    with pytest.raises(Exception) as got:
        cluster.get(task.remote(read={"input folder": str(tmp_path / "not-mounted")}))
    err = ray_engine._user_error(got.value)
    assert isinstance(err, DiffuseMixError)
    assert f"Ray node {socket.gethostname()} (" in err.reason and str(tmp_path / "not-mounted") in err.reason
    assert err.path == str(tmp_path / "not-mounted") and "every Ray node" in err.hint
    cluster.get(task.remote(read={"input folder": str(tmp_path)}, write={"output folder": str(tmp_path)}))  # fine
    assert list(tmp_path.iterdir()) == []  # the write probe is gone


def test_an_editor_actor_that_cannot_see_the_input_hands_the_error_on_before_loading_a_model(tmp_path):
    """The actor checks the storage first; its error travels to the driver as data (raised there as it was)."""
    from diffusemix.editors import EditorSpec, InstructPix2PixEditor
    from diffusemix.export import ray_stages
    from diffusemix.scoring import ScoreRule

    missing = tmp_path / "not-mounted"
    spec = InstructPix2PixEditor(EditorSpec(name="instruct-pix2pix", model=str(tmp_path / "no-weights"), device="cpu",
                                            dtype="float32")).spec  # resolved, as the driver's editor holds it
    actor = ray_stages.EditorActor(editor_cls=InstructPix2PixEditor, spec=spec, device="cpu", threads=1, scorer=None,
                                   rule=ScoreRule(), read={"input folder": str(missing)})
    assert not hasattr(actor, "editor")  # no model was loaded
    out = actor({"chunk": np.array([7]), "work": np.array([ray_stages.pack("a decoded chunk")], dtype=object)})
    assert list(out["chunk"]) == [7]
    failed = ray_stages.unpack(out["work"][0])
    err = failed.error()
    assert type(err) is DiffuseMixError and err.path == str(missing)
    assert err.reason.startswith(f"Ray node {socket.gethostname()} (")
    assert err.reason.endswith(f") cannot see the input folder {missing}")
    # with the storage there, a model that cannot be loaded is handed on the same way, as the error it is
    actor = ray_stages.EditorActor(editor_cls=InstructPix2PixEditor, spec=spec, device="cpu", threads=1, scorer=None,
                                   rule=ScoreRule(), read={"input folder": str(tmp_path)})
    got = ray_stages.unpack(actor({"chunk": np.array([0]), "work": np.array([ray_stages.pack(0)], dtype=object)})[
        "work"][0]).error()
    from diffusemix.errors import EditorLoadError

    assert isinstance(got, EditorLoadError) and "no-weights" in str(got)


@pytest.mark.slow
def test_a_node_that_cannot_see_the_input_fails_the_run_naming_node_and_path(cluster, inputs, tmp_path, monkeypatch):
    """INPUT vanishes for the workers once the driver has planned (a node without the mount)."""
    from diffusemix.export import ray_engine

    data, fractals = inputs
    hidden = tmp_path / "data"
    import shutil

    shutil.copytree(data, hidden)
    run = ray_engine.RayStream._run

    def unmount_then_run(self, ray_, items):
        hidden.rename(tmp_path / "elsewhere")
        return run(self, ray_, items)

    monkeypatch.setattr(ray_engine.RayStream, "_run", unmount_then_run)
    with pytest.raises(DiffuseMixError) as got:
        _export(hidden, tmp_path / "out", fractals, load_editor("preview", batch_size=3), **RAY)
    assert f"Ray node {socket.gethostname()} (" in got.value.reason
    assert f"cannot see the input folder {hidden}" in got.value.reason
    assert "--engine" not in got.value.reason and "same path" in got.value.hint
    assert cli.format_error(got.value).startswith("Ray node")


def test_a_run_the_cluster_cannot_schedule_is_refused_not_left_waiting(cluster, inputs, tmp_path):
    """2 actors of 1 CPU on a 2-CPU cluster leave no CPU for the decode and write tasks: Ray Data would wait without
    end; the run stops saying what the cluster has and what to lower. GPUs the cluster lacks, the same."""
    data, fractals = inputs
    for extra, numbers in (({"ray_actors": 2}, "(2 CPU and 0 GPU): 2 editor actor(s) of 1 CPU and 0 GPU each"),
                           ({"ray_gpus_per_actor": 1}, "need 2 CPU and 1 GPU")):
        with pytest.raises(DiffuseMixError, match="asks for more than the Ray cluster has") as got:
            _export(data, tmp_path / "out", fractals, load_editor("preview", batch_size=3), engine="ray", **extra)
        assert numbers in got.value.reason and "--ray-cpus-per-actor" in got.value.hint
    assert not folder.manifest_path(tmp_path / "out").exists()


def test_auto_batch_size_is_chosen_where_the_actors_run(cluster, tiny_ip2p_dir):
    """``batch_size="auto"`` for Ray runs is chosen by a task with an actor's resources, on the actors' device."""
    from diffusemix.editors.batching import AUTO_CAP
    from diffusemix.export import ray_engine

    editor = _ip2p(tiny_ip2p_dir)
    got = ray_engine.auto_batch_size(ExportOptions(**RAY), editor, 256)
    assert isinstance(got, int) and 1 <= got <= AUTO_CAP["cpu"]  # a CPU actor's cap at 256 px
    assert cluster.is_initialized()  # the module's Ray was used, and left running


# ---------------------------------------------------------------------------
# the command line: dry run, settings, no Ray
# ---------------------------------------------------------------------------


def test_the_dry_run_states_actors_and_the_planners_time_divided(inputs, tiny_ip2p_dir, tmp_path, capsys):
    from diffusemix.cost import plan_cost  # the one estimate
    from diffusemix.export import plan_export

    data, _ = inputs
    base = ["export", str(data), str(tmp_path / "out"), "--dry-run", "--model", str(tiny_ip2p_dir), "--steps", "100",
            "--size", "256", "--prompts", "sunset,snowy"]
    assert cli.main(base + ["--engine", "ray", "--ray-actors", "4", "--ray-cpus-per-actor", "2"]) == 0
    text = capsys.readouterr().out
    assert "engine:   ray (" in text and "4 editor actor(s), each 0 GPU and 2 CPU (0 GPU and 8 CPU in all)" in text
    editor = load_editor("instruct-pix2pix", model=str(tiny_ip2p_dir), steps=100, device="cpu", lazy=True)
    pairs = plan_export(data, tmp_path / "out", recipe=Recipe(size=256, prompts=("sunset", "snowy"))).samples
    one = plan_cost(editor, pairs, size=256).seconds
    assert f"ray time: about {one / 4 / 60:.1f} min with 4 actor(s) (the cost above, {one / 3600:.1f} h on one" in text
    assert not (tmp_path / "out").exists()
    # GPU actors: the stored CPU figures do not apply, said so; float16 is their default dtype
    assert cli.main(base + ["--engine", "ray", "--ray-actors", "8", "--ray-gpus-per-actor", "1"]) == 0
    text = capsys.readouterr().out
    assert "8 editor actor(s), each 1 GPU and 1 CPU (8 GPU and 8 CPU in all)" in text
    assert "in float16" in text and "--calibrate on one of the GPU nodes" in text and "no estimate" in text


def test_ray_settings_go_with_the_ray_engine(inputs, tiny_ip2p_dir, tmp_path, capsys):
    with pytest.raises(SettingError, match=r"ExportOptions.ray_actors goes with the ray engine"):
        ExportOptions(ray_actors=2)
    data, _ = inputs
    assert cli.main(["export", str(data), str(tmp_path / "o"), "--ray-gpus-per-actor", "1", "--dry-run"]) == 2
    assert "error: --ray-gpus-per-actor goes with the ray engine" in capsys.readouterr().err
    assert cli.main(["export", str(data), str(tmp_path / "o"), "--engine", "ray", "--ray-gpus-per-actor", "1",
                     "--device", "cpu", "--model", str(tiny_ip2p_dir), "--dry-run"]) == 2
    assert "error: --device cannot be used with the ray engine's cuda actors" in capsys.readouterr().err
    with pytest.raises(SettingError, match=r"ray_cpus_per_actor must be"):
        ExportOptions(engine="ray", ray_cpus_per_actor=-1.0)


@pytest.mark.parametrize("name,dtype", [("instruct-pix2pix", "float16"), ("qwen-image-edit", "bfloat16"),
                                        ("flux2-klein", "bfloat16"), ("flux-kontext", "bfloat16")])
def test_the_gpu_actors_default_dtype_is_the_editors_own_on_cuda(name, dtype):
    """The driver (maybe without a GPU) fixes ``auto`` as the editor would on the actors' GPUs: float16 for
    InstructPix2Pix (the authors'), bfloat16 for the instruction editors (their cards'; float16 can overflow)."""
    from diffusemix.editors import EditorSpec
    from diffusemix.export.ray_engine import driver_spec

    gpu, cpu = ExportOptions(engine="ray", ray_gpus_per_actor=1), ExportOptions(engine="ray")
    assert driver_spec(EditorSpec(name=name), gpu).dtype == dtype
    assert driver_spec(EditorSpec(name=name, dtype="float32"), gpu).dtype == "float32"  # asked for: kept
    assert driver_spec(EditorSpec(name=name), cpu).dtype in (None, "auto")  # CPU actors: the driver's own default


def test_without_ray_the_ray_engine_says_how_to_install_it(inputs, tmp_path, monkeypatch, capsys):
    data, fractals = inputs
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails as if it were not installed
    monkeypatch.setitem(sys.modules, "ray.data", None)
    with pytest.raises(DiffuseMixError, match=r'pip install "diffusemix\[ray\]"') as got:
        _export(data, tmp_path / "out", fractals, load_editor("preview"), engine="ray")
    assert got.value.field == "engine" and not (tmp_path / "out").exists()
    assert cli.main(["export", str(data), str(tmp_path / "out"), "--editor", "preview", "--engine", "ray",
                     "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --engine ray needs Ray Data") and 'pip install "diffusemix[ray]"' in err
    assert not (tmp_path / "out").exists()
