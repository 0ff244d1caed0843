"""Benchmark: the full-size instruction editors on a CUDA GPU, random weights.

The real architectures (configs as in bench/bench_editors.py) built directly on
the GPU in bfloat16 with random weights (speed does not depend on them; no
weights can be downloaded where this runs), put in the real diffusers
pipelines, and run through the editors' own ``edit()`` (batching, per-sample
generators, text cache, edit size). The pipeline is handed to the editor
instead of loaded from a folder (writing 16-58 GB of random weights to disk
would only cost time); everything after loading is the editor's real path.

Tokenizer: the byte-level test tokenizer (tests/tiny_editors.py), so texts are
longer than with Qwen's real BPE (the system prompt of Qwen-Image-Edit is
about 280 tokens here against 64): the text encoder and the transformer see a
few hundred more text tokens than they would, a few percent of the
transformer's work at 512-1024 px.

    python bench/bench_editors_gpu.py [--sizes 512 1024] [--only klein|qwen|kontext] [--tiny]
"""

from __future__ import annotations

import argparse
import functools
import gc
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from bench_editors import klein_4b, kontext_dev, qwen_image_edit  # noqa: E402

from diffusemix.editors import EditRequest  # noqa: E402
from diffusemix.editors._instruct_common import EmbeddingCache  # noqa: E402


class bf16_default:
    """Build modules directly in bfloat16 (Qwen-Image-Edit in float32 would be 115 GB)."""

    def __enter__(self):
        self.before = torch.get_default_dtype()
        torch.set_default_dtype(torch.bfloat16)

    def __exit__(self, *exc):
        torch.set_default_dtype(self.before)


DEVICE = "cuda"
TINY = False  # --tiny: the test models instead of the full-size ones (a smoke test of this script on a CPU)


def sync() -> None:
    if DEVICE.startswith("cuda"):
        torch.cuda.synchronize()


def memory_gb() -> str:
    if not DEVICE.startswith("cuda"):
        return "n/a"
    return f"{torch.cuda.max_memory_allocated() / 1e9:.1f} GB"


def requests(n_images: int, prompts: list[str], size: int = 256) -> list[EditRequest]:
    rng = np.random.default_rng(0)
    images = [(rng.random((size, size, 3)) * 255).astype(np.uint8) for _ in range(n_images)]
    return [EditRequest(im, p, 100 + k) for k, (im, p) in enumerate((im, p) for im in images for p in prompts)]


def timed_edit(editor, reqs, repeats: int = 2) -> float:
    """Seconds per Î (best of ``repeats`` after a warm-up that fills the text cache).
    Random weights may well make blank images: retries are off (max_retries=0)."""
    editor.edit(reqs[:1])
    best = float("inf")
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        res = editor.edit(reqs)
        sync()
        best = min(best, time.perf_counter() - t0)
    assert all(r.image.shape == q.image.shape for r, q in zip(res, reqs))
    return best / len(reqs)


def part_time(fn, repeats: int = 3) -> float:
    fn()
    sync()
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    sync()
    return (time.perf_counter() - t0) / repeats


def bench_klein(sizes: list[int]) -> None:
    from diffusers import FlowMatchEulerDiscreteScheduler, Flux2KleinPipeline
    from tiny_editors import build_qwen_tokenizer

    from diffusemix.editors import load_editor
    from diffusemix.editors.flux2_klein import per_sample_image_latents

    t0 = time.perf_counter()
    if TINY:
        from tiny_editors import build_tiny_flux2_klein

        tiny = Flux2KleinPipeline.from_pretrained(build_tiny_flux2_klein(Path("/tmp/bench-tiny-klein")))
        transformer, text, vae = tiny.transformer, tiny.text_encoder, tiny.vae
    else:
        with torch.device(DEVICE), bf16_default():
            transformer, text, vae = klein_4b()
    transformer, text, vae = (m.to(DEVICE, torch.bfloat16).eval() for m in (transformer, text, vae))
    pipe = Flux2KleinPipeline(scheduler=FlowMatchEulerDiscreteScheduler(), vae=vae, text_encoder=text,
                              tokenizer=build_qwen_tokenizer(), transformer=transformer, is_distilled=True)
    pipe.set_progress_bar_config(disable=True)
    print(f"klein built on {DEVICE} in {time.perf_counter() - t0:.0f} s; {memory_gb()}", flush=True)
    bf = torch.bfloat16
    with torch.inference_mode():
        if not TINY:
            ids = torch.randint(0, 265, (1, 512), device="cuda")
            s = part_time(lambda: text(input_ids=ids, attention_mask=torch.ones_like(ids), output_hidden_states=True,
                                       use_cache=False))
            print(f"  text encoder, 512 tokens: {s * 1e3:.0f} ms", flush=True)
            for e in sizes:
                n = (e // 16) ** 2
                kw = dict(hidden_states=torch.randn(1, 2 * n, 128, device="cuda", dtype=bf),
                          encoder_hidden_states=torch.randn(1, 512, 7680, device="cuda", dtype=bf),
                          timestep=torch.full((1,), 0.5, device="cuda", dtype=bf),
                          img_ids=torch.zeros(1, 2 * n, 4, device="cuda", dtype=torch.long),
                          txt_ids=torch.zeros(1, 512, 4, device="cuda", dtype=torch.long), return_dict=False)
                step = part_time(lambda: transformer(**kw))
                enc = part_time(lambda: vae.encode(torch.randn(1, 3, e, e, device="cuda", dtype=bf)))
                dec = part_time(lambda: vae.decode(torch.randn(1, 32, e // 8, e // 8, device="cuda", dtype=bf)))
                print(f"  {e} px: transformer step {step * 1e3:.0f} ms, VAE encode {enc * 1e3:.0f} ms,"
                      f" decode {dec * 1e3:.0f} ms", flush=True)
    for e in sizes:
        for batch in (1, 4):
            ed = load_editor("flux2-klein", device=DEVICE, dtype="bfloat16", edit_size=e, batch_size=batch,
                             max_retries=0)
            pipe.prepare_image_latents = functools.partial(per_sample_image_latents, pipe)
            ed._shared.pipe, ed._shared.prompts = pipe, EmbeddingCache()  # handed over instead of loaded
            per = timed_edit(ed, requests(2, ["snowy", "Autumn"]))
            print(f"  editor, {e} px, 4 steps, batch {batch}: {per:.2f} s per Î"
                  f" (peak {memory_gb()})", flush=True)
    del pipe, transformer, text, vae, ed
    gc.collect()
    if DEVICE.startswith("cuda"):
        torch.cuda.empty_cache()


def bench_qwen(sizes: list[int]) -> None:
    from diffusers import FlowMatchEulerDiscreteScheduler, QwenImageEditPlusPipeline
    from tiny_editors import build_qwen_tokenizer
    from transformers import Qwen2VLImageProcessor

    from diffusemix.editors import load_editor
    from diffusemix.editors.qwen_image_edit import image_only_processor

    t0 = time.perf_counter()
    if DEVICE.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    if TINY:
        from tiny_editors import build_tiny_qwen_image_edit

        folder = build_tiny_qwen_image_edit(Path("/tmp/bench-tiny-qwen"))
        ed = load_editor("qwen-image-edit", model=str(folder), device="cpu", dtype="float32")
        ed.load()
        transformer, text, vae = ed.pipeline.transformer, ed.pipeline.text_encoder, ed.pipeline.vae
    else:
        with torch.device(DEVICE), bf16_default():
            transformer, text, vae = qwen_image_edit()
    transformer, text, vae = (m.to(DEVICE, torch.bfloat16).eval() for m in (transformer, text, vae))
    tokenizer = build_qwen_tokenizer()
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in ("<|image_pad|>", "<|video_pad|>", "<|vision_start|>")}
    text.config.image_token_id = ids["<|image_pad|>"]
    text.config.video_token_id = ids["<|video_pad|>"]
    text.config.vision_start_token_id = ids["<|vision_start|>"]
    text.model.config.image_token_id = ids["<|image_pad|>"]
    text.model.config.video_token_id = ids["<|video_pad|>"]
    text.model.config.vision_start_token_id = ids["<|vision_start|>"]
    processor = image_only_processor(Qwen2VLImageProcessor(), tokenizer)
    pipe = QwenImageEditPlusPipeline(scheduler=FlowMatchEulerDiscreteScheduler(), vae=vae, text_encoder=text,
                                     tokenizer=tokenizer, processor=processor, transformer=transformer)
    pipe.set_progress_bar_config(disable=True)
    print(f"Qwen-Image-Edit built on {DEVICE} in {time.perf_counter() - t0:.0f} s; {memory_gb()}", flush=True)
    for e in sizes:
        steps = 2 if TINY else 40
        ed = load_editor("qwen-image-edit", device=DEVICE, dtype="bfloat16", edit_size=e, steps=steps, max_retries=0)
        ed._shared.pipe, ed._shared.prompts = pipe, EmbeddingCache()  # handed over instead of loaded
        per = timed_edit(ed, requests(1, ["snowy", "Autumn"]), repeats=1)
        print(f"  editor, {e} px, {steps} steps, true CFG: {per:.2f} s per Î (peak {memory_gb()})", flush=True)


def bench_kontext(sizes: list[int]) -> None:
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxKontextPipeline
    from tiny_editors import build_t5_tokenizer
    from tiny_pipelines import write_byte_clip_tokenizer
    from transformers import CLIPTokenizer

    from diffusemix.editors import load_editor

    t0 = time.perf_counter()
    if DEVICE.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    if TINY:
        from tiny_editors import build_tiny_flux_kontext

        tiny = FluxKontextPipeline.from_pretrained(build_tiny_flux_kontext(Path("/tmp/bench-tiny-kontext")))
        transformer, (t5, clip), vae = tiny.transformer, (tiny.text_encoder_2, tiny.text_encoder), tiny.vae
    else:
        with torch.device(DEVICE), bf16_default():
            transformer, (t5, clip), vae = kontext_dev()
    transformer, t5, clip, vae = (m.to(DEVICE, torch.bfloat16).eval() for m in (transformer, t5, clip, vae))
    clip_tokenizer = CLIPTokenizer.from_pretrained(write_byte_clip_tokenizer(Path("/tmp/bench-clip-tokenizer")))
    pipe = FluxKontextPipeline(scheduler=FlowMatchEulerDiscreteScheduler(), vae=vae, text_encoder=clip,
                               tokenizer=clip_tokenizer, text_encoder_2=t5, tokenizer_2=build_t5_tokenizer(),
                               transformer=transformer)
    pipe.set_progress_bar_config(disable=True)
    print(f"FLUX.1 Kontext built on {DEVICE} in {time.perf_counter() - t0:.0f} s; {memory_gb()}", flush=True)
    steps = 2 if TINY else 28
    for e in sizes:
        for batch in (1, 4):
            ed = load_editor("flux-kontext", device=DEVICE, dtype="bfloat16", edit_size=e, steps=steps,
                             batch_size=batch, max_retries=0)
            ed._shared.pipe, ed._shared.prompts = pipe, EmbeddingCache()  # handed over instead of loaded
            per = timed_edit(ed, requests(1, ["snowy", "Autumn", "sunset", "mosaic"]), repeats=1)
            print(f"  editor, {e} px, {steps} steps, batch {batch}: {per:.2f} s per Î (peak {memory_gb()})",
                  flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    ap.add_argument("--only", choices=["klein", "qwen", "kontext"], default=None)
    ap.add_argument("--tiny", action="store_true", help="the test models on the CPU: a smoke test of this script")
    args = ap.parse_args()
    global DEVICE, TINY
    if args.tiny:
        DEVICE, TINY = "cpu", True
    else:
        torch.backends.cuda.matmul.allow_tf32 = True
        print(torch.__version__, torch.cuda.get_device_name(), flush=True)
    if args.only in (None, "klein"):
        bench_klein(args.sizes)
    if args.only in (None, "qwen"):
        bench_qwen(args.sizes)
    if args.only in (None, "kontext"):
        bench_kontext(args.sizes)


if __name__ == "__main__":
    main()
