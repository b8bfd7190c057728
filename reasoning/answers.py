"""Extracting the final answer from model text, and the forms answers are compared in.

:func:`extract_answer` looks for, in order of trust: the last ``\\boxed{...}``,
the last GSM8K ``#### ...`` line, the last "answer is / answer:" phrase, and
then a per-format fallback (the last number; a lone or parenthesized choice
label; the last line of free text). The first place that holds an answer of the
requested format wins; None means nothing was found.

Answers come back normalized so equal answers compare equal as strings:
numbers as exact canonical decimals ("1,000", "1000.0" and "$1,000" are all
"1000"; "1/2" and "0.5" are "0.5"; non-terminating fractions stay "p/q"),
choices as the label spelled as in ``choices``, free text stripped of markup and
trailing punctuation (compare it with :func:`answer_key`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from enum import StrEnum
from fractions import Fraction
from typing import Any


class AnswerFormat(StrEnum):
    """What kind of answer a task expects; it selects the extraction rules."""

    NUMBER = "number"
    CHOICE = "choice"
    FREE_TEXT = "free_text"


DEFAULT_CHOICES = ("A", "B", "C", "D", "E")

_NUMBER = re.compile(
    r"""
    (?<![\w.])                          # not inside a word or a longer number
    (?P<sign>[-\u2212])?   # ASCII or Unicode minus
    (?:[$€£¥]\s?)?                      # currency symbol
    (?P<mantissa>
        \d{1,3}(?:,\d{3})+(?:\.\d+)?(?![\d]|,\d)   # thousands separators
      | \d+(?:\.\d+)?
      | \.\d+
    )
    (?:\s*/\s*(?P<denominator>\d+)(?![\d.]))?       # a fraction
    (?:[eE](?P<exponent>[-+]?\d{1,2})(?!\d))?       # scientific notation
    """,
    re.VERBOSE,
)
_MARKER = re.compile(r"\b(?:final\s+)?answer\s*(?:is\b|:|=)\s*:?", re.IGNORECASE)
_GSM8K = re.compile(r"^[ \t]*####[ \t]*(.*)$", re.MULTILINE)
_BOXED = re.compile(r"\\boxed\s*\{")
_LATEX_FRACTION = re.compile(r"\\[dt]?frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}")
_EDGE_PUNCTUATION = " \t\"'`*_.,;:!"


def extract_answer(
    text: str, answer_format: AnswerFormat = AnswerFormat.NUMBER, choices: Sequence[str] = DEFAULT_CHOICES
) -> str | None:
    """The normalized answer in ``text`` (see the module docstring), or None when there is none.

    ``choices`` are the labels of a CHOICE task (matched case-insensitively,
    returned as spelled here); other formats ignore them.
    """
    cleaned = _LATEX_FRACTION.sub(r"\1/\2", text.replace("**", "").replace("{,}", ","))
    for segment in _marked_segments(cleaned):
        answer = _parse_segment(segment, answer_format, choices)
        if answer is not None:
            return answer
    return _fallback(cleaned, answer_format, choices)


def answer_key(answer: str) -> str:
    """The form answers are voted in: case and inner whitespace differences do not split a vote."""
    return " ".join(answer.split()).casefold()


def parse_number(text: str) -> Fraction | None:
    """The value of the first number in ``text`` (separators, sign, currency, fraction, exponent), or None."""
    for match in _NUMBER.finditer(text):
        value = _number_value(match)
        if value is not None:
            return value
    return None


def numbers_in(text: str) -> list[Fraction]:
    """Every number in ``text`` (separators, sign, currency, fractions as for answers), in order."""
    values = (_number_value(match) for match in _NUMBER.finditer(text))
    return [value for value in values if value is not None]


def canonical_number(value: Fraction) -> str:
    """``value`` as an exact decimal when it has one ("1000", "-0.75"), else as "p/q" ("1/3")."""
    if value.denominator == 1:
        return str(value.numerator)
    denominator, places = value.denominator, 0
    for factor in (2, 5):
        count = 0
        while denominator % factor == 0:
            denominator //= factor
            count += 1
        places = max(places, count)
    if denominator != 1:
        return f"{value.numerator}/{value.denominator}"
    digits = str(abs(value.numerator * 10**places // value.denominator)).rjust(places + 1, "0")
    sign = "-" if value < 0 else ""
    return f"{sign}{digits[:-places]}.{digits[-places:].rstrip('0')}"


def answer_json_schema(answer_format: AnswerFormat, choices: Sequence[str] = DEFAULT_CHOICES) -> dict[str, Any]:
    """The JSON schema of an answer value, for grammar-constrained final answers."""
    if answer_format is AnswerFormat.NUMBER:
        return {"type": "number"}
    if answer_format is AnswerFormat.CHOICE:
        return {"type": "string", "enum": list(choices)}
    return {"type": "string"}


def _marked_segments(text: str) -> Iterator[str]:
    """Text marked as the answer, most trusted first: boxed, GSM8K ``####``, then "answer is"."""
    boxed = _last_boxed(text)
    if boxed is not None:
        yield boxed
    gsm8k = _GSM8K.findall(text)
    if gsm8k:
        yield gsm8k[-1]
    markers = list(_MARKER.finditer(text))
    if markers:
        yield text[markers[-1].end() :].split("\n", 1)[0]


def _last_boxed(text: str) -> str | None:
    starts = list(_BOXED.finditer(text))
    if not starts:
        return None
    depth, begin = 1, starts[-1].end()
    for position in range(begin, len(text)):
        if text[position] == "{":
            depth += 1
        elif text[position] == "}":
            depth -= 1
            if depth == 0:
                return text[begin:position]
    return None


def _parse_segment(segment: str, answer_format: AnswerFormat, choices: Sequence[str]) -> str | None:
    if answer_format is AnswerFormat.NUMBER:
        # "The answer is 5 + 8 = 13": the result follows the last "=".
        value = parse_number(segment.rsplit("=", 1)[-1])
        return None if value is None else canonical_number(value)
    if answer_format is AnswerFormat.CHOICE:
        return _choice_in_segment(segment, choices)
    answer = " ".join(segment.split()).strip(_EDGE_PUNCTUATION).strip()
    return answer or None


def _fallback(text: str, answer_format: AnswerFormat, choices: Sequence[str]) -> str | None:
    if answer_format is AnswerFormat.NUMBER:
        values = [value for value in map(_number_value, _NUMBER.finditer(text)) if value is not None]
        return canonical_number(values[-1]) if values else None
    if answer_format is AnswerFormat.CHOICE:
        return _last_standalone_choice(text, choices)
    lines = [line for line in text.splitlines() if line.strip(_EDGE_PUNCTUATION)]
    return _parse_segment(lines[-1], answer_format, choices) if lines else None


def _number_value(match: re.Match[str]) -> Fraction | None:
    value = Fraction(match["mantissa"].replace(",", ""))
    if match["denominator"] is not None:
        denominator = int(match["denominator"])
        if denominator == 0:
            return None
        value /= denominator
    if match["exponent"] is not None:
        value *= Fraction(10) ** int(match["exponent"])
    return -value if match["sign"] else value


def _labels_pattern(choices: Sequence[str]) -> str:
    return "|".join(re.escape(label) for label in sorted(choices, key=len, reverse=True))


def _spelled(label: str, choices: Sequence[str]) -> str:
    return next(choice for choice in choices if choice.casefold() == label.casefold())


def _choice_in_segment(segment: str, choices: Sequence[str]) -> str | None:
    """A choice label in an "answer is" segment.

    Accepted: the segment is just a label ("b", "(B)."), an exactly-spelled
    standalone label ("B) 42", "B because"), or a parenthesized label in any
    case ("(b)"). A lowercase bare letter inside a sentence ("a dog") is not a choice.
    """
    bare = segment.strip(_EDGE_PUNCTUATION + "()[] ")
    if any(bare.casefold() == choice.casefold() for choice in choices):
        return _spelled(bare, choices)
    labels = _labels_pattern(choices)
    exact = re.search(rf"(?<!\w)({labels})(?!\w)", segment)
    if exact:
        return exact[1]
    parenthesized = re.search(rf"\(({labels})\)", segment, re.IGNORECASE)
    return _spelled(parenthesized[1], choices) if parenthesized else None


def _last_standalone_choice(text: str, choices: Sequence[str]) -> str | None:
    """The last "(B)" or line that is only a label ("B", "B)", "B."): bare letters in prose are too ambiguous."""
    labels = _labels_pattern(choices)
    pattern = re.compile(rf"\(({labels})\)|^[ \t]*({labels})[).:]?[ \t]*$", re.MULTILINE)
    found = [match[1] or match[2] for match in pattern.finditer(text)]
    return _spelled(found[-1], choices) if found else None
