"""scripts/gpu_check.sh: the CPU smoke run end to end (what CI can check of the
GPU check), and the pieces the GPU run depends on to work the first time:
isolation of failing steps, the time budget, killing a part past its
deadline, the offline wheel install, the per-test log and the report arithmetic."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import gpu_check  # noqa: E402
import gpu_env  # noqa: E402
import gpu_report  # noqa: E402
from gpu_parts import PartLog, Step, run_steps  # noqa: E402
from gpu_timing import extrapolate  # noqa: E402

SETTINGS = ("authors", "paper", "paper-bf16", "fast")


def _check(*args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(ROOT / "scripts" / "gpu_check.sh"), *args], capture_output=True, text=True, timeout=timeout
    )


# ---------------------------------------------------------------------------
# the whole script, on the CPU


@pytest.mark.slow
def test_cpu_smoke_writes_the_json_and_the_table(tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = _check("--cpu-smoke", str(out))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    merged = json.loads((out / "gpu_check.json").read_text())
    assert merged["mode"] == "cpu-smoke"
    assert [(r["part"], r["status"]) for r in merged["runs"]] == [("env", "ok"), ("tests", "ok"), ("fullsize", "ok")]
    parts = merged["parts"]
    assert {s["name"]: s["status"] for s in parts["env"]["steps"]} == dict.fromkeys(
        ("devices", "versions", "imports", "matmul"), "ok"
    )
    # the CUDA tests were collected and skipped (no GPU here), none failed
    tests = parts["tests"]
    assert tests["status"] == "ok" and len(tests["tests"]) >= 10
    assert tests["summary"] == {"skipped": len(tests["tests"])}
    # every setting measured at every batch, with positive figures
    steps = parts["fullsize"]["steps"]
    assert all(s["status"] == "ok" for s in steps), [s for s in steps if s["status"] != "ok"]
    cells = {(s["setting"], s["batch"]): s for s in steps if s.get("kind") == "cell"}
    assert set(cells) == {("authors", 1)} | {(name, b) for name in SETTINGS[1:] for b in (1, 2)}
    assert all(c["per_image_s"] > 0 and c["t_s1"] > 0 for c in cells.values())
    flops = {s["setting"]: s["flops_per_image"] for s in steps if s.get("kind") == "flops"}
    assert set(flops) == set(SETTINGS) and all(f > 0 for f in flops.values())
    assert flops["fast"] < flops["paper"]  # 20 steps, cached steps, the tiny VAE
    assert {s["lever"] for s in steps if s.get("kind") == "lever"} == {
        "as is", "channels_last on", "classic attention (no SDPA)"
    }  # fmt: skip
    assert set(merged["ratios"]) >= {"paper_vs_authors", "bf16_vs_paper", "fast_vs_paper", "paper_batch_vs_batch1"}
    # the table
    md = (out / "gpu_check.md").read_text()
    assert "Mode **cpu-smoke**" in md and "its figures mean nothing" in md
    assert "| setting | dtype | batch | ms per step (batch) |" in md
    for name in SETTINGS:
        assert re.search(rf"^\| {re.escape(name)} \| \w+ \| 1 \|", md, re.M), name
    assert "## Ratios for the README" in md and f"\n{len(tests['tests'])} skipped.\n" in md
    # what comes back from a device call: at most 8 files, plain names, two folders down at most
    files = [p.relative_to(out) for p in out.rglob("*") if p.is_file()]
    assert len(files) <= 8 and all(re.fullmatch(r"[A-Za-z0-9._-]+", part) for f in files for part in f.parts)
    assert {str(f) for f in files} == {
        "gpu_check.json", "gpu_check.md", "gpu_check.log", "parts/env.json", "parts/tests.json", "parts/fullsize.json"
    }  # fmt: skip


def test_a_budget_too_small_skips_every_part_and_still_reports(tmp_path: Path) -> None:
    t0 = time.time()
    done = _check("--cpu-smoke", str(tmp_path), "--budget", "6", timeout=60)
    assert done.returncode == 1
    assert time.time() - t0 < 30
    merged = json.loads((tmp_path / "gpu_check.json").read_text())
    assert [r["status"] for r in merged["runs"]] == ["skipped"] * 3
    assert all("time budget" in r["note"] for r in merged["runs"])
    assert "| fullsize | skipped |" in (tmp_path / "gpu_check.md").read_text()


def test_without_arguments_it_prints_its_usage() -> None:
    done = _check(timeout=30)
    assert done.returncode == 2 and "bash scripts/gpu_check.sh OUT" in done.stdout and "--cpu-smoke" in done.stdout


# ---------------------------------------------------------------------------
# the orchestrator's pieces


def test_run_child_kills_the_whole_part_at_its_deadline(tmp_path: Path) -> None:
    marker = tmp_path / "grandchild-alive"
    (tmp_path / "grandchild.py").write_text(f"import time\ntime.sleep(4)\nopen({str(marker)!r}, 'w')\n")
    (tmp_path / "part.py").write_text(
        f"import subprocess, sys, time\nsubprocess.Popen([sys.executable, {str(tmp_path / 'grandchild.py')!r}])\n"
        "time.sleep(60)\n"
    )
    ticks = []
    t0 = time.time()
    res = gpu_check.run_child([sys.executable, str(tmp_path / "part.py")], timeout=2, log_file=tmp_path / "log",
                              env=None, on_tick=lambda: ticks.append(1), tick_s=0.5)  # fmt: skip
    assert res.status == "timeout" and time.time() - t0 < 15
    assert ticks  # the report is refreshed while a part runs
    time.sleep(4)
    assert not marker.exists()  # its children went with it
    failed = gpu_check.run_child([sys.executable, "-c", "import sys; print('x'); sys.exit(3)"], timeout=30,
                                 log_file=tmp_path / "log", env=None)  # fmt: skip
    assert (failed.status, failed.returncode) == ("failed", 3)
    assert "$ " in (tmp_path / "log").read_text() and "x\n" in (tmp_path / "log").read_text()


def test_run_steps_isolates_errors_and_keeps_to_the_deadline(tmp_path: Path) -> None:
    log = PartLog(tmp_path / "p.json", "demo")
    now = [100.0]
    cleaned = []

    def boom() -> dict:
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    def slow() -> dict:
        now[0] += 50
        return {"x": 1}

    def read() -> list[dict]:
        return json.loads((tmp_path / "p.json").read_text())["steps"]

    seen_during: list[int] = []

    def steps():
        yield Step("first", slow, 10, labels={"batch": 1})
        seen_during.append(len(read()))  # written to disk before the next step is planned
        yield Step("second", boom, 10)
        yield Step("third", lambda: {"y": 2}, 100)  # 200 - 150 = 50 s left: skipped
        yield Step("fourth", lambda: {"z": 3}, 1)

    recs = run_steps(steps(), log, key="steps", deadline=200.0, after_error=lambda: cleaned.append(1),
                     clock=lambda: now[0])  # fmt: skip
    assert [r["status"] for r in recs] == ["ok", "error", "skipped", "ok"]
    assert recs[0] == {"name": "first", "batch": 1, "x": 1, "status": "ok", "seconds": 50.0}
    assert recs[1]["error"] == "RuntimeError: CUDA error: an illegal memory access was encountered"
    assert "boom" in recs[1]["traceback"]
    assert recs[2]["reason"] == "time budget: 50 s left, needs about 100 s"
    assert cleaned == [1] and seen_during == [1]
    assert [r["name"] for r in read()] == ["first", "second", "third", "fourth"]


@settings(max_examples=60, deadline=None)
@given(
    per_step=st.floats(0, 10),
    fixed=st.floats(0, 100),
    s1=st.integers(1, 10),
    gap=st.integers(1, 10),
    full=st.integers(1, 200),
)
def test_extrapolate_recovers_a_linear_cost(per_step: float, fixed: float, s1: int, gap: int, full: int) -> None:
    s2 = s1 + gap
    ex = extrapolate(fixed + s1 * per_step, fixed + s2 * per_step, s1, s2, full)
    assert ex["per_step"] == pytest.approx(per_step, rel=1e-9, abs=1e-9)
    assert ex["fixed"] == pytest.approx(fixed, rel=1e-9, abs=1e-7)
    assert ex["full"] == pytest.approx(fixed + full * per_step, rel=1e-9, abs=1e-6)


def test_extrapolate_refuses_bad_step_counts_and_clips_noise() -> None:
    with pytest.raises(ValueError, match="need 0 < s1 < s2; got 3, 3"):
        extrapolate(1.0, 2.0, 3, 3, 100)
    noisy = extrapolate(2.0, 1.5, 3, 6, 100)  # the longer run came out faster: no negative step time
    assert noisy["per_step"] == 0.0 and noisy["fixed"] == 2.0


def _wheel(folder: Path, name: str = "diffusemix_probe", version: str = "0.1") -> Path:
    """A minimal pure-Python wheel, made by hand (nothing downloaded)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}-{version}-py3-none-any.whl"
    info = f"{name}-{version}.dist-info"
    files = {
        f"{name}.py": "VALUE = 42\n",
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: hand\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    files[f"{info}/RECORD"] = "".join(f"{k},,\n" for k in files) + f"{info}/RECORD,,\n"
    with zipfile.ZipFile(path, "w") as z:
        for k, v in files.items():
            z.writestr(k, v)
    return path


def test_wheels_are_installed_offline_into_a_scratch_folder(tmp_path: Path) -> None:
    _wheel(tmp_path / "whl")
    rec = gpu_env.install_wheels(tmp_path / "whl", tmp_path / "site")
    assert rec["installed"] == ["diffusemix_probe==0.1"] and "error" not in rec, rec
    code = "import diffusemix_probe; print(diffusemix_probe.VALUE)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={"PYTHONPATH": str(tmp_path / "site")})  # fmt: skip
    assert done.stdout.strip() == "42"
    # a wheel of a distribution this interpreter already has at that version is left alone
    import importlib.metadata

    _wheel(tmp_path / "whl2", "pytest", importlib.metadata.version("pytest"))
    assert gpu_env.install_wheels(tmp_path / "whl2", tmp_path / "site2")["present"] == [
        f"pytest=={importlib.metadata.version('pytest')}"
    ]
    empty = gpu_env.install_wheels(tmp_path / "none", tmp_path / "site3")
    assert "no .whl files" in empty["error"] and "pip download" in empty["error"]


def test_the_documented_wheel_command_names_what_the_gpu_machine_lacks() -> None:
    for text in (gpu_env.WHEELS_COMMAND, (ROOT / "scripts" / "gpu_check.sh").read_text()):
        assert "diffusers==0.42.1" in text and "DeepCache==0.1.1" in text and "--python-version 3.12" in text
    pins = (ROOT / "requirements.txt").read_text()
    assert "diffusers==0.42.1" in pins and "DeepCache==0.1.1" in pins  # the same versions the project pins


def test_each_test_result_is_written_as_it_ends(tmp_path: Path) -> None:
    (tmp_path / "test_probe.py").write_text(
        "import pytest\n"
        "def test_a(record_property):\n    record_property('batch_max', 3)\n"
        "def test_b():\n    assert 40 <= 8, 'too far'\n"
        "@pytest.mark.skip(reason='needs a CUDA GPU')\ndef test_c():\n    pass\n"
        "@pytest.fixture\ndef broken():\n    raise RuntimeError('no device')\n"
        "def test_d(broken):\n    pass\n"
    )
    lines = tmp_path / "tests.jsonl"
    env = {**os.environ, "DIFFUSEMIX_TEST_LOG": str(lines), "PYTHONPATH": str(ROOT / "bench")}
    subprocess.run([sys.executable, "-m", "pytest", "-p", "gpu_pytest_plugin", "-p", "no:cacheprovider", "-q",
                    str(tmp_path / "test_probe.py")], cwd=tmp_path, env=env, capture_output=True, timeout=120)  # fmt: skip
    got = gpu_check.read_test_log(lines)
    assert got["summary"] == {"passed": 1, "failed": 1, "skipped": 1, "errors": 1}
    by = {t["name"]: t for t in got["tests"]}
    assert by["test_a"]["properties"] == {"batch_max": 3} and by["test_a"]["message"] == ""
    assert by["test_b"]["message"].startswith("AssertionError: too far")
    assert by["test_c"]["message"] == "needs a CUDA GPU"
    assert by["test_d"]["message"] == "RuntimeError: no device"
    lines.write_text(lines.read_text() + '{"name": "cut by a ki')  # a line cut by a kill is left out
    assert len(gpu_check.read_test_log(lines)["tests"]) == 4


def test_report_ratios_and_shares_of_peak() -> None:
    def cell(setting: str, batch: int, per_image: float, dtype: str = "float16", **kw) -> dict:
        return {"kind": "cell", "status": "ok", "setting": setting, "batch": batch, "dtype": dtype,
                "per_image_s": per_image, "per_step_s": 0.01, "fixed_s": 0.1, "images_per_s": 1 / per_image,
                "step_per_image_s": per_image / 100, **kw}  # fmt: skip

    merged = {
        "mode": "gpu",
        "parts": {
            "env": {"steps": [
                {"name": "devices", "status": "ok", "gpu": "NVIDIA H200", "datasheet_tflops_16bit": 989.0},
                {"name": "matmul", "status": "ok", "float16_tflops": 800.0, "bfloat16_tflops": 780.0, "size": 8192},
            ]},
            "fullsize": {"plan": {"size": 256}, "steps": [
                {"kind": "flops_meta", "status": "ok", "paper_per_image": 54.9e12, "unet_step": 540e9,
                 "vae_encode": 273e9, "vae_decode": 622e9},
                {"kind": "flops", "status": "ok", "setting": "fast", "flops_per_image": 5e12},
                cell("authors", 1, 2.0),
                cell("paper", 1, 1.5, working_gb=0.5),
                cell("paper", 8, 0.5, working_gb=1.2),
                cell("paper-bf16", 8, 0.4, dtype="bfloat16"),
                cell("fast", 8, 0.05),
                {"kind": "syncs", "status": "ok", "syncs_per_step": 1.0},
            ]},
        },
    }  # fmt: skip
    r = gpu_report.ratios(merged)
    assert r["paper_vs_authors"] == {1: pytest.approx(2.0 / 1.5), 8: pytest.approx(4.0)}
    assert r["bf16_vs_paper"][8] == pytest.approx(1.25) and r["bf16_vs_paper"][1] is None
    assert r["fast_vs_paper"][8] == pytest.approx(10.0)
    assert r["flop_limit_s_per_image_fp16"] == pytest.approx(54.9e12 / 800e12)
    assert r["paper_best"]["batch"] == 8
    assert r["paper_working_memory_gb"]["per_extra_sample"] == pytest.approx(0.1)
    assert r["gpu_seconds_per_pair_step"] == {"batch": 8, "seconds": 0.005}
    cs = gpu_report.cells(merged)
    assert cs[("paper", 8)]["tflops"] == pytest.approx(54.9 / 0.5)
    assert cs[("paper", 8)]["share_of_measured_peak"] == pytest.approx(54.9 / 0.5 / 800)
    assert cs[("paper-bf16", 8)]["share_of_measured_peak"] == pytest.approx(54.9 / 0.4 / 780)
    assert cs[("fast", 8)]["tflops"] == pytest.approx(5 / 0.05)  # its own count, not the paper's
    md = gpu_report.markdown(merged)
    assert "# GPU check: NVIDIA H200" in md
    assert "| paper | float16 | 8 | 10.0 | 0.100 | 0.5 | 2 | n/a | 110 | 14 % | 4.00× |" in md
    assert "B=8: 4.00×" in md and "host-device synchronisations per denoising step (editor, batch 1): 1" in md
