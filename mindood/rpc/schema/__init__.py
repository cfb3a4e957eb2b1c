"""The RPC schema: every method the daemon serves, declared once.

The server dispatches only declared methods and checks parameters against the declaration; the
client's typed methods, ``rpc.methods``, the CLI and the README's reference are tested against it.
"""

from __future__ import annotations

from mindood.rpc.schema import admin, attachments, daemon, documents, history, tenants, views
from mindood.rpc.schema.model import Method, Param, opt, req, table

SCHEMA: dict[str, Method] = table(
    daemon.METHODS,
    tenants.METHODS,
    documents.METHODS,
    attachments.METHODS,
    history.METHODS,
    admin.METHODS,
    views.METHODS,
)

__all__ = ["SCHEMA", "Method", "Param", "opt", "req"]
