"""ReasoningService end to end: each strategy against the real engine, over gRPC."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import grpc
import pytest

from quorum.client.sdk import QuorumClient, continued_request
from quorum.reasoning.llm import ChatTurn
from quorum.reasoning.prompts import react_messages
from quorum.reasoning.request import ReasonRequest, Strategy
from quorum.reasoning.tools import default_registry
from quorum.v1 import inference_pb2 as pb
from quorum.v1 import reasoning_pb2 as rpb
from quorum.v1 import reasoning_pb2_grpc

from .conftest import MAX_MODEL_LEN, MAX_N, SECOND_MODEL, RunningCluster, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def stub(cluster: RunningCluster) -> Iterator[reasoning_pb2_grpc.ReasoningServiceStub]:
    with grpc.insecure_channel(cluster.target) as channel:
        yield reasoning_pb2_grpc.ReasoningServiceStub(channel)


def run(
    stub: reasoning_pb2_grpc.ReasoningServiceStub, timeout: float = 180, **fields: object
) -> list[rpb.ReasonResponse]:
    return list(stub.Reason(rpb.ReasonRequest(**fields), timeout=timeout))  # type: ignore[arg-type]


def kinds(events: list[rpb.ReasonResponse]) -> list[str]:
    return [str(e.WhichOneof("event")) for e in events]


def test_every_run_ends_with_exactly_one_final(stub: reasoning_pb2_grpc.ReasoningServiceStub) -> None:
    events = run(stub, question="What is 2 + 3?", strategy=rpb.STRATEGY_DIRECT)
    assert kinds(events).count("final") == 1
    assert kinds(events)[-1] == "final"
    assert len({e.run_id for e in events}) == 1


def test_react_uses_the_calculator(stub: reasoning_pb2_grpc.ReasoningServiceStub) -> None:
    events = run(
        stub,
        question="A shop has 1234 boxes with 5678 pens in each box. How many pens are there?",
        strategy=rpb.STRATEGY_REACT,
        tools=["calculator"],
    )
    calls = [e.tool_call for e in events if e.HasField("tool_call")]
    results = [e.tool_result for e in events if e.HasField("tool_result")]
    assert calls
    assert calls[0].name == "calculator"
    assert results[0].output == "7006652"
    final = events[-1].final
    assert final.answer == "7006652"
    assert final.stop_reason == rpb.STOP_REASON_ANSWERED
    assert final.usage.completion_tokens > 0


def test_react_answers_a_count_with_a_result_that_is_not_negative(
    stub: reasoning_pb2_grpc.ReasoningServiceStub,
) -> None:
    """The model tends to subtract the wrong way round here (4288 - 4742); a "how many" question cannot end on
    the negative result: it is sent back and the model calculates again."""
    events = run(
        stub,
        question="A water tank holds 4742 liters. Then 4288 liters leak out. How many liters are left in the tank?",
        strategy=rpb.STRATEGY_REACT,
        tools=["calculator"],
    )
    assert events[-1].final.answer == "454"


WEATHER = pb.ToolDefinition(
    name="get_weather",
    description="Returns today's weather in a city.",
    parameters_json_schema=json.dumps(
        {"type": "object", "properties": {"city": {"type": "string", "maxLength": 40}}, "required": ["city"]}
    ),
)


PENDING = pb.ChatMessage(
    role="assistant",
    tool_calls=[pb.ToolCallRequest(id="call_1", name="get_weather", arguments_json='{"city": "Paris"}')],
)


def with_steps(*steps: pb.ChatMessage) -> dict[str, object]:
    """A ReAct request that declares WEATHER and replays ``steps``."""
    return {"question": "hi", "strategy": rpb.STRATEGY_REACT, "client_tools": [WEATHER], "steps": list(steps)}


def weather_call(arguments_json: str = "{}", call_id: str = "c1", name: str = "get_weather") -> pb.ChatMessage:
    """An assistant step that calls ``name`` once."""
    call = pb.ToolCallRequest(id=call_id, name=name, arguments_json=arguments_json)
    return pb.ChatMessage(role="assistant", tool_calls=[call])


def test_a_client_tool_call_pauses_the_run_and_the_client_continues_it(client: QuorumClient) -> None:
    """The model calls a tool the client declared: the run stops with the pending call in final.steps; the
    client runs it and sends the steps back with the result, and the continued run finds the first run's
    prompt in the prefix cache (the server kept nothing: the resumed prompt is the same text)."""
    request = rpb.ReasonRequest(
        question="What is the weather in Paris today?",
        strategy=rpb.STRATEGY_REACT,
        client_tools=[WEATHER],
        answer_format=rpb.ANSWER_FORMAT_TEXT,
    )
    events = list(client.reason(request))
    (call,) = [e.tool_call for e in events if e.HasField("tool_call")]
    assert call.name == "get_weather"
    assert call.id
    assert isinstance(json.loads(call.arguments_json)["city"], str)
    assert not [e for e in events if e.HasField("tool_result")]  # the server does not run client tools
    stopped = events[-1].final
    assert stopped.stop_reason == rpb.STOP_REASON_TOOL_CALL
    assert call.id in stopped.detail
    (pending,) = stopped.steps
    assert (pending.role, pending.tool_calls[0].id, pending.tool_calls[0].name) == ("assistant", call.id, call.name)

    resumed = list(client.reason(continued_request(request, stopped, "18 C and sunny")))
    final = resumed[-1].final
    assert [m.role for m in final.steps[:2]] == ["assistant", "tool"]
    assert final.steps[1].content == "18 C and sunny"
    assert final.steps[1].tool_call_id == call.id
    assert {e.thought.step for e in resumed if e.HasField("thought")} >= {2}  # numbering goes on
    block = 32  # the shipped engine.block_size: the first run's prompt is cached in whole blocks
    assert final.usage.cached_prompt_tokens >= stopped.usage.prompt_tokens - block + 1


def test_the_sdk_runs_client_tools_as_local_functions(client: QuorumClient) -> None:
    asked: list[dict[str, object]] = []

    def get_weather(arguments: dict[str, object]) -> str:
        asked.append(arguments)
        return "18 C and sunny"

    request = rpb.ReasonRequest(
        question="What is the weather in Paris today?",
        strategy=rpb.STRATEGY_REACT,
        client_tools=[WEATHER],
        answer_format=rpb.ANSWER_FORMAT_TEXT,
        max_steps=4,
    )
    events = list(client.reason_with_tools(request, {"get_weather": get_weather}))
    finals = [e.final for e in events if e.HasField("final")]
    assert asked  # the first step can only call a tool
    # one run per call of the function, and the last one did not stop at a call
    assert len(finals) == len(asked) + 1
    assert [f.stop_reason for f in finals[:-1]] == [rpb.STOP_REASON_TOOL_CALL] * len(asked)
    assert finals[-1].stop_reason != rpb.STOP_REASON_TOOL_CALL
    assert [m.content for m in finals[-1].steps if m.role == "tool"] == ["18 C and sunny"] * len(asked)


def test_chain_of_thought_streams_thoughts_and_answers(stub: reasoning_pb2_grpc.ReasoningServiceStub) -> None:
    events = run(
        stub,
        question="Tom has 3 apples and buys 4 more. How many apples does he have?",
        strategy=rpb.STRATEGY_CHAIN_OF_THOUGHT,
        sampling=rpb.ReasoningSampling(max_tokens=128),
    )
    thoughts = "".join(e.thought.text for e in events if e.HasField("thought"))
    assert len(thoughts) > 20
    final = events[-1].final
    assert final.samples_used == 1
    assert final.usage.prompt_tokens > 0
    assert final.stop_reason in (rpb.STOP_REASON_ANSWERED, rpb.STOP_REASON_NO_ANSWER)


def test_self_consistency_votes_over_one_sample_group(
    stub: reasoning_pb2_grpc.ReasoningServiceStub, cluster: RunningCluster
) -> None:
    question = "What is 6 + 1? Answer with the number."
    common: dict[str, Any] = {
        "question": question,
        "strategy": rpb.STRATEGY_SELF_CONSISTENCY,
        "samples": MAX_N,
        "sampling": rpb.ReasoningSampling(max_tokens=48, temperature=0.7, seed=11),
    }
    full = run(stub, early_stopping=rpb.EarlyStopping(rule=rpb.EARLY_STOP_RULE_NONE), **common)
    samples = [e.sample for e in full if e.HasField("sample")]
    votes = [e.vote for e in full if e.HasField("vote")]
    assert sorted(s.index for s in samples) == list(range(MAX_N))
    assert len(votes) == MAX_N
    final = full[-1].final
    assert final.samples_used == MAX_N
    assert 0 < final.confidence <= 1
    assert final.answer == votes[-1].counts[0].answer
    # One engine request for the whole group: usage counts the prompt once and the prefill work of every
    # sample; the samples share one prefill of the prompt's whole KV blocks, each computes at most the last.
    usage = final.usage
    block = cluster.config.models[0].engine.block_size or 32
    assert 0 < usage.computed_prompt_tokens <= usage.prompt_tokens + (MAX_N - 1) * block
    # Near-greedy seeded samples agree, so the window rule settles the vote after two of them.
    greedy: dict[str, Any] = {**common, "sampling": rpb.ReasoningSampling(max_tokens=48, temperature=0.05, seed=5)}
    early = run(
        stub, early_stopping=rpb.EarlyStopping(rule=rpb.EARLY_STOP_RULE_WINDOW, window=2, min_samples=2), **greedy
    )
    assert early[-1].final.stop_reason == rpb.STOP_REASON_CONSENSUS
    assert early[-1].final.samples_used < MAX_N
    wait_for(lambda: cluster.engine_status().running_requests == 0, 30, "the aborted samples to leave the engine")


def test_list_tools(stub: reasoning_pb2_grpc.ReasoningServiceStub) -> None:
    tools = {t.name: t for t in stub.ListTools(rpb.ListToolsRequest(), timeout=30).tools}
    assert "calculator" in tools
    assert '"expression"' in tools["calculator"].parameters_json_schema


@pytest.mark.parametrize(
    ("fields", "code", "needle"),
    [
        ({"question": ""}, grpc.StatusCode.INVALID_ARGUMENT, "question"),
        ({"question": "hi", "strategy": 99}, grpc.StatusCode.INVALID_ARGUMENT, "strategy"),
        (
            {"question": "hi", "strategy": rpb.STRATEGY_SELF_CONSISTENCY, "samples": 1000},
            grpc.StatusCode.INVALID_ARGUMENT,
            "samples",
        ),
        ({"question": "hi", "strategy": rpb.STRATEGY_REACT, "tools": ["shell"]}, grpc.StatusCode.NOT_FOUND, "shell"),
        ({"question": "hi", "strategy": rpb.STRATEGY_REACT}, grpc.StatusCode.INVALID_ARGUMENT, "tools"),
        (
            {"question": "hi", "budget": rpb.Budget(max_seconds=-1)},
            grpc.StatusCode.INVALID_ARGUMENT,
            "budget.max_seconds",
        ),
        (
            {"question": "hi", "budget": rpb.Budget(max_tokens=10**9)},
            grpc.StatusCode.INVALID_ARGUMENT,
            "budget.max_tokens",
        ),
        ({"question": "hi", "model": "nope"}, grpc.StatusCode.NOT_FOUND, "nope"),
        (  # the worked examples alone exceed the short model's context
            {
                "question": "What is 2 + 3?",
                "strategy": rpb.STRATEGY_REACT,
                "tools": ["calculator"],
                "model": SECOND_MODEL,
            },
            grpc.StatusCode.INVALID_ARGUMENT,
            "messages: with the strategy's instructions, worked examples and the question, the prompt is",
        ),
        (
            {"question": "hi", "messages": [pb.ChatMessage(role="robot", content="x")]},
            grpc.StatusCode.INVALID_ARGUMENT,
            "messages[0].role",
        ),
        (
            {"question": "hi", "strategy": rpb.STRATEGY_RAG, "collection": "no-such-docs"},
            grpc.StatusCode.NOT_FOUND,
            "no-such-docs",
        ),
        ({"question": "hi", "strategy": rpb.STRATEGY_RAG}, grpc.StatusCode.INVALID_ARGUMENT, "collection"),
        (
            {"question": "hi", "strategy": rpb.STRATEGY_RAG, "collection": "bad name!"},
            grpc.StatusCode.INVALID_ARGUMENT,
            "collection",
        ),
        (
            {"question": "hi", "strategy": rpb.STRATEGY_RAG, "collection": "docs", "top_k": 10_000},
            grpc.StatusCode.INVALID_ARGUMENT,
            "top_k",
        ),
        (
            {"question": "hi", "strategy": rpb.STRATEGY_REACT, "tools": ["retrieve"]},
            grpc.StatusCode.INVALID_ARGUMENT,
            "collection",
        ),
        ({"question": "hi", "client_tools": [WEATHER]}, grpc.StatusCode.INVALID_ARGUMENT, "client_tools: only the"),
        (
            {
                "question": "hi",
                "strategy": rpb.STRATEGY_REACT,
                "client_tools": [pb.ToolDefinition(name="calculator", parameters_json_schema="{}")],
            },
            grpc.StatusCode.INVALID_ARGUMENT,
            "client_tools[0].name: 'calculator' is a server tool",
        ),
        (
            {
                "question": "hi",
                "strategy": rpb.STRATEGY_REACT,
                "client_tools": [pb.ToolDefinition(name="get_weather", parameters_json_schema="{")],
            },
            grpc.StatusCode.INVALID_ARGUMENT,
            "client_tools[0].parameters_json_schema: not valid JSON",
        ),
        (
            {
                "question": "hi",
                "strategy": rpb.STRATEGY_REACT,
                "client_tools": [pb.ToolDefinition(name="get weather", parameters_json_schema="{}")],
            },
            grpc.StatusCode.INVALID_ARGUMENT,
            "client_tools[0].name: must be 1-64 letters",
        ),
        (
            {
                "question": "hi",
                "strategy": rpb.STRATEGY_REACT,
                "client_tools": [pb.ToolDefinition(name=f"tool_{i}") for i in range(33)],
            },
            grpc.StatusCode.INVALID_ARGUMENT,
            "client_tools: at most 32 client tools per request",
        ),
        (
            with_steps(pb.ChatMessage(role="tool", tool_call_id="call_1", content="18 C")),
            grpc.StatusCode.INVALID_ARGUMENT,
            'steps[0]: expected an "assistant" message with exactly one tool call',
        ),
        (
            with_steps(PENDING, pb.ChatMessage(role="user", content="18 C")),
            grpc.StatusCode.INVALID_ARGUMENT,
            'steps[1].role: expected the "tool" message answering call',
        ),
        (
            with_steps(weather_call(call_id="")),
            grpc.StatusCode.INVALID_ARGUMENT,
            "steps[0].tool_calls[0].id: must not be empty",
        ),
        (
            with_steps(weather_call("{oops")),
            grpc.StatusCode.INVALID_ARGUMENT,
            "steps[0].tool_calls[0].arguments_json: not valid JSON",
        ),
        (
            {"question": "hi", "strategy": rpb.STRATEGY_REACT, "client_tools": [WEATHER, WEATHER]},
            grpc.StatusCode.INVALID_ARGUMENT,
            "client_tools[1].name: 'get_weather' is declared twice",
        ),
        (
            {
                "question": "hi",
                "strategy": rpb.STRATEGY_REACT,
                "client_tools": [pb.ToolDefinition(name="get_weather", parameters_json_schema='{"type": "string"}')],
            },
            grpc.StatusCode.INVALID_ARGUMENT,
            "client_tools[0].parameters_json_schema: must be a JSON Schema of an object",
        ),
        (
            with_steps(weather_call(name="shell")),
            grpc.StatusCode.INVALID_ARGUMENT,
            "steps[0].tool_calls[0].name: 'shell' is not among the request's tools",
        ),
        (
            with_steps(weather_call("[1]")),
            grpc.StatusCode.INVALID_ARGUMENT,
            "steps[0].tool_calls[0].arguments_json: must be a JSON object",
        ),
        (
            with_steps(PENDING),
            grpc.StatusCode.INVALID_ARGUMENT,
            "steps[0]: the call 'call_1' has no result",
        ),
        (
            {
                "question": "hi",
                "strategy": rpb.STRATEGY_REACT,
                "client_tools": [WEATHER],
                "steps": [PENDING, pb.ChatMessage(role="tool", tool_call_id="call_2", content="18 C")],
            },
            grpc.StatusCode.INVALID_ARGUMENT,
            "steps[1].tool_call_id",
        ),
    ],
)
def test_bad_reason_requests_get_precise_statuses(
    stub: reasoning_pb2_grpc.ReasoningServiceStub, fields: dict[str, object], code: grpc.StatusCode, needle: str
) -> None:
    with pytest.raises(grpc.RpcError) as info:
        run(stub, timeout=60, **fields)
    assert info.value.code() == code
    assert needle in (info.value.details() or "")
    assert run(stub, question="What is 1 + 1?", strategy=rpb.STRATEGY_DIRECT)[-1].HasField("final")


def test_a_react_step_gets_the_room_left_in_the_context_and_a_full_context_ends_the_run(
    stub: reasoning_pb2_grpc.ReasoningServiceStub, client: QuorumClient
) -> None:
    """Prior messages leave the first step fewer tokens than its 192-token limit: the step runs with the
    room left (it used to fail with INVALID_ARGUMENT on sampling.max_tokens), is cut off by the end of
    the context, and the run ends with CONTEXT_FULL."""
    question = "A shop has 1234 boxes with 5678 pens in each box. How many pens are there?"
    request = ReasonRequest(question=question, strategy=Strategy.REACT, tools=("calculator",))

    def prompt_tokens(words: int) -> int:
        notes = ChatTurn("user", "Notes:" + " word" * words)
        turns = react_messages(replace(request, messages=(notes,)), [default_registry().get("calculator")])
        return len(client.tokenize(messages=[(t.role, t.content) for t in turns]).token_ids)

    room = 12  # far less than an action needs (its JSON alone is over 20 tokens)
    words = 1000
    for _ in range(4):  # one " word" is one token, give or take the boundary
        words += MAX_MODEL_LEN - room - prompt_tokens(words)
    used = prompt_tokens(words)
    assert 0 < MAX_MODEL_LEN - used <= 2 * room
    events = run(
        stub,
        question=question,
        strategy=rpb.STRATEGY_REACT,
        tools=["calculator"],
        messages=[pb.ChatMessage(role="user", content="Notes:" + " word" * words)],
    )
    final = events[-1].final
    assert final.stop_reason == rpb.STOP_REASON_CONTEXT_FULL
    assert final.answer == ""
    assert final.usage.prompt_tokens == used
    assert final.usage.prompt_tokens + final.usage.completion_tokens == MAX_MODEL_LEN
    assert "filled the model's context" in final.detail


def test_deadline_stops_the_run_and_its_engine_requests(
    stub: reasoning_pb2_grpc.ReasoningServiceStub, cluster: RunningCluster
) -> None:
    # Temperature 2 makes the samples near-random text that almost never ends early: at 0.7 every sample
    # can answer "The answer is 42." in a few tokens and the run finish inside the deadline (seen in CI).
    with pytest.raises(grpc.RpcError) as info:
        run(
            stub,
            timeout=2.0,
            question="Write a long essay about numbers, then say 42.",
            strategy=rpb.STRATEGY_SELF_CONSISTENCY,
            samples=MAX_N,
            sampling=rpb.ReasoningSampling(max_tokens=400, temperature=2.0),
            early_stopping=rpb.EarlyStopping(rule=rpb.EARLY_STOP_RULE_NONE),
        )
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    wait_for(lambda: cluster.engine_status().running_requests == 0, 30, "the run's engine request to be aborted")
