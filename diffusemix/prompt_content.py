"""One check for prompts that seem to describe content rather than a filter: the app's tabs and the exporter alike.

DiffuseMix's prompts are filters (a season, weather, light, an art style: "snowy", "sunset", "watercolor
art") so that Î keeps the label of I. :func:`content_warning` is a small heuristic that flags a prompt that
seems to describe content ("a man holding a dog"). It only warns: Explore and the Prompt lab show the
warning under their results, the exporter in its plan and summary (CLI, library and the app's Batch
export), and the Prompt lab never keeps a warned prompt by itself (its threshold neither: tick it by hand).
"""

from __future__ import annotations

from typing import Iterable

__all__ = ["content_warning", "content_warnings", "content_note"]

#: Words that name things rather than a look: a prompt with one of them likely describes content.
_CONTENT_WORDS = frozenset(
    "person people man men woman women child children boy girl face dog dogs cat cats horse bird birds fish car "
    "cars truck bus bike bicycle boat plane tree trees flower flowers house building sofa chair table bed cup "
    "bottle ball hat shirt dress glasses phone computer food pizza cake apple banana animal animals".split()
)
_CONTENT_STARTS = ("a ", "an ", "the ", "one ", "two ", "three ", "some ", "many ")
#: Words of a look (season, weather, light, style): a prompt with one is read as a filter even after "a".
_FILTER_WORDS = frozenset(
    "snowy snow winter autumn fall spring summer rain rainy foggy fog misty sunset sunrise night dusk dawn "
    "watercolor watercolour painting art style sketch oil vintage sepia neon aurora rainbow mosaic ukiyo-e "
    "cartoon anime pixel light lighting colors colours".split()
)
_CONTENT_LINKS = (" with ", " holding ", " wearing ", " riding ", " eating ", " next to ", " in front of ")


def content_warning(prompt: str) -> str | None:
    """Why ``prompt`` seems to describe content rather than a filter, or None.

    DiffuseMix's prompts are filters (a season, weather, light, an art style:
    "snowy", "sunset", "watercolor art") so that Î keeps the label of I. A
    simple heuristic flags a prompt that names a common object or being
    ("dog", "man", "car"); else, unless it has a look word ("snowy",
    "sketch", "sunset": "a sketch with crayon" passes), one that starts with
    an article or a number ("a castle"), links things ("… holding …"), or
    runs past six words. It only warns; the prompt still runs.
    """
    text = " " + " ".join(prompt.lower().split()) + " "
    words = [w.strip(".,;:!?'\"") for w in text.split()]
    thing = next((w for w in words if w in _CONTENT_WORDS), None)
    if thing:
        return f"names a thing ('{thing}')"
    if any(w in _FILTER_WORDS for w in words):
        return None  # "a snowy day", "a sketch with crayon": a look
    if text.lstrip().startswith(_CONTENT_STARTS):
        return "starts like a description of a thing"
    link = next((k.strip() for k in _CONTENT_LINKS if k in text), None)
    if link:
        return f"links things ('{link}')"
    if len(words) > 6:
        return "is long for a filter"
    return None


def content_warnings(prompts: Iterable[str]) -> list[tuple[str, str]]:
    """(prompt, why) for every prompt :func:`content_warning` flags, in order."""
    return [(p, why) for p in prompts if (why := content_warning(p)) is not None]


def content_note(prompt: str, why: str) -> str:
    """The warning as one sentence (the same words in every shell)."""
    return (f"prompt \u201c{prompt}\u201d {why}: it may describe content, not a filter; DiffuseMix's prompts change the"
            " look (season, weather, light, art style) so that the label is kept")
