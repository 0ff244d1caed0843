"""Exceptions raised by diffusemix.

Every error a user can cause is a ``ValueError`` subclass whose message says
what was wrong and what to do; the app turns them into ``gr.Error`` and the
command line into exit status 2.
"""

from __future__ import annotations

__all__ = [
    "DiffuseMixError",
    "ImageError",
    "PromptFileError",
    "FractalError",
    "EditorLoadError",
    "Cancelled",
    "ArchiveError",
    "ScorerLoadError",
]


class DiffuseMixError(ValueError):
    """Base class of every user-facing error in diffusemix."""


class ImageError(DiffuseMixError):
    """A file or upload that cannot be used as an input image."""


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
