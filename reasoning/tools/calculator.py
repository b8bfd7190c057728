"""The ``calculator`` tool: exact arithmetic over a whitelisted Python expression tree (no eval).

Grammar: numbers (integers, decimals, ``1e3``), ``+ - * / // % **``, unary
``+``/``-`` and parentheses. For convenience ``^`` means ``**``, the Unicode
multiplication, division and minus signs mean ``* / -``, and thousands
separators ("1,234") are dropped. Values
are exact fractions, so 0.1 + 0.2 is 0.3; a non-integer power goes through
floating point.

Every expression is bounded before it can cost time: at most
:data:`MAX_EXPRESSION_CHARS` characters, :data:`MAX_DEPTH` levels of nesting,
and no value (numerator or denominator) beyond :data:`MAX_DIGITS` digits,
checked before a power is computed, so ``9**9**9`` fails at once.
"""

from __future__ import annotations

import ast
import math
import operator
import re
from collections.abc import Callable, Mapping
from fractions import Fraction
from typing import Any

from ..answers import canonical_number
from .base import ToolError, ToolExample

MAX_EXPRESSION_CHARS = 256
MAX_DEPTH = 32
MAX_DIGITS = 100
SIGNIFICANT_DIGITS = 12

_LIMIT = 10**MAX_DIGITS
_BINARY: dict[type[ast.operator], Callable[[Fraction, Fraction], Fraction]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}
_SPELLINGS = str.maketrans({"^": "**", "\u00d7": "*", "\u00f7": "/", "\u2212": "-"})
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_ALLOWED = "numbers, + - * / // % ** and parentheses"
CALCULATOR = "calculator"


def evaluate(expression: str) -> Fraction:
    """The exact value of ``expression``; raises :class:`ToolError` saying what is wrong with it."""
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise ToolError(f"expression is {len(expression)} characters long; the limit is {MAX_EXPRESSION_CHARS}")
    text = _THOUSANDS.sub("", expression.translate(_SPELLINGS)).strip()
    if not text:
        raise ToolError("expression is empty")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as error:
        raise ToolError(f"not an arithmetic expression ({error.msg}); use {_ALLOWED}") from None
    try:
        return _evaluate(tree.body, 1)
    except ZeroDivisionError:
        raise ToolError("division by zero") from None


def format_number(value: Fraction) -> str:
    """Integers and decimals of up to 12 places exactly; other values to 12 significant digits."""
    if (value * 10**SIGNIFICANT_DIGITS).denominator == 1:
        return canonical_number(value)
    return f"{float(value):.{SIGNIFICANT_DIGITS}g}"


class Calculator:
    """Evaluates one arithmetic expression exactly; see the module docstring for the grammar and bounds."""

    name = CALCULATOR
    description = "Evaluates an arithmetic expression with + - * / // % ** and parentheses, e.g. (12 + 30) * 4."
    parameters: Mapping[str, Any] = {
        "type": "object",
        "properties": {
            # The pattern keeps a weak model to arithmetic characters under constrained decoding.
            "expression": {"type": "string", "pattern": r"^[0-9+\-*/%^(). ]+$"},
        },
        "required": ["expression"],
        "additionalProperties": False,
    }
    example = ToolExample(
        question="A shop packs 1234 boxes with 5678 pens in each box. How many pens is that?",
        arguments={"expression": "1234 * 5678"},
        output="7006652",
        answer="7006652",
        thought="1234 boxes with 5678 pens in each box: multiply.",
    )

    async def run(self, arguments: Mapping[str, Any]) -> str:
        expression = arguments.get("expression")
        if not isinstance(expression, str):
            raise ToolError('arguments must be {"expression": "<arithmetic>"}')
        return format_number(evaluate(expression))


def _evaluate(node: ast.expr, depth: int) -> Fraction:
    if depth > MAX_DEPTH:
        raise ToolError(f"expression is nested more than {MAX_DEPTH} levels deep")
    if isinstance(node, ast.Constant):
        return _bounded(_constant(node.value))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        value = _evaluate(node.operand, depth + 1)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp):
        left = _evaluate(node.left, depth + 1)
        right = _evaluate(node.right, depth + 1)
        if isinstance(node.op, ast.Pow):
            return _bounded(_power(left, right))
        binary = _BINARY.get(type(node.op))
        if binary is not None:
            return _bounded(Fraction(binary(left, right)))  # Fraction // Fraction is an int
    raise ToolError(f"{_describe(node)} is not allowed; use {_ALLOWED}")


def _constant(value: object) -> Fraction:
    if isinstance(value, int) and not isinstance(value, bool):
        return Fraction(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ToolError(f"number too large: more than {MAX_DIGITS} digits")
        return Fraction(repr(value))  # the decimal as written: 0.1 is 1/10
    raise ToolError(f"{type(value).__name__} literal {value!r} is not allowed; use {_ALLOWED}")


def _power(base: Fraction, exponent: Fraction) -> Fraction:
    if exponent.denominator != 1:
        if base < 0:
            raise ToolError("a negative number has no real fractional power")
        try:
            return Fraction(repr(float(base) ** float(exponent)))
        except OverflowError:
            raise ToolError(f"result too large: more than {MAX_DIGITS} digits") from None
    # base ** n has numerator and denominator of about |n| * log10(part) digits: check before computing.
    size = max(math.log10(abs(base.numerator) or 1), math.log10(base.denominator))
    if abs(exponent.numerator) * size > MAX_DIGITS:
        raise ToolError(f"the power would have more than {MAX_DIGITS} digits")
    return base**exponent.numerator


def _bounded(value: Fraction) -> Fraction:
    if abs(value.numerator) >= _LIMIT * value.denominator:
        raise ToolError(f"result too large: more than {MAX_DIGITS} digits")
    if value.denominator >= _LIMIT:
        raise ToolError(f"result too precise: more than {MAX_DIGITS} digits after the decimal point")
    return value


def _describe(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return f"the name '{node.id}'"
    if isinstance(node, ast.Call):
        return "a function call"
    if isinstance(node, ast.Attribute):
        return "attribute access"
    if isinstance(node, ast.Subscript):
        return "indexing"
    if isinstance(node, ast.BinOp | ast.UnaryOp | ast.BoolOp | ast.Compare):
        operation = node.op if isinstance(node, ast.BinOp | ast.UnaryOp | ast.BoolOp) else node.ops[0]
        return f"the operator {type(operation).__name__}"
    return f"{type(node).__name__}"
