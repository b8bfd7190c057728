"""ReasonRequest messages become reasoning requests: the grounding switch, the CoT prompt, client tools and
the steps of a continued run (and the SDK helpers that continue one); the Reason gate."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from quorum.client.sdk import continued_request, pending_tool_call, run_tool_function
from quorum.cluster.config import ReasoningConfig, parse_config
from quorum.cluster.dispatch import ModelDispatcher
from quorum.cluster.errors import ModelNotFound
from quorum.reasoning.errors import ReasoningInputError, UnknownToolError
from quorum.reasoning.prompts import COT_EXAMPLES, chain_of_thought_messages
from quorum.reasoning.request import Strategy
from quorum.reasoning.tools import ClientTool, ToolStep
from quorum.services.reasoning_service import reason_request, request_from_proto, steps_to_proto
from quorum.v1 import inference_pb2 as pb
from quorum.v1 import reasoning_pb2 as rpb


def test_react_is_grounded_unless_the_client_frees_arithmetic() -> None:
    message = rpb.ReasonRequest(question="What is 2 + 3?", strategy=rpb.STRATEGY_REACT, tools=["calculator"])
    assert request_from_proto(message, ReasoningConfig()).grounded
    message.free_arithmetic = True
    assert not request_from_proto(message, ReasoningConfig()).grounded


def test_numeric_chain_of_thought_shows_the_worked_examples_first() -> None:
    message = rpb.ReasonRequest(question="What is 2 + 3?", strategy=rpb.STRATEGY_CHAIN_OF_THOUGHT)
    request = request_from_proto(message, ReasoningConfig())
    assert request.strategy is Strategy.CHAIN_OF_THOUGHT
    turns = chain_of_thought_messages(request)
    assert [t.role for t in turns] == ["user", "assistant"] * len(COT_EXAMPLES) + ["user"]
    assert turns[-1].content.startswith("What is 2 + 3?")
    assert all(t.content.endswith(".") and "The answer is " in t.content for t in turns[1:-1:2])
    choice = rpb.ReasonRequest(question="Pick one", strategy=rpb.STRATEGY_CHAIN_OF_THOUGHT, choices=["A", "B"])
    choice.answer_format = rpb.ANSWER_FORMAT_CHOICE
    assert len(chain_of_thought_messages(request_from_proto(choice, ReasoningConfig()))) == 1


WEATHER_SCHEMA = '{"type": "object", "properties": {"city": {"type": "string"}}}'


def react_with_client_tool(**fields: Any) -> rpb.ReasonRequest:
    return rpb.ReasonRequest(
        question="Weather in Paris?",
        strategy=rpb.STRATEGY_REACT,
        client_tools=[
            pb.ToolDefinition(name="get_weather", description="Weather", parameters_json_schema=WEATHER_SCHEMA)
        ],
        **fields,
    )


def call_message(call_id: str, name: str = "get_weather", arguments: str = '{"city": "Paris"}') -> pb.ChatMessage:
    call = pb.ToolCallRequest(id=call_id, name=name, arguments_json=arguments)
    return pb.ChatMessage(role="assistant", content="ask the tool", tool_calls=[call])


def result_message(call_id: str, content: str) -> pb.ChatMessage:
    return pb.ChatMessage(role="tool", tool_call_id=call_id, content=content)


def test_client_tools_and_steps_round_trip_through_the_final_event() -> None:
    steps = (
        ToolStep("call_1", "get_weather", {"city": "Paris"}, "ask the tool", output="18 C"),
        ToolStep("call_2", "get_weather", {"city": "Rome"}, "and Rome", error="timed out"),
        ToolStep("call_3", "get_weather", {"city": "Oslo"}, "and Oslo", pending=True),
    )
    messages = steps_to_proto(steps)
    assert [m.role for m in messages] == ["assistant", "tool", "assistant", "tool", "assistant"]
    assert messages[3].content == "Error: timed out"
    message = react_with_client_tool(steps=[*messages, result_message("call_3", "-2 C")])
    request = request_from_proto(message, ReasoningConfig())
    assert request.client_tools == (
        ClientTool("get_weather", "Weather", {"type": "object", "properties": {"city": {"type": "string"}}}),
    )
    assert request.steps == (*steps[:2], replace(steps[2], pending=False, output="-2 C"))


@pytest.mark.parametrize(
    ("steps", "field", "problem"),
    [
        ([result_message("call_1", "18 C")], "steps[0]", 'expected an "assistant" message with exactly one tool call'),
        ([call_message("")], "steps[0].tool_calls[0].id", "must not be empty"),
        ([call_message("c1", name="shell")], "steps[0].tool_calls[0].name", "'shell' is not among"),
        ([call_message("c1", arguments="{oops")], "steps[0].tool_calls[0].arguments_json", "not valid JSON"),
        ([call_message("c1", arguments="[1]")], "steps[0].tool_calls[0].arguments_json", "a JSON object"),
        ([call_message("c1"), call_message("c2")], "steps[1].role", 'expected the "tool" message'),
        ([call_message("c1"), result_message("c9", "x")], "steps[1].tool_call_id", "must be 'c1'"),
        ([call_message("c1")], "steps[0]", "has no result: append a \"tool\" message with tool_call_id 'c1'"),
    ],
)
def test_malformed_steps_name_the_message(steps: list[pb.ChatMessage], field: str, problem: str) -> None:
    with pytest.raises(ReasoningInputError) as info:
        request_from_proto(react_with_client_tool(steps=steps), ReasoningConfig())
    assert info.value.field == field
    assert problem in info.value.problem


def test_a_client_tool_schema_that_is_not_json_names_the_field() -> None:
    message = react_with_client_tool()
    message.client_tools[0].parameters_json_schema = "{"
    with pytest.raises(ReasoningInputError) as info:
        request_from_proto(message, ReasoningConfig())
    assert info.value.field == "client_tools[0].parameters_json_schema"


def test_the_sdk_continues_a_run_with_a_local_functions_result() -> None:
    final = rpb.Final(stop_reason=rpb.STOP_REASON_TOOL_CALL, steps=[call_message("call_1")])
    call = pending_tool_call(final)
    assert call is not None
    assert run_tool_function({"get_weather": lambda args: f"18 C in {args['city']}"}, call) == "18 C in Paris"
    assert run_tool_function({"get_weather": lambda args: {"celsius": 18}}, call) == '{"celsius": 18}'
    assert run_tool_function({"get_weather": lambda args: 1 / 0}, call) == "Error: ZeroDivisionError: division by zero"
    assert run_tool_function({}, call) == "Error: no local function for the tool 'get_weather'"
    request = react_with_client_tool()
    follow = continued_request(request, final, "18 C")
    assert list(follow.steps) == [call_message("call_1"), result_message("call_1", "18 C")]
    assert follow.question == request.question
    assert not request.steps  # the caller's request is left as it was
    assert pending_tool_call(rpb.Final(stop_reason=rpb.STOP_REASON_ANSWERED)) is None
    with pytest.raises(ValueError, match="did not stop at a client tool call"):
        continued_request(request, rpb.Final(stop_reason=rpb.STOP_REASON_ANSWERED), "x")


MODEL = "smollm2-135m-instruct"


def _dispatcher() -> ModelDispatcher:
    """A dispatcher over the shipped model (the gate only resolves model ids: no handle is called)."""
    config = parse_config({"models": [{"id": MODEL, "source": "embedded:smollm2-135m-instruct"}]})
    return ModelDispatcher(config, {MODEL: None})  # type: ignore[dict-item]


def test_the_reason_gate_returns_the_request_the_deployment_runs() -> None:
    message = rpb.ReasonRequest(question="What is 2 + 3?", strategy=rpb.STRATEGY_SELF_CONSISTENCY, samples=3)
    request = reason_request(message, _dispatcher(), ReasoningConfig())
    assert request.model == MODEL  # resolved once, here: "" is the default model
    assert request.strategy is Strategy.SELF_CONSISTENCY
    assert request.samples == 3


def test_the_reason_gate_checks_the_model_first_then_every_field() -> None:
    bad = rpb.ReasonRequest(question="", model="gpt-9")
    with pytest.raises(ModelNotFound, match="gpt-9"):
        reason_request(bad, _dispatcher(), ReasoningConfig())
    with pytest.raises(ReasoningInputError, match="question: must not be empty"):
        reason_request(rpb.ReasonRequest(question=""), _dispatcher(), ReasoningConfig())
    hot = rpb.ReasonRequest(question="2 + 3?", sampling=rpb.ReasoningSampling(temperature=50))
    with pytest.raises(ReasoningInputError) as info:
        reason_request(hot, _dispatcher(), ReasoningConfig())
    assert info.value.field == "sampling.temperature"
    assert "must be in [0, 2]" in info.value.problem
    with pytest.raises(UnknownToolError):
        reason_request(
            rpb.ReasonRequest(question="2 + 3?", strategy=rpb.STRATEGY_REACT, tools=["shell"]),
            _dispatcher(),
            ReasoningConfig(),
        )
