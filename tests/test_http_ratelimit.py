"""Rate limits of the HTTP API on a real node (127.0.0.1): each tier, per client, refilled.

The node's clock is the test's (``Served.clock``): a window ends when the test moves it on,
so nothing here waits a minute or depends on timing.
"""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from mindood import InMemoryStoreFactory
from mindood.tenant import Tenant
from protocol.http.client import HttpCallError
from protocol.http.ratelimit import Budget, FixedWindows, RateLimits
from protocol.http.remote import RATE_LIMIT_FALLBACK_S, retry_after_seconds
from protocol.http.wire import ErrorKind
from tests.http_helpers import Client, Served, serve
from tests.sync_helpers import join
from tests.tenant_helpers import TENANT_ID, fast_kdf, new_tenant, username

pytestmark = pytest.mark.usefixtures("_kdf")


@pytest.fixture(autouse=True, scope="module")
def _kdf() -> object:
    yield from fast_kdf()


async def _served(
    tmp_path: Path, servers: list[Served], limits: RateLimits
) -> tuple[Served, Tenant]:
    alice = (await new_tenant(InMemoryStoreFactory())).tenant
    served = await serve(tmp_path, alice, rate_limits=limits)
    servers.append(served)
    return served, alice


async def test_login_challenges_are_limited_per_user_and_refill_after_the_window(
    tmp_path: Path, session: aiohttp.ClientSession, servers: list[Served]
) -> None:
    served, alice = await _served(tmp_path, servers, RateLimits(auth=Budget(3)))
    bob = await join(alice, "bob")
    client = Client(session, served.url, bob, username=username("bob"))
    for _ in range(3):
        status, _body = await client.challenge(username=username("bob"))
        assert status == 200
    status, body, response = await client.raw(
        "POST", f"/{TENANT_ID}/auth/challenge", {"username": username("bob")}
    )
    assert status == 429
    assert body == {"error": "Too many authentication attempts, please try again later"}
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    assert served.gateway.server.limiter.refused == {"auth": 1}  # what status shows
    # a flood on bob's name does not lock alice out from the same address
    status, _body = await client.challenge(username=username("alice"))
    assert status == 200
    served.clock.offset += 61
    await client.login()  # a new window: bob logs in (challenge and authenticate)


async def test_sync_calls_are_limited_per_logged_in_user(
    tmp_path: Path, session: aiohttp.ClientSession, servers: list[Served]
) -> None:
    served, alice = await _served(tmp_path, servers, RateLimits(sync=Budget(4)))
    bob = await join(alice, "bob")
    bobs = Client(session, served.url, bob)
    alices = Client(session, served.url, alice)
    await bobs.login()
    await alices.login()
    for _ in range(4):
        status, _body = await bobs.sync_call("getStoreHead", {"dbId": "todos"})
        assert status == 200
    status, body = await bobs.sync_call("getStoreHead", {"dbId": "todos"})
    assert status == 429 and body == {"error": "Too many requests, please try again later"}
    status, _body = await alices.sync_call("getStoreHead", {"dbId": "todos"})
    assert status == 200  # alice has her own budget
    served.clock.offset += 61
    status, _body = await bobs.sync_call("getStoreHead", {"dbId": "todos"})
    assert status == 200


async def test_the_overall_budget_is_per_client_address_and_forwarded_only_by_trusted_proxies(
    tmp_path: Path, session: aiohttp.ClientSession, servers: list[Served]
) -> None:
    trusted = RateLimits(overall=Budget(2), trusted_proxies=("127.0.0.0/8",))
    served, alice = await _served(tmp_path, servers, trusted)
    client = Client(session, served.url, alice)
    one = {"X-Forwarded-For": "203.0.113.7"}
    for _ in range(2):
        assert (await client.raw("GET", "/health", headers=one))[0] == 200
    assert (await client.raw("GET", "/health", headers=one))[0] == 429
    # another client behind the same (trusted) proxy has its own budget
    other = {"X-Forwarded-For": "198.51.100.1, 203.0.113.9"}
    assert (await client.raw("GET", "/health", headers=other))[0] == 200
    # no proxy trusted: the header is the client's word, so it buys nothing
    served2, alice2 = await _served(tmp_path / "2", servers, RateLimits(overall=Budget(2)))
    direct = Client(session, served2.url, alice2)
    for spoof in ("10.0.0.1", "10.0.0.2"):
        assert (await direct.raw("GET", "/health", headers={"X-Forwarded-For": spoof}))[0] == 200
    status, _body, _r = await direct.raw("GET", "/health", headers={"X-Forwarded-For": "10.0.0.3"})
    assert status == 429


async def test_device_discovery_is_limited_per_address(
    tmp_path: Path, session: aiohttp.ClientSession, servers: list[Served]
) -> None:
    served, alice = await _served(tmp_path, servers, RateLimits(device=Budget(2)))
    client = Client(session, served.url, alice)
    body = {"signingPublicKey": client.signing_key}
    for _ in range(2):
        assert (await client.raw("POST", "/device/challenge", body))[0] == 200
    assert (await client.raw("POST", "/device/challenge", body))[0] == 429


async def test_a_mindood_client_over_its_budget_gets_a_typed_error_and_the_node_keeps_serving(
    tmp_path: Path, servers: list[Served]
) -> None:
    served, alice = await _served(tmp_path, servers, RateLimits(sync=Budget(3)))
    bob = await join(alice, "bob")
    db = await bob.open_db("todos")
    remote = await bob.connect_to_server(served.url, "todos")
    with pytest.raises(HttpCallError, match="Too many requests") as refused:
        for _ in range(10):
            await db.pull_changes_from(remote)
    # a request error: the sync driver retries the database later with backoff
    assert refused.value.kind is ErrorKind.RATE_LIMITED and refused.value.status == 429
    served.clock.offset += 61
    await db.pull_changes_from(remote)  # the next window serves it again


async def test_a_mindood_client_waits_out_a_short_retry_after_and_its_pull_completes(
    tmp_path: Path, servers: list[Served]
) -> None:
    """A budget of 2 calls a second: the pulls need more, so they meet 429s with
    ``Retry-After: 1``, pause for them (every store of that server at once) and finish."""
    served, alice = await _served(tmp_path, servers, RateLimits(sync=Budget(2, 1.0)))
    written = await alice.open_db("todos")
    ids = {(await written.create_document({"n": i})).get_id() for i in range(5)}
    bob = await join(alice, "bob")  # a new device: its directory comes from the server
    remote_dir = await bob.connect_to_server(served.url, "directory")
    assert (await bob.get_directory().db.pull_changes_from(remote_dir)).transferred > 0
    await bob.refresh_directory(full=True)
    db = await bob.open_db("todos")
    result = await db.pull_changes_from(await bob.connect_to_server(served.url, "todos"))
    assert result.transferred == len(ids) and result.rejected == ()
    assert set(await db.get_all_document_ids()) == ids
    assert remote_dir.client.rate_limited >= 1  # refused, and waited instead of failing


def test_retry_after_is_read_as_seconds_with_a_fallback() -> None:
    assert retry_after_seconds("3") == 3.0
    for junk in ("", "soon", "Wed, 21 Oct 2015 07:28:00 GMT", "-5", "1e9"):
        assert retry_after_seconds(junk) == RATE_LIMIT_FALLBACK_S


def test_windows_stay_bounded_under_many_clients() -> None:
    windows = FixedWindows(max_keys=100)
    budget = Budget(5)
    for i in range(1000):
        assert windows.spend(f"client-{i}", budget, now=float(i) / 100) is None
    assert len(windows) <= 100
    for _ in range(5):
        windows.spend("busy", budget, now=20.0)
    assert windows.spend("busy", budget, now=20.0) == 60
    assert windows.spend("busy", budget, now=80.0) is None  # its window ended


def test_budgets_are_checked() -> None:
    with pytest.raises(ValueError):
        Budget(-1)
    with pytest.raises(ValueError):
        Budget(1, 0)
    assert RateLimits().overall_budget() == Budget(3000 + 120 + 500)
    assert not Budget(0).enabled
