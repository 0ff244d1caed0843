"""The settings schema: one field declaration per setting, read by every shell.

The frozen dataclasses (``Recipe``, ``EditorSpec``, ``ScorerSpec``,
``ExportOptions``) declare each setting once with :func:`setting`: its
default, type, help, choices, range, command-line flag, app label and what
it changes (``stage``). From those fields:

* :func:`check_fields` validates an instance (called by ``__post_init__``;
  class-specific checks follow it there), raising :class:`SettingError`
  with the owner and the field, never a parsed message;
* :func:`add_flags` makes the command line's flags, help text included, and
  :func:`flag_values` reads them back;
* :func:`flag_for` names a field's flag (how the command line words a
  :class:`SettingError`), :func:`label_for` its app label;
* :func:`field_default` / :func:`field_range` give the app its defaults and
  ranges, :func:`to_dict` / :func:`from_dict` give rows and run.json.

So a new setting is one field: add it to its dataclass with :func:`setting`
and it appears in ``--help``, the app's defaults, the rows and run.json.

This is our own small generator rather than transformers' ``HfArgumentParser``:
the command line keeps flags whose value is the preset's when not given
(``None`` in the namespace), values parsed from text (``--lam 0.1:0.3``,
``--shard 0/2``, ``--prompts "a,b"``), union types (``--batch-size 8|auto``),
one flag per group of the help page, and the same metadata serves the app.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from .errors import _UNSET, SettingError

__all__ = [
    "setting",
    "check_fields",
    "fail",
    "NO_VALUE",
    "add_flags",
    "flag_values",
    "flag_for",
    "label_for",
    "field_default",
    "field_range",
    "fields_by_stage",
    "to_dict",
    "from_dict",
    "is_int",
    "is_number",
]

#: What a setting changes: ``generation`` (Î: a new output folder), ``mixing`` (A from Î: a remix may
#: change it), ``run`` (how the work is done: never a pixel).
STAGES = ("generation", "mixing", "run")


def setting(
    default: Any = dataclasses.MISSING,
    *,
    help: str,
    kind: str | None = None,
    choices: Sequence[Any] | None = None,
    low: float | None = None,
    high: float | None = None,
    optional: bool = False,
    flag: str | None = None,
    metavar: str | None = None,
    parse: Callable[[str], Any] | None = None,
    label: str | None = None,
    stage: str = "run",
    cli: bool = True,
    default_text: str | None = None,
    open_choices: bool = False,
    default_factory: Any = dataclasses.MISSING,
) -> Any:
    """One setting of a settings dataclass.

    Args:
        default: the default value (or ``default_factory``).
        help: one sentence for ``--help`` and the app's info text.
        kind: ``"int"``, ``"float"``, ``"bool"``, ``"str"`` (not empty), ``"text"`` (any string), or
            ``None`` (checked by the class itself).
        choices: the allowed values (checked; ``--help`` lists them).
        low, high: the allowed range of a number (inclusive; checked).
        optional: ``None`` is allowed (for specs: "the editor's default").
        flag: the command-line flag (default ``--<name with dashes>``).
        metavar: the flag's value name in ``--help``.
        parse: turns the flag's text into a value (default: from ``kind``).
        label: the app's label for the control (default: the name).
        stage: what the setting changes (see :data:`STAGES`).
        cli: whether the command line has a flag for it.
        default_text: what the default means, for ``--help`` (e.g. "the editor's model" for ``None``).
        open_choices: ``choices`` are the command line's, but the class checks the value itself (a
            registry that code can extend, such as the editors').
    """
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}; got {stage!r}")
    meta = {
        "help": help,
        "kind": kind,
        "choices": tuple(choices) if choices is not None else None,
        "low": low,
        "high": high,
        "optional": optional,
        "flag": flag,
        "metavar": metavar,
        "parse": parse,
        "label": label,
        "stage": stage,
        "cli": cli,
        "default_text": default_text,
        "open_choices": open_choices,
    }
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _fields(cls_or_obj: Any) -> tuple[dataclasses.Field, ...]:
    return tuple(f for f in dataclasses.fields(cls_or_obj) if "help" in f.metadata)


def _field(cls: Any, name: str) -> dataclasses.Field:
    for f in dataclasses.fields(cls):
        if f.name == name:
            return f
    raise KeyError(f"{getattr(cls, '__name__', cls)} has no field {name!r}")


# ---------------------------------------------------------------------------
# checks
# ---------------------------------------------------------------------------


def is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return (
        isinstance(value, (int, float, np.integer, np.floating))
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


#: Pass as ``value`` to :func:`fail` for a message without "; got ...".
NO_VALUE: Any = _UNSET


def fail(obj: Any, name: str, reason: str, value: Any = dataclasses.MISSING, *, hint: str | None = None) -> SettingError:
    """The :class:`SettingError` of field ``name`` of ``obj`` (raise it); ``value`` defaults to the field's."""
    owner = type(obj).__name__ if not isinstance(obj, type) else obj.__name__
    if value is dataclasses.MISSING:
        value = getattr(obj, name)
    return SettingError(reason, owner=owner, field=name, value=value, hint=hint)


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) >= 1e6 else f"{x:g}"


def _range_text(low: float | None, high: float | None) -> str:
    if low is not None and high is not None:
        return f" in [{_num(low)}, {_num(high)}]"
    if low is not None:
        return f" >= {_num(low)}"
    if high is not None:
        return f" <= {_num(high)}"
    return ""


def check_fields(obj: Any) -> None:
    """Check every field of ``obj`` against its metadata; normalise numbers in place.

    Integers become ``int`` (numpy integers included), floats ``float``. Raises
    :class:`SettingError` naming the first bad field.
    """
    for f in _fields(obj):
        m = f.metadata
        value = getattr(obj, f.name)
        if value is None and m["optional"]:
            continue
        kind = m["kind"]
        if m["choices"] is not None and kind != "union" and not m["open_choices"]:
            if value not in m["choices"]:
                raise fail(obj, f.name, f"must be one of {', '.join(map(str, m['choices']))}")
            continue
        if kind == "bool":
            if not isinstance(value, (bool, np.bool_)):
                raise fail(obj, f.name, "must be True or False")
            object.__setattr__(obj, f.name, bool(value))
        elif kind == "int":
            if not is_int(value) or not _in_range(value, m["low"], m["high"]):
                raise fail(obj, f.name, "must be an integer" + _range_text(m["low"], m["high"]))
            object.__setattr__(obj, f.name, int(value))
        elif kind == "float":
            if not is_number(value) or not _in_range(value, m["low"], m["high"]):
                raise fail(obj, f.name, "must be a number" + _range_text(m["low"], m["high"]))
            object.__setattr__(obj, f.name, float(value))
        elif kind == "str":
            if not isinstance(value, str) or not value.strip():
                raise fail(obj, f.name, "must be a non-empty string")
        elif kind == "text":
            if not isinstance(value, str):
                raise fail(obj, f.name, "must be a string")


def _in_range(value: Any, low: float | None, high: float | None) -> bool:
    return (low is None or value >= low) and (high is None or value <= high)


# ---------------------------------------------------------------------------
# the command line
# ---------------------------------------------------------------------------


def _metadata(owner: Any, name: str) -> Mapping[str, Any] | None:
    """Field ``name``'s metadata on ``owner`` (a class or its registered name); None when either is unknown."""
    cls = _resolve_owner(owner)
    if cls is None:
        return None
    try:
        return _field(cls, name).metadata
    except KeyError:
        return None


def flag_for(owner: Any, name: str) -> str:
    """The command-line flag of field ``name`` of ``owner`` (a class or its name)."""
    meta = _metadata(owner, name)
    if meta is None or not meta.get("cli", True):
        return name  # a setting without a flag is named by its key, never by another setting's flag
    return meta.get("flag") or "--" + name.replace("_", "-")


def label_for(owner: Any, name: str) -> str:
    """The app's label of field ``name`` of ``owner`` (a class or its name)."""
    meta = _metadata(owner, name)
    if meta is None:
        return name
    return meta.get("label") or name.replace("_", " ").capitalize()


_OWNERS: dict[str, type] = {}


def register(cls: type) -> type:
    """Make ``cls`` known by name to :func:`flag_for` / :func:`label_for` (a class decorator)."""
    _OWNERS[cls.__name__] = cls
    return cls


def _resolve_owner(owner: Any) -> type | None:
    """A settings class by name: a registered one, or a subclass of one (a setting added in a subclass)."""
    if isinstance(owner, type):
        return owner
    name = str(owner)
    if name in _OWNERS:
        return _OWNERS[name]
    stack = list(_OWNERS.values())
    while stack:
        cls = stack.pop()
        for sub in cls.__subclasses__():
            if sub.__name__ == name:
                return sub
            stack.append(sub)
    return None


def _dest(f: dataclasses.Field) -> str:
    flag = f.metadata.get("flag") or "--" + f.name.replace("_", "-")
    return flag.lstrip("-").replace("-", "_")


def _shown(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return ",".join(map(str, value))
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def add_flags(
    group: Any,
    cls: type,
    *,
    skip: Iterable[str] = (),
    only: Iterable[str] | None = None,
    default_note: Callable[[dataclasses.Field], str | None] | None = None,
) -> None:
    """Add one flag per field of ``cls`` (those with ``cli=True``, in ``only`` if given, not in ``skip``) to
    ``group``.

    Every flag's default in the namespace is ``None`` ("not given"), so a
    value that was not given falls back to a preset or the editor's default.
    The help says the default: ``default_note(field)`` if it returns text,
    else the field's own default.
    """
    skipped = set(skip)
    wanted = None if only is None else set(only)
    for f in _fields(cls):
        m = f.metadata
        if not m["cli"] or f.name in skipped or (wanted is not None and f.name not in wanted):
            continue
        flag = m["flag"] or "--" + f.name.replace("_", "-")
        help_text = m["help"]
        note = default_note(f) if default_note is not None else None
        if note is None:
            note = m["default_text"]
        if note is None and f.default is not dataclasses.MISSING and f.default is not None:
            note = _shown(f.default)
        if note:
            help_text += f" (default: {note})"
        kwargs: dict[str, Any] = {"dest": _dest(f), "default": None, "help": help_text.replace("%", "%%")}
        if m["kind"] == "bool":
            kwargs["action"] = "store_true"
        else:
            if m["parse"] is not None:
                pass  # kept as text: flag_values parses it, so a bad value is a SettingError like any other
            elif m["kind"] == "int":
                kwargs["type"] = int
            elif m["kind"] == "float":
                kwargs["type"] = float
            if m["choices"] is not None and m["kind"] != "union":
                kwargs["choices"] = m["choices"]
            if m["metavar"] is not None:
                kwargs["metavar"] = m["metavar"]
        group.add_argument(flag, **kwargs)


def flag_values(
    cls: type, args: argparse.Namespace, *, skip: Iterable[str] = (), only: Iterable[str] | None = None
) -> dict[str, Any]:
    """The fields of ``cls`` whose flags were given (not ``None``), by field name, their text parsed.

    Raises:
        SettingError: a flag's text that its field's ``parse`` refuses.
    """
    skipped = set(skip)
    wanted = None if only is None else set(only)
    out = {}
    for f in _fields(cls):
        if not f.metadata["cli"] or f.name in skipped or (wanted is not None and f.name not in wanted):
            continue
        value = getattr(args, _dest(f), None)
        if value is not None:
            out[f.name] = f.metadata["parse"](value) if f.metadata["parse"] is not None else value
    return out


# ---------------------------------------------------------------------------
# the app and the files
# ---------------------------------------------------------------------------


def field_default(cls: type, name: str) -> Any:
    """A field's default value."""
    f = _field(cls, name)
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    raise KeyError(f"{cls.__name__}.{name} has no default")


def field_range(cls: type, name: str) -> tuple[float | None, float | None]:
    """A numeric field's (low, high)."""
    m = _field(cls, name).metadata
    return m.get("low"), m.get("high")


def field_help(cls: type, name: str) -> str:
    return _field(cls, name).metadata.get("help", "")


def field_choices(cls: type, name: str) -> tuple[Any, ...]:
    return _field(cls, name).metadata.get("choices") or ()


def fields_by_stage(cls: type, stage: str) -> tuple[str, ...]:
    """The names of the fields of ``cls`` that change ``stage`` (see :data:`STAGES`)."""
    return tuple(f.name for f in _fields(cls) if f.metadata["stage"] == stage)


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def to_dict(obj: Any, *, names: Iterable[str] | None = None) -> dict[str, Any]:
    """The fields (all, or ``names``) as JSON-able values (tuples become lists)."""
    wanted = None if names is None else set(names)
    return {
        f.name: _plain(getattr(obj, f.name))
        for f in dataclasses.fields(obj)
        if wanted is None or f.name in wanted
    }


def from_dict(cls: type, data: Mapping[str, Any], *, what: str | None = None) -> Any:
    """``cls(**data)``, refusing unknown keys with a :class:`SettingError` that lists the known ones."""
    if not isinstance(data, Mapping):
        raise SettingError(f"must be a mapping of {cls.__name__} fields", owner=what or cls.__name__,
                           value=type(data).__name__)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise SettingError(
            f"has no field{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; its fields are"
            f" {', '.join(sorted(names))}",
            owner=None,
            field=what or cls.__name__,
        )
    return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items()})
