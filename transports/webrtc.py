"""WebRTC data channels (aiortc): a ``Channel`` over one ordered, reliable ``RTCDataChannel``.

The offer and answer travel as opaque bytes through whatever the caller supplies (the sync layer
carries them over an authenticated session with a shared peer); this module knows nothing of who
relays them. Authentication is not ours either: ``binding`` is SHA-256 over both ends' DTLS
certificate fingerprints in a canonical order, and the sync handshake signs it. aiortc checks the
peer's DTLS certificate against the fingerprint in the description it was given, so a rendezvous
that swapped fingerprints would leave the two ends signing different bindings.

Data channel messages are limited by the peer's ``a=max-message-size``; protocol frames may be
larger, so each frame is cut into messages whose first byte says whether more follow, and put
back together up to ``max_frame`` (``pre_auth_frame`` until ``admit()``: the peer on the other
end is a stranger until the sync handshake authenticated it). aiortc's ``send`` never blocks:
we stop while ``bufferedAmount`` is above a high-water mark and resume on ``bufferedamountlow``.

What made bulk transfers slow was aiortc's defaults, not the bytes we add (one per message):
its SCTP sender is paced by loss alone and overflowed aioice's 256 KiB socket buffers on
loopback (each lost datagram a retransmission, or a stall of a second or more), it sent one SACK
datagram per DATA packet, and its reassembly costs grow with the square of a message's
fragments. ``webrtc_internals`` enlarges the buffers and acknowledges every second packet;
messages stay at 64 KiB. ``wire_counters()`` gives the UDP payload bytes actually sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from transports.channel import PRE_AUTH_MAX_FRAME, ChannelClosed, FrameTooLarge
from transports.framing import DEFAULT_MAX_FRAME
from transports.webrtc_internals import (
    DelayedSack,
    WireCounters,
    enlarge_socket_buffers,
    wire_counters,
)

if TYPE_CHECKING:
    from aiortc import RTCConfiguration, RTCDataChannel, RTCPeerConnection

# aiortc and aioice load on first use: they cost a third of a second at start, and a node
# without WebRTC configured never needs them.

log = logging.getLogger("mindood.transports.webrtc")

LABEL = "mindoodb"
#: An offer or answer carrying a few dozen candidates stays far below this.
MAX_DESCRIPTION_BYTES = 48 * 1024
#: RFC 8841: without ``a=max-message-size`` the peer accepts 64 KiB.
_DEFAULT_REMOTE_MAX = 65536
#: Our own cap on one message (aiortc announces 256 KiB).
_MESSAGE_CAP = 262144
_MORE, _LAST = b"\x00", b"\x01"
_BINDING_LABEL = b"mindoodb-webrtc-binding-v1"

SignalFn = Callable[[bytes], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class IceServer:
    """A STUN or TURN server (``stun:host:port``, ``turn:host:port?transport=udp``)."""

    urls: tuple[str, ...]
    username: str | None = None
    credential: str | None = None


@dataclass(frozen=True, slots=True)
class WebRtcOptions:
    """How data channels are set up and paced; the defaults suit a LAN with no ICE servers."""

    ice_servers: tuple[IceServer, ...] = ()
    #: Only relayed (TURN) candidates: for networks where direct traversal must not be tried.
    relay_only: bool = False
    connect_timeout: float = 30.0
    max_frame: int = DEFAULT_MAX_FRAME
    #: ``send`` waits while more than this is queued in aiortc ...
    high_water: int = 1024 * 1024
    #: ... until it drained to this (the ``bufferedAmountLowThreshold``).
    low_water: int = 256 * 1024
    #: Received but unread bytes above this close the channel (a peer that floods us).
    max_inbox_bytes: int = 256 * 1024 * 1024
    #: Until ``admit()``: the largest frame, and the most received but unread bytes.
    pre_auth_frame: int = PRE_AUTH_MAX_FRAME
    pre_auth_inbox_bytes: int = 1024 * 1024
    #: Kernel receive/send buffer asked for each ICE socket (Linux caps it at rmem_max/wmem_max).
    #: aiortc's sender is paced by loss alone, so a burst the receiver has not read yet must fit
    #: here: aioice's own 256 KiB drops datagrams on loopback whenever the reader is descheduled.
    socket_buffer: int = 4 * 1024 * 1024
    #: Acknowledge every second SCTP packet (RFC 9260 6.2) instead of aiortc's every one; an odd
    #: packet is acknowledged after ``sack_delay`` seconds, a gap or duplicate at once.
    delayed_sack: bool = True
    sack_delay: float = 0.02
    #: The largest message we send (the peer's ``max-message-size`` permitting). Not the largest
    #: possible: aiortc reassembles a message by rescanning all its fragments for each fragment
    #: that arrives, so the receiver's cost grows with the square of the fragments per message;
    #: 64 KiB (57 SCTP chunks, RFC 8841's default) measured cheaper than 128 or 256 KiB.
    message_size: int = 65536

    def configuration(self) -> RTCConfiguration:
        from aiortc import RTCConfiguration, RTCIceServer
        from aiortc.rtcconfiguration import RTCIceTransportPolicy

        servers = [
            RTCIceServer(urls=list(s.urls), username=s.username, credential=s.credential)
            for s in self.ice_servers
        ]
        policy = RTCIceTransportPolicy.RELAY if self.relay_only else RTCIceTransportPolicy.ALL
        return RTCConfiguration(iceServers=servers, iceTransportPolicy=policy)


#: aioice's own gathering, kept on the first restriction so that None can put it back.
_original_host_addresses: Any = None


def restrict_host_addresses(addresses: Sequence[str] | None) -> None:
    """Gather ICE host candidates only on ``addresses`` (None: every interface, aioice's default).

    aioice offers every address of every interface and skips 127.0.0.1; an operator who allows
    only some networks (or a loopback test) names them here. This is process-wide, as aioice's
    gathering is.
    """
    global _original_host_addresses
    import aioice.ice

    if _original_host_addresses is None:
        _original_host_addresses = aioice.ice.get_host_addresses
    if addresses is None:
        aioice.ice.get_host_addresses = _original_host_addresses
        return
    allowed = list(dict.fromkeys(addresses))

    def only_allowed(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [a for a in allowed if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]

    aioice.ice.get_host_addresses = only_allowed


# -- descriptions ------------------------------------------------------------------------------
def encode_description(kind: str, sdp: str) -> bytes:
    return json.dumps({"type": kind, "sdp": sdp}, separators=(",", ":")).encode()


def decode_description(payload: bytes, expected: str) -> str:
    """The SDP of an ``offer``/``answer`` payload; ``ValueError`` for anything else."""
    if len(payload) > MAX_DESCRIPTION_BYTES:
        raise ValueError("session description too large")
    try:
        data = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError("session description is not JSON") from exc
    if not isinstance(data, dict) or data.get("type") != expected:
        raise ValueError(f"expected an {expected}")
    sdp = data.get("sdp")
    if not isinstance(sdp, str) or not sdp.startswith("v=0"):
        raise ValueError("session description has no SDP")
    return sdp


def sha256_fingerprint(sdp: str) -> bytes:
    """The certificate's SHA-256 fingerprint announced in ``sdp`` (``a=fingerprint:sha-256``)."""
    for line in sdp.splitlines():
        if line.lower().startswith("a=fingerprint:sha-256 "):
            text = line.split(" ", 1)[1].strip().replace(":", "")
            try:
                value = bytes.fromhex(text)
            except ValueError:
                break
            if len(value) == 32:
                return value
    raise ValueError("description has no SHA-256 DTLS fingerprint")


def max_message_size(sdp: str) -> int:
    """What the peer accepts in one message (``a=max-message-size``; 0 means no limit)."""
    for line in sdp.splitlines():
        if line.startswith("a=max-message-size:"):
            try:
                value = int(line.split(":", 1)[1].strip())
            except ValueError:
                break
            return _MESSAGE_CAP if value <= 0 else min(value, _MESSAGE_CAP)
    return _DEFAULT_REMOTE_MAX


def channel_binding(local_sdp: str, remote_sdp: str) -> bytes:
    """SHA-256 over both DTLS fingerprints, sorted, so both ends compute the same bytes."""
    first, second = sorted((sha256_fingerprint(local_sdp), sha256_fingerprint(remote_sdp)))
    return hashlib.sha256(_BINDING_LABEL + first + second).digest()


# -- the channel -------------------------------------------------------------------------------
class WebRtcChannel:
    """Frames over one data channel; owns its ``RTCPeerConnection``."""

    def __init__(
        self,
        pc: RTCPeerConnection,
        dc: RTCDataChannel,
        binding: bytes,
        remote_max_message: int,
        options: WebRtcOptions,
        sacks: DelayedSack | None = None,
    ) -> None:
        self._pc = pc
        self._sacks = sacks
        self._dc = dc
        self._binding = binding
        self._options = options
        self._chunk = max(1024, min(options.message_size, remote_max_message)) - 1
        self._inbox: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._inbox_bytes = 0
        self._max_frame = min(options.pre_auth_frame, options.max_frame)
        self._max_inbox = min(options.pre_auth_inbox_bytes, options.max_inbox_bytes)
        #: Bytes handed to / taken from the data channel (messages, our fragment byte included).
        self.message_bytes_sent = 0
        self.message_bytes_received = 0
        self._partial: list[bytes] = []
        self._partial_bytes = 0
        self._closed = False
        self._close_reason = "channel closed"
        self._send_lock = asyncio.Lock()
        self._drained = asyncio.Event()
        self._drained.set()
        self._route = describe_route(pc)
        dc.bufferedAmountLowThreshold = options.low_water
        dc.on("message", self._on_message)
        dc.on("bufferedamountlow", self._drained.set)
        dc.on("close", lambda: self._end("peer closed the data channel"))
        pc.on("connectionstatechange", self._on_state)

    @property
    def binding(self) -> bytes:
        return self._binding

    @property
    def peer_address(self) -> str:
        return self._route

    @property
    def transport_name(self) -> str:
        return "webrtc"

    @property
    def buffered_amount(self) -> int:
        return int(self._dc.bufferedAmount)

    def wire_counters(self) -> WireCounters | None:
        """The UDP payload bytes and datagrams of this channel so far (None: aiortc hides them)."""
        return wire_counters(self._pc)

    # -- receiving ---------------------------------------------------------------------------
    def _on_message(self, message: bytes | str) -> None:
        if self._closed:
            return
        if not isinstance(message, bytes) or not message or message[:1] not in (_MORE, _LAST):
            self._fail("peer sent a message that is not a frame fragment")
            return
        self.message_bytes_received += len(message)
        self._partial.append(message[1:])
        self._partial_bytes += len(message) - 1
        if self._partial_bytes > self._max_frame:
            self._fail(f"peer sent a frame over {self._max_frame} bytes", too_large=True)
            return
        if message[:1] == _MORE:
            return
        frame = b"".join(self._partial)
        self._partial.clear()
        self._partial_bytes = 0
        self._inbox_bytes += len(frame)
        if self._inbox_bytes > self._max_inbox:
            self._fail("peer overran the receive buffer")
            return
        self._inbox.put_nowait(frame)

    def admit(self) -> None:
        self._max_frame = self._options.max_frame
        self._max_inbox = self._options.max_inbox_bytes

    def _on_state(self) -> None:
        if self._pc.connectionState in ("failed", "closed"):
            self._end(f"peer connection {self._pc.connectionState}")

    def _fail(self, reason: str, *, too_large: bool = False) -> None:
        """The peer broke framing: end the channel now, here, without a task of our own.

        Closing the data channel is synchronous (aiortc sends the close itself), so the peer
        hears of it at once; the peer connection is closed by whoever owns this channel, when
        its ``recv`` raises and it calls ``aclose``.
        """
        log.warning("closing data channel: %s", reason)
        self._end(reason, too_large=too_large)
        with contextlib.suppress(Exception):  # already closing: nothing more to tell the peer
            self._dc.close()

    def _end(self, reason: str, *, too_large: bool = False) -> None:
        if not self._closed:
            self._closed = True
            self._close_reason = ("too large: " if too_large else "") + reason
        self._drained.set()
        self._inbox.put_nowait(None)

    async def recv(self) -> bytes:
        item = await self._inbox.get()
        if item is None:
            self._inbox.put_nowait(None)  # every later recv ends the same way
            if self._close_reason.startswith("too large: "):
                raise FrameTooLarge(self._close_reason)
            raise ChannelClosed(self._close_reason)
        self._inbox_bytes -= len(item)
        return item

    # -- sending -----------------------------------------------------------------------------
    async def send(self, frame: bytes) -> None:
        if self._closed:
            raise ChannelClosed(self._close_reason)
        if len(frame) > self._options.max_frame:
            raise ChannelClosed(f"refusing to send a frame of {len(frame)} bytes")
        view = memoryview(frame)
        async with self._send_lock:
            offset = 0
            while True:
                piece = view[offset : offset + self._chunk]
                offset += len(piece)
                last = offset >= len(view)
                await self._wait_for_room()
                message = (_LAST if last else _MORE) + bytes(piece)
                try:
                    self._dc.send(message)
                except Exception as exc:  # InvalidStateError once the channel closed
                    self._end(f"send failed: {exc!r}")
                    raise ChannelClosed(self._close_reason) from exc
                self.message_bytes_sent += len(message)
                if last:
                    return

    async def _wait_for_room(self) -> None:
        while self._dc.bufferedAmount > self._options.high_water:
            if self._closed:
                raise ChannelClosed(self._close_reason)
            self._drained.clear()
            # The event fires when the queue crosses low_water; the timeout re-checks in case
            # the channel closed without a last event.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await self._drained.wait()
        if self._closed:
            raise ChannelClosed(self._close_reason)

    async def aclose(self) -> None:
        already = self._closed
        self._end("channel closed")
        if self._sacks is not None:
            await self._sacks.aclose()
        if already and self._pc.connectionState == "closed":
            return
        with contextlib.suppress(Exception):
            self._dc.close()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5):
                await self._pc.close()


def describe_route(pc: RTCPeerConnection) -> str:
    """``webrtc:<remote addr> (<local type>-><remote type>)`` from the nominated ICE pair."""
    try:
        sctp = pc.sctp
        if sctp is None:
            return "webrtc:?"
        ice = sctp.transport.transport
        pair = ice._connection._nominated.get(1)
        if pair is None:
            return "webrtc:?"
        host, port = pair.remote_addr
        kinds = f"{pair.local_candidate.type}->{pair.remote_candidate.type}"
        return f"webrtc:{host}:{port} ({kinds})"
    except Exception:  # private aiortc/aioice attributes: best effort, for status only
        return "webrtc:?"


# -- offer / answer ----------------------------------------------------------------------------
def _tune(pc: RTCPeerConnection, options: WebRtcOptions) -> DelayedSack | None:
    """Once the ICE sockets and the SCTP association exist, before any DATA flows."""
    enlarge_socket_buffers(pc, options.socket_buffer)
    return DelayedSack.install(pc, options.sack_delay) if options.delayed_sack else None


async def _opened(pc: RTCPeerConnection, dc: RTCDataChannel) -> None:
    """Until the channel opens; ``ConnectionError`` as soon as ICE gives up (not at the timeout),
    so a caller can try another way (e.g. relayed candidates only)."""
    if dc.readyState == "open":
        return
    settled = asyncio.Event()  # the channel opened, or ICE failed: whichever comes first
    dc.on("open", settled.set)

    def state_changed() -> None:
        if pc.iceConnectionState == "failed":
            settled.set()

    pc.on("iceconnectionstatechange", state_changed)
    if dc.readyState != "open":
        await settled.wait()
    if dc.readyState != "open":
        raise ConnectionError("ICE found no working candidate pair")


async def offer(
    signal: SignalFn, inbox: asyncio.Queue[bytes], options: WebRtcOptions | None = None
) -> WebRtcChannel:
    """Dial: send an offer through ``signal``, take the answer from ``inbox``, open the channel."""
    from aiortc import RTCPeerConnection, RTCSessionDescription

    options = options or WebRtcOptions()
    pc = RTCPeerConnection(options.configuration())
    sacks: DelayedSack | None = None
    try:
        async with asyncio.timeout(options.connect_timeout):
            dc = pc.createDataChannel(LABEL, ordered=True)
            await pc.setLocalDescription(await pc.createOffer())
            sacks = _tune(pc, options)
            await signal(encode_description("offer", pc.localDescription.sdp))
            answer_sdp = decode_description(await inbox.get(), "answer")
            await pc.setRemoteDescription(RTCSessionDescription(sdp=answer_sdp, type="answer"))
            binding = channel_binding(pc.localDescription.sdp, answer_sdp)
            await _opened(pc, dc)
        return WebRtcChannel(pc, dc, binding, max_message_size(answer_sdp), options, sacks)
    except BaseException:
        if sacks is not None:
            await sacks.aclose()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5):
                await pc.close()
        raise


async def answer(
    offer_payload: bytes, signal: SignalFn, options: WebRtcOptions | None = None
) -> WebRtcChannel:
    """Accept: answer ``offer_payload`` through ``signal`` and wait for the offerer's channel."""
    from aiortc import RTCPeerConnection, RTCSessionDescription

    options = options or WebRtcOptions()
    offer_sdp = decode_description(offer_payload, "offer")
    pc = RTCPeerConnection(options.configuration())
    arrived: asyncio.Future[RTCDataChannel] = asyncio.get_running_loop().create_future()

    def on_datachannel(dc: RTCDataChannel) -> None:
        if dc.label == LABEL and not arrived.done():
            arrived.set_result(dc)
        else:
            dc.close()

    pc.on("datachannel", on_datachannel)
    sacks: DelayedSack | None = None
    try:
        async with asyncio.timeout(options.connect_timeout):
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
            await pc.setLocalDescription(await pc.createAnswer())
            sacks = _tune(pc, options)
            local_sdp = pc.localDescription.sdp
            binding = channel_binding(local_sdp, offer_sdp)
            await signal(encode_description("answer", local_sdp))
            dc = await arrived
            await _opened(pc, dc)
        return WebRtcChannel(pc, dc, binding, max_message_size(offer_sdp), options, sacks)
    except BaseException:
        if sacks is not None:
            await sacks.aclose()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5):
                await pc.close()
        raise
