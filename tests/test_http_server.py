"""The HTTP sync API served by a real node on 127.0.0.1: auth, every route, limits, SSE, relay."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from mindood import InMemoryStoreFactory, TenantFactory
from mindood.crypto import kdf
from mindood.db import MindooDB
from mindood.errors import MindoodError
from mindood.identity import create_user_id, unlock
from mindood.tenant import Tenant
from protocol.http import wire
from store.entry import StoreEntry
from tests.entries import Author, tampered
from tests.http_helpers import Client, Served, serve
from tests.sync_helpers import eventually, join, keyless_relay, make_node
from tests.tenant_helpers import (
    TENANT_ID,
    admin_creds,
    fast_kdf,
    identity,
    new_tenant,
    password,
    username,
)

pytestmark = pytest.mark.usefixtures("_kdf")


@pytest.fixture(autouse=True, scope="module")
def _kdf() -> object:
    yield from fast_kdf()


async def _logged_in(
    tmp_path: Path,
    session: aiohttp.ClientSession,
    servers: list[Served],
    tenant: Tenant,
    who: Tenant | None = None,
    **options: Any,
) -> tuple[Served, Client]:
    """``tenant`` served (``options`` as for ``serve``), and a client logged in as ``who``."""
    served = await serve(tmp_path, tenant, **options)
    servers.append(served)
    client = Client(session, served.url, who or tenant)
    await client.login()
    return served, client


async def _entries(db: MindooDB) -> list[StoreEntry]:
    store = db.get_store()
    return await store.get_entries(await store.get_all_ids())


async def _bob_with_docs(alice_tenant: Any, count: int = 2) -> tuple[Any, list[str]]:
    bob = await join(alice_tenant, "bob")
    db = await bob.open_db("todos")
    ids = [(await db.create_document({"n": i})).get_id() for i in range(count)]
    return bob, ids


# -- global routes -----------------------------------------------------------------------------
async def test_global_routes(
    tmp_path: Path, session: aiohttp.ClientSession, servers: list[Served]
) -> None:
    alice = (await new_tenant(InMemoryStoreFactory())).tenant
    served = await serve(tmp_path, alice)
    servers.append(served)
    client = Client(session, served.url, alice)
    status, body, _ = await client.raw("GET", "/health")
    assert status == 200 and body["status"] == "ok" and isinstance(body["timestamp"], int)
    status, info, _ = await client.raw("GET", "/.well-known/mindoodb-server-info")
    assert status == 200
    assert info["name"] == "srv" and "BEGIN PUBLIC KEY" in info["signingPublicKey"]
    assert info["maxJsonRequestBodyLimit"] == "5mb"
    assert info["maxJsonRequestBodyBytes"] == 5 * 1024 * 1024
    assert info["timestamping"] == {"enabled": False, "providers": []}
    assert len(info["encryptionPublicKey"]) > 500  # RSA-3072
    status, body, _ = await client.raw(
        "GET", f"/.well-known/mindoodb-tenants/{TENANT_ID}/publicinfos-fingerprints"
    )
    assert status == 200 and body["tenantId"] == TENANT_ID
    [fingerprint] = body["fingerprints"]
    assert len(fingerprint.split(":")) == 8
    status, body, _ = await client.raw(
        "GET", "/.well-known/mindoodb-tenants/nope/publicinfos-fingerprints"
    )
    assert (status, body) == (404, {"error": "Tenant not found on server"})
    status, body, _ = await client.raw("POST", "/nope/auth/challenge", {"username": "x"})
    assert status == 404 and body["error"] == "Tenant nope not found on server srv"
    status, body, _ = await client.raw("GET", "/no/such/route/here")
    assert status == 404 and body == {"error": "Not found"}


async def test_server_info_without_identity_is_503(
    tmp_path: Path, session: aiohttp.ClientSession, servers: list[Served]
) -> None:
    alice = (await new_tenant(InMemoryStoreFactory())).tenant
    served = await serve(tmp_path, alice, identity=False)
    servers.append(served)
    status, body, _ = await Client(session, served.url, alice).raw(
        "GET", "/.well-known/mindoodb-server-info"
    )
    assert (status, body) == (503, {"error": "Server identity not initialized"})


# -- auth --------------------------------------------------------------------------------------
async def test_auth_challenge_signature_expiry_single_use_and_revocation(
    tmp_path: Path, session: aiohttp.ClientSession, servers: list[Served]
) -> None:
    alice = (await new_tenant(InMemoryStoreFactory())).tenant
    bob = await join(alice, "bob")
    served = await serve(tmp_path, alice)
    servers.append(served)
    client = Client(session, served.url, bob, username=username("bob"))

    # a challenge is single-use
    status, body = await client.challenge(username=username("bob"))
    assert status == 200 and len(body["challenge"]) == 36 and body["challenge"][14] == "7"
    challenge = body["challenge"]
    status, body = await client.authenticate(challenge, b"\x00" * 64)
    assert status == 403 and body == {"success": False, "error": "Invalid signature"}
    status, body = await client.authenticate(challenge, client.sign(challenge.encode()))
    assert status == 401 and body == {"success": False, "error": "Challenge already used"}

    # signed by another key (alice's): wrong signature
    status, body = await client.challenge(username=username("bob"))
    status, body = await client.authenticate(
        body["challenge"], alice.user.sign(body["challenge"].encode())
    )
    assert status == 403 and body["error"] == "Invalid signature"

    # an expired challenge
    status, body = await client.challenge(username=username("bob"))
    served.clock.offset += 301
    status, body = await client.authenticate(
        body["challenge"], client.sign(body["challenge"].encode())
    )
    assert status == 401 and body == {"success": False, "error": "Challenge expired"}
    served.clock.offset = 0

    # unknown challenge, unknown user, bad input
    status, body = await client.authenticate("0190a3c4-0000-7000-8000-000000000000", b"x" * 64)
    assert status == 401 and body["success"] is False
    status, body = await client.challenge(username=username("nobody"))
    assert status == 404 and "not found" in body["error"]
    status, body = await client.challenge()
    assert status == 400
    status, body, _ = await client.raw(
        "POST", f"/{TENANT_ID}/auth/authenticate", {"challenge": "x"}
    )
    assert status == 400 and body == {"error": "challenge and signature are required"}
    status, body, _ = await client.raw("POST", f"/{TENANT_ID}/auth/challenge", b"{not json")
    assert status == 400 and body == {"error": "Invalid JSON body"}

    # a good login, by username and key, and by key alone
    token = await client.login()
    header, claims_b64, _ = token.split(".")
    claims = json.loads(_b64url(claims_b64))
    assert json.loads(_b64url(header)) == {"alg": "HS256", "typ": "JWT"}
    assert claims["sub"] == username("bob") and claims["tenantId"] == TENANT_ID
    assert claims["exp"] - claims["iat"] == 3600
    assert claims["deviceSigningKey"] == bob.user.private.signing_public_key
    by_key = Client(session, served.url, bob)
    await by_key.login()
    status, body = await by_key.sync_call("getStoreHead", {"dbId": "todos"})
    assert status == 200 and set(body["head"]) == {"epoch", "maxReceiptOrder"}

    # a token past its hour is dead
    served.clock.offset += 3601
    status, body = await client.sync_call("getStoreHead", {"dbId": "todos"})
    assert (status, body) == (401, {"error": "Invalid or expired token"})
    served.clock.offset = 0

    # revoked: refused at the challenge, and the token it holds stops working at once
    status, _ = await client.sync_call("getStoreHead", {"dbId": "todos"})
    assert status == 200
    await alice.revoke_user(username("bob"), **admin_creds())
    status, body = await client.sync_call("getStoreHead", {"dbId": "todos"})
    assert (status, body) == (401, {"error": "Invalid or expired token"})
    status, body = await client.challenge(username=username("bob"))
    assert status == 403 and "no active access grant" in body["error"]
    status, body = await by_key.challenge(signingPublicKey=by_key.signing_key)
    assert status == 403


def _b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


async def test_tokens_are_checked(
    tmp_path: Path, session: aiohttp.ClientSession, servers: list[Served]
) -> None:
    alice = (await new_tenant(InMemoryStoreFactory())).tenant
    served = await serve(tmp_path, alice)
    servers.append(served)
    client = Client(session, served.url, alice)
    status, body = await client.sync_call("getStoreHead", {"dbId": "todos"})
    assert (status, body) == (401, {"error": "Missing or invalid Authorization header"})
    token = await client.login()
    head, claims, mac = token.split(".")
    for forged in (f"{head}.{claims}.{mac[:-2]}AA", "a.b", f"{head}.{claims}.", "x" * 8000):
        client.token = forged
        status, body = await client.sync_call("getStoreHead", {"dbId": "todos"})
        assert (status, body) == (401, {"error": "Invalid or expired token"})
    none_alg = wire.b64(b'{"alg":"none","typ":"JWT"}').rstrip("=").replace("+", "-")
    client.token = f"{none_alg}.{claims}.{mac}"
    status, _ = await client.sync_call("getStoreHead", {"dbId": "todos"})
    assert status == 401


# -- every sync route --------------------------------------------------------------------------
async def test_every_route_success_and_error_shapes(
    tmp_path: Path, session: aiohttp.ClientSession, servers: list[Served]
) -> None:
    alice = (await new_tenant(InMemoryStoreFactory())).tenant
    bob, doc_ids = await _bob_with_docs(alice)
    served, client = await _logged_in(tmp_path, session, servers, alice, bob)
    bob_entries = await _entries(await bob.open_db("todos"))

    # capabilities
    status, body = await client.sync_call("capabilities", method="GET", query="?dbId=todos")
    assert status == 200
    caps = body["capabilities"]
    assert caps["protocolVersion"] == "sync-v5" and caps["supportsCursorScan"] is True
    assert caps["supportsSessionKeyWrap"] and caps["supportsBinaryEntries"]
    assert caps["supportsChangeEvents"] and caps["supportsStoreHead"]
    assert caps["supportsMaterializationPlanning"] is False
    assert abs(caps["serverTime"] - served.clock() * 1000) < 60_000

    # putEntries: receipts for the stored, a tampered entry rejected by id, the rest kept
    bad = tampered(bob_entries[0], created_at=bob_entries[0].metadata.created_at + 1)
    body_json = wire.PutEntriesRequest("todos", (*bob_entries[1:], bad)).to_json()
    body_json["entries"].append({"id": "junk", "entryType": "nope"})
    status, body = await client.sync_call("putEntries", body_json)
    assert status == 200 and body["success"] is True
    assert {r["id"] for r in body["receipts"]} == {e.id for e in bob_entries[1:]}
    assert all("receiptOrder" in r for r in body["receipts"])
    reasons = {r["id"]: r["reason"] for r in body["rejected"]}
    assert set(reasons) == {bad.id, "junk"}
    # the good copy of the tampered one goes in; a second push is acknowledged, not stored twice
    status, body = await client.sync_call(
        "putEntries", wire.PutEntriesRequest("todos", tuple(bob_entries)).to_json()
    )
    assert status == 200 and body["rejected"] == []
    assert len(body["receipts"]) == len(bob_entries)
    # applied on the node like a native push: the documents read on the server
    server_db = await alice.open_db("todos")
    for i, doc_id in enumerate(doc_ids):
        assert dict((await server_db.get_document(doc_id)).get_data())["n"] == i

    ids = [e.id for e in bob_entries]
    status, body = await client.sync_call("getAllIds", method="GET", query="?dbId=todos")
    assert status == 200 and set(ids) <= set(body["ids"])
    status, body = await client.sync_call("hasEntries", {"dbId": "todos", "ids": [*ids, "zz"]})
    assert (status, body) == (200, {"ids": ids})
    status, body = await client.sync_call("findNewEntries", {"dbId": "todos", "haveIds": ids[1:]})
    assert status == 200 and [m["id"] for m in body["entries"]] == [ids[0]]
    status, body = await client.sync_call(
        "findNewEntriesForDoc", {"dbId": "todos", "haveIds": [], "docId": doc_ids[1]}
    )
    assert status == 200 and {m["docId"] for m in body["entries"]} == {doc_ids[1]}
    status, body = await client.sync_call(
        "findEntries", {"dbId": "todos", "type": "doc_create", "creationDateFrom": None}
    )
    assert status == 200 and {m["docId"] for m in body["entries"]} == set(doc_ids)
    status, page = await client.sync_call(
        "scanEntriesSince", {"dbId": "todos", "cursor": None, "limit": 1}
    )
    assert status == 200 and len(page["entries"]) == 1 and page["hasMore"] is True
    status, page2 = await client.sync_call(
        "scanEntriesSince", {"dbId": "todos", "cursor": page["nextCursor"], "limit": 1000}
    )
    assert page2["hasMore"] is False and page["entries"][0]["id"] not in {
        m["id"] for m in page2["entries"]
    }
    status, body = await client.sync_call("getStoreHead", {"dbId": "todos"})
    assert status == 200 and body["head"]["maxReceiptOrder"] >= len(ids)
    status, body = await client.sync_call("getIdBloomSummary", {"dbId": "todos"})
    assert status == 200 and body["summary"]["version"] == "bloom-v1"
    assert body["summary"]["totalIds"] >= len(ids)
    status, body = await client.sync_call("getCompactionStatus", {"dbId": "todos"})
    assert status == 200 and body["status"]["enabled"] is False
    status, body = await client.sync_call("getEntryMetadata", {"dbId": "todos", "id": ids[0]})
    assert status == 200 and body["entry"]["id"] == ids[0] and "encryptedData" not in body["entry"]
    status, body = await client.sync_call("getEntryMetadata", {"dbId": "todos", "id": "zz"})
    assert (status, body) == (200, {"entry": None})
    status, body = await client.sync_call(
        "resolveDependencies", {"dbId": "todos", "startId": ids[-1], "options": {"maxDepth": 0}}
    )
    assert (status, body) == (200, {"ids": [ids[-1]]})

    # getEntries: session-key wrapped, legacy hybrid RSA, binary; all for bob's own RSA key
    by_id = {e.id: e for e in bob_entries}
    status, body = await client.sync_call(
        "getEntries", {"dbId": "todos", "ids": ids, "sessionKeyWrap": True}
    )
    assert status == 200 and "wrappedSessionKey" in body
    got = wire.open_session_batch(wire.session_batch_from_json(body), client.unwrap())
    assert [e.encrypted_data for e in got] == [by_id[i].encrypted_data for i in ids]
    status, body = await client.sync_call("getEntries", {"dbId": "todos", "ids": ids[:1]})
    assert status == 200 and "rsaEncryptedPayload" in body["entries"][0]
    [legacy] = wire.legacy_entries_from_json(body, client.unwrap())
    assert legacy.encrypted_data == by_id[ids[0]].encrypted_data
    status, data, ctype = await client.sync_bytes(
        "getEntriesBinary",
        json.dumps({"dbId": "todos", "ids": ids}).encode(),
        content_type="application/json",
    )
    assert status == 200 and ctype == "application/octet-stream"
    batch = wire.decode_get_entries_binary(data)
    assert [e.id for e in wire.open_session_batch(batch, client.unwrap())] == ids
    # a token of another device gets payloads only it can open
    other = Client(session, served.url, alice)
    await other.login()
    status, body = await other.sync_call(
        "getEntries", {"dbId": "todos", "ids": ids, "sessionKeyWrap": True}
    )
    with pytest.raises(wire.HttpError):
        wire.open_session_batch(wire.session_batch_from_json(body), client.unwrap())

    # putEntriesBinary
    db = await bob.open_db("todos")
    more = (await db.create_document({"n": 9})).get_id()
    fresh = [e for e in await _entries(db) if e.doc_id == more]
    frame = wire.PutEntriesRequest("todos", tuple(fresh)).to_binary(TENANT_ID)
    status, raw, _ = await client.sync_bytes(
        "putEntriesBinary", frame, content_type="application/octet-stream"
    )
    assert status == 200 and {r["id"] for r in json.loads(raw)["receipts"]} == {e.id for e in fresh}
    status, raw, _ = await client.sync_bytes(
        "putEntriesBinary", frame, content_type="application/json"
    )
    assert status == 400
    status, raw, _ = await client.sync_bytes(
        "putEntriesBinary", b"\x00\x00\x00\x09{}", content_type="application/octet-stream"
    )
    assert status == 400 and "binary entry message" in json.loads(raw)["error"]

    # attachments store kind works the same way
    status, body = await client.sync_call("getStoreHead", {"dbId": "todos"}, kind="attachments")
    assert status == 200

    # materialization planning: not offered (capability false), answered as the reference does
    status, body = await client.sync_call(
        "planDocumentMaterialization", {"dbId": "todos", "docId": "x"}
    )
    assert status == 500 and "does not support" in body["error"]

    # error shapes
    status, body = await client.sync_call("getStoreHead", {"dbId": "../x"})
    assert status == 400 and "dbId" in body["error"]
    status, body = await client.sync_call("getStoreHead", b"[1,2")
    assert (status, body) == (400, {"error": "Invalid JSON body"})
    status, body = await client.sync_call("findNewEntriesForDoc", {"dbId": "todos"})
    assert (status, body) == (400, {"error": "docId is required"})
    status, body = await client.sync_call("getEntryMetadata", {"dbId": "todos"})
    assert (status, body) == (400, {"error": "id is required"})
    status, body = await client.sync_call("resolveDependencies", {"dbId": "todos"})
    assert (status, body) == (400, {"error": "startId is required"})
    status, body = await client.sync_call("findEntries", {"dbId": "todos", "type": "bogus"})
    assert status == 400
    status, body = await client.sync_call("noSuchOp", {"dbId": "todos"})
    assert (status, body) == (404, {"error": "Not found"})
    status, body = await client.sync_call("getStoreHead", {"dbId": "todos"}, kind="other")
    assert status == 404
    status, body = await client.sync_call("getAllIds", {"dbId": "todos"})  # POST to a GET route
    assert status == 404
    status, body = await client.sync_call("getStoreHead", {"dbId": ".hidden"})
    assert status == 400


async def test_untrusted_authors_are_rejected_per_entry(
    tmp_path: Path, session: aiohttp.ClientSession, servers: list[Served]
) -> None:
    alice = (await new_tenant(InMemoryStoreFactory())).tenant
    _, client = await _logged_in(tmp_path, session, servers, alice)
    stranger = Author().entry()
    status, body = await client.sync_call(
        "putEntries", wire.PutEntriesRequest("todos", (stranger,)).to_json()
    )
    assert status == 200 and body["receipts"] == []
    assert body["rejected"] == [
        {"id": stranger.id, "reason": f"Entry {stranger.id} was not signed by a trusted user"}
    ]
    assert await (await alice.open_db("todos")).get_store().has_entries([stranger.id]) == []


async def test_a_new_database_named_by_a_client_is_adopted(
    tmp_path: Path, session: aiohttp.ClientSession, servers: list[Served]
) -> None:
    alice = (await new_tenant(InMemoryStoreFactory())).tenant
    served, client = await _logged_in(tmp_path, session, servers, alice)
    status, _ = await client.sync_call("getStoreHead", {"dbId": "fresh"})
    assert status == 200
    sync = served.sync.tenant_sync(TENANT_ID)
    assert sync is not None and "fresh" in sync.databases


# -- limits ------------------------------------------------------------------------------------
async def test_body_limit_and_id_caps(
    tmp_path: Path, session: aiohttp.ClientSession, servers: list[Served]
) -> None:
    alice = (await new_tenant(InMemoryStoreFactory())).tenant
    served, client = await _logged_in(tmp_path, session, servers, alice)
    huge = {"dbId": "todos", "entries": [], "pad": "x" * (5 * 1024 * 1024)}
    status, body = await client.sync_call("putEntries", huge)
    assert (status, body) == (413, {"error": "Request body too large"})

    # streamed without a length: counted while reading
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(6):
            yield b" " * (1024 * 1024)

    path = f"{served.url}/{TENANT_ID}/sync/docs/putEntries"
    async with session.post(path, data=chunks(), headers=client.auth_headers()) as r:
        assert r.status == 413
    # strangers (no valid token) get a small body limit, checked before buffering
    status, body, _ = await client.raw(
        "POST", f"/{TENANT_ID}/auth/challenge", {"username": "x" * (100 * 1024)}
    )
    assert status == 413
    status, body, _ = await client.raw(
        "POST",
        f"/{TENANT_ID}/sync/docs/putEntries",
        {"pad": "x" * (100 * 1024)},
        headers={"Authorization": "Bearer forged"},
    )
    assert status == 413
    ids = [f"id{i}" for i in range(100_001)]
    for op, field in (("hasEntries", "ids"), ("getEntries", "ids"), ("findNewEntries", "haveIds")):
        status, body = await client.sync_call(op, {"dbId": "todos", field: ids})
        assert status == 400 and "at most 100000" in body["error"], op
    status, body = await client.sync_call("putEntries", {"dbId": "todos", "entries": [{}] * 10_001})
    assert status == 400 and "at most 10000" in body["error"]
    status, _ = await client.sync_call("scanEntriesSince", {"dbId": "todos", "limit": 10**9})
    assert status == 200
    # an answer over the server's cap is refused before payloads are read
    db = await alice.open_db("todos")
    await db.create_document({"big": "x" * 2000})
    all_ids = await db.get_store().get_all_ids()
    served.gateway.server.max_answer_bytes = 1000
    for op in ("getEntries", "getEntriesBinary"):
        status, body = await client.sync_call(op, {"dbId": "todos", "ids": all_ids})
        assert status == 413 and "ask for fewer ids" in body["error"], op
    served.gateway.server.max_answer_bytes = 1 << 30
    status, body = await client.sync_call("getEntries", {"dbId": "todos", "ids": all_ids})
    assert status == 200 and len(body["entries"]) == len(all_ids)
    # the server still works after all that
    status, _ = await client.sync_call("getStoreHead", {"dbId": "todos"})
    assert status == 200


# -- SSE ---------------------------------------------------------------------------------------
async def _read_events(
    response: aiohttp.ClientResponse, parser: wire.SseParser
) -> list[wire.SseEvent]:
    chunk = await response.content.readany()
    assert chunk, "stream ended"
    assert b"\r\n" not in chunk
    return parser.feed(chunk)


async def _next_event(
    response: aiohttp.ClientResponse,
    parser: wire.SseParser,
    pending: list[wire.SseEvent],
    name: str,
) -> wire.SseEvent:
    async with asyncio.timeout(10):
        while True:
            while pending:
                event = pending.pop(0)
                if event.event == name:
                    return event
            pending.extend(await _read_events(response, parser))


async def test_sse_hello_change_and_heartbeat(
    tmp_path: Path, session: aiohttp.ClientSession, servers: list[Served]
) -> None:
    alice = (await new_tenant(InMemoryStoreFactory())).tenant
    bob, _ = await _bob_with_docs(alice, 1)
    served, client = await _logged_in(tmp_path, session, servers, alice, bob, heartbeat=0.3)
    url = f"{served.url}/{TENANT_ID}/sync/docs/events?dbId=todos"
    async with session.get(url, headers=client.auth_headers()) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/event-stream"
        parser, pending = wire.SseParser(), list[wire.SseEvent]()
        hello = await _next_event(response, parser, pending, "hello")
        assert json.loads(hello.data) == {"protocolVersion": "sync-v5"}
        # a write on the node itself
        db = await alice.open_db("todos")
        await db.create_document({"x": 1})
        change = wire.ChangeEvent.from_data(
            (await _next_event(response, parser, pending, "change")).data
        )
        assert change is not None and change.db_id == "todos" and change.store_kind == "docs"
        head = await db.get_store().get_store_head()
        assert change.epoch == head.epoch and change.max_receipt_order is not None
        # a push over HTTP from another client
        entries = await _entries(await bob.open_db("todos"))
        await client.sync_call(
            "putEntries", wire.PutEntriesRequest("todos", tuple(entries)).to_json()
        )
        async with asyncio.timeout(10):
            while True:
                event = await _next_event(response, parser, pending, "change")
                parsed = wire.ChangeEvent.from_data(event.data)
                assert parsed is not None
                head = await db.get_store().get_store_head()
                if parsed.max_receipt_order == head.max_receipt_order:
                    break
        # heartbeats are comments: they reach the wire but not the parser's events
        async with asyncio.timeout(5):
            raw = b""
            while b": heartbeat " not in raw:
                raw += await response.content.readany()
    # events need a token and a readable database
    async with session.get(url) as response:
        assert response.status == 401
    async with session.get(url.replace("todos", "..x"), headers=client.auth_headers()) as response:
        assert response.status == 400


async def test_sse_streams_end_when_the_listener_closes(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    alice = (await new_tenant(InMemoryStoreFactory())).tenant
    served = await serve(tmp_path, alice)
    client = Client(session, served.url, alice)
    await client.login()
    url = f"{served.url}/{TENANT_ID}/sync/docs/events"
    async with session.get(url, headers=client.auth_headers()) as response:
        await response.content.readany()
        assert served.listener.streams == 1
        async with asyncio.timeout(10):
            await served.aclose()
    assert served.listener.streams == 0


# -- a relay -----------------------------------------------------------------------------------
async def test_a_relay_serves_entries_it_cannot_read(
    tmp_path: Path, session: aiohttp.ClientSession, servers: list[Served]
) -> None:
    alice = (await new_tenant(InMemoryStoreFactory())).tenant
    bob, doc_ids = await _bob_with_docs(alice)
    carol = await join(alice, "carol")
    relay = await keyless_relay(alice)
    served = await serve(tmp_path, relay)
    servers.append(served)
    # the relay knows bob and carol only from the directory, readable with $publicinfos
    directory_entries = await _entries(alice.get_directory().db)
    pusher = Client(session, served.url, unlock(identity("admin"), password("admin")))
    await pusher.login()
    status, body = await pusher.sync_call(
        "putEntries", wire.PutEntriesRequest("directory", tuple(directory_entries)).to_json()
    )
    assert status == 200 and body["rejected"] == []
    bob_client = Client(session, served.url, bob)
    await bob_client.login()
    entries = await _entries(await bob.open_db("todos"))
    status, body = await bob_client.sync_call(
        "putEntries", wire.PutEntriesRequest("todos", tuple(entries)).to_json()
    )
    assert status == 200 and body["rejected"] == [] and len(body["receipts"]) == len(entries)
    relay_db = await relay.open_db("todos")
    with pytest.raises(MindoodError):
        await relay_db.get_document(doc_ids[0])
    # carol fetches the directory and the database through the relay, wrapped for her key
    carol_client = Client(session, served.url, carol)
    await carol_client.login()
    await _pull(carol_client, carol, "directory")
    got = await _pull(carol_client, carol, "todos")
    assert sorted(g.encrypted_data for g in got) == sorted(e.encrypted_data for e in entries)
    carol_db = await carol.open_db("todos")

    async def carol_reads() -> bool:
        doc = await carol_db.find_document(doc_ids[1])
        return doc is not None and dict(doc.get_data()) == {"n": 1}

    await eventually(carol_reads)


async def _pull(client: Client, tenant: Any, db_id: str) -> list[StoreEntry]:
    """A bare HTTP pull: every id, the entries session-wrapped, admitted as a peer's."""
    status, body = await client.sync_call("getAllIds", method="GET", query=f"?dbId={db_id}")
    assert status == 200
    status, body = await client.sync_call(
        "getEntries", {"dbId": db_id, "ids": body["ids"], "sessionKeyWrap": True}
    )
    assert status == 200
    got = wire.open_session_batch(wire.session_batch_from_json(body), client.unwrap())
    db = await tenant.open_db(db_id)
    verdict = await db.admit_entries(got)
    assert verdict.rejected == () and verdict.deferred == (), verdict
    await db.get_store().put_entries(list(verdict.accepted))
    await db.sync_store_changes()
    if db_id == "directory":
        await tenant.refresh_directory()
    return got


async def test_payloads_go_to_the_rsa_key_beside_the_device_key_that_logged_in(
    tmp_path: Path, session: aiohttp.ClientSession, servers: list[Served]
) -> None:
    """Two devices of one person: each token's answers open only with that device's key."""
    alice = (await new_tenant(InMemoryStoreFactory())).tenant
    bob_one, _ = await _bob_with_docs(alice, 1)
    with kdf.lowered_pbkdf2_iterations(1000):
        second = create_user_id(username("bob"), "bob-2-pw", with_user_key=True)
    factory = TenantFactory(InMemoryStoreFactory())
    request = factory.create_join_request(second, format="uri", label="bob's phone")
    response = await alice.approve_join_request(request, **admin_creds())
    bob_two = (await factory.join_tenant(response, user=second, password="bob-2-pw")).tenant
    served = await serve(tmp_path, alice)
    servers.append(served)
    entries = await _entries(await bob_one.open_db("todos"))
    one = Client(session, served.url, bob_one, username=username("bob"))
    two = Client(session, served.url, bob_two, username=username("bob"))
    await one.login()
    await two.login()
    await one.sync_call("putEntries", wire.PutEntriesRequest("todos", tuple(entries)).to_json())
    ask = {"dbId": "todos", "ids": [e.id for e in entries], "sessionKeyWrap": True}
    for reader, other in ((one, two), (two, one)):
        status, body = await reader.sync_call("getEntries", ask)
        assert status == 200
        batch = wire.session_batch_from_json(body)
        assert len(wire.open_session_batch(batch, reader.unwrap())) == len(entries)
        with pytest.raises(wire.HttpError):
            wire.open_session_batch(batch, other.unwrap())


async def test_http_and_native_peers_mesh_through_one_node(
    tmp_path: Path, session: aiohttp.ClientSession, servers: list[Served]
) -> None:
    """An HTTP push reaches a native peer of the node; a native peer's write reaches the HTTP
    client's event stream and its next pull."""
    alice = (await new_tenant(InMemoryStoreFactory())).tenant
    bob, doc_ids = await _bob_with_docs(alice, 1)
    carol = await join(alice, "carol")
    served = await serve(tmp_path, alice)
    servers.append(served)
    _, port = await served.sync.listen("127.0.0.1", 0)
    native = await make_node(tmp_path, "native", carol)
    try:
        await native.sync.connect("127.0.0.1", port, TENANT_ID)
        client = Client(session, served.url, bob)
        await client.login()
        entries = await _entries(await bob.open_db("todos"))
        status, body = await client.sync_call(
            "putEntries", wire.PutEntriesRequest("todos", tuple(entries)).to_json()
        )
        assert status == 200 and body["rejected"] == []
        carol_db = await carol.open_db("todos")

        async def carol_has_it() -> bool:
            doc = await carol_db.find_document(doc_ids[0])
            return doc is not None and dict(doc.get_data()) == {"n": 0}

        await eventually(carol_has_it)
        url = f"{served.url}/{TENANT_ID}/sync/docs/events?dbId=todos"
        async with session.get(url, headers=client.auth_headers()) as events:
            parser, pending = wire.SseParser(), list[wire.SseEvent]()
            await _next_event(events, parser, pending, "hello")
            new_id = (await carol_db.create_document({"by": "carol"})).get_id()
            change = wire.ChangeEvent.from_data(
                (await _next_event(events, parser, pending, "change")).data
            )
            assert change is not None and change.db_id == "todos"
        status, body = await client.sync_call(
            "findNewEntriesForDoc", {"dbId": "todos", "haveIds": [], "docId": new_id}
        )
        assert status == 200 and len(body["entries"]) >= 1
    finally:
        await native.sync.aclose()


async def test_malformed_requests_get_4xx_never_a_crash(
    tmp_path: Path, session: aiohttp.ClientSession, servers: list[Served]
) -> None:
    alice = (await new_tenant(InMemoryStoreFactory())).tenant
    _, client = await _logged_in(tmp_path, session, servers, alice)
    bodies: list[Any] = [
        b"",
        b"\xff\xfe",
        b"[]",
        b'"x"',
        b"null",
        {"dbId": 5},
        {"dbId": "todos", "ids": "x", "haveIds": {"a": 1}},
        {"dbId": "todos", "cursor": "x", "filters": [1]},
        {"dbId": "todos", "cursor": {"receiptOrder": "x", "id": 1}, "limit": "many"},
        {"dbId": "todos", "entries": [1, None, {"id": 3}], "docId": ["x"]},
        {"dbId": "todos", "startId": {}, "options": "deep", "id": 7, "type": None},
        {"dbId": "todos", "filters": {"entryTypes": "doc_create", "creationDateFrom": "x"}},
    ]
    planning = {"planDocumentMaterialization", "planDocumentMaterializationBatch"}
    planning.add("planAttachmentReadByWalkingMetadata")
    for op in wire.SyncOp:
        if op is wire.SyncOp.EVENTS:
            continue  # a stream (its errors are tested with the SSE tests)
        for body in bodies:
            method = op.method
            query = "?dbId=todos" if method == "GET" else ""
            status, answer = await client.sync_call(op.value, body, method=method, query=query)
            assert status in (200, 400) or (status == 500 and op.value in planning), (
                op,
                body,
                status,
                answer,
            )
            if status != 200:
                assert set(answer) == {"error"}, (op, body, answer)
    for path in ("/acme/auth/challenge", "/acme/auth/authenticate", "/ACME/auth/challenge"):
        for body in bodies:
            status, answer, _ = await client.raw("POST", path, body)
            assert status in (400, 401, 403, 404), (path, body, status, answer)
