"""``python -m diffusemix export``: which editor runs, and never a stand-in by accident (issue 8, section 1).

- no weights under ``--editor auto`` (the default): exit 2 with one short line
  that says how to get the model and that ``--editor preview`` makes a preview
  dataset on purpose; nothing written into OUTPUT;
- a model that fails to load leaves no ``.diffusemix/run.json`` behind;
- ``--dry-run`` names the editor (model, device, dtype) and the image count;
- ``--device`` with the preview is refused, as ``--steps`` is.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from diffusemix import cli
from diffusemix.fractals import write_fractal_set

sys.path.insert(0, str(Path(__file__).resolve().parent))
from export_helpers import make_dataset

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def fractal_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("fractals")
    write_fractal_set(folder, count=4, size=64, seed=5)
    return folder


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    return make_dataset(tmp_path / "data", classes=("cat", "dog"), per_class=2)


def args_for(inp: Path, out: Path, fractal_dir: Path, *extra: str) -> list[str]:
    return ["export", str(inp), str(out), "--prompts", "sunset,snowy", "--size", "32", "--seam", "4",
            "--fractals", str(fractal_dir), "--no-progress", *extra]


def run_cli(args: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    code = cli.main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def no_weights(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf-home"))


def test_auto_without_weights_exits_2_in_one_uncut_line_and_writes_nothing(
    dataset: Path, tmp_path: Path, fractal_dir: Path
) -> None:
    # A real process, with the library's loggers as a user gets them: the reason is printed once.
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if not k.endswith("_VERBOSITY")}
    env.update(HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "empty-hf-home"), PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-m", "diffusemix", *args_for(dataset, out, fractal_dir)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    msg = lines[0]
    assert "hf download timbrooks/instruct-pix2pix" in msg and "--model" in msg
    assert "--editor preview" in msg and "on purpose" in msg
    assert "..." not in msg and "…" not in msg and len(msg) < 600
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert not out.exists()


def test_a_model_that_fails_to_load_leaves_no_run_json(
    dataset: Path, tmp_path: Path, fractal_dir: Path, capsys, no_weights
) -> None:
    out = tmp_path / "out"
    code, _, err = run_cli(args_for(dataset, out, fractal_dir, "--editor", "instruct-pix2pix"), capsys)
    assert code == 2 and "hf download timbrooks/instruct-pix2pix" in err
    assert not (out / ".diffusemix" / "run.json").exists()
    # so a later preview run into the same folder is not refused "made with other settings"
    code, _, err = run_cli(args_for(dataset, out, fractal_dir, "--editor", "preview"), capsys)
    assert code == 0, err


def test_dry_run_names_the_preview_and_the_count(dataset: Path, tmp_path: Path, fractal_dir: Path, capsys) -> None:
    code, stdout, _ = run_cli(args_for(dataset, tmp_path / "out", fractal_dir, "--editor", "preview", "--dry-run"),
                              capsys)
    assert code == 0
    assert "editor:   preview (weight-free colour/texture filters, not a diffusion model)" in stdout
    assert "would make 10 image(s)" in stdout  # 5 images x 2 prompts
    assert not (tmp_path / "out").exists()


def test_dry_run_names_model_device_and_dtype_without_loading(
    dataset: Path, tmp_path: Path, fractal_dir: Path, capsys, tiny_ip2p_dir: Path, monkeypatch
) -> None:
    from diffusemix.editors import InstructPix2PixEditor

    def no_load(self):  # a dry run must not spend minutes loading the model
        raise AssertionError("a dry run loaded the model")

    monkeypatch.setattr(InstructPix2PixEditor, "load", no_load)
    args = args_for(dataset, tmp_path / "out", fractal_dir, "--editor", "instruct-pix2pix", "--model",
                    str(tiny_ip2p_dir), "--steps", "3", "--dry-run")
    code, stdout, _ = run_cli(args, capsys)
    assert code == 0

    assert f"editor:   InstructPix2Pix ({tiny_ip2p_dir}) on cpu in float32, 3 steps" in stdout
    assert "would make 10 image(s)" in stdout


def test_dry_run_of_auto_says_when_the_weights_are_missing(
    dataset: Path, tmp_path: Path, fractal_dir: Path, capsys, no_weights
) -> None:
    code, stdout, _ = run_cli(args_for(dataset, tmp_path / "out", fractal_dir, "--dry-run"), capsys)
    assert code == 0

    assert f"editor:   InstructPix2Pix (timbrooks/instruct-pix2pix) on cpu in float32" in stdout
    assert "not in the local Hugging Face cache" in stdout and "--editor preview" in stdout


@pytest.mark.parametrize("extra", [(), ("--dry-run",)])
def test_device_with_the_preview_exits_2(dataset: Path, tmp_path: Path, fractal_dir: Path, capsys, extra) -> None:
    args = args_for(dataset, tmp_path / "out", fractal_dir, "--editor", "preview", "--device", "cuda", *extra)
    code, _, err = run_cli(args, capsys)
    assert code == 2 and "--device" in err and "preview" in err
    assert not (tmp_path / "out").exists()
