"""An HTTP(S) listener (aiohttp) that hands complete requests to a handler, and streams SSE.

The transport knows nothing of MindooDB: it reads a request (its body capped before it is
buffered: over the limit is a 413 without reading on), calls the handler, writes the answer.
An answer may be a ``Stream``: the listener writes its opening bytes, then whatever the stream
pushes, and a heartbeat comment on a timer, until the client goes or the listener closes.
TLS comes from an ``ssl.SSLContext`` (``server_ssl_context``); without one it speaks plain HTTP
for loopback or a reverse proxy in front.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from transports.http_cors import CorsPolicy

log = logging.getLogger("mindood.transports.http")

TOO_LARGE = b'{"error":"Request body too large"}'
#: Pending pushes per stream; beyond that a slow client misses hints (it resyncs anyway).
STREAM_QUEUE = 256
#: Responses at least this large are compressed when the client accepts it (as the reference).
COMPRESS_FROM = 1024


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    query: Mapping[str, str]
    #: Header names lowercased.
    headers: Mapping[str, str]
    body: bytes
    remote: str


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes
    content_type: str = "application/json; charset=utf-8"
    headers: Mapping[str, str] = field(default_factory=dict)


Push = Callable[[bytes], None]


@dataclass(frozen=True, slots=True)
class Stream:
    """A server-sent event stream: ``opening`` first, then what ``subscribe``'s push gets."""

    opening: bytes
    subscribe: Callable[[Push], Callable[[], None]]
    heartbeat: Callable[[], bytes] = field(
        default=lambda: f": heartbeat {int(time.time() * 1000)}\n\n".encode()
    )


Handler = Callable[[Request], Awaitable[Response | Stream]]
#: ``(method, path, headers)`` -> whether the request carries credentials worth the full body
#: limit; the others get ``small_body_limit`` (strangers cost little memory).
Gate = Callable[[str, str, Mapping[str, str]], bool]
SMALL_BODY_LIMIT = 64 * 1024


def server_ssl_context(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    """TLS 1.2+ with the operator's certificate chain and key (PEM files)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(cert_file), str(key_file))
    return context


class HttpListener:
    """One listening socket serving ``handler``; ``aclose`` ends open streams and the server."""

    def __init__(
        self,
        handler: Handler,
        *,
        body_limit: int,
        heartbeat_seconds: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
        gate: Gate | None = None,
        small_body_limit: int = SMALL_BODY_LIMIT,
        cors: CorsPolicy | None = None,
    ) -> None:
        self._handler = handler
        self._cors = cors or CorsPolicy()
        self._body_limit = body_limit
        self._gate = gate
        self._small_limit = min(small_body_limit, body_limit)
        self._heartbeat = heartbeat_seconds
        self._ssl = ssl_context
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._closing = asyncio.Event()
        #: The open event streams' queues; closing puts ``_END`` in each to end them.
        self._stream_queues: set[asyncio.Queue[bytes]] = set()
        self.bound: tuple[str, int] | None = None

    async def start(self, host: str, port: int) -> tuple[str, int]:
        # Bodies are read and capped here, so aiohttp's own cap only has to stay out of the way.
        app = web.Application(client_max_size=self._body_limit + 1)
        app.router.add_route("*", "/{tail:.*}", self._serve)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=2.0)
        await runner.setup()
        site = web.TCPSite(runner, host, port, ssl_context=self._ssl)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner, self._site = runner, site
        addresses = runner.addresses
        name = addresses[0] if addresses else (host, port)
        self.bound = (str(name[0]), int(name[1]))
        return self.bound

    @property
    def streams(self) -> int:
        """How many event streams are open."""
        return len(self._stream_queues)

    @property
    def scheme(self) -> str:
        return "https" if self._ssl is not None else "http"

    async def aclose(self) -> None:
        """Stop accepting, end every stream, wait for handlers (idempotent)."""
        self._closing.set()
        for queue in self._stream_queues:
            _offer(queue, _END)
        runner, self._runner = self._runner, None
        if runner is not None:
            async with asyncio.timeout(10):
                await runner.cleanup()

    async def _read_body(self, request: web.Request, headers: Mapping[str, str]) -> bytes | None:
        """The body, or None when it exceeds the limit (announced or actual); a request the
        gate does not pass gets the small limit, checked before anything is buffered."""
        limit = self._body_limit
        if self._gate is not None and not self._gate(request.method, request.path, headers):
            limit = self._small_limit
        if request.content_length is not None and request.content_length > limit:
            return None
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.content.iter_chunked(64 * 1024):
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
        return b"".join(chunks)

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        headers = {k.lower(): v for k, v in request.headers.items()}
        if self._cors.is_preflight(request.method, headers):
            return web.Response(status=204, headers=self._cors.preflight_headers(headers))
        cors = self._cors.response_headers(headers)
        body = await self._read_body(request, headers)
        if body is None:
            response = web.Response(
                status=413, body=TOO_LARGE, content_type="application/json", headers=cors
            )
            response.force_close()  # the rest of the body is not read
            return response
        incoming = Request(
            method=request.method,
            path=request.path,
            query={k: v for k, v in request.query.items()},
            headers=headers,
            body=body,
            remote=request.remote or "",
        )
        answer = await self._handler(incoming)
        if isinstance(answer, Stream):
            return await self._stream(request, answer, cors)
        content_type, _, charset = answer.content_type.partition("; charset=")
        out = web.Response(
            status=answer.status,
            body=answer.body,
            content_type=content_type,
            charset=charset or None,
            headers={**answer.headers, **cors},
        )
        if len(answer.body) >= COMPRESS_FROM:
            out.enable_compression()
        return out

    async def _stream(
        self, request: web.Request, stream: Stream, cors: Mapping[str, str]
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            status=200,
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache, no-transform",
                "X-Accel-Buffering": "no",
                **cors,
            },
        )
        await response.prepare(request)
        queue: asyncio.Queue[bytes] = asyncio.Queue(STREAM_QUEUE)
        unsubscribe = stream.subscribe(lambda data: _offer(queue, data))
        self._stream_queues.add(queue)
        try:
            await response.write(stream.opening)
            while not self._closing.is_set():
                try:
                    async with asyncio.timeout(self._heartbeat):
                        data = await queue.get()
                except TimeoutError:
                    await response.write(stream.heartbeat())
                    continue
                if data is _END:
                    break
                await response.write(data)
        except (ConnectionResetError, ConnectionError):
            pass  # the client went away
        finally:
            self._stream_queues.discard(queue)
            unsubscribe()
        return response


#: Put in a stream's queue to end it (events are never empty).
_END = b""


def _offer(queue: asyncio.Queue[bytes], data: bytes) -> None:
    """Queue ``data`` unless the stream is that far behind (a slow reader loses events, and
    a full queue still ends: the loop sees ``_closing`` after its next item)."""
    with contextlib.suppress(asyncio.QueueFull):
        queue.put_nowait(data)


async def listen_http(
    handler: Handler,
    host: str,
    port: int,
    *,
    body_limit: int,
    ssl_context: ssl.SSLContext | None = None,
    heartbeat_seconds: float = 30.0,
    gate: Gate | None = None,
    cors: CorsPolicy | None = None,
) -> HttpListener:
    """Start a listener on ``host:port`` (port 0: any free port, see ``bound``)."""
    listener = HttpListener(
        handler,
        body_limit=body_limit,
        heartbeat_seconds=heartbeat_seconds,
        ssl_context=ssl_context,
        gate=gate,
        cors=cors,
    )
    await listener.start(host, port)
    return listener
