"""Grounded arithmetic for ReAct: the calculator may only combine numbers the run has seen.

A small model calling a calculator makes up operands, repeats one, or copies
a number into the final answer instead of the result. Under constrained
decoding the grammar can rule that out: :func:`expression_schema` gives the
calculator an ``expression`` pattern whose operands are the given numbers (the
question's and the earlier tool results'), each used at most as often as it
was written ("What is 12 * 12?" may use 12 twice), joined by
``+ - * /``; :func:`answer_schema` limits a numeric final answer to the tool
results, and for a question that asks "how many" to the ones that are not
negative (a count). Numbers are written the way the calculator and the
answer extractor read them back (canonical decimals, no separators).

Each-at-most-once is spelled out as a trie of operand sequences, which grows
like ``m!`` for ``m`` numbers; past :data:`MAX_DISTINCT` numbers the pattern
only restricts operands to the set (repeats allowed).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from fractions import Fraction
from typing import Any

from .answers import canonical_number, numbers_in

MAX_DISTINCT = 5
MAX_NUMBERS = 12  # beyond this many distinct numbers grounding is off (the pattern would not help)
_OPERATOR = r" [-+*/] "
_HOW_MANY = re.compile(r"\bhow many\b", re.IGNORECASE)


def grounded_numbers(texts: Iterable[str]) -> list[str]:
    """Every number in ``texts`` (magnitudes, canonical), in order; a number written twice is listed twice."""
    return [canonical_number(abs(value)) for text in texts for value in numbers_in(text)]


def asks_for_count(question: str) -> bool:
    """True when ``question`` asks "how many": its answer is a count, which is never negative."""
    return _HOW_MANY.search(question) is not None


def expression_pattern(numbers: Sequence[str]) -> str:
    """A regex (anchored) for ``a op b op c ...`` over ``numbers``, each used at most as often as it is
    listed (see the module doc)."""
    if not numbers:
        raise ValueError("grounded arithmetic needs at least one number")
    if len(numbers) > MAX_DISTINCT:
        operand = "(?:" + "|".join(re.escape(number) for number in dict.fromkeys(numbers)) + ")"
        return f"^{operand}(?:{_OPERATOR}{operand})*$"
    return "^" + _trie(Counter(numbers)) + "$"


def _trie(left: Counter[str]) -> str:
    branches = []
    for number in left:
        rest = left.copy()
        rest[number] -= 1
        rest = +rest  # drop used-up numbers
        branches.append(re.escape(number) + (f"(?:{_OPERATOR}{_trie(rest)})?" if rest else ""))
    return "(?:" + "|".join(branches) + ")"


def expression_schema(base: Mapping[str, Any], numbers: Sequence[str]) -> dict[str, Any] | None:
    """``base`` (the calculator's arguments schema) with a grounded ``expression`` pattern; None when
    grounding does not apply (no numbers, or more than :data:`MAX_NUMBERS`)."""
    if not numbers or len(set(numbers)) > MAX_NUMBERS:
        return None
    properties = dict(base.get("properties", {}))
    properties["expression"] = {"type": "string", "pattern": expression_pattern(numbers)}
    return {**base, "properties": properties}


def result_values(results: Iterable[str], *, nonnegative: bool = False) -> list[Fraction]:
    """The distinct numbers of the tool ``results``, in order; only those >= 0 with ``nonnegative``."""
    values: dict[Fraction, None] = {}
    for result in results:
        for value in numbers_in(result):
            if value >= 0 or not nonnegative:
                values.setdefault(value, None)
    return list(values)


def answer_schema(results: Iterable[str], *, nonnegative: bool = False) -> dict[str, Any] | None:
    """A numeric final answer limited to the numbers of the tool ``results`` (with ``nonnegative``, those
    >= 0); None when there are none."""
    values = result_values(results, nonnegative=nonnegative)
    if not values:
        return None
    return {"enum": [int(v) if v.denominator == 1 else float(v) for v in values]}
