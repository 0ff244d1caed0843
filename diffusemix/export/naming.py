"""Output names: an image's output stem and a prompt's slug.

An output file is ``<class>/<sub>/<stem>_<prompt slug>_<copy>.<ext>`` inside
the output folder (where its stages and a cache's I go: :mod:`.folder`).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Sequence


def short_hash(text: str, n: int = 8) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:n]


def out_stems(items: Sequence[tuple[Path, str, str, str]]) -> list[str]:
    """Deterministic, unique output stems for (path, source, label, folder) items.

    The stem is ``<folder>/<file stem>``; files whose stems collide in one
    folder (``a.jpg`` and ``a.png``, or ``A.png`` and ``a.png`` on a
    case-insensitive disk) get ``-<hash of the source path>`` appended.
    """

    def base(item: tuple[Path, str, str, str]) -> str:
        stem = Path(item[1]).stem
        if len(stem.encode("utf-8")) > 150:  # bytes: a disk takes 255 a name, and the prompt's slug follows
            cut = stem.encode("utf-8")[:120].decode("utf-8", "ignore")
            stem = cut + "-" + short_hash(stem)
        return stem

    groups: dict[tuple[str, str], int] = {}
    for it in items:
        key = (it[3].casefold(), base(it).casefold())
        groups[key] = groups.get(key, 0) + 1
    out = []
    for it in items:
        stem = base(it)
        if groups[(it[3].casefold(), stem.casefold())] > 1:
            stem = f"{stem}-{short_hash(it[1])}"
        out.append(f"{it[3]}/{stem}" if it[3] else stem)
    return out


def prompt_slugs(prompts: Sequence[str]) -> dict[str, str]:
    """File-name-safe, unique slugs for prompts: ``"watercolor art"`` → ``"watercolor-art"``.

    Slugs hold no underscore, so ``<stem>_<slug>_<copy>`` names never collide;
    prompts whose slugs would coincide get ``-<hash>`` appended.
    """
    raw = {}
    for p in prompts:
        s = re.sub(r"[\W_]+", "-", p.casefold()).strip("-")[:40].strip("-")
        raw[p] = s or "prompt"
    counts: dict[str, int] = {}
    for s in raw.values():
        counts[s] = counts.get(s, 0) + 1
    return {p: (s if counts[s] == 1 else f"{s}-{short_hash(p, 6)}") for p, s in raw.items()}
