"""A tenant's sync with a reference HTTP sync server (``[[peers]] address = "https://..."``).

The same pull/follow driver as a native peer (``protocol.driver.PullDriver``), reached through
``protocol.http.remote.HttpPeer``: it pulls every database of the tenant (the directory first)
through the database's own admission, pushes what the server lacks (a server never pulls),
and follows the server's SSE change feed so a change there is pulled at once, not polled for.
Local changes reach it as they reach native peers: the node's announcer calls ``announce``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from mindood.sync.link import LinkModel, PeerStatus, TenantSync
from mindood.sync.members import node_id_hex
from mindood.sync.traffic import LinkTraffic
from mindood.tenant import Tenant
from mindood.tenant.remote import open_client
from protocol.driver import PullDriver, RetryPolicy, SyncStats
from protocol.http.remote import HttpPeer, HttpSyncClient
from protocol.interfaces import PeerInfo
from protocol.store_ops import StoreKind
from store.base import ContentAddressedStore
from store.limits import MAX_ENTRY_BYTES
from transports.http_client import HttpOrigin

log = logging.getLogger("mindood.sync.http")

TRANSPORT = "http"


def http_client(tenant: Tenant, url: str) -> tuple[HttpOrigin, HttpSyncClient]:
    """A client of the server at ``url`` for ``tenant`` (``ValueError`` for a bad URL)."""
    return open_client(tenant.tenant_id, tenant.user, url)


class HttpLink(LinkModel):
    """Sync of one tenant with one HTTP server: the node's side of the driver's seam."""

    def __init__(
        self,
        tenant: TenantSync,
        client: HttpSyncClient,
        *,
        retry: RetryPolicy | None = None,
        max_entry_bytes: int = MAX_ENTRY_BYTES,
        is_upstream: bool = False,
    ) -> None:
        self.context = tenant.context
        self._tenant = tenant
        self.client = client
        self.address = client.url
        self.direction = "out"
        self.connected_at = time.time()
        self.traffic = LinkTraffic()
        #: The node's upstream (edge cache): what it pulls goes to the local stores only.
        self.is_upstream = is_upstream
        self.max_entry_bytes = max_entry_bytes
        self._cursor_key = f"http:{self.address}"
        self._node_id = node_id_hex(self.address)
        self.peer_session = HttpPeer(client)
        self._retry = retry or RetryPolicy()
        peer = PeerInfo(self.address, "", "http server")
        self.driver = PullDriver(self.peer_session, self, peer, self.address, retry=retry)

    # -- LinkModel ---------------------------------------------------------------------------
    @property
    def peer_identity(self) -> str:
        return self.address

    @property
    def stats(self) -> SyncStats:
        return self.driver.stats

    @property
    def node_id(self) -> str:
        return self._node_id

    # -- ServeModel: a server never asks us for anything --------------------------------------
    def served_databases(self) -> list[str]:
        return []

    async def served_store(self, db: str, kind: StoreKind) -> ContentAddressedStore | None:
        return None

    def subscribed(self, db: str, kind: StoreKind) -> None:
        return None

    def damaged(self, db: str) -> None:
        self._tenant.heal(db)

    def served(self, db: str, entries: int, size: int) -> None:
        if self.traffic.sent(db, entries, size):
            self._report(db)

    def recheck(self, peer: PeerInfo) -> PeerInfo:
        return peer  # the server is not a member: what it sends is checked entry by entry

    # -- driven by the node ------------------------------------------------------------------
    async def run(self) -> None:
        """Pull, push and follow until cancelled."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self.driver.run(), name=f"http-sync:{self.address}")
            group.create_task(
                self.peer_session.follow_changes(
                    self.driver.notified, self.driver.trust_changed, retry_delay=self._retry.delay
                ),
                name=f"http-events:{self.address}",
            )

    async def pull_database(self, name: str) -> None:
        await self.driver.pull(name)

    async def pull_all(self) -> None:
        await self.driver.pull_all()

    async def recheck_peer(self) -> bool:
        return True

    async def announce(self, db: str) -> None:
        if not self._tenant.follows(db):
            return
        local = await self.local_db(db)
        await self.driver.announce(db, await local.get_store().get_store_head())

    @property
    def state(self) -> str:
        if self.stats.errors:
            return "failing"
        if not self.stats.synced_once.is_set() or self.traffic.syncing():
            return "syncing"
        return "up-to-date"

    def status(self) -> PeerStatus:
        stats = self.stats
        return PeerStatus(
            address=self.address,
            tenant_id=self.context.tenant_id,
            identity=self.address,
            transport=TRANSPORT,
            direction=self.direction,
            connected=not self.peer_session.is_closed,
            synced=stats.synced_once.is_set(),
            transferred=stats.transferred,
            rejected=stats.rejected,
            bytes_sent=getattr(self.client.fetcher, "bytes_sent", 0),
            bytes_received=getattr(self.client.fetcher, "bytes_received", 0),
            deferred=stats.deferred,
            unavailable=stats.unavailable,
            errors=tuple(sorted(stats.errors.items())),
            node_id=self.node_id,
            user=None,
            device="http server",
            state=self.state,
            connected_at=self.connected_at,
            databases=self.traffic.snapshot(self.databases(), stats.errors),
        )


async def run_http_link(
    link: HttpLink,
    fetcher: HttpOrigin,
    *,
    on_start: Callable[[HttpLink], None],
    on_end: Callable[[HttpLink, str], None],
    restart_delay: Callable[[int], float],
) -> None:
    """Run ``link`` until cancelled; a bug in it is logged and the link restarted after a
    delay, so one server costs its own sync, never the node."""
    failures = 0
    try:
        while True:
            on_start(link)
            reason = "stopped"
            try:
                await link.run()
                reason = "ended"
            except Exception as exc:
                log.exception("sync with an HTTP server failed", extra={"server": link.address})
                reason = f"failed: {exc}"
            finally:
                on_end(link, reason)
            failures += 1
            await asyncio.sleep(restart_delay(failures))
    finally:
        await fetcher.aclose()
