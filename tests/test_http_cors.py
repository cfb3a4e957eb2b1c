"""Cross-origin access to the HTTP listener, as a browser checks it, over real sockets."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest

from transports.http_cors import CorsPolicy, check_origin
from transports.http_server import HttpListener, Request, Response, Stream, listen_http

APP = "https://app.example.com"
PUT_ENTRIES = "/acme/sync/docs/putEntries"


class Recorder:
    """The API behind the listener: answers 200 and records what reached it."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    async def __call__(self, request: Request) -> Response | Stream:
        self.seen.append(request.method)
        if request.path == "/events":
            return Stream(b": hello\n\n", lambda push: lambda: None)
        return Response(200, b'{"ok":true}')


Start = Callable[..., Awaitable[tuple[str, Recorder]]]


@pytest.fixture
async def start() -> AsyncIterator[Start]:
    listeners: list[HttpListener] = []

    async def open_one(cors: CorsPolicy | None, body_limit: int = 1 << 20) -> tuple[str, Recorder]:
        api = Recorder()
        listener = await listen_http(api, "127.0.0.1", 0, body_limit=body_limit, cors=cors)
        listeners.append(listener)
        assert listener.bound is not None
        return f"http://127.0.0.1:{listener.bound[1]}", api

    yield open_one
    for listener in listeners:
        await listener.aclose()


def _preflight(origin: str) -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
    }


async def test_without_configured_origins_no_cors_header_is_sent_and_options_reach_the_api(
    start: Start,
) -> None:
    url, api = await start(None)
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{url}/x", headers={"Origin": APP}) as r:
            assert r.status == 200 and "Access-Control-Allow-Origin" not in r.headers
        async with session.options(f"{url}/x", headers=_preflight(APP)) as r:
            assert "Access-Control-Allow-Origin" not in r.headers
    assert api.seen == ["GET", "OPTIONS"]


async def test_a_listed_origin_is_allowed_and_every_other_is_not(
    start: Start,
) -> None:
    url, api = await start(CorsPolicy.of([APP, "http://localhost:5173"]))
    async with aiohttp.ClientSession() as session:
        async with session.options(url + PUT_ENTRIES, headers=_preflight(APP)) as r:
            assert r.status == 204
            assert r.headers["Access-Control-Allow-Origin"] == APP
            assert set(r.headers["Access-Control-Allow-Methods"].split(",")) == {
                "GET",
                "POST",
                "PUT",
                "DELETE",
            }
            assert r.headers["Access-Control-Allow-Headers"] == "Content-Type,Authorization"
            assert "Origin" in r.headers["Vary"]
        async with session.post(f"{url}/x", headers={"Origin": APP}, data=b"{}") as r:
            assert r.status == 200 and r.headers["Access-Control-Allow-Origin"] == APP
        async with session.get(f"{url}/events", headers={"Origin": APP}) as r:
            assert r.headers["Access-Control-Allow-Origin"] == APP  # EventSource too
            assert await asyncio.wait_for(r.content.readline(), 5) == b": hello\n"
        for stranger in ("https://evil.example", "https://app.example.com.evil.example"):
            async with session.options(f"{url}/x", headers=_preflight(stranger)) as r:
                assert r.status == 204 and "Access-Control-Allow-Origin" not in r.headers
            async with session.get(f"{url}/x", headers={"Origin": stranger}) as r:
                assert "Access-Control-Allow-Origin" not in r.headers
    assert api.seen == ["POST", "GET", "GET", "GET"]  # preflights never reach the API


async def test_any_origin_and_a_refused_body_carry_the_header(
    start: Start,
) -> None:
    url, _api = await start(CorsPolicy.of(["*"]), 1024)
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{url}/x", headers={"Origin": "https://any.example"}) as r:
            assert r.headers["Access-Control-Allow-Origin"] == "*"
        async with session.post(f"{url}/x", headers={"Origin": APP}, data=b"x" * 4096) as r:
            # the browser shows the app the 413 instead of an opaque network error
            assert r.status == 413 and r.headers["Access-Control-Allow-Origin"] == "*"


@pytest.mark.parametrize(
    "bad", ["app.example.com", "https://a.example/path", "ftp://a.example", "https://u@a.example"]
)
def test_only_origins_are_accepted(bad: str) -> None:
    with pytest.raises(ValueError):
        check_origin(bad)
