import json

import pytest

from quorum.reasoning.answers import AnswerFormat, answer_json_schema
from quorum.reasoning.errors import UnknownToolError
from quorum.reasoning.tools import FINAL_ANSWER, ToolRegistry, default_registry
from quorum.reasoning.tools.registry import MAX_OUTPUT_CHARS

from .fakes import FakeTool

CALL = {
    "thought": "1234 boxes of 5678 pens: multiply.",
    "tool": "calculator",
    "arguments": {"expression": "1234 * 5678"},
}
ANSWER = {"tool": FINAL_ANSWER, "arguments": {"answer": 7006652}}


def test_lookup_and_names() -> None:
    registry = default_registry()
    assert registry.names() == ("calculator", "unit_convert")
    assert registry.get("calculator").name == "calculator"
    with pytest.raises(UnknownToolError, match="unknown tool 'shell'; available tools: calculator, unit_convert"):
        registry.get("shell")


@pytest.mark.parametrize("name", [FINAL_ANSWER, "not an identifier", ""])
def test_reserved_and_invalid_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="invalid tool name"):
        ToolRegistry([FakeTool(name, "ok")])


def test_duplicate_names_are_refused() -> None:
    registry = ToolRegistry([FakeTool("a", "ok")])
    with pytest.raises(ValueError, match="already registered"):
        registry.register(FakeTool("a", "ok"))


def test_tool_call_schema_ties_each_tool_to_its_arguments() -> None:
    registry = default_registry()
    schema = registry.tool_call_schema(["calculator"], answer_json_schema(AnswerFormat.NUMBER))
    calculator, final = schema["anyOf"]
    assert calculator["properties"]["tool"] == {"type": "string", "enum": ["calculator"]}
    assert calculator["properties"]["arguments"] == registry.get("calculator").parameters
    # decoded in this order: the thought, the tool name, its arguments
    assert list(calculator["properties"]) == ["thought", "tool", "arguments"]
    assert calculator["required"] == ["thought", "tool", "arguments"]
    assert list(final["properties"]) == ["tool", "arguments"]  # an answer needs no thought
    assert calculator["additionalProperties"] is False
    assert final["properties"]["tool"]["enum"] == [FINAL_ANSWER]
    assert final["properties"]["arguments"]["properties"]["answer"] == {"type": "number"}
    assert json.loads(json.dumps(schema)) == schema


def test_tool_call_schema_variants() -> None:
    registry = default_registry()
    tools_only = registry.tool_call_schema(["calculator", "unit_convert"], None)
    assert [b["properties"]["tool"]["enum"] for b in tools_only["anyOf"]] == [["calculator"], ["unit_convert"]]
    answer_only = registry.tool_call_schema([], {"type": "string"})
    assert [b["properties"]["tool"]["enum"] for b in answer_only["anyOf"]] == [[FINAL_ANSWER]]
    with pytest.raises(ValueError, match="needs a tool or an answer"):
        registry.tool_call_schema([], None)
    with pytest.raises(UnknownToolError):
        registry.tool_call_schema(["shell"], None)


@pytest.mark.slow
def test_the_schema_compiles_to_a_grammar_that_accepts_exactly_valid_actions() -> None:
    """The real constrained-decoding backend (xgrammar, as vLLM uses it) on the real schema."""
    xgrammar = pytest.importorskip("xgrammar")
    from xgrammar.testing import _is_grammar_accept_string as accepts

    registry = default_registry()
    schema = registry.tool_call_schema(registry.names(), answer_json_schema(AnswerFormat.NUMBER))
    grammar = xgrammar.Grammar.from_json_schema(json.dumps(schema))
    convert = {
        "thought": "5 miles asked in km: convert.",
        "tool": "unit_convert",
        "arguments": {"value": 5, "from_unit": "mile", "to_unit": "kilometer"},
    }
    for action in (CALL, ANSWER, convert):
        assert accepts(grammar, json.dumps(action))
    think = "Two numbers: multiply."
    for action in (
        {"thought": think, "tool": "calculator", "arguments": {"expression": "__import__('os')"}},
        {"thought": think, "tool": "calculator", "arguments": {"answer": 5}},
        {"tool": "calculator", "arguments": {"expression": "1"}},  # no thought
        {"thought": "2 * 3 = 6, so 6.", "tool": "calculator", "arguments": {"expression": "2 * 3"}},  # computes
        {"thought": "x" * 121, "tool": "calculator", "arguments": {"expression": "1"}},  # too long
        {"thought": think, "tool": FINAL_ANSWER, "arguments": {"answer": 5}},
        {"tool": FINAL_ANSWER, "arguments": {"answer": "seven"}},
        {"thought": think, "tool": "shell", "arguments": {}},
        {"tool": "calculator", "thought": think, "arguments": {"expression": "1"}},
    ):
        assert not accepts(grammar, json.dumps(action))


async def test_run_returns_output() -> None:
    outcome = await default_registry().run("calculator", {"expression": "6 * 7"})
    assert outcome.ok
    assert outcome.output == "42"
    assert outcome.latency_s >= 0


@pytest.mark.parametrize(
    ("behaviour", "error"),
    [
        ("tool_error", "bad input"),
        ("crash", "internal error: KeyError: 'boom'"),
        ("sleep", "timed out after 0.05 s"),
    ],
)
async def test_failures_become_errors_not_exceptions(behaviour: str, error: str) -> None:
    registry = ToolRegistry([FakeTool("t", behaviour)], timeout_s=0.05)
    outcome = await registry.run("t", {})
    assert not outcome.ok
    assert outcome.error == error
    assert outcome.output == ""


async def test_per_tool_timeout() -> None:
    registry = ToolRegistry(timeout_s=10)
    registry.register(FakeTool("slow", "sleep"), timeout_s=0.01)
    assert (await registry.run("slow", {})).error == "timed out after 0.01 s"


async def test_unknown_tool_and_long_output() -> None:
    registry = ToolRegistry([FakeTool("long", "long")])
    assert (await registry.run("shell", {})).error == "unknown tool 'shell'; available tools: long"
    output = (await registry.run("long", {})).output
    assert len(output) < MAX_OUTPUT_CHARS + 20
    assert output.endswith("(truncated)")


async def test_calculator_errors_reach_the_model_as_errors() -> None:
    outcome = await default_registry().run("calculator", {"expression": "1 / 0"})
    assert outcome.error == "division by zero"
