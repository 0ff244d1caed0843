"""Deploy the app to a Hugging Face Space: exactly the files a Space needs, binaries through LFS/Xet, no git-lfs.

    python -m diffusemix space-deploy USER/NAME --dry-run   # list the files and check them; upload nothing
    python -m diffusemix space-deploy USER/NAME             # create the Space (if new) and upload them

A Space built from this repository needs: its front matter and page (``README.md``), the entry point
(``app.py``), the pins (``requirements.txt``), the package (``diffusemix/``: its modules and the training
configs), the shipped assets (``assets/``: the fractal set and the example images), ``prompts.yaml``,
``LICENSE``, ``.gitattributes`` and the pictures the README shows. Nothing else: no tests, benchmarks,
scripts or build files.

The Hub refuses binary files that are not stored through LFS/Xet (a ``git push`` of the fractal PNGs is
rejected). ``huggingface_hub``'s ``upload_folder`` asks the Hub how to store each file, so no git-lfs is
needed here; ``.gitattributes`` (uploaded too) marks the same files for anyone who clones the Space and
pushes with git. Both the dry run and the upload check that every binary file is covered by it.
"""

from __future__ import annotations

import argparse
import fnmatch
import glob
import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from .errors import DiffuseMixError

__all__ = ["SpaceFiles", "space_files", "is_binary", "lfs_patterns", "uncovered_binaries", "front_matter",
           "check_front_matter", "deploy", "add_parser", "run"]

#: Top-level files of the repository a Space needs.
TOP_FILES = ("README.md", "app.py", "requirements.txt", "LICENSE", "prompts.yaml", ".gitattributes")
#: Folders a Space needs whole (their files, hidden ones and caches left out).
TREES = ("diffusemix", "assets")
#: Never uploaded, wherever they are (caches, build leftovers, the wheel build's copy of the assets).
_SKIP_DIRS = {"__pycache__", ".pytest_cache", ".hypothesis", "_data", "build", "dist"}
_SKIP_SUFFIXES = (".pyc", ".pyo", ".egg-info")
#: Front matter a Space of this app must have, and what it is for.
REQUIRED_KEYS = {
    "sdk": "gradio (the app is a Gradio Blocks)",
    "app_file": "app.py (the Space's entry point)",
    "suggested_hardware": "a GPU flavour, e.g. zero-a10g: on a CPU Space InstructPix2Pix takes minutes per image",
}


def _readme_images(root: Path) -> list[str]:
    """Relative image paths the README shows (``![...](path)``), so the Space's page shows them too."""
    text = (root / "README.md").read_text(encoding="utf-8") if (root / "README.md").is_file() else ""
    out = []
    for link in re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", text):
        if "://" in link or link.startswith(("/", "#")):
            continue
        p = PurePosixPath(link)
        if ".." not in p.parts and (root / p).is_file():
            out.append(p.as_posix())
    return out


def _walk(root: Path, top: str) -> list[str]:
    files = []
    for dirpath, dirnames, filenames in os.walk(root / top):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in _SKIP_DIRS
                             and not d.endswith(_SKIP_SUFFIXES))
        for name in sorted(filenames):
            if name.startswith(".") or name.endswith(_SKIP_SUFFIXES):
                continue
            files.append(Path(dirpath, name).relative_to(root).as_posix())
    return files


@dataclass(frozen=True)
class SpaceFiles:
    """What a deploy uploads: the files (relative POSIX paths, sorted), their bytes, and the binary ones."""

    root: Path
    files: tuple[str, ...]
    binary: tuple[str, ...]
    size: int

    def describe(self) -> str:
        lines = [f"{len(self.files)} files, {self.size / 1e6:.1f} MB, from {self.root}"
                 f" ({len(self.binary)} binary: stored through LFS/Xet, as .gitattributes marks them)"]
        groups: dict[str, list[str]] = {}
        for f in self.files:
            groups.setdefault(f.split("/")[0] if "/" in f else ".", []).append(f)
        for top, names in sorted(groups.items()):
            if top == "." or len(names) <= 6:
                lines += [f"  {n}" for n in names]
            else:
                lines.append(f"  {top}/ ({len(names)} files: {', '.join(names[:3])}, ...)")
        return "\n".join(lines)


def is_binary(path: Path) -> bool:
    """Whether the Hub takes a file as binary: a NUL byte in its first 8 KB, or not UTF-8 text."""
    head = path.read_bytes()[:8192]
    if b"\0" in head:
        return True
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as e:
        return e.start < len(head) - 4  # a multi-byte character cut at 8 KB is still text
    return False


def space_files(root: str | os.PathLike[str] = ".") -> SpaceFiles:
    """The files a Space of this app needs, from a checkout at ``root``.

    Raises:
        DiffuseMixError: ``root`` is not a checkout of this project (a needed file is missing).
    """
    root = Path(root).resolve()
    missing = [f for f in ("README.md", "app.py", "requirements.txt") if not (root / f).is_file()]
    missing += [d + "/" for d in TREES if not (root / d).is_dir()]
    if missing:
        raise DiffuseMixError(f"is not a diffusemix checkout: {', '.join(missing)} missing", field=str(root),
                              hint="Run the deploy from the repository's top folder (or pass --root)")
    files = {f for f in TOP_FILES if (root / f).is_file()}
    for top in TREES:
        files.update(_walk(root, top))
    files.update(_readme_images(root))
    ordered = tuple(sorted(files))
    binary = tuple(f for f in ordered if is_binary(root / f))
    return SpaceFiles(root, ordered, binary, sum((root / f).stat().st_size for f in ordered))


def lfs_patterns(root: Path) -> list[str]:
    """The ``.gitattributes`` patterns with ``filter=lfs`` (what git stores through LFS/Xet)."""
    path = Path(root) / ".gitattributes"
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if parts and not parts[0].startswith("#") and "filter=lfs" in parts[1:]:
            out.append(parts[0])
    return out


def _matches(pattern: str, path: str) -> bool:
    """gitattributes matching for the patterns used here: no slash matches the file name in any folder;
    with a slash, the path from the top (``**`` any folders)."""
    if "/" not in pattern.rstrip("/"):
        return fnmatch.fnmatchcase(PurePosixPath(path).name, pattern)
    regex = re.escape(pattern.lstrip("/")).replace(r"\*\*/", "(?:.*/)?").replace(r"\*", "[^/]*").replace(r"\?", ".")
    return re.fullmatch(regex, path) is not None


def uncovered_binaries(found: SpaceFiles) -> list[str]:
    """The binary files no ``filter=lfs`` pattern of ``.gitattributes`` covers (a git push would be refused)."""
    patterns = lfs_patterns(found.root)
    return [f for f in found.binary if not any(_matches(p, f) for p in patterns)]


def front_matter(root: Path) -> dict[str, Any]:
    """The README's YAML front matter (the Space's configuration)."""
    import yaml

    text = (Path(root) / "README.md").read_text(encoding="utf-8")
    if not text.startswith("---\n"):
        return {}
    end = text.find("\n---", 4)
    data = yaml.safe_load(text[4:end]) if end > 0 else None
    return data if isinstance(data, dict) else {}


def check_front_matter(meta: dict[str, Any]) -> list[str]:
    """What the Space's configuration lacks, as sentences ([] when nothing)."""
    problems = [f"the README front matter has no {k!r}: {why}" for k, why in REQUIRED_KEYS.items() if not meta.get(k)]
    if meta.get("sdk") not in (None, "gradio"):
        problems.append(f"the README front matter's sdk is {meta['sdk']!r}; the app is a Gradio app")
    return problems


def _checked(root: str | os.PathLike[str]) -> SpaceFiles:
    found = space_files(root)
    problems = check_front_matter(front_matter(found.root))
    if (found.root / ".gitattributes").is_file():
        bad = uncovered_binaries(found)
        if bad:
            problems.append(f"{len(bad)} binary file(s) no LFS pattern of .gitattributes covers ({', '.join(bad[:5])}"
                            f"{', ...' if len(bad) > 5 else ''}): a git push to the Space would be refused")
    else:
        problems.append("there is no .gitattributes: a git push of the binary files to the Space would be refused")
    app = str(front_matter(found.root).get("app_file") or "app.py")
    if app not in found.files:
        problems.append(f"the app file {app!r} is not among the files")
    if problems:
        raise DiffuseMixError("cannot be deployed as it is: " + "; ".join(problems), field=f"the checkout {found.root}",
                              hint="Fix these in the checkout, then deploy again")
    return found


def deploy(
    repo_id: str, *, root: str | os.PathLike[str] = ".", dry_run: bool = False, private: bool = False,
    token: str | None = None, api: Any = None,
) -> tuple[SpaceFiles, Any]:
    """Check the files and upload them to the Space ``repo_id`` (created if new); returns (files, commit info).

    ``dry_run`` checks and lists, uploading nothing (and needing no network). The upload is one commit of
    exactly :func:`space_files` (``upload_folder`` with those paths as ``allow_patterns``); files the Space
    already has and this list does not are left there.

    Raises:
        DiffuseMixError: a malformed ``repo_id``, or a checkout that cannot be deployed as it is (front
            matter, ``.gitattributes``), said before anything is uploaded.
    """
    if not re.fullmatch(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*", repo_id or ""):
        raise DiffuseMixError("must be OWNER/NAME (e.g. alice/diffusemix)", field="the Space id", value=repo_id)
    found = _checked(root)
    if dry_run:
        return found, None
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="space", space_sdk="gradio", private=private, exist_ok=True)
    info = api.upload_folder(
        repo_id=repo_id, repo_type="space", folder_path=str(found.root),
        allow_patterns=[glob.escape(f) for f in found.files],
        commit_message="Deploy DiffuseMix (python -m diffusemix space-deploy)",
    )
    return found, info


# ---------------------------------------------------------------------------
# command line


def add_parser(sub: Any) -> None:
    """``space-deploy``."""
    p = sub.add_parser(
        "space-deploy",
        help="upload the app to a Hugging Face Space (the files it needs only; no git-lfs)",
        description="Upload exactly the files a Space of this app needs (README.md, app.py, requirements.txt,"
        " diffusemix/, assets/, prompts.yaml, LICENSE, .gitattributes and the README's pictures) with"
        " huggingface_hub's upload_folder; the Hub stores the binary ones through LFS/Xet. Checks the README's"
        " front matter and that .gitattributes covers every binary first. Log in first (`hf auth login`) or set"
        " HF_TOKEN.",
    )
    p.add_argument("repo_id", metavar="OWNER/NAME", help="the Space (created as a Gradio Space if it does not exist)")
    p.add_argument("--dry-run", action="store_true", help="list and check the files; upload nothing")
    p.add_argument("--root", default=None, metavar="DIR", help="the checkout to deploy (default: this package's)")
    p.add_argument("--private", action="store_true", help="create the Space private")


def default_root() -> Path:
    """The checkout this package was imported from (the folder above ``diffusemix/``)."""
    return Path(__file__).resolve().parent.parent


def run(args: argparse.Namespace, *, api: Any = None) -> int:
    found, info = deploy(args.repo_id, root=args.root or default_root(), dry_run=args.dry_run, private=args.private,
                         api=api)
    meta = front_matter(found.root)
    print(("Dry run: would upload " if args.dry_run else "Uploaded ") + found.describe())
    print(f"Space: https://huggingface.co/spaces/{args.repo_id} (sdk {meta.get('sdk')} {meta.get('sdk_version', '')},"
          f" suggested hardware {meta.get('suggested_hardware')}; models: {', '.join(meta.get('models') or [])})")
    if info is not None:
        print(f"commit: {getattr(info, 'commit_url', info)}")
    return 0

