"""Export step 5: journals and the merge into metadata.jsonl."""

from __future__ import annotations

from pathlib import Path

import pytest

from diffusemix.errors import DiffuseMixError
from diffusemix.export import folder, manifest, merge_manifests


def test_merge_refuses_a_folder_that_is_not_an_export(tmp_path: Path) -> None:
    with pytest.raises(DiffuseMixError, match="not a diffusemix export folder"):
        merge_manifests(tmp_path)


def test_journal_drops_a_truncated_last_line(tmp_path: Path) -> None:
    p = tmp_path / ".diffusemix" / "rows-0-of-1.jsonl"
    p.parent.mkdir()
    p.write_bytes(b'{"file_name": "a"}\n{"file_na')
    j = folder.Journal(p)
    j.append({"file_name": "b"})
    j.close()
    assert p.read_bytes() == b'{"file_name": "a"}\n{"file_name": "b"}\n'
    assert [r["file_name"] for r in folder.read_journal_rows(tmp_path)] == ["a", "b"]


def test_the_old_module_name_still_imports_with_a_deprecation_warning() -> None:
    import importlib
    import sys

    sys.modules.pop("diffusemix.manifest", None)
    with pytest.warns(DeprecationWarning, match="diffusemix.manifest is deprecated"):
        old = importlib.import_module("diffusemix.manifest")
    assert old.merge_manifests is merge_manifests and old.collect is manifest.collect
