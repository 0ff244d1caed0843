"""Scorers on tiny random-weight DINOv2 and CLIP models built offline (conftest).

The models are saved with save_pretrained and loaded through the same
from_pretrained code a Hub id takes; one test puts a model in a Hugging Face
cache layout and loads it by its Hub id.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from diffusemix.errors import ScorerLoadError
from diffusemix.scoring import (
    DEFAULT_CLIP_MODEL,
    DEFAULT_DINO_MODEL,
    ClipLabelScorer,
    ClipScorer,
    DinoScorer,
    NoScorer,
    Score,
    ScoreRule,
    class_phrase,
    load_scorer,
)

CLASSES = ["cat", "dog", "golden_retriever", "sports-car"]


def _images(make_rgb, n: int, seed: int, size: tuple[int, int] = (48, 40)) -> list[np.ndarray]:
    return [make_rgb(*size, seed=seed + k) for k in range(n)]


@pytest.fixture(scope="module")
def scorers(tiny_dino_dir: Path, tiny_clip_dir: Path) -> dict[str, object]:
    out = {
        "dino": load_scorer("dino", model=str(tiny_dino_dir)),
        "clip": load_scorer("clip", model=str(tiny_clip_dir)),
        "clip-label": load_scorer("clip-label", model=str(tiny_clip_dir), class_names=CLASSES),
    }
    for s in out.values():
        s.load()
    return out


# -- values -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["dino", "clip", "clip-label"])
def test_scores_are_in_range(scorers, make_rgb, odd_image, name):
    rng = np.random.default_rng(3)
    inputs = _images(make_rgb, 4, 0) + [odd_image, np.zeros((20, 30, 3), np.uint8)]
    generated = [rng.integers(0, 256, im.shape, dtype=np.uint8) for im in inputs[:3]]
    generated += [255 - inputs[3], np.full((17, 33, 3), 255, np.uint8), inputs[0]]
    labels = [CLASSES[k % len(CLASSES)] for k in range(len(inputs))]
    got = scorers[name].score(inputs, generated, labels=labels)
    assert len(got) == len(inputs)
    values = np.array([s.value for s in got])
    assert np.all(np.isfinite(values)) and np.all(values >= -1.0) and np.all(values <= 1.0)
    assert all(s.scorer == name for s in got)
    if name == "clip-label":
        assert all(0.0 <= s.value <= 1.0 and 0.0 <= s.input_value <= 1.0 for s in got)
        assert all(1 <= s.rank <= len(CLASSES) and 1 <= s.input_rank <= len(CLASSES) for s in got)
    else:
        assert all(s.rank is None and s.input_value is None for s in got)
        # different images are not all scored as identical
        assert values[:5].min() < 0.9999


@pytest.mark.parametrize("name", ["dino", "clip"])
def test_identical_images_score_one(scorers, make_rgb, odd_image, name):
    inputs = _images(make_rgb, 3, 10) + [odd_image]
    copies = [im.copy() for im in inputs]  # equal pixels, distinct arrays
    got = scorers[name].score(inputs, copies)
    np.testing.assert_allclose([s.value for s in got], 1.0, atol=1e-5)


def test_label_scores_of_identical_images_match_the_input(scorers, make_rgb):
    inputs = _images(make_rgb, 4, 20)
    labels = ["cat", "dog", "golden_retriever", "cat"]
    got = scorers["clip-label"].score(inputs, [im.copy() for im in inputs], labels=labels)
    for s in got:
        assert s.value == pytest.approx(s.input_value, abs=1e-5)
        assert s.rank == s.input_rank


def test_label_probabilities_are_a_softmax_over_the_class_names(scorers, make_rgb):
    # One image scored as each class in turn: the probabilities sum to 1 and
    # the ranks are a permutation of 1..K (ties aside).
    image = make_rgb(40, 40, seed=4)
    s = scorers["clip-label"].score([image] * len(CLASSES), [image] * len(CLASSES), labels=CLASSES)
    assert sum(x.value for x in s) == pytest.approx(1.0, abs=1e-6)
    assert sorted(x.rank for x in s) == list(range(1, len(CLASSES) + 1))
    best = max(s, key=lambda x: x.value)
    assert best.rank == 1


@pytest.mark.parametrize("name", ["dino", "clip", "clip-label"])
def test_same_inputs_same_scores_in_any_batch(tiny_dino_dir, tiny_clip_dir, make_rgb, name):
    folder = tiny_dino_dir if name == "dino" else tiny_clip_dir
    inputs = _images(make_rgb, 3, 30)
    inputs = [inputs[k % 3] for k in range(7)]  # one input behind several Î, as in an export
    generated = _images(make_rgb, 7, 40)
    labels = [CLASSES[k % 3] for k in range(7)]
    ref = None
    for bs in (1, 2, 5, 32):
        scorer = load_scorer(name, model=str(folder), batch_size=bs, class_names=CLASSES)
        got = scorer.score(inputs, generated, labels=labels)
        vals = np.array([[s.value, s.input_value or 0.0] for s in got])
        if ref is None:
            ref = vals
        np.testing.assert_allclose(vals, ref, atol=1e-5, err_msg=f"batch_size={bs}")
    # one pair on its own scores as it did among the others
    single = load_scorer(name, model=str(folder), class_names=CLASSES)
    alone = single.score([inputs[5]], [generated[5]], labels=labels[5:6])
    assert alone[0].value == pytest.approx(ref[5, 0], abs=1e-5)


def test_score_row_fields():
    s = Score(value=0.123456789, scorer="clip-label", rank=2, input_value=0.5, input_rank=1)
    want = {"score": 0.123457, "scorer": "clip-label", "label_rank": 2, "input_score": 0.5, "input_label_rank": 1}
    assert s.to_row() == want
    assert Score(value=0.5, scorer="dino").to_row() == {"score": 0.5, "scorer": "dino"}
    json.dumps(s.to_row())


def test_empty_call_and_bad_pairs(scorers, make_rgb):
    assert scorers["dino"].score([], []) == []
    im = make_rgb(16, 16)
    with pytest.raises(ValueError, match="1 input images for 2 generated"):
        scorers["dino"].score([im], [im, im])
    with pytest.raises(ValueError, match=r"generated image 0 must be a uint8 \(H, W, 3\) array; got float32"):
        scorers["clip"].score([im], [im.astype(np.float32)])
    with pytest.raises(ValueError, match="needs one class name per pair; got none"):
        scorers["clip-label"].score([im], [im])
    with pytest.raises(ValueError, match="'horse' are not among the scorer's class names"):
        scorers["clip-label"].score([im], [im], labels=["horse"])


def test_scorer_loads_once_and_describes_itself(tiny_dino_dir):
    scorer = DinoScorer(str(tiny_dino_dir), batch_size=4)
    assert not scorer.loaded
    scorer.load()
    model = scorer.parts["model"]
    scorer.load()
    assert scorer.parts["model"] is model
    d = scorer.describe()
    assert d["name"] == "dino" and d["model"] == str(tiny_dino_dir) and d["device"] == "cpu"
    json.dumps(d)


def test_class_phrase():
    assert class_phrase("golden_retriever") == "golden retriever"
    assert class_phrase(" sports-car ") == "sports car"


# -- the hub-id path ----------------------------------------------------------


def _as_hub_cache(folder: Path, cache: Path, repo_id: str) -> None:
    """Lay ``folder`` out as the Hugging Face cache keeps a downloaded repo."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    shutil.copytree(folder, repo / "snapshots" / commit)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)


def test_auto_scores_when_weights_are_cached(tiny_dino_dir, tmp_path, monkeypatch, make_rgb):
    import huggingface_hub.constants

    _as_hub_cache(tiny_dino_dir, tmp_path / "hub", DEFAULT_DINO_MODEL)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    scorer = load_scorer("auto")
    assert isinstance(scorer, DinoScorer) and scorer.loaded and scorer.model == DEFAULT_DINO_MODEL
    im = make_rgb(32, 32)
    assert scorer.score([im], [im.copy()])[0].value == pytest.approx(1.0, abs=1e-5)


def test_auto_falls_to_clip_when_only_clip_is_cached(tiny_clip_dir, tmp_path, monkeypatch):
    import huggingface_hub.constants

    _as_hub_cache(tiny_clip_dir, tmp_path / "hub", DEFAULT_CLIP_MODEL)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    scorer = load_scorer("auto")
    assert isinstance(scorer, ClipScorer) and scorer.model == DEFAULT_CLIP_MODEL


# -- no weights: no scores, said plainly --------------------------------------


def test_auto_without_weights_gives_no_scores_and_says_so(caplog, make_rgb):
    with caplog.at_level(logging.WARNING, logger="diffusemix"):
        scorer = load_scorer("auto")
    assert isinstance(scorer, NoScorer) and not scorer.available
    assert scorer.notice.startswith("no scores:")
    assert f"hf download {DEFAULT_DINO_MODEL}" in scorer.notice and "--scorer-model DIR" in scorer.notice
    assert "no scores" in caplog.text
    assert "no scores" in scorer.describe()["summary"]
    im = make_rgb(8, 8)
    with pytest.raises(RuntimeError, match="no scores"):
        scorer.score([im], [im])


def test_the_start_up_warning_gives_each_reason_whole(caplog):
    """Issue 20: the log line cut each reason at 200 characters, mid-word."""
    from diffusemix.scoring import ClipScorer, DinoScorer, ScorerLoadError

    whys = []
    for cls in (DinoScorer, ClipScorer):
        with pytest.raises(ScorerLoadError) as err:
            cls(None).load()
        whys.append(str(err.value))
    with caplog.at_level(logging.WARNING, logger="diffusemix"):
        load_scorer("auto")
    assert all(len(w) > 200 and w in caplog.text for w in whys)


def test_auto_with_a_named_model_raises_instead(tmp_path):
    with pytest.raises(ScorerLoadError, match=r"no scorer could be loaded with model="):
        load_scorer("auto", model=str(tmp_path / "nowhere"))


def test_auto_with_a_named_folder_of_either_kind_loads_it(tiny_clip_dir):
    assert isinstance(load_scorer("auto", model=str(tiny_clip_dir)), ClipScorer)


def test_none_is_scoring_off():
    s = load_scorer("none")
    assert isinstance(s, NoScorer) and "off" in s.notice


# -- load errors ----------------------------------------------------------------


def test_hub_id_not_cached_says_what_to_do():
    with pytest.raises(ScorerLoadError) as info:
        DinoScorer().load()
    msg = str(info.value)
    assert "'facebook/dinov2-small' could not be found locally or downloaded" in msg
    assert "`hf download facebook/dinov2-small`" in msg and "--scorer-model /path/to/dinov2-small" in msg
    with pytest.raises(ScorerLoadError, match="`hf download openai/clip-vit-base-patch32`"):
        ClipLabelScorer(class_names=["a", "b"]).load()


def test_missing_folder(tmp_path):
    with pytest.raises(ScorerLoadError, match=r"scorer model folder .*nope does not exist.*--scorer-model"):
        DinoScorer(str(tmp_path / "nope")).load()


def test_a_file_is_not_a_folder(tmp_path):
    f = tmp_path / "model.safetensors"
    f.write_bytes(b"x")
    with pytest.raises(ScorerLoadError, match="is a file; the DINOv2 scorer takes a transformers model folder"):
        DinoScorer(str(f)).load()


def test_folder_without_a_model(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ScorerLoadError, match=r"not a transformers model folder .* missing config.json, model.safet"):
        ClipScorer(str(tmp_path / "empty")).load()


def test_wrong_kind_of_model_is_refused(tiny_dino_dir, tiny_clip_dir):
    # transformers would load a DINOv2 checkpoint into CLIPModel with random
    # weights (a warning only): the scorer must refuse instead.
    with pytest.raises(ScorerLoadError, match=r"holds a 'dinov2' model, but the CLIP scorer needs one of clip"):
        ClipScorer(str(tiny_dino_dir)).load()
    with pytest.raises(ScorerLoadError, match=r"holds a 'clip' model, but the DINOv2 scorer needs"):
        DinoScorer(str(tiny_clip_dir)).load()


def test_checkpoint_missing_weights_is_refused(tiny_dino_dir, tmp_path):
    from safetensors.torch import load_file, save_file

    folder = tmp_path / "partial"
    shutil.copytree(tiny_dino_dir, folder)
    tensors = load_file(folder / "model.safetensors")
    dropped = sorted(k for k in tensors if "layernorm" in k)
    kept = {k: v for k, v in tensors.items() if k not in dropped}
    save_file(kept, folder / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ScorerLoadError, match=r"lacks 2 weight\(s\) the DINOv2 scorer needs \(layernorm.bias, "):
        DinoScorer(str(folder)).load()


def test_folder_without_image_processor(tiny_dino_dir, tmp_path):
    folder = tmp_path / "noproc"
    shutil.copytree(tiny_dino_dir, folder)
    (folder / "preprocessor_config.json").unlink()
    with pytest.raises(ScorerLoadError, match=r"could not load the DINOv2 scorer from .*noproc.*image processor"):
        DinoScorer(str(folder)).load()


def test_label_scorer_needs_a_tokenizer(tiny_clip_dir, tmp_path):
    folder = tmp_path / "notok"
    shutil.copytree(tiny_clip_dir, folder)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        (folder / f).unlink()
    ClipScorer(str(folder)).load()  # image-image CLIP needs no tokenizer
    with pytest.raises(ScorerLoadError, match="no usable CLIP tokenizer"):
        ClipLabelScorer(str(folder), class_names=CLASSES).load()


def test_unavailable_device_is_a_load_error():
    import torch

    if torch.cuda.is_available():  # pragma: no cover - CPU machines here
        pytest.skip("CUDA is available")
    with pytest.raises(ScorerLoadError, match="DINOv2 scorer: device 'cuda' was asked for but CUDA is not available"):
        DinoScorer(device="cuda")


def test_bad_settings():
    with pytest.raises(ValueError, match="ScorerSpec.name must be one of none, auto, genmix, dino, clip, clip-label; got 'sift'"):
        load_scorer("sift")
    with pytest.raises(ValueError, match=r"ScorerSpec.batch_size must be an integer in \[1, 4096\]; got 0"):
        load_scorer("dino", batch_size=0)
    with pytest.raises(ValueError, match="at least two non-empty class names"):
        ClipLabelScorer(class_names=["only"])
    with pytest.raises(ValueError, match="class names must be distinct"):
        ClipLabelScorer(class_names=["a", "a"])
    with pytest.raises(ValueError, match=r"ScorerSpec.template must contain \{\} once"):
        ClipLabelScorer(class_names=["a", "b"], template="a photo")


# -- the rule -------------------------------------------------------------------


def test_rule_rejects_below_threshold_and_by_rank():
    rule = ScoreRule(min_score=0.7)
    assert rule.reject(Score(0.7, "dino")) is None
    assert rule.reject(Score(0.69, "dino")) == "dino score 0.690 < min 0.7"
    assert not ScoreRule().active and ScoreRule().reject(Score(-1.0, "clip")) is None
    by_rank = ScoreRule(max_rank=1)
    assert by_rank.reject(Score(0.9, "clip-label", rank=1)) is None
    assert by_rank.reject(Score(0.3, "clip-label", rank=2)) == "true class ranked 2 > max rank 1"


def test_rule_validation_and_scorer_check():
    for bad in (1.5, -2, float("nan"), "0.5", True):
        with pytest.raises(ValueError, match="ScoreRule.min_score must be a number in \\[-1, 1\\]"):
            ScoreRule(min_score=bad)
    with pytest.raises(ValueError, match="ScoreRule.max_rank must be an integer >= 1; got 0"):
        ScoreRule(max_rank=0)
    with pytest.raises(ValueError, match="needs scores, but no scorer is loaded"):
        ScoreRule(min_score=0.5).check_scorer(NoScorer("no weights"))
    with pytest.raises(ValueError, match="ScoreRule.max_rank needs the clip-label scorer"):
        ScoreRule(max_rank=1).check_scorer(DinoScorer())
    ScoreRule().check_scorer(NoScorer())


def test_import_is_cheap():
    code = "import sys, diffusemix.scoring; print('torch' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
