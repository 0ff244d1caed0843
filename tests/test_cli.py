"""``python -m diffusemix``: help, export, errors and exit codes, kill -9 and resume, merge, fractals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from diffusemix import cli
from diffusemix.fractals import write_fractal_set

sys.path.insert(0, str(Path(__file__).resolve().parent))
from export_helpers import make_dataset, temp_files, tree

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def fractal_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("fractals")
    write_fractal_set(folder, count=4, size=64, seed=5)
    return folder


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    return make_dataset(tmp_path / "data")


def export_args(inp: Path, out: Path, fractal_dir: Path, *extra: str) -> list[str]:
    return [
        "export",
        str(inp),
        str(out),
        "--editor",
        "preview",
        "--prompts",
        "sunset,snowy",
        "--size",
        "32",
        "--seam",
        "4",
        "--fractals",
        str(fractal_dir),
        "--no-progress",
        *extra,
    ]


def run_cli(args: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    code = cli.main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# ---------------------------------------------------------------------------
# help
# ---------------------------------------------------------------------------


def test_help_explains_every_option(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["export", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for flag in (
        "--preset",
        "--editor",
        "--model",
        "--prompts",
        "--prompt-set",
        "--prompts-file",
        "--size",
        "--resize",
        "--images-per-prompt",
        "--layouts",
        "--mask",
        "--seam",
        "--lam",
        "--fractals",
        "--seed",
        "--batch-size",
        "--format",
        "--quality",
        "--save-stages",
        "--reuse-generated",
        "--shard",
        "--dry-run",
        "--workers",
        "--steps",
        "--guidance-scale",
        "--image-guidance-scale",
        "--strength",
        "--device",
        "--dtype",
        "--max-retries",
    ):
        assert flag in text, flag
    assert "metadata.jsonl" in text and "resume" in text and "(default: None)" not in text
    for sub in ("merge", "fractals"):
        with pytest.raises(SystemExit):
            cli.main([sub, "--help"])
        assert "OUT" in capsys.readouterr().out


def test_module_entry_point_runs() -> None:
    proc = subprocess.run([sys.executable, "-m", "diffusemix", "--help"], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0 and "export" in proc.stdout and "merge" in proc.stdout and "fractals" in proc.stdout


# ---------------------------------------------------------------------------
# export
# ---------------------------------------------------------------------------


def test_export_writes_the_dataset_and_a_summary(
    dataset: Path, tmp_path: Path, fractal_dir: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "out"
    code, stdout, stderr = run_cli(
        export_args(
            dataset,
            out,
            fractal_dir,
            "--lam",
            "0.1:0.3",
            "--layouts",
            "right,bottom",
            "--mask",
            "binary",
            "--seed",
            "3",
            "--images-per-prompt",
            "2",
        ),
        capsys,
    )
    assert code == 0, stderr
    assert "made:             40 image(s)" in stdout and "skipped as done:  0" in stdout and str(out) in stdout
    rows = [json.loads(x) for x in (out / "metadata.jsonl").read_text().splitlines()]
    assert len(rows) == 40
    assert all(0.1 <= r["lam"] <= 0.3 and r["layout"] in ("right", "bottom") for r in rows)
    assert {r["mask"] for r in rows} == {"binary"} and {r["seam"] for r in rows} == {0}
    assert {r["copy"] for r in rows} == {0, 1}
    settings = json.loads((out / ".diffusemix" / "run.json").read_text())
    assert settings["recipe"]["seed"] == 3 and settings["recipe"]["lam"] == [0.1, 0.3]

    # the same command again: everything skipped
    code, stdout, _ = run_cli(
        export_args(
            dataset,
            out,
            fractal_dir,
            "--lam",
            "0.1:0.3",
            "--layouts",
            "right,bottom",
            "--mask",
            "binary",
            "--seed",
            "3",
            "--images-per-prompt",
            "2",
        ),
        capsys,
    )
    assert code == 0 and "made:             0 image(s)" in stdout and "skipped as done:  40" in stdout


def test_preset_values_fill_flags_not_given(dataset: Path, tmp_path: Path, fractal_dir: Path, capsys) -> None:
    out = tmp_path / "out"
    code, _, err = run_cli(
        [
            "export",
            str(dataset),
            str(out),
            "--editor",
            "preview",
            "--preset",
            "quick",
            "--size",
            "32",
            "--fractals",
            str(fractal_dir),
            "--no-progress",
        ],
        capsys,
    )
    assert code == 0, err
    settings = json.loads((out / ".diffusemix" / "run.json").read_text())
    assert settings["recipe"]["prompts"] == ["sunset", "Autumn"]  # the quick preset's
    assert settings["recipe"]["layouts"] == ["left", "top"] and settings["recipe"]["seam"] == 20


def test_prompt_set_from_a_prompts_file(dataset: Path, tmp_path: Path, fractal_dir: Path, capsys) -> None:
    pf = tmp_path / "prompts.yaml"
    pf.write_text("default: mine\nsets:\n  mine:\n    - rain\n    - mosaic\n", encoding="utf-8")
    out = tmp_path / "out"
    code, _, err = run_cli(
        [
            "export",
            str(dataset),
            str(out),
            "--editor",
            "preview",
            "--prompt-set",
            "mine",
            "--prompts-file",
            str(pf),
            "--size",
            "32",
            "--fractals",
            str(fractal_dir),
            "--no-progress",
        ],
        capsys,
    )
    assert code == 0, err
    assert {json.loads(x)["prompt"] for x in (out / "metadata.jsonl").read_text().splitlines()} == {"rain", "mosaic"}


def test_dry_run_writes_nothing(dataset: Path, tmp_path: Path, fractal_dir: Path, capsys) -> None:
    out = tmp_path / "out"
    code, stdout, _ = run_cli(export_args(dataset, out, fractal_dir, "--dry-run", "--images-per-prompt", "3"), capsys)
    assert code == 0
    assert "would make 60 image(s)" in stdout and "10" in stdout and "on disk" in stdout
    assert not out.exists()
    # shards take whole chunks of the plan: 20 samples in chunks of 8 are 8 + 8 + 4; shard 1/4 gets the second
    code, stdout, _ = run_cli(export_args(dataset, out, fractal_dir, "--dry-run", "--shard", "1/4", "--chunk-size", "8"),
                              capsys)
    assert code == 0 and "would make 8 image(s)" in stdout and "20 over all shards" in stdout
    code, stdout, _ = run_cli(export_args(dataset, out, fractal_dir, "--dry-run", "--shard", "3/4", "--chunk-size", "8"),
                              capsys)
    assert code == 0 and "would make 0 image(s)" in stdout and "20 over all shards" in stdout
    assert "this shard has no work: the plan is 3 chunk(s) of 8 sample(s)" in stdout and "at most 3 shard(s)" in stdout
    code, stdout, _ = run_cli(export_args(dataset, out, fractal_dir, "--dry-run", "--shard", "1/4", "--chunk-size", "5"),
                              capsys)
    assert code == 0 and "would make 5 image(s)" in stdout
    assert not out.exists()


def test_shards_then_merge(dataset: Path, tmp_path: Path, fractal_dir: Path, capsys) -> None:
    ref = tmp_path / "ref"
    assert run_cli(export_args(dataset, ref, fractal_dir), capsys)[0] == 0
    out = tmp_path / "out"
    code, stdout, _ = run_cli(export_args(dataset, out, fractal_dir, "--shard", "1/2"), capsys)
    assert code == 0 and "shard 1/2" in stdout and "waiting for 0/2" in stdout
    code, stdout, stderr = run_cli(["merge", str(out)], capsys)
    # shards take whole chunks (the preview's batch of 8): shard 1/2 made plan positions 8-15
    assert code == 0 and "8 rows" in stdout and "0/2" in stderr  # a partial merge says what is missing
    code, stdout, _ = run_cli(export_args(dataset, out, fractal_dir, "--shard", "0/2"), capsys)
    assert code == 0 and "metadata.jsonl" in stdout
    assert tree(out) == tree(ref)
    code, stdout, _ = run_cli(["merge", str(out)], capsys)
    assert code == 0 and "20 rows" in stdout and tree(out) == tree(ref)


def test_accelerate_environment_picks_the_shard(monkeypatch: pytest.MonkeyPatch) -> None:
    from diffusemix.export import detect_shard

    for k in ("ACCELERATE_MIXED_PRECISION", "ACCELERATE_DYNAMO_BACKEND", "ACCELERATE_USE_CPU"):
        monkeypatch.delenv(k, raising=False)
    assert detect_shard() is None
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "no")
    index, count, device = detect_shard()
    assert (index, count) == (0, 1) and device


def test_fractals_subcommand(tmp_path: Path, capsys) -> None:
    code, stdout, _ = run_cli(["fractals", str(tmp_path / "fr"), "--count", "2", "--size", "32", "--seed", "1"], capsys)
    assert code == 0 and "wrote 2 fractal image(s)" in stdout
    files = sorted((tmp_path / "fr").glob("*.png"))
    assert len(files) == 2
    with Image.open(files[0]) as im:
        assert im.size == (32, 32)


# ---------------------------------------------------------------------------
# errors: one line, exit status 2, nothing written
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "case, extra, match",
    [
        ("missing", [], "input folder .* does not exist"),
        ("empty", [], "no images found"),
        ("same", [], "is the input folder"),
        ("inside", [], "inside the input folder"),
        ("unwritable", [], "cannot be created: .* is a file"),
        ("ok", ["--prompt-set", "no-such-set"], "unknown prompt set 'no-such-set'"),
        ("ok", ["--layouts", "left,diagonal"], "--layouts must be made of left, right, top, bottom; got 'diagonal'"),
        ("ok", ["--shard", "3"], "--shard must look like I/N"),
        ("ok", ["--shard", "2/2"], r"--shard needs N >= 1 and 0 <= I < N"),
        ("ok", ["--shard", "a/b"], "--shard must look like I/N"),
        ("ok", ["--lam", "0.5:0.1"], "--lam range must satisfy 0 <= low <= high <= 1"),
        ("ok", ["--lam", "abc"], "--lam must be a number such as 0.2 or a range"),
        ("ok", ["--lam", "1.5"], "--lam must be in"),
        ("ok", ["--size", "4"], "--size must be"),
        ("ok", ["--fractals", "/no/such/fractals"], "fractal folder .* does not exist"),
        ("ok", ["--quality", "101"], "--quality must be an integer in"),
        ("ok", ["--workers", "0"], "--workers must be"),
    ],
)
def test_bad_input_exits_2_with_one_clear_line(
    case: str, extra: list[str], match: str, dataset: Path, tmp_path: Path, fractal_dir: Path, capsys
) -> None:
    inp, out = dataset, tmp_path / "out"
    if case == "missing":
        inp = tmp_path / "nope"
    elif case == "empty":
        inp = tmp_path / "empty"
        inp.mkdir()
    elif case == "same":
        out = dataset
    elif case == "inside":
        out = dataset / "augmented"
    elif case == "unwritable":
        (tmp_path / "afile").write_text("x")
        out = tmp_path / "afile" / "out"
    args = export_args(inp, out, fractal_dir, *extra)
    if "--prompt-set" in extra:
        i = args.index("--prompts")
        del args[i : i + 2]
    code, stdout, stderr = run_cli(args, capsys)
    assert code == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    import re

    assert re.search(match, lines[0]), lines[0]
    assert "Traceback" not in stderr
    assert not (tmp_path / "out").exists() and not (dataset / "augmented").exists()


def test_changed_settings_into_the_same_output_exit_2(dataset: Path, tmp_path: Path, fractal_dir: Path, capsys) -> None:
    out = tmp_path / "out"
    assert run_cli(export_args(dataset, out, fractal_dir), capsys)[0] == 0
    code, _, stderr = run_cli(export_args(dataset, out, fractal_dir, "--seed", "9"), capsys)
    assert code == 2 and "error: output folder" in stderr and "recipe.seed: 0 -> 9" in stderr
    assert "new output folder" in stderr


def test_diffusion_flags_with_the_preview_exit_2(dataset: Path, tmp_path: Path, fractal_dir: Path, capsys) -> None:
    args = export_args(dataset, tmp_path / "out", fractal_dir)
    code, _, stderr = run_cli(args + ["--steps", "5", "--strength", "0.3", "--model", "x"], capsys)
    assert code == 2 and "--model, --steps, --strength are settings of the diffusion editors" in stderr
    assert not (tmp_path / "out").exists()


def test_editor_flags_are_checked_in_a_dry_run_too(dataset: Path, tmp_path: Path, fractal_dir: Path, capsys) -> None:
    args = export_args(dataset, tmp_path / "out", fractal_dir, "--dry-run")
    args[args.index("preview")] = "instruct-pix2pix"
    code, _, stderr = run_cli(args + ["--strength", "0.3"], capsys)
    assert code == 2 and "--strength is not a setting of the instruct-pix2pix editor" in stderr
    code, _, stderr = run_cli(args + ["--guidance-scale", "-4"], capsys)
    assert code == 2 and "--guidance-scale must be a number in [0, 100]; got -4.0" in stderr


def test_editor_setting_of_another_editor_exits_2(dataset: Path, tmp_path: Path, fractal_dir: Path, capsys) -> None:
    args = export_args(dataset, tmp_path / "out", fractal_dir)
    args[args.index("preview")] = "instruct-pix2pix"
    code, _, stderr = run_cli(args + ["--strength", "0.3"], capsys)
    assert code == 2 and "--strength is not a setting of the instruct-pix2pix editor" in stderr


def test_errors_exit_2_without_traceback_in_a_real_process(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "diffusemix",
            "export",
            str(tmp_path / "missing"),
            str(tmp_path / "out"),
            "--editor",
            "preview",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: input folder") and "Traceback" not in proc.stderr


def test_ctrl_c_says_how_to_resume(dataset: Path, tmp_path: Path, fractal_dir: Path, capsys, monkeypatch) -> None:
    import diffusemix.export as export

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(export, "export_dataset", interrupted)
    code, _, stderr = run_cli(export_args(dataset, tmp_path / "out", fractal_dir), capsys)
    assert code == 130 and "run the same command again to resume" in stderr


# ---------------------------------------------------------------------------
# kill -9 and resume
# ---------------------------------------------------------------------------


def _journal_lines(out: Path) -> int:
    p = out / ".diffusemix" / "rows-0-of-1.jsonl"
    try:
        return p.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


@pytest.mark.parametrize("mode", ["--save-stages", "--cache"])
def test_sigkill_mid_run_then_resume_gives_identical_files(tmp_path: Path, fractal_dir: Path, mode: str) -> None:
    data = make_dataset(tmp_path / "data", per_class=20, size=(96, 128))  # 61 images x 2 prompts
    args = [
        "--editor",
        "preview",
        "--prompts",
        "sunset,snowy",
        "--size",
        "128",
        "--fractals",
        str(fractal_dir),
        "--no-progress",
        mode,  # an export with its stages, or a cache (I once per image and Î)
        "--batch-size",
        "4",
    ]
    cmd = [sys.executable, "-m", "diffusemix", "export"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}

    ref = tmp_path / "ref"
    t0 = time.perf_counter()
    done = subprocess.run(cmd + [str(data), str(ref)] + args, cwd=REPO, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    assert done.returncode == 0, done.stderr

    out = tmp_path / "out"
    kills = 0
    for target in (15, 60):  # kill it twice, at different points
        proc = subprocess.Popen(
            cmd + [str(data), str(out)] + args, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10 * seconds + 30
        while _journal_lines(out) < target and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
    assert kills >= 1, f"the export finished before it could be killed ({seconds:.1f} s)"
    assert not (out / "metadata.jsonl").exists() or kills < 2

    resumed = subprocess.run(cmd + [str(data), str(out)] + args, cwd=REPO, env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert "skipped as done:  0" not in resumed.stdout

    a, b = tree(out), tree(ref)
    assert sorted(a) == sorted(b)
    assert len([k for k in a if k.startswith(("images/cat/", "images/dog/", "images/fish/"))]) == 122
    for name in b:
        assert a[name] == b[name], name
    assert temp_files(out) == []
    rows = [json.loads(x) for x in (out / "metadata.jsonl").read_text().splitlines()]
    assert len(rows) == 122 and len({r["file_name"] for r in rows}) == 122


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_launched_processes_take_one_shard_each(dataset: Path, tmp_path: Path, fractal_dir: Path, capsys) -> None:
    """Two processes started by torchrun (as `accelerate launch --cpu` does) split the work and merge."""
    ref = tmp_path / "ref"
    assert run_cli(export_args(dataset, ref, fractal_dir), capsys)[0] == 0
    out = tmp_path / "out"
    env = {**os.environ, "ACCELERATE_USE_CPU": "True", "ACCELERATE_MIXED_PRECISION": "no", "OMP_NUM_THREADS": "1"}
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
                "--master-port", str(_free_port()), "-m", "diffusemix"]  # fmt: skip
    proc = subprocess.run(
        launcher + export_args(dataset, out, fractal_dir),
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "(shard 0/2)" in proc.stdout and "(shard 1/2)" in proc.stdout
    state = sorted(p.name for p in (out / ".diffusemix").iterdir())
    assert state == [
        "done-0-of-2.json", "done-1-of-2.json", "lock", "plan.jsonl", "rows-0-of-2.jsonl", "rows-1-of-2.jsonl", "run.json"
    ]
    assert tree(out) == tree(ref)


def test_a_folder_made_with_a_chunk_size_resumes_and_plans_without_the_flag(dataset: Path, tmp_path: Path,
                                                                             fractal_dir: Path, capsys) -> None:
    # a bug: the CLI filled the chunk size from the editor's batch size before reading the folder's, so a rerun
    # without --chunk-size was refused as "other settings" and its dry run counted another shard split
    out = tmp_path / "out"
    code, _, err = run_cli(export_args(dataset, out, fractal_dir, "--chunk-size", "3"), capsys)
    assert code == 0, err
    code, stdout, err = run_cli(export_args(dataset, out, fractal_dir), capsys)
    assert code == 0, err
    code, stdout, _ = run_cli(export_args(dataset, out, fractal_dir, "--dry-run", "--shard", "1/2"), capsys)
    # 20 samples in chunks of 3: 7 chunks (the last of 2); shard 1 of 2 takes chunks 1, 3, 5 = 9 samples
    assert code == 0 and "(9 in this shard, 9 already done; 20 over all shards)" in stdout, stdout
