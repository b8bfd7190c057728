"""SELF_CONSISTENCY: k chain-of-thought samples in ONE engine request, majority vote, optional early stop.

The k samples share one prompt prefill (``Sampling.n = k``). As each sample
finishes, its answer is extracted and a sample event and the updated vote are
emitted; then the early-stopping rule looks at the answers so far. When it
says stop, the stream is closed, which aborts the samples still running inside
the engine; the final event reports ``samples_used`` = the finished samples
and ``stop_reason`` CONSENSUS. Without early stopping all k are used.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import aclosing

from opentelemetry.trace import Span

from ..answers import extract_answer
from ..early_stop import make_rule
from ..events import Event, SampleEvent, StopReason
from ..llm import LLMClient, TokenUsage
from ..prompts import chain_of_thought_messages
from ..request import ReasonRequest
from ..state import RunState
from ..telemetry import ending, set_usage, start_span, traced_chunks
from ..voting import Tally
from .common import call_tokens, final_event, step_sampling, tokens_exhausted

TEMPERATURE = 0.7
MAX_TOKENS = 256


async def run(request: ReasonRequest, client: LLMClient, state: RunState) -> AsyncIterator[Event]:
    """Sample events and votes as samples finish, then the final event (leader answer, its vote share)."""
    k = request.samples
    sampling = step_sampling(request, state, temperature=TEMPERATURE, max_tokens=MAX_TOKENS, n=k)
    messages = chain_of_thought_messages(request)
    rule = make_rule(request.early_stopping)
    tally = Tally()
    texts: dict[int, list[str]] = {}
    finish_reasons: list[str] = []
    usage: TokenUsage | None = None
    stopped_early = False
    started = time.monotonic()
    open_spans: dict[int, Span] = {}
    with ending(start_span("reason.generate", state.span, {"quorum.n": k})) as generate:
        try:
            stream = traced_chunks(client.chat_stream(request.model, messages, sampling), generate)
            async with aclosing(stream) as chunks:
                async for chunk in chunks:
                    usage = chunk.usage or usage
                    for delta in chunk.deltas:
                        if delta.index not in texts:
                            texts[delta.index] = []
                            open_spans[delta.index] = start_span(
                                "reason.sample", generate, {"quorum.sample.index": delta.index}
                            )
                        texts[delta.index].append(delta.text)
                        if not delta.finished:
                            continue
                        text = "".join(texts[delta.index])
                        answer = extract_answer(text, request.answer_format, request.choices)
                        _end_sample(open_spans.pop(delta.index), answer, delta.finish_reason, started)
                        tally.add(answer)
                        finish_reasons.append(delta.finish_reason)
                        yield SampleEvent(delta.index, text, answer, delta.finish_reason)
                        yield tally.event()
                        if tally.finished < k and rule.should_stop(tally.keys):
                            stopped_early = True
                            break
                    if stopped_early:
                        break  # leaving the block closes the stream: the engine aborts the unfinished samples
        finally:
            for span in open_spans.values():
                span.set_attribute("quorum.aborted", True)
                span.end()
        generate.set_attribute("quorum.samples_used", tally.finished)
        generate.set_attribute("quorum.early_stopped", stopped_early)
        set_usage(generate, usage)
    state.add_usage(usage)  # None after an early stop: an aborted request reports no usage
    answer = tally.winner()
    if stopped_early:
        reason = StopReason.CONSENSUS
    elif answer is not None:
        reason = StopReason.ANSWERED
    elif "length" in finish_reasons and sampling.max_tokens < call_tokens(request, MAX_TOKENS):
        reason = StopReason.BUDGET_TOKENS
    else:
        reason = StopReason.NO_ANSWER
    detail = tokens_exhausted(state) if reason is StopReason.BUDGET_TOKENS else ""
    yield final_event(state, answer, reason, samples_used=tally.finished, confidence=tally.confidence(), detail=detail)


def _end_sample(span: Span, answer: str | None, finish_reason: str, started: float) -> None:
    span.set_attribute("quorum.finish_reason", finish_reason)
    span.set_attribute("quorum.latency_ms", (time.monotonic() - started) * 1000)
    if answer is not None:
        span.set_attribute("quorum.answer", answer)
    span.end()
