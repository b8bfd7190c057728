"""LangChain adapters over the gRPC client: a chat model, a retriever and tool conversion.

    from langchain_core.tools import tool
    from quorum.client.langchain import QuorumChatModel, QuorumRetriever

    llm = QuorumChatModel(target="127.0.0.1:50051", temperature=0)
    llm.invoke("What is the capital of France?").content

    @tool
    def multiply(a: int, b: int) -> int:
        "Multiply two integers."
        return a * b

    llm.bind_tools([multiply], tool_choice="multiply").invoke("What is 6 times 7?").tool_calls
    QuorumRetriever(target="127.0.0.1:50051", collection="docs", top_k=3).invoke("refund policy")

Everything goes over ``quorum.v1`` gRPC (``InferenceService.Chat``/``ChatStream`` and
``ReasoningService.Search``/``Ingest``), not HTTP. Tool calls are decoded server-side under a JSON grammar
built from the tools' schemas (see ``quorum.cluster.tool_calls``), so their arguments always parse; one call
per turn. Failed calls raise :class:`QuorumError` carrying the server's status code and message.
"""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from operator import itemgetter
from typing import Any, Literal, TypeAlias

import grpc
from langchain_core.callbacks import (
    AsyncCallbackManagerForLLMRun,
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForLLMRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document
from langchain_core.language_models import BaseChatModel, LangSmithParams, LanguageModelInput
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    HumanMessage,
    InvalidToolCall,
    SystemMessage,
    ToolCall,
    ToolCallChunk,
    ToolMessage,
)
from langchain_core.messages.ai import InputTokenDetails, UsageMetadata
from langchain_core.messages.tool import invalid_tool_call, tool_call, tool_call_chunk
from langchain_core.output_parsers import JsonOutputParser, PydanticOutputParser
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import Runnable, RunnableMap, RunnablePassthrough
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_json_schema, convert_to_openai_tool
from langchain_core.utils.pydantic import is_basemodel_subclass
from pydantic import BaseModel, Field, PrivateAttr, SecretStr

from quorum.v1 import inference_pb2 as pb
from quorum.v1 import reasoning_pb2 as rpb

from .sdk import AsyncQuorumClient, ClientTLS, QuorumClient

__all__ = [
    "QuorumChatModel",
    "QuorumError",
    "QuorumRetriever",
    "ai_message",
    "chat_result",
    "from_chat_message",
    "quorum_documents",
    "retrieved_documents",
    "stream_chunk",
    "to_chat_message",
    "to_chat_messages",
    "tool_choice_name",
    "tool_definition",
    "tool_definitions",
    "usage_metadata",
]

ToolInput: TypeAlias = BaseTool | type | Callable[..., Any] | Mapping[str, Any] | pb.ToolDefinition
ToolChoiceInput: TypeAlias = str | bool | Mapping[str, Any] | None

# Per-call keyword arguments that become SamplingParams fields (``llm.bind(max_tokens=8)``, ``invoke(..., seed=1)``).
SAMPLING_KEYS = frozenset(pb.SamplingParams.DESCRIPTOR.fields_by_name) - {"constraint"} | {
    "json_schema",
    "regex",
    "choice",
}
# Content blocks that only restate an AI message's tool_calls.
_TOOL_CALL_BLOCKS = frozenset({"tool_call", "tool_call_chunk", "function_call", "tool_use"})
_ROLES = {"human": "user", "ai": "assistant"}


class QuorumError(RuntimeError):
    """A failed quorum RPC: ``code`` is the gRPC status, the message is the server's."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details


def _error(exc: grpc.RpcError) -> QuorumError:
    code = exc.code() if callable(getattr(exc, "code", None)) else grpc.StatusCode.UNKNOWN  # type: ignore[attr-defined]
    details = exc.details() if callable(getattr(exc, "details", None)) else str(exc)  # type: ignore[attr-defined]
    return QuorumError(code, details or "")


# --- tools -------------------------------------------------------------------------------------------------------


def tool_definition(tool: ToolInput) -> pb.ToolDefinition:
    """A quorum ToolDefinition from a LangChain ``BaseTool``, a pydantic model, a typed function or an OpenAI-style
    dict (``{"type": "function", "function": {...}}`` or ``{"name", "description", "parameters"}``)."""
    if isinstance(tool, pb.ToolDefinition):
        return tool
    function = convert_to_openai_tool(tool)["function"]
    parameters = function.get("parameters")
    return pb.ToolDefinition(
        name=function["name"],
        description=function.get("description", ""),
        parameters_json_schema=json.dumps(parameters) if parameters else "",
    )


def tool_definitions(tools: Iterable[ToolInput]) -> list[pb.ToolDefinition]:
    return [tool_definition(tool) for tool in tools]


def tool_choice_name(choice: ToolChoiceInput, tool_names: Sequence[str] = ()) -> str | None:
    """LangChain's tool_choice spellings as the client's: ``"auto"``, ``"none"``, ``"required"`` or a tool name.

    ``"any"`` and ``True`` mean required; ``False`` means none; ``{"type": "function", "function": {"name": n}}``
    and ``{"name": n}`` name a tool. A name must be among ``tool_names`` when they are given."""
    if choice is None:
        return None
    if isinstance(choice, bool):
        return "required" if choice else "none"
    if isinstance(choice, Mapping):
        function = choice.get("function")
        name = function.get("name") if isinstance(function, Mapping) else choice.get("name")
        if not isinstance(name, str):
            raise ValueError(f"tool_choice {dict(choice)!r} names no tool")
        choice = name
    if choice in ("auto", "none", "required"):
        return choice
    if choice == "any":
        return "required"
    if tool_names and choice not in tool_names:
        raise ValueError(f"tool_choice {choice!r} is not among the bound tools ({', '.join(tool_names)})")
    return choice


# --- messages ----------------------------------------------------------------------------------------------------


def _text(content: str | list[str | dict[str, Any]], skip_tool_calls: bool = False) -> str:
    if isinstance(content, str):
        return content
    parts = []
    for block in content:
        if isinstance(block, str):
            parts.append(block)
        elif block.get("type") == "text":
            parts.append(str(block.get("text", "")))
        elif not (skip_tool_calls and block.get("type") in _TOOL_CALL_BLOCKS):
            raise ValueError(f"quorum chat messages carry text only, got a {block.get('type')!r} content block")
    return "".join(parts)


def _call_to_proto(call: ToolCall) -> pb.ToolCallRequest:
    return pb.ToolCallRequest(id=call.get("id") or "", name=call["name"], arguments_json=json.dumps(call["args"]))


def to_chat_message(message: BaseMessage) -> pb.ChatMessage:
    """One LangChain message as a ``quorum.v1.ChatMessage`` (AI tool calls and tool results included)."""
    if isinstance(message, SystemMessage):
        return pb.ChatMessage(role="system", content=_text(message.content))
    if isinstance(message, HumanMessage):
        return pb.ChatMessage(role="user", content=_text(message.content))
    if isinstance(message, AIMessage):
        return pb.ChatMessage(
            role="assistant",
            content=_text(message.content, skip_tool_calls=True),
            tool_calls=[_call_to_proto(call) for call in message.tool_calls],
        )
    if isinstance(message, ToolMessage):
        return pb.ChatMessage(role="tool", content=_text(message.content), tool_call_id=message.tool_call_id)
    if isinstance(message, ChatMessage):
        return pb.ChatMessage(role=_ROLES.get(message.role, message.role), content=_text(message.content))
    raise TypeError(f"quorum cannot send a {type(message).__name__}")


def to_chat_messages(messages: Iterable[BaseMessage]) -> list[pb.ChatMessage]:
    return [to_chat_message(message) for message in messages]


def _tool_calls(calls: Iterable[pb.ToolCallRequest]) -> tuple[list[ToolCall], list[InvalidToolCall]]:
    valid: list[ToolCall] = []
    invalid: list[InvalidToolCall] = []
    for call in calls:
        try:
            args = json.loads(call.arguments_json) if call.arguments_json else {}
        except ValueError as exc:
            invalid.append(invalid_tool_call(name=call.name, args=call.arguments_json, id=call.id, error=str(exc)))
            continue
        if isinstance(args, dict):
            valid.append(tool_call(name=call.name, args=args, id=call.id))
        else:
            invalid.append(
                invalid_tool_call(name=call.name, args=call.arguments_json, id=call.id, error="not a JSON object")
            )
    return valid, invalid


def from_chat_message(message: pb.ChatMessage) -> BaseMessage:
    """A ``quorum.v1.ChatMessage`` as the matching LangChain message."""
    if message.role == "system":
        return SystemMessage(content=message.content)
    if message.role == "user":
        return HumanMessage(content=message.content)
    if message.role == "assistant":
        valid, invalid = _tool_calls(message.tool_calls)
        return AIMessage(content=message.content, tool_calls=valid, invalid_tool_calls=invalid)
    if message.role == "tool":
        return ToolMessage(content=message.content, tool_call_id=message.tool_call_id)
    return ChatMessage(role=message.role, content=message.content)


# --- responses ---------------------------------------------------------------------------------------------------


def _finish_reason(value: pb.FinishReason.ValueType) -> str | None:
    if value == pb.FINISH_REASON_UNSPECIFIED:
        return None
    return pb.FinishReason.Name(value).removeprefix("FINISH_REASON_").lower()


def usage_metadata(usage: pb.Usage) -> UsageMetadata:
    return UsageMetadata(
        input_tokens=usage.prompt_tokens,
        output_tokens=usage.completion_tokens,
        total_tokens=usage.prompt_tokens + usage.completion_tokens,
        input_token_details=InputTokenDetails(cache_read=usage.cached_prompt_tokens),
    )


def ai_message(choice: pb.Choice, response: pb.ChatResponse) -> AIMessage:
    """One choice of a chat response as an AIMessage with parsed tool calls, usage and response metadata."""
    valid, invalid = _tool_calls(choice.tool_calls)
    metadata: dict[str, Any] = {"model_name": response.model, "request_id": response.request_id}
    if (reason := _finish_reason(choice.finish_reason)) is not None:
        metadata["finish_reason"] = reason
    return AIMessage(
        content=choice.text,
        tool_calls=valid,
        invalid_tool_calls=invalid,
        usage_metadata=usage_metadata(response.usage),
        response_metadata=metadata,
    )


def chat_result(response: pb.ChatResponse) -> ChatResult:
    """A ChatResult with one generation per choice (``n``); usage is the request's, on every message."""
    generations = [
        ChatGeneration(
            message=ai_message(choice, response),
            generation_info={"finish_reason": _finish_reason(choice.finish_reason)},
        )
        for choice in response.choices
    ]
    usage = usage_metadata(response.usage)
    return ChatResult(
        generations=generations,
        llm_output={"model_name": response.model, "request_id": response.request_id, "token_usage": dict(usage)},
    )


def stream_chunk(response: pb.ChatStreamResponse) -> ChatGenerationChunk | None:
    """The ChatGenerationChunk of one stream message (choice 0), or None when it carries nothing.

    The last message (the one with ``usage``) also carries the model, request id and usage, once, so that merging
    the chunks does not repeat them."""
    content: list[str] = []
    chunks: list[ToolCallChunk] = []
    metadata: dict[str, Any] = {}
    for choice in response.choices:
        if choice.index != 0:
            continue
        content.append(choice.text)
        chunks.extend(
            tool_call_chunk(name=call.name, args=call.arguments_json, id=call.id, index=i)
            for i, call in enumerate(choice.tool_calls)
        )
        if (reason := _finish_reason(choice.finish_reason)) is not None:
            metadata["finish_reason"] = reason
    last = response.HasField("usage")
    if last:
        metadata.update(model_name=response.model, request_id=response.request_id)
    text = "".join(content)
    if not (text or chunks or metadata):
        return None
    message = AIMessageChunk(
        content=text,
        tool_call_chunks=chunks,
        response_metadata=metadata,
        usage_metadata=usage_metadata(response.usage) if last else None,
        chunk_position="last" if last else None,
    )
    info = {"finish_reason": metadata["finish_reason"]} if "finish_reason" in metadata else None
    return ChatGenerationChunk(message=message, generation_info=info)


class _Connection:
    """The lazily opened blocking client of a model or retriever (thread-safe), reopened when the connection
    settings change (``model_copy(update=...)`` shares it). Deep copies and unpickled instances start
    unconnected, so LangChain may copy or serialize the owner."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._client: QuorumClient | None = None
        self._settings: tuple[Any, ...] = ()

    def get(self, target: str, timeout: float | None, token: SecretStr | None, tls: ClientTLS | None) -> QuorumClient:
        settings = (target, timeout, _secret(token), tls)
        with self._lock:
            if self._client is not None and self._settings != settings:
                self._client.close()
                self._client = None
            if self._client is None:
                self._client = QuorumClient(target, timeout, _secret(token), tls)
                self._settings = settings
            return self._client

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def __deepcopy__(self, memo: dict[int, Any]) -> _Connection:
        return _Connection()

    def __reduce__(self) -> tuple[type[_Connection], tuple[()]]:
        return _Connection, ()


# --- chat model --------------------------------------------------------------------------------------------------


class QuorumChatModel(BaseChatModel):
    """A quorum cluster's chat model over gRPC (``InferenceService.Chat`` / ``ChatStream``).

    Sampling fields left ``None`` take the server defaults; per-call keyword arguments (``invoke(..., seed=1)``,
    ``bind(max_tokens=8)``) override them and may name any ``SamplingParams`` field plus ``json_schema``,
    ``regex`` and ``choice`` (output constraints) and ``model``."""

    target: str = "127.0.0.1:50051"
    """gRPC address of the gateway, ``host:port``."""
    model: str = ""
    """Model id from ListModels; empty = the cluster's default model."""
    token: SecretStr | None = None
    """Bearer token, when the gateway requires one."""
    tls: ClientTLS | None = None
    """TLS settings; None = plaintext."""
    timeout: float | None = 120.0
    """Deadline of each call in seconds."""
    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    top_k: int | None = None
    seed: int | None = None
    stop: list[str] | None = None
    n: int | None = Field(default=None, ge=1)
    """Choices per request (generations of a ChatResult); streaming supports only 1."""
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    repetition_penalty: float | None = None

    _connection: _Connection = PrivateAttr(default_factory=_Connection)

    @property
    def _llm_type(self) -> str:
        return "quorum"

    @property
    def lc_secrets(self) -> dict[str, str]:
        return {"token": "QUORUM_TOKEN"}

    @property
    def _sampling(self) -> dict[str, Any]:
        fields = {
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "top_p": self.top_p,
            "top_k": self.top_k,
            "seed": self.seed,
            "stop": self.stop,
            "n": self.n,
            "presence_penalty": self.presence_penalty,
            "frequency_penalty": self.frequency_penalty,
            "repetition_penalty": self.repetition_penalty,
        }
        return {name: value for name, value in fields.items() if value is not None}

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"target": self.target, "model": self.model, **self._sampling}

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = LangSmithParams(
            ls_provider="quorum", ls_model_name=kwargs.get("model") or self.model or "default", ls_model_type="chat"
        )
        if (temperature := kwargs.get("temperature", self.temperature)) is not None:
            params["ls_temperature"] = temperature
        if (max_tokens := kwargs.get("max_tokens", self.max_tokens)) is not None:
            params["ls_max_tokens"] = max_tokens
        if stop := stop or self.stop:
            params["ls_stop"] = stop
        return params

    # -- requests --

    def _request(self, stop: list[str] | None, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Keyword arguments of ``QuorumClient.chat`` from the model's fields and a call's ``kwargs``."""
        kwargs = dict(kwargs)
        kwargs.pop("ls_structured_output_format", None)
        model = kwargs.pop("model", None) or self.model
        tools = kwargs.pop("tools", None) or []
        choice = kwargs.pop("tool_choice", None)
        unknown = sorted(set(kwargs) - SAMPLING_KEYS)
        if unknown:
            raise TypeError(f"QuorumChatModel got unknown argument(s): {', '.join(unknown)}")
        fields = {**self._sampling, **{k: v for k, v in kwargs.items() if v is not None}}
        if stop is not None:
            fields["stop"] = list(stop)
        definitions = tool_definitions(tools)
        return {
            "model": model,
            "tools": definitions,
            "tool_choice": tool_choice_name(choice, [d.name for d in definitions]),
            **fields,
        }

    def _sync_client(self) -> QuorumClient:
        return self._connection.get(self.target, self.timeout, self.token, self.tls)

    def _async_client(self) -> AsyncQuorumClient:
        # grpc.aio channels belong to the event loop they were made on, so each async call gets its own.
        return AsyncQuorumClient(self.target, self.timeout, _secret(self.token), self.tls)

    def close(self) -> None:
        """Close the cached channel of the blocking calls (a later call opens a new one)."""
        self._connection.close()

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        request = self._request(stop, kwargs)
        try:
            response = self._sync_client().chat(to_chat_messages(messages), **request)
        except grpc.RpcError as exc:
            raise _error(exc) from exc
        return chat_result(response)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        request = self._request(stop, kwargs)
        async with self._async_client() as client:
            try:
                response = await client.chat(to_chat_messages(messages), **request)
            except grpc.RpcError as exc:
                raise _error(exc) from exc
        return chat_result(response)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        request = _single_choice(self._request(stop, kwargs))
        stream = self._sync_client().chat_stream(to_chat_messages(messages), **request)
        try:
            for response in stream:
                chunk = stream_chunk(response)
                if chunk is None:
                    continue
                if run_manager:
                    run_manager.on_llm_new_token(chunk.text, chunk=chunk)
                yield chunk
        except grpc.RpcError as exc:
            raise _error(exc) from exc
        finally:
            stream.close()  # cancels the RPC (and the engine request) when the consumer stops early

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        request = _single_choice(self._request(stop, kwargs))
        async with self._async_client() as client:  # closing the channel cancels an unfinished RPC
            try:
                async for response in client.chat_stream(to_chat_messages(messages), **request):
                    chunk = stream_chunk(response)
                    if chunk is None:
                        continue
                    if run_manager:
                        await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
                    yield chunk
            except grpc.RpcError as exc:
                raise _error(exc) from exc

    # -- tools and structured output --

    def bind_tools(
        self,
        tools: Sequence[ToolInput],
        *,
        tool_choice: ToolChoiceInput = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Offer ``tools`` to the model: LangChain tools, pydantic models, typed functions or OpenAI-style dicts.

        ``tool_choice``: ``"auto"`` (default), ``"none"``, ``"required"``/``"any"``/``True``, or a tool's name
        (that call is forced). Calls come back as ``AIMessage.tool_calls`` with parsed ``args`` and ids."""
        formatted = [_openai_tool(tool) for tool in tools]
        names = [tool["function"]["name"] for tool in formatted]
        choice = tool_choice_name(tool_choice, names)
        if choice is not None:
            kwargs["tool_choice"] = choice
        return super().bind(tools=formatted, **kwargs)

    def with_structured_output(
        self,
        schema: dict[str, Any] | type,
        *,
        include_raw: bool = False,
        method: Literal["function_calling", "json_schema"] = "function_calling",
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, dict[str, Any] | BaseModel]:
        """Answers parsed into ``schema`` (a pydantic model, TypedDict, JSON schema or OpenAI tool dict).

        ``function_calling`` (default): a forced call of a tool with the schema's arguments (the server describes
        the schema to the model). ``json_schema``: the reply itself is decoded under the schema as a grammar."""
        if method == "function_calling":
            return super().with_structured_output(schema, include_raw=include_raw, **kwargs)
        if kwargs:
            raise ValueError(f"unsupported arguments: {', '.join(sorted(kwargs))}")
        json_schema = convert_to_json_schema(schema)
        llm = self.bind(
            json_schema=json.dumps(json_schema),
            ls_structured_output_format={"kwargs": {"method": "json_schema"}, "schema": json_schema},
        )
        parser: Runnable[BaseMessage, Any]
        if isinstance(schema, type) and is_basemodel_subclass(schema):
            parser = PydanticOutputParser(pydantic_object=schema)
        else:
            parser = JsonOutputParser()
        if not include_raw:
            return llm | parser
        parsed = RunnablePassthrough.assign(parsed=itemgetter("raw") | parser, parsing_error=lambda _: None)
        fallback = RunnablePassthrough.assign(parsed=lambda _: None)
        return RunnableMap(raw=llm) | parsed.with_fallbacks([fallback], exception_key="parsing_error")


def _secret(token: SecretStr | None) -> str | None:
    return token.get_secret_value() if token is not None else None


def _openai_tool(tool: ToolInput) -> dict[str, Any]:
    """The OpenAI form bound as ``tools`` (what agent frameworks inspect); converted to protos per request."""
    if isinstance(tool, pb.ToolDefinition):
        parameters = json.loads(tool.parameters_json_schema) if tool.parameters_json_schema else {}
        tool = {"name": tool.name, "description": tool.description, "parameters": parameters}
    return convert_to_openai_tool(tool)


def _single_choice(request: dict[str, Any]) -> dict[str, Any]:
    if request.get("n", 1) > 1:
        raise ValueError("streaming returns one choice; use invoke/generate for n > 1")
    return request


# --- retriever ---------------------------------------------------------------------------------------------------


def retrieved_documents(response: rpb.SearchResponse, collection: str = "") -> list[Document]:
    """Search hits as Documents, best first; metadata holds the document's own labels plus ``document_id``,
    ``chunk_index``, ``score`` and ``collection``."""
    documents = []
    for chunk in response.chunks:
        metadata: dict[str, Any] = dict(chunk.metadata)
        metadata.update(document_id=chunk.document_id, chunk_index=chunk.chunk_index, score=chunk.score)
        if collection:
            metadata["collection"] = collection
        documents.append(
            Document(id=f"{chunk.document_id}#{chunk.chunk_index}", page_content=chunk.text, metadata=metadata)
        )
    return documents


def quorum_documents(documents: Sequence[Document], ids: Sequence[str] | None = None) -> list[rpb.Document]:
    """LangChain Documents as quorum Documents to ingest; the id is ``ids[i]``, else ``Document.id``, else
    ``metadata["document_id"]``. Metadata values are sent as strings."""
    if ids is not None and len(ids) != len(documents):
        raise ValueError(f"got {len(ids)} ids for {len(documents)} documents")
    result = []
    for i, document in enumerate(documents):
        doc_id = ids[i] if ids is not None else document.id or document.metadata.get("document_id")
        if not doc_id:
            raise ValueError(f"documents[{i}] has no id (pass ids=, or set Document.id)")
        metadata = {str(k): str(v) for k, v in document.metadata.items() if k != "document_id"}
        result.append(rpb.Document(id=str(doc_id), text=document.page_content, metadata=metadata))
    return result


class QuorumRetriever(BaseRetriever):
    """Chunks of a quorum document collection closest to the query (``ReasoningService.Search``), best first."""

    collection: str
    """Collection name."""
    top_k: int = Field(default=4, ge=0)
    """Hits per query; 0 = the server default."""
    target: str = "127.0.0.1:50051"
    token: SecretStr | None = None
    tls: ClientTLS | None = None
    timeout: float | None = 60.0

    _connection: _Connection = PrivateAttr(default_factory=_Connection)

    def _sync_client(self) -> QuorumClient:
        return self._connection.get(self.target, self.timeout, self.token, self.tls)

    def _async_client(self) -> AsyncQuorumClient:
        return AsyncQuorumClient(self.target, self.timeout, _secret(self.token), self.tls)

    def close(self) -> None:
        self._connection.close()

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        try:
            response = self._sync_client().search(self.collection, query, self.top_k)
        except grpc.RpcError as exc:
            raise _error(exc) from exc
        return retrieved_documents(response, self.collection)

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun
    ) -> list[Document]:
        async with self._async_client() as client:
            try:
                response = await client.search(self.collection, query, self.top_k)
            except grpc.RpcError as exc:
                raise _error(exc) from exc
        return retrieved_documents(response, self.collection)

    def add_documents(self, documents: Sequence[Document], ids: Sequence[str] | None = None) -> rpb.IngestResponse:
        """Ingest LangChain Documents into the collection (re-using an id replaces that document)."""
        try:
            return self._sync_client().ingest(self.collection, quorum_documents(documents, ids))
        except grpc.RpcError as exc:
            raise _error(exc) from exc

    async def aadd_documents(
        self, documents: Sequence[Document], ids: Sequence[str] | None = None
    ) -> rpb.IngestResponse:
        async with self._async_client() as client:
            try:
                return await client.ingest(self.collection, quorum_documents(documents, ids))
            except grpc.RpcError as exc:
                raise _error(exc) from exc
