"""The model the GPU check measures: the full-size InstructPix2Pix architecture
(SD 1.5 with an 8-channel UNet input: UNet 860 M parameters, VAE, CLIP ViT-L
text encoder; the configs of bench/bench_fullsize.py) with random weights,
built directly on the device and saved once, and its FLOPs counted on the meta
device (about 54.9 TFLOP per Î at 100 steps and 256 px, as bench/bench_scoring.py
counts). Speed does not depend on the weights; image quality cannot be judged
with random weights.
"""

from __future__ import annotations

import gc
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # tiny_pipelines: the tiny model and the byte-level tokenizer

__all__ = ["UNET", "VAE", "TEXT", "test_image", "build_models", "meta_flops"]

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



def test_image(size: int, k: int) -> Any:
    import numpy as np

    yy, xx = np.mgrid[0:size, 0:size] / size
    img = np.stack([np.sin(3 * xx + k), np.cos(2 * yy + 0.7 * k), np.sin(xx + yy + 1.3 * k)], -1) * 0.4 + 0.5
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def build_models(folder: Path, *, device: str, smoke: bool) -> dict[str, Any]:
    """The pipeline folder ``folder/ip2p`` and an AutoencoderTiny ``folder/taesd``:
    the full-size model made on ``device`` and saved in float16, or (``smoke``)
    the tests' tiny one."""
    import torch
    from diffusers import AutoencoderTiny

    t0 = time.time()
    if smoke:
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
    with torch.device(device):  # weights made and initialised on the GPU
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
    if torch.cuda.is_available():
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
