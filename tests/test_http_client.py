"""mindood's HTTP sync client: the pure parts with real inputs, then over real sockets on
127.0.0.1 against mindood's own HTTP server (``transports.http_server``) and, for the SSE bytes
and the capability fallback, against a tiny aiohttp app that answers exactly as the reference
server does (reference-formats §3.3, §3.8)."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import tomllib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from mindood import InMemoryStoreFactory
from mindood.daemon.config import ConfigError, parse_config
from mindood.db import MindooDB
from mindood.sync import SyncNode
from mindood.tenant import Tenant
from protocol.http import wire
from protocol.http.checks import ErrorKind
from protocol.http.client import (
    TOKEN_DEFAULT_LIFETIME,
    HttpCallError,
    TokenCache,
    parse_byte_limit,
    partition,
    send_batched,
    token_expiry,
)
from protocol.http.remote import HttpSyncClient, put_result_of
from protocol.store_ops import StoreKind
from store.base import ScanCursor
from store.entry import EntryMetadata, EntryType, StoreEntry
from store.json_codec import metadata_to_json
from tests.entries import tampered
from tests.http_helpers import app_on_loopback
from tests.sync_helpers import eventually, join, sync_node
from tests.tenant_helpers import admin_creds, fast_kdf, new_tenant, username
from transports.http_client import HttpOrigin

pytestmark = pytest.mark.usefixtures("_kdf")

http_serve = pytest.importorskip("mindood.sync.http_serve")
http_server = pytest.importorskip("transports.http_server")


@pytest.fixture(autouse=True, scope="module")
def _kdf() -> object:
    yield from fast_kdf()


def _jwt(exp: float | None) -> str:
    def part(obj: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    claims: dict[str, object] = {"sub": "k", "iat": 0}
    if exp is not None:
        claims["exp"] = exp
    return f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part(claims)}.c2ln"


# -- pure parts ----------------------------------------------------------------------------------
def test_a_token_is_used_until_sixty_seconds_before_it_expires() -> None:
    cache = TokenCache()
    token = _jwt(10_000)
    cache.store(token, now=9_000)
    assert cache.expires_at == 10_000
    assert cache.current(now=10_000 - 61) == token
    assert cache.current(now=10_000 - 60) is None  # the reference's one-minute buffer
    cache.clear("another token")  # a newer token is never dropped by an older failure
    assert cache.current(now=9_000) == token
    cache.clear(token)
    assert cache.current(now=9_000) is None


def test_a_token_whose_expiry_cannot_be_read_lives_an_hour() -> None:
    for token in ("not-a-jwt", _jwt(None), "a.%%%.b", _jwt(float("nan")).replace("NaN", "1e999")):
        assert token_expiry(token, now=100.0) == 100.0 + TOKEN_DEFAULT_LIFETIME


def test_batches_fit_the_body_limit_and_one_too_large_entry_is_refused() -> None:
    assert partition([40, 40, 40, 40], overhead=20, limit=100) == [
        range(0, 1),
        range(1, 2),
        range(2, 3),
        range(3, 4),
    ]
    assert partition([10, 10, 10, 10], overhead=20, limit=53) == [range(0, 3), range(3, 4)]
    assert partition([10, 10], overhead=20, limit=None) == [range(0, 2)]
    assert partition([], overhead=20, limit=100) == []
    with pytest.raises(HttpCallError) as failed:
        partition([10, 90], overhead=20, limit=100)
    assert failed.value.kind is ErrorKind.PAYLOAD_TOO_LARGE


async def test_a_batch_answered_413_is_sent_again_as_halves() -> None:
    sent: list[list[int]] = []

    async def server(batch: Sequence[int]) -> list[int]:
        # a server whose real limit is three items, answering 413 like the reference
        if len(batch) > 3:
            raise HttpCallError(wire.HttpError(ErrorKind.PAYLOAD_TOO_LARGE, "too large"), 413)
        sent.append(list(batch))
        return list(batch)

    items = list(range(10))
    results = await send_batched(items, server, sizes=[1] * 10, overhead=0, limit=None)
    assert [i for r in results for i in r] == items  # every item once, in order
    assert sent == [[0, 1, 2], [3, 4], [5, 6, 7], [8, 9]]

    async def always_too_large(batch: Sequence[int]) -> list[int]:
        raise HttpCallError(wire.HttpError(ErrorKind.PAYLOAD_TOO_LARGE, "too large"), 413)

    with pytest.raises(HttpCallError):
        await send_batched([1], always_too_large, sizes=[1], overhead=0, limit=None)


def test_body_limits_read_as_the_reference_client_reads_them() -> None:
    assert parse_byte_limit(5_242_880) == 5_242_880
    assert parse_byte_limit("5mb") == 5 * 1024 * 1024
    assert parse_byte_limit("100kb") == 102_400
    assert parse_byte_limit(" 2 MB ") == 2 * 1024 * 1024
    assert parse_byte_limit("1024") == 1024
    for bad in ("", "mb", "-1mb", "5 parsecs", None, True, 0, -5, float("inf")):
        assert parse_byte_limit(bad) is None


def test_put_answers_map_to_put_results() -> None:
    meta = _a_metadata("x")
    answer = wire.PutEntriesResponse(
        (meta,),
        (wire.Rejection("y", "was not signed by a trusted user"), wire.Rejection("zz", "?")),
    )
    result = put_result_of(["x", "y", "z"], answer)
    assert result.stored == ("x",)
    assert result.existing == ("z",)
    assert result.rejected == (("y", "was not signed by a trusted user"),)  # "zz" was not sent
    assert put_result_of(["x", "y"], None).stored == ("x", "y")  # a server without receipts


def _a_metadata(entry_id: str) -> EntryMetadata:
    return EntryMetadata(
        entry_type=EntryType.DOC_CHANGE,
        id=entry_id,
        content_hash="0" * 64,
        doc_id="d",
        dependency_ids=(),
        created_at=1,
        created_by_public_key="k",
        decryption_key_id="default",
        signature=b"s",
        original_size=1,
        encrypted_size=1,
    )


def test_peer_addresses_take_https_and_loopback_http_urls() -> None:
    config = parse_config(
        tomllib.loads(
            '[[peers]]\naddress = "https://sync.example.com/"\n'
            '[[peers]]\naddress = "http://127.0.0.1:1661"\n'
            '[[peers]]\naddress = "tcp://10.0.0.5:7890"\n'
        )
    )
    assert [p.address for p in config.peers] == [
        "https://sync.example.com",
        "http://127.0.0.1:1661",
        "tcp://10.0.0.5:7890",
    ]
    for bad in ("http://sync.example.com", "https://", "https://h?x=1", "https://u:p@h"):
        with pytest.raises(ConfigError):
            parse_config(tomllib.loads(f'[[peers]]\naddress = "{bad}"\n'))


# -- a server that answers as the reference does ---------------------------------------------------
#: The reference server's SSE bytes (MindooDBServer.handleSyncEvents), cut at awkward places.
_REFERENCE_FEED = [
    b'event: hello\ndata: {"protocolVersion":"sync-v5"}\n\n',
    b": heartbeat 1733150000000\n\n",
    b'event: change\ndata: {"dbId":"todos","storeKind":"docs","epoch":"e1","maxRec',
    b'eiptOrder":7}\n\nevent: change\ndata: {"dbId":42}\n\n',  # no string dbId: ignored
    'event: change\ndata: {"dbId":"caf\u00e9"}\n\n'.encode()[:-5],  # split inside UTF-8
    'event: change\ndata: {"dbId":"caf\u00e9"}\n\n'.encode()[-5:],
    # CRLF has no bare "\n\n": the reference client never delivers it (it would also swallow
    # the event after it, as one unparsable block)
    b'event: change\r\ndata: {"dbId":"crlf"}\r\n\r\n',
]


@dataclass
class _Fake:
    url: str
    seen: list[str]


@pytest.fixture
async def reference_like() -> AsyncIterator[_Fake]:
    seen: list[str] = []

    async def events(request: web.Request) -> web.StreamResponse:
        seen.append(f"{request.method} {request.path} {request.headers.get('Authorization')}")
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for piece in _REFERENCE_FEED:
            await response.write(piece)
            await asyncio.sleep(0.01)
        return response

    async def capabilities(request: web.Request) -> web.Response:
        seen.append(f"{request.method} {request.path}")
        return web.json_response({"error": "Not found"}, status=404)  # an old server

    entries = [_a_metadata(f"e{i}") for i in range(5)]

    async def find_new(request: web.Request) -> web.Response:
        body = await request.json()
        seen.append(f"{request.method} {request.path} {sorted(body)}")
        out = []
        for order, meta in zip((5, 3, 4, 1, 2), entries, strict=True):
            obj = metadata_to_json(meta)
            obj["receiptOrder"] = order
            out.append(obj)
        return web.json_response({"entries": out})

    app = web.Application()
    app.router.add_get("/t1/sync/docs/events", events)
    app.router.add_get("/t1/sync/docs/capabilities", capabilities)
    app.router.add_post("/t1/sync/docs/findNewEntries", find_new)
    async with app_on_loopback(app) as url:
        yield _Fake(url, seen)


class _NoKeys:
    identity = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----"
    username = None

    def sign(self, data: bytes) -> bytes:
        raise AssertionError("the token is cached: no authentication expected")

    def unwrap(self, wrapped: bytes) -> bytes:
        raise ValueError("no key")


async def test_the_change_feed_reads_the_reference_servers_bytes(reference_like: _Fake) -> None:
    fetcher = HttpOrigin(reference_like.url)
    client = HttpSyncClient(fetcher, "t1", _NoKeys())
    token = _jwt(time.time() + 3600)
    client.tokens.store(token, time.time())
    opened: list[bool] = []
    try:
        got = [e async for e in client.changes(StoreKind.DOCS, lambda: opened.append(True))]
    finally:
        await fetcher.aclose()
    assert opened == [True]
    assert [(e.db_id, e.epoch, e.max_receipt_order) for e in got] == [
        ("todos", "e1", 7),
        ("caf\u00e9", None, None),
    ]
    assert reference_like.seen == [f"GET /t1/sync/docs/events Bearer {token}"]


async def test_an_old_server_gets_sync_v1_and_an_emulated_cursor_scan(
    reference_like: _Fake,
) -> None:
    fetcher = HttpOrigin(reference_like.url)
    client = HttpSyncClient(fetcher, "t1", _NoKeys())
    client.tokens.store(_jwt(time.time() + 3600), time.time())
    store = client.store("todos")
    try:
        caps = await store.capabilities()
        first = await store.scan_entries_since(None, limit=2)
        second = await store.scan_entries_since(first.next_cursor, limit=10)
        head = await store.get_store_head()
    finally:
        await fetcher.aclose()
    assert caps.protocol_version == "sync-v1" and not caps.supports_cursor_scan
    assert [m.id for m in first.entries] == ["e3", "e4"] and first.has_more
    assert first.next_cursor == ScanCursor(2, "e4")
    assert [m.id for m in second.entries] == ["e1", "e2", "e0"] and not second.has_more
    assert head.max_receipt_order == 5
    # asked once, remembered: later calls went to findNewEntries only
    assert reference_like.seen.count("GET /t1/sync/docs/capabilities") == 1


# -- against mindood's HTTP server ----------------------------------------------------------------
@dataclass
class Served:
    url: str
    node: SyncNode
    tenant: Tenant
    gateway: object

    async def db(self, name: str = "todos") -> MindooDB:
        return await self.tenant.open_db(name)


_IDENTITY: list[object] = []


def _server_identity(tmp_path: Path) -> object:
    if not _IDENTITY:
        _IDENTITY.append(http_serve.ServerIdentity.load_or_create(tmp_path))
    return _IDENTITY[0]


async def _serve(tmp_path: Path, *, body_limit: int, identity_known: bool = True) -> Served:
    alice = (await new_tenant(InMemoryStoreFactory())).tenant
    node = sync_node(tmp_path, "server")
    await node.add_tenant(alice, ["todos"])
    identity = _server_identity(tmp_path) if identity_known else None
    gateway = http_serve.HttpGateway(node, identity, body_limit=body_limit)
    listener = await http_server.listen_http(gateway.handle, "127.0.0.1", 0, body_limit=body_limit)
    node.spawn(gateway.run(), name="test-http-events")
    assert listener.bound is not None
    port = listener.bound[1]
    served = Served(f"http://127.0.0.1:{port}", node, alice, gateway)
    served.listener = listener  # type: ignore[attr-defined]
    return served


@pytest.fixture
async def cleanup() -> AsyncIterator[list[object]]:
    things: list[object] = []
    yield things
    for thing in reversed(things):
        if isinstance(thing, Tenant):
            await thing.close()
        elif isinstance(thing, SyncNode):
            await thing.aclose()
        elif isinstance(thing, Served):
            await thing.listener.aclose()  # type: ignore[attr-defined]
            await thing.node.aclose()
            await thing.tenant.close()


async def _values(db: MindooDB, doc_id: str) -> dict[str, object] | None:
    doc = await db.find_document(doc_id)
    if doc is None:
        return None
    return {k: v for k, v in doc.get_data().items() if not k.startswith("_")}


async def test_connect_to_server_pulls_and_pushes_docs_and_attachments(
    tmp_path: Path, cleanup: list[object]
) -> None:
    served = await _serve(tmp_path, body_limit=wire.DEFAULT_BODY_LIMIT)
    cleanup.append(served)
    server_db = await served.db()
    doc = await server_db.create_document({"title": "Buy milk"})
    blob = bytes(range(256)) * 1200  # 300 KiB: two chunks

    async def attach(d: object) -> None:
        await d.add_attachment(blob, "a.bin")  # type: ignore[attr-defined]

    await server_db.change_doc(doc, attach)

    bob = await join(served.tenant, "bob")  # a new device: its directory is empty
    cleanup.append(bob)
    remote_dir = await bob.connect_to_server(served.url, "directory")
    pulled = await bob.get_directory().db.pull_changes_from(remote_dir)
    assert pulled.transferred > 0 and pulled.rejected == ()
    await bob.refresh_directory(full=True)

    bob_db = await bob.open_db("todos")
    docs = await bob_db.pull_changes_from(await bob.connect_to_server(served.url, "todos"))
    files = await bob_db.pull_changes_from(
        await bob.connect_to_server(served.url, "todos", "attachments"), store_kind="attachments"
    )
    assert docs.transferred == 2 and files.transferred == 2
    assert await _values(bob_db, doc.get_id()) == {"title": "Buy milk"}
    [info] = (await bob_db.get_document(doc.get_id())).get_attachments()
    assert (
        await (await bob_db.get_document(doc.get_id())).get_attachment(info.attachment_id) == blob
    )

    mine = await bob_db.create_document({"title": "from bob"})
    remote_docs = await bob.connect_to_server(served.url, "todos")
    pushed = await bob_db.push_changes_to(remote_docs)
    assert pushed.transferred == 1 and pushed.rejected == ()
    assert await _values(server_db, mine.get_id()) == {"title": "from bob"}
    assert (await bob_db.push_changes_to(remote_docs)).transferred == 0  # idle: cursor + head
    assert remote_docs.client.authentications == 1  # one token for every store of the server
    assert remote_docs.client is remote_dir.client


async def test_a_refused_token_is_renewed_once_transparently(
    tmp_path: Path, cleanup: list[object]
) -> None:
    served = await _serve(tmp_path, body_limit=wire.DEFAULT_BODY_LIMIT)
    cleanup.append(served)
    doc = await (await served.db()).create_document({"n": 1})
    bob = await join(served.tenant, "bob")
    cleanup.append(bob)
    remote = await bob.connect_to_server(served.url, "todos")
    [meta] = await remote.find_new_entries([])
    assert meta.doc_id == doc.get_id()
    # a token the server does not accept (as after a restart: its secret is per process)
    remote.client.tokens.store(_jwt(time.time() + 3600), time.time())
    assert await remote.has_entries([meta.id]) == [meta.id]
    assert remote.client.authentications == 2


async def test_a_push_over_the_body_limit_is_split_on_413(
    tmp_path: Path, cleanup: list[object]
) -> None:
    # No server info (no identity: 503), so the client cannot know the limit beforehand.
    served = await _serve(tmp_path, body_limit=64 * 1024, identity_known=False)
    cleanup.append(served)
    bob = await join(served.tenant, "bob")
    cleanup.append(bob)
    await bob.get_directory().db.pull_changes_from(
        await bob.connect_to_server(served.url, "directory")
    )
    await bob.refresh_directory(full=True)
    bob_db = await bob.open_db("todos")
    ids = [
        (await bob_db.create_document({"pad": "x" * 12_000, "i": i})).get_id() for i in range(12)
    ]
    remote = await bob.connect_to_server(served.url, "todos")
    statuses: list[tuple[str, int]] = []
    fetcher = remote.client.fetcher
    real = fetcher.request

    async def recording(method: str, path: str, **kwargs: Any) -> Any:
        response = await real(method, path, **kwargs)
        statuses.append((path.rsplit("/", 1)[-1], response.status))
        return response

    fetcher.request = recording  # type: ignore[method-assign]  # count what went over the wire
    entries = await bob_db.get_store().get_entries(await bob_db.get_store().get_all_ids())
    assert sum(len(e.encrypted_data) for e in entries) > 2 * 64 * 1024
    assert await remote.client.body_limit() is None
    result = await remote.put_entries(entries)
    assert result.rejected == () and len(result.stored) == len(entries)
    puts = [status for op, status in statuses if op.startswith("putEntries")]
    assert puts[0] == 413 and puts.count(200) >= 3 and set(puts) == {200, 413}
    server_db = await served.db()
    await server_db.sync_store_changes()
    for i, doc_id in enumerate(ids):
        assert (await _values(server_db, doc_id)) == {"pad": "x" * 12_000, "i": i}


async def test_an_entry_the_server_altered_is_refused_by_the_pulling_database(
    tmp_path: Path, cleanup: list[object]
) -> None:
    served = await _serve(tmp_path, body_limit=wire.DEFAULT_BODY_LIMIT)
    cleanup.append(served)
    server_db = await served.db()
    good = await server_db.create_document({"ok": True})
    victim = await server_db.create_document({"ok": "soon forged"})
    store = server_db.get_store()
    [meta] = await store.find_new_entries_for_doc([], victim.get_id())
    [entry] = await store.get_entries([meta.id])
    forged: StoreEntry = tampered(entry, created_at=entry.metadata.created_at + 1)
    await store.purge_doc_history(victim.get_id())
    await store.put_entries([forged])  # what a hostile or broken server serves

    bob = await join(served.tenant, "bob")
    cleanup.append(bob)
    await bob.get_directory().db.pull_changes_from(
        await bob.connect_to_server(served.url, "directory")
    )
    await bob.refresh_directory(full=True)
    bob_db = await bob.open_db("todos")
    result = await bob_db.pull_changes_from(await bob.connect_to_server(served.url, "todos"))
    assert [i for i, _ in result.rejected] == [forged.id]
    assert await bob_db.get_store().has_entries([forged.id]) == []
    assert await _values(bob_db, good.get_id()) == {"ok": True}


async def test_a_peer_address_that_is_a_server_url_syncs_both_ways_live(
    tmp_path: Path, cleanup: list[object]
) -> None:
    served = await _serve(tmp_path, body_limit=wire.DEFAULT_BODY_LIMIT)
    cleanup.append(served)
    server_db = await served.db()
    before = await server_db.create_document({"title": "before"})
    bob = await join(served.tenant, "bob")
    cleanup.append(bob)
    node = sync_node(tmp_path, "client")
    cleanup.append(node)
    await node.add_tenant(bob, ["todos"])
    node.add_http_peer(served.url, bob.tenant_id)
    bob_db = await bob.open_db("todos")
    await eventually(lambda: _is(bob_db, before.get_id(), {"title": "before"}))

    async def up_to_date() -> bool:
        return [p.state for p in node.peers()] == ["up-to-date"]

    await eventually(up_to_date)
    # the server's change feed brings a new document without polling
    later = await server_db.create_document({"title": "later"})
    await eventually(lambda: _is(bob_db, later.get_id(), {"title": "later"}), seconds=10)
    # a local write is pushed (the server never pulls)
    mine = await bob_db.create_document({"title": "from bob's node"})
    await eventually(lambda: _is(server_db, mine.get_id(), {"title": "from bob's node"}))
    [status] = node.peers()
    assert status.transport == "http" and status.address == served.url
    assert status.errors == () and status.transferred >= 2
    assert status.bytes_sent > 0 and status.bytes_received > status.bytes_sent
    links = node.http_links()
    assert links[0].stats.pushed >= 1 and links[0].client.authentications == 1


async def _is(db: MindooDB, doc_id: str, expected: dict[str, object]) -> bool:
    return await _values(db, doc_id) == expected


async def test_a_revoked_device_is_refused_at_its_next_call(
    tmp_path: Path, cleanup: list[object]
) -> None:
    served = await _serve(tmp_path, body_limit=wire.DEFAULT_BODY_LIMIT)
    cleanup.append(served)
    await (await served.db()).create_document({"n": 1})
    bob = await join(served.tenant, "bob")
    cleanup.append(bob)
    remote = await bob.connect_to_server(served.url, "todos")
    assert len(await remote.find_new_entries([])) == 1  # logged in, token cached
    await served.tenant.revoke_user(username("bob"), **admin_creds())
    with pytest.raises(HttpCallError) as refused:
        await remote.find_new_entries([])
    assert refused.value.status == 403 and refused.value.kind is ErrorKind.USER_REVOKED
    assert remote.client.authentications == 1  # a 403 is final: no re-authentication
    with pytest.raises(HttpCallError) as again:  # and a new login is refused at the challenge
        remote.client.tokens.clear()
        await remote.find_new_entries([])
    assert again.value.status == 403
