"""The test vectors made by running the TypeScript MindooDB (tests/data/interop, README there)."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

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
