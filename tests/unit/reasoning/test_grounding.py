import json
import re
from dataclasses import replace

import pytest

from quorum.reasoning.grounding import (
    MAX_DISTINCT,
    answer_schema,
    asks_for_count,
    expression_pattern,
    grounded_numbers,
)
from quorum.reasoning.request import ReasonRequest, Strategy
from quorum.reasoning.strategies.react import NEGATIVE_COUNT
from quorum.reasoning.tools import FINAL_ANSWER

from .fakes import ANSWER, CALCULATE, ScriptedClient, action, reply
from .helpers import reason

QUESTION = "A shop has 1234 boxes with 5678 pens in each. How many pens?"
REACT = ReasonRequest(question=QUESTION, strategy=Strategy.REACT, tools=("calculator",))


def test_numbers_are_canonical_and_in_order() -> None:
    texts = ["A baker makes 42 trays with 23 cookies each and sells 1,607 cookies.", "Result: 966", "42 again, $3.50"]
    assert grounded_numbers(texts) == ["42", "23", "1607", "966", "42", "3.5"]


def test_a_number_written_twice_may_be_used_twice() -> None:
    pattern = expression_pattern(grounded_numbers(["What is 12 * 12?"]))
    assert re.fullmatch(pattern, "12 * 12")
    assert not re.fullmatch(pattern, "12 * 12 * 12")


@pytest.mark.parametrize(
    ("expression", "admitted"),
    [
        ("42 * 23 - 607", True),
        ("607 - 42", True),
        ("23", True),
        ("42 * 42", False),  # each number at most once
        ("42 * 24", False),  # a number the question does not have
        ("42*23", False),  # operators are spaced like the examples
        ("(42 * 23) - 607", False),
        ("42 * 23 - 607 + 42", False),
    ],
)
def test_expression_pattern_uses_each_number_at_most_once(expression: str, admitted: bool) -> None:
    assert bool(re.fullmatch(expression_pattern(["42", "23", "607"]), expression)) is admitted


def test_many_numbers_only_restrict_operands() -> None:
    numbers = [str(n) for n in range(10, 10 + MAX_DISTINCT + 1)]
    pattern = expression_pattern(numbers)
    assert re.fullmatch(pattern, "10 + 10 * 15")
    assert not re.fullmatch(pattern, "10 + 99")


def test_answer_schema_lists_the_results_numbers() -> None:
    assert answer_schema(["7006652", "3.5 km"]) == {"enum": [7006652, 3.5]}
    assert answer_schema(["no numbers here"]) is None


def expression_regex(schema: str | None) -> str:
    assert schema is not None
    (branch,) = [b for b in json.loads(schema)["anyOf"] if b["properties"]["tool"]["enum"] == ["calculator"]]
    pattern: str = branch["properties"]["arguments"]["properties"]["expression"]["pattern"]
    return pattern


async def test_react_grounds_the_calculator_and_the_answer() -> None:
    client = ScriptedClient([reply(CALCULATE), reply(ANSWER)])
    _, final = await reason(REACT, client)
    assert final.answer == "7006652"
    first, second = client.calls
    assert re.fullmatch(expression_regex(first.sampling.json_schema), "1234 * 5678")
    assert not re.fullmatch(expression_regex(first.sampling.json_schema), "1234 * 5679")
    # the result joins the numbers the next call may use, and the answer must be a result
    assert re.fullmatch(expression_regex(second.sampling.json_schema), "7006652 - 1234")
    (answer,) = [b for b in json.loads(second.sampling.json_schema or "")["anyOf"] if "answer" in json.dumps(b)]
    assert answer["properties"]["arguments"]["properties"]["answer"] == {"enum": [7006652]}


async def test_free_arithmetic_keeps_the_calculators_own_schema() -> None:
    client = ScriptedClient([reply(CALCULATE), reply(ANSWER)])
    await reason(replace(REACT, grounded=False), client)
    assert expression_regex(client.calls[0].sampling.json_schema) == r"^[0-9+\-*/%^(). ]+$"


def test_a_count_is_never_negative() -> None:
    assert asks_for_count("A tank holds 900 liters. How many liters are left?")
    assert not asks_for_count("What is 3 - 5?")
    assert answer_schema(["-454", "12"], nonnegative=True) == {"enum": [12]}
    assert answer_schema(["-454"], nonnegative=True) is None
    assert answer_schema(["-454"]) == {"enum": [-454]}


def tool_names(schema: str | None) -> list[str]:
    return [branch["properties"]["tool"]["enum"][0] for branch in json.loads(schema or "")["anyOf"]]


async def test_a_negative_count_is_sent_back_and_cannot_be_the_answer() -> None:
    question = "A water tank holds 4742 liters. Then 4288 liters leak out. How many liters are left in the tank?"
    request = replace(REACT, question=question)
    client = ScriptedClient(
        [
            reply(action("calculator", expression="4288 - 4742")),
            reply(action("calculator", expression="4742 - 4288")),
            reply(action(FINAL_ANSWER, answer=454)),
        ]
    )
    _, final = await reason(request, client)
    assert final.answer == "454"
    after_negative = client.calls[1]
    assert after_negative.messages[-1].content == f"Result: -454 {NEGATIVE_COUNT}"
    assert tool_names(after_negative.sampling.json_schema) == ["calculator"]  # no answer from -454
    assert "final_answer" in tool_names(client.calls[2].sampling.json_schema)
