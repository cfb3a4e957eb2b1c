"""Time travel over the RPC and the CLI, against a real daemon subprocess.

"At T" counts the entries created before T. The daemon's clock moves on by at least 1 ms per
entry within a database, so ``created_at + 1`` is a time after a document's creation and before
its next change.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator

import pytest

from mindood.client import counter, op_increment, op_set
from mindood.daemon.history_methods import parse_at
from mindood.db.history import to_ms
from mindood.rpc.errors import InvalidParamsError, NotFoundError
from tests.daemon_helpers import DaemonProcess

TENANT, DB = "acme", "contacts"
ALICE = "cn=alice/o=acme"
PASSWORDS = "admin-pw-1\nalice-pw-1\n"


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    proc = DaemonProcess(tmp_path_factory.mktemp("history"))
    proc.start()
    try:
        proc.cli("tenant", "create", TENANT, "--user", ALICE, stdin=PASSWORDS)
        proc.cli("db", "create", TENANT, DB)
        yield proc
    finally:
        proc.close()


def _iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat()


async def test_a_document_read_before_its_change_shows_the_old_data(
    daemon: DaemonProcess,
) -> None:
    async with await daemon.client() as client:
        doc = await client.doc_create(TENANT, DB, {"city": "Oslo", "visits": counter(1)})
        doc_id, created = doc["id"], doc["created_at"]
        changed = await client.doc_change(
            TENANT, DB, doc_id, [op_set(["city"], "Bergen"), op_increment(["visits"], 2)]
        )
        between = created + 1
        assert changed["last_modified"] >= between

        old = await client.doc_get_at(TENANT, DB, doc_id, between)
        assert old["data"] == {"city": "Oslo", "visits": 1}
        assert old["at"] == between and not old["deleted"]
        by_text = await client.doc_get_at(TENANT, DB, doc_id, _iso(between))
        assert by_text["data"] == old["data"] and by_text["at"] == between
        by_datetime = await client.doc_get_at(
            TENANT, DB, doc_id, dt.datetime.fromtimestamp(between / 1000, dt.UTC)
        )
        assert by_datetime["at"] == between
        new = await client.doc_get_at(TENANT, DB, doc_id, changed["last_modified"] + 1)
        assert new["data"] == {"city": "Bergen", "visits": 3}
        with pytest.raises(NotFoundError, match="before"):
            await client.doc_get_at(TENANT, DB, doc_id, created)  # nothing written before it


async def test_history_lists_every_version_with_time_author_and_data(
    daemon: DaemonProcess,
) -> None:
    async with await daemon.client() as client:
        doc = await client.doc_create(TENANT, DB, {"step": 0})
        doc_id = doc["id"]
        for step in (1, 2, 3):
            await client.doc_change(TENANT, DB, doc_id, [op_set(["step"], step)])
        await client.doc_delete(TENANT, DB, doc_id)

        page = await client.doc_history(TENANT, DB, doc_id, data=True)
        versions = page["versions"]
        assert page["next"] is None
        assert [v["index"] for v in versions] == [0, 1, 2, 3, 4]
        assert [v["type"] for v in versions] == ["doc_create"] + ["doc_change"] * 3 + ["doc_delete"]
        assert [v["data"]["step"] for v in versions] == [0, 1, 2, 3, 3]
        assert [v["deleted"] for v in versions] == [False] * 4 + [True]
        times = [v["created_at"] for v in versions]
        assert times[0] == doc["created_at"] and times == sorted(set(times))
        assert {v["author"] for v in versions} == {ALICE}
        assert not any(v["by_admin"] for v in versions)
        assert all("BEGIN PUBLIC KEY" in v["author_key"] for v in versions)
        assert len({v["entry_id"] for v in versions}) == 5

        first = await client.doc_history(TENANT, DB, doc_id, count=2)
        assert [v["index"] for v in first["versions"]] == [0, 1] and first["next"] == 2
        assert "data" not in first["versions"][0]
        last = await client.doc_history(TENANT, DB, doc_id, start=4, count=2)
        assert [v["type"] for v in last["versions"]] == ["doc_delete"] and last["next"] is None
        walked = [v["index"] async for v in client.iter_doc_history(TENANT, DB, doc_id, page=2)]
        assert walked == [0, 1, 2, 3, 4]

        # Time travel sees the deletion only from its entry on.
        deleted_at = times[-1]
        assert not (await client.doc_get_at(TENANT, DB, doc_id, deleted_at))["deleted"]
        after = await client.doc_get_at(TENANT, DB, doc_id, deleted_at + 1)
        assert after["deleted"] and after["data"] == {"step": 3}


async def test_ids_at_a_time_before_a_document_existed_exclude_it(daemon: DaemonProcess) -> None:
    async with await daemon.client() as client:
        await client.db_create(TENANT, "timeline")
        first = await client.doc_create(TENANT, "timeline", {"n": 1})
        second = await client.doc_create(TENANT, "timeline", {"n": 2})
        await client.doc_delete(TENANT, "timeline", first["id"])
        deleted = await client.doc_history(TENANT, "timeline", first["id"], start=1)
        deleted_at = deleted["versions"][0]["created_at"]

        at = [first["created_at"], second["created_at"], deleted_at, deleted_at + 1]
        seen = [await client.doc_list_at(TENANT, "timeline", t) for t in at]
        assert seen == [
            [],
            [first["id"]],
            sorted([first["id"], second["id"]]),
            [second["id"]],
        ]
        assert await client.doc_list(TENANT, "timeline") == [second["id"]]


async def test_bad_times_pages_and_names_get_typed_errors(daemon: DaemonProcess) -> None:
    async with await daemon.client() as client:
        doc_id = (await client.doc_create(TENANT, DB, {"x": 1}))["id"]
        with pytest.raises(InvalidParamsError, match="not ISO 8601"):
            await client.doc_get_at(TENANT, DB, doc_id, "yesterday")
        with pytest.raises(InvalidParamsError, match="'at'"):
            await client.call("doc.list_at", {"tenant": TENANT, "db": DB, "at": True})
        with pytest.raises(InvalidParamsError, match="'at' must be between"):
            await client.doc_list_at(TENANT, DB, -5)
        with pytest.raises(InvalidParamsError, match="'count' must be between 1 and 1000"):
            await client.doc_history(TENANT, DB, doc_id, count=1001)
        with pytest.raises(NotFoundError, match="no document"):
            await client.doc_history(TENANT, DB, "nosuchdoc")
        with pytest.raises(NotFoundError, match="no database"):
            await client.doc_list_at(TENANT, "contcts", 0)


def test_the_cli_shows_history_a_past_state_and_past_ids(daemon: DaemonProcess) -> None:
    created = json.loads(
        daemon.cli("doc", "create", TENANT, DB, "--data", '{"name": "Ada"}', "--json").stdout
    )
    doc_id = created["id"]
    daemon.cli("doc", "change", TENANT, DB, doc_id, "--set", 'name="Ada L."')
    between = _iso(created["created_at"] + 1)

    shown = daemon.cli("doc", "at", TENANT, DB, doc_id, between).stdout
    assert '"name": "Ada"' in shown and "as of:" in shown
    table = daemon.cli("doc", "history", TENANT, DB, doc_id).stdout
    assert "doc_create" in table and "doc_change" in table and ALICE in table
    listing = json.loads(daemon.cli("doc", "list-at", TENANT, DB, between, "--json").stdout)
    assert doc_id in listing["doc_ids"]
    bad = daemon.cli("doc", "at", TENANT, DB, doc_id, "soon", check=False)
    assert bad.returncode == 1 and "not ISO 8601" in bad.stderr


def test_points_in_time_convert_to_exact_milliseconds() -> None:
    # A time whose float product (seconds * 1000) lands on the millisecond before it.
    moment = dt.datetime(2004, 4, 24, 0, 39, 59, 587000, tzinfo=dt.UTC)
    ms = 1082767199587
    assert int(moment.timestamp() * 1000) == ms - 1
    assert to_ms(moment) == ms
    assert parse_at(moment) == ms
    assert parse_at(moment.replace(tzinfo=None)) == ms  # naive is UTC
    assert parse_at("2004-04-24T00:39:59.587Z") == ms
    assert parse_at("2004-04-24T02:39:59.587+02:00") == ms
    assert parse_at(float(ms)) == ms and parse_at(ms) == ms
    for bad in (True, None, [ms], "x" * 100, float("nan")):
        with pytest.raises(InvalidParamsError):
            parse_at(bad)
