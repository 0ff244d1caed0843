"""The GPU check's report: the ratios the README's performance table needs,
computed from the parts' records, and one markdown page of tables.

Pure functions of the merged record (``gpu_check.json``); standard library only.
"""

from __future__ import annotations

from typing import Any

__all__ = ["cells", "ratios", "markdown"]

SETTING_ORDER = ("authors", "paper", "paper-bf16", "fast")


def _part(merged: dict[str, Any], name: str) -> dict[str, Any]:
    return merged.get("parts", {}).get(name) or {}


def _steps(merged: dict[str, Any], part: str, kind: str | None = None) -> list[dict[str, Any]]:
    steps = _part(merged, part).get("steps", [])
    return [s for s in steps if kind is None or s.get("kind") == kind]


def _env(merged: dict[str, Any], step: str) -> dict[str, Any]:
    for s in _steps(merged, "env"):
        if s.get("name") == step and s.get("status") == "ok":
            return s
    return {}


def cells(merged: dict[str, Any]) -> dict[tuple[str, int], dict[str, Any]]:
    """The bench's measured cells by (setting, batch), with TFLOP/s and shares of peak added."""
    flops = {s["setting"]: s["flops_per_image"] for s in _steps(merged, "fullsize", "flops") if s.get("status") == "ok"}
    meta = next((s for s in _steps(merged, "fullsize", "flops_meta") if s.get("status") == "ok"), {})
    matmul, devices = _env(merged, "matmul"), _env(merged, "devices")
    out = {}
    for c in _steps(merged, "fullsize", "cell"):
        if c.get("status") != "ok" or not c.get("per_image_s"):
            continue
        c = dict(c)
        f = flops.get(c["setting"]) or (meta.get("paper_per_image") if c["setting"] != "fast" else None)
        if f:
            c["flops_per_image"] = f
            c["tflops"] = f / c["per_image_s"] / 1e12
            peak = matmul.get(f"{c.get('dtype')}_tflops")
            if peak:
                c["share_of_measured_peak"] = c["tflops"] / peak
            sheet = devices.get("datasheet_tflops_16bit")
            if sheet and c.get("dtype") in ("float16", "bfloat16"):
                c["share_of_datasheet_peak"] = c["tflops"] / sheet
        out[(c["setting"], int(c["batch"]))] = c
    return out


def _ratio(a: dict[str, Any] | None, b: dict[str, Any] | None) -> float | None:
    """How many times faster ``b`` is than ``a`` per Î (a's seconds over b's)."""
    if not a or not b or not b.get("per_image_s"):
        return None
    return a["per_image_s"] / b["per_image_s"]


def ratios(merged: dict[str, Any]) -> dict[str, Any]:
    """What the README's performance table and the project's constants need."""
    cs = cells(merged)
    batches = sorted({b for (_, b) in cs})
    authors = cs.get(("authors", 1))
    out: dict[str, Any] = {
        "paper_vs_authors": {b: _ratio(authors, cs.get(("paper", b))) for b in batches},
        "bf16_vs_paper": {b: _ratio(cs.get(("paper", b)), cs.get(("paper-bf16", b))) for b in batches},
        "fast_vs_paper": {b: _ratio(cs.get(("paper", b)), cs.get(("fast", b))) for b in batches},
        "paper_batch_vs_batch1": {b: _ratio(cs.get(("paper", 1)), cs.get(("paper", b))) for b in batches},
    }
    meta = next((s for s in _steps(merged, "fullsize", "flops_meta") if s.get("status") == "ok"), {})
    matmul = _env(merged, "matmul")
    paper = [cs[k] for k in cs if k[0] == "paper"]
    if meta.get("paper_per_image") and matmul.get("float16_tflops"):
        limit = meta["paper_per_image"] / (matmul["float16_tflops"] * 1e12)
        out["flop_limit_s_per_image_fp16"] = limit
        if paper:
            best = min(paper, key=lambda c: c["per_image_s"])
            out["paper_best"] = {"batch": best["batch"], "per_image_s": best["per_image_s"],
                                 "times_the_flop_limit": best["per_image_s"] / limit}  # fmt: skip
    mem = sorted((c["batch"], c["working_gb"]) for c in paper if c.get("working_gb") is not None)
    if len(mem) >= 2 and mem[-1][0] > mem[0][0]:
        per_extra = (mem[-1][1] - mem[0][1]) / (mem[-1][0] - mem[0][0])
        out["paper_working_memory_gb"] = {"first_sample": mem[0][1] - (mem[0][0] - 1) * per_extra,
                                          "per_extra_sample": per_extra, "by_batch": dict(mem)}  # fmt: skip
    for b in (8, *batches):
        if ("paper", b) in cs:
            out["gpu_seconds_per_pair_step"] = {"batch": b, "seconds": cs[("paper", b)]["step_per_image_s"]}
            break
    syncs = next((s for s in _steps(merged, "fullsize", "syncs") if s.get("status") == "ok"), {})
    if "syncs_per_step" in syncs:
        out["syncs_per_step_batch1"] = syncs["syncs_per_step"]
    levers = {s.get("lever"): s for s in _steps(merged, "fullsize", "lever") if s.get("status") == "ok"}
    if "as is" in levers:
        out["levers_vs_as_is"] = {
            k: _ratio(levers["as is"], v) for k, v in levers.items() if k != "as is" and v.get("per_image_s")
        }
    return out


# ---------------------------------------------------------------------------
# markdown


def _f(value: Any, fmt: str = ".3g", unit: str = "") -> str:
    if value is None:
        return "n/a"
    if isinstance(value, (int, float)):
        return f"{value:{fmt}}{unit}"
    return str(value)


def _x(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}×"


def markdown(merged: dict[str, Any]) -> str:
    smoke = merged.get("mode") == "cpu-smoke"
    devices = _env(merged, "devices")
    versions = _env(merged, "versions")
    gpu = devices.get("gpu") or "no GPU"
    lines = [
        f"# GPU check: {gpu}, {merged.get('started', '')[:10]}",
        "",
        f"Mode **{merged.get('mode')}**"
        + (" (CPU, the tests' tiny model: proves the script; its figures mean nothing)" if smoke else "")
        + f"; budget {merged.get('budget_s')} s, used {_f(merged.get('seconds'), '.0f')} s."
        + " Per-Î times are **extrapolated** from a few timed steps (see bench/gpu_fullsize.py).",
        "",
        "## Parts",
        "",
        "| part | status | seconds | share of the budget (s) | note |",
        "|---|---|---|---|---|",
    ]
    for run in merged.get("runs", []):
        lines.append(f"| {run['part']} | {run['status']} | {_f(run.get('seconds'), '.0f')} | {run.get('share_s')} |"
                     f" {run.get('note', '')} |")  # fmt: skip
    lines += ["", "## Environment", "", "| | |", "|---|---|"]
    for key in ("gpu", "gpu_memory_gb", "capability", "multiprocessors", "driver", "torch_cuda", "cudnn", "python",
                "cpus", "datasheet_tflops_16bit", "tf32_matmul", "tf32_cudnn"):  # fmt: skip
        if key in devices:
            lines.append(f"| {key} | {devices[key]} |")
    for key in ("torch", "diffusers", "transformers", "huggingface_hub", "accelerate", "DeepCache", "numpy"):
        if key in versions:
            lines.append(f"| {key} | {versions[key]} |")
    matmul = _env(merged, "matmul")
    for key in ("float16_tflops", "bfloat16_tflops", "cpu_float32_tflops"):
        if key in matmul:
            lines.append(f"| matrix product, {key.replace('_tflops', '')} ({matmul.get('size')}³, measured) |"
                         f" {matmul[key]} TFLOP/s |")  # fmt: skip
    wheels = merged.get("wheels")
    if wheels:
        lines.append(f"| wheels installed | {', '.join(wheels.get('installed', [])) or 'none'}"
                     + (f"; error: {wheels['error']}" if wheels.get("error") else "") + " |")  # fmt: skip
    for s in _steps(merged, "env"):
        if s.get("status") != "ok":
            lines.append(f"| step {s['name']} | {s.get('status')}: {s.get('error', s.get('reason', ''))} |")

    tests = _part(merged, "tests")
    lines += ["", "## CUDA tests (`pytest -m cuda tests/test_cuda.py`)", ""]
    if tests.get("summary"):
        lines.append(", ".join(f"{v} {k}" for k, v in tests["summary"].items()) + ".")
        lines += ["", "| test | outcome | seconds | measured / message |", "|---|---|---|---|"]
        for t in tests.get("tests", []):
            extra = ", ".join(f"{k}={v}" for k, v in t.get("properties", {}).items())
            msg = t.get("message", "")
            lines.append(f"| {t['name']} | {t['outcome']} | {_f(t.get('seconds'), '.1f')} |"
                         f" {'; '.join(x for x in (extra, msg) if x)} |")  # fmt: skip
    else:
        lines.append(f"not run: {tests.get('reason') or tests.get('error') or tests.get('status', 'no record')}")

    lines += _bench_lines(merged)
    return "\n".join(lines) + "\n"


def _bench_lines(merged: dict[str, Any]) -> list[str]:
    part = _part(merged, "fullsize")
    plan = part.get("plan", {})
    lines = ["", f"## Full-size InstructPix2Pix, random weights, {plan.get('size', '?')} px", ""]
    if not part:
        return lines + ["not run."]
    if part.get("status") == "skipped":
        return lines + [f"skipped: {part.get('reason')}"]
    meta = next((s for s in _steps(merged, "fullsize", "flops_meta") if s.get("status") == "ok"), {})
    if meta:
        lines.append(f"FLOPs per Î (meta device, 100 steps, three-way guidance):"
                     f" **{meta['paper_per_image'] / 1e12:.1f} TFLOP**"
                     f" (UNet step {meta['unet_step'] / 1e9:.0f} GFLOP,"
                     f" VAE encode {meta['vae_encode'] / 1e9:.0f} + decode {meta['vae_decode'] / 1e9:.0f} GFLOP).")  # fmt: skip
    for s in _steps(merged, "fullsize", "flops"):
        if s.get("status") == "ok":
            lines.append(f"- {s['setting']}: {s['flops_per_image'] / 1e12:.2f} TFLOP per Î counted on its own run.")
    cs = cells(merged)
    authors = cs.get(("authors", 1))
    lines += [
        "",
        "| setting | dtype | batch | ms per step (batch) | fixed s (batch) | s per Î, extrapolated | Î/s |"
        " peak GB | TFLOP/s | % of measured peak | vs the authors' loop |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in SETTING_ORDER:
        for (setting, b), c in sorted(cs.items(), key=lambda kv: kv[0][1]):
            if setting != name:
                continue
            share = c.get("share_of_measured_peak")
            lines.append(
                f"| {name} | {c.get('dtype')} | {b} | {c['per_step_s'] * 1e3:.1f} | {c['fixed_s']:.3f} |"
                f" {c['per_image_s']:.4g} | {_f(c.get('images_per_s'), '.3g')} | {_f(c.get('peak_gb'), '.2f')} |"
                f" {_f(c.get('tflops'), '.0f')} | {_f(None if share is None else 100 * share, '.0f', ' %')} |"
                f" {_x(_ratio(authors, c))} |"
                + (f" (out of memory at {c['oom_split_at']}: split)" if c.get("oom_split_at") else "")
            )
    failed = [s for s in _steps(merged, "fullsize") if s.get("status") in ("error", "skipped")]
    if failed:
        lines += ["", "Steps not measured:", ""]
        lines += [f"- {s['name']}: {s['status']}: {s.get('error') or s.get('reason')}" for s in failed]
    levers = [s for s in _steps(merged, "fullsize", "lever") if s.get("status") == "ok"]
    if levers:
        lines += ["", f"Levers on the paper preset at batch {levers[0].get('batch')}:", "",
                  "| lever | s per Î | vs as is | note |", "|---|---|---|---|"]  # fmt: skip
        base = next((lv for lv in levers if lv.get("lever") == "as is"), None)
        for lv in levers:
            note = f"compiling took {lv['compile_s']} s" if "compile_s" in lv else ""
            lines.append(f"| {lv.get('lever')} | {lv['per_image_s']:.4g} | {_x(_ratio(base, lv))} | {note} |")
    r = ratios(merged)
    lines += ["", "## Ratios for the README", ""]
    for key, label in (
        ("paper_vs_authors", "paper preset vs the authors' loop, per batch size"),
        ("bf16_vs_paper", "bfloat16 vs float16 (paper preset)"),
        ("fast_vs_paper", "fast vs paper"),
        ("paper_batch_vs_batch1", "paper preset at batch B vs batch 1"),
    ):
        vals = r.get(key, {})
        lines.append(f"- {label}: " + (", ".join(f"B={b}: {_x(v)}" for b, v in vals.items()) or "n/a"))
    if "flop_limit_s_per_image_fp16" in r:
        best = r.get("paper_best", {})
        lines.append(f"- FLOP limit at the measured float16 peak: {r['flop_limit_s_per_image_fp16']:.4f} s per Î;"
                     f" the paper preset's best ({_f(best.get('per_image_s'), '.4g')} s at batch {best.get('batch')})"
                     f" is {_f(best.get('times_the_flop_limit'), '.1f')}× that")  # fmt: skip
    if "paper_working_memory_gb" in r:
        w = r["paper_working_memory_gb"]
        lines.append(f"- working memory beyond the weights (paper preset): {w['first_sample']:.3f} GB for the first"
                     f" sample, {w['per_extra_sample']:.3f} GB per extra one"
                     " (batching.WORKING_MEMORY on CUDA)")  # fmt: skip
    if "gpu_seconds_per_pair_step" in r:
        g = r["gpu_seconds_per_pair_step"]
        lines.append(f"- GPU seconds per (pair, step), paper preset at batch {g['batch']}: {g['seconds']:.5f}"
                     " (ui/zerogpu.py's GPU_STEP_SECONDS)")  # fmt: skip
    if "syncs_per_step_batch1" in r:
        syncs = r["syncs_per_step_batch1"]
        lines.append(f"- host-device synchronisations per denoising step (editor, batch 1): {syncs:g}")
    return lines
