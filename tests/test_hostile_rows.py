"""Hand-edited or hostile rows, records and settings (issue 19, sections 2 and 4).

One path rule for every path read from a row (relative, no ``..``, inside its folder after
resolving links), applied by every reader with the file, the row number and the field named: the
cache reader, the torch dataset, the 🤗 transform, the report, replay (``source``, relative to
INPUT) and training's export reader. Rows are checked against the one schema (``SampleRecord``, the
score columns) before anything uses them; duplicated rows are refused; run.json with wrong types
is a clear error; careless library calls are named. Each test here failed on the code before issue
19, except those marked "held before", kept so that they stay held.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from pathlib import Path
from typing import Any, Callable

import pytest

from diffusemix.errors import DiffuseMixError, RecordError
from diffusemix.export import ExportOptions, export_dataset, folder
from diffusemix.fractals import FractalSet, write_fractal_set
from diffusemix.recipe import Recipe
from export_helpers import make_dataset, preview

RECIPE = Recipe(size=32, prompts=("sunset", "snowy"), seam=4)


@pytest.fixture(scope="module")
def fractals(tmp_path_factory: pytest.TempPathFactory) -> FractalSet:
    folder = tmp_path_factory.mktemp("fractals")
    write_fractal_set(folder, count=3, size=32, seed=4)
    return FractalSet.from_folder(folder)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("in") / "data", classes=("cat", "dog"), per_class=1)


def _export(inp: Path, out: Path, fractals: FractalSet, **opts: Any) -> Path:
    export_dataset(inp, out, recipe=RECIPE, editor=preview(), fractals=fractals, options=ExportOptions(**opts),
                   progress_bar=False)
    return out


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory, data_dir: Path, fractals: FractalSet) -> dict[str, Path]:
    """A cache and an export with stages (readable as a cache), made once; tests edit copies."""
    root = tmp_path_factory.mktemp("made")
    return {
        "cache": _export(data_dir, root / "cache", fractals, cache=True),
        "export": _export(data_dir, root / "export", fractals, save_stages=True),
    }


def _rows(out: Path) -> list[Any]:
    return [json.loads(x) for x in (out / "metadata.jsonl").read_text(encoding="utf-8").splitlines()]


def edited(made: dict[str, Path], layout: str, tmp_path: Path, edit: Callable[[list[Any]], Any]) -> Path:
    """A copy of the cache (or export) whose manifest rows ``edit`` changed in place."""
    out = tmp_path / layout
    shutil.copytree(made[layout], out, symlinks=True)
    rows = _rows(out)
    edit(rows)
    (out / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return out


def _outside(tmp_path: Path) -> Path:
    secret = tmp_path / "secret" / "outside.png"
    secret.parent.mkdir(parents=True, exist_ok=True)
    from PIL import Image

    Image.new("RGB", (32, 32), (1, 2, 3)).save(secret)
    return secret


def _bad_names(tmp_path: Path) -> dict[str, str]:
    return {"dotdot": "../../secret/outside.png", "absolute": str(_outside(tmp_path)), "inner-dotdot": "cat/../../x"}


# ---------------------------------------------------------------------------
# the path rule, in every reader
# ---------------------------------------------------------------------------

BAD = ["dotdot", "absolute", "inner-dotdot", "link-out"]


def _bad_cache(made: dict[str, Path], tmp_path: Path, how: str, field: str, layout: str = "cache") -> Path:
    names = _bad_names(tmp_path)
    if how == "link-out":
        out = edited(made, layout, tmp_path, lambda rows: None)
        rel = _rows(out)[1][field]
        target = out / rel if layout == "cache" else folder.stage_path(out, "generated", rel)
        target.unlink()
        os.symlink(_outside(tmp_path), target)  # inside by name, outside by its link
        return out
    return edited(made, layout, tmp_path, lambda rows: rows[1].__setitem__(field, names[how]))


@pytest.mark.parametrize("how", BAD)
@pytest.mark.parametrize("field", ["file_name", "input_file_name"])
def test_the_cache_reader_refuses_paths_that_leave_the_cache(made, tmp_path, how: str, field: str) -> None:
    """Held before for read_cache (resolve_in); the dataset and the transform read through it."""
    from diffusemix.data import CacheError, DiffuseMixDataset, DiffuseMixTransform, read_cache

    out = _bad_cache(made, tmp_path, how, field)
    for reader in (read_cache, DiffuseMixDataset, DiffuseMixTransform):
        with pytest.raises(CacheError, match=rf"row [12] field '{field}'"):  # rows 1 and 2 share one I
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                reader(out)


@pytest.mark.parametrize("how", BAD)
def test_the_report_refuses_paths_that_leave_the_export(made, tmp_path, how: str) -> None:
    from diffusemix.report import write_report

    def score(rows: list[Any]) -> None:
        for i, r in enumerate(rows):
            r["score"], r["scorer"] = 0.5 + 0.01 * i, "dino"

    out = _bad_cache(made, tmp_path, how, "file_name", layout="export")
    rows = _rows(out)
    score(rows)
    (out / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    with pytest.raises(RecordError, match=r"metadata\.jsonl row 2 field 'file_name'") as err:
        write_report(out, tmp_path / "report.png")
    assert "outside" in str(err.value) or "leaves" in str(err.value)
    assert not (tmp_path / "report.png").exists()


@pytest.mark.parametrize("how", ["dotdot", "absolute", "link-out"])
def test_replay_refuses_a_source_that_leaves_the_input_folder(made, data_dir, fractals, tmp_path, how) -> None:
    """Held before for '..' and absolute names; a link out of INPUT is refused too."""
    from diffusemix.export.replay import replay_row

    row = dict(_rows(made["export"])[0])
    inp = tmp_path / "input"
    shutil.copytree(data_dir, inp)
    if how == "link-out":
        os.symlink(_outside(tmp_path), inp / "cat" / "sneaky.png")
        row["source"] = "cat/sneaky.png"
    else:
        row["source"] = _bad_names(tmp_path)[how]
    with pytest.raises(RecordError, match=r"field 'source'"):
        replay_row(row, inp, fractals)


def test_training_on_an_export_refuses_rows_and_links_that_leave_it(made, data_dir, tmp_path) -> None:
    from diffusemix.train.config import TrainConfig
    from diffusemix.train.data import build_train_set, open_split

    out = edited(made, "export", tmp_path, lambda rows: rows[1].__setitem__("file_name", "../../secret/outside.png"))
    _outside(tmp_path)
    config = TrainConfig(method="diffusemix-export", train=str(data_dir), export=str(out), k_per_class=1)
    train = open_split(str(data_dir), config)
    with pytest.raises(RecordError, match=r"row 2 field 'file_name'"):
        build_train_set(config, train)
    # a link in a class folder that leads outside the export is not read as a training image
    out2 = tmp_path / "export2"
    shutil.copytree(made["export"], out2)
    os.symlink(_outside(tmp_path), folder.images_root(out2) / "cat" / "zz_sneaky.png")
    config2 = TrainConfig(method="diffusemix-export", train=str(data_dir), export=str(out2))
    with pytest.raises(DiffuseMixError, match=r"zz_sneaky\.png.*outside"):
        build_train_set(config2, open_split(str(data_dir), config2))


def test_the_transform_names_a_batch_row_of_the_wrong_type(made, fractals) -> None:
    from diffusemix.data import CacheError, DiffuseMixTransform

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        tf = DiffuseMixTransform(made["cache"], fractals=fractals)
    row = _rows(made["cache"])[0]
    with pytest.raises(CacheError, match=r"row 0 of this batch has copy 'abc', not an integer"):
        tf({"source": [row["source"]], "prompt": [row["prompt"]], "copy": ["abc"]})


# ---------------------------------------------------------------------------
# typed rows: one schema, the row and the field named
# ---------------------------------------------------------------------------

ROUGH_ROWS: dict[str, tuple[Callable[[list[Any]], Any], str]] = {
    "copy is text": (lambda rows: rows[1].__setitem__("copy", "abc"), r"row 2 field 'copy'.*integer"),
    "a row that is a list": (lambda rows: rows.__setitem__(1, ["cat/x.png", 0]), r"row 2.*not a JSON object"),
    "no prompt": (lambda rows: rows[1].pop("prompt"), r"row 2.*lacks prompt|row 2 field 'prompt'"),
    "score 1e308": (lambda rows: rows[1].__setitem__("score", 1e308), r"row 2 field 'score'.*\[-1, 1\]"),
    "score -1e308": (lambda rows: rows[1].__setitem__("score", -1e308), r"row 2 field 'score'.*\[-1, 1\]"),
    "a duplicated row": (lambda rows: rows.append(dict(rows[0])), r"row 7.*repeats row 1"),
    "seed past 2**32": (lambda rows: rows[1].__setitem__("seed", 2**40), r"row 2 field 'seed'"),
}


def _with_scores(rows: list[Any]) -> None:
    for i, r in enumerate(rows):
        if isinstance(r, dict):
            r.setdefault("score", 0.5 + 0.01 * i)
            r.setdefault("scorer", "dino")


@pytest.mark.parametrize("case", list(ROUGH_ROWS))
def test_rough_rows_are_named_by_every_reader(made, tmp_path, case: str) -> None:
    from diffusemix.data import CacheError, read_cache
    from diffusemix.report import read_report

    edit, message = ROUGH_ROWS[case]

    def both(rows: list[Any]) -> None:
        _with_scores(rows)
        edit(rows)

    out = edited(made, "export", tmp_path, both)
    with pytest.raises(CacheError, match=message):
        read_cache(out)
    with pytest.raises(RecordError, match=message):
        read_report(out)


def test_a_report_with_extreme_scores_in_errors_is_named(made, tmp_path) -> None:
    from diffusemix.report import read_report

    out = edited(made, "export", tmp_path, _with_scores)
    err = {"source": "cat/00.png", "kind": "low-score", "file_name": "cat/00_sunset_0.png", "prompt": "sunset",
           "copy": 0, "seed": 1, "score": float("1e308")}
    (out / "errors.jsonl").write_text(json.dumps(err) + "\n", encoding="utf-8")
    with pytest.raises(RecordError, match=r"errors\.jsonl row 1 field 'score'"):
        read_report(out)
    (out / "errors.jsonl").write_text(json.dumps({"kind": "low-score", "score": 0.1}) + "\n", encoding="utf-8")
    with pytest.raises(RecordError, match=r"errors\.jsonl row 1.*lacks"):
        read_report(out)


# ---------------------------------------------------------------------------
# run.json with wrong types
# ---------------------------------------------------------------------------

BAD_SETTINGS = {
    "prompts: 5": lambda d: d["recipe"].__setitem__("prompts", 5),
    "size: 'big'": lambda d: d["recipe"].__setitem__("size", "big"),
    "options: []": lambda d: d.__setitem__("options", []),
    "scorer: 'x'": lambda d: d.__setitem__("scorer", "x"),
    "editor: 3": lambda d: d.__setitem__("editor", 3),
    "recipe: a list": lambda d: d.__setitem__("recipe", [1, 2]),
    "rule: 'strict'": lambda d: d.__setitem__("scorer", {"name": "dino", "rule": "strict"}),
}


@pytest.mark.parametrize("case", list(BAD_SETTINGS))
def test_run_json_with_wrong_types_is_a_clear_error(made, data_dir, fractals, tmp_path, case: str) -> None:
    from diffusemix.data import read_cache
    from diffusemix.export.settings import read_run

    out = tmp_path / "out"
    shutil.copytree(made["export"], out)
    path = out / ".diffusemix" / "run.json"
    d = json.loads(path.read_text(encoding="utf-8"))
    BAD_SETTINGS[case](d)
    path.write_text(json.dumps(d), encoding="utf-8")
    with pytest.raises(DiffuseMixError, match=r"run\.json.*cannot read|run\.json.*holds"):
        read_run(out)
    with pytest.raises(DiffuseMixError, match=r"run\.json"):  # the exporter, resuming into it
        _export(data_dir, out, fractals, save_stages=True)
    with pytest.warns(UserWarning, match=r"run\.json holds settings this version cannot read.*not used"):
        read_cache(out)  # the cache reader takes only hints from it: unreadable settings are left aside, said


def test_old_run_json_with_wrong_types_is_a_clear_error(made, tmp_path) -> None:
    from diffusemix.data import read_cache
    from diffusemix.export.settings import read_run

    out = tmp_path / "out"
    shutil.copytree(made["export"], out)
    (out / ".diffusemix" / "run.json").write_text(json.dumps({"settings_version": 2, "generation": [1]}))
    with pytest.raises(DiffuseMixError, match=r"run\.json.*generation must be an object"):
        read_run(out)
    with pytest.warns(UserWarning, match=r"run\.json"):
        read_cache(out)


# ---------------------------------------------------------------------------
# careless library calls
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("epoch", [2**80, -1, 1.5, "3"])
def test_an_epoch_out_of_range_is_named(made, fractals, epoch: Any) -> None:
    from diffusemix.data import DiffuseMixDataset, DiffuseMixTransform

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        ds = DiffuseMixDataset(made["cache"], fractals=fractals)
        tf = DiffuseMixTransform(made["cache"], fractals=fractals)
    for obj in (ds, tf):
        with pytest.raises(DiffuseMixError, match=r"epoch must be an integer (in \[0, |>= 0)"):
            obj.set_epoch(epoch)
    with pytest.raises(DiffuseMixError, match="epoch must be an integer"):
        DiffuseMixDataset(made["cache"], fractals=fractals, epoch=epoch)
    ds.set_epoch(2**63 - 1)  # the largest epoch is fine
    assert ds.epoch == 2**63 - 1


def test_export_dataset_without_a_recipe_names_it(data_dir, fractals, tmp_path) -> None:
    """Held before (``_check_arguments``): kept so that it stays held."""
    for name, kw in (("recipe", {"recipe": None}), ("editor", {"editor": "preview"}), ("options", {"options": {}})):
        args: dict[str, Any] = {"recipe": RECIPE, "editor": preview(), "fractals": fractals, **kw}
        with pytest.raises(DiffuseMixError, match=rf"^{name} must be"):
            export_dataset(data_dir, tmp_path / "out", progress_bar=False, **args)
    assert not (tmp_path / "out").exists()
