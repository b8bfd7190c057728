"""The chat prompts of the strategies.

Written for small models (SmolLM2-135M-Instruct): instructions go in the user
turn, the expected ending is spelled out literally, and ReAct gets one worked
few-shot exchange per tool in the same chat format as the real run. Tool
results come back as user turns ("Result: ..."), which small chat models
follow more reliably than a "tool" role they were not trained on.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from .answers import AnswerFormat, parse_number
from .llm import ChatTurn
from .request import ReasonRequest
from .tools import FINAL_ANSWER, Tool, ToolOutcome

REACT_SYSTEM = """You solve problems by calling tools. Reply with exactly one JSON object:
{{"tool": <tool name>, "arguments": {{<arguments>}}}}
Tools:
{tools}
- {final}: gives the final answer. Arguments: {{"answer": {answer}}}
Use a tool for every calculation. After a tool result, reply with {final} and the result."""


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


def chain_of_thought_messages(request: ReasonRequest) -> list[ChatTurn]:
    prompt = (
        f"{request.question}\n\nLet's think step by step. "
        f'End with the sentence "The answer is X." where X is {answer_hint(request)}.'
    )
    return [*request.messages, ChatTurn("user", prompt)]


def react_messages(request: ReasonRequest, tools: Sequence[Tool]) -> list[ChatTurn]:
    """System instructions, one few-shot exchange per tool, the prior conversation, then the question."""
    listing = "\n".join(f"- {tool.name}: {tool.description} Arguments: {_arguments_outline(tool)}" for tool in tools)
    answer = "<number>" if request.answer_format is AnswerFormat.NUMBER else '"<answer>"'
    system = REACT_SYSTEM.format(tools=listing, final=FINAL_ANSWER, answer=answer)
    turns = [ChatTurn("system", system)]
    for tool in tools:
        example = tool.example
        turns += [
            ChatTurn("user", f"Question: {example.question}"),
            ChatTurn("assistant", action_json(tool.name, example.arguments)),
            ChatTurn("user", observation(ToolOutcome(output=example.output))),
            ChatTurn("assistant", action_json(FINAL_ANSWER, {"answer": _answer_value(example.answer, request)})),
        ]
    return [*turns, *request.messages, ChatTurn("user", f"Question: {request.question}")]


def action_json(tool: str, arguments: Mapping[str, Any]) -> str:
    """An action as the model writes it: ``{"tool": ..., "arguments": {...}}``."""
    return json.dumps({"tool": tool, "arguments": dict(arguments)}, ensure_ascii=False)


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
