import asyncio
import importlib
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import replace

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, StatusCode
from prometheus_client import REGISTRY

from quorum.reasoning import metrics
from quorum.reasoning.early_stop import EarlyStopping, StopRule
from quorum.reasoning.errors import ReasoningInputError, StrategyUnavailableError, UnknownToolError
from quorum.reasoning.events import AnswerCount, Event, FinalEvent, SampleEvent, StepEvent, StopReason, VoteEvent
from quorum.reasoning.llm import ChatTurn, Sampling, StreamChunk
from quorum.reasoning.request import Budget, ReasoningLimits, ReasonRequest, Strategy, validate
from quorum.reasoning.runner import guarded, run_reasoning
from quorum.reasoning.state import RunState
from quorum.reasoning.tools import ToolRegistry, default_registry

from .fakes import ANSWER, CALCULATE, FakeTool, ScriptedClient, reply, samples
from .helpers import drain, of_type, reason
from .test_react import REACT

SC = ReasonRequest(question="What is 5 + 8?", strategy=Strategy.SELF_CONSISTENCY, samples=4)
COT = ReasonRequest(question="What is 5 + 8?")


def attributes(span: ReadableSpan) -> Mapping[str, object]:
    return span.attributes or {}


def _state(max_seconds: float = 60) -> RunState:
    return RunState(span=NonRecordingSpan(None), budget=Budget(max_seconds=max_seconds))  # type: ignore[arg-type]


async def _deadline(seconds: float) -> float:
    return asyncio.get_running_loop().time() + seconds


async def test_time_budget_aborts_the_engine_request_and_reports_the_vote_so_far() -> None:
    texts = ["The answer is 13."] * 2 + ["The answer is 14."] * 2
    client = ScriptedClient([samples(texts)], stall_after=3)  # the start of all 4, 2 finished, then nothing
    events, final = await reason(replace(SC, budget=Budget(max_seconds=0.5)), client)
    assert client.calls[0].aborted
    assert final.stop_reason is StopReason.BUDGET_TIME
    assert "budget.max_seconds=0.5 passed" in final.detail
    assert final.seconds >= 0.5
    assert final.samples_used == len(of_type(events, SampleEvent)) == 2
    assert (final.answer, final.confidence) == ("13", 1.0)


async def test_time_budget_during_a_tool_call() -> None:
    registry = ToolRegistry([FakeTool("slow", "sleep")], timeout_s=30)
    client = ScriptedClient([reply('{"tool": "slow", "arguments": {}}')])
    request = replace(REACT, tools=("slow",), budget=Budget(max_seconds=0.05))
    _, final = await reason(request, client, registry)
    assert (final.answer, final.stop_reason, final.samples_used) == (None, StopReason.BUDGET_TIME, 0)


async def test_guarded_builds_a_final_when_the_strategy_has_none() -> None:
    async def no_final() -> AsyncIterator[Event]:
        yield SampleEvent(0, "The answer is 7", "7", "stop")
        yield VoteEvent((AnswerCount("7", 1),), 0)

    events = await drain(guarded(no_final(), await _deadline(5), _state()))
    final = events[-1]
    assert isinstance(final, FinalEvent)
    assert (final.answer, final.stop_reason, final.samples_used) == ("7", StopReason.NO_ANSWER, 1)


async def test_guarded_stops_at_the_first_final_and_closes_the_strategy() -> None:
    closed = []

    async def chatty() -> AsyncIterator[Event]:
        try:
            yield StepEvent(1, "x")
            yield FinalEvent("1", 1.0, 1, StopReason.ANSWERED, _state().usage, 0.0)
            yield FinalEvent("2", 1.0, 1, StopReason.ANSWERED, _state().usage, 0.0)
        finally:
            closed.append(True)

    events = await drain(guarded(chatty(), await _deadline(5), _state()))
    assert [type(event) for event in events] == [StepEvent, FinalEvent]
    assert closed == [True]


async def test_guarded_passes_foreign_timeouts_through() -> None:
    async def failing() -> AsyncIterator[Event]:
        raise TimeoutError("the client's own timeout")
        yield StepEvent(1, "unreachable")

    with pytest.raises(TimeoutError, match="client's own"):
        await drain(guarded(failing(), await _deadline(5), _state()))


def test_the_gate_names_the_bad_field_and_returns_the_request_to_run() -> None:
    names = default_registry().names()
    with pytest.raises(ReasoningInputError, match="question: must not be empty"):
        validate(replace(COT, question=""), ReasoningLimits(), names)
    with pytest.raises(UnknownToolError):
        validate(replace(REACT, tools=("shell",)), ReasoningLimits(), names)
    trusted = validate(replace(COT, strategy="direct"), ReasoningLimits(), names)  # type: ignore[arg-type]
    assert trusted.strategy is Strategy.DIRECT


async def test_rag_is_not_available_yet() -> None:
    request = replace(COT, strategy=Strategy.RAG, collection="docs")
    with pytest.raises(StrategyUnavailableError, match="rag"):
        await anext(run_reasoning(request, ScriptedClient([]), default_registry()))


class BrokenClient:
    async def chat_stream(
        self, model: str, messages: Sequence[ChatTurn], sampling: Sampling
    ) -> AsyncIterator[StreamChunk]:
        raise RuntimeError("engine of model 'x' is dead")
        yield StreamChunk(())


def _runs(strategy: str, outcome: str) -> float:
    return REGISTRY.get_sample_value("quorum_reasoning_runs_total", {"strategy": strategy, "outcome": outcome}) or 0


async def test_client_errors_propagate_and_are_recorded(spans: InMemorySpanExporter) -> None:
    before = _runs("chain_of_thought", "error")
    with pytest.raises(RuntimeError, match="is dead"):
        await drain(run_reasoning(COT, BrokenClient(), default_registry()))
    assert _runs("chain_of_thought", "error") == before + 1
    (root,) = [span for span in spans.get_finished_spans() if span.name == "reason"]
    assert root.status.status_code is StatusCode.ERROR


async def test_closing_the_stream_early_aborts_the_engine_request() -> None:
    client = ScriptedClient([reply("Let me think step by step about it.", pieces=6)])
    events = run_reasoning(COT, client, default_registry())
    first = await anext(events)
    assert isinstance(first, StepEvent)
    before = _runs("chain_of_thought", "cancelled")
    await events.aclose()
    assert client.calls[0].aborted
    assert _runs("chain_of_thought", "cancelled") == before + 1


async def test_react_spans(spans: InMemorySpanExporter) -> None:
    await reason(REACT, ScriptedClient([reply(CALCULATE), reply(ANSWER)]))
    finished = {span.name: span for span in spans.get_finished_spans()}
    by_name = [span.name for span in spans.get_finished_spans()]
    assert sorted(by_name) == ["reason", "reason.step", "reason.step", "reason.tool"]
    root, tool = finished["reason"], finished["reason.tool"]
    steps = [span for span in spans.get_finished_spans() if span.name == "reason.step"]
    assert all(step.parent is not None and step.parent.span_id == root.context.span_id for step in steps)
    assert tool.parent is not None
    assert tool.parent.span_id == steps[0].context.span_id
    assert attributes(tool)["quorum.tool"] == "calculator"
    assert attributes(steps[0])["quorum.completion_tokens"] == 20
    assert attributes(steps[0])["quorum.cached_prompt_tokens"] == 60
    assert attributes(steps[0])["quorum.action"] == "calculator"
    assert "quorum.latency_ms" in attributes(steps[0])
    assert attributes(root)["quorum.stop_reason"] == "answered"
    assert attributes(root)["quorum.answer"] == "7006652"
    assert attributes(root)["quorum.completion_tokens"] == 40


async def test_self_consistency_spans_and_metrics(spans: InMemorySpanExporter) -> None:
    request = replace(SC, samples=8, early_stopping=EarlyStopping(StopRule.BETA))
    texts = ["The answer is 13."] * 8
    used = REGISTRY.get_sample_value("quorum_reasoning_samples_used_total", {"strategy": "self_consistency"}) or 0
    saved = REGISTRY.get_sample_value("quorum_reasoning_samples_saved_total", {"strategy": "self_consistency"}) or 0
    runs = _runs("self_consistency", "consensus")
    await reason(request, ScriptedClient([samples(texts)]))
    sample_spans = [span for span in spans.get_finished_spans() if span.name == "reason.sample"]
    assert len(sample_spans) == 8
    aborted = [span for span in sample_spans if attributes(span).get("quorum.aborted")]
    answered = [span for span in sample_spans if attributes(span).get("quorum.answer") == "13"]
    assert (len(aborted), len(answered)) == (4, 4)
    (generate,) = [span for span in spans.get_finished_spans() if span.name == "reason.generate"]
    assert attributes(generate)["quorum.early_stopped"] is True
    assert _runs("self_consistency", "consensus") == runs + 1
    assert (
        REGISTRY.get_sample_value("quorum_reasoning_samples_used_total", {"strategy": "self_consistency"}) == used + 4
    )
    assert (
        REGISTRY.get_sample_value("quorum_reasoning_samples_saved_total", {"strategy": "self_consistency"}) == saved + 4
    )


async def test_tool_metrics() -> None:
    calls = REGISTRY.get_sample_value("quorum_reasoning_tool_calls_total", {"tool": "calculator"}) or 0
    failures = REGISTRY.get_sample_value("quorum_reasoning_tool_failures_total", {"tool": "calculator"}) or 0
    await default_registry().run("calculator", {"expression": "1 / 0"})
    await default_registry().run("calculator", {"expression": "1 / 1"})
    assert REGISTRY.get_sample_value("quorum_reasoning_tool_calls_total", {"tool": "calculator"}) == calls + 2
    assert REGISTRY.get_sample_value("quorum_reasoning_tool_failures_total", {"tool": "calculator"}) == failures + 1


def test_metrics_are_no_ops_without_prometheus_client(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    sink = metrics.PrometheusSink([metrics.CounterSpec("quorum_test_unused", "unused", ("label",))])
    sink.inc(metrics.CounterSpec("quorum_test_unused", "unused", ("label",)), ("x",), 1)  # does nothing
    assert importlib.import_module("quorum.reasoning.metrics") is metrics


def test_the_package_imports_neither_ray_nor_grpc() -> None:
    """Of the cluster, reasoning imports only the plain data of an LLM call (quorum.cluster.types)."""
    import subprocess

    code = (
        "import sys, quorum.reasoning, quorum.reasoning.runner; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('ray', 'grpc', 'vllm', 'torch') "
        "or m.startswith(('quorum.cluster', 'quorum.services'))]; "
        "bad = [m for m in bad if m not in ('quorum.cluster', 'quorum.cluster.types')]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
