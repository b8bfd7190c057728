"""Synthetic tool-use conversations for ``quorum tune``: arithmetic solved with calculator calls.

``python -m bench.tool_use_data --rows 400 --seed 1 --output tool_use.jsonl`` writes JSONL rows in the
``quorum tune`` dataset format (docs/adapters.md): a user question, one assistant ``calculator`` call per step
(OpenAI-style ``tool_calls``), each followed by the tool's result, then a final assistant answer that ends with
``Answer: <number>``. The same seed always writes the same file (a private ``random.Random``).

Two kinds of question, drawn 1:2:

* *expressions* -- a bare arithmetic expression of 2-4 operands asked in one of a few phrasings, solved with a
  single call on the whole expression;
* *stories* -- small multi-step situations (a workshop, a ferry, a seed bank, ...) needing two or three
  calculations, each its own call, the later ones using the earlier results.

The templates are this module's own (topics, wording, number ranges), written without looking at any evaluation
set, so an evaluation on public sets measures transfer rather than recall.
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from quorum.reasoning.tools.calculator import evaluate, format_number

CALCULATOR_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "calculator",
        "description": "Evaluates an arithmetic expression with + - * / // % ** and parentheses, e.g. (12 + 30) * 4.",
        "parameters": {
            "type": "object",
            "properties": {"expression": {"type": "string", "pattern": r"^[0-9+\-*/%^(). ]+$"}},
            "required": ["expression"],
            "additionalProperties": False,
        },
    },
}


@dataclass(frozen=True)
class Step:
    """One calculator call and what its result means."""

    expression: str
    meaning: str


@dataclass(frozen=True)
class Conversation:
    question: str
    steps: tuple[Step, ...]
    closing: str


def number_text(value: Fraction) -> str:
    """An integer as digits, otherwise a decimal rounded to 4 places without trailing zeros."""
    if value.denominator == 1:
        return str(value.numerator)
    return f"{float(value):.4f}".rstrip("0").rstrip(".")


_ASK = (
    "Compute {e}.",
    "What do you get for {e}?",
    "Please evaluate {e}",
    "I need the value of {e}, can you help?",
    "Find {e}.",
    "Quick one: {e} = ?",
)
_OPS = ("+", "-", "*")


def _expression(rng: random.Random) -> Conversation:
    operands = [rng.randint(2, 999) for _ in range(rng.randint(2, 4))]
    text = str(operands[0])
    for operand in operands[1:]:
        op = rng.choice(_OPS)
        if op == "*" and rng.random() < 0.5:
            operand = rng.randint(2, 40)
        text = f"{text} {op} {operand}"
    if len(operands) > 2 and rng.random() < 0.4:
        parts = text.split(" ")
        text = "(" + " ".join(parts[:3]) + ") " + " ".join(parts[3:])
    question = rng.choice(_ASK).format(e=text)
    return Conversation(question, (Step(text, "the value"),), "The value of the expression is {0}.")


def _workshop(rng: random.Random) -> Conversation:
    shelves, per_shelf, broken = rng.randint(4, 60), rng.randint(6, 85), rng.randint(1, 40)
    question = (
        f"A repair workshop stores {per_shelf} spare valves on each of its {shelves} shelves. "
        f"During an inspection {broken} valves turn out to be cracked and are thrown away. "
        "How many usable valves are left?"
    )
    total = shelves * per_shelf
    return Conversation(
        question,
        (Step(f"{shelves} * {per_shelf}", "valves stored"), Step(f"{total} - {broken}", "usable valves")),
        "After discarding the cracked ones, {1} valves are usable.",
    )


def _ferry(rng: random.Random) -> Conversation:
    trips, cars, fare, extra = rng.randint(3, 14), rng.randint(8, 48), rng.randint(7, 35), rng.randint(20, 400)
    question = (
        f"An island ferry makes {trips} crossings a day and carries {cars} cars on every crossing. "
        f"Each car pays {fare} dollars, and foot passengers bring in another {extra} dollars that day. "
        "What is the day's total income?"
    )
    count = trips * cars
    fares = count * fare
    return Conversation(
        question,
        (
            Step(f"{trips} * {cars}", "cars carried"),
            Step(f"{count} * {fare}", "car fares"),
            Step(f"{fares} + {extra}", "total income"),
        ),
        "The ferry takes in {2} dollars that day.",
    )


def _seed_bank(rng: random.Random) -> Conversation:
    packets, seeds, groups = rng.randint(5, 90), rng.randint(12, 120), rng.choice((2, 3, 4, 5, 6, 8, 10))
    total = packets * seeds
    while total % groups:
        packets += 1
        total = packets * seeds
    question = (
        f"A community seed bank receives {packets} packets holding {seeds} seeds each. "
        f"The seeds are split evenly among {groups} school gardens. How many seeds does each garden get?"
    )
    return Conversation(
        question,
        (Step(f"{packets} * {seeds}", "seeds in all"), Step(f"{total} / {groups}", "seeds per garden")),
        "Each garden receives {1} seeds.",
    )


def _cyclist(rng: random.Random) -> Conversation:
    days, morning, evening = rng.randint(3, 30), rng.randint(4, 38), rng.randint(4, 38)
    question = (
        f"Priya cycles {morning} km to the studio every morning and {evening} km home by a longer route every "
        f"evening. How many kilometres does she ride over {days} working days?"
    )
    daily = morning + evening
    return Conversation(
        question,
        (Step(f"{morning} + {evening}", "km per day"), Step(f"{daily} * {days}", "km in total")),
        "Over those days she rides {1} km.",
    )


def _bakery(rng: random.Random) -> Conversation:
    trays, rolls, price_cents, unsold = (
        rng.randint(3, 25),
        rng.randint(10, 48),
        rng.randint(35, 240),
        rng.randint(2, 30),
    )
    price = Fraction(price_cents, 100)
    question = (
        f"A bakery bakes {trays} trays of rye rolls with {rolls} rolls per tray and sells them for "
        f"{number_text(price)} dollars apiece. {unsold} rolls are left at closing time. "
        "How much money did the sold rolls bring in?"
    )
    baked = trays * rolls
    sold = baked - unsold
    return Conversation(
        question,
        (
            Step(f"{trays} * {rolls}", "rolls baked"),
            Step(f"{baked} - {unsold}", "rolls sold"),
            Step(f"{sold} * {number_text(price)}", "money taken"),
        ),
        "The sold rolls brought in {2} dollars.",
    )


def _aquarium(rng: random.Random) -> Conversation:
    tanks, litres, weekly = rng.randint(2, 40), rng.randint(40, 900), rng.choice((2, 3, 4, 5, 10))
    question = (
        f"A public aquarium has {tanks} tanks of {litres} litres each. Keepers replace one part in {weekly} "
        "of the water every week. How many litres of water are replaced each week?"
    )
    volume = tanks * litres
    return Conversation(
        question,
        (Step(f"{tanks} * {litres}", "litres in all tanks"), Step(f"{volume} / {weekly}", "litres replaced")),
        "The keepers replace {1} litres a week.",
    )


def _print_shop(rng: random.Random) -> Conversation:
    booklets, pages, spoiled, boxes = rng.randint(20, 600), rng.randint(8, 64), rng.randint(10, 300), rng.randint(2, 9)
    question = (
        f"A print shop prints {booklets} booklets of {pages} pages. {spoiled} extra sheets are wasted while "
        f"setting up the machine, and paper comes in {boxes} equal deliveries. How many sheets of paper does "
        "the job use in all, including waste?"
    )
    printed = booklets * pages
    return Conversation(
        question,
        (Step(f"{booklets} * {pages}", "pages printed"), Step(f"{printed} + {spoiled}", "sheets used")),
        "The job uses {1} sheets.",
    )


def _orchard(rng: random.Random) -> Conversation:
    rows_a, rows_b, trees, crates = rng.randint(3, 30), rng.randint(3, 30), rng.randint(5, 40), rng.randint(2, 12)
    question = (
        f"An orchard has {rows_a} rows of pear trees and {rows_b} rows of plum trees, with {trees} trees in "
        f"every row. Each tree fills {crates} crates at harvest. How many crates are filled?"
    )
    rows = rows_a + rows_b
    count = rows * trees
    return Conversation(
        question,
        (
            Step(f"{rows_a} + {rows_b}", "rows"),
            Step(f"{rows} * {trees}", "trees"),
            Step(f"{count} * {crates}", "crates"),
        ),
        "The harvest fills {2} crates.",
    )


_STORIES: tuple[Callable[[random.Random], Conversation], ...] = (
    _workshop,
    _ferry,
    _seed_bank,
    _cyclist,
    _bakery,
    _aquarium,
    _print_shop,
    _orchard,
)


def conversation(rng: random.Random) -> Conversation:
    """One problem: an expression one time in three, otherwise a story."""
    if rng.random() < 1 / 3:
        return _expression(rng)
    return rng.choice(_STORIES)(rng)


def to_row(item: Conversation, index: int) -> dict[str, Any]:
    """The ``quorum tune`` row of ``item``: calls and results for every step, then the final answer."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": item.question}]
    results: list[str] = []
    for n, step in enumerate(item.steps):
        call_id = f"call_{index}_{n}"
        messages.append(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": call_id,
                        "type": "function",
                        "function": {"name": "calculator", "arguments": json.dumps({"expression": step.expression})},
                    }
                ],
            }
        )
        result = format_number(evaluate(step.expression))  # what the server's calculator tool answers
        results.append(result)
        messages.append({"role": "tool", "tool_call_id": call_id, "content": result})
    answer = results[-1]
    messages.append({"role": "assistant", "content": f"{item.closing.format(*results)} Answer: {answer}"})
    return {"messages": messages, "tools": [CALCULATOR_TOOL]}


def generate(rows: int, seed: int) -> list[dict[str, Any]]:
    """``rows`` dataset rows; the same ``seed`` gives the same rows."""
    rng = random.Random(seed)
    return [to_row(conversation(rng), i) for i in range(rows)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=400)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--output", required=True, help="JSONL file to write")
    args = parser.parse_args(argv)
    lines = [json.dumps(row, ensure_ascii=False) for row in generate(args.rows, args.seed)]
    Path(args.output).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"{len(lines)} rows written to {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
