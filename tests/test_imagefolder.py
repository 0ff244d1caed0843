"""diffusemix.imagefolder: torchvision's ImageFolder logic, copied; its surprising parts pinned down."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from diffusemix.imagefolder import (
    IMG_EXTENSIONS,
    ImageFolderDataset,
    find_classes,
    has_file_allowed_extension,
    make_dataset,
)


def _png(path: Path, value: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((4, 5, 3), value, np.uint8)).save(path)
    return path


def test_hidden_folders_are_classes_and_hidden_files_are_samples(tmp_path: Path) -> None:
    _png(tmp_path / "b" / "1.png")
    _png(tmp_path / "B" / "x.PNG")  # upper-case extension counts
    _png(tmp_path / ".ipynb_checkpoints" / "c.png")
    _png(tmp_path / "a" / ".hidden.png")
    _png(tmp_path / "a" / "deep" / "er" / "2.jpg")
    (tmp_path / "a" / "notes.txt").write_text("no")
    (tmp_path / "file_at_root.png").write_bytes(b"")  # a file is never a class
    classes, idx = find_classes(tmp_path)
    assert classes == [".ipynb_checkpoints", "B", "a", "b"]  # code-point order: "." < "B" < "a"
    assert idx == {c: i for i, c in enumerate(classes)}
    samples = make_dataset(str(tmp_path), idx, extensions=IMG_EXTENSIONS)
    rel = [(Path(p).relative_to(tmp_path).as_posix(), t) for p, t in samples]
    assert rel == [
        (".ipynb_checkpoints/c.png", 0),
        ("B/x.PNG", 1),
        ("a/.hidden.png", 2),
        ("a/deep/er/2.jpg", 2),
        ("b/1.png", 3),
    ]


def test_empty_class_is_an_error_unless_allowed(tmp_path: Path) -> None:
    _png(tmp_path / "a" / "1.png")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="Found no valid file for the classes empty"):
        make_dataset(str(tmp_path), extensions=IMG_EXTENSIONS)
    assert len(make_dataset(str(tmp_path), extensions=IMG_EXTENSIONS, allow_empty=True)) == 1
    with pytest.raises(FileNotFoundError, match="Couldn't find any class folder"):
        find_classes(tmp_path / "a")


def test_extension_and_validator_rules() -> None:
    assert has_file_allowed_extension("X.JPEG", IMG_EXTENSIONS)
    assert not has_file_allowed_extension("x.gif", IMG_EXTENSIONS)
    assert has_file_allowed_extension("x.gif", ".gif")  # one string is one extension
    with pytest.raises(ValueError, match="Both extensions and is_valid_file"):
        make_dataset(".", {"a": 0})


def test_symlinked_class_folder_is_followed(tmp_path: Path) -> None:
    _png(tmp_path / "elsewhere" / "inner" / "1.png")
    root = tmp_path / "root"
    (root / "a").mkdir(parents=True)
    os.symlink(tmp_path / "elsewhere", root / "a" / "link")
    assert [t for _, t in make_dataset(str(root), extensions=IMG_EXTENSIONS)] == [0]


def test_dataset_reads_rgb_and_refuses_other_classes(tmp_path: Path) -> None:
    _png(tmp_path / "cat" / "1.png", 10)
    _png(tmp_path / "dog" / "1.png", 200)
    ds = ImageFolderDataset(tmp_path, transform=lambda im: np.asarray(im)[0, 0, 0])
    assert ds.classes == ["cat", "dog"] and ds.targets == [0, 1] and len(ds) == 2
    assert ds[1] == (200, 1)
    with pytest.raises(ValueError, match="missing: fish; not expected: dog"):
        ImageFolderDataset(tmp_path, classes=["cat", "fish"])
    with pytest.raises(ValueError, match="same names in another order"):
        ImageFolderDataset(tmp_path, classes=["dog", "cat"])
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        ImageFolderDataset(tmp_path / "nope")
