"""Per-peer, per-database counters: what ``mindood peers`` and ``sync.progress`` report."""

from __future__ import annotations

from mindood.sync.traffic import DbProgress, LinkTraffic


def test_both_directions_are_counted_apart_and_empty_batches_change_nothing() -> None:
    traffic = LinkTraffic()
    assert traffic.sent("todos", 3, 300) and traffic.received("todos", 2, 50)
    assert not traffic.sent("todos", 0, 0) and not traffic.received("notes", 0, 0)
    assert traffic.sent("todos", 1, 100)
    assert traffic.progress("todos") == DbProgress("todos", 4, 400, 2, 50)
    assert [p.db for p in traffic.snapshot(["directory"])] == ["directory", "todos"]


def test_a_database_syncs_until_every_store_reached_its_bound() -> None:
    traffic = LinkTraffic()
    assert traffic.pull_moved("todos", "docs", done=False)  # started: news
    assert not traffic.pull_moved("todos", "docs", done=False)  # still going: none
    assert not traffic.pull_moved("todos", "attachments", done=False)
    assert not traffic.pull_moved("todos", "docs", done=True)  # attachments still going
    assert traffic.syncing() and traffic.progress("todos").syncing
    assert traffic.pull_moved("todos", "attachments", done=True)  # finished: news
    assert not traffic.syncing()
    assert not traffic.pull_moved("notes", "docs", done=True)  # an empty store: no news


def test_a_failed_pull_stops_syncing_and_shows_its_error() -> None:
    traffic = LinkTraffic()
    traffic.pull_moved("todos", "docs", done=False)
    assert traffic.pull_ended("todos") and not traffic.pull_ended("todos")
    assert traffic.progress("todos", {"todos": "store unavailable"}).error == "store unavailable"
    assert not traffic.progress("todos").syncing
