"""A tenant's connections to MindooDB HTTP sync servers (``tenant.connect_to_server``).

One ``HttpSyncClient`` per server URL: every store of that server (each database, docs and
attachments) shares its token, as the reference client shares authentication across the stores
of one server and user. The client authenticates with the user's device signing key and opens
what the server wraps for it with the device's RSA key; nothing here decides whether an entry
is admitted (the database that pulls does).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass

from mindood.errors import CryptoError
from mindood.identity import UnlockedUserId
from mindood.storefactory import check_component
from protocol.http.remote import HttpRemoteStore, HttpSyncClient
from protocol.store_ops import StoreKind
from transports.http_client import HttpOrigin, split_origin


@dataclass(frozen=True, slots=True)
class DeviceCredentials:
    """``protocol.http.remote.HttpCredentials`` with a user's device keys.

    Authenticates by signing key alone (no user name is sent): the server finds the grant by
    key, which also works for a relay's or edge cache's node identity.
    """

    user: UnlockedUserId

    @property
    def identity(self) -> str:
        return self.user.private.signing_public_key

    @property
    def username(self) -> str | None:
        return None

    def sign(self, data: bytes) -> bytes:
        return self.user.sign(data)

    def unwrap(self, wrapped: bytes) -> bytes:
        try:
            return self.user.unwrap_key(wrapped)
        except CryptoError as exc:
            raise ValueError(str(exc)) from exc


def server_url(url: str) -> str:
    """A server URL as connections are keyed and shown: origin and path, no trailing slash."""
    origin, base = split_origin(url)
    return origin + base


def open_client(
    tenant_id: str, user: UnlockedUserId, url: str, *, ssl_context: ssl.SSLContext | None = None
) -> tuple[HttpOrigin, HttpSyncClient]:
    """A client of the server at ``url`` (``ValueError`` unless it is an http(s) URL)."""
    origin, base = split_origin(url)
    fetcher = HttpOrigin(origin, ssl_context=ssl_context)
    return fetcher, HttpSyncClient(fetcher, tenant_id, DeviceCredentials(user), base_path=base)


class ServerConnections:
    """The HTTP clients of one tenant, one per server URL, closed with the tenant."""

    def __init__(self, tenant_id: str, user: UnlockedUserId) -> None:
        self._tenant_id = tenant_id
        self._user = user
        self._clients: dict[str, tuple[HttpOrigin, HttpSyncClient]] = {}

    def client(self, url: str, *, ssl_context: ssl.SSLContext | None = None) -> HttpSyncClient:
        key = server_url(url)
        if key not in self._clients:
            self._clients[key] = open_client(
                self._tenant_id, self._user, key, ssl_context=ssl_context
            )
        return self._clients[key][1]

    def store(
        self,
        url: str,
        db: str,
        kind: StoreKind | str = StoreKind.DOCS,
        *,
        ssl_context: ssl.SSLContext | None = None,
    ) -> HttpRemoteStore:
        check_component(db, "database name")
        return self.client(url, ssl_context=ssl_context).store(db, StoreKind(kind))

    async def aclose(self) -> None:
        clients, self._clients = self._clients, {}
        for fetcher, _client in clients.values():
            await fetcher.aclose()
