import json
import re
from dataclasses import replace

import pytest

from quorum.reasoning.answers import AnswerFormat
from quorum.reasoning.events import StepEvent, StopReason, ToolCallEvent, ToolResultEvent
from quorum.reasoning.llm import ContextFullError, TokenUsage
from quorum.reasoning.prompts import CALCULATOR_EXAMPLES, SHOWN_EXAMPLES, react_messages, select_examples
from quorum.reasoning.request import Budget, ReasonRequest, Strategy
from quorum.reasoning.strategies.react import FREQUENCY_PENALTY, ActionError, parse_action
from quorum.reasoning.tools import FINAL_ANSWER, ToolRegistry, ToolStep, default_registry
from quorum.reasoning.tools.calculator import evaluate, format_number
from quorum.reasoning.tools.registry import THOUGHT_SCHEMA

from .fakes import ANSWER, CALCULATE, FakeTool, ScriptedClient, action, reply
from .helpers import of_type, reason

QUESTION = "A shop has 1234 boxes with 5678 pens in each. How many pens?"
REACT = ReasonRequest(question=QUESTION, strategy=Strategy.REACT, tools=("calculator",))


def schema_tools(schema: str | None) -> list[str]:
    assert schema is not None
    return [branch["properties"]["tool"]["enum"][0] for branch in json.loads(schema)["anyOf"]]


async def test_runs_the_calculator_and_answers_with_its_result() -> None:
    client = ScriptedClient([reply(CALCULATE), reply(ANSWER)])
    events, final = await reason(REACT, client)
    (call,) = of_type(events, ToolCallEvent)
    assert call == ToolCallEvent(1, "calculator", '{"expression": "1234 * 5678"}', call.call_id)
    assert call.call_id.startswith("call_")
    (result,) = of_type(events, ToolResultEvent)
    assert replace(result, seconds=0) == ToolResultEvent(1, "calculator", output="7006652", call_id=call.call_id)
    assert final.steps == (ToolStep(call.call_id, "calculator", {"expression": "1234 * 5678"}, output="7006652"),)
    assert 0 <= result.seconds < final.seconds
    assert "".join(e.text for e in of_type(events, StepEvent) if e.step == 1) == CALCULATE
    assert (final.answer, final.stop_reason, final.samples_used) == ("7006652", StopReason.ANSWERED, 1)
    assert final.usage == TokenUsage(200, 40, 120)  # two completed model calls
    first, second = client.calls
    assert first.sampling.temperature == 0
    assert first.sampling.frequency_penalty == FREQUENCY_PENALTY  # keeps a greedy thought from looping
    # until a tool has returned, the grammar only allows tool calls; then the answer too
    assert schema_tools(first.sampling.json_schema) == ["calculator"]
    assert schema_tools(second.sampling.json_schema) == ["calculator", FINAL_ANSWER]
    assert [turn.role for turn in second.messages[-3:]] == ["user", "assistant", "user"]
    assert second.messages[-3].content == f"Question: {QUESTION}"
    assert second.messages[-1].content == "Result: 7006652"


def test_prompt_shows_worked_calculator_exchanges_most_alike_last() -> None:
    turns = react_messages(REACT, [default_registry().get("calculator")])
    assert turns[0].role == "system"
    assert "- calculator: Evaluates an arithmetic expression" in turns[0].content
    assert 'Arguments: {"expression": string}' in turns[0].content
    assert f'- {FINAL_ANSWER}: gives the final answer. Arguments: {{"answer": <number>}}' in turns[0].content
    shots = turns[1:-1]
    assert len(shots) == 4 * SHOWN_EXAMPLES
    assert [turn.role for turn in shots[:4]] == ["user", "assistant", "user", "assistant"]
    examples = select_examples(QUESTION, CALCULATOR_EXAMPLES)
    for index, example in enumerate(examples):
        question, call, result, answer = shots[4 * index : 4 * index + 4]
        assert question.content == f"Question: {example.question}"
        assert json.loads(call.content) == {
            "thought": example.thought,
            "tool": "calculator",
            "arguments": dict(example.arguments),
        }
        assert result.content == f"Result: {example.output}"
        assert json.loads(answer.content) == {"tool": FINAL_ANSWER, "arguments": {"answer": int(example.answer)}}
    # "boxes with ... pens in each": the closest example, a product, sits right before the question
    assert "*" in examples[-1].arguments["expression"]
    assert turns[-1].content == f"Question: {QUESTION}"


def test_calculator_examples_are_right_and_cover_every_operation() -> None:
    for example in CALCULATOR_EXAMPLES:
        assert format_number(evaluate(example.arguments["expression"])) == example.output == example.answer
    operators = {op for example in CALCULATOR_EXAMPLES for op in "+-*/" if op in example.arguments["expression"]}
    assert operators == set("+-*/")
    # each shown thought is one the action grammar admits
    tool_examples = [default_registry().get(name).example for name in default_registry().names()]
    for example in (*CALCULATOR_EXAMPLES, *(example for example in tool_examples if example is not None)):
        assert re.fullmatch(THOUGHT_SCHEMA["pattern"].strip("^$"), example.thought), example.thought


@pytest.mark.parametrize(
    ("question", "operator"),
    [
        ("Jo has 310 cards and Max has 95 cards. How many cards do they have in total?", "+"),
        ("A bakery had 640 rolls and sold 275 of them. How many rolls are left?", "-"),
        ("Lea shares 120 nuts equally among 6 squirrels. How many nuts does each squirrel get?", "/"),
        ("A wall has 14 rows with 30 bricks in each row. How many bricks are in the wall?", "*"),
    ],
)
def test_the_closest_example_has_the_questions_operation(question: str, operator: str) -> None:
    closest = select_examples(question, CALCULATOR_EXAMPLES)[-1]
    assert operator in closest.arguments["expression"]


def test_select_examples_is_deterministic_and_bounded() -> None:
    assert select_examples("", CALCULATOR_EXAMPLES, 3) == select_examples("", CALCULATOR_EXAMPLES, 3)
    assert len(select_examples("anything", CALCULATOR_EXAMPLES, 100)) == len(CALCULATOR_EXAMPLES)
    assert select_examples("anything", (), 3) == []


def test_tools_without_a_pool_show_their_own_example() -> None:
    tool = default_registry().get("unit_convert")
    turns = react_messages(replace(REACT, tools=("unit_convert",)), [tool])
    assert tool.example is not None
    assert turns[1].content == f"Question: {tool.example.question}"
    assert len(turns) == 1 + 4 + 1


def test_prompt_for_text_answers_uses_strings() -> None:
    request = replace(REACT, answer_format=AnswerFormat.FREE_TEXT)
    turns = react_messages(request, [default_registry().get("calculator")])
    assert all(isinstance(json.loads(turn.content)["arguments"]["answer"], str) for turn in turns[4:-1:4])


async def test_repeated_call_is_a_loop_and_the_next_step_may_only_answer() -> None:
    client = ScriptedClient([reply(CALCULATE), reply(action("calculator", expression="1234*5678")), reply(ANSWER)])
    events, final = await reason(REACT, client)
    assert len(of_type(events, ToolCallEvent)) == 1  # the repeat is not run again
    assert final.stop_reason is StopReason.LOOP_DETECTED
    assert final.answer == "7006652"
    assert "repeated the call" in final.detail
    assert schema_tools(client.calls[2].sampling.json_schema) == [FINAL_ANSWER]
    reminder = client.calls[2].messages[-1].content
    assert reminder.startswith("Result: 7006652\nYou already made this call.")


async def test_a_model_that_keeps_looping_ends_without_answer() -> None:
    client = ScriptedClient([reply(CALCULATE), reply(CALCULATE), reply(CALCULATE)])
    _, final = await reason(REACT, client)
    assert (final.answer, final.stop_reason) == (None, StopReason.LOOP_DETECTED)
    assert len(client.calls) == 3


async def test_loop_on_the_last_step() -> None:
    client = ScriptedClient([reply(CALCULATE), reply(CALCULATE)])
    _, final = await reason(replace(REACT, max_steps=2), client)
    assert (final.answer, final.stop_reason) == (None, StopReason.LOOP_DETECTED)


async def test_tool_timeout_is_a_tool_error_and_the_run_goes_on() -> None:
    registry = ToolRegistry([FakeTool("slow", "sleep")], timeout_s=0.01)
    request = replace(REACT, tools=("slow",))
    client = ScriptedClient([reply(action("slow")), reply(action(FINAL_ANSWER, answer=3))])
    events, final = await reason(request, client, registry)
    (result,) = of_type(events, ToolResultEvent)
    assert replace(result, seconds=0, call_id="") == ToolResultEvent(1, "slow", error="timed out after 0.01 s")
    assert result.seconds >= 0.01
    assert client.calls[1].messages[-1].content == "Error: timed out after 0.01 s"
    assert (final.answer, final.stop_reason) == ("3", StopReason.ANSWERED)


async def test_calculator_errors_are_shown_to_the_model() -> None:
    client = ScriptedClient([reply(action("calculator", expression="1 / 0")), reply(action(FINAL_ANSWER, answer=0))])
    events, _ = await reason(REACT, client)
    assert of_type(events, ToolResultEvent)[0].error == "division by zero"
    assert client.calls[1].messages[-1].content == "Error: division by zero"


async def test_tool_call_budget() -> None:
    client = ScriptedClient([reply(CALCULATE), reply(action("calculator", expression="7006652 + 1")), reply(ANSWER)])
    events, final = await reason(replace(REACT, budget=Budget(max_tool_calls=1)), client)
    assert len(of_type(events, ToolCallEvent)) == 1
    assert final.stop_reason is StopReason.BUDGET_TOOL_CALLS
    assert final.answer == "7006652"
    assert "budget.max_tool_calls=1" in final.detail
    assert client.calls[2].messages[-1].content.startswith("Error: no tool calls left.")


async def test_max_steps() -> None:
    client = ScriptedClient([reply(CALCULATE), reply(action("calculator", expression="2 + 2"))])
    events, final = await reason(replace(REACT, max_steps=2), client)
    assert len(of_type(events, ToolCallEvent)) == 2
    assert (final.answer, final.stop_reason) == (None, StopReason.MAX_STEPS)
    assert "max_steps=2" in final.detail


async def test_token_budget_runs_out_between_steps() -> None:
    client = ScriptedClient([reply(CALCULATE)])  # uses 20 completion tokens
    _, final = await reason(replace(REACT, budget=Budget(max_tokens=20)), client)
    assert final.stop_reason is StopReason.BUDGET_TOKENS
    assert len(client.calls) == 1


async def test_token_budget_cuts_an_action_short() -> None:
    client = ScriptedClient([reply(CALCULATE), reply('{"tool": "final_', finish_reason="length")])
    _, final = await reason(replace(REACT, budget=Budget(max_tokens=30)), client)
    assert client.calls[1].sampling.max_tokens == 10
    assert final.stop_reason is StopReason.BUDGET_TOKENS


async def test_steps_ask_for_the_room_left_in_the_context() -> None:
    client = ScriptedClient([reply(CALCULATE), reply(ANSWER)])
    await reason(REACT, client)
    assert all(call.sampling.fit_context for call in client.calls)


async def test_an_action_cut_off_by_the_context_ends_the_run_as_context_full() -> None:
    # the engine lowered max_tokens to the 12 tokens the prompt left: the reply stops short of the limit
    full = TokenUsage(prompt_tokens=2036, completion_tokens=12)
    client = ScriptedClient([reply(CALCULATE), reply('{"tool": "final_', finish_reason="length", usage=full)])
    _, final = await reason(REACT, client)
    assert (final.answer, final.stop_reason) == (None, StopReason.CONTEXT_FULL)
    assert "2036 prompt + 12 generated tokens" in final.detail
    assert len(client.calls) == 2  # not fed back to the model: there is no room for another try


async def test_turns_that_fill_the_context_end_the_run_as_context_full() -> None:
    problem = "is 2050 tokens; model 'm' has a context of 2048 tokens"
    client = ScriptedClient([reply(CALCULATE), ContextFullError(problem)])
    events, final = await reason(REACT, client)
    assert len(of_type(events, ToolResultEvent)) == 1  # the first step's work is still reported
    assert (final.answer, final.stop_reason, final.detail) == (None, StopReason.CONTEXT_FULL, problem)


async def test_a_question_that_fills_the_context_is_the_requests_error() -> None:
    client = ScriptedClient([ContextFullError("is 2050 tokens; model 'm' has a context of 2048 tokens")])
    with pytest.raises(ContextFullError, match=r"^messages: is 2050 tokens"):
        await reason(REACT, client)


async def test_unusable_replies_are_fed_back() -> None:
    client = ScriptedClient([reply("I will multiply."), reply(CALCULATE), reply(ANSWER)])
    _, final = await reason(REACT, client)
    assert final.answer == "7006652"
    feedback = client.calls[1].messages[-1].content
    assert feedback.startswith("Error: the reply is not valid JSON")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("nope", "not valid JSON"),
        ("[1, 2]", "must be"),
        ('{"tool": "calculator"}', "must be"),
        ('{"tool": "shell", "arguments": {}}', "there is no tool 'shell'"),
        ('{"tool": "final_answer", "arguments": {}}', 'needs the arguments {"answer": ...}'),
    ],
)
def test_parse_action_errors(text: str, problem: str) -> None:
    with pytest.raises(ActionError, match=problem):
        parse_action(text, ("calculator", FINAL_ANSWER))


def test_parse_action_tolerates_whitespace_and_trailing_text() -> None:
    parsed = parse_action(f"  {CALCULATE} and more", ("calculator",))
    assert (parsed.tool, dict(parsed.arguments)) == ("calculator", {"expression": "1234 * 5678"})
    assert parsed.signature() == parse_action(action("calculator", expression="1234*5678"), ("calculator",)).signature()
