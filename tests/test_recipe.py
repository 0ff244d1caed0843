"""The recipe, its presets and the per-sample draw."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from diffusemix.recipe import PRESETS, Recipe, SampleRecord, draw, draw_prompts, get_preset

FRACTALS = [f"fractal_{i:03d}.png" for i in range(64)]


def test_paper_preset_is_the_reference_defaults():
    r = get_preset("paper")
    assert r.size == 256 and r.resize == "resize"
    assert r.layouts == ("left", "top")
    assert r.mask == "linspace" and r.seam == 20 and r.arithmetic == "reference"
    assert r.lam == 0.2
    assert r.images_per_prompt == 1 and r.prompts_per_image == "all"
    assert r.prompts == (
        "Autumn", "snowy", "watercolor art", "sunset", "rainbow",
        "aurora", "mosaic", "ukiyo-e", "a sketch with crayon",
    )
    assert r.samples_per_image == 9
    assert r == Recipe()  # the defaults are the paper preset
    q = get_preset("quick")
    assert q.prompts == ("sunset", "Autumn") and q.arithmetic == "reference" and q.mask == "linspace"
    b = get_preset("paper-binary")
    assert b.mask == "binary" and set(b.layouts) == {"left", "right", "top", "bottom"}
    assert b.arithmetic == "rounded" and b.prompts_per_image == "all"


def test_preset_overrides_and_unknown_preset():
    assert get_preset("paper", size=128).size == 128
    with pytest.raises(ValueError, match="preset must be one of paper, paper-binary, quick; got 'papr'"):
        get_preset("papr")


def test_recipe_is_frozen_and_round_trips_through_json():
    r = Recipe(lam=(0.1, 0.3), layouts=("right", "bottom"))
    with pytest.raises(Exception):
        r.size = 3  # type: ignore[misc]
    d = json.loads(json.dumps(r.to_dict()))
    assert Recipe.from_dict(d) == r
    with pytest.raises(ValueError, match="Recipe has no field sise; its fields are"):
        Recipe.from_dict({"sise": 3})


def test_layouts_may_be_a_comma_string():
    assert Recipe(layouts="left, right").layouts == ("left", "right")


@pytest.mark.parametrize(
    "field,value,match",
    [
        ("size", 4, r"Recipe.size must be an integer in \[8, 4096\]; got 4"),
        ("size", 256.0, r"Recipe.size .* got 256.0"),
        ("size", True, r"Recipe.size"),
        ("resize", "crop", "Recipe.resize must be one of resize, center-crop; got 'crop'"),
        ("prompts", (), "Recipe.prompts must hold at least one prompt"),
        ("prompts", "sunset", "must be a list of prompts, not one string"),
        ("prompts", ("sunset", " "), "Recipe.prompts: prompt 2 is blank"),
        ("prompts", ("sunset", "Sunset"), "Recipe.prompts: prompt 'Sunset' is given twice"),
        ("prompts", ("sunset", 3), "Recipe.prompts: prompt 2 must be a string; got 3"),
        ("layouts", (), "Recipe.layouts must hold at least one of left, right, top, bottom"),
        ("layouts", ("left", "diagonal"), "Recipe.layouts must be made of left, right, top, bottom; got 'diagonal'"),
        ("layouts", ("left", "left"), "must not repeat a layout"),
        ("mask", "soft", "Recipe.mask must be one of binary, linspace, ramp; got 'soft'"),
        ("arithmetic", "exact", "Recipe.arithmetic must be one of reference, rounded; got 'exact'"),
        ("prompts_per_image", 0, r'Recipe.prompts_per_image must be "all" or a whole number from 1 to .* \(9\); got 0'),
        ("prompts_per_image", 10, r"Recipe.prompts_per_image .*; got 10"),
        ("prompts_per_image", "some", r"Recipe.prompts_per_image .*; got 'some'"),
        ("prompts_per_image", True, r"Recipe.prompts_per_image .*; got True"),
        ("prompts_per_image", 1.5, r"Recipe.prompts_per_image .*; got 1.5"),
        ("seam", -1, "Recipe.seam must be an integer >= 0; got -1"),
        ("seam", 300, r"Recipe.seam must not exceed the output size \(256 px\); got 300"),
        ("lam", 1.2, r"Recipe.lam must be in \[0, 1\]; got 1.2"),
        ("lam", "abc", r"Recipe.lam must be a number in \[0, 1\] or a \(low, high\) pair; got 'abc'"),
        ("lam", (0.5, 0.2), r"Recipe.lam range must satisfy 0 <= low <= high <= 1; got \(0.5, 0.2\)"),
        ("lam", (0.1, 0.2, 0.3), r"Recipe.lam must be a number or a \(low, high\) pair"),
        ("images_per_prompt", 0, r"Recipe.images_per_prompt must be an integer in \[1, 1000\]; got 0"),
        ("seed", -5, r"Recipe.seed must be an integer in \[0, 4294967295\]; got -5"),
    ],
)
def test_invalid_values_name_the_field_and_value(field, value, match):
    with pytest.raises(ValueError, match=match):
        Recipe(**{field: value})


def test_draw_counts_and_contents():
    r = Recipe(images_per_prompt=2, lam=(0.1, 0.3), layouts=("left", "right", "top", "bottom"))
    recs = draw(r, "cat/001.jpg", FRACTALS)
    assert len(recs) == r.samples_per_image == 18
    assert [x.prompt for x in recs[:4]] == ["Autumn", "Autumn", "snowy", "snowy"]
    assert [x.copy for x in recs[:4]] == [0, 1, 0, 1]
    for x in recs:
        assert x.source == "cat/001.jpg" and x.size == 256 and x.mask == "linspace" and x.seam == 20
        assert x.arithmetic == "reference" and x.resize == "resize"
        assert x.layout in r.layouts and x.fractal in FRACTALS and 0.1 <= x.lam <= 0.3
        assert 0 <= x.seed < 2**32 and x.attempts == 1


def test_draw_is_deterministic_and_seed_dependent():
    r = Recipe()
    a = draw(r, "dog/7.png", FRACTALS)
    assert a == draw(r, "dog/7.png", FRACTALS)
    b = draw(r.replace(seed=1), "dog/7.png", FRACTALS)
    assert [x.seed for x in a] != [x.seed for x in b]
    c = draw(r, "dog/8.png", FRACTALS)
    assert [x.seed for x in a] != [x.seed for x in c]


def test_a_record_does_not_depend_on_the_other_prompts():
    """Adding a prompt or reordering prompts leaves the other samples unchanged."""
    r1 = Recipe(prompts=("sunset", "Autumn"))
    r2 = Recipe(prompts=("rain", "Autumn", "sunset"))
    d1 = {x.prompt: x for x in draw(r1, "a.png", FRACTALS)}
    d2 = {x.prompt: x for x in draw(r2, "a.png", FRACTALS)}
    assert d1["sunset"] == d2["sunset"] and d1["Autumn"] == d2["Autumn"]


def test_draw_uses_every_choice_over_many_images():
    r = Recipe(layouts=("left", "right", "top", "bottom"), lam=(0.0, 1.0))
    recs = [x for i in range(100) for x in draw(r, f"img{i}.png", FRACTALS[:8])]
    assert {x.layout for x in recs} == set(r.layouts)
    assert {x.fractal for x in recs} == set(FRACTALS[:8])
    lams = [x.lam for x in recs]
    assert min(lams) < 0.1 and max(lams) > 0.9


def test_binary_records_have_no_seam_and_lam_is_exact():
    recs = draw(Recipe(mask="binary", lam=0.35), "x", FRACTALS)
    assert all(x.seam == 0 and x.lam == 0.35 for x in recs)


def test_draw_needs_fractals():
    with pytest.raises(ValueError, match="fractal_names is empty"):
        draw(Recipe(), "x", [])


def test_sample_record_round_trip_ignores_extra_manifest_columns():
    x = draw(Recipe(), "a/b.png", FRACTALS)[0]
    row = {**x.to_dict(), "file_name": "a/b_0.png", "label": "a", "editor": {"name": "preview"}}
    assert SampleRecord.from_dict(json.loads(json.dumps(row))) == x


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), key=st.text(min_size=0, max_size=30), n=st.integers(1, 3))
def test_property_draw_is_a_pure_function(seed, key, n):
    r = Recipe(seed=seed, images_per_prompt=n, prompts=("sunset", "rain"), lam=(0.0, 0.5))
    a, b = draw(r, key, FRACTALS), draw(r, key, FRACTALS)
    assert a == b and len(a) == 2 * n
    assert all(0.0 <= x.lam <= 0.5 for x in a)


def test_presets_are_valid_recipes():
    for name, r in PRESETS.items():
        assert isinstance(r, Recipe), name


# -- issue 8: one validation for the library, the CLI and the app --------------


@pytest.mark.parametrize("lam", [[0.1, "x"], ("a", "b"), [None, 0.3], [0.1, [0.2]]])
def test_a_lam_pair_with_a_non_number_names_the_field(lam):
    with pytest.raises(ValueError, match=r"Recipe.lam must be a number in \[0, 1\] or a \(low, high\) pair; got"):
        Recipe(lam=lam)


@pytest.mark.parametrize(
    "prompt, match",
    [
        ("snowy\nsunset", "line break"),
        ("snowy\rsunset", "line break"),
        ("snowy\u2028sunset", "line break"),
        ("x" * 5000, "5000 characters long; the limit is 200"),
        ("x" * 201, "201 characters long"),
    ],
    ids=["newline", "carriage-return", "line-separator", "5000-chars", "201-chars"],
)
def test_recipe_refuses_the_prompts_the_cli_and_app_refuse(prompt, match):
    from diffusemix.prompts import check_prompts, parse_prompt_list

    with pytest.raises(ValueError, match="Recipe.prompts: prompt 2 .*" + match):
        Recipe(prompts=("sunset", prompt))
    with pytest.raises(ValueError, match=match):  # the app's and the CLI's check: the same words
        check_prompts(["sunset", prompt])
    if "\n" not in prompt and "\r" not in prompt and "\u2028" not in prompt:
        with pytest.raises(ValueError, match=match):
            parse_prompt_list("sunset," + prompt)


def test_recipe_keeps_good_prompts_stripped():
    assert Recipe(prompts=(" sunset ", "x" * 200)).prompts == ("sunset", "x" * 200)


# --- prompts per image ------------------------------------------------------------


def test_one_prompt_per_image_is_drawn_from_the_seed_and_recorded():
    r = Recipe(prompts_per_image=1, images_per_prompt=1)
    assert r.samples_per_image == 1
    sources = [f"cls/{i}.png" for i in range(200)]
    picked = [draw(r, s, FRACTALS) for s in sources]
    assert all(len(p) == 1 for p in picked)
    prompts = [p[0].prompt for p in picked]
    # same seed, same draw; every prompt gets used; another seed draws differently
    assert prompts == [draw(r, s, FRACTALS)[0].prompt for s in sources]
    assert set(prompts) == set(r.prompts)
    assert prompts != [draw(r.replace(seed=1), s, FRACTALS)[0].prompt for s in sources]
    # the draw does not depend on which other images exist or in which order they are visited
    assert [draw(r, s, FRACTALS)[0].prompt for s in reversed(sources)] == prompts[::-1]
    assert draw_prompts(r, "cls/7.png") == (prompts[7],)


@settings(max_examples=50, deadline=None)
@given(
    k=st.integers(1, 9),
    ipp=st.integers(1, 3),
    seed=st.integers(0, 2**32 - 1),
    source=st.text(min_size=1, max_size=20),
)
def test_property_k_prompts_are_distinct_in_order_and_their_samples_are_the_all_prompt_ones(k, ipp, seed, source):
    full = Recipe(seed=seed, images_per_prompt=ipp)
    some = full.replace(prompts_per_image=k)
    chosen = draw_prompts(some, source)
    assert len(chosen) == k == len(set(chosen))
    assert list(chosen) == [p for p in full.prompts if p in chosen]  # recipe order
    recs = draw(some, source, FRACTALS)
    assert len(recs) == some.samples_per_image == k * ipp
    everything = {(x.prompt, x.copy): x for x in draw(full, source, FRACTALS)}
    for x in recs:  # fewer prompts per image changes which samples exist, never what a sample is
        assert x == everything[(x.prompt, x.copy)]
    assert draw_prompts(full.replace(prompts_per_image=9), source) == full.prompts


def test_prompts_per_image_round_trips_and_records_carry_arithmetic_and_resize():
    r = Recipe(prompts_per_image=2, arithmetic="rounded", resize="center-crop", mask="ramp")
    assert Recipe.from_dict(json.loads(json.dumps(r.to_dict()))) == r
    rec = draw(r, "a.png", FRACTALS)[0]
    assert (rec.arithmetic, rec.resize, rec.mask, rec.seam) == ("rounded", "center-crop", "ramp", 20)
    assert SampleRecord.from_dict(json.loads(json.dumps(rec.to_dict()))) == rec
    # a row written before these fields existed: plain resize, rounded arithmetic
    old = {k: v for k, v in rec.to_dict().items() if k not in ("arithmetic", "resize")}
    assert (SampleRecord.from_dict(old).arithmetic, SampleRecord.from_dict(old).resize) == ("rounded", "resize")
