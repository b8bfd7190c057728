"""What the strategies share: decoding settings under the budget, one streamed model call, the final event."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import aclosing
from dataclasses import dataclass

from opentelemetry.trace import Span

from quorum.cluster.types import OutputConstraint

from ..answers import extract_answer
from ..events import Event, FinalEvent, StepEvent, StopReason
from ..llm import ChatTurn, LLMClient, Sampling, TokenUsage
from ..request import ReasonRequest
from ..state import RunState
from ..telemetry import ending, set_usage, start_span, traced_chunks
from ..tools import ToolStep


@dataclass
class Completion:
    """The outcome of one single-sample model call, filled in by :func:`stream_step`."""

    text: str = ""
    finish_reason: str = ""
    usage: TokenUsage | None = None


def call_tokens(request: ReasonRequest, default: int) -> int:
    """Tokens one model call may generate before the budget is considered: the override or ``default``."""
    return request.sampling.max_tokens or default


def step_sampling(
    request: ReasonRequest,
    state: RunState,
    *,
    temperature: float,
    max_tokens: int,
    n: int = 1,
    json_schema: str | None = None,
    frequency_penalty: float = 0.0,
) -> Sampling:
    """Decoding settings for a call of ``n`` samples: overrides win over the strategy defaults
    (``temperature``, ``max_tokens`` per sample), and the samples together cannot exceed the
    remaining token budget. The caller makes sure at least one token per sample remains. A call
    whose prompt leaves less room in the model's context than ``max_tokens`` gets that room
    (``fit_context``; see :func:`cut_by_context`).
    """
    overrides = request.sampling
    return Sampling(
        max_tokens=min(call_tokens(request, max_tokens), state.remaining_tokens // n),
        temperature=temperature if overrides.temperature is None else overrides.temperature,
        top_p=1.0 if overrides.top_p is None else overrides.top_p,
        seed=overrides.seed,
        n=n,
        # The strategy's grammar (ReAct's actions), built around the request's tools: errors about it name
        # client_tools, the part of it the client wrote.
        constraint=None if json_schema is None else OutputConstraint(json_schema=json_schema, source="client_tools"),
        fit_context=True,
        frequency_penalty=frequency_penalty,
    )


def cut_by_context(completion: Completion, sampling: Sampling) -> bool:
    """True when a single-sample call stopped at the end of the model's context: cut off ("length")
    before its ``max_tokens``, which ``fit_context`` lowered to the room the prompt left."""
    usage = completion.usage
    return completion.finish_reason == "length" and usage is not None and usage.completion_tokens < sampling.max_tokens


def context_full(completion: Completion) -> str:
    """The final event's detail for a run that filled the model's context."""
    usage = completion.usage or TokenUsage()
    return (
        f"the conversation ({usage.prompt_tokens} prompt + {usage.completion_tokens} generated tokens) "
        "filled the model's context (max_model_len)"
    )


async def stream_step(
    client: LLMClient,
    model: str,
    messages: Sequence[ChatTurn],
    sampling: Sampling,
    state: RunState,
    span: Span,
    step: int,
    completion: Completion,
) -> AsyncGenerator[StepEvent, None]:
    """One single-sample model call: yields its text as step events of ``step``, fills ``completion``,
    adds its usage to ``state`` and records usage and latency on ``span``. Iterate it under
    ``aclosing``: closing it is what closes (aborts) the engine stream."""
    started = time.monotonic()
    parts: list[str] = []
    async with aclosing(traced_chunks(client.chat_stream(model, messages, sampling), span)) as chunks:
        async for chunk in chunks:
            for delta in chunk.deltas:
                if delta.text:
                    parts.append(delta.text)
                    yield StepEvent(step, delta.text)
                if delta.finished:
                    completion.finish_reason = delta.finish_reason
            if chunk.usage is not None:
                completion.usage = chunk.usage
    completion.text = "".join(parts)
    state.add_usage(completion.usage)
    set_usage(span, completion.usage)
    span.set_attribute("quorum.finish_reason", completion.finish_reason)
    span.set_attribute("quorum.latency_ms", (time.monotonic() - started) * 1000)


def final_event(
    state: RunState,
    answer: str | None,
    stop_reason: StopReason,
    *,
    samples_used: int,
    confidence: float | None = None,
    detail: str = "",
    steps: tuple[ToolStep, ...] = (),
) -> FinalEvent:
    """The final event with the run's usage so far; ``confidence`` defaults to 1.0 with an answer, else 0.0."""
    if confidence is None:
        confidence = 1.0 if answer is not None else 0.0
    return FinalEvent(
        answer=answer,
        confidence=confidence,
        samples_used=samples_used,
        stop_reason=stop_reason,
        usage=state.usage,
        seconds=state.seconds,
        detail=detail,
        steps=steps,
    )


def tokens_exhausted(state: RunState) -> str:
    return f"budget.max_tokens={state.budget.max_tokens} generated tokens used up"


async def single_pass(
    request: ReasonRequest,
    client: LLMClient,
    state: RunState,
    messages: Sequence[ChatTurn],
    *,
    temperature: float,
    max_tokens: int,
) -> AsyncIterator[Event]:
    """One model call whose text streams as step 1 and holds the answer (direct and chain-of-thought).

    Final: ANSWERED with the extracted answer; CONTEXT_FULL when the text was cut
    off by the end of the model's context; BUDGET_TOKENS when it was cut off
    because the token budget, not the per-call limit, ran out; else NO_ANSWER.
    """
    sampling = step_sampling(request, state, temperature=temperature, max_tokens=max_tokens)
    completion = Completion()
    with ending(start_span("reason.step", state.span, {"quorum.step": 1})) as span:
        async with aclosing(
            stream_step(client, request.model, messages, sampling, state, span, 1, completion)
        ) as steps:
            async for event in steps:
                yield event
        answer = extract_answer(completion.text, request.answer_format, request.choices)
        if answer is not None:
            span.set_attribute("quorum.answer", answer)
    if answer is not None:
        yield final_event(state, answer, StopReason.ANSWERED, samples_used=1)
    elif cut_by_context(completion, sampling):
        yield final_event(state, None, StopReason.CONTEXT_FULL, samples_used=1, detail=context_full(completion))
    elif completion.finish_reason == "length" and sampling.max_tokens < call_tokens(request, max_tokens):
        yield final_event(state, None, StopReason.BUDGET_TOKENS, samples_used=1, detail=tokens_exhausted(state))
    else:
        yield final_event(state, None, StopReason.NO_ANSWER, samples_used=1)
