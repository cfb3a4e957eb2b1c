"""The event bus: topic filtering, bounded buffers with in-order ``Lagged`` markers, closing."""

from __future__ import annotations

import asyncio

import pytest

from mindood.daemon.events import (
    TOPICS,
    DocChanged,
    EventBus,
    Lagged,
    PeerConnected,
    SubscriptionClosedError,
    SyncProgress,
    TenantStateChanged,
)


def changed(n: int) -> DocChanged:
    return DocChanged("acme", "contacts", (f"doc{n}",))


async def test_topics_and_filters_select_events() -> None:
    bus = EventBus()
    docs = bus.subscribe(["doc.changed"])
    everything = bus.subscribe()
    only_notes = bus.subscribe(accept=lambda e: getattr(e, "db", None) == "notes")
    assert everything.topics == TOPICS
    bus.publish(changed(1))
    bus.publish(PeerConnected("peer1", "tcp://x:1"))
    bus.publish(DocChanged("acme", "notes", ("n1",)))
    assert [await docs.get(), await docs.get()] == [
        changed(1),
        DocChanged("acme", "notes", ("n1",)),
    ]
    assert docs.pending() == 0
    assert (await everything.get()).topic == "doc.changed"
    assert (await everything.get()).topic == "peer.connected"
    assert await only_notes.get() == DocChanged("acme", "notes", ("n1",))
    with pytest.raises(ValueError, match="unknown topics"):
        bus.subscribe(["doc.exploded"])


async def test_a_slow_subscriber_gets_a_lagged_marker_in_order() -> None:
    bus = EventBus()
    sub = bus.subscribe(maxsize=3)
    for n in range(10):
        bus.publish(changed(n))
    # Three fit; seven are counted, not queued.
    assert [await sub.get() for _ in range(3)] == [changed(0), changed(1), changed(2)]
    assert await sub.get() == Lagged(7)
    bus.publish(changed(10))
    assert await sub.get() == changed(10)
    # Room for the marker is kept: after a drop, the marker comes before the next event.
    for n in range(11, 16):
        bus.publish(changed(n))
    got = [await sub.get() for _ in range(sub.pending())]
    assert got == [changed(11), changed(12), changed(13)]
    bus.publish(changed(16))
    assert [await sub.get(), await sub.get()] == [Lagged(2), changed(16)]
    assert sub.total_dropped == 9


async def test_a_faulty_filter_does_not_stop_delivery() -> None:
    bus = EventBus()

    def broken(event: object) -> bool:
        raise RuntimeError("bug")

    bus.subscribe(accept=broken)
    fine = bus.subscribe()
    bus.publish(TenantStateChanged("acme", "locked"))
    assert await fine.get() == TenantStateChanged("acme", "locked")


async def test_closing_ends_waiting_readers() -> None:
    bus = EventBus()
    sub = bus.subscribe()
    waiter = asyncio.create_task(sub.get())
    await asyncio.sleep(0)
    bus.close()
    with pytest.raises(SubscriptionClosedError):
        await waiter
    assert bus.subscriber_count() == 0
    bus.publish(changed(1))  # nobody listens: nothing happens
    collected = [event async for event in sub]
    assert collected == []


def test_events_have_wire_forms() -> None:
    assert changed(1).to_wire() == {"tenant": "acme", "db": "contacts", "doc_ids": ["doc1"]}
    progress = SyncProgress("p", "acme", "contacts", sent=3, received=4, done=True)
    assert progress.to_wire()["received"] == 4 and progress.topic == "sync.progress"
    assert Lagged(3).to_wire() == {"dropped": 3}
