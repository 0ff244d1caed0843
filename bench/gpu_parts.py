"""What the parts of the GPU check share: a record written to disk after every
change, and a runner that isolates each step and keeps to a deadline.

A part (environment, CUDA tests, full-size bench) runs in its own process and
owns one JSON file (``OUT/parts/<part>.json``). :class:`PartLog` rewrites it
atomically after every item, so a part that is killed, or a device call that
times out, still leaves everything measured up to then. :func:`run_steps` runs
a list of named steps: a step that raises is recorded with its error and the
next one runs; a step whose estimated time does not fit before the deadline is
recorded as skipped, with the reason.

Standard library only: the orchestrator imports it before any package is
installed from the wheel folder.
"""

from __future__ import annotations

import json
import os
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["PartLog", "Step", "run_steps", "error_record", "now_iso"]


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def error_record(exc: BaseException, *, frames: int = 6) -> dict[str, str]:
    """An exception as JSON: its type and first line, and the last frames of its traceback."""
    text = str(exc).strip().splitlines()
    tb = traceback.format_exception(type(exc), exc, exc.__traceback__)
    return {
        "error": f"{type(exc).__name__}: {text[0] if text else ''}"[:500],
        "traceback": "".join(tb[-frames:])[-3000:],
    }


class PartLog:
    """One part's record, a JSON object rewritten (write, then rename) after every change.

    Keys: ``part``, ``status`` (running, ok, error, skipped), ``started``,
    ``seconds`` and whatever the part adds with :meth:`set` and :meth:`add`.
    """

    def __init__(self, path: str | os.PathLike[str], part: str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._t0 = time.time()
        self.data: dict[str, Any] = {"part": part, "status": "running", "started": now_iso(), "seconds": 0.0}
        self.flush()

    def set(self, **fields: Any) -> None:
        self.data.update(fields)
        self.flush()

    def add(self, key: str, item: dict[str, Any]) -> None:
        self.data.setdefault(key, []).append(item)
        self.flush()

    def finish(self, status: str = "ok", **fields: Any) -> None:
        self.set(status=status, **fields)

    def flush(self) -> None:
        self.data["seconds"] = round(time.time() - self._t0, 2)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(self.data, indent=1, default=_jsonable), encoding="utf-8")
        os.replace(tmp, self.path)


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy / torch scalars
        return value.item()
    return str(value)


@dataclass
class Step:
    """A named piece of work: ``run()`` returns a JSON-able dict; ``estimate_s``
    is how long it should take (it is skipped when that does not fit)."""

    name: str
    run: Callable[[], dict[str, Any]]
    estimate_s: float = 5.0
    #: Fields written into the record whatever happens (the setting, the batch size, ...).
    labels: dict[str, Any] | None = None


def run_steps(
    steps: Iterable[Step],
    log: PartLog,
    *,
    key: str,
    deadline: float,
    after_error: Callable[[], None] | None = None,
    clock: Callable[[], float] = time.time,
) -> list[dict[str, Any]]:
    """Run ``steps`` in order, each isolated; append each one's record to ``log[key]``.

    A record is ``{"name", "status", "seconds", **labels, **result}`` with
    status ``ok``, ``error`` (plus ``error`` and ``traceback``) or ``skipped``
    (plus ``reason``). ``after_error()`` runs after a failed step (e.g. to give
    cached GPU memory back). ``steps`` may be a generator: a later step can be
    planned from an earlier one's result.
    """
    records = []
    for step in steps:
        rec: dict[str, Any] = {"name": step.name, **(step.labels or {})}
        left = deadline - clock()
        if step.estimate_s > left:
            reason = f"time budget: {left:.0f} s left, needs about {step.estimate_s:.0f} s"
            rec.update(status="skipped", seconds=0.0, reason=reason)
        else:
            t0 = clock()
            try:
                rec.update(step.run() or {})
                rec["status"] = "ok"
            except Exception as exc:  # isolate: record it and go on
                rec.update(status="error", **error_record(exc))
                if after_error is not None:
                    try:
                        after_error()
                    except Exception as again:  # pragma: no cover - a broken device
                        rec["after_error"] = error_record(again)["error"]
            rec["seconds"] = round(clock() - t0, 3)
        log.add(key, rec)
        records.append(rec)
    return records
