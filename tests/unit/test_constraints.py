"""The static grammar bounds: what each kind of constraint may cost, and the field each refusal names."""

from __future__ import annotations

import json

import pytest

from quorum.cluster.config import ConstraintsConfig, parse_config
from quorum.cluster.constraints import (
    check_choice,
    check_constraint,
    check_json_schema,
    check_json_value,
    check_regex,
    json_depth,
)
from quorum.cluster.errors import InvalidArgument
from quorum.cluster.tool_calls import check_tools, constraint_for
from quorum.cluster.types import OutputConstraint, SamplingOptions, ToolChoice, ToolSpec
from quorum.cluster.validation import check_sampling
from quorum.reasoning.grounding import expression_pattern

LIMITS = ConstraintsConfig()


def nested(depth: int) -> str:
    """A schema whose objects nest ``depth`` levels deep."""
    return '{"a":' * (depth - 1) + "{}" + "}" * (depth - 1)


def properties(count: int) -> str:
    return json.dumps({"type": "object", "properties": {f"p{i}": {"type": "string"} for i in range(count)}})


def refusal(check: object, *args: object) -> InvalidArgument:
    with pytest.raises(InvalidArgument) as info:
        check(*args)  # type: ignore[operator]
    return info.value


def test_json_depth_skips_brackets_inside_strings() -> None:
    assert json_depth('{"a": "[[[{{{", "b": [1, {"c": "\\"]"}]}') == 3
    assert json_depth(nested(5000)) == 5000


def test_a_schema_within_the_bounds_is_parsed() -> None:
    schema = check_json_schema("f", json.dumps({"type": "object", "properties": {"a": {"type": "integer"}}}), LIMITS)
    assert schema["properties"]["a"] == {"type": "integer"}


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (nested(5000), "nests 5000 levels deep; the limit is 32 (constraints.max_depth)"),
        (nested(33), "nests 33 levels deep"),
        (json.dumps({"description": "x" * 70_000}), "the limit is 65536 (constraints.max_json_bytes)"),
        (properties(257), "more than 256 properties (constraints.max_schema_properties)"),
        (json.dumps({"type": "string", "maxLength": 100_000}), "maxLength 100000 is over 1000"),
        (json.dumps({"type": "string", "pattern": "(a+)+$"}), "a pattern repeats a body that is itself an unbounded"),
        (json.dumps({"enum": list(range(2000))}), "an enum has 2000 values; the limit is 1024"),
        ("[1, 2]", "must be a JSON object"),
        ("{oops", "not valid JSON"),
    ],
)
def test_a_costly_or_malformed_schema_is_refused_naming_the_field(text: str, problem: str) -> None:
    error = refusal(check_json_schema, "tools[0].parameters_json_schema", text, LIMITS)
    assert error.field == "tools[0].parameters_json_schema"
    assert problem in error.problem


def test_the_testers_one_megabyte_schema_is_refused_by_its_size() -> None:
    error = refusal(check_json_schema, "f", properties(23_810), LIMITS)
    assert "constraints.max_json_bytes" in error.problem


@pytest.mark.parametrize(
    "pattern", [r"\d{3}-\d{4}", r"(\s*,\s*\w+)*", "[a-z]{1,1000}", r"(ab|cd)+e?", r"(x+y)+", "yes|no"]
)
def test_ordinary_regexes_pass(pattern: str) -> None:
    check_regex("sampling.constraint.regex", pattern, LIMITS)


@pytest.mark.parametrize(
    ("pattern", "problem"),
    [
        ("(a+)+$", "unbounded repetition"),
        ("(a*b?)*", "unbounded repetition"),
        ("(.*)*x", "unbounded repetition"),
        ("((a|b+))+", "unbounded repetition"),
        ("((a{1,50}){1,50}){1,50}", "repeats up to 2500 times along one nesting path"),
        ("a{1,100000}", "repeats up to 100000 times"),
        ("(" * 40 + "a" + ")" * 40, "nests groups more than 32 deep"),
        ("a" * 1025, "is 1025 characters; the limit is 1024"),
        ("(unclosed", "is not a valid regex"),
    ],
)
def test_costly_regexes_are_refused(pattern: str, problem: str) -> None:
    error = refusal(check_regex, "sampling.constraint.regex", pattern, LIMITS)
    assert error.field == "sampling.constraint.regex"
    assert problem in error.problem


def test_choice_lists_are_bounded_in_count_and_bytes() -> None:
    check_choice("c", ["yes", "no"], LIMITS)
    assert (
        "100000 values; the limit is 1024"
        in refusal(check_choice, "c", [str(i) for i in range(100_000)], LIMITS).problem
    )
    assert "constraints.max_choice_bytes" in refusal(check_choice, "c", ["x" * 40_000, "y" * 40_000], LIMITS).problem


def test_tool_call_arguments_are_bounded_by_size_and_depth() -> None:
    assert check_json_value("steps[0].tool_calls[0].arguments_json", '{"city": "Paris"}', LIMITS) == {"city": "Paris"}
    error = refusal(check_json_value, "steps[0].tool_calls[0].arguments_json", nested(5000), LIMITS)
    assert error.field == "steps[0].tool_calls[0].arguments_json"


@pytest.mark.parametrize(
    ("constraint", "field"),
    [
        (OutputConstraint(json_schema=nested(5000)), "sampling.constraint.json_schema"),
        (OutputConstraint(regex="(a+)+$"), "sampling.constraint.regex"),
        (OutputConstraint(regex=""), "sampling.constraint.regex"),
        (OutputConstraint(choice=tuple(str(i) for i in range(100_000))), "sampling.constraint.choice"),
        (OutputConstraint(choice=("a", "")), "sampling.constraint.choice"),
    ],
)
def test_sampling_checks_name_the_constraint_kind(constraint: OutputConstraint, field: str) -> None:
    assert refusal(check_sampling, SamplingOptions(constraint=constraint), 4).field == field


@pytest.mark.parametrize("temperature", [2.01, 50.0])
def test_temperature_over_two_is_refused(temperature: float) -> None:
    error = refusal(check_sampling, SamplingOptions(temperature=temperature), 4)
    assert error.message == f"sampling.temperature: must be in [0, 2] (0 is greedy), got {temperature:g}"


def test_a_deep_tool_schema_is_refused_naming_the_tool() -> None:
    tools = (ToolSpec("ok"), ToolSpec("deep", parameters_json_schema=nested(5000)))
    assert refusal(check_tools, tools, ToolChoice(), None, LIMITS).field == "tools[1].parameters_json_schema"


def test_tools_that_pass_alone_are_bounded_together_in_the_built_grammar() -> None:
    tools = tuple(ToolSpec(f"t{i}", parameters_json_schema=properties(200)) for i in range(3))
    check_tools(tools, ToolChoice(), None, LIMITS)
    grammar = constraint_for(tools, ToolChoice())
    assert grammar is not None
    assert grammar.source == "tools"
    error = refusal(check_constraint, grammar, LIMITS)
    assert error.field == "tools"
    assert "constraints.max_schema_properties" in error.problem


def test_the_bounds_are_config_fields_with_documented_defaults() -> None:
    config = parse_config(
        {"models": [{"id": "m", "source": "s"}], "constraints": {"max_depth": 8, "compile_timeout_s": 2}}
    )
    assert config.constraints.max_depth == 8
    assert config.constraints.compile_timeout_s == 2
    assert config.constraints.max_schema_properties == 256
    for name, field in ConstraintsConfig.model_fields.items():
        assert field.description, name


def test_a_grammar_the_server_built_keeps_its_own_long_patterns() -> None:
    """ReAct's grounded calculator pattern over five numbers is ~5,000 characters: the server's own part of a
    grammar is not held to the bounds of user regexes (the user parts were checked on their own)."""
    pattern = expression_pattern([str(1000 + 37 * i) for i in range(5)])
    assert len(pattern) > LIMITS.max_regex_chars
    schema = {"type": "object", "properties": {"expression": {"type": "string", "pattern": pattern}}}
    check_constraint(OutputConstraint(json_schema=json.dumps(schema), source="client_tools"), LIMITS)
    user = OutputConstraint(json_schema=json.dumps(schema))
    assert "constraints.max_regex_chars" in refusal(check_constraint, user, LIMITS).problem
