"""WebRTC between two members, signaled through a peer both are connected to.

The offer and answer ride ``SyncNode.send_signal``: directly when the two are already in session,
otherwise through any connected peer of the tenant (a relay, or any shared member) acting as
rendezvous over its authenticated sessions. Once the data channel is open it is handed to
``SyncNode.attach``: the dialer runs the client side of a normal sync session, the answerer
serves; the session's handshake authenticates both ends against the directory, bound to the
DTLS fingerprints, so the rendezvous can neither read nor impersonate.

Signal envelope (msgpack): ``[1, kind, session id (16 bytes), payload]`` with kind ``offer``,
``answer``, ``fail`` or ``probe`` (a probe carries nothing: that the rendezvous took it tells
the sender the target is reachable, before it spends an ICE gathering on an offer).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

import msgpack

from mindood.crypto.pem import normalize_pem
from mindood.sync.connection import PeerConnection
from mindood.sync.node import SyncNode
from protocol.interfaces import PeerRefused
from transports.tasks import cancel_and_wait
from transports.webrtc import IceServer, WebRtcOptions, answer, offer, restrict_host_addresses

log = logging.getLogger("mindood.sync.webrtc")

_VERSION = 1
#: ``offer-relay``: a retry with relayed (TURN) candidates only, after a normal offer failed.
_KINDS = frozenset({"offer", "offer-relay", "answer", "fail", "probe"})
_SID_BYTES = 16


@dataclass(frozen=True, slots=True)
class WebRtcConfig:
    """``[webrtc]``: whether and how this node opens WebRTC data channels to other members."""

    enabled: bool = False
    ice_servers: tuple[IceServer, ...] = ()
    #: Relay (TURN) candidates only.
    relay_only: bool = False
    #: ICE host candidates only on these addresses (None: all interfaces, aioice's default).
    host_addresses: tuple[str, ...] | None = None
    connect_timeout: float = 30.0
    #: Answer offers from other members (signaled through any connected peer).
    accept: bool = True
    #: Reach every directory member that a connected peer can relay to (lower node id dials).
    auto_connect: bool = False
    auto_interval: float = 10.0
    #: Offers being answered at once; more are refused.
    max_pending: int = 8

    def options(self, *, relay_only: bool | None = None) -> WebRtcOptions:
        return WebRtcOptions(
            ice_servers=self.ice_servers,
            relay_only=self.relay_only if relay_only is None else relay_only,
            connect_timeout=self.connect_timeout,
        )

    @property
    def has_turn(self) -> bool:
        return any(url.startswith(("turn:", "turns:")) for s in self.ice_servers for url in s.urls)


def encode_signal(kind: str, sid: bytes, payload: bytes = b"") -> bytes:
    packed: bytes = msgpack.packb([_VERSION, kind, sid, payload], use_bin_type=True)
    return packed


def decode_signal(data: bytes) -> tuple[str, bytes, bytes] | None:
    """``(kind, sid, payload)``, or None for anything that is not a well-formed envelope."""
    try:
        value: Any = msgpack.unpackb(data, raw=False, max_bin_len=64 * 1024, max_str_len=64)
    except Exception:
        return None
    if not isinstance(value, list) or len(value) != 4 or value[0] != _VERSION:
        return None
    _, kind, sid, payload = value
    if kind not in _KINDS or not isinstance(sid, bytes) or len(sid) != _SID_BYTES:
        return None
    if not isinstance(payload, bytes):
        return None
    return kind, sid, payload


class SignalUnreachable(ConnectionError):
    """No connected peer could pass our signal to the target."""


class WebRtcDialer:
    """Dials members over WebRTC and answers their offers, for one ``SyncNode``."""

    def __init__(self, node: SyncNode, config: WebRtcConfig) -> None:
        self._node = node
        self._config = config
        self._waiting: dict[bytes, tuple[str, asyncio.Queue[bytes]]] = {}
        self._answering: set[asyncio.Task[None]] = set()
        self._unsubscribe: Any = None

    def start(self) -> None:
        if self._config.host_addresses is not None:
            restrict_host_addresses(self._config.host_addresses)
        if self._unsubscribe is None:
            self._unsubscribe = self._node.on_signal(self._on_signal)

    async def aclose(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        await cancel_and_wait(self._answering)

    # -- dialing -----------------------------------------------------------------------------
    async def probe(self, tenant_id: str, identity: str) -> bool:
        """Can some connected peer (or the target itself) take a signal for ``identity``?"""
        envelope = encode_signal("probe", os.urandom(_SID_BYTES))
        return await self._node.send_signal(tenant_id, identity, envelope)

    async def dial(self, tenant_id: str, identity: str) -> PeerConnection:
        """Open a data channel to ``identity`` and run a client session over it.

        With a TURN server configured, a failed attempt is retried once with relayed candidates
        only: aioice cannot always fall back to the relay pair within one mixed candidate set
        (ChannelBind fails after a nonce retry against coturn), but a relay-only pair works.
        """
        try:
            return await self._dial_once(tenant_id, identity, relay=self._config.relay_only)
        except (ConnectionError, TimeoutError) as exc:
            if self._config.relay_only or not self._config.has_turn:
                raise
            log.info("WebRTC failed; retrying over TURN only", extra={"reason": str(exc)})
            return await self._dial_once(tenant_id, identity, relay=True)

    async def _dial_once(self, tenant_id: str, identity: str, *, relay: bool) -> PeerConnection:
        sid = os.urandom(_SID_BYTES)
        inbox: asyncio.Queue[bytes] = asyncio.Queue(maxsize=4)
        self._waiting[sid] = (normalize_pem(identity), inbox)

        kind = "offer-relay" if relay and not self._config.relay_only else "offer"

        async def signal(payload: bytes) -> None:
            envelope = encode_signal(kind, sid, payload)
            if not await self._node.send_signal(tenant_id, identity, envelope):
                raise SignalUnreachable("no connected peer can reach the target")

        try:
            channel = await offer(signal, inbox, self._config.options(relay_only=relay))
        finally:
            self._waiting.pop(sid, None)
        log.info("webrtc channel open", extra={"peer": channel.peer_address})
        try:
            return await self._node.attach(channel, tenant_id)
        except BaseException:
            await channel.aclose()
            raise

    # -- answering ---------------------------------------------------------------------------
    def _on_signal(self, tenant_id: str, sender: str, data: bytes) -> None:
        envelope = decode_signal(data)
        if envelope is None:
            log.debug("ignoring a malformed signal")
            return
        kind, sid, payload = envelope
        if kind in ("answer", "fail"):
            waiting = self._waiting.get(sid)
            if waiting is None or waiting[0] != normalize_pem(sender):
                return
            if kind == "fail":
                payload = b'{"type":"fail"}'
            with contextlib.suppress(asyncio.QueueFull):
                waiting[1].put_nowait(payload)
        elif kind in ("offer", "offer-relay"):
            relay = kind == "offer-relay" or self._config.relay_only
            busy = len(self._answering) >= self._config.max_pending
            if not self._config.accept or busy or (relay and not self._config.has_turn):
                self._spawn(self._refuse(tenant_id, sender, sid))
                return
            self._spawn(self._answer(tenant_id, sender, sid, payload, relay=relay))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task: asyncio.Task[None] = self._node.spawn(coro, name="webrtc-answer")
        self._answering.add(task)
        task.add_done_callback(self._answering.discard)

    async def _refuse(self, tenant_id: str, sender: str, sid: bytes) -> None:
        with contextlib.suppress(Exception):
            await self._node.send_signal(tenant_id, sender, encode_signal("fail", sid))

    def _is_member(self, tenant_id: str, sender: str) -> bool:
        for context in self._node.tenant_contexts():
            if context.tenant_id == tenant_id:
                try:
                    context.check_peer(sender, "", dialed=False)
                except PeerRefused:
                    return False
                return True
        return False

    async def _answer(
        self, tenant_id: str, sender: str, sid: bytes, offer_payload: bytes, *, relay: bool
    ) -> None:
        if not self._is_member(tenant_id, sender):
            log.info("refusing a WebRTC offer from a key the directory does not grant")
            await self._refuse(tenant_id, sender, sid)
            return

        async def signal(payload: bytes) -> None:
            envelope = encode_signal("answer", sid, payload)
            if not await self._node.send_signal(tenant_id, sender, envelope):
                raise SignalUnreachable("the offerer is no longer reachable")

        try:
            channel = await answer(offer_payload, signal, self._config.options(relay_only=relay))
        except (ValueError, ConnectionError, TimeoutError) as exc:
            log.info("answering a WebRTC offer failed: %s", exc)
            await self._refuse(tenant_id, sender, sid)
            return
        log.info("webrtc channel accepted", extra={"peer": channel.peer_address})
        try:
            await self._node.attach(channel)
        except (ConnectionRefusedError, ConnectionError, TimeoutError) as exc:
            log.info("session over WebRTC refused: %s", exc)
            await channel.aclose()
