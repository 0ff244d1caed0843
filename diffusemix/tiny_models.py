"""Tiny random-weight models: InstructPix2Pix (and img2img) pipelines and DINOv2 / CLIP scorers, built offline.

    python -m diffusemix tiny-models DIR

writes ``DIR/instruct-pix2pix-RANDOM-WEIGHTS``, ``DIR/img2img-RANDOM-WEIGHTS``, ``DIR/dinov2-RANDOM-WEIGHTS`` and
``DIR/clip-RANDOM-WEIGHTS``: the real architectures at toy sizes with **random weights**, saved with
``save_pretrained`` in the layout a Hub checkpoint has, so that the editors and scorers load them through the
same ``from_pretrained`` code a model id takes. They exist to try (and test) the whole diffusion and scoring
path on a machine with no weights and no network: what they make is noise-like, never an augmentation, and
their scores mean nothing. Each folder says so in its name (which every manifest row and summary shows: the
model is named in ``editor_settings``) and in a ``RANDOM_WEIGHTS.md`` inside it.

Sizes follow the project's notes (ENVIRONMENT.md): a UNet with blocks (32, 64), a VAE with four blocks (so the
latent is 1/8 of the image, as in Stable Diffusion), a 2-layer CLIP text encoder of width 32 and a byte-level
CLIP tokenizer with no merges (every character is a token; no package here ships a CLIP vocabulary). A pipeline
is about 4 MB on disk, a scorer well under 1 MB. The tests build the same folders (``tests/conftest.py``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

__all__ = ["MAX_TOKENS", "CROP", "MARK", "build_tiny_ip2p", "build_tiny_img2img", "build_tiny_dino",
           "build_tiny_dino_v1", "build_tiny_clip", "write_byte_clip_tokenizer", "write_tiny_models", "add_parser", "run"]

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


#: The tiny CLIP text encoder every tiny model shares (the byte tokenizer's 512 + 2 ids).
TINY_CLIP_TEXT: dict[str, Any] = dict(
    vocab_size=514,
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    max_position_embeddings=MAX_TOKENS,
    bos_token_id=512,
    eos_token_id=513,
    pad_token_id=513,
)
#: The tiny VAE: four blocks, so the latent is 1/8 of the image, as the real VAE's.
TINY_VAE: dict[str, Any] = dict(
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
        vae = AutoencoderKL(**TINY_VAE)
        text_encoder = CLIPTextModel(CLIPTextConfig(**TINY_CLIP_TEXT, projection_dim=32))
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


#: Side of the square crop the tiny models see (the real ones: 224).
CROP = 32


def build_tiny_dino(folder: str | Path, *, seed: int = 0) -> Path:
    """Save a tiny random ``Dinov2Model`` and its image processor in ``folder``."""
    import torch
    from transformers import BitImageProcessor, Dinov2Config, Dinov2Model

    folder = Path(folder)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Dinov2Model(
            Dinov2Config(
                hidden_size=32,
                num_hidden_layers=2,
                num_attention_heads=4,
                intermediate_size=64,
                image_size=CROP,
                patch_size=8,
            )
        )
    model.save_pretrained(folder, safe_serialization=True)
    # DINOv2's own processor settings (resize the short side, centre crop,
    # ImageNet mean/std), at the tiny size.
    BitImageProcessor(
        size={"shortest_edge": CROP},
        crop_size={"height": CROP, "width": CROP},
        image_mean=[0.485, 0.456, 0.406],
        image_std=[0.229, 0.224, 0.225],
        do_convert_rgb=True,
    ).save_pretrained(folder)
    return folder


def build_tiny_clip(folder: str | Path, *, seed: int = 0) -> Path:
    """Save a tiny random ``CLIPModel``, its image processor and a byte-level
    tokenizer in ``folder``."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPTokenizer

    folder = Path(folder)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = CLIPModel(
            CLIPConfig(
                text_config=dict(TINY_CLIP_TEXT),
                vision_config=dict(
                    hidden_size=32,
                    intermediate_size=64,
                    num_hidden_layers=2,
                    num_attention_heads=4,
                    image_size=CROP,
                    patch_size=8,
                ),
                projection_dim=16,
            )
        )
    model.save_pretrained(folder, safe_serialization=True)
    CLIPImageProcessor(size={"shortest_edge": CROP}, crop_size={"height": CROP, "width": CROP}).save_pretrained(folder)
    tok_dir = write_byte_clip_tokenizer(folder / "_tokenizer_src")
    CLIPTokenizer.from_pretrained(tok_dir).save_pretrained(folder)
    for f in tok_dir.iterdir():
        f.unlink()
    tok_dir.rmdir()
    return folder


def build_tiny_dino_v1(folder: str | Path, *, seed: int = 0) -> Path:
    """Save a tiny random DINO (v1) ``ViTModel`` (no pooler, as facebook/dino-vitb16) and a ViT image processor."""
    import torch
    from transformers import ViTConfig, ViTImageProcessor, ViTModel

    folder = Path(folder)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = ViTModel(
            ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                      image_size=CROP, patch_size=8),
            add_pooling_layer=False,
        )
    model.save_pretrained(folder, safe_serialization=True)
    ViTImageProcessor(size={"height": CROP, "width": CROP}).save_pretrained(folder)
    return folder


# ---------------------------------------------------------------------------
# all of them, marked, from the command line

#: The suffix of every folder :func:`write_tiny_models` makes: what made an image or a score is never hidden.
MARK = "RANDOM-WEIGHTS"
_NOTE = """# RANDOM WEIGHTS: not a trained model

This folder was written by `python -m diffusemix tiny-models`: the {what} architecture at a toy size with
**random weights** (seed {seed}). It loads like a real checkpoint (`from_pretrained`), so it lets you try
and test the {role} path with no download; what it makes is not an augmentation{extra}. For real work use
`{real}` (or its local folder).
"""
_MODELS = {
    "instruct-pix2pix": ("InstructPix2Pix (StableDiffusionInstructPix2PixPipeline)", "diffusion (--editor"
                         " instruct-pix2pix --model DIR)", "timbrooks/instruct-pix2pix", "", "build_tiny_ip2p"),
    "img2img": ("Stable Diffusion img2img", "diffusion (--editor img2img --model DIR)",
                "stable-diffusion-v1-5/stable-diffusion-v1-5", "", "build_tiny_img2img"),
    "dinov2": ("DINOv2 (Dinov2Model)", "scoring (--score dino --scorer-model DIR)", "facebook/dinov2-small",
               " and its scores mean nothing", "build_tiny_dino"),
    "dino-v1": ("DINO ViT-B/16 (ViTModel, GenMix's scorer)", "scoring (--score genmix --scorer-model DIR)",
                "facebook/dino-vitb16", " and its scores mean nothing", "build_tiny_dino_v1"),
    "clip": ("CLIP (CLIPModel)", "scoring (--score clip or clip-label --scorer-model DIR)",
             "openai/clip-vit-base-patch32", " and its scores mean nothing", "build_tiny_clip"),
}


def write_tiny_models(folder: str | Path, *, seed: int = 0) -> dict[str, Path]:
    """Build the tiny random-weight models under ``folder`` (``<name>-RANDOM-WEIGHTS``); their paths by name.

    A folder already there is built again (same seed: the same weights).
    """
    import shutil

    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, (what, role, real, extra, builder) in _MODELS.items():
        path = root / f"{name}-{MARK}"
        if path.exists():
            shutil.rmtree(path)
        globals()[builder](path, seed=seed)
        (path / "RANDOM_WEIGHTS.md").write_text(
            _NOTE.format(what=what, role=role, real=real, extra=extra, seed=seed), encoding="utf-8")
        out[name] = path
    return out


def add_parser(sub: Any) -> None:
    """``tiny-models``."""
    p = sub.add_parser(
        "tiny-models",
        help="build tiny RANDOM-WEIGHT InstructPix2Pix, img2img, DINOv2, DINO and CLIP folders (offline try-out)",
        description="Write DIR/instruct-pix2pix-RANDOM-WEIGHTS, DIR/img2img-RANDOM-WEIGHTS, DIR/dinov2-RANDOM-WEIGHTS,"
        " DIR/dino-v1-RANDOM-WEIGHTS and DIR/clip-RANDOM-WEIGHTS: the real architectures at toy sizes with RANDOM weights, loadable with"
        " --model / --scorer-model, to try the diffusion and scoring path with no download. What they make is"
        " not an augmentation and their scores mean nothing.",
    )
    p.add_argument("out", metavar="DIR", help="folder to write the model folders into")
    p.add_argument("--seed", type=int, default=0, metavar="N", help="seed of the random weights")


def run(args: argparse.Namespace) -> int:
    from huggingface_hub.utils import disable_progress_bars
    from transformers.utils import logging as hf_logging

    disable_progress_bars()
    hf_logging.disable_progress_bar()  # "Writing model shards" bars of save_pretrained
    paths = write_tiny_models(args.out, seed=args.seed)
    print("Tiny models with RANDOM WEIGHTS (for trying and testing the code paths, not for data):")
    for name, path in paths.items():
        size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        print(f"  {name:<17} {path}  ({size / 1e6:.1f} MB)")
    print(f"Use them as: --editor instruct-pix2pix --model {paths['instruct-pix2pix']}"
          f"  /  --score dino --scorer-model {paths['dinov2']}")
    return 0
