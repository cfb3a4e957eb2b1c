"""Reconnects that cost the delta: a peer never lists back what it took from the scanner.

Two "nodes" here are a store each, serving the other through the real wire shapes (requests
parsed by ``parse_request``, answers msgpack-encoded and decoded by ``RemoteStore``) and the
real ``StoreService``, with cursors kept as the node keeps them (per peer, per slot), so the
bytes counted are the bytes a session would carry.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgpack
import pytest

from protocol.errors import ErrorCode, RemoteProtocolError, RequestError
from protocol.remote_store import RemoteStore
from protocol.requests import parse_request
from protocol.serve import StoreService
from protocol.store_ops import (
    EntryPacker,
    StoreKind,
    entry_from_packed,
    id_page_from_wire,
    packed_answer_from_wire,
)
from store.base import ContentAddressedStore, ScanCursor
from store.bloom import BloomSummary
from store.entry import EntryType, StoreEntry
from store.memory import InMemoryStore
from store.origin import MAX_ORIGIN_RANGES, add_orders, scan_ids_skipping
from store.replicate import ReplicationCursor, ReplicationResult, replicate
from store.verify import VerifiedBatch, verify_entries
from tests.entries import Author

AUTHOR = Author()
DB = "db"
SLOT = f"{DB}/docs"


class Node:
    """One node's docs store, its cursors for the other node, and what it serves it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.store: ContentAddressedStore = InMemoryStore(name)
        self.cursor: ReplicationCursor | None = None  # our cursor on the other node's store
        self.service = StoreService(self, self, origins=self._origins)
        self.refuse_ops: set[str] = set()  # ops this node answers as unknown (an older node)

    # -- ServeModel, the parts a store request reaches ----------------------------------------
    async def served_store(self, db: str, kind: StoreKind) -> ContentAddressedStore | None:
        return self.store

    def served(self, db: str, entries: int, size: int) -> None:
        pass

    def damaged(self, db: str) -> None:
        pass

    async def admit(self, db: str, entries: Sequence[StoreEntry]) -> VerifiedBatch:
        return await verify_entries(entries)

    async def took_in(self, db: str) -> None:
        pass

    def subscribed(self, db: str, kind: StoreKind) -> None:
        pass

    def served_databases(self) -> list[str]:
        return [DB]

    # -- Payloads: the session key layer is not what this test is about -----------------------
    def seal(self, data: bytes) -> bytes:
        return data

    def open_payload(self, blob: bytes) -> bytes:
        return blob

    async def _origins(
        self, db: str, kind: StoreKind, scanner_epoch: str, own_epoch: str
    ) -> tuple[tuple[int, int], ...]:
        if self.cursor is None:
            return ()
        return self.cursor.origin_towards(scanner_epoch, own_epoch)


class Wire:
    """``Requester`` from one node to another: every call round-trips through msgpack."""

    def __init__(self, server: Node) -> None:
        self.server = server
        self.bytes = 0
        self.ops: list[str] = []

    async def call(self, operation: str, args: list[Any]) -> Any:
        if operation in self.server.refuse_ops:
            raise RequestError(ErrorCode.UNKNOWN_OPERATION, f"unknown operation {operation!r}")
        sent = msgpack.packb([operation, args], use_bin_type=True)
        self.bytes += len(sent)
        self.ops.append(operation)
        op, wire_args = msgpack.unpackb(sent, raw=False)
        result = await self.server.service.handle(parse_request(op, wire_args))
        answer = msgpack.packb(result, use_bin_type=True)
        self.bytes += len(answer)
        return msgpack.unpackb(answer, raw=False)

    def seal(self, data: bytes) -> bytes:
        return data

    def open_payload(self, blob: bytes) -> bytes:
        return blob


async def pull(puller: Node, source: Node, **options: Any) -> tuple[ReplicationResult, Wire]:
    """``puller`` pulls from ``source`` as the driver does (tracking origin, keeping its cursor)."""
    wire = Wire(source)
    remote = RemoteStore(wire, DB, StoreKind.DOCS, source.name)

    async def checkpoint(state: ReplicationCursor) -> None:
        puller.cursor = state

    result = await replicate(
        remote,
        puller.store,
        puller.cursor,
        on_checkpoint=checkpoint,
        track_origin=True,
        **options,
    )
    puller.cursor = result.state
    return result, wire


def _entries(count: int) -> list[StoreEntry]:
    return [AUTHOR.entry(doc_id=f"doc{i % 5}") for i in range(count)]


async def _ids(store: ContentAddressedStore) -> set[str]:
    return set(await store.get_all_ids())


async def test_the_puller_does_not_scan_back_what_the_peer_took_from_it() -> None:
    a, b = Node("a"), Node("b")
    await a.store.put_entries(_entries(600))
    taken, _ = await pull(b, a, page_size=100, batch_size=50)
    assert taken.transferred == 600
    assert b.cursor is not None and len(b.cursor.origin) == 1  # one range: a single writer
    back, wire = await pull(a, b)
    assert back.scanned == 0 and back.transferred == 0
    assert wire.ops.count("scan_ids") == 1 and "has" not in wire.ops and "get" not in wire.ops
    assert wire.bytes < 400  # a head and one empty page, not 600 ids
    again, wire = await pull(a, b)
    assert again.idle and "scan_ids" not in wire.ops  # the cursor stands past B's head


async def test_local_writes_interleaved_with_a_pull_still_reach_the_peer() -> None:
    a, b = Node("a"), Node("b")
    await a.store.put_entries(_entries(300))
    local = _entries(6)

    async def admit_and_write(entries: Sequence[StoreEntry]) -> VerifiedBatch:
        # B's own writes land between the pulled batches, at receipt orders inside the run.
        if local:
            await b.store.put_entries([local.pop()])
        return await verify_entries(entries)

    await pull(b, a, page_size=50, batch_size=20, admit=admit_and_write)
    assert not local
    assert b.cursor is not None and len(b.cursor.origin) > 1  # the writes split the ranges
    back, _ = await pull(a, b)
    assert back.transferred == 6 and back.scanned == 6
    assert await _ids(a.store) == await _ids(b.store)


async def test_a_peer_that_wiped_its_store_gets_everything_back() -> None:
    a, b = Node("a"), Node("b")
    await a.store.put_entries(_entries(200))
    await pull(b, a)
    await a.store.clear_all_local_data()  # a new epoch on A: B's record of what came from A is void
    back, _ = await pull(a, b)
    assert back.transferred == 200 and back.scanned == 200
    assert len(await a.store.get_all_ids()) == 200


async def test_a_peer_that_wiped_its_store_after_our_own_pull_started_again() -> None:
    a, b = Node("a"), Node("b")
    await a.store.put_entries(_entries(50))
    await pull(b, a)
    await b.store.clear_all_local_data()  # B wiped: its receipt orders restarted
    await b.store.put_entries(_entries(7))  # at orders the old ranges covered
    back, _ = await pull(a, b)
    assert back.transferred == 7


async def test_entries_asked_for_by_id_are_never_filtered() -> None:
    """A quarantined entry's good copy, or a deferred one, is fetched by id wherever it is."""
    a, b = Node("a"), Node("b")
    entries = _entries(40)
    await a.store.put_entries(entries)
    await pull(b, a)
    lost = [e.id for e in entries if e.metadata.doc_id == "doc3"]
    await a.store.purge_doc_history("doc3")  # A lost them (its copy was damaged, say)
    healed, _ = await pull(a, b, retry=lost)
    assert healed.transferred == len(lost)
    assert await _ids(a.store) == await _ids(b.store)


async def test_deferred_entries_are_fetched_once_trust_changed() -> None:
    a, b = Node("a"), Node("b")
    entries = _entries(30)
    await a.store.put_entries(entries)
    untrusted = {e.id for e in entries[:4]}

    async def defer_some(batch: Sequence[StoreEntry]) -> VerifiedBatch:
        verdict = await verify_entries([e for e in batch if e.id not in untrusted])
        return VerifiedBatch(
            verdict.accepted, verdict.rejected, tuple(untrusted & {e.id for e in batch})
        )

    first, _ = await pull(b, a, admit=defer_some)
    assert first.transferred == 26 and set(first.state.deferred) == untrusted
    later, _ = await pull(b, a, retry=list(first.state.deferred))  # trust changed
    assert later.transferred == 4 and not later.state.deferred
    back, _ = await pull(a, b)
    assert back.transferred == 0 and back.scanned == 0  # what B took from A is not listed back


async def test_an_older_peer_without_id_scans_is_scanned_the_old_way() -> None:
    a, b = Node("a"), Node("b")
    a.refuse_ops.add("scan_ids")
    await a.store.put_entries(_entries(120))
    result, wire = await pull(b, a, page_size=50)
    assert result.transferred == 120 and "scan" in wire.ops
    assert await _ids(a.store) == await _ids(b.store)


async def test_the_delta_sends_each_entry_once_and_little_else() -> None:
    a, b = Node("a"), Node("b")
    await a.store.put_entries(_entries(100))
    await pull(b, a)
    await pull(a, b)
    delta = [AUTHOR.entry(payload=bytes(1024)) for _ in range(10)]
    await a.store.put_entries(delta)
    got, wire = await pull(b, a)
    back, wire_back = await pull(a, b)
    assert got.transferred == 10 and back.scanned == 0
    own = sum(len(msgpack.packb([e.metadata.id, e.encrypted_data])) for e in delta)
    # Metadata travels once (with the entry), the scan carries (order, id) pairs only.
    assert (
        wire.bytes + wire_back.bytes < 1.2 * sum(len(e.encrypted_data) + 500 for e in delta)
        and wire.bytes > own
    )


class BloomCounting(InMemoryStore):
    def __init__(self) -> None:
        super().__init__("bloom-counting")
        self.blooms = 0

    async def get_id_bloom_summary(self) -> BloomSummary:
        self.blooms += 1
        return await super().get_id_bloom_summary()


async def test_a_small_push_into_a_large_store_asks_exactly_instead_of_fetching_its_bloom() -> None:
    source, target = InMemoryStore(), BloomCounting()
    await target.put_entries(_entries(3000))
    await source.put_entries(_entries(5))
    result = await replicate(source, target, use_target_bloom=True)
    assert result.transferred == 5 and target.blooms == 0
    big = InMemoryStore()
    await big.put_entries(_entries(2000))
    result = await replicate(big, target, use_target_bloom=True)
    assert result.transferred == 2000 and target.blooms == 1


def test_origin_ranges_coalesce_and_stay_bounded() -> None:
    assert add_orders((), [3, 1, 2, 7, 8, 10]) == ((1, 3), (7, 8), (10, 10))
    assert add_orders(((1, 3),), [4, 5]) == ((1, 5),)
    assert add_orders(((1, 3), (7, 8)), [5]) == ((1, 3), (5, 5), (7, 8))
    many = add_orders((), range(1, 4 * MAX_ORIGIN_RANGES, 2))
    assert len(many) == MAX_ORIGIN_RANGES and many[-1] == (4 * MAX_ORIGIN_RANGES - 1,) * 2


async def test_an_id_scan_skips_ranges_and_resumes_anywhere() -> None:
    store = InMemoryStore()
    await store.put_entries(_entries(50))  # receipt orders 1..50
    skip = [(1, 10), (20, 29), (45, 60)]
    seen: list[int] = []
    cursor: ScanCursor | None = None
    for _ in range(20):
        page = await scan_ids_skipping(store, cursor, 4, skip)
        seen.extend(order for order, _ in page.keys)
        cursor = page.next_cursor
        if not page.has_more:
            break
    assert seen == [*range(11, 20), *range(30, 45)]
    # A cursor inside a range, and a range that holds nothing, are both passed over.
    page = await scan_ids_skipping(store, ScanCursor(25, ""), 100, [(20, 29), (31, 31)])
    assert [o for o, _ in page.keys] == [30, *range(32, 51)] and not page.has_more


async def test_a_push_to_a_peer_that_never_pulls_skips_what_came_from_it() -> None:
    """The HTTP case: we pull from the server, then push to it; what we pulled is not listed."""
    server, client = Node("server"), Node("client")
    await server.store.put_entries(_entries(80))
    await pull(client, server)
    mine = _entries(3)
    await client.store.put_entries(mine)
    pushed = await replicate(
        client.store, server.store, None, admit=verify_entries, reverse=client.cursor
    )
    assert pushed.scanned == 3 and pushed.transferred == 3
    assert await _ids(server.store) == await _ids(client.store)
    server_wiped = InMemoryStore("wiped")  # a server with another epoch gets everything
    pushed = await replicate(client.store, server_wiped, None, reverse=client.cursor)
    assert pushed.transferred == 83


async def test_a_packed_get_delivers_the_very_entries_stored() -> None:
    a = Node("a")
    other = Author()
    entries = [
        *_entries(5),
        other.entry(doc_id="custom_doc_with_d_in_it"),
        other.entry(payload=b""),
        AUTHOR.entry(entry_type=EntryType.DOC_SNAPSHOT),
    ]
    await a.store.put_entries(entries)
    wire = Wire(a)
    got = await RemoteStore(wire, DB, StoreKind.DOCS, "a").get_entries([e.id for e in entries])
    assert wire.ops == ["getp"]
    stored = await a.store.get_entries([e.id for e in entries])
    assert [(e.metadata.with_receipt_order(0), e.encrypted_data) for e in got] == [
        (e.metadata.with_receipt_order(0), e.encrypted_data) for e in stored
    ]
    assert not (await verify_entries(got)).rejected
    older = Node("older")
    older.refuse_ops.add("getp")
    await older.store.put_entries(entries)
    wire = Wire(older)
    got = await RemoteStore(wire, DB, StoreKind.DOCS, "older").get_entries([entries[0].id])
    assert wire.ops == ["get"] and got[0].id == entries[0].id


def test_a_packed_answer_naming_an_unknown_author_is_the_peers_error() -> None:
    entry = AUTHOR.entry()
    packer = EntryPacker()
    answer = packer.answer([packer.pack(entry, entry.encrypted_data)], [])
    received = msgpack.unpackb(msgpack.packb(answer, use_bin_type=True), raw=False)
    authors, pairs, _ = packed_answer_from_wire(received)
    assert entry_from_packed(pairs[0][0], pairs[0][1], authors).metadata == entry.metadata
    with pytest.raises(RemoteProtocolError):
        entry_from_packed(pairs[0][0], pairs[0][1], ())


def test_an_id_page_out_of_order_or_larger_than_asked_is_the_peers_error() -> None:
    page = id_page_from_wire([[[1, "a"], [2, "b"]], [2, "b"], True], 2)
    assert page.keys == ((1, "a"), (2, "b")) and page.next_cursor == ScanCursor(2, "b")
    for bad, limit in (
        ([[[2, "b"], [1, "a"]], None, False], 5),
        ([[[1, "a"], [2, "b"]], None, False], 1),
        ([[["1", "a"]], None, False], 5),
        ([[[1, "a"]], None], 5),
    ):
        with pytest.raises(RemoteProtocolError):
            id_page_from_wire(bad, limit)
