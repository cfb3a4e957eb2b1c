"""The test vectors made by running the TypeScript MindooDB (tests/data/interop, README there)."""

from __future__ import annotations

import base64
import functools
import json
from pathlib import Path
from typing import Any

from automerge.core import Document, extract

from mindood.crypto import decrypt_with_any, kdf
from mindood.identity import PrivateUserId
from mindood.keybag import KeyBag
from store.entry import StoreEntry
from store.json_codec import entry_from_json

INTEROP_DIR = Path(__file__).parent / "data" / "interop"


@functools.cache
def vector(name: str) -> dict[str, Any]:
    """One vector file, parsed once per test session (treat as read-only)."""
    data: dict[str, Any] = json.loads((INTEROP_DIR / f"{name}.json").read_text("utf-8"))
    return data


def reference_tenant() -> dict[str, Any]:
    return vector("reference-tenant")


def store_entries(store: str) -> list[StoreEntry]:
    """The entries of one store of the reference tenant, e.g. ``"contacts/docs"``."""
    return [entry_from_json(raw) for raw in reference_tenant()["stores"][store]]


def reference_key_bag() -> KeyBag:
    """The vector user's KeyBag (opened with the reference's default PBKDF2 count)."""
    data = reference_tenant()
    user = PrivateUserId.from_json(data["user"])
    with kdf.lowered_pbkdf2_iterations(kdf.DEFAULT_PBKDF2_ITERATIONS):
        return KeyBag.load(base64.b64decode(data["keyBag"]), user, data["userPassword"])


@functools.cache
def reference_documents(store: str) -> dict[str, dict[str, Any]]:
    """The plain values of one store's documents, decrypted with the vector user's keys."""
    bag = reference_key_bag()
    tenant_id = reference_tenant()["tenantId"]
    changes: dict[str, list[bytes]] = {}
    for entry in store_entries(store):
        keys = bag.get_all(tenant_id, entry.metadata.decryption_key_id)
        changes.setdefault(entry.doc_id, []).append(decrypt_with_any(keys, entry.encrypted_data))
    return {doc_id: extract(Document.load(b"".join(c))) for doc_id, c in changes.items()}
