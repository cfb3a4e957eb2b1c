"""Best-effort reach into aiortc's and aioice's private state, kept in one place.

aiortc exposes no knob for the ICE sockets' kernel buffers and no public counter of the bytes its
DTLS transport puts on the wire. Both matter: aiortc's SCTP sender ignores the receiver's window
and grows its congestion window until a datagram is lost, so on a fast path (loopback, a LAN) the
receiving socket's buffer is what overflows; every lost datagram then costs a fast retransmit or a
retransmission timeout of at least a second, and throughput collapses. Every function here
tolerates the attributes being absent (another aiortc version): the channel then works as before,
only untuned or uncounted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aiortc import RTCPeerConnection

log = logging.getLogger("mindood.transports.webrtc")


@dataclass(frozen=True, slots=True)
class WireCounters:
    """What the DTLS transport put on and took off its UDP socket.

    Bytes are UDP payloads: DTLS records carrying SCTP DATA chunks, SACKs, the DTLS handshake and
    DCEP; the 8-byte UDP and 20-byte IPv4 (40-byte IPv6) headers of each datagram come on top.
    ICE connectivity checks (STUN) are not DTLS and are not counted.
    """

    bytes_sent: int
    bytes_received: int
    packets_sent: int
    packets_received: int

    @property
    def bytes(self) -> int:
        return self.bytes_sent + self.bytes_received

    @property
    def packets(self) -> int:
        return self.packets_sent + self.packets_received


def _ice_connection(pc: RTCPeerConnection) -> Any:
    sctp = pc.sctp
    if sctp is None:
        return None
    return sctp.transport.transport._connection


def ice_sockets(pc: RTCPeerConnection) -> list[Any]:
    """The UDP sockets aioice gathered candidates on (empty before ``setLocalDescription``)."""
    try:
        protocols = _ice_connection(pc)._protocols
    except AttributeError:
        return []
    found = []
    for protocol in protocols:
        transport = getattr(protocol, "transport", None)
        sock = transport.get_extra_info("socket") if transport is not None else None
        if sock is not None:
            found.append(sock)
    return found


def enlarge_socket_buffers(pc: RTCPeerConnection, size: int) -> int | None:
    """Ask the kernel for ``size`` bytes of receive and send buffer on every ICE socket.

    Linux caps the request at ``net.core.rmem_max`` / ``wmem_max`` (and then doubles it for its
    own bookkeeping). Returns the smallest receive buffer granted, or None without a socket.
    """
    granted: int | None = None
    for sock in ice_sockets(pc):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)
            value = int(sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))
            granted = value if granted is None else min(granted, value)
    if granted is not None and granted < size:
        log.debug("ICE socket receive buffer capped at %d bytes (asked %d)", granted, size)
    return granted


def wire_counters(pc: RTCPeerConnection) -> WireCounters | None:
    """The DTLS transport's datagram and byte counters; None where aiortc does not keep them."""
    try:
        sctp = pc.sctp
        if sctp is None:
            return None
        report = sctp.transport._get_stats()
        [stats] = [s for s in report.values() if getattr(s, "type", None) == "transport"]
        return WireCounters(
            bytes_sent=int(stats.bytesSent),
            bytes_received=int(stats.bytesReceived),
            packets_sent=int(stats.packetsSent),
            packets_received=int(stats.packetsReceived),
        )
    except (AttributeError, ValueError, TypeError):
        return None


class DelayedSack:
    """Acknowledge every second DATA packet instead of every one (RFC 9260 section 6.2).

    aiortc answers each received packet with a SACK datagram of its own: on a bulk transfer that
    is one ~66-byte datagram per ~1.2 KB one, about 5 % of the bytes and half of all datagrams
    (each one a DTLS record to seal, a system call, and on the sender a SACK to parse). As the
    RFC asks, a gap or a duplicate is still acknowledged at once, and an odd packet after at most
    ``delay`` seconds. Installed on one association by replacing its ``_send_sack``.
    """

    def __init__(self, sctp: Any, delay: float) -> None:
        self._sctp = sctp
        self._send_sack = sctp._send_sack
        self._delay = delay
        self._owed = 0
        self._last_tsn = sctp._last_received_tsn
        self._timer: asyncio.TimerHandle | None = None
        self._late_due = asyncio.Event()
        # The one task that sends late acknowledgements (a timer callback cannot await);
        # ``aclose`` ends it with the channel.
        self._worker = asyncio.get_running_loop().create_task(
            self._send_late_sacks(), name="webrtc-delayed-sack"
        )
        sctp._send_sack = self._sack_needed

    @classmethod
    def install(cls, pc: RTCPeerConnection, delay: float) -> DelayedSack | None:
        sctp = pc.sctp
        needed = ("_send_sack", "_last_received_tsn", "_sack_misordered", "_sack_duplicates")
        if sctp is None or not all(hasattr(sctp, name) for name in needed):
            return None
        return cls(sctp, delay)

    async def _sack_needed(self) -> None:
        """aiortc's call after each received packet that carried DATA (or a duplicate)."""
        sctp = self._sctp
        if sctp._sack_misordered or sctp._sack_duplicates:
            await self._send_now()
            return
        if sctp._last_received_tsn != self._last_tsn:  # a new DATA packet, not a resend of ours
            self._last_tsn = sctp._last_received_tsn
            self._owed += 1
        if self._owed >= 2:
            await self._send_now()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._delay, self._expired)

    async def _send_now(self) -> None:
        self._cancel_timer()
        self._owed = 0
        await self._send_sack()

    def _expired(self) -> None:
        self._timer = None
        if self._sctp._sack_needed:
            self._late_due.set()

    async def _send_late_sacks(self) -> None:
        while True:
            await self._late_due.wait()
            self._late_due.clear()
            if not self._sctp._sack_needed:
                continue  # acknowledged meanwhile with the next packet
            try:
                await self._send_now()
            except Exception as exc:  # the association ended meanwhile: nothing left to ack
                log.debug("late SACK not sent", extra={"error": repr(exc)})

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    async def aclose(self) -> None:
        self._cancel_timer()
        self._sctp._send_sack = self._send_sack
        self._worker.cancel()
        await asyncio.wait([self._worker])  # a cancel of our caller still propagates
