"""WebRTC on loopback for tests: ICE host candidates only on 127.0.0.1, signaling in-process.

aioice skips 127.0.0.1 when it gathers, so on a host whose only usable interface is ``lo`` an
offer would carry no candidate; and on a host that has other interfaces we must not send
connectivity checks to them. ``loopback_ice`` pins gathering to 127.0.0.1 for the test.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

from transports.webrtc import WebRtcChannel, WebRtcOptions, answer, offer, restrict_host_addresses


@contextlib.contextmanager
def loopback_ice() -> Iterator[None]:
    restrict_host_addresses(["127.0.0.1"])
    try:
        yield
    finally:
        restrict_host_addresses(None)


async def webrtc_pair(
    options: WebRtcOptions | None = None, answer_options: WebRtcOptions | None = None
) -> tuple[WebRtcChannel, WebRtcChannel]:
    """An offerer and an answerer connected through an in-memory signaling path."""
    to_offerer: asyncio.Queue[bytes] = asyncio.Queue()
    answered: asyncio.Future[WebRtcChannel] = asyncio.get_running_loop().create_future()

    async def answer_side(payload: bytes) -> None:
        async def reply(data: bytes) -> None:
            await to_offerer.put(data)

        task = asyncio.ensure_future(answer(payload, reply, answer_options or options))
        task.add_done_callback(
            lambda t: (
                answered.set_exception(t.exception())  # type: ignore[arg-type]
                if t.exception()
                else answered.set_result(t.result())
            )
        )

    async with asyncio.timeout(30):
        dialer = await offer(answer_side, to_offerer, options)
        accepted = await answered
    return dialer, accepted
