"""The run's settings (``run.json``): what an output folder was made with.

``run.json`` is ``{recipe, editor, scorer, options}`` as the dicts of the
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

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from .. import schema
from ..editors.spec import PIXEL_FIELDS, EditorSpec
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
           "run_prompts", "settings_diff"]

#: 4: version 3's settings; the folder keeps its images under ``images/<class>/`` (class folders at its top
#: before). 3: ``{recipe, editor, scorer, options}`` as the settings dataclasses' dicts. 2 (read, upgraded):
#: ``generation`` / ``mixing`` split by hand. 1: version 2 without prompts_per_image, model_revision, arithmetic.
SETTINGS_VERSION = 4
_COMMIT = re.compile(r"[0-9a-f]{40}")
#: The options fields that change the files (format, quality, cache); the others are how the run works.
_OPTION_FIELDS = tuple(n for n in schema.fields_by_stage(ExportOptions, "mixing"))


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
    }
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


def read_run(out: Path) -> RunSettings | None:
    """The settings ``out`` was made with, or None when it has no run.json.

    Raises:
        DiffuseMixError: run.json is unreadable or does not hold settings this version can read.
    """
    raw = folder.read_settings(out)
    if raw is None:
        return None
    d = upgrade(raw)
    try:
        ed = dict(d.get("editor") or {})
        revision = ed.pop("model_revision", None)
        sc = d.get("scorer")
        opts = d.get("options") or {}
        return RunSettings(
            recipe=Recipe.from_dict(d["recipe"]),
            editor=EditorSpec.from_dict(ed),
            scorer=None if not sc else ScorerSpec.from_dict({k: v for k, v in sc.items() if k in ("name", "model",
                                                                                                    "dtype",
                                                                                                    "template")}),
            rule=ScoreRule(**((sc or {}).get("rule") or {})),
            format=str(opts.get("format", "png")),
            cache=bool(opts.get("cache", False)),
            input=d.get("input"),
            labels=d.get("labels"),
            model_revision=revision,
            raw=raw,
        )
    except (KeyError, TypeError, DiffuseMixError) as e:
        raise DiffuseMixError(
            f"holds settings this version cannot read ({e})", field=str(folder.settings_path(out)),
            hint="Use a new output folder",
        ) from None


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
    gen, mix = d.get("generation") or {}, d.get("mixing") or {}
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
    mix = {
        "recipe": {k: v for k, v in recipe.items() if k not in gen_fields},
        "options": dict(options),
        "fractals": d.get("fractals"),
    }
    return gen, mix


def _merged(gen: Mapping[str, Any], mix: Mapping[str, Any]) -> dict[str, Any]:
    """The two parts as one dict keyed as run.json is (``recipe.seed``, ``editor.steps``, ``options.format``)."""
    return {**gen, **mix, "recipe": {**gen["recipe"], **mix["recipe"]}}


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
    old = upgrade(raw)
    if old.get("settings_version") != SETTINGS_VERSION or not isinstance(old.get("recipe"), dict):
        raise DiffuseMixError(
            f"was written by another program or version (settings_version {raw.get('settings_version')!r})",
            field=str(folder.settings_path(out)), hint="Use a new output folder",
        )
    if old.get("input") != new["input"]:
        raise DiffuseMixError(
            f"was made from another input ({old.get('input')})", field=f"output folder {out}",
            hint="Use a new output folder for this input",
        )
    old_gen, old_mix = _parts(old)
    new_gen, new_mix = _parts(new)
    if old.get("editor", {}).get("model_revision") is None:  # unknown then: taken as unchanged
        new_gen = {**new_gen, "editor": {**(new_gen["editor"] or {}), "model_revision": None}}
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
