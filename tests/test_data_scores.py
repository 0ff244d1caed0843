"""DiffuseMixDataset(min_score=...): Î scored below a threshold in the manifest are left out."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from diffusemix.data import CacheError
from test_data import dataset, export_dir, fractals, data_dir  # noqa: F401  (module fixtures)


def _with_scores(export_dir: Path, folder: Path, scores: list[float | None]) -> Path:
    shutil.copytree(export_dir, folder)
    rows = [json.loads(line) for line in (folder / "metadata.jsonl").read_text().splitlines()]
    out = []
    for r, s in zip(rows, scores * len(rows)):
        out.append({**r, "score": s, "scorer": "dino"} if s is not None else r)
    (folder / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in out))
    return folder


def test_min_score_leaves_out_low_scored_generated_images(export_dir, fractals, tmp_path):
    # three prompts per image: scores 0.9, 0.2, 0.75 in plan order
    scored = _with_scores(export_dir, tmp_path / "scored", [0.9, 0.2, 0.75])
    everything = dataset(scored, fractals)
    kept = dataset(scored, fractals, min_score=0.5)
    assert len(everything) == everything.cache.entries.__len__()
    assert len(kept) == len(everything) * 2 // 3 and kept.skipped_low_score == len(everything) // 3
    seen = {kept.locate(i)[0].row["score"] for i in range(len(kept))}
    assert seen == {0.9, 0.75}
    assert "0.5: " in kept.summary() and "scored below it left out" in kept.summary()
    assert len(dataset(scored, fractals, min_score=0.8)) == len(everything) // 3
    assert len(dataset(scored, fractals, min_score=-1.0)) == len(everything)


def test_min_score_on_a_cache_without_scores_says_how_to_get_them(export_dir, fractals, tmp_path):
    n = len((export_dir / "metadata.jsonl").read_text().splitlines())
    with pytest.raises(CacheError, match=rf"min_score needs scores, but {n} of {n} rows .* export with --score"):
        dataset(export_dir, fractals, min_score=0.5)
    partly = _with_scores(export_dir, tmp_path / "partly", [0.9, None, 0.9])
    with pytest.raises(CacheError, match=f"{n // 3} of {n} rows"):
        dataset(partly, fractals, min_score=0.5)


@pytest.mark.parametrize("bad", [1.5, "0.5", True])
def test_min_score_must_be_a_number_in_range(export_dir, fractals, tmp_path, bad):
    scored = _with_scores(export_dir, tmp_path / "s", [0.9])
    with pytest.raises(ValueError, match="min_score must be a number in"):
        dataset(scored, fractals, min_score=bad)
