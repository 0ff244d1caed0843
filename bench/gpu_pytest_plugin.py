"""A pytest plugin for the GPU check: one JSON line per test as soon as it ends.

    python -m pytest -p gpu_pytest_plugin ...      # bench/ on PYTHONPATH; the file in DIFFUSEMIX_TEST_LOG

Each line: ``name``, ``outcome`` (passed, failed, errors, skipped), ``seconds``,
``message`` (the skip reason, or the first ``E`` line of a failure) and
``properties`` (what the test gave ``record_property``). Unlike a junit report,
written only at the end, the lines survive a run that is killed at its deadline.
"""

from __future__ import annotations

import json
import os
from typing import Any

ENV = "DIFFUSEMIX_TEST_LOG"


def _message(report: Any) -> str:
    if report.skipped and isinstance(report.longrepr, tuple):
        return str(report.longrepr[2]).removeprefix("Skipped: ")[:300]
    text = getattr(report, "longreprtext", "") or ""
    for line in text.splitlines():
        if line.startswith("E "):
            return line[1:].strip()[:300]
    return text.strip().splitlines()[-1][:300] if text.strip() else ""


def pytest_runtest_logreport(report: Any) -> None:
    path = os.environ.get(ENV)
    if not path:
        return
    if report.when == "call":
        outcome = report.outcome
    elif report.when == "setup" and not report.passed:
        outcome = "skipped" if report.skipped else "errors"
    elif report.when == "teardown" and report.failed:
        outcome = "errors"
    else:
        return
    line = {
        "name": report.nodeid.split("::")[-1],
        "outcome": outcome,
        "seconds": round(report.duration, 3),
        "message": "" if outcome == "passed" else _message(report),
        "properties": {str(k): v for k, v in getattr(report, "user_properties", [])},
    }
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(line, default=str) + "\n")
