"""A Space that starts (issue 20): the deploy's file selection (offline), .gitattributes for every binary, the
README's front matter, and a CPU-only Space starting with the preview and a banner that says why."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from diffusemix.errors import DiffuseMixError
from diffusemix.space import (
    check_front_matter,
    deploy,
    front_matter,
    is_binary,
    lfs_patterns,
    run,
    space_files,
    uncovered_binaries,
)

REPO = Path(__file__).resolve().parent.parent


def _tracked() -> set[str]:
    out = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip("not a git checkout")
    return set(out.stdout.splitlines())


def test_the_space_gets_the_app_its_package_and_assets_and_nothing_else():
    found = space_files(REPO)
    files = set(found.files)
    tracked = _tracked()
    # everything the app needs at run time ...
    for need in ("README.md", "app.py", "requirements.txt", "LICENSE", "prompts.yaml", ".gitattributes",
                 "diffusemix/ui/app.py", "diffusemix/train/configs/stanford-cars.yaml", "assets/examples/car.jpg",
                 "assets/fractals/fractal_127_mandelbrot.png"):
        assert need in files, need
    assert {f for f in tracked if f.startswith(("diffusemix/", "assets/"))} <= files
    # ... the pictures the README shows, and nothing else
    assert {f for f in files if f.startswith("docs/")} == {
        "docs/screenshots/explore.png", "docs/screenshots/prompt_lab.png", "docs/screenshots/batch_export.png",
        "docs/report_tiny_preview.png", "docs/screenshots/prompt_lab_scores.png", "docs/screenshots/figure.png",
        "docs/train_smoke_compare.png", "docs/screenshots/annotations.png", "docs/screenshots/annotations_app.png"}
    for never in ("tests/", "bench/", "scripts/", "examples/", ".ci/", "setup.py", "pyproject.toml",
                  "requirements-dev.txt", "MANIFEST.in", ".gitignore"):
        assert not any(f == never or f.startswith(never) for f in files), never
    assert not any("__pycache__" in f or f.endswith(".pyc") for f in files)
    assert files <= tracked | {".gitattributes"}  # only files of the checkout


def test_gitattributes_covers_every_binary_file_of_the_space():
    found = space_files(REPO)
    assert len(found.binary) >= 128 + 4  # the fractal set and the example photos at least
    assert all(f.endswith((".png", ".jpg")) for f in found.binary)
    assert uncovered_binaries(found) == []
    assert "*.png" in lfs_patterns(REPO) and "*.jpg" in lfs_patterns(REPO)
    assert not is_binary(REPO / "app.py") and is_binary(REPO / "assets" / "examples" / "car.jpg")


def test_a_binary_without_a_pattern_stops_the_deploy(tmp_path):
    root = tmp_path / "checkout"
    for f in space_files(REPO).files:
        (root / f).parent.mkdir(parents=True, exist_ok=True)
        (root / f).write_bytes((REPO / f).read_bytes())
    (root / "assets" / "model.ckpt").write_bytes(b"\0\1\2weights")
    with pytest.raises(DiffuseMixError, match=r"1 binary file\(s\) no LFS pattern of .gitattributes covers "
                                              r"\(assets/model.ckpt\)"):
        deploy("alice/diffusemix", root=root, dry_run=True)
    (root / ".gitattributes").unlink()
    with pytest.raises(DiffuseMixError, match="there is no .gitattributes"):
        deploy("alice/diffusemix", root=root, dry_run=True)


def test_the_readme_front_matter_makes_a_gradio_space_with_suggested_hardware():
    meta = front_matter(REPO)
    assert meta["sdk"] == "gradio" and meta["app_file"] == "app.py"
    assert meta["suggested_hardware"] == "zero-a10g"
    assert "timbrooks/instruct-pix2pix" in meta["models"]
    assert check_front_matter(meta) == []
    assert "suggested_hardware" in " ".join(check_front_matter({"sdk": "gradio", "app_file": "app.py"}))
    from huggingface_hub import SpaceHardware

    assert meta["suggested_hardware"] in {h.value for h in SpaceHardware}


def test_dry_run_lists_the_files_and_uploads_nothing(capsys):
    class NoNetwork:
        def __getattr__(self, name):
            raise AssertionError(f"the dry run called HfApi.{name}")

    args = argparse.Namespace(repo_id="alice/diffusemix", dry_run=True, root=str(REPO), private=False)
    assert run(args, api=NoNetwork()) == 0
    out = capsys.readouterr().out
    assert out.startswith("Dry run: would upload") and "app.py" in out and "suggested hardware zero-a10g" in out


def test_the_upload_sends_exactly_those_files_to_a_gradio_space():
    calls = []

    class RecordingApi:  # stands in for the network only: the arguments are what upload_folder gets
        def create_repo(self, repo_id, **kw):
            calls.append(("create_repo", repo_id, kw))

        def upload_folder(self, **kw):
            calls.append(("upload_folder", kw["repo_id"], kw))
            return "commit"

    found, info = deploy("alice/diffusemix", root=REPO, api=RecordingApi())
    assert info == "commit"
    assert calls[0] == ("create_repo", "alice/diffusemix", {"repo_type": "space", "space_sdk": "gradio",
                                                             "private": False, "exist_ok": True})
    kw = calls[1][2]
    assert kw["repo_type"] == "space" and Path(kw["folder_path"]) == REPO
    from huggingface_hub.utils import filter_repo_objects

    chosen = list(filter_repo_objects(sorted(_tracked() | {".gitattributes"}), allow_patterns=kw["allow_patterns"]))
    assert chosen == list(found.files)  # huggingface_hub's own filter keeps exactly the Space's files


def test_a_bad_space_id_is_refused():
    with pytest.raises(DiffuseMixError, match="must be OWNER/NAME"):
        deploy("diffusemix", root=REPO, dry_run=True)


# ---------------------------------------------------------------------------
# a Space without a GPU


def _start(env_extra: dict[str, str]) -> str:
    """Import app.py as a Space does (a fresh process, the Space's variables) and return its banner."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DIFFUSEMIX_", "SPACE"))}
    env.update({"HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False", "DIFFUSEMIX_SCORE": "none",
                "CUDA_VISIBLE_DEVICES": "", **env_extra})
    code = ("import app; from diffusemix.ui.shared import status_markdown; "
            "print('BANNER:', status_markdown(app.demo.ctx)); print('EDITOR:', app.demo.ctx.editor.name)")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_a_cpu_space_starts_with_the_preview_and_says_which_hardware_runs_the_model():
    out = _start({"SPACE_ID": "alice/diffusemix", "SPACE_AUTHOR_NAME": "alice", "SPACE_REPO_NAME": "diffusemix"})
    assert "EDITOR: preview" in out
    assert "This Space runs on CPU" in out and "ZeroGPU (zero-a10g)" in out and "DIFFUSEMIX_SPEED=fast" in out
    assert "could not be loaded" not in out  # the model was not even tried (no 5 GB download on a CPU Space)
    assert out.count("not a diffusion model") == 1  # said once
    assert not any(ch in out for ch in "\u26a0\u2705\ufe0f")  # a text badge: no emoji for Chromium to box


def test_a_zerogpu_space_tries_the_model_and_a_named_editor_is_kept(tiny_ip2p_dir):
    zero = _start({"SPACE_ID": "alice/diffusemix", "SPACES_ZERO_GPU": "true"})
    assert "This Space runs on CPU" not in zero and "could not be loaded" in zero  # tried (offline here)
    named = _start({"SPACE_ID": "alice/diffusemix", "DIFFUSEMIX_EDITOR": "instruct-pix2pix",
                    "DIFFUSEMIX_MODEL": str(tiny_ip2p_dir)})
    assert "EDITOR: instruct-pix2pix" in named and "Î is made by instruct-pix2pix" in named
    assert named.count(" on cpu in float32") == 1  # the banner says the device and dtype once
