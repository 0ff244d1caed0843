"""Export step 2: the plan (dry run, shards, chunks) and the options."""

from __future__ import annotations

from pathlib import Path

import pytest

from diffusemix.export import ExportOptions, plan_export
from diffusemix.fractals import FractalSet
from export_helpers import (  # noqa: F401  (fixtures: dataset, fractals)
    RECIPE,
    dataset,
    fractals,
    preview,
    run,
)


def test_plan_counts_and_writes_nothing(dataset: Path, tmp_path: Path, fractals: FractalSet) -> None:
    out = tmp_path / "out"
    recipe = RECIPE.replace(images_per_prompt=3)
    plan = plan_export(dataset, out, recipe=recipe)
    assert not out.exists()
    assert (plan.images, plan.samples, plan.samples_total, plan.already_done) == (10, 60, 60, 0)
    assert plan.classes == ("cat", "dog", "fish") and plan.est_bytes > 0
    text = str(plan)
    assert "would make 60 image(s)" in text and "nothing was written" in text
    assert "MB" in text or "kB" in text

    run(dataset, out, fractals)
    assert plan_export(dataset, out, recipe=RECIPE).already_done == 20


def test_shards_balance_and_never_share_a_file(dataset: Path, tmp_path: Path) -> None:
    recipe = RECIPE.replace(prompts=("a", "b", "c"))
    plans = [
        plan_export(dataset, tmp_path / "o", recipe=recipe, options=ExportOptions(shard=(i, 4)))
        for i in range(4)
    ]
    # shards take whole chunks of the plan (chunk k -> shard k % 4): 30 samples in chunks of 8
    assert [p.samples for p in plans] == [8, 8, 8, 6] and sum(p.samples for p in plans) == 30
    small = [plan_export(dataset, tmp_path / "o", recipe=recipe, options=ExportOptions(shard=(i, 4), chunk_size=3))
             for i in range(4)]
    assert [p.samples for p in small] == [9, 9, 6, 6]  # chunks 0,4,8 | 1,5,9 | 2,6 | 3,7 of 3 each


def test_editor_gets_fixed_chunks_of_batch_size(dataset: Path, tmp_path: Path, fractals: FractalSet) -> None:
    """The editor sees fixed chunks of batch_size samples (the same on every run)."""
    editor = preview()
    run(dataset, tmp_path / "out", fractals, editor=editor, chunk_size=4)
    assert editor.calls == [4, 4, 4, 4, 4]


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(format="gif"), r"ExportOptions.format must be one of png, jpeg, bmp; got 'gif'"),
        (dict(quality=0), r"ExportOptions.quality"),
        (dict(shard=(2, 2)), r"ExportOptions.shard must be \(I, N\) with N >= 1 and 0 <= I < N; got \(2, 2\)"),
        (dict(shard=(0, 0)), r"ExportOptions.shard"),
        (dict(chunk_size=0), r"ExportOptions.chunk_size"),
        (dict(workers=0), r"ExportOptions.workers"),
        (dict(save_stages="yes"), r"ExportOptions.save_stages"),
    ],
)


def test_options_are_checked(kw: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ExportOptions(**kw)


def test_options_accept_jpg_alias() -> None:
    assert ExportOptions(format="JPG").format == "jpeg" and ExportOptions(format="jpg").extension == ".jpg"
