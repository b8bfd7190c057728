"""Pure conversion between OpenAI's JSON and the cluster's plain types (no I/O, no FastAPI).

Request bodies become the same :class:`SamplingOptions`, messages and tools the gRPC API builds, and
the cluster's chunks become OpenAI responses, stream chunks (server-sent events) and errors.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from quorum.cluster.errors import EngineUnavailable, InvalidArgument, ModelNotFound, Overloaded, QuorumError
from quorum.cluster.types import (
    DEFAULT_TOOL_CHOICE,
    ChoiceDelta,
    FinishReason,
    GenerationChunk,
    Message,
    OutputConstraint,
    SamplingOptions,
    TokenLogprob,
    ToolCall,
    ToolChoice,
    ToolChoiceMode,
    ToolSpec,
    Usage,
)

from .openai_schema import ChatCompletionRequest, CompletionRequest, SamplingBody

Endpoint = Literal["chat", "completions"]
JSON = dict[str, Any]
SSE_DONE = "data: [DONE]\n\n"


@dataclass(frozen=True)
class ParsedRequest:
    """What a body asks for, in the cluster's terms, plus what the response needs to know."""

    endpoint: Endpoint
    model: str
    options: SamplingOptions
    prompt: str | None = None
    messages: tuple[Message, ...] | None = None
    tools: tuple[ToolSpec, ...] = ()
    tool_choice: ToolChoice = DEFAULT_TOOL_CHOICE
    stream: bool = False
    include_usage: bool = False
    logprobs: bool = False
    max_tokens_param: str = "max_tokens"


# ---------------------------------------------------------------------------------------------- requests


def _unsupported(param: str, what: str) -> InvalidArgument:
    return InvalidArgument(param, f"{what} is not supported by this server")


def _sampling(
    body: SamplingBody, max_tokens: int | None, logprobs: int | None, constraint: OutputConstraint | None
) -> SamplingOptions:
    """OpenAI's defaults for unset fields; range checks happen in ``cluster.validation``."""
    if body.logit_bias:
        raise _unsupported("logit_bias", "logit_bias")
    return SamplingOptions(
        max_tokens=max_tokens,
        temperature=1.0 if body.temperature is None else body.temperature,
        top_p=1.0 if body.top_p is None else body.top_p,
        top_k=body.top_k or 0,
        seed=body.seed,
        stop=tuple(body.stop or ()),
        n=1 if body.n is None else body.n,
        presence_penalty=body.presence_penalty or 0.0,
        frequency_penalty=body.frequency_penalty or 0.0,
        repetition_penalty=1.0 if body.repetition_penalty is None else body.repetition_penalty,
        min_tokens=body.min_tokens or 0,
        logprobs=logprobs,
        constraint=constraint,
    )


def _include_usage(body: SamplingBody) -> bool:
    if body.stream_options is not None and not body.stream:
        raise InvalidArgument("stream_options", "is only allowed with stream: true")
    return bool(body.stream_options and body.stream_options.include_usage)


def completion_input(body: CompletionRequest) -> ParsedRequest:
    if len(body.prompt) != 1:
        raise InvalidArgument("prompt", f"send one prompt string per request, got a list of {len(body.prompt)}")
    if body.echo:
        raise _unsupported("echo", "echo")
    if body.suffix:
        raise _unsupported("suffix", "suffix")
    if body.best_of is not None and body.best_of != (body.n or 1):
        raise _unsupported("best_of", "best_of other than n")
    return ParsedRequest(
        endpoint="completions",
        model=body.model,
        options=_sampling(body, body.max_tokens, body.logprobs, None),
        prompt=body.prompt[0],
        stream=bool(body.stream),
        include_usage=_include_usage(body),
        logprobs=body.logprobs is not None,
    )


def _response_constraint(body: ChatCompletionRequest) -> OutputConstraint | None:
    response_format = body.response_format
    if response_format is None or response_format.type == "text":
        return None
    if response_format.type == "json_object":
        return OutputConstraint(json_schema=json.dumps({"type": "object"}))
    if response_format.json_schema is None:
        raise InvalidArgument("response_format.json_schema", "is required when type is 'json_schema'")
    schema = response_format.json_schema.schema_
    return OutputConstraint(json_schema=json.dumps(schema if schema is not None else {"type": "object"}))


def _messages(body: ChatCompletionRequest) -> tuple[Message, ...]:
    messages = []
    call_ids: set[str] = set()
    for i, m in enumerate(body.messages):
        calls: tuple[ToolCall, ...] = ()
        if m.tool_calls:
            if m.role != "assistant":
                raise InvalidArgument(f"messages[{i}].tool_calls", "only assistant messages carry tool calls")
            calls = tuple(
                ToolCall(id=c.id, name=c.function.name, arguments_json=c.function.arguments) for c in m.tool_calls
            )
            call_ids.update(c.id for c in calls)
        if m.role == "tool":
            if not m.tool_call_id:
                raise InvalidArgument(f"messages[{i}].tool_call_id", "is required for role 'tool'")
            if m.tool_call_id not in call_ids:
                raise InvalidArgument(
                    f"messages[{i}].tool_call_id",
                    f"'{m.tool_call_id}' does not answer a tool call of an earlier assistant message",
                )
        elif m.tool_call_id:
            raise InvalidArgument(f"messages[{i}].tool_call_id", "only tool messages carry a tool_call_id")
        # OpenAI's "developer" role is the system role of models without one.
        role = "system" if m.role == "developer" else m.role
        messages.append(
            Message(role=role, content=m.content or "", tool_calls=calls, tool_call_id=m.tool_call_id or "")
        )
    return tuple(messages)


def _tools(body: ChatCompletionRequest) -> tuple[tuple[ToolSpec, ...], ToolChoice]:
    specs = tuple(
        ToolSpec(
            name=t.function.name,
            description=t.function.description or "",
            parameters_json_schema=json.dumps(t.function.parameters) if t.function.parameters is not None else "",
        )
        for t in body.tools or ()
    )
    choice = body.tool_choice
    if choice is None:
        return specs, DEFAULT_TOOL_CHOICE
    if choice.function is not None:
        return specs, ToolChoice(mode=ToolChoiceMode.REQUIRED, name=choice.function.name)
    return specs, ToolChoice(mode=ToolChoiceMode(choice.mode))


def chat_input(body: ChatCompletionRequest) -> ParsedRequest:
    if body.max_tokens is not None and body.max_completion_tokens is not None:
        raise InvalidArgument("max_completion_tokens", "give max_completion_tokens or max_tokens, not both")
    if body.top_logprobs is not None and not body.logprobs:
        raise InvalidArgument("top_logprobs", "needs logprobs: true")
    max_tokens = body.max_completion_tokens if body.max_completion_tokens is not None else body.max_tokens
    logprobs = (body.top_logprobs or 0) if body.logprobs else None
    tools, choice = _tools(body)
    return ParsedRequest(
        endpoint="chat",
        model=body.model,
        options=_sampling(body, max_tokens, logprobs, _response_constraint(body)),
        messages=_messages(body),
        tools=tools,
        tool_choice=choice,
        stream=bool(body.stream),
        include_usage=_include_usage(body),
        logprobs=bool(body.logprobs),
        max_tokens_param="max_completion_tokens" if body.max_completion_tokens is not None else "max_tokens",
    )


# ---------------------------------------------------------------------------------------------- errors

_TOOL_FIELD = re.compile(r"tools\[(\d+)\]\.(name|parameters_json_schema)")


def openai_param(field: str, endpoint: Endpoint, max_tokens_param: str = "max_tokens") -> str:
    """The request-body field (OpenAI's ``param``) behind a domain error's field name."""
    if field == "sampling.max_tokens":
        return max_tokens_param
    if field == "sampling.logprobs":
        return "top_logprobs" if endpoint == "chat" else "logprobs"
    if field.startswith("sampling.constraint"):
        return "response_format"
    if field.startswith("sampling."):
        return field.removeprefix("sampling.")
    if field == "prompt" and endpoint == "chat":
        return "messages"  # the rendered conversation is the prompt
    match = _TOOL_FIELD.fullmatch(field)
    if match:
        return f"tools[{match[1]}].function.{'name' if match[2] == 'name' else 'parameters'}"
    if field == "tool_choice.name":
        return "tool_choice.function.name"
    return field


def error_body(message: str, type_: str, param: str | None = None, code: str | None = None) -> JSON:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def domain_error(error: QuorumError, endpoint: Endpoint, max_tokens_param: str = "max_tokens") -> tuple[int, JSON]:
    """(HTTP status, OpenAI error body) of a domain error."""
    if isinstance(error, InvalidArgument):
        param = openai_param(error.field, endpoint, max_tokens_param)
        return 400, error_body(f"{param}: {error.problem}", "invalid_request_error", param)
    if isinstance(error, ModelNotFound):
        return 404, error_body(error.message, "invalid_request_error", "model", "model_not_found")
    if isinstance(error, Overloaded):
        return 429, error_body(error.message, "rate_limit_error", None, "rate_limit_exceeded")
    if isinstance(error, EngineUnavailable):
        return 503, error_body(error.message, "service_unavailable_error", None, "model_not_ready")
    return 500, error_body(error.message, "server_error", None, "internal_error")


def validation_param(loc: Sequence[int | str]) -> str | None:
    """``("body", "messages", 0, "content")`` -> ``messages[0].content``; None for the body itself."""
    parts = list(loc[1:] if loc and loc[0] == "body" else loc)
    param = ""
    for part in parts:
        param += f"[{part}]" if isinstance(part, int) else (f".{part}" if param else str(part))
    return param or None


def validation_error(errors: Sequence[dict[str, Any]]) -> JSON:
    """The OpenAI error body of a request body that failed parsing or validation (the first problem)."""
    first: dict[str, Any] = errors[0] if errors else {"type": "missing", "loc": ("body",), "msg": ""}
    kind = str(first.get("type", ""))
    param = validation_param(first.get("loc", ()))
    if kind == "json_invalid":
        detail = first.get("ctx", {}).get("error", first.get("msg", ""))
        return error_body(f"the request body is not valid JSON ({detail})", "invalid_request_error")
    if param is None:
        if kind == "missing":
            return error_body("the request needs a JSON object body", "invalid_request_error")
        return error_body(f"the request body must be a JSON object: {first.get('msg', '')}", "invalid_request_error")
    if kind == "extra_forbidden":
        return error_body(f"{param}: unrecognized request argument", "invalid_request_error", param)
    message = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
    return error_body(f"{param}: {message}", "invalid_request_error", param)


# ---------------------------------------------------------------------------------------------- responses

CHAT_PREFIX = "chatcmpl-"
COMPLETION_PREFIX = "cmpl-"


def usage_json(usage: Usage) -> JSON:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_prompt_tokens},
    }


def _finish(reason: FinishReason | None) -> str | None:
    return None if reason is None else reason.value


def chat_logprobs(logprobs: Sequence[TokenLogprob]) -> JSON:
    return {
        "content": [
            {
                "token": lp.token,
                "logprob": lp.logprob,
                "bytes": list(lp.token.encode()),
                "top_logprobs": [
                    {"token": t.token, "logprob": t.logprob, "bytes": list(t.token.encode())} for t in lp.top
                ],
            }
            for lp in logprobs
        ]
    }


def completion_logprobs(logprobs: Sequence[TokenLogprob], offset: int = 0) -> JSON:
    """The legacy completions format; ``offset`` is where the choice's text so far ends."""
    offsets = []
    for lp in logprobs:
        offsets.append(offset)
        offset += len(lp.token)
    return {
        "tokens": [lp.token for lp in logprobs],
        "token_logprobs": [lp.logprob for lp in logprobs],
        "top_logprobs": [{t.token: t.logprob for t in lp.top} for lp in logprobs],
        "text_offset": offsets,
    }


def tool_calls_json(calls: Sequence[ToolCall], with_index: bool = False) -> list[JSON]:
    return [
        {
            **({"index": i} if with_index else {}),
            "id": call.id,
            "type": "function",
            "function": {"name": call.name, "arguments": call.arguments_json},
        }
        for i, call in enumerate(calls)
    ]


def chat_message(choice: ChoiceDelta) -> JSON:
    message: JSON = {"role": "assistant", "content": (choice.text or None) if choice.tool_calls else choice.text}
    if choice.tool_calls:
        message["tool_calls"] = tool_calls_json(choice.tool_calls)
    return message


def chat_response(
    parsed: ParsedRequest, request_id: str, model: str, created: int, choices: Sequence[ChoiceDelta], usage: Usage
) -> JSON:
    return {
        "id": CHAT_PREFIX + request_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": c.index,
                "message": chat_message(c),
                "logprobs": chat_logprobs(c.logprobs) if parsed.logprobs else None,
                "finish_reason": _finish(c.finish_reason),
            }
            for c in choices
        ],
        "usage": usage_json(usage),
    }


def completion_response(
    parsed: ParsedRequest, request_id: str, model: str, created: int, choices: Sequence[ChoiceDelta], usage: Usage
) -> JSON:
    return {
        "id": COMPLETION_PREFIX + request_id,
        "object": "text_completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": c.index,
                "text": c.text,
                "logprobs": completion_logprobs(c.logprobs) if parsed.logprobs else None,
                "finish_reason": _finish(c.finish_reason),
            }
            for c in choices
        ],
        "usage": usage_json(usage),
    }


def sse(data: JSON) -> str:
    """One server-sent event carrying ``data`` as compact JSON."""
    return f"data: {json.dumps(data, ensure_ascii=False, separators=(',', ':'))}\n\n"


class StreamEncoder:
    """Turns the cluster's chunks into OpenAI stream chunks (``chat.completion.chunk`` or ``text_completion``).

    With tools, a choice's reply or call arrives whole on its last delta; it is sent as one delta.
    """

    def __init__(self, parsed: ParsedRequest, request_id: str, model: str, created: int) -> None:
        self._parsed = parsed
        chat = parsed.endpoint == "chat"
        self._envelope: JSON = {
            "id": (CHAT_PREFIX if chat else COMPLETION_PREFIX) + request_id,
            "object": "chat.completion.chunk" if chat else "text_completion",
            "created": created,
            "model": model,
        }
        self._started: set[int] = set()
        self._offsets: dict[int, int] = {}
        self._usage: Usage | None = None

    def _chunk(self, choices: list[JSON], usage: Usage | None = None) -> JSON:
        chunk = {**self._envelope, "choices": choices}
        if self._parsed.include_usage:
            chunk["usage"] = usage_json(usage) if usage is not None else None
        return chunk

    def _chat_choice(self, delta: ChoiceDelta) -> JSON:
        message: JSON = {}
        if delta.index not in self._started:
            self._started.add(delta.index)
            message["role"] = "assistant"
        if delta.text or not delta.tool_calls:
            message["content"] = delta.text
        if delta.tool_calls:
            message["tool_calls"] = tool_calls_json(delta.tool_calls, with_index=True)
        return {
            "index": delta.index,
            "delta": message,
            "logprobs": chat_logprobs(delta.logprobs) if self._parsed.logprobs else None,
            "finish_reason": _finish(delta.finish_reason),
        }

    def _completion_choice(self, delta: ChoiceDelta) -> JSON:
        offset = self._offsets.get(delta.index, 0)
        self._offsets[delta.index] = offset + len(delta.text)
        return {
            "index": delta.index,
            "text": delta.text,
            "logprobs": completion_logprobs(delta.logprobs, offset) if self._parsed.logprobs else None,
            "finish_reason": _finish(delta.finish_reason),
        }

    def encode(self, chunk: GenerationChunk) -> list[JSON]:
        """The stream chunks of one cluster chunk (none when it carries nothing new)."""
        if chunk.usage is not None:
            self._usage = chunk.usage
        encode = self._chat_choice if self._parsed.endpoint == "chat" else self._completion_choice
        choices = [
            encode(d) for d in chunk.choices if d.text or d.tool_calls or d.finish_reason is not None or d.logprobs
        ]
        return [self._chunk(choices)] if choices else []

    def finish(self) -> list[JSON]:
        """The closing usage chunk (``stream_options.include_usage``), sent before ``data: [DONE]``."""
        if not self._parsed.include_usage:
            return []
        return [self._chunk([], self._usage or Usage())]
