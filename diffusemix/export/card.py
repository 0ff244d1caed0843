"""The dataset card of an export folder: ``README.md`` with the YAML that 🤗 datasets obeys, and what made the data.

🤗 datasets 5.2 reads a folder's ``README.md`` when it is loaded as a dataset (``load_dataset(OUTPUT)``, or a
dataset repository on the Hub). What the card declares, and why (checked in datasets 5.2.0's source:
``load.LocalDatasetModuleFactory``, ``utils.metadata.MetadataConfigs``,
``packaged_modules/folder_based_builder``):

* ``configs`` with explicit ``data_files`` (the manifest and ``images/**``): the files are named, so no split
  is guessed from file or folder names (a source ``cat_train_0.jpg`` or a class ``val`` would otherwise make
  ``datasets`` read splits and drop the manifest with its columns).
* ``features`` inside that config (``BuilderConfig.features``): the folder builder keeps them, so ``label``
  loads as a ``ClassLabel`` with the class names. ``dataset_info.features`` alone is NOT enough: the builder
  replaces the features with the metadata file's (``label`` an int64) whenever its config has none. The card
  writes both, the same (the Hub shows ``dataset_info``); each column's type is the one pyarrow infers from
  the JSON lines (what ``datasets`` would give without a card), except ``label`` (a class label) and the
  ``*file_name`` columns (images: ``image``, a cache's ``input``).
* ``load_dataset("imagefolder", data_dir=OUTPUT)`` does not read the card (``PackagedDatasetModuleFactory``
  guesses the splits from the paths); it loads every column as long as no path below OUTPUT holds a split
  word (``train``, ``test``, ``val``, ``dev``, ``eval``, ... between separators). The export's summary says
  so when one does.

Everything here is pure: rows and settings in, text out. :mod:`.folder` writes the file.
"""

from __future__ import annotations

import copy
import json
from typing import Any, Iterable, Mapping, Sequence

__all__ = ["CardError", "infer_features", "card_yaml", "card_text"]


#: The card's task tag by the export's task (``--task``).
_TASK_TAGS = {"classify": "image-classification", "detect": "object-detection", "segment": "image-segmentation"}
#: What ``python -m diffusemix tiny-models`` puts in its folders' names (``diffusemix.tiny_models.MARK``).
_RANDOM = "RANDOM-WEIGHTS"


class CardError(ValueError):
    """A column holds values of types no single 🤗 feature holds (the card then declares no features)."""


# ---------------------------------------------------------------------------
# column types, as pyarrow's JSON reader infers them
# ---------------------------------------------------------------------------

#: A type: "null" | "bool" | "int64" | "float64" | "string" | ("list", type) | ("struct", {name: type}).
_Type = Any


def _type_of(value: Any) -> _Type:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int64"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        item: _Type = "null"
        for v in value:
            item = _merge(item, _type_of(v))
        return ("list", item)
    if isinstance(value, dict):
        return ("struct", {str(k): _type_of(v) for k, v in value.items()})
    raise CardError(f"a value of type {type(value).__name__}")


def _merge(a: _Type, b: _Type) -> _Type:
    """The type that holds both (pyarrow's promotion: null to anything, int64 to float64), or CardError."""
    if a == "null":
        return b
    if b == "null" or a == b:
        return a
    if isinstance(a, str) and isinstance(b, str) and {a, b} == {"int64", "float64"}:
        return "float64"
    if isinstance(a, tuple) and isinstance(b, tuple) and a[0] == b[0]:
        if a[0] == "list":
            return ("list", _merge(a[1], b[1]))
        fields = dict(a[1])
        for k, t in b[1].items():
            fields[k] = _merge(fields.get(k, "null"), t)
        return ("struct", fields)
    raise CardError(f"values of types {_name(a)} and {_name(b)}")


def _name(t: _Type) -> str:
    return t if isinstance(t, str) else t[0]


def _yaml_type(t: _Type) -> Any:
    """The YAML of a type inside ``list:`` (a dtype string, ``{list: ...}`` or a list of fields)."""
    if isinstance(t, str):
        return t
    if t[0] == "list":
        return {"list": _yaml_type(t[1])}
    return [_yaml_field(k, v) for k, v in t[1].items()]


def _yaml_field(name: str, t: _Type) -> dict[str, Any]:
    """One named feature as ``Features._to_yaml_list`` writes it."""
    if isinstance(t, str):
        return {"name": name, "dtype": t}
    if t[0] == "list":
        return {"name": name, "list": _yaml_type(t[1])}
    return {"name": name, "struct": [_yaml_field(k, v) for k, v in t[1].items()]}


def infer_features(rows: Iterable[Mapping[str, Any]], class_names: Sequence[str],
                   category_names: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """The manifest's columns as 🤗 features (YAML list form), in the order ``datasets`` gives them.

    ``file_name`` / ``<x>_file_name`` become images named ``image`` / ``<x>``; ``label`` a class label
    with ``class_names`` (index i = ``class_names[i]``); an annotated export's ``objects.category`` a list of
    class labels with ``category_names``; every other column the type pyarrow's JSON
    reader infers (ints and floats together: float64; a column that is always null: null).

    Raises:
        CardError: a column holds types no single feature holds (a string in one row, a number in another).
    """
    columns: dict[str, _Type] = {}
    for row in rows:
        for key, value in row.items():
            try:
                columns[key] = _merge(columns.get(key, "null"), _type_of(value))
            except CardError as e:
                raise CardError(f"column {key!r} holds {e}") from None
    out = []
    for key, t in columns.items():
        if (key == "file_name" or key.endswith("_file_name")) and t == "string":
            out.append({"name": key[: -len("_file_name")] or "image", "dtype": "image"})
        elif key == "label" and t == "int64":
            out.append({"name": "label", "dtype": {"class_label": {"names": {str(i): n for i, n in
                                                                              enumerate(class_names)}}}})
        elif key == "objects" and category_names and isinstance(t, tuple) and t[0] == "struct" \
                and t[1].get("category") in (("list", "int64"), ("list", "null")):
            names = {str(i): n for i, n in enumerate(category_names)}
            fields = [_yaml_field(k, v) if k != "category" else {"name": k, "list": {"class_label": {"names": names}}}
                      for k, v in t[1].items()]
            out.append({"name": key, "struct": fields})
        else:
            out.append(_yaml_field(key, t))
    return out


# ---------------------------------------------------------------------------
# the card
# ---------------------------------------------------------------------------


def card_yaml(features: list[dict[str, Any]] | None, *, data_files: Sequence[str], task: str = "classify") -> str:
    """The card's YAML front matter (between ``---`` lines): one config, ``train``, these files and features."""
    import yaml

    config: dict[str, Any] = {"config_name": "default", "data_files": [{"split": "train", "path": list(data_files)}]}
    meta: dict[str, Any] = {"configs": [config]}
    if features is not None:
        config["features"] = features
        meta["dataset_info"] = {"features": copy.deepcopy(features)}  # a copy: no YAML alias in the card
    meta["tags"] = ["diffusemix", "data-augmentation", _TASK_TAGS.get(task, "image-classification")]
    return "---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True, width=1000) + "---\n"


def _class_names(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Class names by label index, from the rows (a row's ``label`` indexes the sorted class names)."""
    by_index: dict[int, str] = {}
    for r in rows:
        if isinstance(r.get("label"), int) and isinstance(r.get("class_name"), str):
            by_index.setdefault(int(r["label"]), str(r["class_name"]))
    return [by_index[i] for i in sorted(by_index)]


def _fmt(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return str(value)


def _made_by(settings: Mapping[str, Any] | None, rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """What made the data, as markdown bullet lines, from run.json (version 4) and the rows."""
    if not settings:
        return ["- The settings file of this folder was not found: what made it is in each row of the manifest."]
    recipe = settings.get("recipe") or {}
    editor = dict(settings.get("editor") or {})
    name = editor.pop("name", "?")
    model = editor.pop("model", None)
    revision = editor.pop("model_revision", None)
    lines = []
    scorer_model = str((settings.get("scorer") or {}).get("model") or "")
    if _RANDOM in str(model or "") or _RANDOM in scorer_model:
        lines.append("- **RANDOM WEIGHTS: made with a tiny random-weight test model** (`python -m diffusemix"
                     " tiny-models`): the images are not augmentations and the scores mean nothing.")
    if name == "preview":
        lines.append("- **Editor: the preview (weight-free colour and texture filters, NOT a diffusion model).** "
                     "Î is a stand-in: this is not DiffuseMix data; use it to check a pipeline, not to train.")
    else:
        where = f"`{model}`" if model else "its default model"
        lines.append(f"- Editor (makes Î from I under a prompt): `{name}`, {where}"
                     + (f" at commit `{revision}`" if revision else "") + ".")
        if model and "/" in str(model) and not str(model).startswith(("/", ".", "~")):
            lines.append(f"- The model's licence and terms of use: its model card, https://huggingface.co/{model}"
                         " (the generated images are the model's output under those terms).")
        else:
            lines.append("- The model's licence and terms of use: those of the model folder it was loaded from.")
    shown = {k: v for k, v in editor.items() if v is not None}
    if shown:
        lines.append("- Editor settings: " + ", ".join(f"{k} {_fmt(v)}" for k, v in sorted(shown.items())) + ".")
    if recipe:
        lines.append(
            f"- Recipe: prompts {_fmt(recipe.get('prompts', ()))} (prompts per image: "
            f"{recipe.get('prompts_per_image')}, images per prompt: {recipe.get('images_per_prompt')}); size "
            f"{recipe.get('size')} px ({recipe.get('resize')}); mask {recipe.get('mask')}, layouts "
            f"{_fmt(recipe.get('layouts', ()))}, seam {recipe.get('seam')} px; λ {_fmt(recipe.get('lam'))}; "
            f"arithmetic {recipe.get('arithmetic')}; master seed **{recipe.get('seed')}**."
        )
    scorer = settings.get("scorer")
    if scorer:
        rule = scorer.get("rule") or {}
        kept = ", ".join(f"{k} {v}" for k, v in rule.items() if v is not None) or "no threshold"
        lines.append(f"- Scorer: `{scorer.get('name')}` ({scorer.get('model')}); kept: {kept}.")
    fractals = settings.get("fractals")
    if fractals:
        lines.append(f"- Fractals: {fractals.get('count')} images (digest {fractals.get('digest')}).")
    options = settings.get("options") or {}
    if options.get("cache"):
        lines.append("- A **cache**: `image` is Î, `input` is I; nothing is mixed. Train on it with "
                     "`diffusemix.data.DiffuseMixDataset` or `DiffuseMixTransform`, which mix A every epoch.")
    lines.append(f"- Made with diffusemix {settings.get('diffusemix')}; every row holds everything that made its "
                 "image (record, editor settings), so `diffusemix.export.replay_row` rebuilds it.")
    return lines


def card_text(
    rows: Sequence[Mapping[str, Any]],
    settings: Mapping[str, Any] | None,
    *,
    title: str,
    data_files: Sequence[str],
    images_dir: str,
) -> str:
    """The whole ``README.md``: YAML (files, features), then what the data is, how to load it and what made it."""
    names = _class_names(rows)
    note = ""
    annotations = (settings or {}).get("annotations") or {}
    categories = [str(c.get("name")) for c in annotations.get("categories") or () if isinstance(c, dict)]
    task = str(annotations.get("task") or "classify")
    try:
        features: list[dict[str, Any]] | None = infer_features(rows, names, categories)
    except CardError as e:
        features = None
        note = (f"\n(No features are declared: {e}; `datasets` infers them, and `label` loads as an int64.)\n")
    editor = (settings or {}).get("editor") or {}
    preview = editor.get("name") == "preview"
    scorer = (settings or {}).get("scorer") or {}
    random_weights = _RANDOM in str(editor.get("model") or "") + str(scorer.get("model") or "")
    shown = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "")
    body = [
        f"# {title}" + (" (PREVIEW: not DiffuseMix data)" if preview else "")
        + (" (RANDOM-WEIGHT TEST MODEL: not DiffuseMix data)" if random_weights else ""),
        "",
        f"An image-classification dataset made by [DiffuseMix](https://arxiv.org/abs/2405.14881) (Islam et al., CVPR"
        f" 2024): {len(rows)} images in {len(names)} class{'' if len(names) == 1 else 'es'} ({shown})."
        if not annotations else
        f"An {_TASK_TAGS.get(task, task).replace('-', ' ')} dataset made by"
        f" [DiffuseMix](https://arxiv.org/abs/2405.14881) (Islam et al., CVPR 2024): {len(rows)} images, their"
        f" objects of {len(categories)} categor{'y' if len(categories) == 1 else 'ies'}"
        f" ({', '.join(categories[:20])}{', ...' if len(categories) > 20 else ''}) carried through the resize and"
        f" the crop; the annotations are also written in the input's format ({annotations.get('format')}) beside"
        f" `{images_dir}/`.",
        "",
        "## Load it",
        "",
        "```python",
        "from datasets import load_dataset",
        "ds = load_dataset(\"path/to/this/folder\", split=\"train\")   # reads this card: label is a ClassLabel",
        "",
        "from torchvision.datasets import ImageFolder                # labels equal the manifest's label column",
        f"tv = ImageFolder(\"path/to/this/folder/{images_dir}\")",
        "```",
        "",
        f"`{images_dir}/` holds the class folders alone; `label` is the index torchvision's `ImageFolder` gives "
        "(the sorted class names), `class_name` the class.",
        note,
        "## What made it",
        "",
        *_made_by(settings, rows),
        "",
        "## Licence",
        "",
        "This card sets no licence. The images are derived from the input images and made by the editor's "
        "model: they carry the input dataset's licence and the model's terms. State them before sharing.",
        "",
        "## Citation",
        "",
        "```bibtex",
        "@inproceedings{islam2024diffusemix,",
        "  title     = {DiffuseMix: Label-Preserving Data Augmentation with Diffusion Models},",
        "  author    = {Islam, Khawar and Zaheer, Muhammad Zaigham and Mahmood, Arif and Nandakumar, Karthik},",
        "  booktitle = {CVPR},",
        "  year      = {2024}",
        "}",
        "```",
        "",
    ]
    return card_yaml(features, data_files=data_files, task=task) + "\n" + "\n".join(body)


def rows_from_lines(lines: Iterable[str]) -> list[dict[str, Any]]:
    """Manifest lines (JSON) as dicts."""
    return [json.loads(line) for line in lines if line.strip()]
