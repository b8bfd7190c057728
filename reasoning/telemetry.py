"""Tracing helpers (OpenTelemetry API only; the hosting process installs the SDK and exporter).

Spans are started explicitly with a parent instead of being made "current":
strategies are async generators that yield between the start and the end of a
span, and a context attached before a ``yield`` cannot be detached safely after
it. Only around each await on the LLM client is the span attached, so spans the
client creates nest under the step or sample that caused them.

Span names: ``reason`` (one per run), ``reason.generate`` (one engine request),
``reason.sample`` (one self-consistency sample), ``reason.step`` (one model
call of a single-pass or ReAct run) and ``reason.tool`` (one tool call).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import context, trace
from opentelemetry.trace import Span, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from .llm import StreamChunk, TokenUsage


def start_span(
    name: str,
    parent: Span | None = None,
    attributes: Mapping[str, AttributeValue] | None = None,
    parent_context: context.Context | None = None,
) -> Span:
    """Start (not activate) span ``name`` under ``parent``, else under ``parent_context``, else under the current
    span; the caller ends it."""
    if parent is not None:
        parent_context = trace.set_span_in_context(parent)
    return trace.get_tracer("quorum.reasoning").start_span(name, context=parent_context, attributes=attributes)


@contextmanager
def ending(span: Span) -> Iterator[Span]:
    """End ``span`` on leaving the block; an exception marks it failed, a cancellation or close marks it cancelled."""
    try:
        yield span
    except Exception as error:
        span.record_exception(error)
        span.set_status(Status(StatusCode.ERROR, str(error)))
        raise
    except BaseException:
        span.set_attribute("quorum.cancelled", True)
        raise
    finally:
        span.end()


def set_usage(span: Span, usage: TokenUsage | None) -> None:
    """Record an engine request's token usage on ``span`` (nothing when it reported none, e.g. aborted)."""
    if usage is not None:
        span.set_attribute("quorum.prompt_tokens", usage.prompt_tokens)
        span.set_attribute("quorum.completion_tokens", usage.completion_tokens)
        span.set_attribute("quorum.cached_prompt_tokens", usage.cached_prompt_tokens)
        span.set_attribute("quorum.computed_prompt_tokens", usage.computed_prompt_tokens)


async def traced_chunks(stream: AsyncIterator[StreamChunk], span: Span) -> AsyncGenerator[StreamChunk, None]:
    """Forward ``stream`` with ``span`` current while the client works; closing this closes ``stream``.

    Closing ``stream`` early aborts its engine request (see :class:`~quorum.reasoning.llm.LLMClient`).
    """
    active = trace.set_span_in_context(span)
    try:
        while True:
            token = context.attach(active)
            try:
                chunk = await anext(stream)
            except StopAsyncIteration:
                return
            finally:
                context.detach(token)
            yield chunk
    finally:
        await aclose(stream)


async def aclose(stream: AsyncIterator[Any]) -> None:
    """Close an async iterator that supports ``aclose`` (async generators do); others need nothing."""
    close = getattr(stream, "aclose", None)
    if close is not None:
        await close()
