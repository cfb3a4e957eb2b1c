"""Parameters many methods share, declared once so their docs agree."""

from __future__ import annotations

from mindood.rpc.schema.model import opt, req

TENANT = req("tenant", "string", "tenant id")
DB = req("db", "string", "database name within the tenant")
DOC_ID = req("doc_id", "string", "document id")
PASSWORD = req("password", "string", "the user's password")
ADMIN_PASSWORD = req("admin_password", "string", "the tenant administrator's password")
OPT_TENANT = opt("tenant", "string", "only this tenant")
OPT_DB = opt("db", "string", "only this database")

__all__ = ["ADMIN_PASSWORD", "DB", "DOC_ID", "OPT_DB", "OPT_TENANT", "PASSWORD", "TENANT"]
