"""What both front doors (gRPC and OpenAI HTTP) share: the gate of a generation request (Generate, Chat and
their streams; OpenAI's completions and chat completions), which checks it and builds its GenerationRequest,
the Tokenize gate, and folding a stream of chunks into whole choices."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from opentelemetry import trace

from quorum.cluster.config import GatewayConfig
from quorum.cluster.dispatch import ModelDispatcher
from quorum.cluster.errors import InvalidArgument
from quorum.cluster.telemetry import inject_context
from quorum.cluster.tool_calls import check_tools
from quorum.cluster.types import (
    DEFAULT_TOOL_CHOICE,
    ChoiceDelta,
    FinishReason,
    GenerationChunk,
    GenerationRequest,
    Message,
    SamplingOptions,
    TokenLogprob,
    ToolCall,
    ToolChoice,
    ToolSpec,
    Usage,
)
from quorum.cluster.validation import check_messages, check_prompt, check_sampling


def build_request(
    dispatcher: ModelDispatcher,
    gateway: GatewayConfig,
    model: str,
    options: SamplingOptions,
    *,
    prompt: str | None = None,
    messages: tuple[Message, ...] | None = None,
    stream: bool = False,
    tools: tuple[ToolSpec, ...] = (),
    tool_choice: ToolChoice = DEFAULT_TOOL_CHOICE,
) -> tuple[str, GenerationRequest]:
    """(model id, request) after every check that needs no model; raises the domain error of the first bad field."""
    model_id = dispatcher.resolve(model)
    check_sampling(options, gateway.max_n, dispatcher.constraints)
    check_tools(tools, tool_choice, options.constraint, dispatcher.constraints)
    _check_input(gateway, prompt, messages)
    request_id = uuid.uuid4().hex
    span = trace.get_current_span()
    span.set_attribute("quorum.model", model_id)
    span.set_attribute("quorum.request_id", request_id)
    return model_id, GenerationRequest(
        request_id=request_id,
        sampling=options,
        prompt=prompt,
        messages=messages,
        stream=stream,
        trace_context=inject_context(),
        tools=tools,
        tool_choice=tool_choice,
    )


def tokenize_request(
    dispatcher: ModelDispatcher, gateway: GatewayConfig, model: str, prompt: str, messages: tuple[Message, ...] | None
) -> str:
    """The Tokenize gate: the model id, after the same input checks as a generation request's."""
    model_id = dispatcher.resolve(model)
    if messages is None and not prompt:
        raise InvalidArgument("prompt", "give a prompt or messages to tokenize")
    _check_input(gateway, prompt, messages)
    return model_id


def _check_input(gateway: GatewayConfig, prompt: str | None, messages: tuple[Message, ...] | None) -> None:
    if messages is not None:
        check_messages(messages, gateway.max_prompt_chars)
    else:
        check_prompt(prompt or "", gateway.max_prompt_chars)


def merge_deltas(chunks: Iterable[GenerationChunk]) -> tuple[list[ChoiceDelta], Usage]:
    """Whole choices (ordered by index) and the usage of a sequence of chunks."""
    texts: dict[int, list[str]] = {}
    finish: dict[int, FinishReason | None] = {}
    logprobs: dict[int, list[TokenLogprob]] = {}
    calls: dict[int, list[ToolCall]] = {}
    usage = Usage()
    for chunk in chunks:
        for choice in chunk.choices:
            texts.setdefault(choice.index, []).append(choice.text)
            logprobs.setdefault(choice.index, []).extend(choice.logprobs)
            calls.setdefault(choice.index, []).extend(choice.tool_calls)
            if choice.finish_reason is not None:
                finish[choice.index] = choice.finish_reason
        if chunk.usage is not None:
            usage = chunk.usage
    choices = [
        ChoiceDelta(
            index=i,
            text="".join(texts[i]),
            finish_reason=finish.get(i),
            logprobs=tuple(logprobs[i]),
            tool_calls=tuple(calls[i]),
        )
        for i in sorted(texts)
    ]
    return choices, usage
