"""mindood: MindooDB in Python, an end-to-end encrypted, offline-first sync daemon and library.

The library API is re-exported here (``from mindood import TenantFactory``). The names are
resolved on first use (PEP 562) so that ``import mindood`` stays cheap for the CLI and for code
that only needs a submodule, and so submodules never depend on this file's import order.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from mindood.keybag import KeyBag
    from mindood.storefactory import InMemoryStoreFactory, OnDiskStoreFactory
    from mindood.tenant.factory import TenantFactory
    from mindood.views import ColumnSorting, TotalMode, VirtualViewFactory

_EXPORTS = {
    "KeyBag": "mindood.keybag",
    "InMemoryStoreFactory": "mindood.storefactory",
    "OnDiskStoreFactory": "mindood.storefactory",
    "TenantFactory": "mindood.tenant.factory",
    "ColumnSorting": "mindood.views",
    "TotalMode": "mindood.views",
    "VirtualViewFactory": "mindood.views",
}

__all__ = [
    "ColumnSorting",
    "InMemoryStoreFactory",
    "KeyBag",
    "OnDiskStoreFactory",
    "TenantFactory",
    "TotalMode",
    "VirtualViewFactory",
    "__version__",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'mindood' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
