"""The GPU check's bench: the full-size InstructPix2Pix (random weights) at
256 px, the authors' loop against the project's presets at several batch sizes.

1. Build the real SD-1.5-size architecture (UNet 860 M parameters, VAE, CLIP
   ViT-L text encoder; the configs of bench/bench_fullsize.py) with random
   weights directly on the GPU (no CPU initialisation), save it once in float16
   to a scratch folder, and load it back through the editor's own path
   (``InstructPix2PixEditor(folder)``) for each setting. Speed does not depend
   on the weights; image quality cannot be judged with random weights.
2. FLOPs per Î: counted with torch's FlopCounterMode on the meta device (UNet
   step on the three-way guidance batch, VAE encode and decode: about 54.9
   TFLOP at 100 steps and 256 px, as bench/bench_scoring.py counts), and on the
   device for each setting's own run (DeepCache's cached steps and the tiny VAE
   cost less), at batch 1, extrapolated like the time.
3. Settings: ``authors`` (one StableDiffusionInstructPix2PixPipeline call per
   (image, prompt), float16 on CUDA, a string prompt, guidance 4 / 1.5, no
   generator, as the reference code), ``paper`` (the editor's paper preset:
   float16 on CUDA), ``paper-bf16``, ``fast`` (20 steps, DeepCache interval 3,
   tiny VAE), each at every batch size (the authors' loop at 1: it does not
   batch). Per cell: a warm-up call at that batch size, then ``s1`` and ``s2``
   steps (median of ``repeats`` calls each, CUDA events); seconds per step =
   the difference over ``s2 - s1``, the rest fixed (encode, decode, text,
   pre/post-processing); the per-Î figure at 100 steps (20 for fast) is
   EXTRAPOLATED from those, as the CPU bench does. Peak memory per cell.
4. Levers on the paper preset at one batch size: channels_last off, the
   classic attention processor instead of SDPA, ``torch.compile`` (when the
   time left allows), and how many host-device synchronisations a step makes.

``--cpu-smoke`` runs every step on the CPU with the tests' tiny pipeline at
32 px, 1 and 2 steps: it proves the script, and its figures mean nothing.
"""

from __future__ import annotations

import gc
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from gpu_parts import PartLog, Step, run_steps

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

__all__ = ["UNET", "VAE", "TEXT", "Plan", "Setting", "plan_for", "settings_for", "extrapolate", "run"]

PROMPT = "make it snowy"

#: The full-size architecture (InstructPix2Pix = SD 1.5 with an 8-channel UNet input).
UNET: dict[str, Any] = dict(
    sample_size=64, in_channels=8, out_channels=4, layers_per_block=2, block_out_channels=(320, 640, 1280, 1280),
    down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
    up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3, cross_attention_dim=768, attention_head_dim=8,
)  # fmt: skip
VAE: dict[str, Any] = dict(
    in_channels=3, out_channels=3, block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4,
    down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4, sample_size=512,
)  # fmt: skip
TEXT: dict[str, Any] = dict(
    vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
    max_position_embeddings=77, bos_token_id=512, eos_token_id=513, pad_token_id=513, projection_dim=768,
)  # fmt: skip


@dataclass(frozen=True)
class Plan:
    """What the bench measures, and how."""

    device: str
    size: int
    batches: tuple[int, ...]
    #: The two step counts each cell is timed at (multiples of every cache interval).
    steps: tuple[int, int]
    repeats: int
    #: Batch size of the levers (channels_last off, classic attention, compile).
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
    from diffusemix.editors.speed import SPEED_PRESETS, preset_dtype

    fast = SPEED_PRESETS["fast"]
    paper_dtype = preset_dtype("paper", plan.device)
    return [
        Setting("authors", "the authors' loop: one pipeline call per (image, prompt), string prompt", paper_dtype,
                100, 1, "full", plan.batches[:1]),
        Setting("paper", "the editor, paper preset", paper_dtype, 100, 1, "full", plan.batches),
        Setting("paper-bf16", "the editor, paper preset in bfloat16", "bfloat16", 100, 1, "full", plan.batches),
        Setting("fast", "the editor, fast preset (20 steps, DeepCache 3, tiny VAE)", preset_dtype("fast", plan.device),
                fast["steps"], fast["cache_interval"], fast["vae"], plan.batches),
    ]  # fmt: skip


def extrapolate(t1: float, t2: float, s1: int, s2: int, full_steps: int) -> dict[str, float]:
    """Per-step and fixed parts from two runs of ``s1`` and ``s2`` steps, and the
    whole call at ``full_steps``. Pure: the same arithmetic the CPU bench uses."""
    if not s2 > s1 > 0:
        raise ValueError(f"need 0 < s1 < s2; got {s1}, {s2}")
    per_step = max(0.0, (t2 - t1) / (s2 - s1))
    fixed = max(0.0, t1 - s1 * per_step)
    return {"per_step": per_step, "fixed": fixed, "full": fixed + full_steps * per_step}


# ---------------------------------------------------------------------------
# the model


def test_image(size: int, k: int) -> Any:
    import numpy as np

    yy, xx = np.mgrid[0:size, 0:size] / size
    img = np.stack([np.sin(3 * xx + k), np.cos(2 * yy + 0.7 * k), np.sin(xx + yy + 1.3 * k)], -1) * 0.4 + 0.5
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def build_models(folder: Path, plan: Plan) -> dict[str, Any]:
    """The pipeline folder ``folder/ip2p`` and an AutoencoderTiny ``folder/taesd``."""
    import torch
    from diffusers import AutoencoderTiny

    t0 = time.time()
    if plan.smoke:
        from tiny_pipelines import build_tiny_ip2p

        build_tiny_ip2p(folder / "ip2p")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            small = (8, 8, 8, 8), (1, 1, 1, 1)
            AutoencoderTiny(encoder_block_out_channels=small[0], decoder_block_out_channels=small[0],
                            num_encoder_blocks=small[1], num_decoder_blocks=small[1]).save_pretrained(folder / "taesd")
        return {"model": "tiny (tests/tiny_pipelines.py)", "build_s": round(time.time() - t0, 2)}
    from diffusers import (
        AutoencoderKL,
        EulerAncestralDiscreteScheduler,
        StableDiffusionInstructPix2PixPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from tiny_pipelines import write_byte_clip_tokenizer

    torch.manual_seed(0)  # this process is the bench's own
    with torch.device(plan.device):  # weights made and initialised on the GPU
        unet = UNet2DConditionModel(**UNET)
        vae = AutoencoderKL(**VAE)
        text = CLIPTextModel(CLIPTextConfig(**TEXT))
        tiny = AutoencoderTiny()  # TAESD's architecture
    params = sum(p.numel() for p in unet.parameters())
    built = time.time()
    tokenizer = CLIPTokenizer.from_pretrained(write_byte_clip_tokenizer(folder / "_tok"))
    scheduler = EulerAncestralDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1
    )
    pipe = StableDiffusionInstructPix2PixPipeline(
        unet=unet, vae=vae, text_encoder=text, tokenizer=tokenizer, scheduler=scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )  # fmt: skip
    pipe.to(torch.float16)
    pipe.to("cpu")  # saved from host memory (one 2 GB copy), then loaded back through the editor's path
    pipe.save_pretrained(folder / "ip2p", safe_serialization=True)
    tiny.to("cpu", torch.float16).save_pretrained(folder / "taesd", safe_serialization=True)
    size_gb = sum(f.stat().st_size for f in (folder / "ip2p").rglob("*") if f.is_file()) / 1e9
    del pipe, unet, vae, text, tiny
    gc.collect()
    torch.cuda.empty_cache()
    return {
        "model": "full size, random weights, saved in float16",
        "unet_params_m": round(params / 1e6, 1),
        "build_on_device_s": round(built - t0, 2),
        "save_s": round(time.time() - built, 2),
        "folder_gb": round(size_gb, 2),
    }


def meta_flops(folder: Path, size: int) -> dict[str, float]:
    """FLOPs of one UNet step (three-way guidance batch), one VAE encode and one
    decode at ``size`` px, counted on the meta device from the saved configs."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from torch.utils.flop_counter import FlopCounterMode

    ucfg = UNet2DConditionModel.load_config(folder / "ip2p" / "unet")
    vcfg = AutoencoderKL.load_config(folder / "ip2p" / "vae")
    with torch.device("meta"):
        unet, vae = UNet2DConditionModel.from_config(ucfg), AutoencoderKL.from_config(vcfg)
    lat = size // 8

    def count(fn: Callable[[], Any]) -> float:
        with FlopCounterMode(display=False) as fc, torch.no_grad():
            fn()
        return float(fc.get_total_flops())

    z = lambda *shape: torch.zeros(*shape, device="meta")  # noqa: E731
    step = count(lambda: unet(z(3, 8, lat, lat), 10, encoder_hidden_states=z(3, 77, ucfg["cross_attention_dim"])))
    enc = count(lambda: vae.encode(z(1, 3, size, size)))
    dec = count(lambda: vae.decode(z(1, 4, lat, lat)))
    return {"unet_step": step, "vae_encode": enc, "vae_decode": dec, "paper_per_image": enc + dec + 100 * step}


# ---------------------------------------------------------------------------
# timing


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn: Callable[[], Any], device: str) -> float:
    """Seconds ``fn()`` takes: CUDA events around it on a GPU, else a wall clock."""
    import torch

    if device.startswith("cuda"):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def measure(call: Callable[[int], Any], *, plan: Plan, setting: Setting, batch: int) -> dict[str, Any]:
    """One cell: warm-up, then ``s1`` and ``s2`` steps timed; per-Î figures extrapolated."""
    import torch

    s1, s2 = plan.steps
    cuda = plan.device.startswith("cuda")
    warm = timed(lambda: call(1), plan.device)  # kernels, workspaces, allocator pools at this batch size
    if cuda:
        _sync(plan.device)
        torch.cuda.reset_peak_memory_stats()
        weights = torch.cuda.memory_allocated()
    t1 = statistics.median(timed(lambda: call(s1), plan.device) for _ in range(plan.repeats))
    t2 = statistics.median(timed(lambda: call(s2), plan.device) for _ in range(plan.repeats))
    ex = extrapolate(t1, t2, s1, s2, setting.full_steps)
    rec: dict[str, Any] = {
        "warmup_s": round(warm, 4),
        "t_s1": round(t1, 5),
        "t_s2": round(t2, 5),
        "per_step_s": ex["per_step"],
        "fixed_s": ex["fixed"],
        "call_s": ex["full"],
        "per_image_s": ex["full"] / batch,
        "images_per_s": batch / ex["full"] if ex["full"] > 0 else None,
        "step_per_image_s": ex["per_step"] / batch,
    }
    if cuda:
        peak = torch.cuda.max_memory_allocated()
        rec.update(
            weights_gb=round(weights / 1e9, 3),
            peak_gb=round(peak / 1e9, 3),
            peak_reserved_gb=round(torch.cuda.max_memory_reserved() / 1e9, 3),
            working_gb=round((peak - weights) / 1e9, 3),
        )
    return rec


def count_flops(call: Callable[[int], Any], *, plan: Plan, setting: Setting) -> dict[str, Any]:
    """FLOPs of the setting's own run at batch 1 (``s1`` and ``s2`` steps), per Î at full steps."""
    from torch.utils.flop_counter import FlopCounterMode

    s1, s2 = plan.steps
    call(1)  # the prompt's embedding is cached by the editor after its first call: count steps, not text
    counts = []
    for s in (s1, s2):
        with FlopCounterMode(display=False) as fc:
            call(s)
        counts.append(float(fc.get_total_flops()))
    ex = extrapolate(counts[0], counts[1], s1, s2, setting.full_steps)
    return {"flops_s1": counts[0], "flops_s2": counts[1], "flops_per_step": ex["per_step"],
            "flops_fixed": ex["fixed"], "flops_per_image": ex["full"]}  # fmt: skip


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
        from diffusemix.editors import InstructPix2PixEditor, InstructPix2PixSettings

        s = self.setting
        settings = InstructPix2PixSettings(
            steps=s.full_steps, cache_interval=s.cache_interval, vae=s.vae, tiny_vae_model=str(self.folder / "taesd"),
            batch_size=1, max_retries=0, **extra,
        )  # fmt: skip
        self.editor = InstructPix2PixEditor(
            str(self.folder / "ip2p"), settings=settings, device=self.plan.device, dtype=s.dtype
        )
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
        rec = measure(lambda s: self.call(s, batch), plan=self.plan, setting=self.setting, batch=batch)
        if self.editor is not None and self.editor._shared.oom_batch is not None:
            rec["oom_split_at"] = self.editor._shared.oom_batch  # the figures are of smaller batches
        return rec

    def close(self) -> None:
        import torch

        self.editor = self.pipe = None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def sync_count(runner: Runner, plan: Plan, batch: int) -> dict[str, Any]:
    """Host-device synchronisations per denoising step (torch's sync debug mode),
    and where in Python they come from."""
    import torch

    if not plan.device.startswith("cuda"):
        return {"note": "CUDA only"}
    counts, where = [], Counter()
    for s in plan.steps:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                runner.call(s, batch)
            finally:
                torch.cuda.set_sync_debug_mode(0)
        syncs = [w for w in caught if "synchroniz" in str(w.message)]
        counts.append(len(syncs))
        where.update(f"{Path(w.filename).name}:{w.lineno}" for w in syncs)
    s1, s2 = plan.steps
    return {"syncs_s1": counts[0], "syncs_s2": counts[1], "syncs_per_step": (counts[1] - counts[0]) / (s2 - s1),
            "sources": dict(where.most_common(8))}  # fmt: skip


def levers(runner: Runner, plan: Plan) -> Iterator[Step]:
    """channels_last off, the classic attention processor, torch.compile: each
    against the paper preset at ``plan.lever_batch``."""
    import torch

    b = plan.lever_batch
    unet = runner.editor.pipeline.unet
    labels = {"kind": "lever", "setting": "paper", "batch": b}
    yield Step("paper (as is)", lambda: runner.cell(b), 20, labels={**labels, "lever": "as is"})

    def no_channels_last() -> dict[str, Any]:
        unet.to(memory_format=torch.contiguous_format)
        try:
            return runner.cell(b)
        finally:
            if plan.device.startswith("cuda"):
                unet.to(memory_format=torch.channels_last)

    yield Step("paper, channels_last off", no_channels_last, 20, labels={**labels, "lever": "channels_last off"})

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
    yield Step("syncs per step", lambda: sync_count(runner, plan, 1), 10, labels={"kind": "syncs", "batch": 1})
    if not plan.compile:
        return

    def compiled() -> dict[str, Any]:
        t0 = time.time()
        runner.call(1, b, compile=True)  # compiles (the first call at this shape)
        compile_s = time.time() - t0
        rec = measure(lambda s: runner.call(s, b, compile=True), plan=plan, setting=runner.setting, batch=b)
        return {"compile_s": round(compile_s, 1), **rec}

    yield Step("paper, torch.compile", compiled, 200, labels={**labels, "lever": "torch.compile (default mode)"})


def _steps(plan: Plan, folder: Path, log: PartLog) -> Iterator[Step]:
    """Every step of the bench, planned as it goes (a setting that fails to load skips its cells)."""
    state: dict[str, Any] = {}
    full = not plan.smoke

    def build() -> dict[str, Any]:
        rec = build_models(folder, plan)
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
                lambda r=runner: count_flops(lambda s: r.call(s, 1), plan=plan, setting=r.setting),
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
