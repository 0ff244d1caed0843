"""The run's settings (``.diffusemix/run.json``): what an output folder was made with.

Settings are split into what makes Î (``generation``: changing any of it
means a new output folder) and what makes A from Î (``mixing``: may change
with ``--reuse-generated``, a remix).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import DiffuseMixError
from ..recipe import Recipe
from . import manifest
from .options import ExportOptions
from .scan import InputScan

if TYPE_CHECKING:  # pragma: no cover
    from ..editors.base import Editor
    from .lock import OutputLock
    from ..fractals import FractalSet

#: Editor description keys that do not change pixels (left out of run.json and the manifest).
_NON_PIXEL_EDITOR_KEYS = frozenset({"device", "batch_size", "notice", "summary"})
#: 2: ``generation.prompts_per_image``, ``generation.model_revision`` and
#: ``mixing.arithmetic`` recorded (version 1 folders were all prompts, rounded).
_SETTINGS_VERSION = 2
_COMMIT = re.compile(r"[0-9a-f]{40}")


def _editor_settings(editor: "Editor") -> dict[str, Any]:
    d = dict(editor.describe())
    return {k: v for k, v in d.items() if k not in _NON_PIXEL_EDITOR_KEYS}


def _fractal_digest(fractals: "FractalSet") -> str:
    h = hashlib.sha1()
    folder = Path(getattr(fractals, "folder", "") or ".")
    for name in fractals.names:
        try:
            size = (folder / name).stat().st_size
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


def run_settings(
    scan: InputScan,
    recipe: Recipe,
    editor: "Editor",
    fractals: "FractalSet",
    options: ExportOptions,
    *,
    scoring: dict[str, Any] | None = None,
) -> dict[str, Any]:
    from .. import __version__

    r = recipe.to_dict()
    settings = {
        "diffusemix": __version__,
        "settings_version": _SETTINGS_VERSION,
        "input": str(scan.root.resolve()),
        "labels": scan.label_mode,
        # what makes Î: changing any of it means a new output folder
        "generation": {
            "size": r["size"],
            "resize": r["resize"],
            "prompts": r["prompts"],
            "prompts_per_image": r["prompts_per_image"],
            "images_per_prompt": r["images_per_prompt"],
            "seed": r["seed"],
            "editor": _editor_settings(editor),
            "model_revision": model_revision(editor.describe().get("model")),
            # the scorer and its rule decide which Î are kept (only when scoring: unscored runs read as before)
            **({"scoring": scoring} if scoring else {}),
        },
        # what makes A from Î: may change with --reuse-generated (a remix); a cache mixes
        # nothing, and its layouts, mask, seam and λ are the training defaults (diffusemix.data)
        "mixing": {
            "cache": True,
            "format": options.format,
            **{k: r[k] for k in ("layouts", "mask", "seam", "lam", "arithmetic")},
        }
        if options.cache
        else {
            "layouts": r["layouts"],
            "mask": r["mask"],
            "seam": r["seam"],
            "lam": r["lam"],
            "arithmetic": r["arithmetic"],
            "fractals": {"count": len(fractals.names), "digest": _fractal_digest(fractals)},
            "format": options.format,
            "quality": options.quality if options.format == "jpeg" else None,
        },
    }
    return json.loads(json.dumps(settings))  # tuples -> lists, as read back from run.json


def adopt_settings(
    out: Path, new: dict[str, Any], options: ExportOptions, tag: str, lock: "OutputLock | None" = None
) -> bool:
    """Write run.json, or check it against an earlier run's. Returns True for a remix.

    A remix forgets every shard's rows, so a shard run takes ``lock`` alone
    for it (refused while other shards run).

    Raises:
        DiffuseMixError: the folder was made from another input or with other
            settings (and this is not a --reuse-generated remix).
    """
    old = manifest.read_settings(out)
    if old is None:
        manifest.write_settings(out, new, tag=tag)
        return False
    old = _upgrade(old, new)
    if old.get("input") != new["input"]:
        raise DiffuseMixError(
            f"output folder {out} was made from another input ({old.get('input')}); "
            "use a new output folder for this input"
        )
    same_gen = old.get("generation") == new["generation"]
    same_mix = old.get("mixing") == new["mixing"]
    if same_gen and same_mix:
        return False
    diff = manifest.settings_diff(old, new)
    shown = "; ".join(d for d in diff if not d.startswith(("diffusemix:", "settings_version:")))[:600]
    if same_gen and options.reuse_generated:
        if lock is not None:
            lock.hold_alone()
        manifest.clear_all_state(out)
        manifest.write_settings(out, new, tag=tag)
        if lock is not None:
            lock.share_again()
        return True
    hint = ""
    if same_gen:
        hint = " To re-mix it with the saved generated images, add --reuse-generated (reuse_generated=True)."
    raise DiffuseMixError(
        f"output folder {out} was made with other settings ({shown}). Use a new output folder, or run "
        f"with the original settings to resume.{hint}"
    )


def _upgrade(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """Version 1 settings as version 2 reads them: every prompt per image, rounded
    arithmetic (all version 1 made), and the model revision unknown (taken as unchanged)."""
    if old.get("settings_version") != 1:
        return old
    old = json.loads(json.dumps(old))
    if isinstance(old.get("generation"), dict):
        old["generation"].setdefault("prompts_per_image", "all")
        old["generation"].setdefault("model_revision", new["generation"].get("model_revision"))
    if isinstance(old.get("mixing"), dict):
        old["mixing"].setdefault("arithmetic", "rounded")
    return old


def run_fields(settings: dict[str, Any]) -> dict[str, Any]:
    """Row fields that hold for every sample of a run (beside each record's own)."""
    gen = settings["generation"]
    return {"prompts_per_image": gen["prompts_per_image"], "model_revision": gen["model_revision"]}


def editor_settings_text(settings: dict[str, Any]) -> str:
    """The editor's pixel-relevant settings as the JSON text of a manifest row's ``editor_settings``."""
    editor = settings["generation"]["editor"]
    return json.dumps({k: v for k, v in editor.items() if k != "name"}, sort_keys=True, ensure_ascii=False)
