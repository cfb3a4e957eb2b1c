"""``mindood bench docs``: durable document writes against the crypto they cannot beat.

Every ``create_document`` and ``change_doc`` costs one Automerge change, one AES-GCM encryption,
one Ed25519 signature and one durable put. The baseline rates of the two crypto operations are
measured in the same run, so the result reads as a ratio on a shared, noisy machine.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from mindood.bench_progress import Progress, quiet
from mindood.crypto import encrypt_payload, generate_signing_keypair, new_symmetric_key, sign
from mindood.db import DBOptions, KeyBagKeys, MindooDB, MindooDoc, OpenTrust, signer_for
from mindood.identity import create_user_id, unlock
from mindood.keybag import KeyBag


def _rate(count: int, seconds: float) -> float:
    return round(count / seconds, 1) if seconds > 0 else float("inf")


def _crypto_baselines(seconds: float = 1.0) -> dict[str, float]:
    key = generate_signing_keypair()
    message = os.urandom(256)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        sign(key, message)
        count += 1
    sign_rate = _rate(count, time.perf_counter() - start)
    aes_key, payload = new_symmetric_key(), os.urandom(1024)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        encrypt_payload(aes_key, payload)
        count += 1
    return {
        "ed25519_sign_per_s": sign_rate,
        "aes_gcm_1kib_per_s": _rate(count, time.perf_counter() - start),
    }


async def run_docs_bench(
    workdir: Path,
    documents: int = 2000,
    changes_per_doc: int = 4,
    *,
    progress: Progress = quiet,
) -> dict[str, Any]:
    """Create ``documents`` documents and change each ``changes_per_doc`` times, durably."""
    from store.ondisk import OnDiskStore

    progress("baselines: Ed25519 sign and AES-GCM for a second each")
    baselines = _crypto_baselines()
    user = unlock(create_user_id("cn=bench/o=mindood", "bench"), "bench")
    bag = KeyBag.for_user(user.private, "bench")
    bag.create_and_store_symmetric_key("bench", "default")
    store = await OnDiskStore.open(workdir / "docs")
    try:
        db = MindooDB(
            tenant_id="bench",
            db_id="bench",
            store=store,
            signer=signer_for(user),
            keys=KeyBagKeys(bag, "bench"),
            trust=OpenTrust(),
            options=DBOptions(snapshot_every=100),
        )
        progress(f"creating {documents:,} documents")
        start = time.perf_counter()
        ids = []
        for i in range(documents):
            doc = await db.create_document({"title": f"doc {i}", "n": 0})
            ids.append(doc.get_id())
        created = time.perf_counter() - start
        progress(f"changing each document {changes_per_doc} times")
        start = time.perf_counter()
        for round_ in range(changes_per_doc):

            def bump(doc: MindooDoc, value: int = round_ + 1) -> None:
                doc.get_data()["n"] = value

            for doc_id in ids:
                await db.change_doc(doc_id, bump)
        changed = time.perf_counter() - start
        total_ops = documents * (1 + changes_per_doc)
        ops_rate = _rate(total_ops, created + changed)
    finally:
        await store.close()
    return {
        "documents": documents,
        "changes_per_doc": changes_per_doc,
        "durable": True,
        "creates_per_s": _rate(documents, created),
        "changes_per_s": _rate(documents * changes_per_doc, changed),
        "writes_per_s": ops_rate,
        **baselines,
        "writes_vs_sign": round(ops_rate / baselines["ed25519_sign_per_s"], 4),
        "writes_vs_aes_gcm": round(ops_rate / baselines["aes_gcm_1kib_per_s"], 5),
    }


def summary(result: dict[str, Any]) -> list[str]:
    """A few lines a person reads next to the JSON."""
    return [
        f"{result['documents']:,} documents: {result['creates_per_s']:,.0f} creates/s, "
        f"{result['changes_per_s']:,.0f} changes/s (durable)",
        f"all writes {result['writes_per_s']:,.0f}/s = {result['writes_vs_sign']}x Ed25519 sign "
        f"({result['ed25519_sign_per_s']:,.0f}/s in this run)",
    ]
