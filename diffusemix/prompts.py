"""Prompt sets: the shipped ``prompts.yaml``, user files, and free-text lists.

A prompt file looks like this (see the comments at the top of the shipped
``prompts.yaml``)::

    default: paper
    sets:
      paper:
        - Autumn
        - snowy
      quick: [sunset, Autumn]

``load_prompts`` reads and checks such a file and returns a frozen
``PromptBook``. Every problem is a ``PromptFileError`` whose message names the
file and the line, e.g. ``prompts.yaml, line 9: set 'paper' has 'snowy' twice
(first at line 5)``. The checks walk the composed YAML nodes rather than the
loaded dict, so duplicate keys (which PyYAML would silently merge) are caught
and every message can give a line.

Rules for a prompt (``check_prompts``): a string, stripped of surrounding
whitespace, non-blank, at most ``MAX_PROMPT_CHARS`` characters, on one line
(no control characters or line separators), and not repeated within its set
(compared case-insensitively). Rules for a set name: ``SET_NAME_PATTERN``
(letters, digits, ``_`` and ``-``), so it works as a command-line value and in
file names.
"""

from __future__ import annotations

import os
import re
import tempfile
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import yaml

from .errors import PromptFileError

__all__ = [
    "PAPER_PROMPTS",
    "QUICK_PROMPTS",
    "MAX_PROMPT_CHARS",
    "SET_NAME_PATTERN",
    "PromptBook",
    "default_prompts_path",
    "load_prompts",
    "parse_prompt_list",
    "check_prompts",
    "format_set",
    "save_set",
]

#: The authors' nine prompts, in the order of their README. The ``paper``
#: set of the shipped prompts.yaml ("rain" is one of our own, in ``weather``).
PAPER_PROMPTS: tuple[str, ...] = (
    "Autumn",
    "snowy",
    "watercolor art",
    "sunset",
    "rainbow",
    "aurora",
    "mosaic",
    "ukiyo-e",
    "a sketch with crayon",
)
#: Two prompts, as the authors advise for a first run. The ``quick`` set.
QUICK_PROMPTS: tuple[str, ...] = ("sunset", "Autumn")

#: Longest prompt accepted, in characters (CLIP reads at most 77 tokens anyway).
MAX_PROMPT_CHARS: int = 200
#: What a set name may look like.
SET_NAME_PATTERN: str = r"[A-Za-z0-9_-]+"

_STR_TAG = "tag:yaml.org,2002:str"
_TOP_KEYS = ("default", "sets")


def default_prompts_path() -> Path:
    """The shipped ``prompts.yaml`` (the repository's top-level file; inside an
    installed wheel, its packaged copy: see :mod:`diffusemix.resources`)."""
    from .resources import shipped_path

    return shipped_path("prompts.yaml")


# ---------------------------------------------------------------------------
# single prompts and free-text lists
# ---------------------------------------------------------------------------


def _short(text: str, n: int = 40) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."


def _prompt_problem(prompt: object) -> str | None:
    """Why ``prompt`` is not a usable prompt, or None if it is."""
    if not isinstance(prompt, str):
        return f"must be a string; got {prompt!r} (quote it)"
    text = prompt.strip()
    if not text:
        return "is blank"
    if len(text) > MAX_PROMPT_CHARS:
        return f"{_short(text)!r} is {len(text)} characters long; the limit is {MAX_PROMPT_CHARS}"
    for ch in text:
        if unicodedata.category(ch) in ("Cc", "Zl", "Zp"):
            return f"{_short(text)!r} contains a line break or control character ({ch!r}); keep each prompt on one line"
    return None


def _name_problem(name: object) -> str | None:
    if not isinstance(name, str) or not re.fullmatch(SET_NAME_PATTERN, name):
        return (
            f"set name {name!r} is not allowed; use only letters, digits, '_' and '-' "
            f"(pattern {SET_NAME_PATTERN})"
        )
    return None


def check_prompts(prompts: Iterable[str]) -> tuple[str, ...]:
    """Check a list of prompts and return it stripped, as a tuple.

    Raises:
        PromptFileError: no prompts; a prompt that is not a string, is blank,
            is longer than ``MAX_PROMPT_CHARS`` or spans lines; or the same
            prompt twice (compared case-insensitively).
    """
    if isinstance(prompts, (str, bytes)):
        raise PromptFileError(
            "expected a list of prompts, not a single string; "
            "use parse_prompt_list to split comma-separated text"
        )
    out: list[str] = []
    seen: dict[str, str] = {}
    for i, prompt in enumerate(prompts, start=1):
        problem = _prompt_problem(prompt)
        if problem is not None:
            raise PromptFileError(f"prompt {i} {problem}")
        text = prompt.strip()
        key = text.casefold()
        if key in seen:
            raise PromptFileError(f"prompt {text!r} is given twice (as {seen[key]!r} before)")
        seen[key] = text
        out.append(text)
    if not out:
        raise PromptFileError("no prompts given; give at least one, e.g. 'sunset, Autumn'")
    return tuple(out)


def parse_prompt_list(text: str) -> tuple[str, ...]:
    """Split free text (``--prompts "a,b"``, the app's text box) into prompts.

    Splits on commas and line breaks, strips each part and drops empty ones,
    then applies ``check_prompts``.
    """
    if not isinstance(text, str):
        raise PromptFileError(f"prompts must be given as text; got {type(text).__name__}")
    parts = (p.strip() for p in re.split(r"[,\r\n\u2028\u2029]", text))
    return check_prompts([p for p in parts if p])


# ---------------------------------------------------------------------------
# PromptBook
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PromptBook:
    """Named prompt sets, as read from a prompt file.

    Attributes:
        sets: set name -> prompts, in file order. Stored read-only
            (a ``MappingProxyType`` over tuples); a plain dict of lists is
            accepted and frozen.
        default: the set ``get()`` returns when no name is given.
        path: the file it came from, or None when built in code.
    """

    sets: Mapping[str, tuple[str, ...]] = field(hash=False)
    default: str
    path: Path | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.sets, Mapping) or not self.sets:
            raise PromptFileError("sets must be a non-empty mapping of set name -> prompts")
        frozen: dict[str, tuple[str, ...]] = {}
        for name, prompts in self.sets.items():
            problem = _name_problem(name)
            if problem is not None:
                raise PromptFileError(problem)
            try:
                frozen[name] = check_prompts(prompts)
            except PromptFileError as e:
                raise PromptFileError(f"set {name!r}: {e}") from None
        if self.default not in frozen:
            raise PromptFileError(
                f"default {self.default!r} is not a prompt set; available: {', '.join(frozen)}"
            )
        object.__setattr__(self, "sets", MappingProxyType(frozen))
        if self.path is not None:
            object.__setattr__(self, "path", Path(self.path))

    @property
    def names(self) -> tuple[str, ...]:
        """Set names in file order."""
        return tuple(self.sets)

    def get(self, name: str | None = None) -> tuple[str, ...]:
        """The prompts of set ``name``, or of the default set when ``name`` is None."""
        if name is None:
            name = self.default
        try:
            return self.sets[name]
        except (KeyError, TypeError):
            raise PromptFileError(
                f"unknown prompt set {name!r}; available: {', '.join(self.names)}"
            ) from None


# ---------------------------------------------------------------------------
# reading a prompt file
# ---------------------------------------------------------------------------


def _read_text(path: Path) -> str:
    from .filecheck import MAX_TEXT_BYTES, read_checked

    def fail(reason: str) -> PromptFileError:
        if reason.startswith("is a folder"):
            reason = "is a folder, not a YAML file"
        return PromptFileError(f"prompt file '{path}' {reason}")

    data = read_checked(path, max_bytes=MAX_TEXT_BYTES, fail=fail)  # never a FIFO, /dev/zero or a huge file
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise PromptFileError(f"prompt file '{path}' is not UTF-8 text ({e.reason})") from e
    return text


def _compose(text: str, label: str) -> yaml.Node | None:
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"{label}, line {mark.line + 1}" if mark is not None else label
        what = " ".join(p for p in (e.context, e.problem) if p) or "syntax error"
        raise PromptFileError(f"{where}: malformed YAML: {what}") from None
    except yaml.YAMLError as e:
        raise PromptFileError(f"{label}: malformed YAML: {e}") from None


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def _is_str(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == _STR_TAG


def _parse(text: str, label: str, path: Path | None) -> PromptBook:
    """Check the YAML text of a prompt file and build its PromptBook."""

    def fail(node: yaml.Node | None, message: str) -> PromptFileError:
        where = f"{label}, line {_line(node)}" if node is not None else label
        return PromptFileError(f"{where}: {message}")

    # 1. YAML syntax, top level
    root = _compose(text, label)
    if root is None:
        raise fail(None, "is empty; it needs a 'sets:' mapping of set name -> list of prompts")
    if not isinstance(root, yaml.MappingNode):
        raise fail(root, "the top level must be a mapping with 'sets:' (and optionally 'default:')")

    top: dict[str, tuple[yaml.Node, yaml.Node]] = {}
    for key, value in root.value:
        if not _is_str(key) or key.value not in _TOP_KEYS:
            shown = key.value if isinstance(key, yaml.ScalarNode) else "a non-string key"
            raise fail(key, f"unknown top-level key {shown!r}; expected {' and '.join(_TOP_KEYS)}")
        if key.value in top:
            raise fail(key, f"'{key.value}' appears twice (first at line {_line(top[key.value][0])})")
        top[key.value] = (key, value)

    # 2. sets: a mapping of name -> list of prompts
    if "sets" not in top:
        raise fail(root, "missing 'sets:', the mapping of set name -> list of prompts")
    sets_key, sets_node = top["sets"]
    if isinstance(sets_node, yaml.ScalarNode) and sets_node.tag == "tag:yaml.org,2002:null":
        raise fail(sets_key, "'sets' is empty; add at least one set")
    if not isinstance(sets_node, yaml.MappingNode):
        raise fail(sets_node, "'sets' must be a mapping of set name -> list of prompts")
    if not sets_node.value:
        raise fail(sets_key, "'sets' is empty; add at least one set")

    sets: dict[str, tuple[str, ...]] = {}
    set_lines: dict[str, int] = {}
    for key, value in sets_node.value:
        if not _is_str(key):
            shown = key.value if isinstance(key, yaml.ScalarNode) else "a collection"
            raise fail(key, f"set names must be strings; got {shown!r} (quote it)")
        name = key.value
        problem = _name_problem(name)
        if problem is not None:
            raise fail(key, problem)
        if name in sets:
            raise fail(key, f"set {name!r} is defined twice (first at line {set_lines[name]})")
        if not isinstance(value, yaml.SequenceNode):
            raise fail(value, f"set {name!r} must be a list of prompts (one '- prompt' per line)")
        if not value.value:
            raise fail(value, f"set {name!r} is empty; give it at least one prompt")
        prompts: list[str] = []
        first: dict[str, tuple[str, int]] = {}
        for item in value.value:
            if not isinstance(item, yaml.ScalarNode):
                raise fail(item, f"set {name!r}: each prompt must be a string, not a list or mapping")
            if not _is_str(item):
                raise fail(item, f"set {name!r}: prompt {item.value!r} must be a string (quote it)")
            problem = _prompt_problem(item.value)
            if problem is not None:
                raise fail(item, f"set {name!r}: prompt {problem}")
            text = item.value.strip()
            fold = text.casefold()
            if fold in first:
                seen, seen_line = first[fold]
                raise fail(
                    item,
                    f"set {name!r} has {text!r} twice (first at line {seen_line}"
                    + (f" as {seen!r}" if seen != text else "")
                    + ")",
                )
            first[fold] = (text, _line(item))
            prompts.append(text)
        sets[name] = tuple(prompts)
        set_lines[name] = _line(key)

    # 3. default: a set that exists (the first set when absent)
    if "default" in top:
        default_key, default_node = top["default"]
        if not _is_str(default_node):
            raise fail(default_key, "'default' must be the name of a set")
        default = default_node.value
        if default not in sets:
            raise fail(
                default_node,
                f"default {default!r} is not a set in this file; available: {', '.join(sets)}",
            )
    else:
        default = next(iter(sets))

    return PromptBook(sets=sets, default=default, path=path)


def load_prompts(path: str | os.PathLike | None = None) -> PromptBook:
    """Read and check a prompt file (the shipped ``prompts.yaml`` when None).

    When the file has no ``default:``, the first set is the default.

    Raises:
        PromptFileError: the file is missing or unreadable, or breaks a rule;
            the message names the file and, for rule breaks, the line.
    """
    p = default_prompts_path() if path is None else Path(path)
    return _parse(_read_text(p), str(p), p)


# ---------------------------------------------------------------------------
# writing sets
# ---------------------------------------------------------------------------


def _scalar(text: str) -> str:
    """``text`` as a one-line YAML scalar, quoted only when YAML needs it."""
    dumped = yaml.safe_dump([text], allow_unicode=True, width=10**9)
    if not dumped.startswith("- ") or dumped.count("\n") != 1:  # check_prompts rules this out
        raise PromptFileError(f"{_short(text)!r} cannot be written on one line of YAML")
    return dumped[2:-1]


def _set_lines(name: str, prompts: Sequence[str], indent: int) -> list[str]:
    pad = " " * indent
    return [f"{pad}{_scalar(name)}:"] + [f"{pad}  - {_scalar(p)}" for p in prompts]


def _check_name(name: str) -> None:
    problem = _name_problem(name)
    if problem is not None:
        raise PromptFileError(problem)


def format_set(name: str, prompts: Sequence[str]) -> str:
    """A complete, minimal prompts.yaml holding one set, which is its default.

    Usable on its own as a prompt file, and its ``<name>:`` block can be pasted
    under ``sets:`` of another file. Prompts are checked and stripped.

    Raises:
        PromptFileError (a ValueError): a bad set name or bad prompts.
    """
    _check_name(name)
    prompts = check_prompts(prompts)
    lines = [
        f"# DiffuseMix prompt set {name!r} ({len(prompts)} prompts).",
        "# Use this file as a prompt file, or paste the block under 'sets:' into",
        "# another prompts.yaml. Prompts must be filter-like, never describe content.",
        f"default: {_scalar(name)}",
        "sets:",
        *_set_lines(name, prompts, 2),
    ]
    return "\n".join(lines) + "\n"


def _content_end(node: yaml.Node) -> int:
    """Index just past the last character that belongs to ``node``'s own text."""
    if isinstance(node, (yaml.SequenceNode, yaml.MappingNode)) and not node.flow_style and node.value:
        last = node.value[-1]
        return _content_end(last[1] if isinstance(node, yaml.MappingNode) else last)
    return node.end_mark.index


def _line_end(text: str, index: int) -> int:
    """Index just past the line break that ends the line containing ``index``."""
    nl = text.find("\n", index)
    return len(text) if nl < 0 else nl + 1


def _edit_in_place(text: str, name: str, prompts: tuple[str, ...]) -> str | None:
    """``text`` with set ``name`` added or replaced, keeping everything else.

    Returns None when the file is not in a layout this can edit safely (e.g.
    ``sets`` written in flow style), so the caller re-dumps instead.
    """
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    sets_node = next(v for k, v in root.value if k.value == "sets")
    if sets_node.flow_style or not sets_node.value:
        return None
    newline = "\r\n" if "\r\n" in text else "\n"
    for key, value in sets_node.value:
        if key.value == name:  # replace this set's lines
            start = key.start_mark.index - key.start_mark.column
            if text[start : key.start_mark.index].strip():
                return None  # the key does not start its line
            end = _line_end(text, _content_end(value))
            indent = key.start_mark.column
            break
    else:  # append after the last set
        last_key, last_value = sets_node.value[-1]
        start = end = _line_end(text, _content_end(last_value))
        indent = last_key.start_mark.column
    lines = _set_lines(name, prompts, indent)
    first_key = sets_node.value[0][0]
    between_sets = text[first_key.start_mark.index : sets_node.value[-1][0].start_mark.index]
    if end == start and "\n\n" in between_sets.replace("\r\n", "\n"):
        lines.insert(0, "")  # the file separates its sets by blank lines: do the same
    block = newline.join(lines) + newline
    before = text[:start]
    if before and not before.endswith("\n"):
        before += newline
    return before + block + text[end:]


def _redump(book: PromptBook, name: str, prompts: tuple[str, ...]) -> str:
    sets = {n: list(p) for n, p in book.sets.items()}
    sets[name] = list(prompts)
    body = yaml.safe_dump(
        {"default": book.default, "sets": sets},
        allow_unicode=True,
        sort_keys=False,
        default_flow_style=False,
        width=10**9,
    )
    return "# DiffuseMix prompt sets (rewritten by diffusemix.prompts.save_set).\n" + body


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o7777)
        else:
            os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def save_set(
    path: str | os.PathLike,
    name: str,
    prompts: Sequence[str],
    *,
    overwrite: bool = False,
) -> None:
    """Add the set ``name`` to the prompt file at ``path``, written atomically.

    * A missing file is created as ``format_set(name, prompts)``.
    * In an existing file, the new set's lines go after the last set under
      ``sets:`` (or replace the old set's lines, with ``overwrite``), so the
      user's comments, order and formatting are kept. When ``sets`` is not in
      block layout (e.g. ``sets: {a: [x]}``) the file is re-dumped instead and
      its comments are lost; its sets and default are kept.
    * The existing file must be valid (it is never edited while broken), and
      the new text is checked by the same rules before it replaces the file.

    Raises:
        PromptFileError: bad name or prompts; the existing file is invalid; or
            the set exists and ``overwrite`` is False.
    """
    # 1. check inputs
    _check_name(name)
    prompts = check_prompts(prompts)
    path = Path(path)

    # 2. a new file
    if not path.exists():
        if not path.parent.is_dir():
            raise PromptFileError(f"cannot create '{path}': folder '{path.parent}' does not exist")
        _write_atomic(path, format_set(name, prompts))
        return

    # 3. the existing file must be valid; refuse to overwrite a set by accident
    text = _read_text(path)
    book = _parse(text, str(path), path)
    if name in book.sets and not overwrite:
        raise PromptFileError(
            f"prompt set {name!r} already exists in '{path}'; "
            "choose another name, or pass overwrite=True to replace it"
        )

    # 4. edit the text in place, falling back to a re-dump if that goes wrong
    expected = dict(book.sets)
    expected[name] = prompts

    def good(candidate: str | None) -> bool:
        if candidate is None:
            return False
        try:
            new = _parse(candidate, str(path), path)
        except PromptFileError:
            return False
        return dict(new.sets) == expected and new.default == book.default

    new_text = _edit_in_place(text, name, prompts)
    if not good(new_text):
        new_text = _redump(book, name, prompts)
        if not good(new_text):  # pragma: no cover - safe_dump output always parses
            raise PromptFileError(f"could not write set {name!r} to '{path}' safely; nothing was changed")

    # 5. write, then read back through the public loader
    _write_atomic(path, new_text)
    load_prompts(path)
