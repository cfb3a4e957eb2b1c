"""The HTTP API driven with requests written out by hand as reference-formats §3 gives them.

No mindood code builds a request or reads an answer here: bodies are literal JSON text (the
entries are the reference's own ``SerializedEntry`` JSON from the interop vector, pasted in as
the reference wrote them), answers are checked as parsed JSON, and the session-key layer is
opened with ``cryptography`` directly. The server is a mindood node holding the reference's
tenant ``interop-ts`` with an empty store: the admin logs in by key and pushes the directory
before any grant exists (§3.8), then the user logs in by name and pushes and reads ``contacts``.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from mindood.crypto import kdf
from mindood.identity import PrivateUserId, UnlockedUserId, unlock
from mindood.keybag import KeyBag
from mindood.storefactory import InMemoryStoreFactory
from mindood.tenant import TenantFactory
from tests.http_helpers import Served, serve
from tests.interop import reference_key_bag, reference_tenant

VECTOR = reference_tenant()
T = VECTOR["tenantId"]
OAEP = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


def _unlocked(which: str) -> UnlockedUserId:
    with kdf.lowered_pbkdf2_iterations(kdf.DEFAULT_PBKDF2_ITERATIONS):
        return unlock(PrivateUserId.from_json(VECTOR[which]), VECTOR[f"{which}Password"])


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    bag: KeyBag = reference_key_bag()
    tenant = await TenantFactory(InMemoryStoreFactory()).open_tenant(
        T,
        VECTOR["adminSigningPublicKey"],
        VECTOR["adminEncryptionPublicKey"],
        PrivateUserId.from_json(VECTOR["user"]),
        VECTOR["userPassword"],
        bag,
    )
    node = await serve(tmp_path, tenant, databases=["contacts"])
    yield node
    await node.aclose()
    await tenant.close()


async def _post(
    session: aiohttp.ClientSession, url: str, text: str, token: str | None = None
) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = "Bearer " + token
    async with session.post(url, data=text.encode(), headers=headers) as r:
        return r.status, json.loads(await r.read())


async def _login(
    session: aiohttp.ClientSession, base: str, user: UnlockedUserId, challenge_body: str
) -> str:
    status, body = await _post(session, f"{base}/{T}/auth/challenge", challenge_body)
    assert status == 200, body
    challenge = body["challenge"]
    signature = base64.b64encode(user.sign(challenge.encode("utf-8"))).decode()
    status, body = await _post(
        session,
        f"{base}/{T}/auth/authenticate",
        f'{{"challenge": "{challenge}", "signature": "{signature}"}}',
    )
    assert status == 200 and body["success"] is True, body
    token: str = body["token"]
    return token


def _pem_json(pem: str) -> str:
    """A PEM as a JSON string literal (its newlines escaped)."""
    return '"' + pem.replace("\n", "\\n") + '"'


def _entries_json(store: str) -> str:
    """The vector's entries of one store, as the reference's JSON text."""
    return "[" + ",".join(json.dumps(e) for e in VECTOR["stores"][store]) + "]"


async def test_hand_written_requests_as_section_3_gives_them(
    served: Served, tmp_path: Path
) -> None:
    base = served.url
    admin, tom = _unlocked("admin"), _unlocked("user")
    async with aiohttp.ClientSession() as session:
        # the admin, known only from the tenant's keys, logs in by signing key
        admin_token = await _login(
            session,
            base,
            admin,
            f'{{"signingPublicKey": {_pem_json(VECTOR["adminSigningPublicKey"])}}}',
        )
        status, body = await _post(
            session,
            f"{base}/{T}/sync/docs/putEntries",
            f'{{"dbId": "directory", "entries": {_entries_json("directory/docs")}}}',
            admin_token,
        )
        assert status == 200 and body["success"] is True and body["rejected"] == []
        assert len(body["receipts"]) == len(VECTOR["stores"]["directory/docs"])

        # now the user's grant is known: login by username (and key), JWT as §3.2
        tom_pem = VECTOR["user"]["userSigningKeyPair"]["publicKey"]
        token = await _login(
            session,
            base,
            tom,
            f'{{"username": "CN=tom/O=interop", "signingPublicKey": {_pem_json(tom_pem)}}}',
        )
        header, claims, _ = token.split(".")
        assert json.loads(base64.urlsafe_b64decode(header + "==")) == {"alg": "HS256", "typ": "JWT"}
        payload = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))
        assert set(payload) == {"sub", "iat", "exp", "tenantId", "deviceSigningKey"}
        assert payload["sub"] == "CN=tom/O=interop" and payload["tenantId"] == T

        async with session.get(
            f"{base}/{T}/sync/docs/capabilities?dbId=contacts",
            headers={"Authorization": "Bearer " + token},
        ) as r:
            assert r.status == 200
            caps = json.loads(await r.read())["capabilities"]
        assert caps["protocolVersion"] == "sync-v5" and caps["supportsCursorScan"] is True

        sync = f"{base}/{T}/sync/docs"
        status, body = await _post(
            session,
            f"{sync}/putEntries",
            f'{{"dbId": "contacts", "entries": {_entries_json("contacts/docs")}}}',
            token,
        )
        contacts = VECTOR["stores"]["contacts/docs"]
        assert status == 200 and body == {
            "success": True,
            "receipts": body["receipts"],
            "rejected": [],
        }
        assert [r["id"] for r in body["receipts"]] == [e["id"] for e in contacts]
        for sent, receipt in zip(contacts, body["receipts"], strict=True):
            for key in ("signature", "metadataSignature", "contentHash", "createdByPublicKey"):
                assert receipt[key] == sent[key]

        status, body = await _post(
            session,
            f"{sync}/scanEntriesSince",
            '{"dbId": "contacts", "cursor": null, "limit": 1000}',
            token,
        )
        assert status == 200 and body["hasMore"] is False
        assert sorted(m["id"] for m in body["entries"]) == sorted(e["id"] for e in contacts)
        assert set(body["nextCursor"]) == {"receiptOrder", "id"}
        orders = [m["receiptOrder"] for m in body["entries"]]
        assert orders == sorted(orders) and body["nextCursor"]["receiptOrder"] == orders[-1]

        first = contacts[0]["id"]
        status, body = await _post(
            session,
            f"{sync}/hasEntries",
            f'{{"dbId": "contacts", "ids": ["{first}", "nope"]}}',
            token,
        )
        assert (status, body) == (200, {"ids": [first]})
        status, body = await _post(
            session, f"{sync}/findNewEntries", '{"dbId": "contacts", "haveIds": []}', token
        )
        assert status == 200 and len(body["entries"]) == len(contacts)
        status, body = await _post(session, f"{sync}/getStoreHead", '{"dbId": "contacts"}', token)
        assert status == 200 and body["head"]["maxReceiptOrder"] == len(contacts)
        status, body = await _post(
            session, f"{sync}/getIdBloomSummary", '{"dbId": "contacts"}', token
        )
        assert status == 200
        assert body["summary"]["version"] == "bloom-v1" and body["summary"]["totalIds"] == 11
        assert body["summary"]["salt"] == "mindoodb-bloom-v1"

        # getEntries with sessionKeyWrap, opened by hand: RSA-OAEP-SHA256 key, AES-GCM per entry
        ids = ", ".join(f'"{e["id"]}"' for e in contacts)
        status, body = await _post(
            session,
            f"{sync}/getEntries",
            f'{{"dbId": "contacts", "ids": [{ids}], "sessionKeyWrap": true}}',
            token,
        )
        assert status == 200
        session_key = tom.encryption_key.decrypt(base64.b64decode(body["wrappedSessionKey"]), OAEP)
        assert len(session_key) == 32
        for sent, got in zip(contacts, body["entries"], strict=True):
            data = AESGCM(session_key).decrypt(
                base64.b64decode(got["iv"]), base64.b64decode(got["sessionEncryptedPayload"]), None
            )
            assert base64.b64encode(data).decode() == sent["encryptedData"]
            assert hashlib.sha256(data).hexdigest() == sent["contentHash"] == got["contentHash"]

        # the attachments store kind, and the document values the node now reads
        status, body = await _post(
            session,
            f"{base}/{T}/sync/attachments/putEntries",
            f'{{"dbId": "contacts", "entries": {_entries_json("contacts/attachments")}}}',
            token,
        )
        assert status == 200 and body["rejected"] == [] and len(body["receipts"]) == 1
    tenant = served.sync.tenant_sync(T)
    assert tenant is not None
    db = await tenant.context.tenant.open_db("contacts")
    for doc_id, value in VECTOR["expected"].items():
        assert (await db.get_document(doc_id)).get_data() == value, doc_id
