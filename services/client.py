"""Typed Python clients for a quorum cluster, sync and asyncio, over the generated stubs.

    with QuorumClient("127.0.0.1:50051") as client:
        reply = client.chat([("user", "What is the capital of France?")], temperature=0)
        print(reply.choices[0].text)

Sampling keyword arguments are the fields of ``quorum.v1.SamplingParams``.
Failed calls raise ``grpc.RpcError`` with the server's status code and message.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Generator, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TypeAlias

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from quorum.v1 import inference_pb2 as pb
from quorum.v1 import inference_pb2_grpc

MessageLike: TypeAlias = pb.ChatMessage | tuple[str, str]
Metadata: TypeAlias = tuple[tuple[str, str | bytes], ...]


def sampling(**fields: Any) -> pb.SamplingParams:
    """SamplingParams from keyword arguments (``temperature=0, max_tokens=32, stop=["\\n"]``)."""
    params = pb.SamplingParams()
    for name, value in fields.items():
        if value is None:
            continue
        if name == "json_schema":
            params.constraint.json_schema = value
        elif name == "regex":
            params.constraint.regex = value
        elif name == "choice":
            params.constraint.choice.values.extend(value)
        elif name == "stop":
            params.stop.extend([value] if isinstance(value, str) else value)
        else:
            setattr(params, name, value)
    return params


def chat_messages(messages: Iterable[MessageLike]) -> list[pb.ChatMessage]:
    return [m if isinstance(m, pb.ChatMessage) else pb.ChatMessage(role=m[0], content=m[1]) for m in messages]


@dataclass(frozen=True)
class ClientTLS:
    """TLS settings of a client: the CA that signed the server, and a client certificate for mutual TLS."""

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None

    def credentials(self) -> grpc.ChannelCredentials:
        def read(path: str | None) -> bytes | None:
            return Path(path).read_bytes() if path else None

        return grpc.ssl_channel_credentials(read(self.ca_file), read(self.key_file), read(self.cert_file))


def _metadata(token: str | None) -> Metadata | None:
    return (("authorization", f"Bearer {token}"),) if token else None


class QuorumClient:
    """Blocking client. ``timeout`` (seconds) becomes each call's gRPC deadline."""

    def __init__(
        self, target: str, timeout: float | None = 120.0, token: str | None = None, tls: ClientTLS | None = None
    ) -> None:
        self.target = target
        self.timeout = timeout
        self.metadata = _metadata(token)
        self.channel = grpc.secure_channel(target, tls.credentials()) if tls else grpc.insecure_channel(target)
        self._stub = inference_pb2_grpc.InferenceServiceStub(self.channel)
        self._health = health_pb2_grpc.HealthStub(self.channel)

    def generate(self, prompt: str, model: str = "", **sampling_fields: Any) -> pb.GenerateResponse:
        request = pb.GenerateRequest(model=model, prompt=prompt, sampling=sampling(**sampling_fields))
        return self._stub.Generate(request, timeout=self.timeout, metadata=self.metadata)

    def generate_stream(
        self, prompt: str, model: str = "", **sampling_fields: Any
    ) -> Generator[pb.GenerateStreamResponse, None, None]:
        request = pb.GenerateStreamRequest(model=model, prompt=prompt, sampling=sampling(**sampling_fields))
        call = self._stub.GenerateStream(request, timeout=self.timeout, metadata=self.metadata)
        try:
            yield from call
        finally:
            call.cancel()  # type: ignore[no-untyped-call]

    def chat(self, messages: Iterable[MessageLike], model: str = "", **sampling_fields: Any) -> pb.ChatResponse:
        request = pb.ChatRequest(model=model, messages=chat_messages(messages), sampling=sampling(**sampling_fields))
        return self._stub.Chat(request, timeout=self.timeout, metadata=self.metadata)

    def chat_stream(
        self, messages: Iterable[MessageLike], model: str = "", **sampling_fields: Any
    ) -> Generator[pb.ChatStreamResponse, None, None]:
        request = pb.ChatStreamRequest(
            model=model, messages=chat_messages(messages), sampling=sampling(**sampling_fields)
        )
        call = self._stub.ChatStream(request, timeout=self.timeout, metadata=self.metadata)
        try:
            yield from call
        finally:
            call.cancel()  # type: ignore[no-untyped-call]

    def list_models(self) -> pb.ListModelsResponse:
        return self._stub.ListModels(pb.ListModelsRequest(), timeout=self.timeout, metadata=self.metadata)

    def tokenize(self, prompt: str = "", messages: Iterable[MessageLike] = (), model: str = "") -> pb.TokenizeResponse:
        request = pb.TokenizeRequest(model=model, prompt=prompt, messages=chat_messages(messages))
        return self._stub.Tokenize(request, timeout=self.timeout, metadata=self.metadata)

    def health(self, service: str = "") -> health_pb2.HealthCheckResponse.ServingStatus.ValueType:
        reply = self._health.Check(
            health_pb2.HealthCheckRequest(service=service), timeout=self.timeout, metadata=self.metadata
        )
        return reply.status

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> QuorumClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class AsyncQuorumClient:
    """asyncio client; use ``async with``. Cancelling a call cancels the RPC and the engine request."""

    def __init__(
        self, target: str, timeout: float | None = 120.0, token: str | None = None, tls: ClientTLS | None = None
    ) -> None:
        self.target = target
        self.timeout = timeout
        self._metadata = _metadata(token)
        self._channel = grpc.aio.secure_channel(target, tls.credentials()) if tls else grpc.aio.insecure_channel(target)
        self._stub = inference_pb2_grpc.InferenceServiceStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)

    async def generate(self, prompt: str, model: str = "", **sampling_fields: Any) -> pb.GenerateResponse:
        request = pb.GenerateRequest(model=model, prompt=prompt, sampling=sampling(**sampling_fields))
        return await self._stub.Generate(request, timeout=self.timeout, metadata=self._metadata)  # type: ignore[misc]

    async def generate_stream(
        self, prompt: str, model: str = "", **sampling_fields: Any
    ) -> AsyncIterator[pb.GenerateStreamResponse]:
        request = pb.GenerateStreamRequest(model=model, prompt=prompt, sampling=sampling(**sampling_fields))
        call = self._stub.GenerateStream(request, timeout=self.timeout, metadata=self._metadata)
        async for response in call:  # type: ignore[attr-defined]
            yield response

    async def chat(self, messages: Iterable[MessageLike], model: str = "", **sampling_fields: Any) -> pb.ChatResponse:
        request = pb.ChatRequest(model=model, messages=chat_messages(messages), sampling=sampling(**sampling_fields))
        return await self._stub.Chat(request, timeout=self.timeout, metadata=self._metadata)  # type: ignore[misc]

    async def chat_stream(
        self, messages: Iterable[MessageLike], model: str = "", **sampling_fields: Any
    ) -> AsyncIterator[pb.ChatStreamResponse]:
        request = pb.ChatStreamRequest(
            model=model, messages=chat_messages(messages), sampling=sampling(**sampling_fields)
        )
        call = self._stub.ChatStream(request, timeout=self.timeout, metadata=self._metadata)
        async for response in call:  # type: ignore[attr-defined]
            yield response

    async def list_models(self) -> pb.ListModelsResponse:
        return await self._stub.ListModels(  # type: ignore[misc]
            pb.ListModelsRequest(), timeout=self.timeout, metadata=self._metadata
        )

    async def tokenize(
        self, prompt: str = "", messages: Iterable[MessageLike] = (), model: str = ""
    ) -> pb.TokenizeResponse:
        request = pb.TokenizeRequest(model=model, prompt=prompt, messages=chat_messages(messages))
        return await self._stub.Tokenize(request, timeout=self.timeout, metadata=self._metadata)  # type: ignore[misc]

    async def close(self) -> None:
        await self._channel.close(None)

    async def __aenter__(self) -> AsyncQuorumClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
