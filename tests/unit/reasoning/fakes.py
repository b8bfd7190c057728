"""A scripted LLMClient for unit tests of the strategies (the real engine is covered by integration tests)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from quorum.reasoning.llm import ChatTurn, SampleDelta, Sampling, StreamChunk, TokenUsage
from quorum.reasoning.tools import FINAL_ANSWER, ToolError, ToolExample
from quorum.reasoning.tools.registry import MAX_OUTPUT_CHARS

USAGE = TokenUsage(prompt_tokens=100, completion_tokens=20, cached_prompt_tokens=60)


@dataclass
class Call:
    messages: list[ChatTurn]
    sampling: Sampling
    aborted: bool = False  # closed before its last chunk
    completed: bool = False


@dataclass
class ScriptedClient:
    """Plays one script (a list of chunks) per ``chat_stream`` call, in order; records each call.

    With ``stall_after`` the stream hangs after that many chunks, so a time budget runs out mid-stream.
    A script that is an exception is raised by its call instead.
    """

    scripts: list[list[StreamChunk] | Exception]
    stall_after: int | None = None
    calls: list[Call] = field(default_factory=list)

    async def chat_stream(
        self, model: str, messages: Sequence[ChatTurn], sampling: Sampling
    ) -> AsyncIterator[StreamChunk]:
        assert self.scripts, "the strategy made more model calls than scripted"
        call = Call(list(messages), sampling)
        self.calls.append(call)
        script = self.scripts.pop(0)
        if isinstance(script, Exception):
            raise script
        try:
            for position, chunk in enumerate(script):
                if position == self.stall_after:
                    await asyncio.sleep(3600)
                yield chunk
            call.completed = True
        finally:
            call.aborted = not call.completed


def reply(text: str, finish_reason: str = "stop", usage: TokenUsage = USAGE, pieces: int = 3) -> list[StreamChunk]:
    """One sample's ``text`` in ``pieces`` chunks; the last one finishes it and carries ``usage``."""
    size = max(1, -(-len(text) // pieces))
    parts = [text[start : start + size] for start in range(0, len(text), size)] or [""]
    chunks = [StreamChunk((SampleDelta(0, part),)) for part in parts[:-1]]
    return [*chunks, StreamChunk((SampleDelta(0, parts[-1], True, finish_reason),), usage)]


def samples(texts: Sequence[str], usage: TokenUsage = USAGE) -> list[StreamChunk]:
    """k samples that all start together, then finish one per chunk in list order (usage on the last)."""
    halves = [(text[: len(text) // 2], text[len(text) // 2 :]) for text in texts]
    first = StreamChunk(tuple(SampleDelta(index, head) for index, (head, _) in enumerate(halves)))
    finishing = [
        StreamChunk((SampleDelta(index, tail, True, "stop"),), usage if index == len(texts) - 1 else None)
        for index, (_, tail) in enumerate(halves)
    ]
    return [first, *finishing]


def action(tool: str, **arguments: object) -> str:
    """A ReAct action as the model writes it."""
    return json.dumps({"tool": tool, "arguments": arguments})


CALCULATE = action("calculator", expression="1234 * 5678")
ANSWER = action(FINAL_ANSWER, answer=7006652)


class FakeTool:
    """A tool whose run does what the test needs."""

    description = "test tool"
    parameters: Mapping[str, Any] = {"type": "object", "properties": {}, "additionalProperties": False}
    example = ToolExample("q", {}, "out", "answer", "think")

    def __init__(self, name: str, behaviour: str) -> None:
        self.name = name
        self.behaviour = behaviour

    async def run(self, arguments: Mapping[str, Any]) -> str:
        if self.behaviour == "sleep":
            await asyncio.sleep(10)
        if self.behaviour == "tool_error":
            raise ToolError("bad input")
        if self.behaviour == "crash":
            raise KeyError("boom")
        if self.behaviour == "long":
            return "x" * (MAX_OUTPUT_CHARS + 100)
        return "fine"
