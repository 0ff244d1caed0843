"""Exceptions raised by diffusemix.

Every error a user can cause is a :class:`DiffuseMixError`: its message says
what was wrong and what to do, and its fields say where (``field`` of
``owner`` for a setting, ``path`` for a file) so that each shell can word it
its own way without reading the message: the command line names the flag
(``--size``), the app the control. The shells catch only
:class:`DiffuseMixError`; any other exception is a bug, shown as an internal
error (the command line prints the traceback and exits 1; the app shows a
short message with a log id and keeps the traceback in the server log).

``DiffuseMixError`` is a ``ValueError`` for library callers (a bad value is a
``ValueError`` in Python), but no shell catches ``ValueError`` itself.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "DiffuseMixError",
    "SettingError",
    "ImageError",
    "PromptFileError",
    "FractalError",
    "EditorLoadError",
    "Cancelled",
    "ArchiveError",
    "ScorerLoadError",
    "RecordError",
]

class _Unset:
    """"No value given": one object, also after pickling (errors travel between processes, e.g. from
    Ray's workers to the driver, and ``value is _UNSET`` must still hold there)."""

    def __reduce__(self) -> str:
        return "_UNSET"  # pickled as a reference to this module's one object

    def __repr__(self) -> str:
        return "<no value>"


_UNSET: Any = _Unset()


class DiffuseMixError(ValueError):
    """Base class of every user-facing error in diffusemix.

    Args:
        reason: what was wrong and, where it helps, what to do.
        owner: the settings class a setting belongs to (``"Recipe"``,
            ``"EditorSpec"``, ...), for ``field``.
        field: the setting or record field that was wrong (``"size"``).
        value: the value that was given (shown as ``got ...``).
        path: the file or folder concerned.
        hint: what to do, when it is not already in ``reason``.

    ``str(err)`` is the library's wording: ``Recipe.size must be ...; got 5``.
    Shells use :meth:`message` with their own name for the field.
    """

    def __init__(
        self,
        reason: str,
        *,
        owner: str | None = None,
        field: str | None = None,
        value: Any = _UNSET,
        path: Any = None,
        hint: str | None = None,
        also: tuple[str, ...] = (),
    ) -> None:
        self.reason = reason
        self.owner = owner
        self.field = field
        self.value = value
        self.path = path
        self.hint = hint
        #: Other fields of ``owner`` with the same problem (``reason`` is then worded for all of them).
        self.also = tuple(also)
        super().__init__(self.message())

    @property
    def has_value(self) -> bool:
        return self.value is not _UNSET

    def message(self, name: str | None = None, *, namer: Any = None) -> str:
        """The message with the field called ``name``, or each field named by ``namer(owner, field)``
        (a shell's words: a flag, a label); default ``Owner.field``."""
        if namer is not None and self.field is not None:
            name = ", ".join(namer(self.owner, f) for f in (self.field, *self.also))
        elif name is None and self.field is not None:
            name = ", ".join(f"{self.owner}.{f}" if self.owner else f for f in (self.field, *self.also))
        sep = "" if self.reason.startswith((":", ",", ";")) else " "
        text = f"{name}{sep}{self.reason}" if name else self.reason
        if self.has_value:
            text += f"; got {self.value!r}"
        if self.hint:
            text += f". {self.hint}"
        return text


class SettingError(DiffuseMixError):
    """A setting (a field of ``Recipe``, ``EditorSpec``, ``ScorerSpec``, ``ExportOptions``) with a bad value."""


class ImageError(DiffuseMixError):
    """A file or upload that cannot be used as an input image.

    ``reason`` says why, without the subject (``"is truncated or corrupt (...)"``); ``path`` names the
    file, or ``subject`` says what it was (``"the image data"``). ``str(err)`` is
    ``image '<path>' is truncated ...``; a shell that shows the file its own way uses ``reason``.
    """

    def __init__(self, reason: str, *, path: Any = None, subject: str = "the image", hint: str | None = None) -> None:
        self.subject = subject
        super().__init__(reason, path=path, hint=hint)

    def message(self, name: str | None = None) -> str:
        who = name or (f"image '{self.path}'" if self.path is not None else self.subject)
        return f"{who} {self.reason}" + (f". {self.hint}" if self.hint else "")


class PromptFileError(DiffuseMixError):
    """A prompts.yaml that is malformed, or a prompt set that does not exist."""


class FractalError(DiffuseMixError):
    """A fractal folder that is missing, empty, or has no readable image."""


class EditorLoadError(DiffuseMixError):
    """A diffusion model that cannot be loaded; the message says how to fix it."""


class Cancelled(Exception):
    """Raised inside an editor when its cancel token is set; work stops at the next step."""


class ArchiveError(DiffuseMixError):
    """An uploaded zip that is corrupt, unsafe, too large, or not a class-folder dataset."""


class ScorerLoadError(DiffuseMixError):
    """A similarity / label scorer whose weights cannot be loaded; the message says how to fix it."""


class RecordError(DiffuseMixError):
    """A row of a manifest or a record that cannot be used: ``path`` is the file, ``row`` its line
    number (1-based), ``field`` the column."""

    def __init__(self, reason: str, *, path: Any = None, row: int | None = None, field: str | None = None,
                 hint: str | None = None) -> None:
        self.row = row
        super().__init__(reason, path=path, field=field, hint=hint)

    def message(self, name: str | None = None) -> str:
        where = str(self.path) if self.path is not None else "a record"
        if self.row is not None:
            where += f" row {self.row}"
        if self.field is not None:
            where += f" field {self.field!r}"
        return f"{where}: {self.reason}" + (f". {self.hint}" if self.hint else "")
