"""Lazy exports for the package's ``__init__`` modules (PEP 562): a name is imported from its
submodule on first use, so ``import diffusemix`` (or ``diffusemix.data``, ...) stays light and
torch, diffusers or gradio load only when something needs them."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, MutableMapping
from typing import Any


def lazy_exports(
    package: str, exports: dict[str, str], namespace: MutableMapping[str, Any], public: Iterable[str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of ``package``, whose ``exports`` map a name to the
    submodule (relative, without the dot) that defines it. A name once imported is kept in
    ``namespace`` (the package's globals), so the lookup runs once per name."""
    names = sorted(public)

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f".{module}", package), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(names))

    return __getattr__, __dir__
