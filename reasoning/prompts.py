"""The chat prompts of the strategies.

Written for small models (SmolLM2-135M-Instruct): instructions go in the user
turn, the expected ending is spelled out literally, and ReAct gets one worked
few-shot exchange per tool in the same chat format as the real run. Tool
results come back as user turns ("Result: ..."), which small chat models
follow more reliably than a "tool" role they were not trained on.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from .answers import AnswerFormat, parse_number
from .llm import ChatTurn
from .request import ReasonRequest
from .tools import FINAL_ANSWER, Tool, ToolExample, ToolOutcome

REACT_SYSTEM = """You solve problems by calling tools. Reply with exactly one JSON object:
{{"thought": <what the question gives and what to do>, "tool": <tool name>, "arguments": {{<arguments>}}}}
Tools:
{tools}
- {final}: gives the final answer. Arguments: {{"answer": {answer}}}
Use a tool for every calculation. After a tool result, reply with {final} and the result."""


def _example(question: str, thought: str, expression: str, result: str) -> ToolExample:
    return ToolExample(question, {"expression": expression}, result, result, thought)


# A pool of worked calculator examples; each prompt shows the few most similar to its question (see
# :func:`select_examples`). A small model copies the operation of the examples it sees, so the pool
# covers every kind of step (x, +, -, /, three numbers, two steps) in the usual wordings. Each thought
# names the quantities the question gives and what to do with them, in the question's own words.
CALCULATOR_EXAMPLES = (
    _example(
        "A box holds 24 pencils. How many pencils are in 15 boxes?",
        "24 pencils in each of 15 boxes: multiply.",
        "15 * 24",
        "360",
    ),
    _example(
        "A parking garage has 16 levels with 45 cars on each level. How many cars are parked?",
        "16 levels with 45 cars on each level: multiply.",
        "16 * 45",
        "720",
    ),
    _example(
        "A theater has 32 rows with 18 seats in each row. How many seats does it have?",
        "32 rows with 18 seats in each row: multiply.",
        "32 * 18",
        "576",
    ),
    _example(
        "A bus ticket costs 6 dollars. How much do 37 tickets cost?",
        "37 tickets at 6 dollars each: multiply.",
        "37 * 6",
        "222",
    ),
    _example(
        "A runner runs 8 km every day. How many km does she run in 21 days?",
        "8 km every day for 21 days: multiply.",
        "21 * 8",
        "168",
    ),
    _example(
        "Tom has 125 marbles and his sister has 348 marbles. How many marbles do they have in total?",
        "125 marbles and 348 marbles in total: add.",
        "125 + 348",
        "473",
    ),
    _example(
        "A farm has 1450 chickens and 2375 ducks. How many birds does the farm have?",
        "1450 chickens and 2375 ducks are all birds: add.",
        "1450 + 2375",
        "3825",
    ),
    _example(
        "A zoo has 34 lions, 57 zebras and 112 birds. How many animals does it have together?",
        "34 lions, 57 zebras and 112 birds together: add all three.",
        "34 + 57 + 112",
        "203",
    ),
    _example(
        "On Monday 615 people visited a museum, on Tuesday 482 and on Wednesday 730. How many visitors came in all?",
        "615, 482 and 730 visitors on three days: add all three.",
        "615 + 482 + 730",
        "1827",
    ),
    _example(
        "A store had 920 apples and sold 385 of them. How many apples are left?",
        "920 apples at the start and 385 sold: subtract the sold from the start.",
        "920 - 385",
        "535",
    ),
    _example(
        "A truck carries 3200 kg of sand and unloads 1475 kg. How many kg of sand are still on the truck?",
        "3200 kg at the start and 1475 kg unloaded: subtract the unloaded from the start.",
        "3200 - 1475",
        "1725",
    ),
    _example(
        "Sara had 1200 dollars and spent 365 dollars. How many dollars does she have left?",
        "1200 dollars at the start and 365 spent: subtract the spent from the start.",
        "1200 - 365",
        "835",
    ),
    _example(
        "A rope 156 meters long is cut into 12 equal pieces. How long is each piece in meters?",
        "156 meters cut into 12 equal pieces: divide.",
        "156 / 12",
        "13",
    ),
    _example(
        "A farmer packs 840 eggs equally into 35 boxes. How many eggs are in each box?",
        "840 eggs packed equally into 35 boxes: divide.",
        "840 / 35",
        "24",
    ),
    _example(
        "Mia shares 96 candies equally among 8 friends. How many candies does each friend get?",
        "96 candies shared equally among 8 friends: divide.",
        "96 / 8",
        "12",
    ),
    _example(
        "A farm has 14 pens with 9 sheep in each pen and 23 more sheep in a field. How many sheep are there?",
        "14 pens with 9 sheep each: multiply, then add the 23 more.",
        "14 * 9 + 23",
        "149",
    ),
    _example(
        "A worker earns 15 dollars per hour for 8 hours and gets a 20 dollar bonus. How many dollars does she get?",
        "15 dollars per hour for 8 hours: multiply, then add the 20 dollar bonus.",
        "15 * 8 + 20",
        "140",
    ),
    _example(
        "A cook buys 30 boxes with 12 eggs in each box and uses 95 eggs. How many eggs are left?",
        "30 boxes with 12 eggs each: multiply, then subtract the 95 used.",
        "30 * 12 - 95",
        "265",
    ),
    _example(
        "A hotel has 12 floors with 20 rooms on each floor, and 37 rooms are empty. How many rooms are taken?",
        "12 floors with 20 rooms each: multiply, then subtract the 37 empty.",
        "12 * 20 - 37",
        "203",
    ),
    _example(
        "A child ticket costs 7 dollars and an adult ticket costs 11 dollars. "
        "How much do 5 child tickets and 3 adult tickets cost?",
        "5 tickets at 7 dollars and 3 tickets at 11 dollars: multiply each, then add.",
        "5 * 7 + 3 * 11",
        "68",
    ),
    _example(
        "A sandwich costs 6 dollars and a juice costs 3 dollars. How much do 4 sandwiches and 7 juices cost?",
        "4 sandwiches at 6 dollars and 7 juices at 3 dollars: multiply each, then add.",
        "4 * 6 + 7 * 3",
        "45",
    ),
)
EXAMPLES: Mapping[str, Sequence[ToolExample]] = {"calculator": CALCULATOR_EXAMPLES}
SHOWN_EXAMPLES = 6
SAME_COUNT_BONUS = 0.25
ASK_WEIGHT = 1.0
_WORD = re.compile(r"[a-z]+")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


def select_examples(question: str, pool: Sequence[ToolExample], count: int = SHOWN_EXAMPLES) -> list[ToolExample]:
    """The ``count`` examples of ``pool`` most like ``question``, least alike first (the closest ends up next
    to the question); ties keep pool order.

    Alike: the words (other than fillers) the questions share, each weighted by how rare it is in the
    pool (a cosine over IDF-weighted word sets), over the whole questions plus :data:`ASK_WEIGHT` times
    over their last sentences (the asking one, whose wording - "left", "in total", "each" - usually names
    the operation), plus :data:`SAME_COUNT_BONUS` when both questions give the same count of numbers
    (the expression's size).
    """
    documents = [_words(example.question) for example in pool]
    asks = [_words(_last_sentence(example.question)) for example in pool]
    frequency = Counter(word for words in documents for word in words)
    weight = {word: math.log((1 + len(pool)) / n) for word, n in frequency.items()}

    def cosine(left: set[str], right: set[str]) -> float:
        left, right = left & weight.keys(), right & weight.keys()
        norm = math.sqrt(sum(weight[w] ** 2 for w in left) * sum(weight[w] ** 2 for w in right))
        return sum(weight[w] ** 2 for w in left & right) / norm if norm else 0.0

    words, ask, numbers = _words(question), _words(_last_sentence(question)), len(_NUMBER.findall(question))

    def similarity(index: int) -> float:
        same_count = len(_NUMBER.findall(pool[index].question)) == numbers
        return cosine(words, documents[index]) + ASK_WEIGHT * cosine(ask, asks[index]) + SAME_COUNT_BONUS * same_count

    ranked = sorted(range(len(pool)), key=lambda index: (-similarity(index), index))[:count]
    return [pool[index] for index in reversed(ranked)]


# Words that say nothing about the operation (unlike "and", "each", "left", "more", "in").
_FILLER = frozenset(
    (
        "a",
        "an",
        "the",
        "is",
        "are",
        "was",
        "were",
        "does",
        "do",
        "did",
        "it",
        "its",
        "there",
        "how",
        "many",
        "much",
        "has",
        "have",
        "had",
        "to",
        "of",
        "on",
        "at",
        "for",
    )
)


def _words(text: str) -> set[str]:
    return set(_WORD.findall(text.casefold())) - _FILLER


def _last_sentence(text: str) -> str:
    """The last sentence of ``text``: in a word problem, the one that asks (and names the operation)."""
    sentences = [part for part in re.split(r"(?<=[.?!])\s+", text.strip()) if part]
    return sentences[-1] if sentences else text


def answer_hint(request: ReasonRequest) -> str:
    """The expected answer in words: "a number", "one of A, B, C" or "a short phrase"."""
    if request.answer_format is AnswerFormat.NUMBER:
        return "a number"
    if request.answer_format is AnswerFormat.CHOICE:
        return "one of " + ", ".join(request.choices)
    return "a short phrase"


def direct_messages(request: ReasonRequest) -> list[ChatTurn]:
    prompt = f"{request.question}\n\nReply with only the answer ({answer_hint(request)}) and nothing else."
    return [*request.messages, ChatTurn("user", prompt)]


# Worked chain-of-thought exchanges shown before a numeric question (few-shot CoT, as in Wei et al. 2022):
# a small model copies their shape - one short line per step, each calculation written out, then the
# literal "The answer is N." ending the extractor trusts most. They are the same for every question, so
# their KV blocks stay in the prefix cache across requests.
COT_EXAMPLES: tuple[tuple[str, str], ...] = (
    (
        "A shop has 245 red pens and 132 blue pens. How many pens does it have?",
        "The shop has 245 red pens and 132 blue pens.\n245 + 132 = 377.\nThe answer is 377.",
    ),
    (
        "A tank holds 900 liters of water. Then 350 liters are used. How many liters are left?",
        "The tank starts with 900 liters and 350 liters are used.\n900 - 350 = 550.\nThe answer is 550.",
    ),
    (
        "A box holds 12 eggs. How many eggs are in 6 boxes?",
        "Each box holds 12 eggs and there are 6 boxes.\n6 * 12 = 72.\nThe answer is 72.",
    ),
    (
        "Ben shares 84 cards equally among 4 friends. How many cards does each friend get?",
        "84 cards are shared equally among 4 friends.\n84 / 4 = 21.\nThe answer is 21.",
    ),
    (
        "A class has 5 tables with 4 children at each table and 3 more children at the door. "
        "How many children are there?",
        "5 tables with 4 children each: 5 * 4 = 20.\nThen 3 more children: 20 + 3 = 23.\nThe answer is 23.",
    ),
)


def chain_of_thought_messages(request: ReasonRequest) -> list[ChatTurn]:
    """The prior conversation, then (for numeric tasks) the worked :data:`COT_EXAMPLES`, then the question."""
    ending = f'End with the sentence "The answer is X." where X is {answer_hint(request)}.'

    def ask(question: str) -> str:
        return f"{question}\n\nLet's think step by step. {ending}"

    examples: list[ChatTurn] = []
    if request.answer_format is AnswerFormat.NUMBER:
        for question, solution in COT_EXAMPLES:
            examples += [ChatTurn("user", ask(question)), ChatTurn("assistant", solution)]
    return [*request.messages, *examples, ChatTurn("user", ask(request.question))]


def react_messages(request: ReasonRequest, tools: Sequence[Tool]) -> list[ChatTurn]:
    """System instructions, one few-shot exchange per tool, the prior conversation, then the question."""
    listing = "\n".join(f"- {tool.name}: {tool.description} Arguments: {_arguments_outline(tool)}" for tool in tools)
    answer = "<number>" if request.answer_format is AnswerFormat.NUMBER else '"<answer>"'
    system = REACT_SYSTEM.format(tools=listing, final=FINAL_ANSWER, answer=answer)
    turns = [ChatTurn("system", system)]
    for tool in tools:
        pool = EXAMPLES.get(tool.name) or ((tool.example,) if tool.example is not None else ())
        for example in select_examples(request.question, pool):
            turns += [
                ChatTurn("user", f"Question: {example.question}"),
                ChatTurn("assistant", action_json(tool.name, example.arguments, example.thought)),
                ChatTurn("user", observation(ToolOutcome(output=example.output))),
                ChatTurn("assistant", action_json(FINAL_ANSWER, {"answer": _answer_value(example.answer, request)})),
            ]
    return [*turns, *request.messages, ChatTurn("user", f"Question: {request.question}")]


def action_json(tool: str, arguments: Mapping[str, Any], thought: str = "") -> str:
    """An action as the model writes it: ``{"thought": ..., "tool": ..., "arguments": {...}}`` (a final
    answer has no thought)."""
    action: dict[str, Any] = {"thought": thought} if thought else {}
    action |= {"tool": tool, "arguments": dict(arguments)}
    return json.dumps(action, ensure_ascii=False)


def observation(outcome: ToolOutcome) -> str:
    """How a tool's outcome is shown to the model."""
    return f"Result: {outcome.output}" if outcome.ok else f"Error: {outcome.error}"


def _arguments_outline(tool: Tool) -> str:
    """``{"name": type, ...}``; allowed values are the tool description's business (the grammar enforces them)."""
    properties: Mapping[str, Mapping[str, Any]] = tool.parameters.get("properties", {})
    return "{" + ", ".join(f'"{name}": {schema.get("type")}' for name, schema in properties.items()) + "}"


def _answer_value(answer: str, request: ReasonRequest) -> object:
    """``answer`` as the final-answer grammar expects it: a JSON number for numeric tasks, else a string."""
    value = parse_number(answer) if request.answer_format is AnswerFormat.NUMBER else None
    if value is None:
        return answer
    return value.numerator if value.denominator == 1 else float(value)
