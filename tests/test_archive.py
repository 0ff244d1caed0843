"""Safe zip extraction (diffusemix/archive.py): symbolic links, zip bombs, counts.
"""

from __future__ import annotations

import stat
import zipfile

import pytest
from app_helpers import clean_uploads, make_zip  # noqa: F401 (fixtures)

from diffusemix.archive import safe_extract

pytestmark = pytest.mark.filterwarnings("ignore::Warning:gradio.queueing")


def test_symlinks_zip_bombs_and_counts_are_refused(tmp_path):
    link = tmp_path / "link.zip"
    with zipfile.ZipFile(link, "w") as zf:
        info = zipfile.ZipInfo("cats/a.png")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(ValueError, match="symbolic link"):
        safe_extract(link, tmp_path / "out1")

    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("cats/huge.png", b"\0" * (3 * 2**20))  # 3 MB of zeros: a few KB compressed
    assert bomb.stat().st_size < 50_000
    with pytest.raises(ValueError, match="unpacks to 3 MB; the limit is 1 MB"):
        safe_extract(bomb, tmp_path / "out2", max_bytes=2**20)

    many = make_zip(tmp_path / "many.zip", {f"cats/{i}.png": b"x" for i in range(5)})
    with pytest.raises(ValueError, match="5 images; the limit is 4"):
        safe_extract(many, tmp_path / "out3", max_images=4)
    with pytest.raises(ValueError, match="5 entries; the limit is 3"):
        safe_extract(many, tmp_path / "out4", max_entries=3)
    assert safe_extract(many, tmp_path / "out5") == 5
