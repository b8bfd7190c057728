"""Procedural arithmetic word problems with exact integer answers, for the reasoning benchmark.

``generate(count, seed)`` returns ``count`` problems; the same seed always gives
the same problems (a private ``random.Random(seed)``, no global state). The
templates take turns (problem ``i`` uses template ``i % len(TEMPLATES)``, so any
``count`` of at least 9 covers all of them) and draw fresh numbers each time:

- one step: a product of a 2-3 digit and a 2 digit number, a sum of two 3-4
  digit numbers, a difference of 3-4 digit numbers, an exact division, a sum of three;
- two steps: product minus a remainder, product plus a count, two products
  added (a bill), product plus a distance.

Every answer is a positive integer, and every question ends with "How many ... ?"
or "How much ... ?" so an answer is a single number.

``generate(count, seed, level="easy")`` draws from :data:`EASY_TEMPLATES` instead:
one step on numbers under 20 (a sum, a difference, a small product), the level
where the embedded 135M model answers some problems right by itself, so
self-consistency and early stopping have votes to work with.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One word problem: its text, the exact answer and the template that made it."""

    question: str
    answer: int
    kind: str


Template = Callable[[random.Random], Problem]


def _product(rng: random.Random) -> Problem:
    rows, trees = rng.randint(12, 240), rng.randint(11, 98)
    return Problem(
        f"A farmer plants {rows} rows of apple trees with {trees} trees in each row. "
        "How many trees does the farmer plant?",
        rows * trees,
        "product",
    )


def _sum(rng: random.Random) -> Problem:
    fiction, other = rng.randint(120, 4800), rng.randint(120, 4800)
    return Problem(
        f"A library has {fiction} fiction books and {other} non-fiction books. How many books does it have in total?",
        fiction + other,
        "sum",
    )


def _difference(rng: random.Random) -> Problem:
    total = rng.randint(500, 9500)
    leaked = rng.randint(100, total - 50)
    return Problem(
        f"A water tank holds {total} liters. Then {leaked} liters leak out. How many liters are left in the tank?",
        total - leaked,
        "difference",
    )


def _division(rng: random.Random) -> Problem:
    children, each = rng.randint(3, 24), rng.randint(12, 95)
    return Problem(
        f"A teacher shares {children * each} stickers equally among {children} children. "
        "How many stickers does each child get?",
        each,
        "division",
    )


def _three_sum(rng: random.Random) -> Problem:
    ann, ben, cal = rng.randint(40, 900), rng.randint(40, 900), rng.randint(40, 900)
    return Problem(
        f"Ann has {ann} stamps, Ben has {ben} stamps and Cal has {cal} stamps. How many stamps do they have together?",
        ann + ben + cal,
        "three_sum",
    )


def _product_minus(rng: random.Random) -> Problem:
    trays, per_tray = rng.randint(12, 60), rng.randint(12, 36)
    sold = rng.randint(10, trays * per_tray - 10)
    return Problem(
        f"A baker makes {trays} trays of cookies with {per_tray} cookies on each tray and sells {sold} cookies. "
        "How many cookies are left?",
        trays * per_tray - sold,
        "product_minus",
    )


def _product_plus(rng: random.Random) -> Problem:
    classes, students, teachers = rng.randint(6, 40), rng.randint(18, 35), rng.randint(8, 60)
    return Problem(
        f"A school has {classes} classes with {students} students in each class, and {teachers} teachers. "
        "How many people are in the school?",
        classes * students + teachers,
        "product_plus",
    )


def _bill(rng: random.Random) -> Problem:
    notebook, pen = rng.randint(3, 19), rng.randint(2, 9)
    notebooks, pens = rng.randint(4, 40), rng.randint(4, 40)
    return Problem(
        f"A notebook costs {notebook} dollars and a pen costs {pen} dollars. "
        f"How much do {notebooks} notebooks and {pens} pens cost in dollars?",
        notebook * notebooks + pen * pens,
        "bill",
    )


def _distance(rng: random.Random) -> Problem:
    per_day, days, extra = rng.randint(45, 480), rng.randint(3, 14), rng.randint(10, 300)
    return Problem(
        f"A train travels {per_day} km every day for {days} days, and then {extra} km more. "
        "How many km does it travel in all?",
        per_day * days + extra,
        "distance",
    )


TEMPLATES: tuple[Template, ...] = (
    _product,
    _sum,
    _difference,
    _division,
    _three_sum,
    _product_minus,
    _product_plus,
    _bill,
    _distance,
)


def _easy_sum(rng: random.Random) -> Problem:
    apples, more = rng.randint(2, 9), rng.randint(2, 9)
    return Problem(
        f"Tom has {apples} apples and buys {more} more apples. How many apples does Tom have now?",
        apples + more,
        "easy_sum",
    )


def _easy_difference(rng: random.Random) -> Problem:
    cookies = rng.randint(8, 19)
    eaten = rng.randint(2, cookies - 2)
    return Problem(
        f"Sam has {cookies} cookies and eats {eaten} of them. How many cookies are left?",
        cookies - eaten,
        "easy_difference",
    )


def _easy_product(rng: random.Random) -> Problem:
    boxes, pens = rng.randint(2, 6), rng.randint(2, 6)
    return Problem(
        f"There are {boxes} boxes with {pens} pens in each box. How many pens are there?",
        boxes * pens,
        "easy_product",
    )


def _easy_group(rng: random.Random) -> Problem:
    boys, girls = rng.randint(3, 12), rng.randint(3, 12)
    return Problem(
        f"A class has {boys} boys and {girls} girls. How many children are in the class?",
        boys + girls,
        "easy_group",
    )


EASY_TEMPLATES: tuple[Template, ...] = (_easy_sum, _easy_difference, _easy_product, _easy_group)
LEVELS: dict[str, tuple[Template, ...]] = {"standard": TEMPLATES, "easy": EASY_TEMPLATES}


def generate(count: int, seed: int = 0, level: str = "standard") -> list[Problem]:
    """``count`` problems of ``level`` (see :data:`LEVELS`), deterministic for ``seed``; templates take turns."""
    rng = random.Random(seed)
    templates = LEVELS[level]
    return [templates[i % len(templates)](rng) for i in range(count)]


if __name__ == "__main__":
    for number, problem in enumerate(generate(len(TEMPLATES)), 1):
        print(f"{number}. [{problem.kind}] {problem.question} -> {problem.answer}")
