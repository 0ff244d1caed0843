"""Class folders read exactly as torchvision's ``ImageFolder`` reads them, without torchvision.

torchvision cannot be imported beside a CPU-only torch on the machines this
project is tested on (its PyPI wheel is the CUDA build), yet training and the
export checks need ImageFolder's exact behaviour: which folders are classes,
in which order, and which files are samples. So the four pieces that define it
are copied here verbatim:

* :data:`IMG_EXTENSIONS`, :func:`has_file_allowed_extension`,
  :func:`find_classes` and :func:`make_dataset`: copied unchanged from
  ``torchvision/datasets/folder.py`` of torchvision 0.29.1 (the PyPI wheel
  ``torchvision-0.29.1-cp311-cp311-manylinux_2_28_x86_64.whl``). Only the
  import lines differ. Their behaviour, on purpose, includes what surprises
  people: every sub-folder is a class, hidden ones (``.ipynb_checkpoints``)
  included; classes are sorted by name (code point order); every file with an
  allowed extension under a class folder is a sample, hidden files and files
  in nested folders included; symlinked folders are followed; a class folder
  with no image is an error (``FileNotFoundError``) unless ``allow_empty``.

* :class:`ImageFolderDataset` is this project's: a small torch ``Dataset``
  over those samples (PIL decoding as torchvision's ``pil_loader``:
  ``Image.open(f).convert("RGB")``), with ``classes``, ``class_to_idx``,
  ``samples`` and ``targets`` named as torchvision names them.

torchvision's licence (BSD 3-Clause), which covers the copied code::

    BSD 3-Clause License

    Copyright (c) Soumith Chintala 2016,
    All rights reserved.

    Redistribution and use in source and binary forms, with or without
    modification, are permitted provided that the following conditions are met:

    * Redistributions of source code must retain the above copyright notice, this
      list of conditions and the following disclaimer.

    * Redistributions in binary form must reproduce the above copyright notice,
      this list of conditions and the following disclaimer in the documentation
      and/or other materials provided with the distribution.

    * Neither the name of the copyright holder nor the names of its
      contributors may be used to endorse or promote products derived from
      this software without specific prior written permission.

    THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS "AS IS"
    AND ANY EXPRESS OR IMPLIED WARRANTIES, INCLUDING, BUT NOT LIMITED TO, THE
    IMPLIED WARRANTIES OF MERCHANTABILITY AND FITNESS FOR A PARTICULAR PURPOSE ARE
    DISCLAIMED. IN NO EVENT SHALL THE COPYRIGHT HOLDER OR CONTRIBUTORS BE LIABLE
    FOR ANY DIRECT, INDIRECT, INCIDENTAL, SPECIAL, EXEMPLARY, OR CONSEQUENTIAL
    DAMAGES (INCLUDING, BUT NOT LIMITED TO, PROCUREMENT OF SUBSTITUTE GOODS OR
    SERVICES; LOSS OF USE, DATA, OR PROFITS; OR BUSINESS INTERRUPTION) HOWEVER
    CAUSED AND ON ANY THEORY OF LIABILITY, WHETHER IN CONTRACT, STRICT LIABILITY,
    OR TORT (INCLUDING NEGLIGENCE OR OTHERWISE) ARISING IN ANY WAY OUT OF THE USE
    OF THIS SOFTWARE, EVEN IF ADVISED OF THE POSSIBILITY OF SUCH DAMAGE.

Importing this module imports neither torch nor PIL.
"""

from __future__ import annotations

import os
import os.path
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union, cast

__all__ = [
    "IMG_EXTENSIONS",
    "has_file_allowed_extension",
    "find_classes",
    "make_dataset",
    "pil_loader",
    "ImageFolderDataset",
]


# -- copied verbatim from torchvision 0.29.1, torchvision/datasets/folder.py (BSD-3, see above) ------------------


def has_file_allowed_extension(filename: str, extensions: Union[str, tuple[str, ...]]) -> bool:
    """Checks if a file is an allowed extension.

    Args:
        filename (string): path to a file
        extensions (tuple of strings): extensions to consider (lowercase)

    Returns:
        bool: True if the filename ends with one of given extensions
    """
    return filename.lower().endswith(extensions if isinstance(extensions, str) else tuple(extensions))


def find_classes(directory: Union[str, Path]) -> tuple[list[str], dict[str, int]]:
    """Finds the class folders in a dataset.

    See :class:`DatasetFolder` for details.
    """
    classes = sorted(entry.name for entry in os.scandir(directory) if entry.is_dir())
    if not classes:
        raise FileNotFoundError(f"Couldn't find any class folder in {directory}.")

    class_to_idx = {cls_name: i for i, cls_name in enumerate(classes)}
    return classes, class_to_idx


def make_dataset(
    directory: Union[str, Path],
    class_to_idx: Optional[dict[str, int]] = None,
    extensions: Optional[Union[str, tuple[str, ...]]] = None,
    is_valid_file: Optional[Callable[[str], bool]] = None,
    allow_empty: bool = False,
) -> list[tuple[str, int]]:
    """Generates a list of samples of a form (path_to_sample, class).

    See :class:`DatasetFolder` for details.

    Note: The class_to_idx parameter is here optional and will use the logic of the ``find_classes`` function
    by default.
    """
    directory = os.path.expanduser(directory)

    if class_to_idx is None:
        _, class_to_idx = find_classes(directory)
    elif not class_to_idx:
        raise ValueError("'class_to_index' must have at least one entry to collect any samples.")

    both_none = extensions is None and is_valid_file is None
    both_something = extensions is not None and is_valid_file is not None
    if both_none or both_something:
        raise ValueError("Both extensions and is_valid_file cannot be None or not None at the same time")

    if extensions is not None:

        def is_valid_file(x: str) -> bool:
            return has_file_allowed_extension(x, extensions)  # type: ignore[arg-type]

    is_valid_file = cast(Callable[[str], bool], is_valid_file)

    instances = []
    available_classes = set()
    for target_class in sorted(class_to_idx.keys()):
        class_index = class_to_idx[target_class]
        target_dir = os.path.join(directory, target_class)
        if not os.path.isdir(target_dir):
            continue
        for root, _, fnames in sorted(os.walk(target_dir, followlinks=True)):
            for fname in sorted(fnames):
                path = os.path.join(root, fname)
                if is_valid_file(path):
                    item = path, class_index
                    instances.append(item)

                    if target_class not in available_classes:
                        available_classes.add(target_class)

    empty_classes = set(class_to_idx.keys()) - available_classes
    if empty_classes and not allow_empty:
        msg = f"Found no valid file for the classes {', '.join(sorted(empty_classes))}. "
        if extensions is not None:
            msg += f"Supported extensions are: {extensions if isinstance(extensions, str) else ', '.join(extensions)}"
        raise FileNotFoundError(msg)

    return instances


IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def pil_loader(path: Union[str, Path]) -> Any:
    from PIL import Image

    # open path as file to avoid ResourceWarning (https://github.com/python-pillow/Pillow/issues/835)
    with open(path, "rb") as f:
        img = Image.open(f)
        return img.convert("RGB")


# -- end of the copied code ---------------------------------------------------------------------------------------


class ImageFolderDataset:
    """(image, class index) pairs from class folders, exactly as torchvision's ``ImageFolder`` finds them.

    A map-style dataset (``__len__`` and ``__getitem__``): torch's ``DataLoader``
    takes it as it is, and nothing here imports torch.

    Args:
        root: the folder of class folders (``ROOT/<class>/**/<image>``).
        transform: any callable on the PIL RGB image (default: the image itself).
        target_transform: any callable on the class index.
        loader: path -> image (default :func:`pil_loader`, torchvision's).
        extensions: allowed endings (default :data:`IMG_EXTENSIONS`).
        allow_empty: accept class folders with no image (torchvision's flag).
        classes: the class names expected, in order (e.g. the training set's, when reading a
            validation set); folders that differ are refused, naming the difference.

    Attributes:
        classes, class_to_idx, samples, targets: as torchvision's ``ImageFolder``.

    Raises:
        FileNotFoundError: not a folder, no class folder, or a class folder without images
            (the last two with torchvision's messages).
        ValueError: ``classes`` given and the folders hold other classes.
    """

    def __init__(
        self,
        root: Union[str, os.PathLike[str]],
        *,
        transform: Optional[Callable[[Any], Any]] = None,
        target_transform: Optional[Callable[[int], Any]] = None,
        loader: Callable[[str], Any] = pil_loader,
        extensions: tuple[str, ...] = IMG_EXTENSIONS,
        allow_empty: bool = False,
        classes: Optional[Sequence[str]] = None,
    ) -> None:
        self.root = os.fspath(root)
        if not os.path.isdir(self.root):
            raise FileNotFoundError(f"{self.root} is not a folder (expected ROOT/<class>/<image>)")
        found, class_to_idx = find_classes(self.root)
        if classes is not None and list(classes) != found:
            missing = sorted(set(classes) - set(found))
            extra = sorted(set(found) - set(classes))
            raise ValueError(
                f"the class folders of {self.root} are not the expected classes"
                + (f"; missing: {', '.join(missing[:5])}" if missing else "")
                + (f"; not expected: {', '.join(extra[:5])}" if extra else "")
                + ("" if missing or extra else "; same names in another order")
                + " (hidden folders such as .ipynb_checkpoints count as classes, as in torchvision)"
            )
        self.classes: list[str] = found
        self.class_to_idx: dict[str, int] = class_to_idx
        self.samples: list[tuple[str, int]] = make_dataset(
            self.root, class_to_idx, extensions=extensions, allow_empty=allow_empty
        )
        self.targets: list[int] = [s[1] for s in self.samples]
        self.transform, self.target_transform, self.loader = transform, target_transform, loader

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        path, target = self.samples[index]
        sample = self.loader(path)
        if self.transform is not None:
            sample = self.transform(sample)
        label: Any = target
        if self.target_transform is not None:
            label = self.target_transform(target)
        return sample, label

    def __repr__(self) -> str:
        return f"ImageFolderDataset({self.root!r}, classes={len(self.classes)}, samples={len(self.samples)})"
