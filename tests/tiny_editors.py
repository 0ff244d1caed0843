"""Tiny random-weight instruction editors (FLUX.2 [klein], Qwen-Image-Edit, FLUX.1 Kontext), built offline.

As in tests/tiny_pipelines.py: the real pipeline classes and architectures at
toy sizes, built from configs the way diffusers' own tests build them
(tests/pipelines/flux2/test_pipeline_flux2_klein.py and
tests/pipelines/qwenimage/test_qwenimage_edit_plus.py in the diffusers
repository), saved with ``save_pretrained`` and loaded back by the editors
through ``from_pretrained(folder, local_files_only=True)``.

diffusers' tests load their tokenizers and processors from Hub test
repositories, which cannot be reached here, so these are built locally:

- a byte-level BPE tokenizer (the ``tokenizers`` library; the 256 byte
  symbols, no merges, Qwen's special tokens) wrapped as ``Qwen2TokenizerFast``
  with a Qwen3-style chat template (FLUX.2 [klein] calls
  ``apply_chat_template(..., enable_thinking=False)``);
- for Qwen-Image-Edit, the Qwen2-VL processor's parts (that tokenizer and a
  Qwen2-VL image processor capped at 56 x 56 px), written as the Hub
  checkpoint's ``processor/`` folder is; model_index.json names
  ``transformers.Qwen2VLProcessor`` as the real checkpoint's does;
- for FLUX.1 Kontext, the byte-level CLIP tokenizer of tests/tiny_pipelines.py
  and a character-level T5 tokenizer (a ``tokenizers`` Unigram model over the
  printable ASCII characters, with T5's Metaspace word marker and its <pad>,
  </s> and <unk> tokens).

Sizes: a pipeline call at 64-128 px with a few steps takes well under a
second on two CPU threads. The FLUX.2 text encoder has 27 layers (of width
16), so the pipeline's default hidden-state layers (9, 18, 27) exist and the
editor runs with the pipeline's defaults.

Used by ``tests/test_editors_instruct.py`` and ``bench/bench_editors.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

from diffusemix.tiny_models import TINY_VAE

__all__ = [
    "QWEN_SPECIAL_TOKENS",
    "build_qwen_tokenizer",
    "build_tiny_flux2_klein",
    "build_tiny_qwen_image_edit",
    "build_t5_tokenizer",
    "build_tiny_flux_kontext",
]

#: Qwen's special tokens (Qwen2/Qwen3/Qwen2.5-VL share them), in id order after the 256 bytes.
QWEN_SPECIAL_TOKENS: tuple[str, ...] = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<think>",
    "</think>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
)

#: Qwen3's chat template reduced to what the pipelines use: user/assistant
#: turns, the generation prompt, and the empty thinking block that
#: ``enable_thinking=False`` adds.
QWEN3_CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}{{ '<think>\\n\\n</think>\\n\\n' }}{%- endif %}"
    "{%- endif %}"
)


def build_qwen_tokenizer():
    """A byte-level ``Qwen2TokenizerFast`` (265 tokens) built without the Hub."""
    from tiny_pipelines import _bytes_to_unicode
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
    from transformers import Qwen2TokenizerFast

    vocab = {symbol: i for i, symbol in enumerate(_bytes_to_unicode().values())}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in QWEN_SPECIAL_TOKENS])
    tokenizer = Qwen2TokenizerFast(
        tokenizer_object=backend, eos_token="<|im_end|>", pad_token="<|endoftext|>", unk_token=None, bos_token=None
    )
    tokenizer.chat_template = QWEN3_CHAT_TEMPLATE
    return tokenizer


def _ids(tokenizer) -> dict[str, int]:
    return {t: tokenizer.convert_tokens_to_ids(t) for t in QWEN_SPECIAL_TOKENS}


def build_tiny_flux2_klein(folder: str | Path, *, seed: int = 0, distilled: bool = True) -> Path:
    """Save a tiny random ``Flux2KleinPipeline`` in ``folder`` (about 0.7 MB).

    ``distilled`` is the pipeline's ``is_distilled`` flag (True for the 4B/9B
    checkpoints: no guidance; False for the Base ones).
    """
    import torch
    from diffusers import (
        AutoencoderKLFlux2,
        FlowMatchEulerDiscreteScheduler,
        Flux2KleinPipeline,
        Flux2Transformer2DModel,
    )
    from transformers import Qwen3Config, Qwen3ForCausalLM

    folder = Path(folder)
    tokenizer = build_qwen_tokenizer()
    ids = _ids(tokenizer)
    width = 16
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        transformer = Flux2Transformer2DModel(
            patch_size=1,
            in_channels=16,  # 4 latent channels x a 2x2 patch
            num_layers=1,
            num_single_layers=1,
            attention_head_dim=16,
            num_attention_heads=2,
            joint_attention_dim=3 * width,  # three stacked hidden-state layers
            timestep_guidance_channels=32,
            axes_dims_rope=(4, 4, 4, 4),
            guidance_embeds=False,
        )
        text_encoder = Qwen3ForCausalLM(
            Qwen3Config(
                vocab_size=len(tokenizer),
                hidden_size=width,
                intermediate_size=32,
                num_hidden_layers=27,
                num_attention_heads=2,
                num_key_value_heads=1,
                head_dim=8,
                max_position_embeddings=1024,
                tie_word_embeddings=True,
                bos_token_id=ids["<|endoftext|>"],
                eos_token_id=ids["<|im_end|>"],
                pad_token_id=ids["<|endoftext|>"],
            )
        )
        vae = AutoencoderKLFlux2(
            in_channels=3,
            out_channels=3,
            down_block_types=("DownEncoderBlock2D",) * 4,  # latent = 1/8 of the image, as the real VAE
            up_block_types=("UpDecoderBlock2D",) * 4,
            block_out_channels=(8, 16, 16, 16),
            layers_per_block=1,
            latent_channels=4,
            norm_num_groups=4,
            sample_size=64,
        )
    pipe = Flux2KleinPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(),
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        transformer=transformer,
        is_distilled=distilled,
    )
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder


def build_tiny_qwen_image_edit(folder: str | Path, *, seed: int = 0) -> Path:
    """Save a tiny random ``QwenImageEditPlusPipeline`` in ``folder`` (about 23 MB,
    most of it the Qwen2.5-VL embedding table of 265 x 16 ... and its vision tower).

    The processor is written as its parts (``processor/``: image processor,
    tokenizer, chat template) because transformers' ``Qwen2VLProcessor`` cannot
    be built without torchvision, which is not importable here.
    """
    import torch
    from diffusers import (
        AutoencoderKLQwenImage,
        FlowMatchEulerDiscreteScheduler,
        QwenImageEditPlusPipeline,
        QwenImageTransformer2DModel,
    )
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2VLImageProcessorPil

    from diffusemix.editors.qwen_image_edit import image_only_processor

    folder = Path(folder)
    tokenizer = build_qwen_tokenizer()
    ids = _ids(tokenizer)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        transformer = QwenImageTransformer2DModel(
            patch_size=2,
            in_channels=16,
            out_channels=4,
            num_layers=2,
            attention_head_dim=16,
            num_attention_heads=2,
            joint_attention_dim=16,
            guidance_embeds=False,
            axes_dims_rope=(8, 4, 4),
        )
        z_dim = 4
        vae = AutoencoderKLQwenImage(
            base_dim=z_dim * 6,
            z_dim=z_dim,
            dim_mult=[1, 2, 4, 4],  # three downsamplings: latent = 1/8 of the image, as the real VAE
            num_res_blocks=1,
            temperal_downsample=[False, True, True],
            latents_mean=[0.0] * z_dim,
            latents_std=[1.0] * z_dim,
        )
        text_encoder = Qwen2_5_VLForConditionalGeneration(
            Qwen2_5_VLConfig(
                text_config={
                    "hidden_size": 16,
                    "intermediate_size": 16,
                    "num_hidden_layers": 2,
                    "num_attention_heads": 2,
                    "num_key_value_heads": 2,
                    "rope_scaling": {"mrope_section": [1, 1, 2], "rope_type": "default", "type": "default"},
                    "rope_theta": 1000000.0,
                    "vocab_size": len(tokenizer),
                    "bos_token_id": ids["<|endoftext|>"],
                    "eos_token_id": ids["<|im_end|>"],
                },
                vision_config={
                    "depth": 2,
                    "hidden_size": 16,
                    "intermediate_size": 16,
                    "num_heads": 2,
                    "out_hidden_size": 16,
                },
                hidden_size=16,
                vocab_size=len(tokenizer),
                vision_start_token_id=ids["<|vision_start|>"],
                vision_end_token_id=ids["<|vision_end|>"],
                image_token_id=ids["<|image_pad|>"],
                video_token_id=ids["<|video_pad|>"],
                bos_token_id=ids["<|endoftext|>"],
                eos_token_id=ids["<|im_end|>"],
            )
        )
    # The real processor's settings at a toy cap: the condition image (384 x
    # 384 in the pipeline) is brought down to 56 x 56 px, 4 vision tokens.
    image_processor = Qwen2VLImageProcessorPil(min_pixels=28 * 28 * 4, max_pixels=28 * 28 * 4)
    pipe = QwenImageEditPlusPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(),
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        processor=image_only_processor(image_processor, tokenizer),
        transformer=transformer,
    )
    pipe.save_pretrained(folder, safe_serialization=True)
    index_path = folder / "model_index.json"
    index = json.loads(index_path.read_text(encoding="utf-8"))
    index["processor"] = ["transformers", "Qwen2VLProcessor"]  # as Qwen/Qwen-Image-Edit-2511's
    index_path.write_text(json.dumps(index, indent=2), encoding="utf-8")
    return folder


def build_t5_tokenizer():
    """A character-level ``T5TokenizerFast`` (98 tokens) built without the Hub."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers
    from transformers import T5TokenizerFast

    chars = [chr(c) for c in range(32, 127)] + ["\u2581"]
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)] + [(c, -1.0) for c in chars]
    backend = Tokenizer(models.Unigram(vocab, unk_id=2, byte_fallback=False))
    backend.normalizer = normalizers.Replace(" ", "\u2581")
    backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    backend.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    return T5TokenizerFast(
        tokenizer_object=backend,
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        extra_ids=0,
        model_max_length=512,
    )


def build_tiny_flux_kontext(folder: str | Path, *, seed: int = 0) -> Path:
    """Save a tiny random ``FluxKontextPipeline`` in ``folder`` (about 1 MB)."""
    import torch
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxKontextPipeline, FluxTransformer2DModel
    from tiny_pipelines import write_byte_clip_tokenizer
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer, T5Config, T5EncoderModel

    folder = Path(folder)
    t5_tokenizer = build_t5_tokenizer()
    clip_tokenizer = CLIPTokenizer.from_pretrained(write_byte_clip_tokenizer(folder / "_clip_tokenizer_src"))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        transformer = FluxTransformer2DModel(
            patch_size=1,
            in_channels=16,  # 4 latent channels x a 2x2 patch
            num_layers=1,
            num_single_layers=1,
            attention_head_dim=16,
            num_attention_heads=2,
            joint_attention_dim=32,
            pooled_projection_dim=32,
            axes_dims_rope=(4, 4, 8),
            guidance_embeds=True,  # guidance-distilled, as Kontext [dev]
        )
        clip = CLIPTextModel(
            CLIPTextConfig(
                vocab_size=514,
                hidden_size=32,
                intermediate_size=37,
                num_hidden_layers=2,
                num_attention_heads=4,
                max_position_embeddings=77,
                bos_token_id=512,
                eos_token_id=513,
                pad_token_id=513,
                projection_dim=32,
            )
        )
        t5 = T5EncoderModel(
            T5Config(
                vocab_size=len(t5_tokenizer),
                d_model=32,
                d_ff=37,
                d_kv=8,
                num_heads=4,
                num_layers=2,
                feed_forward_proj="gated-gelu",
                pad_token_id=0,
                eos_token_id=1,
                decoder_start_token_id=0,
            )
        )
        vae = AutoencoderKL(
            **TINY_VAE,
            use_quant_conv=False,
            use_post_quant_conv=False,
            shift_factor=0.0609,  # FLUX.1's VAE latent statistics
            scaling_factor=1.5035,
        )
    pipe = FluxKontextPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(),
        vae=vae,
        text_encoder=clip,
        tokenizer=clip_tokenizer,
        text_encoder_2=t5,
        tokenizer_2=t5_tokenizer,
        transformer=transformer,
    )
    pipe.save_pretrained(folder, safe_serialization=True)
    src = folder / "_clip_tokenizer_src"
    for f in src.iterdir():
        f.unlink()
    src.rmdir()
    return folder
