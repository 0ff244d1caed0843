"""One command that proves the project on a GPU and measures it, within a time budget.

    bash scripts/gpu_check.sh OUT [--wheels DIR] [--budget 420]     # on a machine with a GPU
    bash scripts/gpu_check.sh OUT --cpu-smoke                       # anywhere, in seconds (CI)

Writes ``OUT/gpu_check.json`` (everything), ``OUT/gpu_check.md`` (the tables),
``OUT/gpu_check.log`` (the parts' output) and ``OUT/parts/<part>.json``.

Parts, each in its own process, in this order, with their share of the budget
(seconds; a part may use what the parts before it left unused, never what the
parts after it are owed; a budget below their sum shrinks every share alike):

  env       30   GPU, memory, driver, versions, the project's imports, matrix-product ceilings
  tests     120  pytest -m cuda tests/test_cuda.py (dtype and device, batch vs alone, auto
                 batch size, forced out-of-memory, pinned loader, the fast levers)
  fullsize  240  the full-size InstructPix2Pix: authors' loop vs paper (fp16, bf16) and fast at
                 batch 1, 8, 32, 64; levers (channels_last, attention, torch.compile) if time is left

A part that fails or runs over is recorded and the next one runs; each part
rewrites its JSON after every step and the report is rebuilt every few seconds,
so a run stopped at any moment leaves what it had measured. The default budget
(420 s) leaves room in an 8-minute slot for starting the machine and copying.
Wheels (``--wheels DIR``) are installed offline into a scratch folder first
(see bench/gpu_env.py for the one command that fills DIR).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

from gpu_parts import PartLog, error_record, now_iso  # noqa: E402

#: (part, share of the budget in seconds), in the order they run.
PARTS: tuple[tuple[str, int], ...] = (("env", 30), ("tests", 120), ("fullsize", 240))
#: The same for --cpu-smoke (tiny model on the CPU; generous, for a busy shared CI machine).
SMOKE_PARTS: tuple[tuple[str, int], ...] = (("env", 60), ("tests", 120), ("fullsize", 400))
#: Seconds kept at the end for the report; and granted to a part past its deadline before it is killed.
REPORT_S, GRACE_S = 5, 15

ENV = {
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "DIFFUSERS_VERBOSITY": "error",
    "GRADIO_ANALYTICS_ENABLED": "False",
    "PYTHONUNBUFFERED": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


# ---------------------------------------------------------------------------
# running a part in its own process


#: The part running now (its process group is ended if the check itself is stopped).
_RUNNING: list[subprocess.Popen] = []


@dataclass
class ChildResult:
    status: str  # ok, failed, timeout
    returncode: int | None
    seconds: float


def run_child(
    cmd: list[str], *, timeout: float, log_file: Path, env: dict[str, str], on_tick=None, tick_s: float = 5.0
) -> ChildResult:
    """Run ``cmd`` in a new session, its output appended to ``log_file``; past
    ``timeout`` seconds the whole process group gets SIGTERM, then SIGKILL.
    ``on_tick()`` runs every ``tick_s`` seconds while it runs (the report refresh)."""
    t0 = time.time()
    with open(log_file, "ab") as log:
        log.write(f"\n=== {now_iso()} $ {' '.join(cmd)}\n".encode())
        log.flush()
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT, start_new_session=True)
        _RUNNING[:] = [proc]
        status = "ok"
        while True:
            left = timeout - (time.time() - t0)
            try:
                proc.wait(timeout=max(0.05, min(tick_s, left)))
                break
            except subprocess.TimeoutExpired:
                if time.time() - t0 >= timeout:
                    status = "timeout"
                    _kill_group(proc)
                    break
                if on_tick is not None:
                    on_tick()
    _RUNNING.clear()
    rc = proc.returncode
    if status == "ok" and rc != 0:
        status = "failed"
    return ChildResult(status, rc, round(time.time() - t0, 2))


def _kill_group(proc: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


# ---------------------------------------------------------------------------
# the tests part


def read_test_log(path: Path) -> dict[str, Any]:
    """Counts and one record per test from the plugin's JSON lines (bench/gpu_pytest_plugin.py)."""
    tests = []
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                tests.append(json.loads(line))
            except ValueError:  # a line cut by a kill
                continue
    counts: dict[str, int] = {}
    for t in tests:
        counts[t["outcome"]] = counts.get(t["outcome"], 0) + 1
    return {"summary": counts, "tests": tests}


def part_tests(log: PartLog, *, out: Path, deadline: float) -> None:
    """pytest -m cuda tests/test_cuda.py; each test's result reaches the part's JSON as it ends."""
    with tempfile.TemporaryDirectory() as tmp:
        lines = Path(tmp) / "tests.jsonl"
        cmd = [sys.executable, "-m", "pytest", "-m", "cuda", "tests/test_cuda.py", "-p", "no:cacheprovider",
               "-p", "gpu_pytest_plugin", "-o", "faulthandler_timeout=60", "-rA"]  # fmt: skip
        log.set(command=" ".join(cmd[2:]))
        env = {**os.environ, "DIFFUSEMIX_TEST_LOG": str(lines)}
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(BENCH), env.get("PYTHONPATH", "")) if p)
        res = run_child(cmd, timeout=max(5.0, deadline - time.time()), log_file=out / "gpu_check.log", env=env,
                        on_tick=lambda: log.set(**read_test_log(lines)), tick_s=2.0)  # fmt: skip
        result = read_test_log(lines)
    bad = result["summary"].get("failed", 0) + result["summary"].get("errors", 0)
    status = "ok" if res.status == "ok" or res.returncode == 5 else res.status
    fields: dict[str, Any] = {"returncode": res.returncode, **result}
    if res.status == "timeout":
        fields["reason"] = "pytest was stopped at the part's deadline; the tests listed had ended"
    log.finish("ok" if status == "ok" and not bad else "error", **fields)


# ---------------------------------------------------------------------------
# the orchestrator


def _part_main(name: str, out: Path, *, smoke: bool, deadline: float) -> int:
    log = PartLog(out / "parts" / f"{name}.json", name)
    try:
        if name == "env":
            import gpu_env

            gpu_env.run(log, smoke=smoke, deadline=deadline)
        elif name == "tests":
            part_tests(log, out=out, deadline=deadline)
            return 0
        elif name == "fullsize":
            import gpu_fullsize

            gpu_fullsize.run(log, smoke=smoke, deadline=deadline)
        else:
            raise ValueError(f"unknown part {name!r}")
        if log.data["status"] == "running":
            failed = [s["name"] for s in log.data.get("steps", []) if s.get("status") == "error"]
            log.finish("error" if failed else "ok", **({"failed_steps": failed} if failed else {}))
    except Exception as exc:
        log.finish("error", **error_record(exc))
        raise
    return 0


def merge(out: Path, state: dict[str, Any]) -> dict[str, Any]:
    """The orchestrator's record plus every part's JSON, written as gpu_check.json and .md."""
    import gpu_report

    merged = dict(state)
    merged["seconds"] = round(time.time() - state["t0"], 1)
    merged["parts"] = {}
    for name, _ in state["plan"]:
        path = out / "parts" / f"{name}.json"
        if path.exists():
            try:
                merged["parts"][name] = json.loads(path.read_text(encoding="utf-8"))
            except ValueError as exc:  # a half-written file cannot happen (rename), but never lose the report
                merged["parts"][name] = {"status": "unreadable", "error": str(exc)}
    try:
        merged["ratios"] = gpu_report.ratios(merged)
        text = gpu_report.markdown(merged)
    except Exception as exc:  # the report must never lose the measurements
        merged["report_error"] = error_record(exc)
        text = f"# GPU check\n\nthe report could not be made: {merged['report_error']['error']}\n"
    _write(out / "gpu_check.json", json.dumps(merged, indent=1, default=str))
    _write(out / "gpu_check.md", text)
    return merged


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path, help="folder for gpu_check.json, gpu_check.md, gpu_check.log, parts/")
    ap.add_argument("--cpu-smoke", action="store_true", help="run every part on the CPU with the tiny model")
    ap.add_argument("--wheels", type=Path, default=None, help="folder of wheels to install offline when missing")
    ap.add_argument("--budget", type=float, default=None, help="seconds for the whole check (default 420; smoke 600)")
    ap.add_argument("--only", default="", help="comma-separated parts to run (default: all)")
    ap.add_argument("--part", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--deadline", type=float, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    out: Path = args.out.resolve()
    (out / "parts").mkdir(parents=True, exist_ok=True)
    if args.part:
        return _part_main(args.part, out, smoke=args.cpu_smoke, deadline=args.deadline or time.time() + 60)

    t0 = time.time()
    budget = args.budget if args.budget is not None else (600.0 if args.cpu_smoke else 420.0)
    only = {p for p in args.only.split(",") if p}
    plan = [(n, s) for n, s in (SMOKE_PARTS if args.cpu_smoke else PARTS) if not only or n in only]
    state: dict[str, Any] = {
        "mode": "cpu-smoke" if args.cpu_smoke else "gpu",
        "started": now_iso(),
        "budget_s": budget,
        "t0": t0,
        "plan": plan,
        "runs": [],
        "command": " ".join([sys.executable, *sys.argv]),
    }
    env = {**os.environ, **ENV}
    paths = [str(ROOT)]  # the checkout's diffusemix, not an installed copy
    if args.wheels is not None:
        import gpu_env

        site_packages = Path(tempfile.mkdtemp(prefix="diffusemix-wheels-"))
        state["wheels"] = gpu_env.install_wheels(args.wheels.resolve(), site_packages)
        paths.insert(0, str(site_packages))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (*paths, env.get("PYTHONPATH", "")) if p)
    log_file = out / "gpu_check.log"
    hard_end = t0 + budget - REPORT_S

    def stop(signum: int, _frame: Any) -> None:  # a caller's timeout: end the running part, leave the report
        for proc in list(_RUNNING):
            _kill_group(proc)
        state["runs"].append({"part": "check", "status": f"stopped by signal {signum}", "seconds": time.time() - t0})
        merge(out, state)
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    # a budget below the sum of the shares shrinks every share alike
    scale = min(1.0, max(0.0, hard_end - t0) / max(1, sum(s for _, s in plan)))
    state["share_scale"] = round(scale, 3)
    ok = True
    for i, (name, share) in enumerate(plan):
        owed_later = scale * sum(s for _, s in plan[i + 1 :])
        deadline = hard_end - owed_later
        left = deadline - time.time()
        run: dict[str, Any] = {"part": name, "share_s": share}
        if left < 5:
            run.update(status="skipped", seconds=0, note=f"time budget: {left:.0f} s left for it")
            state["runs"].append(run)
            merge(out, state)
            ok = False
            continue
        print(f"[gpu_check] {name}: up to {left:.0f} s (share {share} s) ...", flush=True)
        cmd = [sys.executable, str(Path(__file__).resolve()), str(out), "--part", name, "--deadline", f"{deadline:.1f}"]
        cmd += ["--cpu-smoke"] if args.cpu_smoke else []
        res = run_child(cmd, timeout=left + GRACE_S, log_file=log_file, env=env, on_tick=lambda: merge(out, state))
        run.update(status=res.status, seconds=res.seconds, returncode=res.returncode)
        part_file = out / "parts" / f"{name}.json"
        part_status = json.loads(part_file.read_text())["status"] if part_file.exists() else "no record"
        if res.status == "timeout":
            run["note"] = "killed at its deadline; what it wrote before is kept"
        elif part_status not in ("ok", "skipped"):
            run["note"] = f"part status: {part_status} (see parts/{name}.json and gpu_check.log)"
        ok = ok and res.status == "ok" and part_status in ("ok", "skipped")
        state["runs"].append(run)
        merge(out, state)
        print(f"[gpu_check] {name}: {res.status}, part {part_status}, {res.seconds:.0f} s", flush=True)
    merged = merge(out, state)
    devices = next((s for s in merged["parts"].get("env", {}).get("steps", []) if s.get("name") == "devices"), {})
    if not args.cpu_smoke and devices.get("cuda_available") is False:
        ok = False
        print("[gpu_check] no CUDA device here: the GPU parts were skipped (use --cpu-smoke on a CPU)", flush=True)
    print((out / "gpu_check.md").read_text(encoding="utf-8"), flush=True)
    print(f"[gpu_check] {'all parts ok' if ok else 'some parts failed or were skipped'}; {merged['seconds']:.0f} s;"
          f" wrote {out}/gpu_check.json and gpu_check.md", flush=True)  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
