"""``mindood bench views``: what building and updating a virtual view costs, next to its baseline.

One database of ``documents`` documents in memory (an ``InMemoryStore``: generating 100,000
documents durably takes minutes and measures the store, not the view). Measured in the same run:

- the baseline: reading every document once through ``iterate_changes_since`` with no view, which
  any index must do at least once;
- the first build of the spec's employees-style view (two category columns, one with nested
  ``\\`` levels, a sorted column, a SUM and an AVERAGE) from that feed, and the ratio to the
  baseline; and the tree alone (the same column values applied to an empty view, no feed);
- updates after changing 10, 100 and 1,000 documents, each next to the baseline of reading just
  those documents from the feed, with the count of documents the update read (which must equal
  the number changed).

The garbage collector runs before each timed phase (not during it: Python's full collections
over a heap of 100,000 documents would land in whichever phase happens to trigger one).
"""

from __future__ import annotations

import gc
import random
import resource
import secrets
import time
from collections.abc import Sequence
from typing import Any

from mindood.bench_progress import Progress, quiet
from mindood.crypto import generate_signing_keypair, sign
from mindood.crypto.signing import signing_public_pem
from mindood.db import DBOptions, MindooDB, MindooDoc, OpenTrust
from mindood.views import (
    ColumnSorting,
    MindooDBDataProvider,
    TotalMode,
    ViewChange,
    VirtualView,
    VirtualViewFactory,
)
from store.memory import InMemoryStore

_DEPARTMENTS = [
    f"{division}\\{team}"
    for division in ("Sales", "Support", "Engineering", "Finance", "Legal")
    for team in ("North", "South", "East", "West")
]


class _Signer:
    def __init__(self) -> None:
        self._key = generate_signing_keypair()
        self.public_pem = signing_public_pem(self._key.public_key())

    def sign(self, data: bytes) -> bytes:
        return sign(self._key, data)


class _Keys:
    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)

    def keys_for(self, key_id: str) -> list[bytes]:
        return [self._key]


def _view(db: MindooDB) -> VirtualView:
    return (
        VirtualViewFactory.create_view()
        .add_category_column("department", sorting=ColumnSorting.ASCENDING)
        .add_category_column("year", sorting=ColumnSorting.DESCENDING)
        .add_sorted_column("lastName", ColumnSorting.ASCENDING)
        .add_total_column("salary", TotalMode.SUM)
        .add_total_column("average", TotalMode.AVERAGE, field="salary")
        .with_db("bench", db)
        .build()
    )


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


async def _feed(db: MindooDB, cursor: Any) -> tuple[int, float]:
    """Read every document after ``cursor`` with no view: the baseline."""
    count, start = 0, time.perf_counter()
    async for doc, _ in db.iterate_changes_since(cursor):
        doc.get_data()
        count += 1
    return count, time.perf_counter() - start


async def run_views_bench(
    documents: int = 100_000,
    changes: Sequence[int] = (10, 100, 1000),
    *,
    progress: Progress = quiet,
) -> dict[str, Any]:
    rng = random.Random(2024)
    db = MindooDB(
        tenant_id="bench",
        db_id="employees",
        store=InMemoryStore(),
        signer=_Signer(),
        keys=_Keys(),
        trust=OpenTrust(),
        options=DBOptions(snapshot_every=0),
    )
    ids: list[str] = []
    progress(f"creating {documents:,} documents in memory")
    start = time.perf_counter()
    for number in range(documents):
        if number and number % 20_000 == 0:
            progress(f"created {number:,}/{documents:,} documents")
        doc = await db.create_document(
            {
                "type": "employee",
                "department": rng.choice(_DEPARTMENTS),
                "year": rng.randrange(2000, 2025),
                "lastName": f"name{rng.randrange(10**9):09d}",
                "salary": rng.randrange(30_000, 200_000),
            }
        )
        ids.append(doc.get_id())
    created = time.perf_counter() - start

    gc.collect()  # each timed phase starts without the garbage of the one before
    progress("baseline: reading every document from the change feed")
    fed, feed_all = await _feed(db, None)
    view = _view(db)
    gc.collect()
    progress("building the view")
    start = time.perf_counter()
    await view.update()
    build = time.perf_counter() - start

    # The tree alone: the same values into an empty view, no feed, no documents.
    nav = VirtualViewFactory.create_navigator(view).documents_only().build()
    batch = ViewChange("bench")
    for entry in nav.entries_forward():
        batch.additions[entry.doc_id] = entry.get_column_values()
    bare = _view(db)
    gc.collect()
    start = time.perf_counter()
    bare.apply_changes(batch)
    tree_build = time.perf_counter() - start

    provider = view.get_provider("bench")
    assert isinstance(provider, MindooDBDataProvider)
    updates = []
    for count in changes:
        chosen = rng.sample(ids, min(count, len(ids)))
        progress(f"updating the view after changing {len(chosen):,} documents")
        for n, doc_id in enumerate(chosen):

            def edit(doc: MindooDoc, n: int = n) -> None:
                data = doc.get_data()
                data["salary"] = int(data["salary"]) + 1
                if n % 3 == 0:
                    data["department"] = rng.choice(_DEPARTMENTS)

            await db.change_doc(doc_id, edit)
        read_before = provider.stats.documents_read
        gc.collect()
        _, feed_changed = await _feed(db, view.cursor_of("bench"))
        gc.collect()
        start = time.perf_counter()
        await view.update()
        took = time.perf_counter() - start
        updates.append(
            {
                "changed": len(chosen),
                "documents_read": provider.stats.documents_read - read_before,
                "update_ms": _ms(took),
                "feed_only_ms": _ms(feed_changed),
                "update_vs_feed": round(took / feed_changed, 2) if feed_changed else None,
            }
        )
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "documents": documents,
        "store": "InMemoryStore (in memory, not durable: measures the view, not the disk)",
        "gc": "collected before each timed phase",
        "view": "department (nested, 20) / year desc (25) / lastName; SUM + AVERAGE salary",
        "creates_per_s": round(documents / created, 1),
        "feed_all_s": round(feed_all, 3),
        "feed_all_documents": fed,
        "build_s": round(build, 3),
        "build_vs_feed": round(build / feed_all, 2),
        "tree_only_build_s": round(tree_build, 3),
        "categories": view.get_root().get_descendant_category_count(),
        "updates": updates,
        "max_rss_mib": round(rss_kib / 1024, 1),
    }


def summary(result: dict[str, Any]) -> list[str]:
    """A few lines a person reads next to the JSON."""
    lines = [
        f"build over {result['documents']:,} documents {result['build_s']}s "
        f"= {result['build_vs_feed']}x reading the feed alone ({result['feed_all_s']}s)",
    ]
    for update in result["updates"]:
        lines.append(
            f"update after {update['changed']:,} changes: {update['update_ms']} ms, read "
            f"{update['documents_read']:,} documents ({update['update_vs_feed']}x the feed)"
        )
    return lines
