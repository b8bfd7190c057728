"""The entry point: :func:`run_reasoning` runs a request that passed its gate, and guards the stream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing

from opentelemetry.context import Context
from opentelemetry.trace import Span, Status, StatusCode

from . import metrics
from .errors import ReasoningInputError, StrategyUnavailableError
from .events import Event, FinalEvent, SampleEvent, StopReason, VoteEvent
from .llm import LLMClient
from .request import ReasonRequest, Strategy
from .retrieval import RETRIEVE_TOOL, Retriever, RetrieveTool
from .state import RunState
from .strategies import chain_of_thought, direct, rag, react, self_consistency
from .telemetry import aclose, set_usage, start_span
from .tools import ToolRegistry


async def run_reasoning(
    request: ReasonRequest,
    client: LLMClient,
    registry: ToolRegistry,
    trace_parent: Context | None = None,
    retriever: Retriever | None = None,
) -> AsyncGenerator[Event, None]:
    """Answer ``request`` with its strategy, streaming events that end in exactly one :class:`FinalEvent`.

    ``request`` is trusted: it is what :func:`~quorum.reasoning.request.validate` (the Reason gate's
    checks) returned. What only this deployment knows is checked here, before the first event:
    :class:`~quorum.reasoning.errors.StrategyUnavailableError` (RAG without a ``retriever``), a
    ``top_k`` above the retriever's cap, and the retriever's error for an unknown collection. Later,
    budget exhaustion and tool failures end the stream with a final event;
    errors of ``client`` propagate. The wall-clock budget (budget.max_seconds)
    covers the whole run: when it passes, the running engine request is
    aborted and the final event reports BUDGET_TIME with the vote so far.
    Closing the stream early aborts the run as well. ``trace_parent`` (e.g. the
    caller's propagated context) parents the run's root span. ``retriever``
    serves RAG runs and ReAct's ``retrieve`` tool.
    """
    strategy = request.strategy
    top_k = 0
    if strategy is Strategy.RAG or request.collection:
        if retriever is None:
            raise StrategyUnavailableError(
                "strategy: rag needs a retrieval service, which this deployment does not have"
            )
        top_k = _top_k(request, retriever)
        await retriever.check_collection(request.collection)
        if RETRIEVE_TOOL in request.tools:
            registry = registry.with_tool(RetrieveTool(retriever, request.collection, top_k))
    span = start_span(
        "reason",
        None,
        {"quorum.strategy": strategy.value, "quorum.samples": request.samples},
        parent_context=trace_parent,
    )
    state = RunState(span=span, budget=request.budget)
    deadline = asyncio.get_running_loop().time() + request.budget.max_seconds
    outcome, final = "cancelled", None
    try:
        strategy_events = (
            rag.run(request, client, state, retriever, top_k)
            if strategy is Strategy.RAG and retriever is not None
            else _strategy_events(strategy, request, client, state, registry)
        )
        async with aclosing(guarded(strategy_events, deadline, state)) as events:
            async for event in events:
                if isinstance(event, FinalEvent):
                    outcome, final = event.stop_reason.value, event
                    _describe_final(span, event)
                yield event
    except Exception as error:
        outcome = "error"
        span.record_exception(error)
        span.set_status(Status(StatusCode.ERROR, str(error)))
        raise
    finally:
        saved = request.samples - final.samples_used if final and final.stop_reason is StopReason.CONSENSUS else 0
        metrics.record_run(strategy.value, outcome, final.samples_used if final else 0, saved)
        span.end()


async def guarded(events: AsyncIterator[Event], deadline: float, state: RunState) -> AsyncGenerator[Event, None]:
    """Forward ``events`` up to and including their first final event, and stop them at ``deadline``.

    Yields exactly one :class:`FinalEvent`, last: the strategy's own, or one
    built from the progress so far when ``deadline`` (event-loop time) passes
    (BUDGET_TIME) or the strategy ends without one (NO_ANSWER). ``events`` is
    closed on the way out, which aborts any engine request it has running.
    """
    progress = _Progress()
    try:
        while True:
            timeout = asyncio.timeout_at(deadline)
            try:
                async with timeout:
                    event = await anext(events)
            except StopAsyncIteration:
                yield progress.final(state, StopReason.NO_ANSWER, "the strategy ended without a final answer")
                return
            except TimeoutError:
                if not timeout.expired():
                    raise
                detail = f"budget.max_seconds={state.budget.max_seconds:g} passed"
                yield progress.final(state, StopReason.BUDGET_TIME, detail)
                return
            yield event
            if isinstance(event, FinalEvent):
                return
            progress.observe(event)
    finally:
        await aclose(events)


class _Progress:
    """What the events so far say about the answer, for a final event the strategy could not send."""

    def __init__(self) -> None:
        self.samples_used = 0
        self.vote: VoteEvent | None = None

    def observe(self, event: Event) -> None:
        if isinstance(event, SampleEvent):
            self.samples_used += 1
        elif isinstance(event, VoteEvent):
            self.vote = event

    def final(self, state: RunState, stop_reason: StopReason, detail: str) -> FinalEvent:
        counts = self.vote.counts if self.vote else ()
        answered = sum(count.count for count in counts)
        return FinalEvent(
            answer=counts[0].answer if counts else None,
            confidence=counts[0].count / answered if counts else 0.0,
            samples_used=self.samples_used,
            stop_reason=stop_reason,
            usage=state.usage,
            seconds=state.seconds,
            detail=detail,
        )


def _strategy_events(
    strategy: Strategy, request: ReasonRequest, client: LLMClient, state: RunState, registry: ToolRegistry
) -> AsyncIterator[Event]:
    if strategy is Strategy.DIRECT:
        return direct.run(request, client, state)
    if strategy is Strategy.CHAIN_OF_THOUGHT:
        return chain_of_thought.run(request, client, state)
    if strategy is Strategy.SELF_CONSISTENCY:
        return self_consistency.run(request, client, state)
    return react.run(request, client, state, registry)


def _top_k(request: ReasonRequest, retriever: Retriever) -> int:
    if request.top_k > retriever.max_top_k:
        raise ReasoningInputError("top_k", f"must be at most {retriever.max_top_k}, got {request.top_k}")
    return request.top_k or retriever.default_top_k


def _describe_final(span: Span, final: FinalEvent) -> None:
    span.set_attribute("quorum.stop_reason", final.stop_reason.value)
    span.set_attribute("quorum.samples_used", final.samples_used)
    span.set_attribute("quorum.confidence", final.confidence)
    if final.answer is not None:
        span.set_attribute("quorum.answer", final.answer)
    if final.citations:
        span.set_attribute("quorum.citations", list(final.citations))
    set_usage(span, final.usage)
