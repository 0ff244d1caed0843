"""Tiny random-weight scorer models (DINOv2, CLIP), built offline for tests and benches.

Like tests/tiny_pipelines.py: the real architectures at toy sizes, saved with
``save_pretrained`` in the layout a Hub checkpoint has (config.json,
model.safetensors, preprocessor_config.json and, for CLIP, the tokenizer), so
the scorers load the *folder* through the same ``from_pretrained`` code a Hub
id takes. The CLIP tokenizer is the byte-level one of tiny_pipelines (no
package here ships a CLIP vocabulary). Each model is well under 1 MB.

Used by ``tests/conftest.py`` and ``bench/bench_scoring.py``.
"""

from __future__ import annotations

from pathlib import Path

from tiny_pipelines import MAX_TOKENS, write_byte_clip_tokenizer

__all__ = ["build_tiny_dino", "build_tiny_clip", "build_tiny_dino_v1"]

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
                text_config=dict(
                    vocab_size=514,
                    hidden_size=32,
                    intermediate_size=64,
                    num_hidden_layers=2,
                    num_attention_heads=4,
                    max_position_embeddings=MAX_TOKENS,
                    bos_token_id=512,
                    eos_token_id=513,
                    pad_token_id=513,
                ),
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
