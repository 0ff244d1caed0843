"""The GPU check's bench: the full-size InstructPix2Pix (random weights, see
bench/gpu_model.py) at 256 px, the authors' loop against the project's presets
at several batch sizes.

1. Build the model on the GPU and save it once in float16 (bench/gpu_model.py);
   each setting loads it back, the presets through the editor's own path
   (``InstructPix2PixEditor(folder)``).
2. FLOPs per Î: counted on the meta device (UNet step on the three-way
   guidance batch, VAE encode and decode: about 54.9 TFLOP at 100 steps and
   256 px), and on the device for each setting's own run at batch 1
   (DeepCache's cached steps and the tiny VAE cost less), extrapolated like
   the time.
3. Settings: ``authors`` (one StableDiffusionInstructPix2PixPipeline call per
   (image, prompt), float16 on CUDA, a string prompt, guidance 4 / 1.5, no
   generator, as the reference code), ``paper`` (the editor's paper preset:
   float16 on CUDA), ``paper-bf16``, ``fast`` (20 steps, DeepCache interval 3,
   tiny VAE), each at every batch size (the authors' loop at 1: it does not
   batch). Per cell (bench/gpu_timing.py): a warm-up call at that batch size,
   then 3 and 6 steps (median of 3 calls each, CUDA events); seconds per step =
   the difference over 3, the rest fixed (encode, decode, text,
   pre/post-processing); the per-Î figure at 100 steps (20 for fast) is
   EXTRAPOLATED from those, as the CPU bench does. Peak memory per cell.
4. Levers on the paper preset at one batch size: channels_last on, the
   classic attention processor instead of SDPA, ``torch.compile`` (when the
   time left allows), and how many host-device synchronisations a step makes.

``--cpu-smoke`` runs every step on the CPU with the tests' tiny pipeline at
32 px, 1 and 2 steps: it proves the script, and its figures mean nothing.
"""

from __future__ import annotations

import gc
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from gpu_model import build_models, meta_flops, test_image
from gpu_parts import PartLog, Step, run_steps
from gpu_timing import count_flops, measure, sync_count

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the checkout's diffusemix

__all__ = ["Plan", "Setting", "plan_for", "settings_for", "Runner", "run"]

PROMPT = "make it snowy"

@dataclass(frozen=True)
class Plan:
    """What the bench measures, and how."""

    device: str
    size: int
    batches: tuple[int, ...]
    #: The two step counts each cell is timed at (multiples of every cache interval).
    steps: tuple[int, int]
    repeats: int
    #: Batch size of the levers (channels_last on, classic attention, compile).
    lever_batch: int
    compile: bool
    smoke: bool


def plan_for(*, smoke: bool, cuda: bool) -> Plan:
    if smoke:
        return Plan(device="cuda" if cuda else "cpu", size=32, batches=(1, 2), steps=(1, 2), repeats=1,
                    lever_batch=2, compile=False, smoke=True)  # fmt: skip
    return Plan(device="cuda", size=256, batches=(1, 8, 32, 64), steps=(3, 6), repeats=3, lever_batch=32,
                compile=True, smoke=False)  # fmt: skip


@dataclass(frozen=True)
class Setting:
    """One way of running InstructPix2Pix."""

    name: str
    label: str
    dtype: str
    #: The steps the per-Î figures are extrapolated to.
    full_steps: int
    cache_interval: int
    vae: str
    batches: tuple[int, ...]


def settings_for(plan: Plan) -> list[Setting]:
    from diffusemix.editors import InstructPix2PixEditor
    from diffusemix.editors.speed import default_dtype, fastest_dtype

    fast = InstructPix2PixEditor.presets["fast"]
    paper_dtype = default_dtype(plan.device)
    return [
        Setting("authors", "the authors' loop: one pipeline call per (image, prompt), string prompt", paper_dtype,
                100, 1, "full", plan.batches[:1]),
        Setting("paper", "the editor, paper preset", paper_dtype, 100, 1, "full", plan.batches),
        Setting("paper-bf16", "the editor, paper preset in bfloat16", "bfloat16", 100, 1, "full", plan.batches),
        Setting("fast", "the editor, fast preset (20 steps, DeepCache 3, tiny VAE)", fastest_dtype(plan.device),
                fast["steps"], fast["cache_interval"], fast["vae"], plan.batches),
    ]  # fmt: skip


# ---------------------------------------------------------------------------
# the ways of running


class Runner:
    """A loaded setting: ``call(steps, batch)`` makes ``batch`` Î at ``steps`` steps."""

    def __init__(self, setting: Setting, plan: Plan, folder: Path) -> None:
        self.setting, self.plan, self.folder = setting, plan, folder
        self.editor: Any = None
        self.pipe: Any = None
        if setting.name == "authors":
            self._load_authors()
        else:
            self._load_editor()

    def _load_authors(self) -> None:
        import torch
        from diffusers import EulerAncestralDiscreteScheduler, StableDiffusionInstructPix2PixPipeline

        pipe = StableDiffusionInstructPix2PixPipeline.from_pretrained(
            self.folder / "ip2p", dtype=getattr(torch, self.setting.dtype), safety_checker=None, local_files_only=True
        ).to(self.plan.device)
        pipe.scheduler = EulerAncestralDiscreteScheduler.from_config(pipe.scheduler.config)
        pipe.set_progress_bar_config(disable=True)
        self.pipe = pipe

    def _load_editor(self, **extra: Any) -> None:
        from diffusemix.editors import load_editor

        s = self.setting
        self.editor = load_editor(
            "instruct-pix2pix", model=str(self.folder / "ip2p"), device=self.plan.device, dtype=s.dtype,
            steps=s.full_steps, cache_interval=s.cache_interval, vae=s.vae, tiny_vae_model=str(self.folder / "taesd"),
            batch_size=1, max_retries=0, **extra,
        )  # fmt: skip
        self.editor.load()
        self.editor._speed_parts()  # the tiny VAE, when asked for, is loaded here rather than in the first cell

    def call(self, steps: int, batch: int, **settings: Any) -> Any:
        from PIL import Image

        size = self.plan.size
        if self.pipe is not None:  # the authors' loop: one call per (image, prompt)
            for k in range(batch):
                self.pipe(
                    PROMPT, image=Image.fromarray(test_image(size, k)), num_inference_steps=steps,
                    image_guidance_scale=1.5, guidance_scale=4.0,
                ).images[0]  # fmt: skip
            return None
        from diffusemix.editors import EditRequest

        reqs = [EditRequest(test_image(size, k), PROMPT, k) for k in range(batch)]
        return self.editor.with_settings(steps=steps, batch_size=batch, **settings).edit(reqs)

    def cell(self, batch: int) -> dict[str, Any]:
        if self.editor is not None:
            self.editor._shared.oom_batch = None
        p = self.plan
        rec = measure(lambda s: self.call(s, batch), device=p.device, steps=p.steps, repeats=p.repeats,
                      full_steps=self.setting.full_steps, batch=batch)  # fmt: skip
        if self.editor is not None and self.editor._shared.oom_batch is not None:
            rec["oom_split_at"] = self.editor._shared.oom_batch  # the figures are of smaller batches
        return rec

    def close(self) -> None:
        import torch

        self.editor = self.pipe = None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def levers(runner: Runner, plan: Plan) -> Iterator[Step]:
    """channels_last on, the classic attention processor, torch.compile: each
    against the paper preset at ``plan.lever_batch``."""
    import torch

    b = plan.lever_batch
    unet = runner.editor.pipeline.unet
    labels = {"kind": "lever", "setting": "paper", "batch": b}
    yield Step("paper (as is)", lambda: runner.cell(b), 20, labels={**labels, "lever": "as is"})

    def channels_last() -> dict[str, Any]:  # the editor leaves it off (1.17x slower on an H200, 2026-12-04)
        unet.to(memory_format=torch.channels_last)
        try:
            return runner.cell(b)
        finally:
            unet.to(memory_format=torch.contiguous_format)

    yield Step("paper, channels_last on", channels_last, 20, labels={**labels, "lever": "channels_last on"})

    def classic_attention() -> dict[str, Any]:
        from diffusers.models.attention_processor import AttnProcessor

        before = unet.attn_processors
        unet.set_attn_processor(AttnProcessor())
        try:
            return runner.cell(b)
        finally:
            unet.set_attn_processor(before)

    lever = {**labels, "lever": "classic attention (no SDPA)"}
    yield Step("paper, classic attention", classic_attention, 25, labels=lever)
    count = lambda: sync_count(lambda s: runner.call(s, 1), device=plan.device, steps=plan.steps)  # noqa: E731
    yield Step("syncs per step", count, 10, labels={"kind": "syncs", "batch": 1})
    if not plan.compile:
        return

    def compiled() -> dict[str, Any]:
        t0 = time.time()
        runner.call(1, b, compile=True)  # compiles (the first call at this shape)
        compile_s = time.time() - t0
        rec = measure(lambda s: runner.call(s, b, compile=True), device=plan.device, steps=plan.steps,
                      repeats=plan.repeats, full_steps=runner.setting.full_steps, batch=b)  # fmt: skip
        return {"compile_s": round(compile_s, 1), **rec}

    yield Step("paper, torch.compile", compiled, 200, labels={**labels, "lever": "torch.compile (default mode)"})


def _steps(plan: Plan, folder: Path, log: PartLog) -> Iterator[Step]:
    """Every step of the bench, planned as it goes (a setting that fails to load skips its cells)."""
    state: dict[str, Any] = {}
    full = not plan.smoke

    def build() -> dict[str, Any]:
        rec = build_models(folder, device=plan.device, smoke=plan.smoke)
        state["built"] = True
        return rec

    yield Step("build the model", build, 60 if full else 10, labels={"kind": "build"})
    if not state.get("built"):
        return

    def flops_meta() -> dict[str, Any]:
        f = meta_flops(folder, plan.size)
        state["meta"] = f
        return f

    yield Step("FLOPs on the meta device", flops_meta, 20 if full else 10, labels={"kind": "flops_meta"})
    for setting in settings_for(plan):
        info = {"kind": "load", "setting": setting.name, **{k: v for k, v in asdict(setting).items() if k != "name"}}

        def load(setting: Setting = setting) -> dict[str, Any]:
            state["runner"] = Runner(setting, plan, folder)
            return {}

        yield Step(f"load {setting.name}", load, 40 if full else 10, labels=info)
        runner = state.pop("runner", None)
        if runner is None:
            continue
        try:
            yield Step(
                f"FLOPs of {setting.name}",
                lambda r=runner: count_flops(lambda s: r.call(s, 1), steps=plan.steps, full_steps=r.setting.full_steps),
                20 if full else 10,
                labels={"kind": "flops", "setting": setting.name},
            )
            previous: tuple[int, float] | None = None
            for b in setting.batches:
                estimate = 30.0 if full else 10.0
                if previous is not None:
                    estimate = 1.5 * previous[1] * max(1.0, b / previous[0]) + 3
                labels = {"kind": "cell", "setting": setting.name, "dtype": setting.dtype, "batch": b}
                yield Step(f"{setting.name} batch {b}", lambda r=runner, b=b: r.cell(b), estimate, labels=labels)
                last = log.data["steps"][-1]  # the record of the step just run
                if last.get("status") == "ok":
                    previous = (b, float(last["seconds"]))
        finally:
            runner.close()
    # levers on the paper preset, loaded again (the settings above are unloaded one by one)
    paper = next(s for s in settings_for(plan) if s.name == "paper")

    def load_paper() -> dict[str, Any]:
        state["runner"] = Runner(paper, plan, folder)
        return {}

    yield Step("load paper for the levers", load_paper, 40 if full else 10, labels={"kind": "load", "setting": "paper"})
    runner = state.pop("runner", None)
    if runner is None:
        return
    try:
        yield from levers(runner, plan)
    finally:
        runner.close()


def _quiet() -> None:
    """No loading bars in the log (diffusers' and transformers' own)."""
    try:
        from diffusers.utils import logging as diffusers_logging
        from transformers.utils import logging as transformers_logging

        diffusers_logging.disable_progress_bar()
        transformers_logging.disable_progress_bar()
    except (ImportError, AttributeError):  # pragma: no cover - older versions
        pass


def run(log: PartLog, *, smoke: bool, deadline: float) -> None:
    """The bench part (see the module docstring)."""
    import torch

    cuda = torch.cuda.is_available()
    if not cuda and not smoke:
        log.finish("skipped", reason="no CUDA device: the full-size bench needs a GPU (use --cpu-smoke on a CPU)")
        return
    plan = plan_for(smoke=smoke, cuda=cuda)
    log.set(plan=asdict(plan), prompt=PROMPT)
    _quiet()
    folder = Path(tempfile.mkdtemp(prefix="diffusemix-gpu-check-"))

    def after_error() -> None:
        gc.collect()
        if cuda:
            torch.cuda.empty_cache()

    try:
        run_steps(_steps(plan, folder, log), log, key="steps", deadline=deadline, after_error=after_error)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
