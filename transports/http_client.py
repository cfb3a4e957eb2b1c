"""HTTP client transport (aiohttp) for the reference's HTTP sync API: bytes in, bytes out.

One ``HttpOrigin`` per server origin (``https://host[:port]``, or ``http://`` for loopback and
tests) owns one ``aiohttp.ClientSession``: connections are pooled across every store and the
change feed. It knows nothing of the API (``protocol.http`` does); it bounds what a server can
cost us: response bodies are read up to a limit (gzip and deflate are undone here, after the
wire bytes are counted, and the limit holds for what they unfold to: a compressed bomb stops),
every request has a timeout, redirects are not followed (the reference client follows only
same-origin ones; none of its routes redirects), and transport failures surface as
``HttpTransportError`` (an ``OSError``) or ``TimeoutError``, never as aiohttp's own types.
"""

from __future__ import annotations

import asyncio
import ssl
import zlib
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp

#: Largest response body read into memory (a getEntries batch; the server's own JSON limit is 5 MB).
MAX_RESPONSE_BYTES = 64 * 1024 * 1024
#: The codings we undo ourselves (zlib), so the wire bytes can be counted and capped.
ACCEPT_ENCODING = "gzip, deflate"


class HttpTransportError(OSError):
    """The request got no usable answer (refused, reset, TLS failure, body over the limit)."""


@dataclass(frozen=True, slots=True)
class HttpClientLimits:
    max_response_bytes: int = MAX_RESPONSE_BYTES
    #: Seconds for one request, connect to last byte.
    request_timeout: float = 120.0
    connect_timeout: float = 15.0
    #: Seconds an open event stream may stay silent (the reference sends a heartbeat every 30 s).
    stream_idle_timeout: float = 90.0


def split_origin(url: str) -> tuple[str, str]:
    """``(origin, base path)`` of a server URL; ``ValueError`` unless it is http(s) with a host."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) server URL: {url!r}")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError("a server URL carries no query, fragment or credentials")
    return f"{parts.scheme}://{parts.netloc}", parts.path.rstrip("/")


@dataclass(frozen=True, slots=True)
class _Response:
    status: int
    content_type: str
    body: bytes
    retry_after: str = ""


class _Stream:
    def __init__(
        self, response: aiohttp.ClientResponse, limits: HttpClientLimits, origin: HttpOrigin
    ) -> None:
        self._response = response
        self._limits = limits
        self._origin = origin

    @property
    def status(self) -> int:
        return self._response.status

    async def read_body(self) -> bytes:
        return await _read_bounded(self._response, 64 * 1024, self._origin)

    async def chunks(self) -> AsyncIterator[bytes]:
        content = self._response.content
        # A stream has no size limit (it lasts); the decoder's limit only bounds one chunk's
        # expansion, so a few compressed bytes cannot unfold into gigabytes at once.
        decoder = _BodyDecoder(self._response.headers.get("Content-Encoding", ""))
        while True:
            try:
                async with asyncio.timeout(self._limits.stream_idle_timeout):
                    data = await content.readany()
            except aiohttp.ClientError as exc:
                raise HttpTransportError(f"event stream broke: {exc}") from exc
            if not data:
                return
            self._origin.bytes_received += len(data)
            decoder.restart_limit()
            text = decoder.feed(data)
            if text:
                yield text


class _BodyDecoder:
    """Undoes a response's Content-Encoding (gzip, or zlib-wrapped deflate), never past
    ``limit`` bytes out: a compressed bomb stops at the limit, not in memory."""

    def __init__(self, encoding: str, limit: int = 1024 * 1024) -> None:
        coding = encoding.strip().lower()
        if coding not in ("", "identity", "gzip", "x-gzip", "deflate"):
            raise HttpTransportError(f"unsupported Content-Encoding {encoding!r} from the server")
        # wbits 32 + 15: a gzip or a zlib header, whichever the body starts with.
        self._inflate = zlib.decompressobj(wbits=47) if coding not in ("", "identity") else None
        self._limit = limit
        self._size = 0

    def restart_limit(self) -> None:
        self._size = 0

    def feed(self, chunk: bytes) -> bytes:
        if self._inflate is None:
            out = chunk
        else:
            try:
                out = self._inflate.decompress(chunk, self._limit - self._size + 1)
            except zlib.error as exc:
                raise HttpTransportError(f"the response body does not decompress: {exc}") from exc
        self._size += len(out)
        if self._size > self._limit:
            raise HttpTransportError(f"response body over the limit of {self._limit} bytes")
        return out

    def finish(self) -> None:
        """The end of the body: a compressed one must be complete (a cut-off is an error)."""
        if self._inflate is not None and not self._inflate.eof:
            raise HttpTransportError("the compressed response body ended early")


async def _read_bounded(response: aiohttp.ClientResponse, limit: int, origin: HttpOrigin) -> bytes:
    """The whole body, decoded, up to ``limit`` bytes; the wire bytes count on ``origin``."""
    decoder = _BodyDecoder(response.headers.get("Content-Encoding", ""), limit)
    parts: list[bytes] = []
    try:
        async for chunk in response.content.iter_chunked(256 * 1024):
            origin.bytes_received += len(chunk)
            parts.append(decoder.feed(chunk))
    except aiohttp.ClientError as exc:
        raise HttpTransportError(f"reading the response failed: {exc}") from exc
    decoder.finish()
    return b"".join(parts)


class HttpOrigin:
    """``protocol.http.client.HttpFetcher`` over aiohttp, for one origin."""

    def __init__(
        self,
        origin: str,
        *,
        ssl_context: ssl.SSLContext | None = None,
        limits: HttpClientLimits | None = None,
    ) -> None:
        self._origin = origin.rstrip("/")
        self._ssl: ssl.SSLContext | bool = ssl_context if ssl_context is not None else True
        self._limits = limits or HttpClientLimits()
        self._session: aiohttp.ClientSession | None = None
        #: Body bytes sent and received as they crossed the wire (compressed where the server
        #: compressed), for status and benchmarks.
        self.bytes_sent = 0
        self.bytes_received = 0

    @property
    def origin(self) -> str:
        return self._origin

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=self._limits.connect_timeout)
            self._session = aiohttp.ClientSession(
                timeout=timeout,
                connector=aiohttp.TCPConnector(limit=8, ssl=self._ssl),
                auto_decompress=False,  # undone here, so wire bytes are counted and capped
                headers={"Accept-Encoding": ACCEPT_ENCODING},
            )
        return self._session

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
    ) -> _Response:
        try:
            async with asyncio.timeout(self._limits.request_timeout):
                async with self._client().request(
                    method,
                    self._origin + path,
                    params=dict(query) if query else None,
                    headers=dict(headers) if headers else None,
                    data=body,
                    allow_redirects=False,
                ) as response:
                    self.bytes_sent += len(body or b"")
                    data = await _read_bounded(response, self._limits.max_response_bytes, self)
                    retry_after = response.headers.get("Retry-After", "")
                    return _Response(response.status, response.content_type, data, retry_after)
        except aiohttp.ClientError as exc:
            raise HttpTransportError(f"{method} {path}: {exc}") from exc

    @asynccontextmanager
    async def stream(
        self,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> AsyncIterator[_Stream]:
        wanted = {"Accept": "text/event-stream", **(headers or {})}
        try:
            async with asyncio.timeout(self._limits.request_timeout):
                response = await self._client().get(
                    self._origin + path,
                    params=dict(query) if query else None,
                    headers=wanted,
                    allow_redirects=False,
                )
        except aiohttp.ClientError as exc:
            raise HttpTransportError(f"GET {path}: {exc}") from exc
        try:
            yield _Stream(response, self._limits, self)
        finally:
            response.close()

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
