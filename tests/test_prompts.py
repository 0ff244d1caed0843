"""Tests for diffusemix.prompts: the shipped file, every bad-file message, save_set."""

from __future__ import annotations

import os
import re
import textwrap
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from diffusemix.errors import PromptFileError
from diffusemix.prompts import (
    MAX_PROMPT_CHARS,
    PAPER_PROMPTS,
    QUICK_PROMPTS,
    PromptBook,
    check_prompts,
    default_prompts_path,
    format_set,
    load_prompts,
    parse_prompt_list,
    save_set,
)


def _write(tmp_path: Path, text: str, name: str = "p.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


GOOD = """
# my prompts
default: a   # the default set
sets:
  # first set
  a:
    - sunset   # warm
    - Autumn
  # second set
  b: [snowy, rain]
# the end
"""


# ---------------------------------------------------------------------------
# the shipped file
# ---------------------------------------------------------------------------


def test_shipped_prompts_yaml():
    path = default_prompts_path()
    assert path.name == "prompts.yaml" and path.is_file()
    assert path.parent == Path(__file__).resolve().parent.parent
    book = load_prompts()
    assert book.path == path
    assert book.default == "paper"
    assert book.get() == PAPER_PROMPTS == book.get("paper")
    # the authors' nine, in the order of their README; "rain" is not theirs
    assert PAPER_PROMPTS == (
        "Autumn", "snowy", "watercolor art", "sunset", "rainbow",
        "aurora", "mosaic", "ukiyo-e", "a sketch with crayon",
    )
    assert "rain" in book.get("weather")
    assert book.get("quick") == QUICK_PROMPTS and len(QUICK_PROMPTS) == 2
    assert book.names[:2] == ("paper", "quick")
    # every other shipped set only uses the paper's prompts and "rain" (all tested with the preview)
    for name in book.names:
        assert set(book.get(name)) <= {*PAPER_PROMPTS, "rain"}, name


def test_shipped_file_is_plain_yaml_too():
    data = yaml.safe_load(default_prompts_path().read_text(encoding="utf-8"))
    assert data["default"] == "paper"
    assert tuple(data["sets"]["paper"]) == PAPER_PROMPTS


# ---------------------------------------------------------------------------
# PromptBook
# ---------------------------------------------------------------------------


def test_good_file(tmp_path):
    book = load_prompts(_write(tmp_path, GOOD))
    assert book.names == ("a", "b")
    assert book.get() == ("sunset", "Autumn")
    assert book.get("b") == ("snowy", "rain")
    assert book.path == tmp_path / "p.yaml"


def test_book_is_immutable(tmp_path):
    book = load_prompts(_write(tmp_path, GOOD))
    with pytest.raises(TypeError):
        book.sets["c"] = ("x",)  # type: ignore[index]
    with pytest.raises(AttributeError):
        book.default = "b"  # type: ignore[misc]
    assert isinstance(book.get("a"), tuple)
    hash(book)


def test_unknown_set(tmp_path):
    book = load_prompts(_write(tmp_path, GOOD))
    with pytest.raises(PromptFileError, match=r"^unknown prompt set 'x'; available: a, b$"):
        book.get("x")


def test_default_is_first_set_when_absent(tmp_path):
    book = load_prompts(_write(tmp_path, "sets:\n  z: [rain]\n  y: [snowy]\n"))
    assert book.default == "z"


def test_book_built_in_code():
    book = PromptBook(sets={"s": [" sunset ", "rain"]}, default="s")
    assert book.get() == ("sunset", "rain") and book.path is None
    with pytest.raises(PromptFileError, match="default 'x' is not a prompt set; available: s"):
        PromptBook(sets={"s": ["rain"]}, default="x")
    with pytest.raises(PromptFileError, match=r"set 's': prompt 'RAIN' is given twice \(as 'rain' before\)"):
        PromptBook(sets={"s": ["rain", "RAIN"]}, default="s")
    with pytest.raises(PromptFileError, match="set name 'a b' is not allowed"):
        PromptBook(sets={"a b": ["rain"]}, default="a b")


# ---------------------------------------------------------------------------
# bad files: each message names the file and the line
# ---------------------------------------------------------------------------

BAD_FILES = [
    # (file text, expected line, message fragment)
    ("default: a\nsets:\n  a: [sunset\n", 4, r"malformed YAML"),
    ("default: a\nsets:\n  a:\n    - x\n   - y\n", 5, r"malformed YAML"),
    ("- sunset\n- rain\n", 1, r"the top level must be a mapping"),
    ("default: a\n", 1, r"missing 'sets:'"),
    ("default: a\nprompts:\n  a: [x]\n", 2, r"unknown top-level key 'prompts'; expected default and sets"),
    ("sets:\n  a: [x]\nsets:\n  b: [y]\n", 3, r"'sets' appears twice \(first at line 1\)"),
    ("sets:\n", 1, r"'sets' is empty"),
    ("sets: {}\n", 1, r"'sets' is empty"),
    ("sets: [sunset, rain]\n", 1, r"'sets' must be a mapping"),
    ("sets:\n  a: sunset\n", 2, r"set 'a' must be a list of prompts"),
    ("sets:\n  a:\n    x: y\n", 3, r"set 'a' must be a list of prompts"),
    ("sets:\n  a: []\n", 2, r"set 'a' is empty"),
    ("sets:\n  a:\n    - sunset\n    - 42\n", 4, r"set 'a': prompt '42' must be a string \(quote it\)"),
    ("sets:\n  a:\n    - sunset\n    - yes\n", 4, r"prompt 'yes' must be a string"),
    ("sets:\n  a:\n    - sunset\n    - [x, y]\n", 4, r"each prompt must be a string, not a list"),
    ("sets:\n  a:\n    - sunset\n    - ''\n", 4, r"set 'a': prompt is blank"),
    ("sets:\n  a:\n    - sunset\n    - '   '\n", 4, r"prompt is blank"),
    ("sets:\n  a:\n    -\n", 3, r"must be a string"),
    ("sets:\n  a:\n    - 'x" + "y" * 300 + "'\n", 3, r"301 characters long; the limit is 200"),
    ("sets:\n  a:\n    - \"sun\\nset\"\n", 3, r"line break or control character"),
    (
        "sets:\n  a:\n    - sunset\n    - rain\n    - Sunset \n",
        5,
        r"set 'a' has 'Sunset' twice \(first at line 3 as 'sunset'\)",
    ),
    ("sets:\n  a:\n    - rain\n    - ' rain'\n", 4, r"set 'a' has 'rain' twice \(first at line 3\)"),
    ("sets:\n  a: [x]\n  b: [y]\n  a: [z]\n", 4, r"set 'a' is defined twice \(first at line 2\)"),
    ("sets:\n  a b: [x]\n", 2, r"set name 'a b' is not allowed"),
    ("sets:\n  123: [x]\n", 2, r"set names must be strings; got '123' \(quote it\)"),
    ("default: c\nsets:\n  a: [x]\n  b: [y]\n", 1, r"default 'c' is not a set in this file; available: a, b"),
    ("default: [a]\nsets:\n  a: [x]\n", 1, r"'default' must be the name of a set"),
    ("sets:\n  a: [x]\n---\nsets:\n  b: [y]\n", 3, r"malformed YAML: .*single document"),
]


@pytest.mark.parametrize(("text", "line", "fragment"), BAD_FILES)
def test_bad_file(tmp_path, text, line, fragment):
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(PromptFileError, match=rf"^{re.escape(str(path))}, line {line}: .*{fragment}"):
        load_prompts(path)


def test_empty_file(tmp_path):
    path = _write(tmp_path, "# only a comment\n")
    with pytest.raises(PromptFileError, match=rf"^{path}: is empty; it needs a 'sets:'"):
        load_prompts(path)


def test_missing_file(tmp_path):
    path = tmp_path / "nope.yaml"
    with pytest.raises(PromptFileError, match=rf"prompt file '{path}' does not exist"):
        load_prompts(path)
    with pytest.raises(PromptFileError, match="is a folder"):
        load_prompts(tmp_path)


def test_not_utf8(tmp_path):
    path = tmp_path / "latin.yaml"
    path.write_bytes("sets:\n  a: [caf\xe9]\n".encode("latin-1"))
    with pytest.raises(PromptFileError, match="is not UTF-8 text"):
        load_prompts(path)


def test_utf8_bom_and_crlf_accepted(tmp_path):
    path = tmp_path / "win.yaml"
    path.write_bytes("\ufeffdefault: a\r\nsets:\r\n  a:\r\n    - café\r\n".encode("utf-8"))
    assert load_prompts(path).get() == ("café",)


# ---------------------------------------------------------------------------
# check_prompts / parse_prompt_list
# ---------------------------------------------------------------------------


def test_parse_prompt_list():
    assert parse_prompt_list("sunset, Autumn") == ("sunset", "Autumn")
    assert parse_prompt_list(" snowy ,\n\nwatercolor art,\r\nukiyo-e,, ") == (
        "snowy",
        "watercolor art",
        "ukiyo-e",
    )
    assert parse_prompt_list("a sketch with crayon") == ("a sketch with crayon",)


@pytest.mark.parametrize("text", ["", "  ", ", ,\n", "\n"])
def test_parse_prompt_list_empty(text):
    with pytest.raises(PromptFileError, match="no prompts given"):
        parse_prompt_list(text)


def test_parse_prompt_list_duplicates_and_length():
    with pytest.raises(PromptFileError, match=r"prompt 'SUNSET' is given twice \(as 'sunset' before\)"):
        parse_prompt_list("sunset, rain, SUNSET")
    with pytest.raises(PromptFileError, match=r"is 201 characters long; the limit is 200"):
        parse_prompt_list("a" * 201)
    assert parse_prompt_list("a" * MAX_PROMPT_CHARS) == ("a" * MAX_PROMPT_CHARS,)


def test_check_prompts():
    assert check_prompts([" sunset", "rain "]) == ("sunset", "rain")
    assert check_prompts(p for p in ("x",)) == ("x",)
    with pytest.raises(PromptFileError, match="no prompts given"):
        check_prompts([])
    with pytest.raises(PromptFileError, match="prompt 2 is blank"):
        check_prompts(["x", " \t "])
    with pytest.raises(PromptFileError, match=r"prompt 2 must be a string; got 3"):
        check_prompts(["x", 3])  # type: ignore[list-item]
    with pytest.raises(PromptFileError, match="line break or control character"):
        check_prompts(["sun\tset"])
    with pytest.raises(PromptFileError, match="not a single string"):
        check_prompts("sunset")
    assert isinstance(PromptFileError("x"), ValueError)


# ---------------------------------------------------------------------------
# format_set
# ---------------------------------------------------------------------------


def test_format_set_is_a_prompt_file(tmp_path):
    text = format_set("mine", ["sunset", "yes", "a: b", "it's # not a comment", "123"])
    assert text.endswith("\n") and "default: mine" in text
    path = tmp_path / "mine.yaml"
    path.write_text(text, encoding="utf-8")
    book = load_prompts(path)
    assert book.names == ("mine",) and book.default == "mine"
    assert book.get() == ("sunset", "yes", "a: b", "it's # not a comment", "123")


@pytest.mark.parametrize("name", ["", "a b", "é", "a/b", "x:"])
def test_format_set_name_validated(name):
    with pytest.raises(ValueError, match="is not allowed; use only letters, digits"):
        format_set(name, ["sunset"])


def test_format_set_prompts_validated():
    with pytest.raises(ValueError, match="no prompts given"):
        format_set("x", [])


_prompt = st.text(min_size=1, max_size=60).filter(
    lambda s: check_ok(s)
)


def check_ok(s: str) -> bool:
    try:
        check_prompts([s])
    except PromptFileError:
        return False
    return True


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    name=st.from_regex(r"[A-Za-z0-9_-]{1,20}", fullmatch=True),
    prompts=st.lists(_prompt, min_size=1, max_size=6, unique_by=lambda s: s.strip().casefold()),
)
def test_format_set_round_trip(tmp_path, name, prompts):
    path = tmp_path / "rt.yaml"
    path.write_text(format_set(name, prompts), encoding="utf-8")
    book = load_prompts(path)
    assert book.names == (name,) and book.default == name
    assert book.get() == tuple(p.strip() for p in prompts)


# ---------------------------------------------------------------------------
# save_set
# ---------------------------------------------------------------------------


def test_save_set_appends_and_keeps_comments(tmp_path):
    path = _write(tmp_path, GOOD)
    before = path.read_text(encoding="utf-8")
    save_set(path, "new-set", ["aurora", "yes"])
    after = path.read_text(encoding="utf-8")
    assert after.startswith(before.split("# the end")[0])  # everything before is untouched
    for comment in ("# my prompts", "# the default set", "# first set", "# warm", "# second set", "# the end"):
        assert comment in after
    book = load_prompts(path)
    assert book.names == ("a", "b", "new-set")
    assert book.get("a") == ("sunset", "Autumn") and book.get("b") == ("snowy", "rain")
    assert book.get("new-set") == ("aurora", "yes")
    assert book.default == "a"
    assert "  new-set:\n    - aurora\n    - 'yes'\n" in after


def test_save_set_refuses_existing_name(tmp_path):
    path = _write(tmp_path, GOOD)
    before = path.read_text(encoding="utf-8")
    msg = r"prompt set 'a' already exists in .*choose another name, or pass overwrite=True"
    with pytest.raises(PromptFileError, match=msg):
        save_set(path, "a", ["aurora"])
    assert path.read_text(encoding="utf-8") == before


def test_save_set_overwrite_replaces_in_place(tmp_path):
    path = _write(tmp_path, GOOD)
    save_set(path, "a", ["mosaic", "ukiyo-e", "rain"], overwrite=True)
    text = path.read_text(encoding="utf-8")
    book = load_prompts(path)
    assert book.names == ("a", "b")  # order kept
    assert book.get("a") == ("mosaic", "ukiyo-e", "rain")
    assert book.get("b") == ("snowy", "rain")
    assert "# first set" in text and "# second set" in text and "# the end" in text
    assert "# warm" not in text  # a comment inside the replaced set goes with it
    save_set(path, "b", ["aurora"], overwrite=True)  # a flow-style set is replaced too
    assert load_prompts(path).get("b") == ("aurora",)
    assert load_prompts(path).get("a") == ("mosaic", "ukiyo-e", "rain")


def test_save_set_on_shipped_layout(tmp_path):
    path = tmp_path / "prompts.yaml"
    path.write_text(default_prompts_path().read_text(encoding="utf-8"), encoding="utf-8")
    save_set(path, "mine", ["sunset", "snowy"])
    save_set(path, "quick", ["rain", "aurora"], overwrite=True)
    book = load_prompts(path)
    assert book.get("paper") == PAPER_PROMPTS
    assert book.get("quick") == ("rain", "aurora")
    assert book.get("mine") == ("sunset", "snowy")
    assert book.names[-1] == "mine"
    text = path.read_text(encoding="utf-8")
    assert "FILTER-LIKE" in text
    assert "    - a sketch with crayon\n\n  mine:\n    - sunset\n" in text  # blank-line layout kept


def test_save_set_flow_style_file_is_redumped(tmp_path):
    path = _write(tmp_path, "# gone\n{default: b, sets: {a: [x], b: [y, z]}}\n")
    save_set(path, "c", ["w"])
    book = load_prompts(path)
    assert book.names == ("a", "b", "c") and book.default == "b"
    assert book.get("b") == ("y", "z") and book.get("c") == ("w",)


def test_save_set_file_without_trailing_newline(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("sets:\n  a:\n    - x  # keep", encoding="utf-8")
    save_set(path, "b", ["y"])
    assert load_prompts(path).get("b") == ("y",)
    assert "# keep" in path.read_text(encoding="utf-8")


def test_save_set_keeps_crlf(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_bytes(b"sets:\r\n  a:\r\n    - x\r\n")
    save_set(path, "b", ["y"])
    data = path.read_bytes()
    assert b"\n" not in data.replace(b"\r\n", b"")
    assert load_prompts(path).names == ("a", "b")


def test_save_set_creates_missing_file(tmp_path):
    path = tmp_path / "new.yaml"
    save_set(path, "mine", ["sunset"])
    book = load_prompts(path)
    assert book.names == ("mine",) and book.default == "mine"
    with pytest.raises(PromptFileError, match="folder .* does not exist"):
        save_set(tmp_path / "no" / "such.yaml", "mine", ["sunset"])


def test_save_set_refuses_broken_file(tmp_path):
    path = _write(tmp_path, "sets:\n  a: [x\n")
    before = path.read_text(encoding="utf-8")
    with pytest.raises(PromptFileError, match="malformed YAML"):
        save_set(path, "b", ["y"])
    assert path.read_text(encoding="utf-8") == before


def test_save_set_validates_inputs_and_leaves_no_temp_files(tmp_path):
    path = _write(tmp_path, GOOD)
    with pytest.raises(PromptFileError, match="is not allowed"):
        save_set(path, "bad name", ["y"])
    with pytest.raises(PromptFileError, match="given twice"):
        save_set(path, "c", ["y", "Y"])
    save_set(path, "c", ["y"])
    assert sorted(os.listdir(tmp_path)) == ["p.yaml"]


def test_save_set_keeps_file_mode(tmp_path):
    path = _write(tmp_path, GOOD)
    os.chmod(path, 0o640)
    save_set(path, "c", ["y"])
    assert (path.stat().st_mode & 0o777) == 0o640
