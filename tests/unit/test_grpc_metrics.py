"""The gateway's request counter on a real grpc.aio server on loopback: each quorum RPC is recorded once it
ends, by method and the status code the client received."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from quorum.services.grpc_metrics import RequestCounter

SERVICE = "quorum.v1.TestService"
Context = grpc.aio.ServicerContext[Any, Any]
SLOW_STARTED = asyncio.Event()


async def echo(request: bytes, context: Context) -> bytes:
    if request == b"bad":
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "bad request")
    if request == b"slow":
        SLOW_STARTED.set()
        await asyncio.sleep(300)  # until the client gives up
    return request


async def count_to(request: bytes, context: Context) -> AsyncIterator[bytes]:
    for i in range(int(request)):
        yield str(i).encode()
    if int(request) > 2:
        await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "too many")
    if int(request) == 0:
        yield b"first"
        await asyncio.sleep(300)  # until the client gives up


def handlers(service: str) -> grpc.GenericRpcHandler[Any, Any]:
    return grpc.method_handlers_generic_handler(
        service,
        {
            "Echo": grpc.unary_unary_rpc_method_handler(echo),
            "Count": grpc.unary_stream_rpc_method_handler(count_to),
        },
    )


@pytest.fixture
async def served() -> AsyncIterator[tuple[str, list[tuple[str, str]]]]:
    recorded: list[tuple[str, str]] = []
    server = grpc.aio.server(interceptors=[RequestCounter(lambda method, code: recorded.append((method, code)))])
    server.add_generic_rpc_handlers((handlers(SERVICE), handlers("grpc.health.v1.Health")))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield f"127.0.0.1:{port}", recorded
    await server.stop(None)


async def settled(recorded: list[tuple[str, str]], count: int) -> list[tuple[str, str]]:
    """The records, once ``count`` have landed (the server may record just after the client has its answer)."""
    async with asyncio.timeout(10):
        while len(recorded) < count:  # noqa: ASYNC110 - the recorder is a plain callback, not an event source
            await asyncio.sleep(0.01)
    return recorded


async def test_unary_calls_are_counted_with_their_status(served: tuple[str, list[tuple[str, str]]]) -> None:
    target, recorded = served
    async with grpc.aio.insecure_channel(target) as channel:
        call = channel.unary_unary(f"/{SERVICE}/Echo", None, None)
        assert await call(b"hi") == b"hi"
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await call(b"bad")
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await call(b"slow", timeout=0.2)
        assert error.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        SLOW_STARTED.clear()
        cancelled = call(b"slow", timeout=120)
        await SLOW_STARTED.wait()
        cancelled.cancel()
    assert await settled(recorded, 4) == [
        (f"{SERVICE}/Echo", "OK"),
        (f"{SERVICE}/Echo", "INVALID_ARGUMENT"),
        (f"{SERVICE}/Echo", "DEADLINE_EXCEEDED"),
        (f"{SERVICE}/Echo", "CANCELLED"),
    ]


async def test_streams_are_counted_once_they_end(served: tuple[str, list[tuple[str, str]]]) -> None:
    target, recorded = served
    async with grpc.aio.insecure_channel(target) as channel:
        call = channel.unary_stream(f"/{SERVICE}/Count", None, None)
        assert [m async for m in call(b"2")] == [b"0", b"1"]
        stream = call(b"3")
        with pytest.raises(grpc.aio.AioRpcError) as error:
            async for _ in stream:
                pass
        assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        endless = call(b"0")
        assert await endless.read() == b"first"
        endless.cancel()
    assert await settled(recorded, 3) == [
        (f"{SERVICE}/Count", "OK"),
        (f"{SERVICE}/Count", "RESOURCE_EXHAUSTED"),
        (f"{SERVICE}/Count", "CANCELLED"),
    ]


async def test_calls_outside_the_quorum_api_are_not_counted(served: tuple[str, list[tuple[str, str]]]) -> None:
    target, recorded = served
    async with grpc.aio.insecure_channel(target) as channel:
        assert await channel.unary_unary("/grpc.health.v1.Health/Echo", None, None)(b"probe") == b"probe"
        assert await channel.unary_unary(f"/{SERVICE}/Echo", None, None)(b"hi") == b"hi"
    assert await settled(recorded, 1) == [(f"{SERVICE}/Echo", "OK")]
