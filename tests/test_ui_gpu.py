"""The ZeroGPU shim of the app: the duration asked for is computed from the
request, and errors inside the GPU function are raised outside it."""

from __future__ import annotations

import sys
import types

import pytest

from diffusemix.errors import Cancelled, DiffuseMixError, EditorLoadError
from diffusemix.ui import shared, zerogpu


@pytest.fixture
def fake_spaces(monkeypatch):
    """A stand-in for the `spaces` package: records the duration and runs the function
    as ZeroGPU does (what it raises there is not what the user sees)."""
    seen = {}

    def GPU(duration=60):
        def deco(fn):
            def on_gpu(*args, **kwargs):
                seen["duration"] = duration(*args, **kwargs) if callable(duration) else duration
                try:
                    return fn(*args, **kwargs)
                except Exception as exc:  # ZeroGPU shows a generic error for what escapes here
                    raise RuntimeError("GPU task aborted") from exc

            return on_gpu

        return deco

    monkeypatch.setitem(sys.modules, "spaces", types.SimpleNamespace(GPU=GPU))
    monkeypatch.setitem(zerogpu.GPU_STEP_SECONDS, "estimate", 0.02)
    return seen


def test_duration_comes_from_the_request(fake_spaces):
    @zerogpu.gpu(duration=lambda pairs, steps: zerogpu.gpu_seconds(pairs, steps))
    def work(pairs, steps):
        return pairs * steps

    assert work(10, 100) == 1000
    assert fake_spaces["duration"] == zerogpu.GPU_BASE_SECONDS + 30  # 20 + 1.5 x 10 x 100 x 0.02
    work(1, 1)
    assert fake_spaces["duration"] == zerogpu.GPU_BASE_SECONDS + 1  # the margin rounds up
    work(10_000, 100)
    assert fake_spaces["duration"] == zerogpu.GPU_MAX_SECONDS


def test_errors_inside_the_gpu_function_are_raised_outside(fake_spaces):
    @zerogpu.gpu(duration=30)
    def fails(kind):
        if kind == "user":
            raise EditorLoadError("out of memory: lower the batch size")
        if kind == "cancel":
            raise Cancelled("edit cancelled")
        raise KeyError("bug")

    with pytest.raises(DiffuseMixError, match="out of memory: lower the batch size"):
        fails("user")
    with pytest.raises(Cancelled):
        fails("cancel")
    with pytest.raises(RuntimeError, match="KeyError"):
        fails("bug")


def test_without_spaces_the_function_runs_as_it_is(monkeypatch):
    monkeypatch.setitem(sys.modules, "spaces", None)

    @zerogpu.gpu(duration=30)
    def f(x):
        if x < 0:
            raise DiffuseMixError("negative")
        return x + 1

    assert f(1) == 2
    with pytest.raises(DiffuseMixError, match="negative"):
        f(-1)


def test_measured_time_replaces_the_estimate(monkeypatch):
    monkeypatch.setitem(zerogpu.GPU_STEP_SECONDS, "estimate", 0.01)
    zerogpu.record_gpu_time(12.0, pairs=4, steps=100)
    assert zerogpu.GPU_STEP_SECONDS["estimate"] == pytest.approx(0.03)
    zerogpu.record_gpu_time(0.0, pairs=4, steps=100)  # nothing timed: kept
    assert zerogpu.GPU_STEP_SECONDS["estimate"] == pytest.approx(0.03)
