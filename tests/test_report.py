"""python -m diffusemix report: the picture and the table of a scored export."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from export_helpers import RECIPE, dataset, fractals, preview  # noqa: F401 (fixtures)
from PIL import Image

from diffusemix import cli
from diffusemix.export import ExportOptions, export_dataset
from diffusemix.report import ReportError, read_report, write_report
from diffusemix.scoring import ScoreRule, load_scorer


def _export(inp: Path, out: Path, fractals, scorer=None, rule=None, **opts) -> Path:
    export_dataset(inp, out, recipe=RECIPE, editor=preview(), fractals=fractals, options=ExportOptions(**opts),
                   progress_bar=False, scorer=scorer, score_rule=rule)
    return out


@pytest.fixture(scope="module")
def scored(tmp_path_factory, fractals, tiny_dino_dir) -> Path:
    from export_helpers import make_dataset

    inp = make_dataset(tmp_path_factory.mktemp("in") / "data")
    scorer = load_scorer("dino", model=str(tiny_dino_dir))
    # a threshold at the median of the scores: some Î kept, some dropped
    probe = _export(inp, tmp_path_factory.mktemp("probe") / "out", fractals, scorer, ScoreRule())
    median = float(np.median([json.loads(x)["score"] for x in (probe / "metadata.jsonl").read_text().splitlines()]))
    out = tmp_path_factory.mktemp("scored") / "out"
    return _export(inp, out, fractals, scorer, ScoreRule(min_score=round(median, 4)), save_stages=True)


def test_report_counts_kept_and_dropped_per_prompt_and_class(scored):
    rep = read_report(scored)
    rows = [json.loads(x) for x in (scored / "metadata.jsonl").read_text().splitlines()]
    errs = [json.loads(x) for x in (scored / "errors.jsonl").read_text().splitlines()]
    dropped = [e for e in errs if e["kind"] == "low-score"]
    assert rows and dropped
    assert rep.prompts == list(RECIPE.prompts) and rep.classes == ["cat", "dog", "fish"]
    for (p, c), cell in rep.cells.items():
        kept = sorted(r["score"] for r in rows if r["prompt"] == p and r["class_name"] == c)
        lost = sorted(e["score"] for e in dropped if e["prompt"] == p and e["class_name"] == c)
        assert sorted(cell.kept) == kept and sorted(cell.dropped) == lost
        assert cell.share_kept == pytest.approx(len(kept) / (len(kept) + len(lost)))
    assert rep.ranked[0][0] == min(r["score"] for r in rows + dropped)
    assert rep.rule["min_score"] is not None and rep.scorer.startswith("dino (")


def test_report_writes_a_picture_and_a_table(scored, tmp_path):
    png, txt, text = write_report(scored, tmp_path / "r" / "report.png", lowest=4)
    with Image.open(png) as im:
        assert im.format == "PNG" and im.size[0] > 800 and im.size[1] > 600
        pixels = np.asarray(im.convert("RGB"))
    assert pixels.std() > 20  # a drawn picture, not a blank canvas
    assert txt.read_text() == text
    rep = read_report(scored)
    for p in RECIPE.prompts:
        cell = rep.by_prompt(p)
        assert f"{p:<6}  (all)  {cell.total:>5}  {cell.mean:>6.3f}  {cell.min:>6.3f}  {cell.share_kept:>5.0%}" in text
    assert "no contact sheet" not in text
    # the lowest Î on the sheet are on disk (kept ones in stages/generated, dropped in stages/rejected)
    assert all(rep.stage_file(name, kept).is_file() for _, _, _, name, kept in rep.ranked[:4])


def test_without_stages_the_report_says_where_the_contact_sheet_went(dataset, fractals, tmp_path, tiny_dino_dir):
    out = _export(dataset, tmp_path / "out", fractals, load_scorer("dino", model=str(tiny_dino_dir)), ScoreRule())
    png, _, text = write_report(out)
    assert png == out / "report.png" and png.is_file()
    assert "no contact sheet of the lowest-scoring Î: export with --save-stages" in text


def test_report_errors(dataset, fractals, tmp_path):
    with pytest.raises(ReportError, match="has no manifest"):
        read_report(tmp_path / "nothing")
    out = _export(dataset, tmp_path / "plain", fractals)
    with pytest.raises(ReportError, match="has no scores. Export it with --score dino"):
        read_report(out)
    with pytest.raises(ValueError, match=r"lowest \(--lowest\) must be an integer in \[1, 32\]"):
        write_report(out, lowest=0)


def test_cli_report(scored, capsys):
    code = cli.main(["report", str(scored), "--lowest", "3"])
    out = capsys.readouterr().out
    assert code == 0 and "prompt" in out and "kept" in out and f"wrote {scored / 'report.png'}" in out
    assert cli.main(["report", str(scored / "missing")]) == 2
    assert "has no manifest" in capsys.readouterr().err


def test_a_cache_report_shows_its_kept_generated_images(dataset, fractals, tmp_path, tiny_dino_dir):
    out = _export(dataset, tmp_path / "cache", fractals, load_scorer("dino", model=str(tiny_dino_dir)), ScoreRule(),
                  cache=True)
    rep = read_report(out)
    assert rep.cache and rep.ranked
    _, _, _, name, kept = rep.ranked[0]
    assert kept and rep.stage_file(name, kept) == out / name and (out / name).is_file()
    _, _, text = write_report(out)
    assert "no contact sheet" not in text
