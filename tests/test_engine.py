"""The engine: draw, generate, apply; the six stages."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from PIL import Image

from diffusemix.editors import EditorSpec, register_editor
from diffusemix.editors.base import EditRequest, EditResult, Editor
from diffusemix.engine import STAGE_NAMES, Stages, apply_record, augment, generate, replay
from diffusemix.fractals import FractalSet
from diffusemix.functional import make_mask
from diffusemix.recipe import Recipe, draw


@register_editor
class NoiseEditor:
    """A test double for the Editor protocol: Î = I XOR noise(seed).

    Deterministic per (image, seed), so seeds and replays can be checked.
    """

    name = "test-noise"
    is_diffusion = False
    defaults: dict = {"max_retries": 0}
    presets: dict = {}
    notice = None
    device = "cpu"
    max_retries = 0

    def __init__(self, degenerate_for: set[str] | None = None):
        self.calls: list[list[EditRequest]] = []
        self.degenerate_for = degenerate_for or set()
        self.spec = EditorSpec(name=self.name, max_retries=0)

    def load(self) -> None:
        pass

    def with_settings(self, **changes):
        return self

    def describe(self) -> dict:
        return {"name": self.name}

    def edit(self, requests, *, progress=None, cancel=None):
        self.calls.append(list(requests))
        out = []
        for r in requests:
            noise = np.random.default_rng(r.seed).integers(0, 256, r.image.shape, dtype=np.uint8)
            if r.prompt in self.degenerate_for:
                out.append(EditResult(np.zeros_like(r.image), seed=r.seed + 1, attempts=3, degenerate="all black"))
            else:
                out.append(EditResult(r.image ^ noise, seed=r.seed))
            if progress:
                progress(len(out), len(requests))
        return out


@pytest.fixture(scope="module")
def fractal_set(tmp_path_factory) -> FractalSet:
    folder = tmp_path_factory.mktemp("fractals")
    rng = np.random.default_rng(0)
    for i in range(5):
        Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(folder / f"f{i}.png")
    return FractalSet.from_folder(folder)


def img(size: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


def test_editor_double_satisfies_the_protocol():
    assert isinstance(NoiseEditor(), Editor)


def test_augment_gives_six_stages_per_prompt_in_order(fractal_set):
    r = Recipe(size=32, prompts=("sunset", "rain", "mosaic"), images_per_prompt=2, seam=4)
    editor = NoiseEditor()
    stages = augment(img(32), r, editor, fractal_set, source="cat/1.png")
    assert len(stages) == 6
    assert [s.record.prompt for s in stages] == ["sunset", "sunset", "rain", "rain", "mosaic", "mosaic"]
    assert len(editor.calls) == 1 and len(editor.calls[0]) == 6  # one editor call: the editor batches
    for s in stages:
        names = [n for n, _ in s.items()]
        assert names == list(STAGE_NAMES)
        for name, a in s.items():
            if name == "mask":
                assert a.shape == (32, 32) and a.dtype == np.float32
            else:
                assert a.shape == (32, 32, 3) and a.dtype == np.uint8, name
        assert s.record.source == "cat/1.png" and s.degenerate is None


def test_stages_follow_the_equations(fractal_set):
    r = Recipe(
        size=48, prompts=("sunset",), lam=(0.1, 0.9), layouts=("right", "bottom"), mask="ramp", seam=8,
        arithmetic="rounded",
    )
    s = augment(img(48, 1), r, NoiseEditor(), fractal_set)[0]
    m = make_mask(48, 48, s.record.layout, kind="ramp", seam=8).astype(np.float64)[..., None]
    np.testing.assert_array_equal(s.mask, m[..., 0])
    hyb = m * s.input + (1 - m) * s.generated
    assert np.abs(s.hybrid - hyb).max() <= 0.5 + 1e-4
    aug = (1 - s.record.lam) * hyb + s.record.lam * s.fractal.astype(np.float64)
    assert np.abs(s.augmented - aug).max() <= 0.5 + 1e-4
    np.testing.assert_array_equal(s.fractal, fractal_set.load(s.record.fractal, 48))


def test_same_seed_same_pixels_other_seed_other_pixels(fractal_set):
    r = Recipe(size=32, prompts=("sunset", "rain"), lam=(0.0, 1.0), layouts=("left", "right", "top", "bottom"))
    a = augment(img(32), r, NoiseEditor(), fractal_set)
    b = augment(img(32), r, NoiseEditor(), fractal_set)
    assert [x.record for x in a] == [x.record for x in b]
    for x, y in zip(a, b):
        for (n, u), (_, v) in zip(x.items(), y.items()):
            np.testing.assert_array_equal(u, v, err_msg=n)
    c = augment(img(32), r.replace(seed=7), NoiseEditor(), fractal_set)
    assert [x.record.seed for x in a] != [x.record.seed for x in c]
    assert any(not np.array_equal(x.augmented, y.augmented) for x, y in zip(a, c))


def test_records_carry_the_seed_actually_used_and_degenerate_samples_are_flagged(fractal_set):
    r = Recipe(size=32, prompts=("sunset", "rain"))
    drawn = draw(r, "image", fractal_set.names)
    stages = augment(img(32), r, NoiseEditor(degenerate_for={"rain"}), fractal_set)
    assert stages[0].degenerate is None and stages[0].record == drawn[0]
    assert stages[1].degenerate == "all black"
    assert stages[1].record.seed == drawn[1].seed + 1 and stages[1].record.attempts == 3


def test_fractal_override(fractal_set):
    r = Recipe(size=32, prompts=("sunset",), lam=1.0)
    f = np.full((32, 32, 3), 77, np.uint8)
    s = augment(img(32), r, NoiseEditor(), fractal_set, fractal_override=f)[0]
    np.testing.assert_array_equal(s.augmented, f)  # λ = 1 gives F
    assert s.record.fractal == "(uploaded)"
    with pytest.raises(ValueError, match="fractal_override must be uint8 of shape"):
        augment(img(32), r, NoiseEditor(), fractal_set, fractal_override=f[:8])


def test_replay_rebuilds_a_sample_from_its_record(fractal_set):
    r = Recipe(size=32, prompts=("sunset", "rain"), lam=(0.1, 0.5))
    editor = NoiseEditor()
    first = augment(img(32, 3), r, editor, fractal_set)
    row = first[1].record.to_dict()  # e.g. read back from a manifest
    again = replay(type(first[1].record).from_dict(row), img(32, 3), editor, fractal_set)
    np.testing.assert_array_equal(again.augmented, first[1].augmented)


def test_apply_record_is_pure_and_checks_dtypes():
    rec = draw(Recipe(size=16, seam=4), "x", ["f.png"])[0]
    i, g, f = img(16, 1), img(16, 2), img(16, 3)
    s1, s2 = apply_record(rec, i, g, f), apply_record(rec, i, g, f)
    np.testing.assert_array_equal(s1.augmented, s2.augmented)
    with pytest.raises(ValueError, match="must be uint8 arrays"):
        apply_record(rec, i.astype(np.float32), g, f)


def test_augment_rejects_an_unprepared_image(fractal_set):
    with pytest.raises(ValueError, match=r"shape \(32, 32, 3\) for recipe.size=32.*images.prepare"):
        augment(img(40), Recipe(size=32), NoiseEditor(), fractal_set)


def test_generate_checks_what_the_editor_returns():
    rec = draw(Recipe(size=16, seam=4), "x", ["f.png"])[0]

    class Short(NoiseEditor):
        def edit(self, requests, **kw):
            return []

    class WrongSize(NoiseEditor):
        def edit(self, requests, **kw):
            return [EditResult(np.zeros((8, 8, 3), np.uint8), seed=1) for _ in requests]

    with pytest.raises(RuntimeError, match="returned 0 results for 1 requests"):
        generate(Short(), [(rec, img(16))])
    with pytest.raises(RuntimeError, match=r"returned shape \(8, 8, 3\)"):
        generate(WrongSize(), [(rec, img(16))])


def test_stage_images(fractal_set):
    s = augment(img(32), Recipe(size=32, prompts=("sunset",)), NoiseEditor(), fractal_set)[0]
    assert s.image("mask").mode == "L" and s.image("augmented").mode == "RGB"
    m = np.asarray(s.image("mask"))
    assert m.max() == 255 and m.min() == 0
    with pytest.raises(ValueError, match="unknown stage 'blended'"):
        s.image("blended")
    assert isinstance(dataclasses.replace(s, degenerate="x"), Stages)


def test_a_picked_fractal_is_used_and_recorded(fractal_set):
    name = fractal_set.names[3]
    stages = augment(img(32), Recipe(size=32, prompts=("sunset", "rain")), NoiseEditor(), fractal_set, fractal_name=name)
    assert {s.record.fractal for s in stages} == {name}
    for s in stages:
        np.testing.assert_array_equal(s.fractal, fractal_set.load(name, 32))
    with pytest.raises(ValueError, match="'nope.png' is not in the fractal set"):
        augment(img(32), Recipe(size=32), NoiseEditor(), fractal_set, fractal_name="nope.png")


# -- issue 8: the wrong kind of argument gets a TypeError that says what to pass


def test_augment_given_a_pil_image_says_to_prepare_it(fractal_set):
    pil = Image.fromarray(img(32))
    with pytest.raises(TypeError, match=r"image must be a uint8 numpy array.*got PIL.*prepare\(load_image"):
        augment(pil, Recipe(size=32), NoiseEditor(), fractal_set)  # type: ignore[arg-type]


def test_augment_given_a_dict_recipe_says_to_build_a_recipe(fractal_set):
    with pytest.raises(TypeError, match=r"recipe must be a Recipe.*got dict.*Recipe\(\*\*d\)|Recipe.from_dict"):
        augment(img(32), {"size": 32}, NoiseEditor(), fractal_set)  # type: ignore[arg-type]


@pytest.mark.parametrize("editor", [None, "preview", object()])
def test_augment_without_an_editor_says_to_load_one(fractal_set, editor):
    with pytest.raises(TypeError, match=r"editor must be an editor.*load_editor\("):
        augment(img(32), Recipe(size=32), editor, fractal_set)  # type: ignore[arg-type]


def test_augment_without_a_fractal_set_says_to_load_one():
    with pytest.raises(TypeError, match=r"fractals must be a FractalSet.*FractalSet.default\(\)"):
        augment(img(32), Recipe(size=32), NoiseEditor(), None)  # type: ignore[arg-type]


def test_stages_know_the_editor_that_made_them(fractal_set):
    stages = augment(img(32), Recipe(size=32, prompts=("a",)), NoiseEditor(), fractal_set)
    assert stages[0].editor == "test-noise"
