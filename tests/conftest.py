"""Shared fixtures: small test images and tiny diffusion pipelines built offline.

Nothing here reaches the network. The Hugging Face environment is set before
any test imports huggingface_hub (which reads it once, at import): offline
mode, no telemetry, and an empty HF_HOME, so "weights not cached" is what
every test sees unless it builds its own pipeline folder.

Fixtures:
    make_rgb(h, w, seed=0)  factory: a smooth, colourful uint8 (h, w, 3) image
    rgb_image               64x64 image from make_rgb
    odd_image               33x17 image (odd sides, not a multiple of 8)
    tiny_ip2p_dir           folder of a saved tiny StableDiffusionInstructPix2PixPipeline
    tiny_img2img_dir        folder of a saved tiny StableDiffusionImg2ImgPipeline
                            (loads through AutoPipelineForImage2Image)
    tiny_dino_dir, tiny_clip_dir  folders of tiny random DINOv2 / CLIP scorer models
    tiny_flux2_klein_dir, tiny_qwen_image_edit_dir, tiny_flux_kontext_dir
                            folders of tiny random instruction editors
                            (tests/tiny_editors.py)
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

# -- environment: before anything imports huggingface_hub / transformers ----
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["HF_HOME"] = _HF_HOME = tempfile.mkdtemp(prefix="diffusemix-test-hf-home-")
atexit.register(shutil.rmtree, _HF_HOME, ignore_errors=True)
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for tiny_pipelines

#: Threads torch may use in tests (the test machines share two cores).
TORCH_THREADS = 2


def _smooth_rgb(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A colourful uint8 image with gradients, a few flat shapes and mild noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    yy /= max(h - 1, 1)
    xx /= max(w - 1, 1)
    a, b, c = rng.uniform(0.5, 3.0, 3)
    img = np.stack(
        [
            0.5 + 0.4 * np.sin(a * np.pi * xx + 1.0),
            0.5 + 0.4 * np.sin(b * np.pi * yy + 2.0),
            0.5 + 0.4 * np.cos(c * np.pi * (xx + yy)),
        ],
        axis=-1,
    )
    box = (np.abs(xx - 0.5) < 0.2) & (np.abs(yy - 0.6) < 0.25)
    img[box] = rng.uniform(0.1, 0.9, 3)
    img += rng.normal(0.0, 0.03, img.shape)
    return (np.clip(img, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)


@pytest.fixture
def make_rgb() -> Callable[..., np.ndarray]:
    """Factory ``make_rgb(h, w, seed=0)`` for test images."""
    return _smooth_rgb


@pytest.fixture
def rgb_image() -> np.ndarray:
    return _smooth_rgb(64, 64, 0)


@pytest.fixture
def odd_image() -> np.ndarray:
    return _smooth_rgb(33, 17, 1)


def _use_few_threads() -> None:
    import torch

    torch.set_num_threads(TORCH_THREADS)


@pytest.fixture(scope="session")
def tiny_ip2p_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random InstructPix2Pix pipeline saved with save_pretrained."""
    from tiny_pipelines import build_tiny_ip2p

    _use_few_threads()
    return build_tiny_ip2p(tmp_path_factory.mktemp("tiny-ip2p") / "pipeline")


@pytest.fixture(scope="session")
def tiny_img2img_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Stable Diffusion img2img pipeline saved with save_pretrained."""
    from tiny_pipelines import build_tiny_img2img

    _use_few_threads()
    return build_tiny_img2img(tmp_path_factory.mktemp("tiny-img2img") / "pipeline")


@pytest.fixture(scope="session")
def tiny_dino_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random DINOv2 model + image processor saved with save_pretrained."""
    from tiny_scorers import build_tiny_dino

    _use_few_threads()
    return build_tiny_dino(tmp_path_factory.mktemp("tiny-dino") / "model")


@pytest.fixture(scope="session")
def tiny_dino_v1_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random DINO v1 ViT (the architecture of facebook/dino-vitb16) saved with save_pretrained."""
    from tiny_scorers import build_tiny_dino_v1

    _use_few_threads()
    return build_tiny_dino_v1(tmp_path_factory.mktemp("tiny-dino-v1") / "model")


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random CLIP model + image processor + byte-level tokenizer."""
    from tiny_scorers import build_tiny_clip

    _use_few_threads()
    return build_tiny_clip(tmp_path_factory.mktemp("tiny-clip") / "model")


@pytest.fixture(scope="session")
def tiny_flux2_klein_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random FLUX.2 [klein] pipeline (step-distilled, as the 4B) saved with save_pretrained."""
    from tiny_editors import build_tiny_flux2_klein

    _use_few_threads()
    return build_tiny_flux2_klein(tmp_path_factory.mktemp("tiny-flux2-klein") / "pipeline")


@pytest.fixture(scope="session")
def tiny_qwen_image_edit_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Qwen-Image-Edit-2509/2511 (QwenImageEditPlusPipeline) saved with save_pretrained."""
    from tiny_editors import build_tiny_qwen_image_edit

    _use_few_threads()
    return build_tiny_qwen_image_edit(tmp_path_factory.mktemp("tiny-qwen-image-edit") / "pipeline")


@pytest.fixture(scope="session")
def tiny_flux_kontext_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random FLUX.1 Kontext [dev] (FluxKontextPipeline) saved with save_pretrained."""
    from tiny_editors import build_tiny_flux_kontext

    _use_few_threads()
    return build_tiny_flux_kontext(tmp_path_factory.mktemp("tiny-flux-kontext") / "pipeline")
