"""Bad annotation input: one error type, and a skip list for errors.jsonl.

Every reader takes ``on_error``:

* ``"raise"`` (default): the first problem raises :class:`AnnotationError`,
  whose message names the file, the image and the object.
* ``"skip"``: the image the problem belongs to is left out **whole** (with all
  its objects) and listed as an :class:`AnnotationIssue`; problems of the
  file itself (unreadable JSON, no class names) still raise. An image is never
  kept with some of its objects missing: an unlabelled object would teach a
  detector that it is background, a silently wrong label.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, NoReturn, get_args

from ..errors import DiffuseMixError

__all__ = ["ON_ERROR", "AnnotationError", "AnnotationIssue", "ImageSkipped", "IssueLog", "OnError"]

OnError = Literal["raise", "skip"]
ON_ERROR: tuple[str, ...] = get_args(OnError)


@dataclass(frozen=True)
class AnnotationIssue:
    """One input problem.

    Attributes:
        file: the annotation, label or mask file it was found in.
        reason: what is wrong, in words.
        image: the image it concerns (file name relative to the images folder), if known.
        object: which object (``"annotation id 17"``, ``"line 3"``), if any.
        hint: what to do about it.
    """

    file: str
    reason: str
    image: str | None = None
    object: str | None = None
    hint: str = ""

    def message(self) -> str:
        where = self.file
        if self.image and self.image not in self.file:
            where += f" (image {self.image!r})"
        if self.object:
            where += f", {self.object}"
        return f"{where}: {self.reason}" + (f". {self.hint}" if self.hint else "")

    def to_error(self) -> dict[str, Any]:
        """An errors.jsonl entry: the skipped image as ``source``, ``kind`` ``"annotation"``, and why."""
        d: dict[str, Any] = {
            "source": self.image,
            "kind": "annotation",
            "reason": self.reason,
            "annotation_file": self.file,
        }
        if self.object:
            d["object"] = self.object
        if self.hint:
            d["hint"] = self.hint
        return d


class AnnotationError(DiffuseMixError):
    """Annotations that cannot be used as they are; the fields say where and why.

    Attributes:
        issue: the :class:`AnnotationIssue` (also as ``file`` = ``path``,
            ``image``, ``object``, ``reason``, ``hint``).
    """

    def __init__(self, issue: AnnotationIssue) -> None:
        self.issue = issue
        self.file = issue.file
        self.image = issue.image
        self.object = issue.object
        super().__init__(issue.message())
        # after the base's __init__, which (with fields) sets reason, hint and path from its arguments
        self.reason = issue.reason
        self.hint = issue.hint or None
        self.path = issue.file

    def message(self, name: str | None = None) -> str:
        """``file (image 'x'), object: reason. hint`` (``name`` is unused: no setting is involved)."""
        return self.issue.message()


class ImageSkipped(Exception):
    """Internal: unwinds a reader out of one image after its issue was logged under ``"skip"``."""


class IssueLog:
    """Collects issues under ``on_error="skip"``, raises the first under ``"raise"``."""

    def __init__(self, on_error: OnError) -> None:
        if on_error not in ON_ERROR:
            raise DiffuseMixError(f"on_error must be one of {', '.join(ON_ERROR)}; got {on_error!r}")
        self.on_error = on_error
        self.issues: list[AnnotationIssue] = []

    def fail(self, issue: AnnotationIssue) -> NoReturn:
        """Raise :class:`AnnotationError`, or record the issue and raise :class:`ImageSkipped`."""
        if self.on_error == "raise":
            raise AnnotationError(issue)
        self.issues.append(issue)
        raise ImageSkipped(issue.message())

    def fatal(self, issue: AnnotationIssue) -> NoReturn:
        """A problem of the whole file: always raises."""
        raise AnnotationError(issue)
