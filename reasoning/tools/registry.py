"""The tools a deployment offers: lookup, the action schema for constrained decoding, guarded execution."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .. import metrics
from ..errors import UnknownToolError
from .base import Tool, ToolError
from .calculator import Calculator
from .unit_convert import UnitConvert

FINAL_ANSWER = "final_answer"  # the pseudo-tool that ends a ReAct run; reserved
DEFAULT_TIMEOUT_S = 5.0
MAX_OUTPUT_CHARS = 2000


@dataclass(frozen=True)
class ToolOutcome:
    """A tool's ``output``, or its ``error`` (non-empty) when it failed, timed out or does not exist."""

    output: str = ""
    error: str = ""
    latency_s: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.error


class ToolRegistry:
    """Tools by name, each with its own timeout."""

    def __init__(self, tools: Iterable[Tool] = (), timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self._tools: dict[str, tuple[Tool, float]] = {}
        self._timeout_s = timeout_s
        for tool in tools:
            self.register(tool)

    def register(self, tool: Tool, timeout_s: float | None = None) -> None:
        """Add ``tool``; ``timeout_s`` overrides the registry's default timeout for it."""
        if tool.name == FINAL_ANSWER or not tool.name.isidentifier():
            raise ValueError(f"invalid tool name {tool.name!r}: must be an identifier other than {FINAL_ANSWER!r}")
        if tool.name in self._tools:
            raise ValueError(f"tool {tool.name!r} is already registered")
        self._tools[tool.name] = (tool, self._timeout_s if timeout_s is None else timeout_s)

    def names(self) -> tuple[str, ...]:
        return tuple(self._tools)

    def with_tool(self, tool: Tool, timeout_s: float | None = None) -> ToolRegistry:
        """A copy with ``tool`` added (e.g. a tool bound to one run's collection); this registry is unchanged."""
        copy = ToolRegistry(timeout_s=self._timeout_s)
        copy._tools = dict(self._tools)
        copy.register(tool, timeout_s)
        return copy

    def get(self, name: str) -> Tool:
        """The tool called ``name``; raises :class:`UnknownToolError`."""
        if name not in self._tools:
            raise UnknownToolError(name, self._tools)
        return self._tools[name][0]

    def tool_call_schema(
        self,
        names: Sequence[str],
        answer_schema: Mapping[str, Any] | None,
        arguments: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """The JSON schema of one action of a model that may call the tools ``names``.

        A tool call is ``{"thought": "...", "tool": <name>, "arguments": {...}}``;
        one ``anyOf`` branch per tool ties each name to its own argument schema.
        With an ``answer_schema`` a last branch
        ``{"tool": "final_answer", "arguments": {"answer": <answer_schema>}}``
        lets the model end the run; without one it must call a tool. At least
        one branch is needed. The thought (one short line saying what the
        question gives and what to do with it, as in ReAct) comes first, then
        "tool", so under constrained decoding the model reasons, then commits
        to a tool, then writes its arguments. ``arguments``
        replaces the argument schema of the tools it names (e.g. a grounded
        calculator pattern for one step).
        """
        overrides = arguments or {}
        branches = [_action(name, overrides.get(name) or self.get(name).parameters) for name in names]
        if answer_schema is not None:
            final_arguments = {
                "type": "object",
                "properties": {"answer": dict(answer_schema)},
                "required": ["answer"],
                "additionalProperties": False,
            }
            branches.append(_action(FINAL_ANSWER, final_arguments, thought=False))
        if not branches:
            raise ValueError("an action schema needs a tool or an answer schema")
        return {"anyOf": branches}

    async def run(self, name: str, arguments: Mapping[str, Any]) -> ToolOutcome:
        """Run tool ``name`` under its timeout. Never raises (except on cancellation): failures become errors."""
        entry = self._tools.get(name)
        if entry is None:
            metrics.record_tool_call("unknown", failed=True)
            return ToolOutcome(error=f"unknown tool '{name}'; available tools: {', '.join(self._tools) or 'none'}")
        tool, timeout_s = entry
        started = time.monotonic()
        output, error = "", ""
        try:
            async with asyncio.timeout(timeout_s):
                output = await tool.run(arguments)
        except ToolError as failure:
            error = str(failure) or type(failure).__name__
        except TimeoutError:
            error = f"timed out after {timeout_s:g} s"
        except Exception as failure:  # noqa: BLE001 - a broken tool must not end the run; the model sees the error
            error = f"internal error: {type(failure).__name__}: {failure}"
        metrics.record_tool_call(name, failed=bool(error))
        if len(output) > MAX_OUTPUT_CHARS:
            output = output[:MAX_OUTPUT_CHARS] + " ... (truncated)"
        return ToolOutcome(output=output, error=error, latency_s=time.monotonic() - started)


def default_registry(timeout_s: float = DEFAULT_TIMEOUT_S) -> ToolRegistry:
    """A registry with the built-in tools: ``calculator`` and ``unit_convert``."""
    return ToolRegistry([Calculator(), UnitConvert()], timeout_s)


# A tool call's thought: one short line, no JSON escapes, no "=" (a thought that starts computing in
# prose ends up with a made-up result; the tool computes) and no "*", "/" or "+": the thought names the
# operation in words, as the worked examples do ("42 trays * 23 cookies per tray: multiply, then
# subtract" was followed by a "+"). Measured: 0.76 against 0.70 over five 20-problem benchmark seeds.
THOUGHT_SCHEMA: Mapping[str, Any] = {"type": "string", "pattern": r'^[^=*/+\n"\\]{1,120}$'}


def _action(name: str, arguments: Mapping[str, Any], thought: bool = True) -> dict[str, Any]:
    properties: dict[str, Any] = {"thought": dict(THOUGHT_SCHEMA)} if thought else {}
    properties |= {"tool": {"type": "string", "enum": [name]}, "arguments": dict(arguments)}
    return {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}
