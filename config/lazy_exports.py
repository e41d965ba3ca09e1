"""Names a package re-exports but imports only when first used (PEP 562), so that importing
the package stays cheap: `config` without pydantic, `worker.delivery` without the engine,
`worker.feeds` without the renderers."""

from __future__ import annotations

import importlib
from typing import Any, Callable


def lazy_getattr(package: str, table: dict[str, str], namespace: dict[str, Any]) -> Callable[[str], Any]:
    """A module `__getattr__` for `package`: a name in `table` (name -> defining module) is
    imported on first use and kept in `namespace` (the package's globals), so it is looked
    up only once."""

    def __getattr__(name: str) -> Any:
        if name in table:
            value = getattr(importlib.import_module(table[name]), name)
            namespace[name] = value
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
