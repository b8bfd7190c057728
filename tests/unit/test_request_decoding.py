"""Undecodable request bytes: INVALID_ARGUMENT naming the message, on a real grpc.aio server (loopback)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from quorum.services.request_decoding import UndecodableRequestInterceptor
from quorum.v1 import inference_pb2 as pb
from quorum.v1 import inference_pb2_grpc

RAW: dict[str, Any] = {"request_serializer": None, "response_deserializer": None}
GARBAGE = b"\xff\xff\xff\xff\xff"
BAD_UTF8 = b"\x0a\x02\xc3\x28"  # field 1 (a string) holding invalid UTF-8


class Echo(inference_pb2_grpc.InferenceServiceServicer):
    async def Chat(self, request: pb.ChatRequest, context: Any) -> pb.ChatResponse:
        return pb.ChatResponse(model=request.model)

    async def ChatStream(self, request: pb.ChatStreamRequest, context: Any) -> AsyncIterator[pb.ChatStreamResponse]:
        yield pb.ChatStreamResponse(model=request.model)


@pytest.fixture
async def target() -> AsyncIterator[str]:
    server = grpc.aio.server(interceptors=[UndecodableRequestInterceptor()])
    inference_pb2_grpc.add_InferenceServiceServicer_to_server(Echo(), server)  # type: ignore[abstract]
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield f"127.0.0.1:{port}"
    await server.stop(None)


@pytest.mark.parametrize("payload", [GARBAGE, BAD_UTF8], ids=["garbage", "invalid-utf8"])
async def test_undecodable_bytes_are_invalid_argument_naming_the_message(target: str, payload: bytes) -> None:
    async with grpc.aio.insecure_channel(target) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as unary:
            await channel.unary_unary("/quorum.v1.InferenceService/Chat", **RAW)(payload)
        stream = channel.unary_stream("/quorum.v1.InferenceService/ChatStream", **RAW)(payload)
        with pytest.raises(grpc.aio.AioRpcError) as streamed:
            await stream.read()
    assert unary.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert str(unary.value.details()).startswith("request is not a valid quorum.v1.ChatRequest: ")
    assert streamed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert str(streamed.value.details()).startswith("request is not a valid quorum.v1.ChatStreamRequest: ")


async def test_valid_requests_still_reach_the_servicer(target: str) -> None:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = inference_pb2_grpc.InferenceServiceStub(channel)
        assert (await stub.Chat(pb.ChatRequest(model="m"))).model == "m"
        assert [r.model async for r in stub.ChatStream(pb.ChatStreamRequest(model="s"))] == ["s"]
