"""The HTTP client undoes gzip/deflate itself: wire bytes are counted as they crossed, and a
compressed body is capped after decompression (a bomb stops at the limit), over real sockets
on 127.0.0.1 against a tiny aiohttp app that encodes as a server may."""

from __future__ import annotations

import gzip
import os
import zlib
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from tests.http_helpers import app_on_loopback
from transports.http_client import HttpClientLimits, HttpOrigin, HttpTransportError

#: Compressible like a JSON batch: repeated keys around random (incompressible) values.
_BODY = b"".join(
    b'{"id":"%s","docId":"d","entryType":"doc_change"},' % os.urandom(8).hex().encode()
    for _ in range(2000)
)


@pytest.fixture
async def server() -> AsyncIterator[str]:
    async def plain(request: web.Request) -> web.Response:
        return web.Response(body=_BODY)

    async def negotiated(request: web.Request) -> web.Response:
        response = web.Response(body=_BODY)
        response.enable_compression()  # what the client's Accept-Encoding allows
        return response

    def encoded(body: bytes, coding: str) -> web.Response:
        return web.Response(body=body, headers={"Content-Encoding": coding})

    async def gzipped(request: web.Request) -> web.Response:
        return encoded(gzip.compress(_BODY), "gzip")

    async def deflated(request: web.Request) -> web.Response:
        return encoded(zlib.compress(_BODY), "deflate")

    async def bomb(request: web.Request) -> web.Response:
        return encoded(gzip.compress(bytes(50 * 1024 * 1024)), "gzip")

    async def cut(request: web.Request) -> web.Response:
        return encoded(gzip.compress(_BODY)[:-40], "gzip")

    async def brotli(request: web.Request) -> web.Response:
        return encoded(b"\x1b\x03\x00", "br")

    app = web.Application()
    for path, handler in [
        ("/plain", plain),
        ("/negotiated", negotiated),
        ("/gzip", gzipped),
        ("/deflate", deflated),
        ("/bomb", bomb),
        ("/cut", cut),
        ("/br", brotli),
    ]:
        app.router.add_get(path, handler)
    async with app_on_loopback(app) as url:
        yield url


async def test_compressed_bodies_arrive_whole_and_count_as_the_bytes_that_crossed(
    server: str,
) -> None:
    for path in ("/negotiated", "/gzip", "/deflate"):
        origin = HttpOrigin(server)
        try:
            response = await origin.request("GET", path)
        finally:
            await origin.aclose()
        assert response.body == _BODY, path
        assert 0 < origin.bytes_received < len(_BODY) * 0.8, path
    origin = HttpOrigin(server)
    try:
        assert (await origin.request("GET", "/plain")).body == _BODY
    finally:
        await origin.aclose()
    assert origin.bytes_received == len(_BODY)


async def test_a_bomb_a_cut_off_body_and_an_unknown_coding_are_transport_errors(
    server: str,
) -> None:
    origin = HttpOrigin(server, limits=HttpClientLimits(max_response_bytes=1024 * 1024))
    try:
        with pytest.raises(HttpTransportError, match="over the limit"):
            await origin.request("GET", "/bomb")
        with pytest.raises(HttpTransportError, match="ended early"):
            await origin.request("GET", "/cut")
        with pytest.raises(HttpTransportError, match="unsupported Content-Encoding"):
            await origin.request("GET", "/br")
        assert (await origin.request("GET", "/gzip")).body == _BODY  # the origin still works
    finally:
        await origin.aclose()
