"""The README's offline try-out runs as written: tiny random-weight models, the diffusion editor, scores, a report,
and the app on the same folders (issue 20)."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _block(marker: str) -> list[str]:
    """The indented command lines right after ``marker``."""
    start = README.index(marker)
    lines = []
    for line in README[start:].splitlines()[1:]:
        if not line.startswith("    "):
            break
        lines.append(line.strip())
    return lines


@pytest.mark.slow
def test_the_offline_paragraph_runs_as_written(tmp_path: Path) -> None:
    commands = _block("<!-- offline-tryout")
    assert [c.split()[:4] for c in commands] == [["python", "-m", "diffusemix", "tiny-models"],
                                                 ["python", "-m", "diffusemix", "export"],
                                                 ["python", "-m", "diffusemix", "report"]]
    (tmp_path / "assets").symlink_to(ROOT / "assets")  # "from the checkout": its assets, our own output folders
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIFFUSEMIX_")}  # a reader's shell
    env.update({"PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"})
    outputs = []
    for command in commands:
        argv = shlex.split(command)
        done = subprocess.run([sys.executable, *argv[1:]], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=600)
        assert done.returncode == 0, f"{command}\n{done.stderr[-3000:]}"
        outputs.append(done.stdout)
    tiny = tmp_path / "tiny"
    assert sorted(p.name for p in tiny.iterdir()) == ["clip-RANDOM-WEIGHTS", "dino-v1-RANDOM-WEIGHTS",
                                                      "dinov2-RANDOM-WEIGHTS", "img2img-RANDOM-WEIGHTS", "instruct-pix2pix-RANDOM-WEIGHTS"]
    assert all((p / "RANDOM_WEIGHTS.md").is_file() for p in tiny.iterdir())
    assert "RANDOM WEIGHTS" in outputs[0]
    # the export ran the diffusion editor and scored every Î; the report drew them
    rows = [json.loads(x) for x in (tmp_path / "out/tiny/metadata.jsonl").read_text().splitlines()]
    assert len(rows) == 8 and {r["editor"] for r in rows} == {"instruct-pix2pix"}
    assert all(isinstance(r["score"], float) and r["scorer"] == "dino" for r in rows)
    assert all("instruct-pix2pix-RANDOM-WEIGHTS" in r["editor_settings"] for r in rows)
    assert json.loads(rows[0]["editor_settings"])["steps"] == 4 and rows[0]["class_name"] == "examples"
    assert "README.md: not an image file" in outputs[1]  # as the paragraph says
    assert (tmp_path / "out/tiny/report.png").is_file() and "dinov2-RANDOM-WEIGHTS" in outputs[2]
    card = (tmp_path / "out/tiny/README.md").read_text()
    assert "(RANDOM-WEIGHT TEST MODEL: not DiffuseMix data)" in card

    # the app line of the paragraph: its flags build the app on the same folders (not launched here)
    app_line = re.search(r"`(python app\.py --model tiny/[^`]+)`", README.replace("\n", " "))
    assert app_line is not None
    argv = shlex.split(re.sub(r"\s+", " ", app_line.group(1)))[2:]
    code = ("import sys; from diffusemix.ui.app import parse_args, build_demo; from diffusemix.ui.shared import "
            "status_markdown; a = parse_args(sys.argv[1:]); d = build_demo(a.editor_spec, score=a.scorer_spec); "
            "print(status_markdown(d.ctx)); print('SCORER', d.ctx.scorer.name, d.ctx.scorer.available)")
    done = subprocess.run([sys.executable, "-c", code, *argv], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Î is made by instruct-pix2pix" in done.stdout and "instruct-pix2pix-RANDOM-WEIGHTS" in done.stdout
    assert "SCORER dino True" in done.stdout
