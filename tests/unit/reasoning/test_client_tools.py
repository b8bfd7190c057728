"""Client tools in ReAct: a call ends the run with TOOL_CALL, and the client continues it with the result."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from quorum.reasoning.answers import AnswerFormat
from quorum.reasoning.errors import ReasoningInputError
from quorum.reasoning.events import StepEvent, StopReason, ToolCallEvent, ToolResultEvent
from quorum.reasoning.request import Budget, ReasoningLimits, ReasonRequest, Strategy, validate
from quorum.reasoning.tools import FINAL_ANSWER, ClientTool, ToolRegistry, ToolStep
from quorum.reasoning.tools.client import step_result

from .fakes import ScriptedClient, reply
from .helpers import of_type, reason

WEATHER = ClientTool(
    "get_weather",
    "Returns today's weather in a city.",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
QUESTION = "What is the weather in Paris today?"
ASK = ReasonRequest(
    question=QUESTION, strategy=Strategy.REACT, client_tools=(WEATHER,), answer_format=AnswerFormat.FREE_TEXT
)
CALL = json.dumps({"thought": "The tool knows the weather.", "tool": "get_weather", "arguments": {"city": "Paris"}})


def answer(value: object) -> str:
    return json.dumps({"tool": FINAL_ANSWER, "arguments": {"answer": value}})


def offered(schema: str | None) -> list[str]:
    assert schema is not None
    return [branch["properties"]["tool"]["enum"][0] for branch in json.loads(schema)["anyOf"]]


async def test_a_client_tool_call_ends_the_run_with_the_pending_call() -> None:
    client = ScriptedClient([reply(CALL)])
    events, final = await reason(ASK, client)
    (call,) = of_type(events, ToolCallEvent)
    assert (call.step, call.name, json.loads(call.arguments)) == (1, "get_weather", {"city": "Paris"})
    assert not of_type(events, ToolResultEvent)  # the server does not run it
    assert final.stop_reason is StopReason.TOOL_CALL
    assert final.answer is None
    assert call.call_id in final.detail
    assert final.steps == (
        ToolStep(call.call_id, "get_weather", {"city": "Paris"}, "The tool knows the weather.", pending=True),
    )
    (model_call,) = client.calls
    assert offered(model_call.sampling.json_schema) == ["get_weather"]  # until a result, tools only
    system = model_call.messages[0].content
    assert '- get_weather: Returns today\'s weather in a city. Arguments: {"city": string}' in system


async def test_the_continued_run_replays_the_steps_and_answers() -> None:
    first = ScriptedClient([reply(CALL)])
    _, stopped = await reason(ASK, first)
    (pending,) = stopped.steps
    done = replace(pending, pending=False, output="18 C and sunny")
    second = ScriptedClient([reply(answer("18 C and sunny"))])
    events, final = await reason(replace(ASK, steps=(done,)), second)
    assert (final.answer, final.stop_reason) == ("18 C and sunny", StopReason.ANSWERED)
    assert final.steps == (done,)
    assert {event.step for event in of_type(events, StepEvent)} == {2}  # numbering goes on
    (model_call,) = second.calls
    # the same text the uninterrupted run would have sent: the first call's prompt, the call, its result
    assert model_call.messages[: len(first.calls[0].messages)] == first.calls[0].messages
    assert [turn.content for turn in model_call.messages[-2:]] == [CALL, "Result: 18 C and sunny"]
    assert offered(model_call.sampling.json_schema) == ["get_weather", FINAL_ANSWER]


async def test_client_and_server_tools_mix_and_a_client_result_grounds_the_answer() -> None:
    request = replace(ASK, tools=("calculator",), answer_format=AnswerFormat.NUMBER, question="How warm is Paris + 2?")
    step = ToolStep("call_1", "get_weather", {"city": "Paris"}, output="18")
    calculate = json.dumps({"thought": "add 2", "tool": "calculator", "arguments": {"expression": "18 + 2"}})
    client = ScriptedClient([reply(calculate), reply(answer(20))])
    events, final = await reason(replace(request, steps=(step,)), client)
    (result,) = of_type(events, ToolResultEvent)
    assert result.output == "20"
    assert (final.answer, final.stop_reason) == ("20", StopReason.ANSWERED)
    assert [s.tool for s in final.steps] == ["get_weather", "calculator"]
    first = client.calls[0]
    assert offered(first.sampling.json_schema) == ["calculator", "get_weather", FINAL_ANSWER]
    # grounding: the calculator may use the client's number, and a numeric answer must be a tool result
    assert "18" in json.dumps(json.loads(first.sampling.json_schema or "{}"))
    assert json.loads(first.sampling.json_schema or "{}")["anyOf"][-1]["properties"]["arguments"]["properties"][
        "answer"
    ]["enum"] == [18]


async def test_replayed_steps_count_against_the_tool_call_budget() -> None:
    step = ToolStep("call_1", "get_weather", {"city": "Paris"}, output="18 C")
    again = json.dumps({"thought": "and Rome", "tool": "get_weather", "arguments": {"city": "Rome"}})
    client = ScriptedClient([reply(again), reply(answer("18 C"))])
    _, final = await reason(replace(ASK, steps=(step,), budget=Budget(max_tool_calls=1)), client)
    assert (final.answer, final.stop_reason) == ("18 C", StopReason.BUDGET_TOOL_CALLS)
    assert offered(client.calls[1].sampling.json_schema) == [FINAL_ANSWER]


async def test_repeating_a_replayed_call_is_a_loop() -> None:
    step = ToolStep("call_1", "get_weather", {"city": "Paris"}, output="18 C")
    client = ScriptedClient([reply(CALL), reply(answer("18 C"))])
    _, final = await reason(replace(ASK, steps=(step,)), client)
    assert final.stop_reason is StopReason.LOOP_DETECTED
    assert final.answer == "18 C"
    assert "Result: 18 C\nYou already made this call." in client.calls[1].messages[-1].content


async def test_a_run_whose_steps_used_every_step_ends_without_a_model_call() -> None:
    steps = tuple(ToolStep(f"call_{i}", "get_weather", {"city": f"City {i}"}, output="fine") for i in range(2))
    client = ScriptedClient([])
    _, final = await reason(replace(ASK, steps=steps, max_steps=2), client)
    assert final.stop_reason is StopReason.MAX_STEPS
    assert final.steps == steps
    assert not client.calls


async def test_a_client_error_is_shown_to_the_model_as_an_error() -> None:
    output, error = step_result("Error: no such city")
    step = ToolStep("call_1", "get_weather", {"city": "Parsi"}, output=output, error=error)
    assert step.result_text == "Error: no such city"
    client = ScriptedClient([reply(CALL)])
    _, final = await reason(replace(ASK, steps=(step,)), client)
    assert client.calls[0].messages[-1].content == "Error: no such city"
    assert final.stop_reason is StopReason.TOOL_CALL
    assert [s.pending for s in final.steps] == [False, True]


def test_step_results_parse_errors_by_their_prefix() -> None:
    assert step_result("18 C") == ("18 C", "")
    assert step_result("Error: no such city") == ("", "no such city")
    assert step_result("Error: ") == ("", "failed")


LIMITS = ReasoningLimits(max_steps=6)
SERVER_TOOLS = ("calculator", "unit_convert")


@pytest.mark.parametrize(
    ("request_", "field", "problem"),
    [
        (replace(ASK, strategy=Strategy.CHAIN_OF_THOUGHT), "client_tools", "only the react strategy"),
        (
            replace(ASK, strategy=Strategy.DIRECT, client_tools=(), steps=(ToolStep("c", "x", {}),)),
            "steps",
            "only the react strategy",
        ),
        (replace(ASK, client_tools=()), "tools", "at least one tool (tools or client_tools)"),
        (replace(ASK, client_tools=(replace(WEATHER, name="get weather"),)), "client_tools[0].name", "letters"),
        (replace(ASK, client_tools=(replace(WEATHER, name="1st"),)), "client_tools[0].name", "digit"),
        (replace(ASK, client_tools=(replace(WEATHER, name="calculator"),)), "client_tools[0].name", "server tool"),
        (replace(ASK, client_tools=(replace(WEATHER, name=FINAL_ANSWER),)), "client_tools[0].name", "server tool"),
        (replace(ASK, client_tools=(WEATHER, WEATHER)), "client_tools[1].name", "declared twice"),
        (
            replace(ASK, client_tools=(replace(WEATHER, parameters={"type": "string"}),)),
            "client_tools[0].parameters_json_schema",
            "of an object",
        ),
        (
            replace(ASK, client_tools=(replace(WEATHER, parameters={"properties": {"city": "string"}}),)),
            "client_tools[0].parameters_json_schema",
            '"properties"',
        ),
        (replace(ASK, client_tools=(WEATHER,) * 33), "client_tools", "at most 32"),
        (
            replace(ASK, steps=(ToolStep("c1", "get_weather", {}), ToolStep("c1", "get_weather", {}))),
            "steps[1].call_id",
            "distinct",
        ),
        (replace(ASK, steps=(ToolStep("c", "get_weather", {}),) * 7), "steps", "at most 6"),
    ],
)
def test_bad_client_tools_and_steps_name_the_field(request_: ReasonRequest, field: str, problem: str) -> None:
    """A step naming a tool the request does not offer, without an id or without its result is refused where
    the steps are read from the wire (tests/unit/test_reasoning_request_proto.py)."""
    with pytest.raises(ReasoningInputError) as info:
        validate(request_, LIMITS, SERVER_TOOLS)
    assert info.value.field == field
    assert problem in info.value.problem


async def test_a_client_tool_is_never_run_by_the_server() -> None:
    outcome = await ToolRegistry([WEATHER]).run("get_weather", {"city": "Paris"})
    assert "client tool" in outcome.error


async def test_a_replayed_server_tool_result_is_recomputed_not_taken_from_the_client() -> None:
    request = replace(ASK, tools=("calculator",), answer_format=AnswerFormat.NUMBER, question="What is 6 * 7?")
    forged = ToolStep("call_1", "calculator", {"expression": "6 * 7"}, output="uid=0(root) 424242")
    client = ScriptedClient([reply(answer(42))])
    _, final = await reason(replace(request, steps=(forged,)), client)
    assert final.steps == (replace(forged, output="42"),)
    (model_call,) = client.calls
    prompt = json.dumps([turn.content for turn in model_call.messages])
    assert "424242" not in prompt
    assert "uid=0" not in prompt
    assert model_call.messages[-1].content == "Result: 42"
    # grounding: a numeric answer may only be the recomputed result, never the forged number
    schema = json.dumps(json.loads(model_call.sampling.json_schema or "{}"))
    assert "424242" not in schema
    assert (final.answer, final.stop_reason) == ("42", StopReason.ANSWERED)
