"""Benchmark: what the instruction editors cost, on paper and here.

1. On paper (always): floating-point operations per Î, counted by torch's
   FlopCounterMode on the real architectures built from their configs on the
   meta device (no memory, no weights), at each ``--sizes`` edit size and the
   card's steps:
   - FLUX.2 [klein] 4B: the Qwen3-4B text encoder on 512 tokens (the pipeline
     pads every prompt to 512), the 4B transformer per step on the Î tokens +
     the reference tokens + 512 text tokens (step-distilled: one pass), and the
     VAE encode (the reference) and decode (Î).
   - Qwen-Image-Edit-2511: Qwen2.5-VL-7B on the prompt with the 384 px
     condition image (its vision tower on 784 patches, 196 image tokens; the
     language model on ~301 tokens, ~272 for the negative prompt), the 20B
     transformer per step twice (true CFG) on Î + reference + text tokens, and
     the VAE encode and decode. The vision tower's attention splits by
     windows from its grid, which the meta device cannot follow, so it runs
     for real on this CPU in bfloat16 (random weights, about 20 s, once).
   - FLUX.1 Kontext [dev]: CLIP-L (77 tokens) + T5-XXL (512 tokens), the 12B
     transformer per step (guidance-distilled: one pass), the VAE.
   - InstructPix2Pix at 256 px, 100 steps (the paper's editor), for scale.
   The language models are counted one decoder layer at a time (their mask
   builders read tensor values, which the meta device cannot) times their
   layers, plus the output head the pipelines also run. Attention is counted
   dense (QK^T and AV in full), the counter's convention.
2. Weights: parameters (counted on the meta device) x bytes per dtype.
3. Here (``--time``): the full-size FLUX.2 [klein] 4B in bfloat16 on this CPU,
   random weights (speed does not depend on them), under
   ``flock /tmp/diffusemix-heavy.lock``: one transformer step at
   ``--time-size``, the text encoder once, VAE encode + decode. Peak memory
   about 9 GB (one part at a time).
4. The tiny editors of the tests: seconds per Î at 64 px, for scale only.

    python bench/bench_editors.py [--sizes 256 512 1024] [--time] [--time-size 256] [--threads 2]
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
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

import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

TF = 1e12

#: Token counts the pipelines use (see the module docstring).
KLEIN_TEXT_TOKENS = 512
QWEN_TEXT_TOKENS = {"prompt": 301, "negative": 272}  # incl. 64 system-prompt tokens the pipeline drops
QWEN_DROPPED = 64
QWEN_VISION_PATCHES = 784  # 392 x 392 px (384 rounded to 28) in 14 px patches
KONTEXT_T5_TOKENS = 512
KONTEXT_CLIP_TOKENS = 77


def flops(fn) -> float:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        fn()
    return float(counter.get_total_flops())


def params(module) -> int:
    return sum(p.numel() for p in module.parameters())


def z(*shape, dtype=torch.float32):
    return torch.zeros(*shape, device="meta", dtype=dtype)


def decoder_flops(lm, layers, rotary, hidden: int, tokens: int, *, position_ids=None) -> float:
    """One decoder layer's operations on ``tokens`` tokens, times the layers."""
    hs = z(1, tokens, hidden)
    pos = position_ids if position_ids is not None else z(1, tokens, dtype=torch.long)
    cos_sin = rotary(hs, pos)
    one = flops(lambda: layers[0](hs, attention_mask=None, position_embeddings=cos_sin))
    return one * len(layers)


# ---------------------------------------------------------------------------
# the real architectures (configs from the checkpoints; see model_cards.py)


def klein_4b():
    from diffusers import AutoencoderKLFlux2, Flux2Transformer2DModel
    from transformers import Qwen3Config, Qwen3ForCausalLM

    transformer = Flux2Transformer2DModel(
        patch_size=1, in_channels=128, num_layers=5, num_single_layers=20, attention_head_dim=128,
        num_attention_heads=24, joint_attention_dim=7680, timestep_guidance_channels=256, mlp_ratio=3.0,
        axes_dims_rope=(32, 32, 32, 32), rope_theta=2000, eps=1e-6, guidance_embeds=False,
    )
    text = Qwen3ForCausalLM(Qwen3Config(
        vocab_size=151936, hidden_size=2560, intermediate_size=9728, num_hidden_layers=36, num_attention_heads=32,
        num_key_value_heads=8, head_dim=128, max_position_embeddings=40960, tie_word_embeddings=True,
        rope_theta=1000000,
    ))
    return transformer, text, AutoencoderKLFlux2()


def qwen_image_edit():
    from diffusers import AutoencoderKLQwenImage, QwenImageTransformer2DModel
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    text = Qwen2_5_VLForConditionalGeneration(Qwen2_5_VLConfig(
        text_config=dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
                         num_key_value_heads=4, vocab_size=152064, rope_theta=1000000.0,
                         max_position_embeddings=128000,
                         rope_scaling={"type": "mrope", "mrope_section": [16, 24, 24], "rope_type": "default"}),
        vision_config=dict(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, out_hidden_size=3584,
                           patch_size=14, spatial_merge_size=2, temporal_patch_size=2, window_size=112,
                           fullatt_block_indexes=[7, 15, 23, 31], in_chans=3, hidden_act="silu"),
        vocab_size=152064, image_token_id=151655, video_token_id=151656, vision_start_token_id=151652,
    ))
    return QwenImageTransformer2DModel(), text, AutoencoderKLQwenImage()


def kontext_dev():
    from diffusers import AutoencoderKL, FluxTransformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    transformer = FluxTransformer2DModel(guidance_embeds=True)
    t5 = T5EncoderModel(T5Config(d_model=4096, d_ff=10240, d_kv=64, num_heads=64, num_layers=24, vocab_size=32128,
                                 feed_forward_proj="gated-gelu", relative_attention_num_buckets=32))
    clip = CLIPTextModel(CLIPTextConfig(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                                        num_attention_heads=12, vocab_size=49408, projection_dim=768))
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=16, block_out_channels=(128, 256, 512, 512),
                        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                        layers_per_block=2, use_quant_conv=False, use_post_quant_conv=False,
                        shift_factor=0.1159, scaling_factor=0.3611)  # FLUX.1 VAE latent statistics
    return transformer, (t5, clip), vae


def ip2p():
    from diffusers import AutoencoderKL, UNet2DConditionModel

    unet = UNet2DConditionModel(
        in_channels=8, out_channels=4, layers_per_block=2, block_out_channels=(320, 640, 1280, 1280),
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3, cross_attention_dim=768, attention_head_dim=8,
    )
    vae = AutoencoderKL(block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4,
                        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4)
    return unet, vae


# ---------------------------------------------------------------------------
# operations per part


def klein_parts(sizes: list[int]) -> tuple[dict, dict]:
    with torch.device("meta"):
        transformer, text, vae = klein_4b()
    inner = text.model
    t = KLEIN_TEXT_TOKENS
    text_f = decoder_flops(text, inner.layers, inner.rotary_emb, 2560, t) + flops(lambda: text.lm_head(z(1, t, 2560)))
    out = {}
    for e in sizes:
        n = (e // 16) ** 2  # Î tokens; the reference has as many
        step = flops(lambda: transformer(
            hidden_states=z(1, 2 * n, 128), encoder_hidden_states=z(1, t, 7680), timestep=z(1),
            img_ids=z(1, 2 * n, 4, dtype=torch.long), txt_ids=z(1, t, 4, dtype=torch.long), return_dict=False,
        ))
        out[e] = {
            "text": text_f, "step": step, "passes": 1,
            "encode": flops(lambda: vae.encode(z(1, 3, e, e))),
            "decode": flops(lambda: vae.decode(z(1, 32, e // 8, e // 8))),
        }
    sizes_p = {"transformer": params(transformer), "text_encoder": params(text), "vae": params(vae)}
    return out, sizes_p


def qwen_vision_flops() -> float:
    """Qwen2.5-VL's vision tower on the 384 px condition image, run for real in bf16."""
    from transformers import Qwen2_5_VLConfig
    from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VisionTransformerPretrainedModel

    cfg = Qwen2_5_VLConfig(vision_config=dict(
        depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, out_hidden_size=3584, patch_size=14,
        spatial_merge_size=2, temporal_patch_size=2, window_size=112, fullatt_block_indexes=[7, 15, 23, 31],
        in_chans=3, hidden_act="silu",
    ))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        visual = Qwen2_5_VisionTransformerPretrainedModel._from_config(cfg.vision_config, torch_dtype=torch.bfloat16)
    visual.eval()
    grid = torch.tensor([[1, 28, 28]])
    pixels = torch.zeros(QWEN_VISION_PATCHES, 3 * 2 * 14 * 14, dtype=torch.bfloat16)
    f = flops(lambda: visual(pixels, grid_thw=grid))
    del visual
    gc.collect()
    return f


def qwen_parts(sizes: list[int], *, vision: float) -> tuple[dict, dict]:
    with torch.device("meta"):
        transformer, text, vae = qwen_image_edit()
    lm = text.model.language_model

    def text_pass(tokens: int) -> float:
        pos = z(3, 1, tokens, dtype=torch.long)  # mrope: (t, h, w) positions
        return (
            decoder_flops(text, lm.layers, lm.rotary_emb, 3584, tokens, position_ids=pos)
            + flops(lambda: text.lm_head(z(1, tokens, 3584)))
            + vision
        )

    text_f = {k: text_pass(v) for k, v in QWEN_TEXT_TOKENS.items()}
    out = {}
    for e in sizes:
        side = e // 16
        n = side * side

        def step(kind: str) -> float:
            t = QWEN_TEXT_TOKENS[kind] - QWEN_DROPPED
            return flops(lambda: transformer(
                hidden_states=z(1, 2 * n, 64), encoder_hidden_states=z(1, t, 3584), timestep=z(1),
                img_shapes=[[(1, side, side), (1, side, side)]], return_dict=False,
            ))

        out[e] = {
            "text": text_f["prompt"] + text_f["negative"], "step": step("prompt") + step("negative"), "passes": 2,
            "encode": flops(lambda: vae.encode(z(1, 3, 1, e, e))),
            "decode": flops(lambda: vae.decode(z(1, 16, 1, e // 8, e // 8))),
        }
    sizes_p = {
        "transformer": params(transformer), "text_encoder": params(text), "vae": params(vae),
        "vision_tower": params(text.model.visual),
    }
    return out, sizes_p


def kontext_parts(sizes: list[int]) -> tuple[dict, dict]:
    with torch.device("meta"):
        transformer, (t5, clip), vae = kontext_dev()
    text_f = flops(lambda: t5(input_ids=z(1, KONTEXT_T5_TOKENS, dtype=torch.long))) + flops(
        lambda: clip(input_ids=z(1, KONTEXT_CLIP_TOKENS, dtype=torch.long))
    )
    out = {}
    for e in sizes:
        n = (e // 16) ** 2
        step = flops(lambda: transformer(
            hidden_states=z(1, 2 * n, 64), encoder_hidden_states=z(1, KONTEXT_T5_TOKENS, 4096),
            pooled_projections=z(1, 768), timestep=z(1), img_ids=z(2 * n, 3), txt_ids=z(KONTEXT_T5_TOKENS, 3),
            guidance=z(1), return_dict=False,
        ))
        out[e] = {
            "text": text_f, "step": step, "passes": 1,
            "encode": flops(lambda: vae.encode(z(1, 3, e, e))),
            "decode": flops(lambda: vae.decode(z(1, 16, e // 8, e // 8))),
        }
    sizes_p = {"transformer": params(transformer), "text_encoder": params(t5) + params(clip), "vae": params(vae)}
    return out, sizes_p


def ip2p_parts() -> dict:
    with torch.device("meta"):
        unet, vae = ip2p()
    return {
        "text": 0.0,  # CLIP-L on 77 tokens: ~0.01 TFLOP, below the table's precision
        "step": flops(lambda: unet(z(3, 8, 32, 32), 10, encoder_hidden_states=z(3, 77, 768))), "passes": 3,
        "encode": flops(lambda: vae.encode(z(1, 3, 256, 256))),
        "decode": flops(lambda: vae.decode(z(1, 4, 32, 32))),
    }


def per_image(part: dict, steps: int) -> float:
    return part["text"] + steps * part["step"] + part["encode"] + part["decode"]


# ---------------------------------------------------------------------------
# timing here


def _rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def _materialise(module, dtype):
    """A meta-device module on the CPU in ``dtype``, weights N(0, 0.02) (random)."""
    module = module.to(dtype).to_empty(device="cpu")
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        for p in module.parameters():
            p.normal_(0.0, 0.02)
        for name, b in module.named_buffers():
            if b.is_floating_point():
                b.fill_(1.0 if "var" in name else 0.0)
    return module.eval()


def time_klein(size: int) -> dict:
    """Seconds for the full-size FLUX.2 [klein] 4B parts on this CPU, bfloat16."""
    bf = torch.bfloat16
    out: dict = {}
    n = (size // 16) ** 2
    t = KLEIN_TEXT_TOKENS
    with torch.device("meta"):
        transformer, text, vae = klein_4b()
    del text, vae
    transformer = _materialise(transformer, bf)
    inputs = dict(
        hidden_states=torch.randn(1, 2 * n, 128, dtype=bf), encoder_hidden_states=torch.randn(1, t, 7680, dtype=bf),
        timestep=torch.full((1,), 0.5, dtype=bf), img_ids=torch.zeros(1, 2 * n, 4, dtype=torch.long),
        txt_ids=torch.zeros(1, t, 4, dtype=torch.long), return_dict=False,
    )
    with torch.inference_mode():
        t0 = time.perf_counter()
        transformer(**inputs)
        out["step_s"] = time.perf_counter() - t0
    out["step_peak_gb"] = _rss_gb()
    del transformer, inputs
    gc.collect()

    with torch.device("meta"):
        _, text, _ = klein_4b()
    text = _materialise(text, bf)
    ids = torch.randint(0, 151936, (1, t))
    with torch.inference_mode():
        t0 = time.perf_counter()
        text(input_ids=ids, attention_mask=torch.ones_like(ids), output_hidden_states=True, use_cache=False)
        out["text_s"] = time.perf_counter() - t0
    del text
    gc.collect()

    with torch.device("meta"):
        _, _, vae = klein_4b()
    vae = _materialise(vae, bf)
    with torch.inference_mode():
        t0 = time.perf_counter()
        vae.encode(torch.randn(1, 3, size, size, dtype=bf))
        out["encode_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        vae.decode(torch.randn(1, 32, size // 8, size // 8, dtype=bf))
        out["decode_s"] = time.perf_counter() - t0
    out["peak_gb"] = _rss_gb()
    return out


def tiny_seconds(tmp: Path) -> dict:
    import numpy as np
    from tiny_editors import build_tiny_flux2_klein, build_tiny_qwen_image_edit

    from diffusemix.editors import EditRequest, load_editor

    rng = np.random.default_rng(0)
    reqs = [EditRequest((rng.random((64, 64, 3)) * 255).astype(np.uint8), p, 1) for p in ("snowy", "Autumn")] * 2
    out = {}
    for name, ed in (
        ("flux2-klein", load_editor("flux2-klein", model=str(build_tiny_flux2_klein(tmp / "k")), device="cpu",
                                    dtype="float32", edit_size=64, batch_size=4)),
        ("qwen-image-edit", load_editor("qwen-image-edit", model=str(build_tiny_qwen_image_edit(tmp / "q")),
                                        device="cpu", dtype="float32", edit_size=64)),
    ):
        ed.edit(reqs[:1])  # warm-up and text cache
        t0 = time.perf_counter()
        ed.edit(reqs)
        out[name] = (time.perf_counter() - t0) / len(reqs)
    return out


# ---------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024])
    ap.add_argument("--time", action="store_true", help="time the full-size FLUX.2 [klein] 4B on this CPU")
    ap.add_argument("--time-size", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-tiny", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from diffusemix.editors.model_cards import MODEL_CARDS

    cards = {
        "flux2-klein": MODEL_CARDS["black-forest-labs/FLUX.2-klein-4B"],
        "qwen-image-edit": MODEL_CARDS["Qwen/Qwen-Image-Edit-2511"],
        "flux-kontext": MODEL_CARDS["black-forest-labs/FLUX.1-Kontext-dev"],
    }
    t0 = time.perf_counter()
    vision = qwen_vision_flops()
    parts = {}
    counts = {}
    parts["flux2-klein"], counts["flux2-klein"] = klein_parts(args.sizes)
    parts["qwen-image-edit"], counts["qwen-image-edit"] = qwen_parts(args.sizes, vision=vision)
    parts["flux-kontext"], counts["flux-kontext"] = kontext_parts(args.sizes)
    paper = ip2p_parts()
    print(f"(counted in {time.perf_counter() - t0:.0f} s)\n")

    print("TFLOP per Î (text encoder once, transformer x steps x passes, VAE encode + decode)")
    print(f"{'editor':<17}{'size':>6}{'steps':>6}{'passes':>7}{'text':>8}{'step':>9}{'enc':>7}{'dec':>7}{'total':>9}")
    for name, by_size in parts.items():
        steps = cards[name].steps
        for e, p in by_size.items():
            print(
                f"{name:<17}{e:>6}{steps:>6}{p['passes']:>7}{p['text'] / TF:>8.2f}{p['step'] / TF:>9.2f}"
                f"{p['encode'] / TF:>7.2f}{p['decode'] / TF:>7.2f}{per_image(p, steps) / TF:>9.1f}"
            )
    print(
        f"{'instruct-pix2pix':<17}{256:>6}{100:>6}{3:>7}{paper['text'] / TF:>8.2f}{paper['step'] / TF:>9.2f}"
        f"{paper['encode'] / TF:>7.2f}{paper['decode'] / TF:>7.2f}{per_image(paper, 100) / TF:>9.1f}"
    )
    print("\nparameters (billions) and weights (GB) per dtype")
    print(f"{'editor':<17}{'transformer':>12}{'text enc':>10}{'vae':>8}{'total':>8}{'bf16 GB':>9}{'fp32 GB':>9}")
    for name, c in counts.items():
        total = c["transformer"] + c["text_encoder"] + c["vae"]
        print(
            f"{name:<17}{c['transformer'] / 1e9:>12.2f}{c['text_encoder'] / 1e9:>10.2f}{c['vae'] / 1e9:>8.3f}"
            f"{total / 1e9:>8.2f}{2 * total / 1e9:>9.1f}{4 * total / 1e9:>9.1f}"
        )
    print("\nraw (for diffusemix/editors/costs.py):")
    for name, by_size in parts.items():
        for e, p in by_size.items():
            print(f"  ({name!r}, {e}): ({p['text']:.4e}, {p['step']:.4e}, {p['passes']}, {p['encode']:.4e}, "
                  f"{p['decode']:.4e}),")
    for name, c in counts.items():
        print(f"  {name!r}: {c},")

    if args.time:
        t = time_klein(args.time_size)
        per = t["text_s"] + cards["flux2-klein"].steps * t["step_s"] + t["encode_s"] + t["decode_s"]
        print(
            f"\nFLUX.2 [klein] 4B, bfloat16, {args.threads} thread(s), {args.time_size} px, this CPU: transformer step"
            f" {t['step_s']:.1f} s, text encoder {t['text_s']:.1f} s, VAE encode {t['encode_s']:.1f} s, decode"
            f" {t['decode_s']:.1f} s -> {per:.0f} s per Î at 4 steps (text encoder once); peak resident"
            f" {t['peak_gb']:.1f} GB"
        )
    if not args.no_tiny:
        with tempfile.TemporaryDirectory() as tmp:
            s = tiny_seconds(Path(tmp))
        print("\ntiny editors (tests/tiny_editors.py), 64 px, seconds per Î: "
              + ", ".join(f"{k} {v:.3f}" for k, v in s.items()))


if __name__ == "__main__":
    main()
