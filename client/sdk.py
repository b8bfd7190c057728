"""Typed Python clients for a quorum cluster, sync and asyncio, over the generated stubs.

    with QuorumClient("127.0.0.1:50051") as client:
        reply = client.chat([("user", "What is the capital of France?")], temperature=0)
        print(reply.choices[0].text)

Sampling keyword arguments are the fields of ``quorum.v1.SamplingParams``. Document collections of
``quorum.v1.ReasoningService`` are reached with ``ingest``, ``search``, ``delete_documents``,
``delete_collection`` and ``list_collections``; ``reason`` streams a Reason run, and ``reason_with_tools``
runs a ReAct request whose ``client_tools`` are local Python functions. LangChain adapters live in
``quorum.client.langchain``.

Calls that fail with UNAVAILABLE, or RESOURCE_EXHAUSTED carrying the server's ``RetryInfo``, are tried
again after the server's delay, as the client's :class:`~quorum.client.retry.RetryPolicy` allows (3 tries
by default, within the call's ``timeout``; streams only before their first response). Failed calls raise
``grpc.RpcError`` with the server's status code and message.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TypeAlias, TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from quorum.v1 import inference_pb2 as pb
from quorum.v1 import inference_pb2_grpc, reasoning_pb2_grpc
from quorum.v1 import reasoning_pb2 as rpb

from .retry import RetryPolicy

MessageLike: TypeAlias = pb.ChatMessage | tuple[str, str]
ToolLike: TypeAlias = pb.ToolDefinition | Mapping[str, Any]
DocumentLike: TypeAlias = rpb.Document | Mapping[str, Any] | tuple[str, str]
Metadata: TypeAlias = tuple[tuple[str, str | bytes], ...]
ToolFunction: TypeAlias = Callable[[dict[str, Any]], object]
Response = TypeVar("Response")


def model_health_name(model_id: str) -> str:
    """The grpc.health.v1 service name that reports one model's readiness."""
    return f"model/{model_id}"


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


def tool_definitions(tools: Iterable[ToolLike]) -> list[pb.ToolDefinition]:
    """ToolDefinitions from protos or mappings ``{"name", "description", "parameters": <JSON Schema dict>}``."""
    result = []
    for tool in tools:
        if isinstance(tool, pb.ToolDefinition):
            result.append(tool)
            continue
        parameters = tool.get("parameters")
        result.append(
            pb.ToolDefinition(
                name=tool["name"],
                description=tool.get("description", ""),
                parameters_json_schema=json.dumps(parameters) if parameters is not None else "",
            )
        )
    return result


def tool_choice(choice: str | pb.ToolChoice | None) -> pb.ToolChoice | None:
    """``"auto"``, ``"none"``, ``"required"`` or a tool's name, as a ToolChoice."""
    if choice is None or isinstance(choice, pb.ToolChoice):
        return choice
    modes = {
        "auto": pb.TOOL_CHOICE_MODE_AUTO,
        "none": pb.TOOL_CHOICE_MODE_NONE,
        "required": pb.TOOL_CHOICE_MODE_REQUIRED,
    }
    if choice in modes:
        return pb.ToolChoice(mode=modes[choice])
    return pb.ToolChoice(mode=pb.TOOL_CHOICE_MODE_REQUIRED, name=choice)


def chat_request(
    messages: Iterable[MessageLike],
    model: str,
    tools: Iterable[ToolLike] | None,
    choice: str | pb.ToolChoice | None,
    sampling_fields: dict[str, Any],
) -> pb.ChatRequest:
    return pb.ChatRequest(
        model=model,
        messages=chat_messages(messages),
        sampling=sampling(**sampling_fields),
        tools=tool_definitions(tools or ()),
        tool_choice=tool_choice(choice),
    )


def chat_stream_request(
    messages: Iterable[MessageLike],
    model: str,
    tools: Iterable[ToolLike] | None,
    choice: str | pb.ToolChoice | None,
    sampling_fields: dict[str, Any],
) -> pb.ChatStreamRequest:
    unary = chat_request(messages, model, tools, choice, sampling_fields)
    return pb.ChatStreamRequest(
        model=unary.model,
        messages=unary.messages,
        sampling=unary.sampling,
        tools=unary.tools,
        tool_choice=unary.tool_choice,
    )


def documents(docs: Iterable[DocumentLike]) -> list[rpb.Document]:
    """Documents from protos, ``(id, text)`` pairs or mappings ``{"id", "text", "metadata": {str: str}}``."""
    result = []
    for doc in docs:
        if isinstance(doc, rpb.Document):
            result.append(doc)
        elif isinstance(doc, tuple):
            result.append(rpb.Document(id=doc[0], text=doc[1]))
        else:
            metadata = {str(k): str(v) for k, v in (doc.get("metadata") or {}).items()}
            result.append(rpb.Document(id=doc["id"], text=doc["text"], metadata=metadata))
    return result


def pending_tool_call(final: rpb.Final) -> pb.ToolCallRequest | None:
    """The client tool call a run stopped at (``STOP_REASON_TOOL_CALL``), else None."""
    if final.stop_reason != rpb.STOP_REASON_TOOL_CALL or not final.steps or not final.steps[-1].tool_calls:
        return None
    return final.steps[-1].tool_calls[0]


def continued_request(request: rpb.ReasonRequest, final: rpb.Final, result: str) -> rpb.ReasonRequest:
    """The request that continues the run ``final`` ended at a client tool call, with the call's ``result``
    (start it with "Error: " to report a failure)."""
    call = pending_tool_call(final)
    if call is None:
        raise ValueError("the run did not stop at a client tool call (stop_reason STOP_REASON_TOOL_CALL)")
    follow = rpb.ReasonRequest()
    follow.CopyFrom(request)
    del follow.steps[:]
    follow.steps.extend(final.steps)
    follow.steps.append(pb.ChatMessage(role="tool", tool_call_id=call.id, content=result))
    return follow


def run_tool_function(functions: Mapping[str, ToolFunction], call: pb.ToolCallRequest) -> str:
    """Run the local function for ``call``: its return value as text (JSON unless a string), or
    "Error: ..." when it is missing or raises, so the model sees the failure."""
    function = functions.get(call.name)
    if function is None:
        return f"Error: no local function for the tool {call.name!r}"
    try:
        value = function(json.loads(call.arguments_json or "{}"))
    except Exception as error:  # noqa: BLE001 - a failing tool is reported to the model, not raised
        return f"Error: {type(error).__name__}: {error}"
    return value if isinstance(value, str) else json.dumps(value)


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


class _Deadline:
    """The time left of one call across its tries (``timeout`` None: no deadline)."""

    def __init__(self, timeout: float | None) -> None:
        self._end = None if timeout is None else time.monotonic() + timeout

    def remaining(self) -> float | None:
        return None if self._end is None else max(self._end - time.monotonic(), 0.0)


class QuorumClient:
    """Blocking client. ``timeout`` (seconds) is each call's gRPC deadline, retries included; ``retry``
    says which failures are tried again (``RetryPolicy(max_attempts=1)``: never); ``sleep`` waits between
    tries."""

    def __init__(
        self,
        target: str,
        timeout: float | None = 120.0,
        token: str | None = None,
        tls: ClientTLS | None = None,
        retry: RetryPolicy = RetryPolicy(),  # noqa: B008 - frozen, shared safely
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.target = target
        self.timeout = timeout
        self.retry = retry
        self._sleep = sleep
        self.metadata = _metadata(token)
        self.channel = grpc.secure_channel(target, tls.credentials()) if tls else grpc.insecure_channel(target)
        self._stub = inference_pb2_grpc.InferenceServiceStub(self.channel)
        self._reasoning = reasoning_pb2_grpc.ReasoningServiceStub(self.channel)
        self._health = health_pb2_grpc.HealthStub(self.channel)

    def _unary(self, method: Callable[..., Response], request: Any) -> Response:
        deadline = _Deadline(self.timeout)
        attempt = 1
        while True:
            try:
                return method(request, timeout=deadline.remaining(), metadata=self.metadata)
            except grpc.RpcError as error:
                delay = self.retry.delay(error, attempt, deadline.remaining())
                if delay is None:
                    raise
            self._sleep(delay)
            attempt += 1

    def _stream(self, method: Callable[..., Iterable[Response]], request: Any) -> Generator[Response, None, None]:
        deadline = _Deadline(self.timeout)
        attempt = 1
        while True:
            call = method(request, timeout=deadline.remaining(), metadata=self.metadata)
            received = False
            try:
                for response in call:
                    received = True
                    yield response
                return
            except grpc.RpcError as error:
                delay = None if received else self.retry.delay(error, attempt, deadline.remaining())
                if delay is None:
                    raise
            finally:
                call.cancel()  # type: ignore[attr-defined]
            self._sleep(delay)
            attempt += 1

    def generate(self, prompt: str, model: str = "", **sampling_fields: Any) -> pb.GenerateResponse:
        request = pb.GenerateRequest(model=model, prompt=prompt, sampling=sampling(**sampling_fields))
        return self._unary(self._stub.Generate, request)

    def generate_stream(
        self, prompt: str, model: str = "", **sampling_fields: Any
    ) -> Generator[pb.GenerateStreamResponse, None, None]:
        request = pb.GenerateStreamRequest(model=model, prompt=prompt, sampling=sampling(**sampling_fields))
        return self._stream(self._stub.GenerateStream, request)

    def chat(
        self,
        messages: Iterable[MessageLike],
        model: str = "",
        tools: Iterable[ToolLike] | None = None,
        tool_choice: str | pb.ToolChoice | None = None,
        **sampling_fields: Any,
    ) -> pb.ChatResponse:
        return self._unary(self._stub.Chat, chat_request(messages, model, tools, tool_choice, sampling_fields))

    def chat_stream(
        self,
        messages: Iterable[MessageLike],
        model: str = "",
        tools: Iterable[ToolLike] | None = None,
        tool_choice: str | pb.ToolChoice | None = None,
        **sampling_fields: Any,
    ) -> Generator[pb.ChatStreamResponse, None, None]:
        request = chat_stream_request(messages, model, tools, tool_choice, sampling_fields)
        return self._stream(self._stub.ChatStream, request)

    def list_models(self) -> pb.ListModelsResponse:
        return self._unary(self._stub.ListModels, pb.ListModelsRequest())

    def tokenize(self, prompt: str = "", messages: Iterable[MessageLike] = (), model: str = "") -> pb.TokenizeResponse:
        request = pb.TokenizeRequest(model=model, prompt=prompt, messages=chat_messages(messages))
        return self._unary(self._stub.Tokenize, request)

    def list_tools(self) -> rpb.ListToolsResponse:
        """The server-side tools of ``ReasoningService`` (for ``Reason`` requests)."""
        return self._unary(self._reasoning.ListTools, rpb.ListToolsRequest())

    def reason(self, request: rpb.ReasonRequest) -> Generator[rpb.ReasonResponse, None, None]:
        """Stream the events of one Reason run; the last one is ``final``. Closing the generator cancels it."""
        return self._stream(self._reasoning.Reason, request)

    def reason_with_tools(
        self, request: rpb.ReasonRequest, functions: Mapping[str, ToolFunction]
    ) -> Generator[rpb.ReasonResponse, None, None]:
        """Stream a ReAct run whose ``client_tools`` are the local ``functions`` (by name, each taking the
        arguments dict): whenever the run stops at a call of one, run it here and continue the run with
        its result (:func:`continued_request`), streaming every part's events. It ends because each
        continuation carries one more step and a run has at most ``max_steps``."""
        while True:
            final: rpb.Final | None = None
            for event in self.reason(request):
                yield event
                if event.HasField("final"):
                    final = event.final
            call = pending_tool_call(final) if final is not None else None
            if final is None or call is None:
                return
            request = continued_request(request, final, run_tool_function(functions, call))

    def ingest(self, collection: str, docs: Iterable[DocumentLike]) -> rpb.IngestResponse:
        """Chunk, embed and index documents into ``collection``; re-ingesting an id replaces the document."""
        return self._unary(self._reasoning.Ingest, rpb.IngestRequest(collection=collection, documents=documents(docs)))

    def search(self, collection: str, query: str, top_k: int = 0) -> rpb.SearchResponse:
        """The ``top_k`` chunks of ``collection`` closest to ``query``, best first (0 = server default)."""
        return self._unary(self._reasoning.Search, rpb.SearchRequest(collection=collection, query=query, top_k=top_k))

    def delete_documents(self, collection: str, document_ids: Iterable[str]) -> rpb.DeleteDocumentsResponse:
        request = rpb.DeleteDocumentsRequest(collection=collection, document_ids=list(document_ids))
        return self._unary(self._reasoning.DeleteDocuments, request)

    def delete_collection(self, collection: str) -> rpb.DeleteCollectionResponse:
        """Remove ``collection`` with all its documents (NOT_FOUND when it does not exist)."""
        return self._unary(self._reasoning.DeleteCollection, rpb.DeleteCollectionRequest(collection=collection))

    def list_collections(self) -> rpb.ListCollectionsResponse:
        return self._unary(self._reasoning.ListCollections, rpb.ListCollectionsRequest())

    def health(self, service: str = "") -> health_pb2.HealthCheckResponse.ServingStatus.ValueType:
        """The grpc.health.v1 status of ``service`` ("" = the cluster, :func:`model_health_name` = a model)."""
        return self._unary(self._health.Check, health_pb2.HealthCheckRequest(service=service)).status

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> QuorumClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class AsyncQuorumClient:
    """asyncio client; use ``async with``. Cancelling a call cancels the RPC and the engine request.
    ``timeout``, ``retry`` and ``sleep`` as for :class:`QuorumClient` (``sleep`` is awaited)."""

    def __init__(
        self,
        target: str,
        timeout: float | None = 120.0,
        token: str | None = None,
        tls: ClientTLS | None = None,
        retry: RetryPolicy = RetryPolicy(),  # noqa: B008 - frozen, shared safely
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.target = target
        self.timeout = timeout
        self.retry = retry
        self._sleep = sleep
        self._metadata = _metadata(token)
        self._channel = grpc.aio.secure_channel(target, tls.credentials()) if tls else grpc.aio.insecure_channel(target)
        self._stub = inference_pb2_grpc.InferenceServiceStub(self._channel)
        self._reasoning = reasoning_pb2_grpc.ReasoningServiceStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)

    async def _unary(self, method: Callable[..., Awaitable[Response]], request: Any) -> Response:
        deadline = _Deadline(self.timeout)
        attempt = 1
        while True:
            try:
                return await method(request, timeout=deadline.remaining(), metadata=self._metadata)
            except grpc.RpcError as error:
                delay = self.retry.delay(error, attempt, deadline.remaining())
                if delay is None:
                    raise
            await self._sleep(delay)
            attempt += 1

    async def _stream(self, method: Callable[..., Any], request: Any) -> AsyncIterator[Any]:
        deadline = _Deadline(self.timeout)
        attempt = 1
        while True:
            call = method(request, timeout=deadline.remaining(), metadata=self._metadata)
            received = False
            try:
                async for response in call:
                    received = True
                    yield response
                return
            except grpc.RpcError as error:
                delay = None if received else self.retry.delay(error, attempt, deadline.remaining())
                if delay is None:
                    raise
            finally:
                call.cancel()
            await self._sleep(delay)
            attempt += 1

    async def generate(self, prompt: str, model: str = "", **sampling_fields: Any) -> pb.GenerateResponse:
        request = pb.GenerateRequest(model=model, prompt=prompt, sampling=sampling(**sampling_fields))
        return await self._unary(self._stub.Generate, request)  # type: ignore[arg-type]

    def generate_stream(
        self, prompt: str, model: str = "", **sampling_fields: Any
    ) -> AsyncIterator[pb.GenerateStreamResponse]:
        request = pb.GenerateStreamRequest(model=model, prompt=prompt, sampling=sampling(**sampling_fields))
        return self._stream(self._stub.GenerateStream, request)

    async def chat(
        self,
        messages: Iterable[MessageLike],
        model: str = "",
        tools: Iterable[ToolLike] | None = None,
        tool_choice: str | pb.ToolChoice | None = None,
        **sampling_fields: Any,
    ) -> pb.ChatResponse:
        request = chat_request(messages, model, tools, tool_choice, sampling_fields)
        return await self._unary(self._stub.Chat, request)  # type: ignore[arg-type]

    def chat_stream(
        self,
        messages: Iterable[MessageLike],
        model: str = "",
        tools: Iterable[ToolLike] | None = None,
        tool_choice: str | pb.ToolChoice | None = None,
        **sampling_fields: Any,
    ) -> AsyncIterator[pb.ChatStreamResponse]:
        request = chat_stream_request(messages, model, tools, tool_choice, sampling_fields)
        return self._stream(self._stub.ChatStream, request)

    async def list_models(self) -> pb.ListModelsResponse:
        return await self._unary(self._stub.ListModels, pb.ListModelsRequest())  # type: ignore[arg-type]

    async def tokenize(
        self, prompt: str = "", messages: Iterable[MessageLike] = (), model: str = ""
    ) -> pb.TokenizeResponse:
        request = pb.TokenizeRequest(model=model, prompt=prompt, messages=chat_messages(messages))
        return await self._unary(self._stub.Tokenize, request)  # type: ignore[arg-type]

    async def list_tools(self) -> rpb.ListToolsResponse:
        return await self._unary(self._reasoning.ListTools, rpb.ListToolsRequest())  # type: ignore[arg-type]

    def reason(self, request: rpb.ReasonRequest) -> AsyncIterator[rpb.ReasonResponse]:
        """Stream the events of one Reason run; the last one is ``final``."""
        return self._stream(self._reasoning.Reason, request)

    async def ingest(self, collection: str, docs: Iterable[DocumentLike]) -> rpb.IngestResponse:
        request = rpb.IngestRequest(collection=collection, documents=documents(docs))
        return await self._unary(self._reasoning.Ingest, request)  # type: ignore[arg-type]

    async def search(self, collection: str, query: str, top_k: int = 0) -> rpb.SearchResponse:
        request = rpb.SearchRequest(collection=collection, query=query, top_k=top_k)
        return await self._unary(self._reasoning.Search, request)  # type: ignore[arg-type]

    async def delete_documents(self, collection: str, document_ids: Iterable[str]) -> rpb.DeleteDocumentsResponse:
        request = rpb.DeleteDocumentsRequest(collection=collection, document_ids=list(document_ids))
        return await self._unary(self._reasoning.DeleteDocuments, request)  # type: ignore[arg-type]

    async def delete_collection(self, collection: str) -> rpb.DeleteCollectionResponse:
        request = rpb.DeleteCollectionRequest(collection=collection)
        return await self._unary(self._reasoning.DeleteCollection, request)  # type: ignore[arg-type]

    async def list_collections(self) -> rpb.ListCollectionsResponse:
        return await self._unary(self._reasoning.ListCollections, rpb.ListCollectionsRequest())  # type: ignore[arg-type]

    async def health(self, service: str = "") -> health_pb2.HealthCheckResponse.ServingStatus.ValueType:
        """The grpc.health.v1 status of ``service`` ("" = the cluster, :func:`model_health_name` = a model)."""
        request = health_pb2.HealthCheckRequest(service=service)
        reply: health_pb2.HealthCheckResponse = await self._unary(self._health.Check, request)  # type: ignore[arg-type]
        return reply.status

    async def close(self) -> None:
        await self._channel.close(None)

    async def __aenter__(self) -> AsyncQuorumClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
