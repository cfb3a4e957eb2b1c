"""mDNS discovery (zeroconf): advertise ``_mindoodb._tcp`` and find other nodes on allowed links.

What a stranger on the LAN may learn is limited to "a MindooDB node listens at this address and
port". The TXT record carries a protocol version, a fresh random nonce per advertisement and,
per tenant the node serves, a masked node id plus a tag:

    masked = node_id XOR HMAC(key, "id" || nonce)[:16]
    tag    = HMAC(key, "tag" || nonce || masked)[:16]

``key`` is tenant key material every member holds (the node layer derives it; this module only
sees opaque bytes). A member recomputes the tag with its own key to recognise a fellow member and
unmasks the node id (to decide who dials and to avoid a second connection); a stranger sees
random bytes that change with every advertisement, and the instance name is random too.

Only the interfaces the operator named are used (addresses or interface names, IPv4); there is
no "all interfaces" default. TXT records from the network are size-checked and parsed without
raising: a malformed record is ignored, and no callback error reaches zeroconf's loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import ipaddress
import logging
import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import ifaddr
from zeroconf import IPVersion, ServiceStateChange
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from transports.tasks import Spawner, cancel_and_wait

log = logging.getLogger("mindood.transports.mdns")

SERVICE_TYPE = "_mindoodb._tcp.local."
TXT_VERSION = b"1"
NODE_ID_BYTES = 16
_NONCE_BYTES = 16
_TAG_BYTES = 16
MAX_TENANT_TAGS = 8
#: Bounds on what we accept from the network before looking inside.
MAX_TXT_BYTES = 1300
MAX_TXT_KEYS = 16
MAX_TXT_VALUE = 128
MAX_TRACKED_SERVICES = 256
_RESOLVE_MS = 3000


class DiscoveryError(Exception):
    """Discovery was configured with something that cannot work (e.g. an unknown interface)."""


# -- tags ---------------------------------------------------------------------------------------
def _mac(key: bytes, label: bytes, *parts: bytes) -> bytes:
    return hmac.new(key, label + b"".join(parts), hashlib.sha256).digest()


def seal_membership(key: bytes, nonce: bytes, node_id: bytes) -> bytes:
    """``masked || tag`` (32 bytes) for one tenant: only holders of ``key`` can read it."""
    if len(node_id) != NODE_ID_BYTES:
        raise ValueError("node id must be 16 bytes")
    pad = _mac(key, b"mindoodb-mdns-id", nonce)[:NODE_ID_BYTES]
    masked = bytes(a ^ b for a, b in zip(node_id, pad, strict=True))
    return masked + _mac(key, b"mindoodb-mdns-tag", nonce, masked)[:_TAG_BYTES]


def open_membership(key: bytes, nonce: bytes, sealed: bytes) -> bytes | None:
    """The node id inside ``sealed`` if it was made with ``key``, else None."""
    if len(sealed) != NODE_ID_BYTES + _TAG_BYTES:
        return None
    masked, tag = sealed[:NODE_ID_BYTES], sealed[NODE_ID_BYTES:]
    expected = _mac(key, b"mindoodb-mdns-tag", nonce, masked)[:_TAG_BYTES]
    if not hmac.compare_digest(tag, expected):
        return None
    pad = _mac(key, b"mindoodb-mdns-id", nonce)[:NODE_ID_BYTES]
    return bytes(a ^ b for a, b in zip(masked, pad, strict=True))


@dataclass(frozen=True, slots=True)
class Membership:
    """One tenant as discovery sees it: a label of the caller's choosing, the tag key, our id."""

    label: str
    key: bytes
    node_id: bytes


def build_txt(memberships: Sequence[Membership], nonce: bytes | None = None) -> dict[bytes, bytes]:
    nonce = nonce if nonce is not None else os.urandom(_NONCE_BYTES)
    txt = {b"v": TXT_VERSION, b"n": nonce.hex().encode()}
    for index, member in enumerate(memberships[:MAX_TENANT_TAGS]):
        txt[f"k{index}".encode()] = (
            seal_membership(member.key, nonce, member.node_id).hex().encode()
        )
    return txt


def parse_txt(properties: object) -> tuple[bytes, list[bytes]] | None:
    """``(nonce, [sealed, ...])`` from a peer's TXT properties, or None if it is not ours/valid."""
    if not isinstance(properties, dict) or len(properties) > MAX_TXT_KEYS:
        return None
    size = 0
    fields: dict[bytes, bytes] = {}
    for key, value in properties.items():
        if not isinstance(key, bytes) or not isinstance(value, bytes | None):
            return None
        value = value or b""
        size += len(key) + len(value) + 2
        if len(value) > MAX_TXT_VALUE or size > MAX_TXT_BYTES:
            return None
        fields[key] = value
    if fields.get(b"v") != TXT_VERSION:
        return None
    try:
        nonce = bytes.fromhex(fields[b"n"].decode("ascii"))
        sealed = [
            bytes.fromhex(fields[f"k{i}".encode()].decode("ascii"))
            for i in range(MAX_TENANT_TAGS)
            if f"k{i}".encode() in fields
        ]
    except (KeyError, ValueError, UnicodeDecodeError):
        return None
    if len(nonce) != _NONCE_BYTES:
        return None
    return nonce, [s for s in sealed if len(s) == NODE_ID_BYTES + _TAG_BYTES]


# -- interfaces ---------------------------------------------------------------------------------
def resolve_interfaces(names_or_addresses: Sequence[str]) -> list[str]:
    """IPv4 addresses for the configured interfaces (names like ``eth0`` or addresses)."""
    adapters = {adapter.nice_name: adapter for adapter in ifaddr.get_adapters()}
    out: list[str] = []
    for item in names_or_addresses:
        try:
            out.append(str(ipaddress.IPv4Address(item)))
            continue
        except ValueError:
            pass
        adapter = adapters.get(item)
        if adapter is None:
            raise DiscoveryError(f"no such network interface: {item!r}")
        found = [ip.ip for ip in adapter.ips if isinstance(ip.ip, str)]
        if not found:
            raise DiscoveryError(f"interface {item!r} has no IPv4 address")
        out.extend(found)
    return list(dict.fromkeys(out))


# -- the service --------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Found:
    """A MindooDB node seen on the network; ``members`` maps our labels to its node ids."""

    name: str
    addresses: tuple[str, ...]
    port: int
    members: dict[str, bytes]


FoundListener = Callable[[Found], None]
LostListener = Callable[[str], None]


class Mdns:
    """``async with Mdns(addresses)``: one zeroconf instance on exactly those IPv4 addresses."""

    def __init__(self, addresses: Sequence[str]) -> None:
        if not addresses:
            raise DiscoveryError("mDNS needs at least one allowed interface")
        self.addresses = list(addresses)
        self._zc: AsyncZeroconf | None = None

    @property
    def zeroconf(self) -> AsyncZeroconf:
        if self._zc is None:
            raise RuntimeError("Mdns is not started")
        return self._zc

    async def __aenter__(self) -> Mdns:
        self._zc = AsyncZeroconf(interfaces=self.addresses, ip_version=IPVersion.V4Only)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._zc is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5):
                    await self._zc.async_close()
            self._zc = None


class Advertiser:
    """``async with Advertiser(mdns, port, memberships)``: our service, withdrawn on exit.

    Each registration gets a random instance name and nonce; ``update`` re-advertises (new
    nonce) when the tenants change.
    """

    def __init__(self, mdns: Mdns, port: int, memberships: Sequence[Membership]) -> None:
        self._mdns = mdns
        self._port = port
        self._memberships = list(memberships)
        self.name = f"mindoodb-{os.urandom(6).hex()}.{SERVICE_TYPE}"
        #: One host name for the advertisement's life: zeroconf keys address answers by it.
        self._host = f"mindoodb-{os.urandom(6).hex()}.local."
        self._info: AsyncServiceInfo | None = None

    def _service_info(self) -> AsyncServiceInfo:
        return AsyncServiceInfo(
            SERVICE_TYPE,
            self.name,
            port=self._port,
            properties=build_txt(self._memberships),
            server=self._host,
            addresses=[socket.inet_aton(a) for a in self._mdns.addresses],
        )

    async def __aenter__(self) -> Advertiser:
        self._info = self._service_info()
        await (await self._mdns.zeroconf.async_register_service(self._info))
        return self

    async def update(self, memberships: Sequence[Membership]) -> None:
        self._memberships = list(memberships)
        if self._info is None:
            return
        fresh = self._service_info()
        self._info = fresh
        await (await self._mdns.zeroconf.async_update_service(fresh))

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._info is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(3):
                    await (await self._mdns.zeroconf.async_unregister_service(self._info))
            self._info = None


class Browser:
    """``async with Browser(mdns, memberships, on_found, on_lost)``: watch for other nodes.

    ``on_found`` gets every resolved node (members may be empty: a node of another tenant);
    ``on_lost`` the name of a service that said goodbye or expired. Our own names are skipped.
    Each name is resolved in a task started through ``spawn``: the owner's (a node's task
    group), so no resolve outlives it and none fails unseen.
    """

    def __init__(
        self,
        mdns: Mdns,
        memberships: Callable[[], Sequence[Membership]],
        on_found: FoundListener,
        on_lost: LostListener,
        *,
        spawn: Spawner,
        ignore: Callable[[str], bool] = lambda _name: False,
    ) -> None:
        self._spawn = spawn
        self._mdns = mdns
        self._memberships = memberships
        self._on_found = on_found
        self._on_lost = on_lost
        self._ignore = ignore
        self._browser: AsyncServiceBrowser | None = None
        self._resolving: set[asyncio.Task[Any]] = set()
        self._known: set[str] = set()

    async def __aenter__(self) -> Browser:
        self._browser = AsyncServiceBrowser(
            self._mdns.zeroconf.zeroconf, SERVICE_TYPE, handlers=[self._on_change]
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await cancel_and_wait(self._resolving)
        if self._browser is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(3):
                    await self._browser.async_cancel()
            self._browser = None

    def rescan(self) -> None:
        """Resolve every known service again: our memberships changed (a tenant was unlocked),
        so a node that looked foreign may now be a member, and the reverse."""
        for name in list(self._known):
            self._spawn_resolve(name)

    def _spawn_resolve(self, name: str) -> None:
        task = self._spawn(self._resolve(name), "mdns-resolve")
        self._resolving.add(task)
        task.add_done_callback(self._resolving.discard)

    def _on_change(self, **kwargs: Any) -> None:
        """zeroconf's handler: must not raise, must not block."""
        try:
            name = kwargs.get("name")
            change = kwargs.get("state_change")
            if not isinstance(name, str) or len(name) > 255 or self._ignore(name):
                return
            if change is ServiceStateChange.Removed:
                self._known.discard(name)
                self._call(self._on_lost, name)
            elif change in (ServiceStateChange.Added, ServiceStateChange.Updated):
                if name not in self._known and len(self._known) >= MAX_TRACKED_SERVICES:
                    return
                self._known.add(name)
                self._spawn_resolve(name)
        except Exception:
            log.exception("mDNS browse handler failed")

    async def _resolve(self, name: str) -> None:
        try:
            info = AsyncServiceInfo(SERVICE_TYPE, name)
            if not await info.async_request(self._mdns.zeroconf.zeroconf, _RESOLVE_MS):
                return
            parsed = parse_txt(info.properties)
            if parsed is None or not info.port:
                log.debug("ignoring a service with a foreign or malformed record: %s", name)
                return
            nonce, sealed = parsed
            members: dict[str, bytes] = {}
            for member in self._memberships():
                for blob in sealed:
                    node_id = open_membership(member.key, nonce, blob)
                    if node_id is not None:
                        members[member.label] = node_id
                        break
            addresses = tuple(info.parsed_addresses(IPVersion.V4Only))[:8]
            self._call(self._on_found, Found(name, addresses, int(info.port), members))
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("resolving an mDNS service failed")

    @staticmethod
    def _call(listener: Callable[[Any], None], arg: object) -> None:
        try:
            listener(arg)
        except Exception:
            log.exception("discovery listener failed")
