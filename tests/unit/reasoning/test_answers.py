from fractions import Fraction

import pytest

from quorum.reasoning.answers import (
    AnswerFormat,
    answer_json_schema,
    answer_key,
    canonical_number,
    extract_answer,
    parse_number,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # plain numbers, separators, signs, decimals
        ("42", "42"),
        ("1,000", "1000"),
        ("1000.0", "1000"),
        ("1,234,567.890", "1234567.89"),
        ("-5", "-5"),
        ("\u22127 degrees", "-7"),
        ("x=-3", "-3"),
        (".5", "0.5"),
        ("0.50", "0.5"),
        ("007", "7"),
        # fractions, scientific notation
        ("3/4", "0.75"),
        ("2 / 6", "1/3"),
        ("1e3", "1000"),
        ("2.5E-2", "0.025"),
        # currency and units
        ("$1,234.50", "1234.5"),
        ("It costs \u20ac12.", "12"),
        ("12 apples", "12"),
        ("50%", "50"),
        ("5km", "5"),
        # answer markers
        ("The answer is 42.", "42"),
        ("The answer is $1,234.50.", "1234.5"),
        ("So the final answer is: -17", "-17"),
        ("Answer: 2,500,000 people", "2500000"),
        ("answer = 9", "9"),
        ("First 3 + 4 = 7. The answer is 7 apples. Then 2 more.", "7"),
        ("The answer is 5 + 8 = 13.", "13"),
        ("The answer is 14, since 5 + 8 = 14", "14"),
        ("The answer is 12. Wait, the answer is 13.", "13"),
        ("The answer is unclear.\n5 + 8 = 13", "13"),
        ("**Answer:** 21", "21"),
        # GSM8K and LaTeX
        ("She has 3 + 4 = 7 left.\n#### 7", "7"),
        ("#### 1,000", "1000"),
        ("The answer is 5.\n#### 6", "6"),
        ("so \\boxed{42}", "42"),
        ("\\boxed{\\frac{3}{4}}", "0.75"),
        ("\\boxed{\\dfrac{-1}{2}}", "-0.5"),
        ("\\boxed{1{,}000}", "1000"),
        ("\\boxed{x = 10} and then 11", "10"),
        ("The answer is 3. \\boxed{4}", "4"),
        # last-number fallback
        ("5 + 8 = 13", "13"),
        ("She had 12 apples, ate 5 and has 7 left", "7"),
        ("5-3", "3"),
        ("1,2,3", "3"),
        # nothing found
        ("", None),
        ("no numbers here", None),
        ("The answer is unknown.", None),
        ("\\boxed{}", None),
        ("1/0", None),
    ],
)
def test_number_extraction(text: str, expected: str | None) -> None:
    assert extract_answer(text, AnswerFormat.NUMBER) == expected


@pytest.mark.parametrize("text", ["1,000", "1000", "1000.0", "$1,000", "1000.00 dollars", "1e3", "#### 1000"])
def test_equal_numbers_normalize_equal(text: str) -> None:
    assert extract_answer(text) == "1000"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Answer: B", "B"),
        ("The answer is (c).", "C"),
        ("answer: b", "B"),
        ("The answer is B) 42", "B"),
        ("The answer is D because it is largest", "D"),
        ("\\boxed{C}", "C"),
        ("#### A", "A"),
        ("Looking at the options...\n(B)", "B"),
        ("I pick\nB)\n", "B"),
        ("Option (A) is wrong, option (D) is right", "D"),
        ("The answer is a dog", None),  # an article, not choice A
        ("A train leaves at noon.", None),
        ("The answer is F", None),  # not a label
        ("", None),
    ],
)
def test_choice_extraction(text: str, expected: str | None) -> None:
    assert extract_answer(text, AnswerFormat.CHOICE) == expected


def test_choice_labels_are_configurable() -> None:
    assert extract_answer("The answer is (2).", AnswerFormat.CHOICE, ("1", "2", "3")) == "2"
    assert extract_answer("answer: yes", AnswerFormat.CHOICE, ("Yes", "No")) == "Yes"
    assert extract_answer("The answer is (b)", AnswerFormat.CHOICE, ("a", "b")) == "b"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The answer is Paris.", "Paris"),
        ("Paris", "Paris"),
        ("**Final answer:** New   York!", "New York"),
        ("Let me think.\nThe capital is Rome.\n", "The capital is Rome"),
        ("\\boxed{blue}", "blue"),
        ("", None),
        ("  \n...\n", None),
    ],
)
def test_free_text_extraction(text: str, expected: str | None) -> None:
    assert extract_answer(text, AnswerFormat.FREE_TEXT) == expected


def test_answer_key_ignores_case_and_spacing() -> None:
    assert answer_key("New  York") == answer_key("new york")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Fraction(1000), "1000"),
        (Fraction(-3, 4), "-0.75"),
        (Fraction(1, 8), "0.125"),
        (Fraction(-1, 20), "-0.05"),
        (Fraction(1, 3), "1/3"),
        (Fraction(0), "0"),
    ],
)
def test_canonical_number(value: Fraction, expected: str) -> None:
    assert canonical_number(value) == expected


def test_parse_number_returns_the_first_value() -> None:
    assert parse_number("between -2.5 and 7") == Fraction(-5, 2)
    assert parse_number("none") is None


def test_answer_json_schema_per_format() -> None:
    assert answer_json_schema(AnswerFormat.NUMBER) == {"type": "number"}
    assert answer_json_schema(AnswerFormat.CHOICE, ("A", "B")) == {"type": "string", "enum": ["A", "B"]}
    assert answer_json_schema(AnswerFormat.FREE_TEXT) == {"type": "string"}
