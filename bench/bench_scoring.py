"""Benchmark: what scoring Î costs, here and on paper.

1. Measured here, at 256 px, on the tiny random-weight models the tests build
   (tests/tiny_scorers.py, tests/tiny_pipelines.py): seconds per scored Î for
   the dino, clip and clip-label scorers (4 inputs x 2 prompts per call, each
   input embedded once), and the tiny InstructPix2Pix's seconds per Î at 256 px
   with ``--steps`` steps, for scale.
2. Measured here, the real architectures with random weights (speed does not
   depend on the weights): DINOv2-small and CLIP ViT-B/32's vision tower, one
   224 px forward per Î on this CPU.
3. On paper: floating-point operations counted by torch's FlopCounterMode on
   the real architectures built on the meta device (no memory, no weights):
   one scorer forward per Î against one InstructPix2Pix generation at 256 px
   (VAE encode + ``--paper-steps`` UNet steps on the 3-way guidance batch +
   VAE decode). That ratio is the share of a generation call scoring adds.

    python bench/bench_scoring.py [--steps 10] [--paper-steps 100] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import numpy as np  # noqa: E402

from diffusemix.editors import EditRequest, load_editor  # noqa: E402
from diffusemix.scoring import load_scorer  # noqa: E402

CLASSES = ["cat", "dog", "car", "plane"]


def images(size: int, n: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    out = []
    for k in range(n):
        base = np.stack([np.sin(3 * xx + k), np.cos(2 * yy + k), np.sin(xx + yy + 2 * k)], -1) * 0.4 + 0.5
        out.append((np.clip(base + rng.normal(0, 0.03, base.shape), 0, 1) * 255).astype(np.uint8))
    return out


def best_time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def tiny_figures(tmp: Path, steps: int, repeats: int) -> dict[str, float]:
    """Seconds per Î at 256 px: the tiny scorers, and the tiny InstructPix2Pix."""
    from tiny_pipelines import build_tiny_ip2p
    from tiny_scorers import build_tiny_clip, build_tiny_dino

    dino, clip = build_tiny_dino(tmp / "dino"), build_tiny_clip(tmp / "clip")
    inputs = images(256, 4, 0)
    pairs_in = [im for im in inputs for _ in range(2)]  # 4 images x 2 prompts
    generated = images(256, 8, 1)
    labels = [CLASSES[k // 2] for k in range(8)]
    out: dict[str, float] = {}
    for name, folder in (("dino", dino), ("clip", clip), ("clip-label", clip)):
        scorer = load_scorer(name, model=str(folder), class_names=CLASSES)
        scorer.load()
        t = best_time(lambda: scorer.score(pairs_in, generated, labels=labels), repeats)
        out[name] = t / len(generated)
    editor = load_editor("instruct-pix2pix", model=str(build_tiny_ip2p(tmp / "ip2p")), steps=steps, batch_size=8,
                         device="cpu")
    reqs = [EditRequest(im, p, 7) for im in inputs for p in ("snowy", "Autumn")]
    out["ip2p"] = best_time(lambda: editor.edit(reqs), 1) / len(reqs)
    return out


def real_size_models(meta: bool):
    """DINOv2-small, CLIP ViT-B/32 (vision + projection), and InstructPix2Pix's
    UNet and VAE, as configured on the Hub, with random weights."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection, Dinov2Config, Dinov2Model

    with torch.device("meta" if meta else "cpu"), torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        dino = Dinov2Model(
            Dinov2Config(hidden_size=384, num_hidden_layers=12, num_attention_heads=6, intermediate_size=1536,
                         patch_size=14, image_size=518)
        ).eval()
        clip = CLIPVisionModelWithProjection(
            CLIPVisionConfig(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                             image_size=224, patch_size=32, projection_dim=512)
        ).eval()
        if not meta:
            return dino, clip, None, None
        unet = UNet2DConditionModel(
            in_channels=8, out_channels=4, layers_per_block=2, block_out_channels=(320, 640, 1280, 1280),
            down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
            up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
            cross_attention_dim=768, attention_head_dim=8,
        )
        vae = AutoencoderKL(
            block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4,
            down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        )
    return dino, clip, unet, vae


def flops(fn) -> float:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.no_grad():
        fn()
    return float(counter.get_total_flops())


def paper_figures(paper_steps: int) -> dict[str, float]:
    """Floating-point operations per Î for the real architectures (meta device)."""
    import torch

    dino, clip, unet, vae = real_size_models(meta=True)
    z = lambda *shape: torch.zeros(*shape, device="meta")  # noqa: E731
    f = {
        "dino": flops(lambda: dino(pixel_values=z(1, 3, 224, 224))),
        "clip": flops(lambda: clip(pixel_values=z(1, 3, 224, 224))),
        "unet_step": flops(lambda: unet(z(3, 8, 32, 32), 10, encoder_hidden_states=z(3, 77, 768))),
        "vae_encode": flops(lambda: vae.encode(z(1, 3, 256, 256))),
        "vae_decode": flops(lambda: vae.decode(z(1, 4, 32, 32))),
        "params_dino": sum(p.numel() for p in dino.parameters()),
        "params_clip": sum(p.numel() for p in clip.parameters()),
        "params_unet": sum(p.numel() for p in unet.parameters()),
    }
    f["generation"] = f["vae_encode"] + paper_steps * f["unet_step"] + f["vae_decode"]
    return f


def real_size_times(repeats: int) -> dict[str, float]:
    """Seconds per 224 px forward of the real-size scorer models on this CPU."""
    import torch

    dino, clip, _, _ = real_size_models(meta=False)
    x = torch.zeros(8, 3, 224, 224).normal_(generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        t_dino = best_time(lambda: dino(pixel_values=x), repeats) / len(x)
        t_clip = best_time(lambda: clip(pixel_values=x), repeats) / len(x)
    return {"dino": t_dino, "clip": t_clip}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=10, help="denoising steps of the tiny InstructPix2Pix run")
    ap.add_argument("--paper-steps", type=int, default=100, help="steps of the real generation on paper")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        tiny = tiny_figures(Path(tmp), args.steps, args.repeats)
    print(f"tiny models, 256 px inputs, {args.threads} threads, best of {args.repeats}:")
    for name in ("dino", "clip", "clip-label"):
        print(f"  {name:<11} {tiny[name] * 1e3:7.1f} ms per scored Î"
              f"  ({tiny[name] / tiny['ip2p'] * 100:5.1f} % of the tiny InstructPix2Pix's"
              f" {tiny['ip2p'] * 1e3:.0f} ms per Î at {args.steps} steps)")
    real = real_size_times(args.repeats)
    print("real-size scorer architectures (random weights), one 224 px forward per Î on this CPU:")
    for name, label in (("dino", "DINOv2-small"), ("clip", "CLIP ViT-B/32 vision")):
        print(f"  {label:<21} {real[name] * 1e3:7.1f} ms per Î")
    paper = paper_figures(args.paper_steps)
    print(f"on paper (FlopCounterMode on the real architectures; InstructPix2Pix at 256 px, {args.paper_steps} steps,"
          " 3-way guidance batch):")
    print(f"  generation  {paper['generation'] / 1e12:7.2f} TFLOP per Î"
          f"  (UNet {paper['params_unet'] / 1e6:.0f} M params: {paper['unet_step'] / 1e9:.0f} GFLOP a step;"
          f" VAE encode {paper['vae_encode'] / 1e9:.0f} + decode {paper['vae_decode'] / 1e9:.0f} GFLOP)")
    for name, label in (("dino", "DINOv2-small"), ("clip", "CLIP ViT-B/32")):
        share = paper[name] / paper["generation"] * 100
        print(f"  {label:<13} {paper[name] / 1e9:7.2f} GFLOP per Î ({paper['params_' + name] / 1e6:.0f} M params,"
              f" 224 px): {share:.3f} % of a generation")


if __name__ == "__main__":
    main()
