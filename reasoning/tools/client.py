"""Tools the client runs: :class:`ClientTool` declarations and the :class:`ToolStep` transcript of a run.

A ReAct request may declare functions of its own (name, description, JSON
schema of the arguments) next to the server's tools. The model calls them
under the same grammar; when it does, the run cannot go on by itself: it ends
with ``StopReason.TOOL_CALL`` and a final event whose ``steps`` hold the run so
far, the last one the pending call. The client runs the function and sends the
request again with those steps, the last one completed with its result. The
server keeps nothing between the two calls (any replica can continue a run),
and the resumed prompt is the same text the uninterrupted run would have had,
so its prefix is found in the engines' prefix cache.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .base import ToolError, ToolExample
from .registry import ToolOutcome

ERROR_PREFIX = "Error: "  # a result that starts with it is the tool's error (as the model is shown it)


@dataclass(frozen=True)
class ClientTool:
    """A function the client declares and runs itself; the server only lets the model call it.

    It satisfies the :class:`~quorum.reasoning.tools.Tool` protocol so the
    registry can build the action grammar and the prompt's tool listing; it
    has no worked example, and :meth:`run` is never called by a run.
    """

    name: str
    description: str
    parameters: Mapping[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})
    example: ToolExample | None = None

    async def run(self, arguments: Mapping[str, Any]) -> str:
        raise ToolError(f"{self.name} is a client tool: the client runs it")


@dataclass(frozen=True)
class ToolStep:
    """One tool call of a ReAct run and its result.

    ``call_id`` identifies the call (the client answers a pending call by it).
    ``output`` is the result, or ``error`` when the tool failed. ``pending``
    marks a client tool call whose result the run is waiting for.
    """

    call_id: str
    tool: str
    arguments: Mapping[str, Any]
    thought: str = ""
    output: str = ""
    error: str = ""
    pending: bool = False

    @property
    def outcome(self) -> ToolOutcome:
        return ToolOutcome(output=self.output, error=self.error)

    @property
    def result_text(self) -> str:
        """The result as one text: the output, or the error behind :data:`ERROR_PREFIX`."""
        return f"{ERROR_PREFIX}{self.error}" if self.error else self.output

    @property
    def arguments_json(self) -> str:
        return json.dumps(dict(self.arguments), ensure_ascii=False)


def step_result(text: str) -> tuple[str, str]:
    """``(output, error)`` of a result text written as :attr:`ToolStep.result_text` writes it."""
    if text.startswith(ERROR_PREFIX):
        return "", text.removeprefix(ERROR_PREFIX) or "failed"
    return text, ""
