"""Benchmark: the full-size InstructPix2Pix on this machine, every speed lever in one run.

The whole cost of DiffuseMix is InstructPix2Pix. No weights can be downloaded
here, so this builds the real SD-1.5-size architecture (UNet 860 M parameters,
VAE, CLIP ViT-L text encoder; see /work/shared/ENVIRONMENT.md) with random
weights, saves it ONCE to a cache folder outside the repository
(~/.cache/diffusemix-bench, about 4.3 GB), and loads it through the editor's
real path (``InstructPix2PixEditor(folder)``). Speed does not depend on the
weights; image quality cannot be judged with random weights.

For one (image, prompt) pair at ``--size`` px it measures CPU time (process
time: all threads) of every UNet call, the VAE encode and decode, the text
encoder, for these ways of running, all in this one process and one run:

  reference     the authors' way: a plain pipeline call per pair, string prompt
  editor-old    the editor as it was: float32, channels_last UNet, glibc malloc
  no-cl         the editor, float32, channels_last off (the new CPU default)
  paper         the new defaults at the paper's settings: float32, no channels_last,
                the allocator setting (mallopt) the CLI and the app apply
  bf16          paper + dtype=bfloat16
  deepcache3    paper + cache_interval=3
  tiny-vae      paper + vae="tiny" (a random-weight AutoencoderTiny, TAESD's shape)
  fast          the fast preset: 20 steps, bf16, cache_interval=3, tiny VAE
  compile       (with --compile) paper + compile=True

Every setting runs ``--steps`` denoising steps after a 1-step warm-up call; the
per-(image, prompt) figures at 100 steps (20 for fast) are EXTRAPOLATED:
fixed costs (encode, decode, text) + steps x the measured per-step time (for
DeepCache: full and cached steps counted apart). Exactness is judged per UNet
evaluation: the inputs of each setting's UNet calls are fed to the float32
reference UNet and the relative error ||out - ref|| / ||ref|| is reported
(final pixels of random-weight models differ by tens of grey levels even
for exact changes). Peak memory per batch size is measured in child processes
(one UNet step, one encode and decode per sample; the resident size is sampled
while the batch runs, since loading peaks higher).

    python bench/bench_fullsize.py [--steps 3] [--size 256] [--threads 1]
        [--batches 1,4,8] [--memory-only] [--compile] [--tiny] [--json out.json]

Take the heavy-job lock on shared machines:
    flock /tmp/diffusemix-heavy.lock python bench/bench_fullsize.py
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
for _k, _v in {
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "DIFFUSERS_VERBOSITY": "error",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "DIFFUSEMIX_MALLOPT": "0",  # applied below, by hand, between the two phases
}.items():
    os.environ.setdefault(_k, _v)

import numpy as np  # noqa: E402

CACHE = Path(os.environ.get("DIFFUSEMIX_BENCH_CACHE", "~/.cache/diffusemix-bench")).expanduser()
PROMPT = "It is snowy"
FULL_STEPS = {"fast": 20}  # the steps each setting is extrapolated to (default 100)


# ---------------------------------------------------------------------------
# the model, built once


def build_fullsize(folder: Path) -> Path:
    """Save a full-size random-weight InstructPix2Pix pipeline and a TAESD-shaped
    AutoencoderTiny in ``folder`` (once; later runs reuse them)."""
    if (folder / "ip2p" / "model_index.json").exists() and (folder / "taesd" / "config.json").exists():
        return folder
    import torch
    from diffusers import (
        AutoencoderKL,
        AutoencoderTiny,
        EulerAncestralDiscreteScheduler,
        StableDiffusionInstructPix2PixPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from tiny_pipelines import write_byte_clip_tokenizer

    print(f"building the full-size model in {folder} (once) ...", flush=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        unet = UNet2DConditionModel(
            sample_size=64,
            in_channels=8,
            out_channels=4,
            layers_per_block=2,
            block_out_channels=(320, 640, 1280, 1280),
            down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
            up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
            cross_attention_dim=768,
            attention_head_dim=8,
        )
        vae = AutoencoderKL(
            in_channels=3,
            out_channels=3,
            block_out_channels=(128, 256, 512, 512),
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            latent_channels=4,
            layers_per_block=2,
            sample_size=512,
        )
        text = CLIPTextModel(
            CLIPTextConfig(
                vocab_size=49408,
                hidden_size=768,
                intermediate_size=3072,
                num_hidden_layers=12,
                num_attention_heads=12,
                max_position_embeddings=77,
                bos_token_id=512,
                eos_token_id=513,
                pad_token_id=513,
                projection_dim=768,
            )
        )
        tiny = AutoencoderTiny()  # TAESD's architecture (diffusers' defaults)
    tok_dir = write_byte_clip_tokenizer(folder / "_tok")
    pipe = StableDiffusionInstructPix2PixPipeline(
        unet=unet,
        vae=vae,
        text_encoder=text,
        tokenizer=CLIPTokenizer.from_pretrained(tok_dir),
        scheduler=EulerAncestralDiscreteScheduler(
            beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1
        ),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(folder / "ip2p", safe_serialization=True)
    tiny.save_pretrained(folder / "taesd", safe_serialization=True)
    return folder


def build_tiny(folder: Path) -> Path:
    """The tests' tiny pipeline and a tiny AutoencoderTiny in ``folder`` (``--tiny``:
    checks this script end to end in seconds; its figures mean nothing)."""
    from diffusers import AutoencoderTiny

    from tiny_pipelines import build_tiny_ip2p

    if not (folder / "ip2p" / "model_index.json").exists():
        build_tiny_ip2p(folder / "ip2p")
        AutoencoderTiny(
            encoder_block_out_channels=(8, 8, 8, 8), decoder_block_out_channels=(8, 8, 8, 8), num_encoder_blocks=(1, 1, 1, 1),
            num_decoder_blocks=(1, 1, 1, 1),
        ).save_pretrained(folder / "taesd")
    return folder


def test_image(size: int) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size] / size
    img = np.stack([np.sin(3 * xx), np.cos(2 * yy), np.sin(xx + yy)], -1) * 0.4 + 0.5
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


# ---------------------------------------------------------------------------
# timing hooks


class Probe:
    """Process time of every UNet call, VAE encode/decode and text-encoder call
    of a pipeline, and the first few UNet (inputs, output) pairs."""

    def __init__(self, pipe: Any, keep: int) -> None:
        self.pipe, self.keep = pipe, keep
        self.unet: list[float] = []
        self.encode: list[float] = []
        self.decode: list[float] = []
        self.text: list[float] = []
        self.records: list[tuple[Any, Any, Any, Any]] = []
        self._undo: list[Any] = []

    def _wrap(self, obj: Any, name: str, sink: list[float]) -> None:
        fn = getattr(obj, name)

        def timed(*a: Any, **k: Any) -> Any:
            t = time.process_time()
            out = fn(*a, **k)
            sink.append(time.process_time() - t)
            return out

        setattr(obj, name, timed)
        self._undo.append(lambda: delattr(obj, name) if name in vars(obj) else None)

    def __enter__(self) -> Probe:
        pipe = self.pipe
        self._wrap(pipe.vae, "encode", self.encode)
        self._wrap(pipe.vae, "decode", self.decode)
        self._wrap(pipe.text_encoder, "forward", self.text)
        t0: list[float] = []

        def pre(_m: Any, args: Any, kwargs: Any) -> None:
            t0.append(time.process_time())

        def post(_m: Any, args: Any, kwargs: Any, out: Any) -> None:
            self.unet.append(time.process_time() - t0.pop())
            if len(self.records) < self.keep:
                sample = out[0] if isinstance(out, tuple) else out.sample
                self.records.append(
                    (
                        args[0].detach().float().clone(),
                        args[1].detach().clone() if hasattr(args[1], "clone") else args[1],
                        kwargs["encoder_hidden_states"].detach().float().clone(),
                        sample.detach().float().clone(),
                    )
                )

        h1 = pipe.unet.register_forward_pre_hook(pre, with_kwargs=True)
        h2 = pipe.unet.register_forward_hook(post, with_kwargs=True)
        self._undo += [h1.remove, h2.remove]
        return self

    def __exit__(self, *exc: Any) -> None:
        for undo in reversed(self._undo):
            undo()


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # KiB -> GiB


# ---------------------------------------------------------------------------
# one setting


def run_setting(name: str, make, args: argparse.Namespace, image: np.ndarray) -> dict[str, Any]:
    """Load with ``make()`` -> (pipeline, call(steps)), warm up, measure ``args.steps`` steps."""
    import gc

    t = time.perf_counter()
    pipe, call, interval = make()
    load_s = time.perf_counter() - t
    call(1)  # warm-up: oneDNN kernels, allocator pools, first-call costs
    keep = max(1, min(interval, args.steps))
    with Probe(pipe, keep) as p:
        cpu0, wall0 = time.process_time(), time.perf_counter()
        call(args.steps)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    unet = p.unet
    full = [u for i, u in enumerate(unet) if i % interval == 0]
    cached = [u for i, u in enumerate(unet) if i % interval != 0]
    steps_to = FULL_STEPS.get(name, args.full_steps)
    n_full = math.ceil(steps_to / interval)
    per_step = (n_full * np.mean(full) + (steps_to - n_full) * (np.mean(cached) if cached else 0.0)) / steps_to
    fixed = cpu - sum(unet)  # encode, decode, text, scheduler, pre/post-processing
    res = {
        "name": name,
        "load_s": load_s,
        "measured_steps": args.steps,
        "cpu_s": cpu,
        "wall_s": wall,
        "unet_full_s": float(np.mean(full)),
        "unet_cached_s": float(np.mean(cached)) if cached else None,
        "unet_per_step_s": float(per_step),
        "encode_s": float(sum(p.encode)),
        "decode_s": float(sum(p.decode)),
        "text_s": float(sum(p.text)),
        "fixed_s": float(fixed),
        "extrapolated_steps": steps_to,
        "extrapolated_pair_s": float(fixed + steps_to * per_step),
        "records": p.records,
    }
    print(
        f"  {name:<11} UNet {res['unet_full_s']:.2f} s/step"
        + (f" (cached {res['unet_cached_s']:.2f})" if cached else "")
        + f", enc {res['encode_s']:.2f} dec {res['decode_s']:.2f} text {res['text_s']:.2f}"
        + f" -> {res['extrapolated_pair_s']:.0f} CPU-s per pair at {steps_to} steps (extrapolated)",
        flush=True,
    )
    del pipe, call
    gc.collect()
    return res


def reference_maker(folder: Path, image: np.ndarray, seed: int = 0):
    """The authors' way: from_pretrained, Euler-ancestral, one call per pair, a string prompt."""

    def make():
        import torch
        from diffusers import EulerAncestralDiscreteScheduler, StableDiffusionInstructPix2PixPipeline
        from PIL import Image

        pipe = StableDiffusionInstructPix2PixPipeline.from_pretrained(
            folder, dtype=torch.float32, safety_checker=None, local_files_only=True
        )
        pipe.scheduler = EulerAncestralDiscreteScheduler.from_config(pipe.scheduler.config)
        pipe.set_progress_bar_config(disable=True)
        pil = Image.fromarray(image)

        def call(steps: int) -> None:
            g = torch.Generator("cpu").manual_seed(seed)
            pipe(PROMPT, image=pil, num_inference_steps=steps, image_guidance_scale=1.5, guidance_scale=4.0, generator=g)

        return pipe, call, 1

    return make


def editor_maker(folder: Path, image: np.ndarray, *, dtype: str, old_layout: bool = False, **settings: Any):
    """The editor's real path: InstructPix2PixEditor(folder), edit() on one request."""

    def make():
        import torch

        from diffusemix.editors import EditRequest, load_editor

        ed = load_editor("instruct-pix2pix", model=str(folder / "ip2p"), batch_size=1, device="cpu", dtype=dtype,
                         **settings)
        ed.load()
        if old_layout:  # what the editor did before: channels_last on every device
            ed.pipeline.unet.to(memory_format=torch.channels_last)
        req = [EditRequest(image, PROMPT, 0)]

        def call(steps: int) -> None:
            ed.with_settings(steps=steps, max_retries=0).edit(req)

        pipe = ed.pipeline
        if settings.get("vae") == "tiny":  # time the tiny VAE, which is swapped in per call
            ed._speed_parts()
            return _TinyView(pipe, ed._shared.tiny_vae[1]), call, settings.get("cache_interval", 1)
        return pipe, call, settings.get("cache_interval", 1)

    return make


class _TinyView:
    """The pipeline as the probe should see it when the tiny VAE is swapped in per call."""

    def __init__(self, pipe: Any, tiny: Any) -> None:
        self.unet, self.vae, self.text_encoder = pipe.unet, tiny, pipe.text_encoder


# ---------------------------------------------------------------------------
# exactness: each setting's UNet inputs through the float32 reference UNet


def exactness(folder: Path, results: list[dict[str, Any]]) -> None:
    import torch
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel.from_pretrained(folder, subfolder="unet", local_files_only=True).eval()
    for res in results:
        errs = []
        for sample, t, ctx, out in res.pop("records"):
            with torch.inference_mode():
                ref = unet(sample, t, encoder_hidden_states=ctx).sample.float()
            errs.append(float((out - ref).norm() / ref.norm()))
        res["unet_rel_error"] = max(errs) if errs else None
    del unet


# ---------------------------------------------------------------------------
# memory per batch size (a child process each, so peaks do not mix)


def memory_child(folder: Path, batch: int, dtype: str, size: int) -> dict[str, Any]:
    import torch

    from diffusemix.editors import EditRequest, load_editor
    from diffusemix.runtime import tune_allocator

    import threading

    tune_allocator(True)
    ed = load_editor("instruct-pix2pix", model=str(folder / "ip2p"), batch_size=batch, steps=1, max_retries=0,
                     dtype=dtype)
    ed.load()
    loaded = rss_gb()
    img = test_image(size)
    # loading peaks higher than running (weights read and converted), so ru_maxrss
    # says nothing here: sample the resident size while the batch runs instead
    peak, done = [loaded], threading.Event()

    def sample() -> None:
        while not done.wait(0.02):
            peak[0] = max(peak[0], rss_gb())

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    ed.edit([EditRequest(img, f"{PROMPT} {k}", k) for k in range(batch)])
    done.set()
    t.join()
    return {"batch": batch, "dtype": dtype, "loaded_gb": loaded, "peak_gb": peak[0], "threads": torch.get_num_threads()}


def rss_gb() -> float:
    """The resident size now (GiB), from /proc/self/statm."""
    with open("/proc/self/statm", encoding="ascii") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1024**3


def memory_table(args: argparse.Namespace, folder: Path) -> list[dict[str, Any]]:
    rows = []
    for dtype in ("float32", "bfloat16"):
        for b in args.batches if dtype == "float32" else [b for b in args.batches if b in (1, max(args.batches))]:
            cmd = [sys.executable, __file__, "--memory-child", f"{b},{dtype}", "--size", str(args.size)]
            cmd += ["--threads", str(args.threads)] + (["--tiny"] if args.tiny else [])
            out = subprocess.run(cmd, capture_output=True, text=True)
            if out.returncode != 0:
                print(f"  memory child batch {b} {dtype} failed: {out.stderr.strip().splitlines()[-1:]}")
                continue
            row = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append(row)
            print(f"  {dtype:<9} batch {b:>2}: weights loaded {row['loaded_gb']:.1f} GB, peak {row['peak_gb']:.1f} GB", flush=True)
    return rows


# ---------------------------------------------------------------------------
# report


def report(results: list[dict[str, Any]], args: argparse.Namespace) -> str:
    by = {r["name"]: r for r in results}

    def ratio(a: str, b: str) -> str:
        if a not in by or b not in by:
            return "n/a"
        return f"{by[b]['extrapolated_pair_s'] / by[a]['extrapolated_pair_s']:.2f}x"

    lines = [
        f"| setting | UNet s/step (cached) | encode s | decode s | text s | CPU-s per (image, prompt), extrapolated"
        f" | vs paper | UNet rel. error |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        cached = f" ({r['unet_cached_s']:.2f})" if r["unet_cached_s"] is not None else ""
        err = r.get("unet_rel_error")
        lines.append(
            f"| {r['name']} | {r['unet_full_s']:.2f}{cached} | {r['encode_s']:.2f} | {r['decode_s']:.2f} |"
            f" {r['text_s']:.2f} | {r['extrapolated_pair_s']:.0f} at {r['extrapolated_steps']} steps |"
            f" {ratio(r['name'], 'paper')} | {'-' if err is None else f'{err:.1e}'} |"
        )
    lines += [
        "",
        f"targets: paper defaults vs editor-old {ratio('paper', 'editor-old')} (>= 1.1x);"
        f" bf16 vs paper (fp32) {ratio('bf16', 'paper')} (>= 1.8x); fast vs paper {ratio('fast', 'paper')} (>= 20x);"
        f" levers off (no-cl) vs editor-old {ratio('no-cl', 'editor-old')} (>= 1.0x);"
        f" editor-old vs reference {ratio('editor-old', 'reference')}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=3, help="denoising steps measured per setting")
    ap.add_argument("--full-steps", type=int, default=100, help="steps the per-pair figures are extrapolated to")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 = steadiest CPU-time figures)")
    ap.add_argument("--batches", default="1,4,8", help="batch sizes for the peak-memory table ('' = skip)")
    ap.add_argument("--memory-only", action="store_true", help="only the peak-memory table")
    ap.add_argument("--compile", action="store_true", help="also time compile=True (minutes of compiling, +5 GB)")
    ap.add_argument("--only", default="", help="comma-separated settings to run (default: all)")
    ap.add_argument("--json", default=None, help="write the results here")
    ap.add_argument("--tiny", action="store_true", help="the tests' tiny model: checks the script, figures mean nothing")
    ap.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    args.batches = [int(b) for b in args.batches.split(",") if b.strip()]

    import torch

    torch.set_num_threads(args.threads)
    folder = build_tiny(CACHE / "tiny") if args.tiny else build_fullsize(CACHE)
    if args.memory_child:
        b, dtype = args.memory_child.split(",")
        print(json.dumps(memory_child(folder, int(b), dtype, args.size)))
        return 0

    from diffusemix.editors.speed import bf16_supported
    from diffusemix.runtime import tune_allocator

    if args.memory_only:
        mem = memory_table(args, folder)
        if args.json:
            Path(args.json).write_text(json.dumps({"memory": mem, "args": vars(args)}, indent=1))
        return 0
    image = test_image(args.size)
    ip2p = folder / "ip2p"
    print(
        f"full-size InstructPix2Pix (random weights), {args.size} px, {args.threads} thread(s), {args.steps} steps"
        f" measured per setting; {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs,"
        f" torch {torch.__version__}, bf16 support {bf16_supported()}",
        flush=True,
    )
    # 1. glibc's default allocator: the reference, the old editor, channels_last off
    phase1 = [
        ("reference", reference_maker(ip2p, image)),
        ("editor-old", editor_maker(folder, image, dtype="float32", old_layout=True)),
        ("no-cl", editor_maker(folder, image, dtype="float32")),
    ]
    # 2. the allocator setting the CLI and the app apply, then the levers
    phase2 = [
        ("paper", editor_maker(folder, image, dtype="float32")),
        ("bf16", editor_maker(folder, image, dtype="bfloat16")),
        ("deepcache3", editor_maker(folder, image, dtype="float32", cache_interval=3)),
        ("tiny-vae", editor_maker(folder, image, dtype="float32", vae="tiny", tiny_vae_model=str(folder / "taesd"))),
        (
            "fast",
            editor_maker(
                folder, image, dtype="bfloat16", cache_interval=3, vae="tiny", tiny_vae_model=str(folder / "taesd")
            ),
        ),
    ]
    if args.compile:
        phase2.append(("compile", editor_maker(folder, image, dtype="float32", compile=True)))
    only = {s for s in args.only.split(",") if s}
    results = []
    for name, make in phase1:
        if not only or name in only:
            results.append(run_setting(name, make, args, image))
    print(f"  allocator: {tune_allocator(True)}", flush=True)
    for name, make in phase2:
        if not only or name in only:
            results.append(run_setting(name, make, args, image))
    print("exactness (each setting's UNet inputs through the float32 reference UNet) ...", flush=True)
    exactness(ip2p, results)
    print(report(results, args))
    mem = memory_table(args, folder) if args.batches else []
    if args.json:
        Path(args.json).write_text(json.dumps({"settings": results, "memory": mem, "args": vars(args)}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
