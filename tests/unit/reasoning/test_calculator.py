import time
from fractions import Fraction

import pytest

from quorum.reasoning.tools import Calculator, ToolError
from quorum.reasoning.tools.calculator import MAX_EXPRESSION_CHARS, evaluate, format_number


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("1234 * 5678", "7006652"),
        ("1 + 2 * 3", "7"),
        ("(1 + 2) * 3", "9"),
        ("-(3 + 4) * 2", "-14"),
        ("--5", "5"),
        ("+5", "5"),
        ("7 / 2", "3.5"),
        ("7 / 3", "2.33333333333"),
        ("7 // 2", "3"),
        ("-7 // 2", "-4"),
        ("7 % 3", "1"),
        ("7.5 % 2", "1.5"),
        ("2 ** 10", "1024"),
        ("2 ^ 10", "1024"),
        ("2 ** -2", "0.25"),
        ("2 ** 3 ** 2", "512"),  # right-associative
        ("2 ** 0.5", "1.41421356237"),
        ("0.1 + 0.2", "0.3"),  # exact, not 0.30000000000000004
        ("1e3 + 1", "1001"),
        ("1,234 * 2", "2468"),
        ("6 \u00d7 7", "42"),
        ("84 \u00f7 2", "42"),
        ("10 \u2212 4", "6"),
        ("  12  ", "12"),
        ("123456789012.5 * 1", "123456789012.5"),
        ("(" * 120 + "1" + ")" * 120, "1"),  # parentheses alone add no nesting to evaluate
    ],
)
def test_arithmetic(expression: str, expected: str) -> None:
    assert format_number(evaluate(expression)) == expected


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("__import__('os').system('x')", "function call is not allowed"),
        ("().__class__.__bases__[0].__subclasses__()", "not allowed"),
        ("(1).real", "attribute access is not allowed"),
        ("x + 1", "name 'x' is not allowed"),
        ("abs(-1)", "function call is not allowed"),
        ("[1, 2][0]", "indexing is not allowed"),
        ("'a' * 3", "str literal"),
        ("1 if 1 else 2", "IfExp is not allowed"),
        ("lambda: 1", "Lambda is not allowed"),
        ("1 < 2", "Lt is not allowed"),
        ("~1", "Invert is not allowed"),
        ("1 | 2", "BitOr is not allowed"),
        ("True + 1", "bool literal"),
        ("1j", "complex literal"),
        ("1; import os", "not an arithmetic expression"),
        ("import os", "not an arithmetic expression"),
        ("1 +", "not an arithmetic expression"),
        ("", "expression is empty"),
        ("1 / 0", "division by zero"),
        ("1 // 0", "division by zero"),
        ("1 % 0", "division by zero"),
        ("0 ** -1", "division by zero"),
        ("(-8) ** (1 / 3)", "no real fractional power"),
        ("9 ** 9 ** 9", "more than 100 digits"),
        ("10 ** 100", "more than 100 digits"),
        ("2 ** -1000", "more than 100 digits"),
        ("10 ** 99 * 10", "more than 100 digits"),
        ("1" * 101, "more than 100 digits"),
        ("1e400", "more than 100 digits"),
        ("1 / 3 ** 200 / 3 ** 200", "more than 100 digits after the decimal point"),
        ("-" * 40 + "1", "nested more than"),
        ("(-" * 50 + "1" + ")" * 50, "nested more than"),
        ("(" * 300 + "1" + ")" * 300, "characters long"),
        ("1+" * 200 + "1", f"the limit is {MAX_EXPRESSION_CHARS}"),
    ],
)
def test_rejected_fast_with_a_clear_error(expression: str, message: str) -> None:
    started = time.perf_counter()
    with pytest.raises(ToolError, match=message):
        evaluate(expression)
    assert time.perf_counter() - started < 0.1


def test_huge_inputs_are_rejected_before_parsing() -> None:
    started = time.perf_counter()
    with pytest.raises(ToolError, match="characters long"):
        evaluate("9" * 10_000_000)
    assert time.perf_counter() - started < 0.1


def test_values_are_exact_fractions() -> None:
    assert evaluate("1 / 3 * 3") == 1
    assert evaluate("0.1 * 3") == Fraction(3, 10)


async def test_tool_run_checks_its_arguments() -> None:
    calculator = Calculator()
    assert await calculator.run({"expression": "2 + 2"}) == "4"
    with pytest.raises(ToolError, match="expression"):
        await calculator.run({"expr": "2 + 2"})
    with pytest.raises(ToolError, match="expression"):
        await calculator.run({"expression": 4})
