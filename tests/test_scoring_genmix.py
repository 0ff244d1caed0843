"""The genmix scorer: GenMix's features (DINO v1 ViT-B/16 class token after the final norm, a plain 224 x 224
bilinear resize, ImageNet mean/std), the ones its 0.7 threshold was set on (issue 18)."""

from __future__ import annotations

import numpy as np
import pytest

from diffusemix.errors import ScorerLoadError
from diffusemix.scoring import GENMIX_THRESHOLD, GenMixScorer, load_scorer


def _images(n: int, size: int = 40) -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    return [rng.integers(0, 256, (size, size + 7 * k, 3), dtype=np.uint8) for k in range(n)]


def test_the_feature_is_the_class_token_after_the_norm_of_a_plain_resize(tiny_dino_v1_dir):
    """Against a direct transformers computation: ViTImageProcessor doing GenMix's preprocessing (resize to the
    model's size, no crop, bilinear, ImageNet mean/std), the encoder's last hidden state before the final layer
    norm, the norm applied by hand, the class token."""
    import torch
    from PIL import Image
    from transformers import ViTImageProcessor, ViTModel

    scorer = load_scorer("genmix", model=str(tiny_dino_v1_dir), device="cpu", dtype="float32")
    images = _images(3)
    got = scorer.embed(images)

    model = ViTModel.from_pretrained(tiny_dino_v1_dir, add_pooling_layer=False).eval()
    side = model.config.image_size
    proc = ViTImageProcessor(do_resize=True, size={"height": side, "width": side}, resample=Image.Resampling.BILINEAR,
                             do_rescale=True, do_normalize=True, image_mean=[0.485, 0.456, 0.406],
                             image_std=[0.229, 0.224, 0.225])
    pixels = proc(images=[Image.fromarray(im) for im in images], return_tensors="pt")["pixel_values"]
    with torch.inference_mode():
        out = model(pixel_values=pixels, output_hidden_states=True)
        cls = model.layernorm(out.hidden_states[-1])[:, 0]  # the class token after the final layer norm
    ref = cls.numpy().astype(np.float64)
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    np.testing.assert_allclose(got, ref, atol=2e-4)
    assert got.shape == (3, 32)


def test_the_score_is_the_cosine_and_the_threshold_is_genmixs(tiny_dino_v1_dir):
    scorer = load_scorer("genmix", model=str(tiny_dino_v1_dir), device="cpu", dtype="float32")
    a, b = _images(2, 48)
    same, other = scorer.score([a, a], [a, b])
    assert same.value == pytest.approx(1.0, abs=1e-6) and same.scorer == "genmix" and other.value < 1.0
    f = scorer.embed([a, b])
    assert other.value == pytest.approx(float(f[0] @ f[1]), abs=1e-9)
    assert GENMIX_THRESHOLD == 0.7 and scorer.describe()["threshold"] == 0.7
    assert "224 x 224" in scorer.describe()["preprocessing"]


def test_a_dinov2_folder_is_not_genmixs_model(tiny_dino_dir):
    scorer = load_scorer("genmix", model=str(tiny_dino_dir), device="cpu")
    with pytest.raises(ScorerLoadError, match=r"holds a 'dinov2' model, but the GenMix \(DINO ViT-B/16\) scorer"):
        scorer.load()
    assert isinstance(scorer, GenMixScorer) and scorer.default_model == "facebook/dino-vitb16"


def test_the_cli_names_which_scorer_a_threshold_belongs_to(capsys):
    from diffusemix import cli

    with pytest.raises(SystemExit):
        cli.main(["export", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "genmix (GenMix's filter: DINO ViT-B/16 class-token cosine of I and Î at 224 x 224, its threshold 0.7)" \
        in text
    assert "0.7 is GenMix's, for --score genmix" in text and "none is published for dino (DINOv2)" in text


def test_an_export_scored_by_genmix_records_it(tmp_path, tiny_dino_v1_dir, capsys):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from export_helpers import make_dataset

    from diffusemix import cli
    from diffusemix.export import folder
    from diffusemix.fractals import write_fractal_set

    data = make_dataset(tmp_path / "data", classes=("cat", "dog"), per_class=1)
    write_fractal_set(tmp_path / "fr", count=2, size=32, seed=1)
    out = tmp_path / "out"
    code = cli.main(["export", str(data), str(out), "--editor", "preview", "--prompts", "snowy", "--size", "32",
                     "--fractals", str(tmp_path / "fr"), "--no-progress", "--score", "genmix", "--scorer-model",
                     str(tiny_dino_v1_dir), "--min-similarity", "-1"])
    assert code == 0, capsys.readouterr().err
    rows = folder.read_rows(out)
    assert rows and all(r["scorer"] == "genmix" and -1 <= r["score"] <= 1 for r in rows)
    run = folder.read_settings(out)
    assert run["scorer"]["name"] == "genmix" and run["scorer"]["rule"]["min_score"] == -1.0
