"""One conformance suite for every ``ContentAddressedStore`` backend (see store_conformance)."""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from store.base import (
    CompactionStatus,
    ContentAddressedStore,
    IndexPhase,
    ResolveOptions,
    ScanCursor,
    ScanFilters,
)
from store.entry import EntryType, StoreEntry
from store.errors import StoreClosedError
from store.ids import generate_doc_id
from tests.entries import Author, tampered
from tests.store_conformance import (
    BACKENDS,
    StoreFactory,
    build_dag,
    ids,
    require_persistent,
    scan_all,
)

AUTHOR = Author()


@pytest.fixture(params=sorted(BACKENDS))
async def store_factory(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[StoreFactory]:
    factory = BACKENDS[request.param](tmp_path)
    try:
        yield factory
    finally:
        await factory.aclose()


@pytest.fixture
async def store(store_factory: StoreFactory) -> ContentAddressedStore:
    return await store_factory()


def entries_for(doc_id: str, count: int, **kwargs: object) -> list[StoreEntry]:
    return [AUTHOR.entry(doc_id, **kwargs) for _ in range(count)]  # type: ignore[arg-type]


# -- put, dedup, read --------------------------------------------------------------------------


async def test_fresh_store_is_empty(store: ContentAddressedStore) -> None:
    assert store.get_id()
    assert await store.get_all_ids() == []
    head = await store.get_store_head()
    assert head.epoch and head.max_receipt_order == 0
    page = await store.scan_entries_since(None)
    assert page.entries == () and page.next_cursor is None and not page.has_more
    assert (await store.get_id_bloom_summary()).total_ids == 0
    assert await store.resolve_dependencies("nothing_d_0_here") == []


async def test_put_assigns_receipt_orders_from_one(store: ContentAddressedStore) -> None:
    batch = entries_for(generate_doc_id(), 3)
    batch[0] = batch[0].with_receipt_order(99)  # input orders are ignored (they are unsigned)
    result = await store.put_entries(batch)
    assert result.stored == tuple(ids(batch)) and not result.existing and not result.rejected
    metas = await store.get_metadata(ids(batch))
    assert [m.receipt_order for m in metas] == [1, 2, 3]
    more = entries_for(generate_doc_id(), 2)
    await store.put_entries(more)
    assert [m.receipt_order for m in await store.get_metadata(ids(more))] == [4, 5]
    assert (await store.get_store_head()).max_receipt_order == 5


async def test_returned_entries_carry_receipt_order_and_payload(
    store: ContentAddressedStore,
) -> None:
    batch = entries_for(generate_doc_id(), 3)
    await store.put_entries(batch)
    got = await store.get_entries(ids(batch))
    assert [e.metadata.receipt_order for e in got] == [1, 2, 3]
    for original, stored in zip(batch, got, strict=True):
        assert stored.encrypted_data == original.encrypted_data
        assert stored.metadata == original.metadata.with_receipt_order(
            stored.metadata.receipt_order
        )


async def test_puts_are_idempotent(store: ContentAddressedStore) -> None:
    batch = entries_for(generate_doc_id(), 4)
    await store.put_entries(batch)
    head = await store.get_store_head()
    again = await store.put_entries(batch)
    assert again.stored == () and again.existing == tuple(ids(batch)) and not again.rejected
    assert await store.get_store_head() == head
    assert await store.get_all_ids() == ids(batch)


async def test_an_existing_id_is_never_overwritten(store: ContentAddressedStore) -> None:
    entry = AUTHOR.entry(generate_doc_id())
    await store.put_entries([entry])
    variant = tampered(entry, decryption_key_id="other", created_at=1)
    result = await store.put_entries([variant])
    assert result.existing == (entry.id,) and not result.stored
    [meta] = await store.get_metadata([entry.id])
    assert meta.decryption_key_id == "default" and meta.created_at == entry.metadata.created_at
    assert meta.receipt_order == 1


async def test_duplicates_within_a_batch_are_stored_once(store: ContentAddressedStore) -> None:
    entry = AUTHOR.entry(generate_doc_id())
    result = await store.put_entries([entry, entry])
    assert result.stored == (entry.id,) and result.existing == (entry.id,)
    assert await store.get_all_ids() == [entry.id]
    assert (await store.get_store_head()).max_receipt_order == 1


async def test_dedup_by_content_hash_keeps_both_entries(store: ContentAddressedStore) -> None:
    payload = os.urandom(200)
    first = AUTHOR.entry(generate_doc_id(), payload=payload)
    second = AUTHOR.entry(generate_doc_id(), payload=payload)
    assert first.id != second.id and first.metadata.content_hash == second.metadata.content_hash
    result = await store.put_entries([first, second])
    assert result.stored == (first.id, second.id)
    got = await store.get_entries([second.id, first.id])
    assert ids(got) == [second.id, first.id]
    assert all(e.encrypted_data == payload for e in got)
    payload_count = getattr(store, "payload_count", None)
    if payload_count is not None:
        assert payload_count() == 1


async def test_reads_keep_asked_order_and_skip_missing(store: ContentAddressedStore) -> None:
    a, b, c = entries_for(generate_doc_id(), 3)
    await store.put_entries([a, b, c])
    missing = AUTHOR.entry(generate_doc_id()).id
    asked = [c.id, missing, a.id]
    assert ids(await store.get_entries(asked)) == [c.id, a.id]
    assert ids(await store.get_metadata(asked)) == [c.id, a.id]
    assert await store.has_entries(asked) == [c.id, a.id]
    assert await store.has_entries([]) == [] and await store.get_entries([]) == []


async def test_get_all_ids_in_receipt_order(store: ContentAddressedStore) -> None:
    first = entries_for(generate_doc_id(), 3)
    second = entries_for(generate_doc_id(), 2) + entries_for(first[0].doc_id, 2)
    await store.put_entries(first)
    await store.put_entries(second)
    assert await store.get_all_ids() == ids(first + second)


async def test_concurrent_puts_get_unique_contiguous_orders(store: ContentAddressedStore) -> None:
    batches = [entries_for(generate_doc_id(), 5) for _ in range(6)]
    results = await asyncio.gather(*(store.put_entries(batch) for batch in batches))
    all_ids = [i for batch in batches for i in ids(batch)]
    metas = await store.get_metadata(all_ids)
    assert sorted(m.receipt_order for m in metas) == list(range(1, 31))
    assert sorted(await store.get_all_ids()) == sorted(all_ids)
    # Each put says which order it gave each id it stored (group commits included).
    given = {i: o for r in results for i, o in zip(r.stored, r.orders, strict=True)}
    assert given == {m.id: m.receipt_order for m in metas}


# -- rejections --------------------------------------------------------------------------------


async def test_bad_entries_are_rejected_and_the_rest_stored(store: ContentAddressedStore) -> None:
    doc = generate_doc_id()
    good1, good2, base = entries_for(doc, 3)
    wrong_payload = StoreEntry(base.metadata, os.urandom(len(base.encrypted_data)))
    wrong_size = tampered(AUTHOR.entry(doc), encrypted_size=1)
    wrong_doc = tampered(AUTHOR.entry(doc), doc_id=generate_doc_id())
    chunk = AUTHOR.chunk(doc, "att1", b"chunk-bytes")
    wrong_attachment = tampered(chunk, attachment_id="att2")
    heads_on_change = tampered(AUTHOR.entry(doc), snapshot_head_hashes=("h",))
    bad = [wrong_payload, wrong_size, wrong_doc, wrong_attachment, heads_on_change]
    result = await store.put_entries([good1, *bad, good2])
    assert result.stored == (good1.id, good2.id)
    assert [entry_id for entry_id, _reason in result.rejected] == ids(bad)
    assert all(reason for _entry_id, reason in result.rejected)
    assert await store.get_all_ids() == [good1.id, good2.id]
    assert await store.has_entries(ids(bad)) == []
    retry = await store.put_entries([base, chunk])  # the honest versions are welcome
    assert retry.stored == (base.id, chunk.id)


# -- sync queries ------------------------------------------------------------------------------


async def test_find_new_entries(store: ContentAddressedStore) -> None:
    doc_a, doc_b = generate_doc_id(), generate_doc_id()
    a = entries_for(doc_a, 3)
    b = entries_for(doc_b, 3)
    await store.put_entries([a[0], b[0], a[1], b[1], a[2], b[2]])
    known = [a[0].id, b[1].id, "someone_d_0_else"]
    assert ids(await store.find_new_entries(known)) == [b[0].id, a[1].id, a[2].id, b[2].id]
    assert ids(await store.find_new_entries(iter(known))) == [b[0].id, a[1].id, a[2].id, b[2].id]
    assert ids(await store.find_new_entries_for_doc(known, doc_a)) == [a[1].id, a[2].id]
    assert ids(await store.find_new_entries_for_doc([], doc_b)) == ids(b)
    assert await store.find_new_entries_for_doc([], generate_doc_id()) == []
    assert await store.find_new_entries(await store.get_all_ids()) == []


async def test_find_entries_for_several_docs(store: ContentAddressedStore) -> None:
    doc_a, doc_b, absent = generate_doc_id(), generate_doc_id(), generate_doc_id()
    a = entries_for(doc_a, 3)
    b = entries_for(doc_b, 2)
    await store.put_entries([a[0], b[0], a[1], b[1], a[2]])
    found = await store.find_entries_for_docs([doc_b, absent, doc_a, doc_b])
    assert set(found) == {doc_a, doc_b, absent}
    assert ids(found[doc_a]) == ids(a) and ids(found[doc_b]) == ids(b)  # receipt order
    assert found[absent] == []
    assert await store.find_entries_for_docs([]) == {}


async def test_get_payloads_by_id(store: ContentAddressedStore) -> None:
    doc = generate_doc_id()
    written = entries_for(doc, 3)
    chunk = AUTHOR.chunk(doc, "att1", os.urandom(300))
    await store.put_entries([*written, chunk])
    wanted = [written[2].id, "absent_d_0_00", chunk.id, written[0].id]
    payloads = await store.get_payloads(wanted)
    assert payloads == {
        written[2].id: written[2].encrypted_data,
        chunk.id: chunk.encrypted_data,
        written[0].id: written[0].encrypted_data,
    }
    assert await store.get_payloads([]) == {}


async def test_read_docs_lists_as_find_and_sends_only_good_payloads(
    store: ContentAddressedStore,
) -> None:
    plain, snapped = generate_doc_id(), generate_doc_id()
    changes = entries_for(plain, 2)
    chunk = AUTHOR.chunk(plain, "att1", os.urandom(300))
    snap = [*entries_for(snapped, 1), AUTHOR.entry(snapped, entry_type=EntryType.DOC_SNAPSHOT)]
    await store.put_entries([*changes, chunk, *snap])
    found = await store.read_docs([snapped, plain, generate_doc_id()])
    assert found.metadata == await store.find_entries_for_docs([snapped, plain, *found.metadata])
    written = {e.id: e.encrypted_data for e in [*changes, chunk, *snap]}
    assert all(written[i] == data for i, data in found.payloads.items())
    assert chunk.id not in found.payloads  # attachments are never sent along


async def test_find_entries_by_type_and_creation_date(store: ContentAddressedStore) -> None:
    doc = generate_doc_id()
    changes = [AUTHOR.entry(doc, created_at=t) for t in (300, 100, 200)]
    snap = AUTHOR.entry(doc, entry_type=EntryType.DOC_SNAPSHOT, created_at=200)
    await store.put_entries([*changes, snap])
    change = EntryType.DOC_CHANGE

    async def created(entry_type: EntryType, low: int | None, high: int | None) -> list[int]:
        return [m.created_at for m in await store.find_entries(entry_type, low, high)]

    assert await created(change, None, None) == [300, 100, 200]  # receipt order
    assert await created(change, 200, None) == [300, 200]  # from is inclusive
    assert await created(change, None, 200) == [100]  # until is exclusive
    assert await created(change, 100, 300) == [100, 200]
    assert await created(change, 200, 200) == []
    assert await created(EntryType.DOC_SNAPSHOT, 200, 201) == [200]
    assert await created(EntryType.DOC_DELETE, None, None) == []


# -- DAG ---------------------------------------------------------------------------------------


async def test_resolve_dependencies_over_branches_and_merges(store: ContentAddressedStore) -> None:
    dag = build_dag(AUTHOR, generate_doc_id())
    await store.put_entries(dag.entries)

    async def resolve(start: StoreEntry, **options: object) -> list[str]:
        return await store.resolve_dependencies(start.id, ResolveOptions(**options))  # type: ignore[arg-type]

    full = await resolve(dag.c7)
    assert full[0] == dag.c7.id and len(full) == len(set(full))
    everything_but_x = {e.id for e in dag.entries} - {dag.x.id}
    assert set(full) == everything_but_x
    assert set(await resolve(dag.merge)) == {dag.merge.id, dag.a.id, dag.b.id, dag.create.id}
    assert await store.resolve_dependencies(dag.c7.id) == full  # default options

    stop = EntryType.DOC_SNAPSHOT
    c7, c6, snap, merge = dag.c7.id, dag.c6.id, dag.snap.id, dag.merge.id
    assert set(await resolve(dag.c7, stop_at_entry_type=stop)) == {c7, c6, snap}
    assert await resolve(dag.snap, stop_at_entry_type=stop) == [snap]

    assert await resolve(dag.c7, max_depth=0) == [c7]
    assert set(await resolve(dag.c7, max_depth=1)) == {c7, c6}
    assert set(await resolve(dag.c7, max_depth=3)) == {c7, c6, snap, merge}
    # the shortcut edge makes ``create`` one step from x, although it is also three steps away
    assert set(await resolve(dag.x, max_depth=1)) == {dag.x.id, dag.merge.id, dag.create.id}

    without_start = await resolve(dag.merge, include_start=False)
    assert set(without_start) == {dag.a.id, dag.b.id, dag.create.id}
    assert await resolve(dag.c7, include_start=False, max_depth=0) == []


async def test_resolve_dependencies_skips_missing_ids(store: ContentAddressedStore) -> None:
    doc = generate_doc_id()
    root = AUTHOR.entry(doc, entry_type=EntryType.DOC_CREATE)
    absent = AUTHOR.entry(doc, deps=[root.id])  # never stored
    behind_gap = AUTHOR.entry(doc, deps=[absent.id])
    mixed = AUTHOR.entry(doc, deps=[absent.id, root.id])
    await store.put_entries([root, behind_gap, mixed])
    assert await store.resolve_dependencies(behind_gap.id) == [behind_gap.id]
    assert await store.resolve_dependencies(mixed.id) == [mixed.id, root.id]
    assert await store.resolve_dependencies(absent.id) == []


# -- cursor scans ------------------------------------------------------------------------------


async def test_cursor_paging_in_receipt_order(store: ContentAddressedStore) -> None:
    for size in (7, 11, 7):
        await store.put_entries(entries_for(generate_doc_id(), size))
    first = await store.scan_entries_since(None, limit=10)
    assert len(first.entries) == 10 and first.has_more
    second = await store.scan_entries_since(first.next_cursor, limit=10)
    assert len(second.entries) == 10 and second.has_more
    third = await store.scan_entries_since(second.next_cursor, limit=10)
    assert len(third.entries) == 5 and not third.has_more
    pages = first.entries + second.entries + third.entries
    assert ids(pages) == await store.get_all_ids()
    assert [m.receipt_order for m in pages] == list(range(1, 26))
    end = await store.scan_entries_since(third.next_cursor, limit=10)
    assert end.entries == () and end.next_cursor == third.next_cursor and not end.has_more
    assert ids(await scan_all(store, limit=1)) == ids(pages)
    assert ids(await scan_all(store, limit=25)) == ids(pages)
    exact = await store.scan_entries_since(None, limit=25)
    assert len(exact.entries) == 25 and not exact.has_more


async def test_cursor_is_exclusive_and_ids_break_ties(store: ContentAddressedStore) -> None:
    batch = entries_for(generate_doc_id(), 6)
    await store.put_entries(batch)
    third = (await store.get_metadata([batch[2].id]))[0]
    after_third = await store.scan_entries_since(ScanCursor(3, third.id), limit=100)
    assert ids(after_third.entries) == ids(batch[3:])
    from_third = await store.scan_entries_since(ScanCursor(3, ""), limit=100)  # "" sorts first
    assert ids(from_third.entries) == ids(batch[2:])
    past_third = await store.scan_entries_since(ScanCursor(3, "~" * 8), limit=100)
    assert ids(past_third.entries) == ids(batch[3:])
    beyond = ScanCursor(1000, "")
    page = await store.scan_entries_since(beyond)
    assert page.entries == () and page.next_cursor == beyond and not page.has_more


async def test_id_scans_list_what_entry_scans_list_page_for_page(
    store: ContentAddressedStore,
) -> None:
    doc = generate_doc_id()
    await store.put_entries(entries_for(doc, 5) + entries_for(generate_doc_id(), 4))
    await store.purge_doc_history(doc)  # a hole in the receipt orders
    await store.put_entries(entries_for(generate_doc_id(), 3))
    full = (await store.scan_entries_since(None, limit=100)).entries
    cursors = [None, ScanCursor(3, ""), ScanCursor(full[2].receipt_order, full[2].id)]
    for cursor in [*cursors, ScanCursor(1000, "")]:
        for limit in (1, 2, 7, 100):
            entries = await store.scan_entries_since(cursor, limit)
            keys = await store.scan_ids_since(cursor, limit)
            assert keys.keys == tuple((m.receipt_order, m.id) for m in entries.entries)
            assert keys.has_more == entries.has_more, (cursor, limit)
            assert keys.next_cursor == entries.next_cursor, (cursor, limit)
    with pytest.raises(ValueError):
        await store.scan_ids_since(None, 0)


async def test_change_feed_resumes_from_cursor(store: ContentAddressedStore) -> None:
    await store.put_entries(entries_for(generate_doc_id(), 4))
    seen = await scan_all(store, limit=3)
    cursor = ScanCursor(seen[-1].receipt_order, seen[-1].id)
    fresh = entries_for(generate_doc_id(), 3)
    await store.put_entries(fresh)
    assert ids(await scan_all(store, limit=2, cursor=cursor)) == ids(fresh)


async def test_scan_filters_combined_with_paging(store: ContentAddressedStore) -> None:
    rng = random.Random(7)
    docs = [generate_doc_id() for _ in range(3)]
    kinds = [EntryType.DOC_CHANGE, EntryType.DOC_SNAPSHOT, EntryType.DOC_DELETE]
    batch = [
        AUTHOR.entry(rng.choice(docs), entry_type=rng.choice(kinds), created_at=rng.randrange(50))
        for _ in range(60)
    ]
    for start in range(0, 60, 13):
        await store.put_entries(batch[start : start + 13])
    everything = await store.get_metadata(await store.get_all_ids())
    cases = [
        ScanFilters(doc_id=docs[1]),
        ScanFilters(doc_id=generate_doc_id()),
        ScanFilters(entry_types=frozenset({EntryType.DOC_SNAPSHOT})),
        ScanFilters(entry_types=frozenset({EntryType.DOC_DELETE, EntryType.DOC_CHANGE})),
        ScanFilters(entry_types=frozenset({EntryType.ATTACHMENT_CHUNK})),
        ScanFilters(created_from=10, created_until=30),
        ScanFilters(created_until=10),
        ScanFilters(created_from=40),
        ScanFilters(
            doc_id=docs[0],
            entry_types=frozenset({EntryType.DOC_CHANGE, EntryType.DOC_SNAPSHOT}),
            created_from=5,
            created_until=45,
        ),
    ]
    for filters in cases:
        expected = [m for m in everything if filters.matches(m)]
        for limit in (1, 3, 100):
            assert await scan_all(store, limit, filters) == expected, (filters, limit)
    empty = await store.scan_entries_since(ScanCursor(2, ""), 5, ScanFilters(doc_id="nobody"))
    assert empty.entries == () and empty.next_cursor == ScanCursor(2, "") and not empty.has_more


async def test_store_head_follows_puts(store: ContentAddressedStore) -> None:
    head = await store.get_store_head()
    await store.put_entries(entries_for(generate_doc_id(), 3))
    await store.put_entries(entries_for(generate_doc_id(), 2))
    after = await store.get_store_head()
    assert after.epoch == head.epoch and after.max_receipt_order == 5


# -- purge -------------------------------------------------------------------------------------


async def test_purge_removes_a_document(store: ContentAddressedStore) -> None:
    doc, other = generate_doc_id(), generate_doc_id()
    gone = entries_for(doc, 4)
    kept = entries_for(other, 3)
    await store.put_entries([gone[0], kept[0], gone[1], kept[1], gone[2], gone[3], kept[2]])
    head = await store.get_store_head()
    assert await store.purge_doc_history(doc) == 4
    assert await store.get_all_ids() == ids(kept)
    assert await store.has_entries(ids(gone)) == []
    assert await store.get_entries(ids(gone)) == []
    assert await store.find_new_entries_for_doc([], doc) == []
    assert await scan_all(store, 2, ScanFilters(doc_id=doc)) == []
    assert ids(await scan_all(store, 2)) == ids(kept)
    assert await store.get_store_head() == head  # max_receipt_order never goes back
    assert await store.purge_doc_history(doc) == 0
    assert await store.purge_doc_history(generate_doc_id()) == 0
    again = await store.put_entries(gone[:2])  # purged ids may arrive again
    assert again.stored == tuple(ids(gone[:2]))
    orders = [m.receipt_order for m in await store.get_metadata(ids(gone[:2]))]
    assert orders == [head.max_receipt_order + 1, head.max_receipt_order + 2]


async def test_purge_keeps_payloads_shared_with_other_documents(
    store: ContentAddressedStore,
) -> None:
    shared = os.urandom(100)
    doc, other = generate_doc_id(), generate_doc_id()
    purged = [AUTHOR.entry(doc, payload=shared), AUTHOR.entry(doc)]
    survivor = AUTHOR.entry(other, payload=shared)
    await store.put_entries([*purged, survivor])
    payload_count = getattr(store, "payload_count", None)
    if payload_count is not None:
        assert payload_count() == 2
    await store.purge_doc_history(doc)
    [entry] = await store.get_entries([survivor.id])
    assert entry.encrypted_data == shared
    if payload_count is not None:
        assert payload_count() == 1  # the orphaned payload went, the shared one stayed


async def test_cursor_survives_purge_of_its_entry(store: ContentAddressedStore) -> None:
    doc, other = generate_doc_id(), generate_doc_id()
    before = entries_for(other, 2)
    purged = entries_for(doc, 2)
    after = entries_for(other, 2)
    await store.put_entries([*before, *purged, *after])
    page = await store.scan_entries_since(None, limit=3)
    assert page.entries[-1].id == purged[0].id
    await store.purge_doc_history(doc)
    assert ids(await scan_all(store, 1, cursor=page.next_cursor)) == ids(after)


# -- Bloom summary -----------------------------------------------------------------------------


def _absent_ids(count: int, rng: random.Random) -> list[str]:
    return [f"{rng.getrandbits(96):024x}_d_0_{rng.getrandbits(128):032x}" for _ in range(count)]


async def test_bloom_summary_never_misses_and_tracks_changes(store: ContentAddressedStore) -> None:
    docs = [generate_doc_id() for _ in range(5)]
    for doc in docs:
        await store.put_entries(entries_for(doc, 80))
    all_ids = await store.get_all_ids()
    summary = await store.get_id_bloom_summary()
    assert summary.total_ids == 400
    assert all(summary.might_contain(entry_id) for entry_id in all_ids)
    absent = _absent_ids(5000, random.Random(11))
    false_positives = sum(summary.might_contain(entry_id) for entry_id in absent)
    assert false_positives / len(absent) < 0.03  # configured for 1 %

    extra = entries_for(docs[0], 5)
    await store.put_entries(extra)
    grown = await store.get_id_bloom_summary()
    assert grown.total_ids == 405 and all(grown.might_contain(i) for i in ids(extra))
    await store.purge_doc_history(docs[1])
    shrunk = await store.get_id_bloom_summary()
    assert shrunk.total_ids == 325
    assert all(shrunk.might_contain(i) for i in await store.get_all_ids())


# -- lifecycle ---------------------------------------------------------------------------------


async def test_clear_all_local_data_starts_a_new_epoch(store: ContentAddressedStore) -> None:
    await store.put_entries(entries_for(generate_doc_id(), 3))
    head = await store.get_store_head()
    await store.clear_all_local_data()
    cleared = await store.get_store_head()
    assert cleared.epoch != head.epoch and cleared.max_receipt_order == 0
    assert await store.get_all_ids() == []
    assert (await store.get_id_bloom_summary()).total_ids == 0
    fresh = AUTHOR.entry(generate_doc_id())
    await store.put_entries([fresh])
    assert (await store.get_metadata([fresh.id]))[0].receipt_order == 1


async def test_index_and_compaction_status(store: ContentAddressedStore) -> None:
    status = await asyncio.wait_for(store.await_index_ready(), timeout=10)
    assert status.phase is IndexPhase.READY and status.progress01 == 1.0
    assert store.get_index_build_status().phase is IndexPhase.READY
    assert isinstance(await store.get_compaction_status(), CompactionStatus)


async def test_closed_store_refuses_use(store_factory: StoreFactory) -> None:
    store = await store_factory()
    await store.close()
    await store.close()  # closing twice is harmless
    with pytest.raises(StoreClosedError):
        await store.get_all_ids()
    with pytest.raises(StoreClosedError):
        await store.put_entries([AUTHOR.entry(generate_doc_id())])


# -- persistence (persistent backends only) ----------------------------------------------------


async def test_reopen_keeps_entries_epoch_and_cursor(store_factory: StoreFactory) -> None:
    require_persistent(store_factory)
    store = await store_factory()
    batch = entries_for(generate_doc_id(), 5) + entries_for(generate_doc_id(), 4)
    await store.put_entries(batch[:5])
    await store.put_entries(batch[5:])
    head = await store.get_store_head()
    page = await store.scan_entries_since(None, limit=4)
    store = await store_factory.reopen(store)
    assert await store.get_store_head() == head
    assert await store.get_all_ids() == ids(batch)
    got = await store.get_entries(ids(batch))
    assert [e.encrypted_data for e in got] == [e.encrypted_data for e in batch]
    assert [e.metadata.receipt_order for e in got] == list(range(1, 10))
    rest = await scan_all(store, 3, cursor=page.next_cursor)
    assert ids(rest) == ids(batch[4:])
    later = AUTHOR.entry(generate_doc_id())
    await store.put_entries([later])
    assert (await store.get_metadata([later.id]))[0].receipt_order == 10


async def test_reopen_after_purge_never_moves_the_head_back(store_factory: StoreFactory) -> None:
    require_persistent(store_factory)
    store = await store_factory()
    doc = generate_doc_id()
    kept = entries_for(generate_doc_id(), 2)
    newest = entries_for(doc, 3)
    await store.put_entries([*kept, *newest])
    head = await store.get_store_head()
    assert await store.purge_doc_history(doc) == 3
    store = await store_factory.reopen(store)
    assert await store.get_all_ids() == ids(kept)
    assert await store.has_entries(ids(newest)) == []
    reopened = await store.get_store_head()
    # a cursor at the old head must not skip entries that arrive after the reopen
    assert reopened.epoch != head.epoch or reopened.max_receipt_order >= head.max_receipt_order
    fresh = AUTHOR.entry(generate_doc_id())
    await store.put_entries([fresh])
    [meta] = await store.get_metadata([fresh.id])
    assert reopened.epoch != head.epoch or meta.receipt_order > head.max_receipt_order


async def test_reopen_after_clear_keeps_the_new_epoch(store_factory: StoreFactory) -> None:
    require_persistent(store_factory)
    store = await store_factory()
    await store.put_entries(entries_for(generate_doc_id(), 2))
    await store.clear_all_local_data()
    cleared = await store.get_store_head()
    store = await store_factory.reopen(store)
    assert await store.get_store_head() == cleared
    assert await store.get_all_ids() == []
