"""Package attributes imported on first use (PEP 562 module ``__getattr__``), so that importing a
package stays light: ``import rvoskit`` loads no torch or pandas, and ``rvoskit.format`` no pyarrow."""

from __future__ import annotations

import importlib
from typing import Any, Callable


def lazy_attributes(package: str, lazy: dict[str, str], namespace: dict[str, Any]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of a package whose public names live in other modules.

    Args:
        package: the package's ``__name__`` (for the AttributeError message).
        lazy: public name -> the module that defines it.
        namespace: the package's ``globals()``; a loaded name is stored there, so later lookups
            do not reach ``__getattr__``.

    Returns:
        ``(__getattr__, __dir__)`` to assign at the package's module level.

    Raises:
        AttributeError (from ``__getattr__``): a name not in ``lazy``.
    """

    def __getattr__(name: str) -> Any:
        module = lazy.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(lazy))

    return __getattr__, __dir__
