"""The run's settings (``run.json``): what an output folder was made with.

``run.json`` is ``{recipe, editor, scorer, options}`` (and the weights' ``licence``) as the dicts of the
settings dataclasses (:class:`~diffusemix.recipe.Recipe`, the resolved
:class:`~diffusemix.editors.EditorSpec`'s pixel settings, the
:class:`~diffusemix.scoring.ScorerSpec` with its rule, the output-writing
fields of :class:`ExportOptions`), plus the input folder, the label mode and the
fractal set's digest. :func:`read_run` reads it back into the same dataclasses.

What a field changes comes from its ``stage`` (:mod:`diffusemix.schema`):
changing a ``generation`` setting (anything that makes Î) means a new output
folder; changing only ``mixing`` settings (what makes A from Î) is a remix,
allowed with ``--reuse-generated``. Folders written by earlier versions
(``settings_version`` 1 to 3) are read as this version reads them; an export
into one first moves its images under ``images/`` (version 4's layout:
:func:`.folder.move_to_images_root`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from .. import schema
from ..editors.licences import licence_record
from ..editors.spec import EditorSpec
from ..errors import DiffuseMixError
from ..recipe import Recipe
from ..scoring.base import ScoreRule
from ..scoring.spec import ScorerSpec
from . import folder
from .options import ExportOptions
from .scan import InputScan

if TYPE_CHECKING:  # pragma: no cover
    from ..editors.base import Editor
    from ..fractals import FractalSet
    from ..scoring.base import Scorer
    from .lock import OutputLock

__all__ = ["SETTINGS_VERSION", "RunSettings", "run_settings", "read_run", "adopt_settings", "model_revision",
           "run_prompts", "settings_diff", "readable_settings"]

#: 4: version 3's settings; the folder keeps its images under ``images/<class>/`` (class folders at its top
#: before). 3: ``{recipe, editor, scorer, options}`` as the settings dataclasses' dicts. 2 (read, upgraded):
#: ``generation`` / ``mixing`` split by hand. 1: version 2 without prompts_per_image, model_revision, arithmetic.
SETTINGS_VERSION = 4
_COMMIT = re.compile(r"[0-9a-f]{40}")
#: The options fields that change the files: what makes Î (the chunk size: which samples share model calls)
#: and what makes A (format, quality, cache); the others are how the run works.
_OPTION_FIELDS = schema.fields_by_stage(ExportOptions, "generation") + schema.fields_by_stage(ExportOptions, "mixing")


def _fractal_digest(fractals: "FractalSet") -> str:
    h = hashlib.sha1()
    root = Path(getattr(fractals, "folder", "") or ".")
    for name in fractals.names:
        try:
            size = (root / name).stat().st_size
        except OSError:
            size = -1
        h.update(f"{name}\0{size}\n".encode("utf-8"))
    return h.hexdigest()[:16]


def model_revision(model: str | None) -> str | None:
    """The commit of a Hugging Face model, where it can be known without loading anything.

    A folder inside the Hugging Face cache (``.../snapshots/<commit>``) gives
    its commit; a Hub id gives the commit the local cache resolves ``main``
    to (what ``from_pretrained`` loads). Any other folder, the preview
    (``None``) or a model not in the cache: ``None``.
    """
    if not model:
        return None
    path = Path(model).expanduser()
    if path.exists():
        found = re.search(r"[/\\]snapshots[/\\]([0-9a-f]{40})(?:[/\\]|$)", str(path.resolve()))
        return found.group(1) if found else None
    try:
        from huggingface_hub import constants
    except ImportError:  # pragma: no cover - installed with diffusers
        return None
    ref = Path(constants.HF_HUB_CACHE) / f"models--{model.replace('/', '--')}" / "refs" / "main"
    try:
        text = ref.read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return text if _COMMIT.fullmatch(text) else None


def _options_dict(options: ExportOptions) -> dict[str, Any]:
    d = schema.to_dict(options, names=_OPTION_FIELDS)
    if options.format != "jpeg":
        d["quality"] = None  # no pixel depends on it
    return d


def _scorer_dict(scorer: "Scorer | None", rule: ScoreRule) -> dict[str, Any] | None:
    """The scorer and its rule (only when scoring: unscored runs read as before)."""
    if scorer is None:
        return None
    d: dict[str, Any] = {"name": scorer.name}
    desc = scorer.describe()
    for key in ("model", "dtype", "template"):
        if desc.get(key) is not None:
            d[key] = desc[key]
    if desc.get("classes") is not None:
        d["classes"] = desc["classes"]
    d["rule"] = schema.to_dict(rule)
    return d


def run_settings(
    scan: InputScan,
    recipe: Recipe,
    editor: "Editor",
    fractals: "FractalSet",
    options: ExportOptions,
    *,
    scorer: "Scorer | None" = None,
    rule: ScoreRule | None = None,
) -> dict[str, Any]:
    """The run.json of a run with these settings."""
    from .. import __version__

    spec = editor.spec
    settings = {
        "diffusemix": __version__,
        "settings_version": SETTINGS_VERSION,
        "input": str(scan.root.resolve()),
        "labels": scan.label_mode,
        "recipe": recipe.to_dict(),
        "editor": {"name": spec.name, **spec.pixel_settings(), "model_revision": model_revision(spec.model)},
        "scorer": _scorer_dict(scorer, rule if rule is not None else ScoreRule()),
        "options": _options_dict(options),
        # a cache mixes nothing: its fractals are the training's (diffusemix.data), not the run's
        "fractals": None if options.cache else {"count": len(fractals.names), "digest": _fractal_digest(fractals)},
        # the weights' licence and its acceptance (None for the preview); not compared on resume
        "licence": licence_record(editor, options.accept_license),
    }
    if scan.annotations is not None:  # --task detect|segment (a classification run.json has no such block)
        from .annotated import annotations_settings

        settings["annotations"] = annotations_settings(scan.annotations)
    return json.loads(json.dumps(settings))  # tuples -> lists, as read back from run.json


@dataclass(frozen=True)
class RunSettings:
    """A folder's run.json read back into the settings dataclasses."""

    recipe: Recipe
    editor: EditorSpec
    scorer: ScorerSpec | None
    rule: ScoreRule
    format: str
    cache: bool
    input: str | None
    labels: str | None
    model_revision: str | None
    raw: Mapping[str, Any]
    #: an annotated export's block (task, format, path, categories, digest and the AnnotationOptions fields)
    annotations: Mapping[str, Any] | None = None


def read_run(out: Path) -> RunSettings | None:
    """The settings ``out`` was made with, or None when it has no run.json.

    Raises:
        DiffuseMixError: run.json is unreadable, not a regular file, or does not hold settings this
            version can read (a field of the wrong type included: ``"prompts": 5``), naming the file.
    """
    raw = folder.read_settings(out)
    if raw is None:
        return None
    return _parse_run(out, raw)


def _parse_run(out: Path, raw: Mapping[str, Any], *, known_only: bool = False) -> RunSettings:
    """run.json's dict as the settings dataclasses; any field of the wrong type is a DiffuseMixError.

    ``known_only``: fields the base classes do not have (a subclass's new setting, e.g. a
    ``Recipe`` subclass's) are left out rather than refused; the others are still checked.
    """
    def known(d: Mapping[str, Any], cls: type) -> dict[str, Any]:
        names = {f.name for f in dataclasses.fields(cls)}
        return {k: v for k, v in d.items() if k in names} if known_only else dict(d)

    try:
        d = upgrade(raw)
        ed = dict(_mapping(d.get("editor"), "editor"))
        revision = ed.pop("model_revision", None)
        ed = known(ed, EditorSpec)
        sc = d.get("scorer")
        sc = None if not sc else _mapping(sc, "scorer")
        opts = _mapping(d.get("options"), "options")
        rule = known(_mapping((sc or {}).get("rule"), "scorer.rule"), ScoreRule)
        return RunSettings(
            recipe=Recipe.from_dict(known(_mapping(d["recipe"], "recipe"), Recipe)),
            editor=EditorSpec.from_dict(ed),
            scorer=None if not sc else ScorerSpec.from_dict({k: v for k, v in sc.items() if k in ("name", "model",
                                                                                                    "dtype",
                                                                                                    "template")}),
            rule=ScoreRule(**rule),
            format=str(opts.get("format", "png")),
            cache=bool(opts.get("cache", False)),
            input=d.get("input"),
            labels=d.get("labels"),
            model_revision=revision,
            raw=raw,
            annotations=_annotations(d.get("annotations")),
        )
    except (KeyError, TypeError, AttributeError, ValueError) as e:  # a DiffuseMixError is a ValueError
        why = e.message() if isinstance(e, DiffuseMixError) else str(e) if isinstance(e, _Shape) else (
            f"{type(e).__name__}: {e}")
        raise DiffuseMixError(
            f"holds settings this version cannot read ({why})", field=str(folder.settings_path(out)),
            path=folder.settings_path(out), hint="Use a new output folder",
        ) from None


def _annotations(block: Any) -> Mapping[str, Any] | None:
    """run.json's ``annotations`` block, its settings checked as ``AnnotationOptions`` checks them."""
    if block is None:
        return None
    block = _mapping(block, "annotations")
    from ..annotations.export_step import AnnotationOptions

    names = {f.name for f in dataclasses.fields(AnnotationOptions)}
    AnnotationOptions(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in block.items()
                         if k in names and k not in ("format", "path")})
    if not isinstance(block.get("categories"), list) or not isinstance(block.get("format"), str):
        raise _Shape(f"annotations must hold its format and categories; got {dict(block)!r}")
    return block


def recorded_batches(out: Path) -> tuple[int | None, int | None]:
    """(editor batch size, chunk size) an output folder was made with, where run.json says (else None)."""
    if not Path(out).is_dir():
        return None, None
    d, _ = readable_settings(out)  # an unreadable run.json is named by the run's own check of the folder
    batch = (d.get("editor") or {}).get("batch_size")
    chunk = (d.get("options") or {}).get("chunk_size")
    return (batch if schema.is_int(batch) else None), (chunk if schema.is_int(chunk) else None)


class _Shape(TypeError):
    """A part of run.json that is not the JSON type it must be."""


def _mapping(value: Any, what: str) -> Mapping[str, Any]:
    """A part of run.json that must be an object (None reads as empty)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _Shape(f"{what} must be an object; got {value!r}")
    return value


def readable_settings(out: Path) -> tuple[dict[str, Any], str | None]:
    """run.json of ``out`` (any version) as version 3 reads it, if every field reads; else ``({}, why)``.

    For readers that only take hints from it (the prompts' order, the mixing settings, the
    scorer's name): a folder whose run.json is missing or unreadable is still read.
    """
    try:
        run = read_run(out)
    except DiffuseMixError as e:
        return {}, f"{folder.settings_path(out)} {e.reason}"
    return ({} if run is None else upgrade(run.raw)), None


def run_prompts(raw: Mapping[str, Any]) -> tuple[str, ...]:
    """The prompts of a run.json (any version), in recipe order; () when unknown."""
    try:
        prompts = upgrade(raw).get("recipe", {}).get("prompts", ())
    except Exception:  # an unreadable file: no order to give
        return ()
    return tuple(p for p in prompts or () if isinstance(p, str))


# ---------------------------------------------------------------------------
# earlier versions
# ---------------------------------------------------------------------------

#: Keys of an editor's description that old run.json files (versions 1 and 2) hold besides its settings.
_DESCRIPTION_KEYS = ("is_diffusion", "scheduler", "approximate", "summary", "denoising_steps", "pipeline", "notice",
                     "device", "batch_size")


def upgrade(raw: Mapping[str, Any]) -> dict[str, Any]:
    """run.json of any version as version 4 reads it (the settings; where the images lie is the folder's)."""
    d = json.loads(json.dumps(raw))
    version = d.get("settings_version")
    if version == SETTINGS_VERSION:
        return d
    if version == 3:  # the same settings; the images were at the folder's top
        return {**d, "settings_version": SETTINGS_VERSION, "upgraded_from": 3}
    if version not in (1, 2):
        return d  # not ours to read: read_run says so
    gen, mix = _mapping(d.get("generation") or {}, "generation"), _mapping(d.get("mixing") or {}, "mixing")
    gen, mix = dict(gen), dict(mix)
    if version == 1:  # every prompt per image, rounded arithmetic (all version 1 made), revision unknown
        gen.setdefault("prompts_per_image", "all")
        mix.setdefault("arithmetic", "rounded")
    recipe = {k: gen[k] for k in ("size", "resize", "prompts", "prompts_per_image", "images_per_prompt", "seed")
              if k in gen}
    recipe.update({k: mix[k] for k in ("layouts", "mask", "seam", "lam", "arithmetic") if k in mix})
    old_editor = dict(gen.get("editor") or {})
    editor = {k: v for k, v in old_editor.items() if k not in _DESCRIPTION_KEYS and v is not None}
    if editor.get("vae") != "tiny":
        editor.pop("tiny_vae_model", None)
    editor["model_revision"] = gen.get("model_revision")
    scoring = gen.get("scoring")
    scorer = None
    if scoring:
        scorer = {k: scoring[k] for k in ("name", "model", "dtype", "template", "classes") if k in scoring}
        scorer["rule"] = scoring.get("rule") or {}
    options = {"format": mix.get("format", "png"), "quality": mix.get("quality"), "cache": bool(mix.get("cache"))}
    return {
        "diffusemix": d.get("diffusemix"),
        "settings_version": SETTINGS_VERSION,
        "upgraded_from": version,
        "input": d.get("input"),
        "labels": d.get("labels"),
        "recipe": recipe,
        "editor": editor,
        "scorer": scorer,
        "options": options,
        "fractals": mix.get("fractals"),
    }


# ---------------------------------------------------------------------------
# the same folder again: resume, remix, or refuse
# ---------------------------------------------------------------------------


def _parts(d: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(what makes Î, what makes A from Î) of a version-3 settings dict, by each field's stage."""
    recipe = d.get("recipe") or {}
    options = d.get("options") or {}
    gen_fields = set(schema.fields_by_stage(Recipe, "generation"))
    gen = {
        "recipe": {k: v for k, v in recipe.items() if k in gen_fields},
        "editor": d.get("editor"),
        "scorer": d.get("scorer"),
    }
    gen_options = set(schema.fields_by_stage(ExportOptions, "generation"))
    gen["options"] = {k: v for k, v in options.items() if k in gen_options}
    mix = {
        "recipe": {k: v for k, v in recipe.items() if k not in gen_fields},
        "options": {k: v for k, v in options.items() if k not in gen_options},
        "fractals": d.get("fractals"),
    }
    annotations = d.get("annotations")
    if isinstance(annotations, Mapping):  # by stage too: the entries and their geometry, or only the layout choice
        from ..annotations.export_step import AnnotationOptions

        mixing = set(schema.fields_by_stage(AnnotationOptions, "mixing"))
        gen["annotations"] = {k: v for k, v in annotations.items() if k not in mixing}
        mix["annotations"] = {k: v for k, v in annotations.items() if k in mixing}
    return gen, mix


def _unknown_as_unchanged(old: dict[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """What an older folder did not record is taken as this run's: the model revision (unknown then), the
    batch and chunk sizes (recorded since batches are part of the plan)."""
    old = json.loads(json.dumps(old))
    editor, new_editor = old.setdefault("editor", {}) or {}, new.get("editor") or {}
    if editor.get("model_revision") is None:
        editor["model_revision"] = new_editor.get("model_revision")
    if "batch_size" not in editor and "batch_size" in new_editor:
        editor["batch_size"] = new_editor["batch_size"]
    options, new_options = old.setdefault("options", {}) or {}, new.get("options") or {}
    if "chunk_size" not in options and "chunk_size" in new_options:
        options["chunk_size"] = new_options["chunk_size"]
    old["editor"], old["options"] = editor, options
    return old


def _merged(gen: Mapping[str, Any], mix: Mapping[str, Any]) -> dict[str, Any]:
    """The two parts as one dict keyed as run.json is (``recipe.seed``, ``editor.steps``, ``options.format``)."""
    merged = {**gen, **mix, "recipe": {**gen["recipe"], **mix["recipe"]},
              "options": {**gen["options"], **mix["options"]}}
    if "annotations" in gen:
        merged["annotations"] = {**gen["annotations"], **mix.get("annotations", {})}
    return merged


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_flatten(v, key + "."))
        elif v is not None:  # absent and None read the same
            out[key] = v
    return out


def settings_diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Human-readable differences ``key: old -> new`` between two settings dicts."""
    a, b = _flatten(old), _flatten(new)
    lines = []
    for k in sorted(set(a) | set(b)):
        if a.get(k, "(none)") != b.get(k, "(none)"):
            lines.append(f"{k}: {json.dumps(a.get(k, '(none)'), ensure_ascii=False)} ->"
                         f" {json.dumps(b.get(k, '(none)'), ensure_ascii=False)}")
    return lines


def adopt_settings(
    out: Path, new: dict[str, Any], options: ExportOptions, tag: str, lock: "OutputLock | None" = None,
    *, flat_label: str | None = None,
) -> bool:
    """Write run.json, or check it against an earlier run's. Returns True for a remix.

    A remix forgets every shard's rows, so a shard run takes ``lock`` alone
    for it (refused while other shards run). A folder made before version 4
    with the same settings has its images moved under ``images/`` first
    (``flat_label``: the one label of a flat input, whose images move into
    that class folder), also with the lock alone.

    Raises:
        DiffuseMixError: the folder was made from another input or with other
            settings (and this is not a --reuse-generated remix).
    """
    raw = folder.read_settings(out)
    if raw is None:
        folder.write_settings(out, new, tag=tag)
        return False
    try:
        old = upgrade(raw)
    except TypeError:
        old = {}
    if old.get("settings_version") != SETTINGS_VERSION or not isinstance(old.get("recipe"), dict):
        raise DiffuseMixError(
            f"was written by another program or version (settings_version {raw.get('settings_version')!r})",
            field=str(folder.settings_path(out)), hint="Use a new output folder",
        )
    _parse_run(out, raw, known_only=True)  # every field of the right type (a hand-edited run.json is named)
    if old.get("input") != new["input"]:
        raise DiffuseMixError(
            f"was made from another input ({old.get('input')})", field=f"output folder {out}",
            hint="Use a new output folder for this input",
        )
    old = _unknown_as_unchanged(old, new)
    old_gen, old_mix = _parts(old)
    new_gen, new_mix = _parts(new)
    same_gen, same_mix = old_gen == new_gen, old_mix == new_mix
    if same_gen and same_mix:
        if raw.get("settings_version") != SETTINGS_VERSION:
            _move_images(out, lock, flat_label=flat_label, tag=tag)
            folder.write_settings(out, new, tag=tag)  # the same settings, in this version's words (the move is done)
        return False
    diff = settings_diff(_merged(old_gen, old_mix), _merged(new_gen, new_mix))
    shown = "; ".join(diff)[:600]
    if same_gen and options.reuse_generated:
        _move_images(out, lock, flat_label=flat_label, tag=tag)  # the saved Î move with their images
        if lock is not None:
            lock.hold_alone()
        folder.clear_all_state(out)
        folder.write_settings(out, new, tag=tag)
        if lock is not None:
            lock.share_again()
        return True
    hint = "Use a new output folder, or run with the original settings to resume"
    if same_gen:
        hint += ". To re-mix it with the saved generated images, add --reuse-generated (reuse_generated=True)"
    raise DiffuseMixError(f"was made with other settings ({shown})", field=f"output folder {out}", hint=hint)


def _move_images(out: Path, lock: "OutputLock | None", *, flat_label: str | None, tag: str) -> None:
    """A folder made before version 4: its images under ``images/`` (the lock held alone meanwhile)."""
    if not folder.needs_layout_move(out):
        return
    if lock is not None:
        lock.hold_alone()
    try:
        folder.move_to_images_root(out, flat_label=flat_label, tag=tag)
    finally:
        if lock is not None:
            lock.share_again()


def run_fields(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Row fields that hold for every sample of a run (beside each record's own): :data:`folder.RUN_COLUMNS`."""
    editor = dict(settings["editor"])
    name = editor.pop("name")
    revision = editor.pop("model_revision", None)
    return {
        "prompts_per_image": settings["recipe"]["prompts_per_image"],
        "editor": name,
        "editor_settings": json.dumps(editor, sort_keys=True, ensure_ascii=False),
        "model_revision": revision,
    }
