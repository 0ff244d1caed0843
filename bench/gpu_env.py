"""The GPU check's environment part: the wheels a bare machine lacks, what the
machine is, which versions the project runs with, and the two matrix-product
ceilings (float16, bfloat16) that the bench's TFLOP/s are held against.

The wheel folder is filled beforehand, where pip can reach the registry (the
machine with the GPU may be offline)::

    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \\
        --platform manylinux2014_x86_64 -d .whl diffusers==0.42.1 DeepCache==0.1.1

Only what the machine lacks goes in it (no torch, no CUDA wheels): with the
GPU machine's image of 2026-11 (torch 2.11, transformers 5.17,
huggingface_hub 1.33, accelerate 1.15, safetensors 0.8.0) that is diffusers
(which needs huggingface_hub >= 1.32) and DeepCache, 6.5 MB together.
"""

from __future__ import annotations

import importlib
import importlib.metadata as metadata
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from gpu_parts import PartLog, Step, run_steps

__all__ = ["WHEELS_COMMAND", "DATASHEET_TFLOPS", "wheel_name", "install_wheels", "datasheet_peak", "run"]

#: The one command that fills the wheel folder (run where pip reaches the registry).
WHEELS_COMMAND = (
    "python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp"
    " --platform manylinux2014_x86_64 -d .whl diffusers==0.42.1 DeepCache==0.1.1"
)

#: Dense float16/bfloat16 tensor-core peaks from the vendors' datasheets (TFLOP/s,
#: no sparsity), by a substring of the device name, most specific first. Leads
#: only: the check measures the matrix-product ceiling on the card itself.
DATASHEET_TFLOPS: tuple[tuple[str, float], ...] = (
    ("H200", 989.0),
    ("H100 PCIe", 756.0),
    ("H100", 989.0),
    ("A100", 312.0),
    ("L40S", 362.0),
)

#: Distributions whose versions the report lists (the project's runtime needs).
PACKAGES = (
    "torch", "diffusers", "transformers", "huggingface_hub", "accelerate", "safetensors", "tokenizers",
    "DeepCache", "numpy", "pillow", "psutil", "pytest",
)  # fmt: skip

_WHEEL = re.compile(r"^(?P<name>[A-Za-z0-9_.]+?)-(?P<version>[^-]+)-.*\.whl$")


def wheel_name(filename: str) -> tuple[str, str] | None:
    """(distribution, version) from a wheel's file name, or None if it is not one."""
    m = _WHEEL.match(filename)
    return (m["name"], m["version"]) if m else None


def _installed(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def install_wheels(folder: Path, site: Path) -> dict[str, Any]:
    """Install the wheels of ``folder`` that this interpreter lacks (or has at
    another version) into ``site`` with pip, offline; returns what was done.
    The caller puts ``site`` first on PYTHONPATH for the parts."""
    record: dict[str, Any] = {"folder": str(folder), "site": str(site), "installed": [], "present": []}
    wheels = sorted(folder.glob("*.whl")) if folder.is_dir() else []
    if not wheels:
        record["error"] = f"no .whl files in {folder}; fill it with: {WHEELS_COMMAND}"
        return record
    todo = []
    for w in wheels:
        parsed = wheel_name(w.name)
        if parsed is None:
            continue
        have = _installed(parsed[0])
        if have == parsed[1]:
            record["present"].append(f"{parsed[0]}=={have}")
        else:
            todo.append(w)
            record["installed"].append(f"{parsed[0]}=={parsed[1]}" + (f" (over {have})" if have else ""))
    if todo:
        cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
               "--no-cache-dir", "--upgrade", "--target", str(site), *map(str, todo)]  # fmt: skip
        t0 = time.time()
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        record["seconds"] = round(time.time() - t0, 2)
        if done.returncode != 0:
            record["error"] = f"pip exited {done.returncode}: {done.stderr.strip()[-800:]}"
    return record


def datasheet_peak(name: str) -> float | None:
    for key, tflops in DATASHEET_TFLOPS:
        if key in name:
            return tflops
    return None


# ---------------------------------------------------------------------------
# the steps


def _devices() -> dict[str, Any]:
    import torch

    out: dict[str, Any] = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": len(os.sched_getaffinity(0)),
        "cuda_available": torch.cuda.is_available(),
        "torch_cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
    }
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        out.update(
            gpu=p.name,
            gpu_count=torch.cuda.device_count(),
            gpu_memory_gb=round(p.total_memory / 1e9, 1),
            capability=f"{p.major}.{p.minor}",
            multiprocessors=p.multi_processor_count,
            datasheet_tflops_16bit=datasheet_peak(p.name),
            tf32_matmul=torch.backends.cuda.matmul.allow_tf32,
            tf32_cudnn=torch.backends.cudnn.allow_tf32,
        )
    try:
        smi = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=15,
        )  # fmt: skip
        if smi.returncode == 0:
            out["nvidia_smi"] = smi.stdout.strip()
            out["driver"] = smi.stdout.strip().splitlines()[0].split(",")[-1].strip()
    except (OSError, subprocess.TimeoutExpired) as exc:
        out["nvidia_smi"] = f"not available ({type(exc).__name__})"
    return out


def _versions() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in PACKAGES:
        out[name] = _installed(name)
    for module in ("diffusers", "DeepCache", "transformers", "huggingface_hub"):
        try:
            out[f"{module}_from"] = str(Path(importlib.import_module(module).__file__).parent.parent)
        except Exception as exc:
            out[f"{module}_from"] = f"not importable: {type(exc).__name__}: {exc}"[:300]
    return out


def _imports() -> dict[str, Any]:
    """What the project imports on the GPU paths, each on its own."""
    checks = {
        "diffusers pipeline": "from diffusers import StableDiffusionInstructPix2PixPipeline, AutoencoderTiny",
        "DeepCache": "from DeepCache import DeepCacheSDHelper",
        "transformers CLIP": "from transformers import CLIPTextModel, CLIPTokenizer",
        "diffusemix editors": "from diffusemix.editors import load_editor, InstructPix2PixEditor",
        "diffusemix data": "from diffusemix.data import DiffuseMixDataset, to_tensor",
        "diffusemix export": "from diffusemix.export import export_dataset",
    }
    out, failed = {}, []
    for label, code in checks.items():
        try:
            exec(code, {})
            out[label] = "ok"
        except Exception as exc:
            out[label] = f"{type(exc).__name__}: {exc}"[:300]
            failed.append(label)
    if failed:
        raise ImportError(f"cannot import: {', '.join(failed)} ({out[failed[0]]})")
    return out


def _matmul_ceiling(smoke: bool) -> dict[str, Any]:
    """Dense matrix-product rate on random data (CUDA events, mean of 10 after 3 warm-ups)."""
    import torch

    if not torch.cuda.is_available():
        n = 256 if smoke else 1024
        a, b = torch.randn(n, n), torch.randn(n, n)
        t0 = time.perf_counter()
        for _ in range(3):
            a @ b
        return {"cpu_float32_tflops": round(3 * 2 * n**3 / (time.perf_counter() - t0) / 1e12, 4), "size": n}
    n, out = 8192, {"size": 8192}
    for dtype in ("float16", "bfloat16"):
        a = torch.randn(n, n, device="cuda", dtype=getattr(torch, dtype))
        b = torch.randn(n, n, device="cuda", dtype=getattr(torch, dtype))
        for _ in range(3):
            a @ b
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(10):
            a @ b
        end.record()
        end.synchronize()
        seconds = start.elapsed_time(end) / 1e3 / 10
        out[f"{dtype}_tflops"] = round(2 * n**3 / seconds / 1e12, 1)
        del a, b
    torch.cuda.empty_cache()
    return out


def run(log: PartLog, *, smoke: bool, deadline: float) -> None:
    """The environment part: devices, versions, imports, matrix-product ceilings."""
    run_steps(
        [
            Step("devices", _devices, 8),
            Step("versions", _versions, 5),
            Step("imports", _imports, 8),
            Step("matmul", lambda: _matmul_ceiling(smoke), 5),
        ],
        log,
        key="steps",
        deadline=deadline,
    )
