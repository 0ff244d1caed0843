"""Tiny random-weight diffusion pipelines, built offline for tests and benches.

No weights can be downloaded on the machines this project is tested on, so the
tests build pipelines with the real architectures at toy sizes, save them with
``save_pretrained`` and hand the *folder* to the editors, which load it through
the same ``from_pretrained`` code a user's model id takes.

Sizes follow /work/shared/ENVIRONMENT.md: a UNet with blocks (32, 64), a VAE
with four blocks (so the latent is 1/8 of the image, as in Stable Diffusion), a
2-layer CLIP text encoder of width 32 and a byte-level CLIP tokenizer with no
merges (every character is a token). A pipeline is about 4 MB on disk.

Used by ``tests/conftest.py`` and ``bench/bench_generation.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["build_tiny_ip2p", "build_tiny_img2img", "write_byte_clip_tokenizer"]

#: Text length of the tiny tokenizer and text encoder (CLIP's own is 77).
MAX_TOKENS = 77


def _bytes_to_unicode() -> dict[int, str]:
    """CLIP/GPT-2's reversible map from the 256 bytes to printable characters."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def write_byte_clip_tokenizer(folder: str | Path) -> Path:
    """Write a byte-level CLIP tokenizer (vocab.json, merges.txt) to ``folder``.

    The vocabulary is the 256 byte symbols, their end-of-word forms and the two
    special tokens; with no merges every character becomes one token.
    """
    from transformers import CLIPTokenizer

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    symbols = list(_bytes_to_unicode().values())
    vocab: dict[str, int] = {}
    for s in symbols + [s + "</w>" for s in symbols] + ["<|startoftext|>", "<|endoftext|>"]:
        vocab[s] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    tok = CLIPTokenizer(
        vocab=str(folder / "vocab.json"), merges=str(folder / "merges.txt"), model_max_length=MAX_TOKENS
    )
    tok.save_pretrained(folder)
    return folder


def _components(unet_in_channels: int, seed: int) -> dict:
    """UNet, VAE, text encoder and scheduler with random weights from ``seed``."""
    import torch
    from diffusers import AutoencoderKL, EulerAncestralDiscreteScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    # The weights are drawn from torch's global generator; fork it so that
    # building a fixture leaves the caller's random state untouched.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(
            sample_size=32,
            in_channels=unet_in_channels,
            out_channels=4,
            block_out_channels=(32, 64),
            layers_per_block=1,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            cross_attention_dim=32,
            norm_num_groups=8,
            attention_head_dim=4,
        )
        vae = AutoencoderKL(
            in_channels=3,
            out_channels=3,
            block_out_channels=(8, 16, 16, 16),
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            latent_channels=4,
            norm_num_groups=8,
            layers_per_block=1,
            sample_size=64,
        )
        text_encoder = CLIPTextModel(
            CLIPTextConfig(
                vocab_size=514,
                hidden_size=32,
                intermediate_size=64,
                num_hidden_layers=2,
                num_attention_heads=4,
                max_position_embeddings=MAX_TOKENS,
                bos_token_id=512,
                eos_token_id=513,
                pad_token_id=513,
                projection_dim=32,
            )
        )
    scheduler = EulerAncestralDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1
    )
    return {"unet": unet, "vae": vae, "text_encoder": text_encoder, "scheduler": scheduler}


def _build(pipeline_cls_name: str, unet_in_channels: int, folder: str | Path, seed: int) -> Path:
    import diffusers
    from transformers import CLIPTokenizer

    folder = Path(folder)
    tok_dir = write_byte_clip_tokenizer(folder / "_tokenizer_src")
    tokenizer = CLIPTokenizer.from_pretrained(tok_dir)
    cls = getattr(diffusers, pipeline_cls_name)
    pipe = cls(
        **_components(unet_in_channels, seed),
        tokenizer=tokenizer,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(folder, safe_serialization=True)
    # The tokenizer source is saved again under tokenizer/; drop the scratch copy.
    for f in tok_dir.iterdir():
        f.unlink()
    tok_dir.rmdir()
    return folder


def build_tiny_ip2p(folder: str | Path, *, seed: int = 0) -> Path:
    """Save a tiny random StableDiffusionInstructPix2PixPipeline in ``folder``."""
    return _build("StableDiffusionInstructPix2PixPipeline", 8, folder, seed)


def build_tiny_img2img(folder: str | Path, *, seed: int = 0) -> Path:
    """Save a tiny random StableDiffusionImg2ImgPipeline in ``folder``.

    Load it with ``AutoPipelineForImage2Image.from_pretrained(folder)``.
    """
    return _build("StableDiffusionImg2ImgPipeline", 4, folder, seed)
