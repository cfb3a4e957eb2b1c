"""The Automerge layer under MindooDB documents.

``AutomergeDoc`` wraps one ``automerge.core.Document`` and deals in whole changes (one per
``change`` call, each verified on ``apply_changes``); the proxies are the live views a change
callback edits; ``Text`` and ``Counter`` are the value types with CRDT behaviour beyond
last-writer-wins. Nothing outside this package should import ``automerge``.
"""

from __future__ import annotations

from mindood.document.automerge_doc import (
    CUSTOM_ID_INITIAL_CHANGE_HASH,
    AutomergeDoc,
    ChangeResult,
    PendingChange,
    custom_id_initial_change,
)
from mindood.document.chunks import change_hash
from mindood.document.proxy import CounterProxy, ListProxy, MapProxy, TextProxy
from mindood.document.values import Counter, Text
from mindood.errors import (
    ChangeApplyError,
    ChangeFormatError,
    DocumentError,
    DocumentLoadError,
    ProxyClosedError,
    UnknownHeadsError,
    UnsupportedValueError,
)

__all__ = [
    "CUSTOM_ID_INITIAL_CHANGE_HASH",
    "AutomergeDoc",
    "ChangeApplyError",
    "ChangeFormatError",
    "ChangeResult",
    "Counter",
    "CounterProxy",
    "DocumentError",
    "DocumentLoadError",
    "ListProxy",
    "MapProxy",
    "PendingChange",
    "ProxyClosedError",
    "Text",
    "TextProxy",
    "UnknownHeadsError",
    "UnsupportedValueError",
    "change_hash",
    "custom_id_initial_change",
]
