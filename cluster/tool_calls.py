"""Chat tool calling by grammar-constrained decoding.

A chat request with tools is answered in one engine call whose output is
decoded under a JSON grammar built from the tools' schemas, so even a small
model emits calls that parse and validate:

- ``{"tool": <name>, "arguments": {...}}``: one ``anyOf`` branch per tool ties the
  name to its own argument schema (the call);
- ``{"content": "<text>"}``: a text reply, allowed only in AUTO mode.

The tools are described to the model in a system message (merged into the
conversation's own system message when it has one); earlier assistant calls
are rendered in the same JSON form and tool results as ``tool`` turns, so the
model sees its own protocol. One call per turn (no parallel calls).

NOTE: with tools the replica cannot stream the JSON as text; a choice's reply
or call arrives whole on its last delta (see :class:`ToolCallDecoder`).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Sequence
from typing import Any

from .config import ConstraintsConfig
from .constraints import check_json_schema
from .errors import InvalidArgument
from .types import ChoiceDelta, FinishReason, Message, OutputConstraint, ToolCall, ToolChoice, ToolChoiceMode, ToolSpec

MAX_TOOLS = 64
DEFAULT_CONSTRAINTS = ConstraintsConfig()
TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

TOOLS_SYSTEM = """You can call tools. Reply with exactly one JSON object.
To call a tool: {{"tool": <tool name>, "arguments": {{<arguments>}}}}
{reply}Tools:
{listing}"""
REPLY_LINE = 'To answer without a tool: {"content": <your answer>}\n'


def parameters_schema(tool: ToolSpec) -> dict[str, Any]:
    """The tool's argument schema; an empty string means "no arguments"."""
    if not tool.parameters_json_schema:
        return {"type": "object", "properties": {}}
    schema: dict[str, Any] = json.loads(tool.parameters_json_schema)
    return schema


def check_tools(
    tools: Sequence[ToolSpec],
    choice: ToolChoice,
    constraint: OutputConstraint | None,
    limits: ConstraintsConfig = DEFAULT_CONSTRAINTS,
) -> None:
    """Raise :class:`InvalidArgument` naming the first bad field of a request's tools and tool_choice (each
    parameters schema within the grammar bounds ``limits``)."""
    if len(tools) > MAX_TOOLS:
        raise InvalidArgument("tools", f"at most {MAX_TOOLS} tools per request, got {len(tools)}")
    seen: set[str] = set()
    for i, tool in enumerate(tools):
        if not TOOL_NAME.match(tool.name):
            raise InvalidArgument(f"tools[{i}].name", f"must be 1-64 letters, digits, '_' or '-', got {tool.name!r}")
        if tool.name in seen:
            raise InvalidArgument(f"tools[{i}].name", f"'{tool.name}' is declared twice")
        seen.add(tool.name)
        if tool.parameters_json_schema:
            schema = check_json_schema(f"tools[{i}].parameters_json_schema", tool.parameters_json_schema, limits)
            if schema.get("type", "object") != "object":
                raise InvalidArgument(
                    f"tools[{i}].parameters_json_schema", 'must be a JSON Schema of an object ({"type": "object", ...})'
                )
    if choice.name and choice.name not in seen:
        known = ", ".join(sorted(seen)) or "none"
        raise InvalidArgument("tool_choice.name", f"'{choice.name}' is not among the request's tools ({known})")
    if not tools and (choice.name or choice.mode is ToolChoiceMode.REQUIRED):
        raise InvalidArgument("tool_choice", "requires a call but the request declares no tools")
    if tools and constraint is not None and tool_mode(tools, choice) is not ToolChoiceMode.NONE:
        raise InvalidArgument(
            "sampling.constraint", "cannot be combined with tools (tool calls are decoded under their own grammar)"
        )


def tool_mode(tools: Sequence[ToolSpec], choice: ToolChoice) -> ToolChoiceMode:
    """The effective mode: NONE without tools, REQUIRED when a tool is named."""
    if not tools:
        return ToolChoiceMode.NONE
    if choice.name:
        return ToolChoiceMode.REQUIRED
    return choice.mode


def offered_tools(tools: Sequence[ToolSpec], choice: ToolChoice) -> tuple[ToolSpec, ...]:
    """The tools the grammar allows: all of them, only the named one, or none."""
    if tool_mode(tools, choice) is ToolChoiceMode.NONE:
        return ()
    if choice.name:
        return tuple(t for t in tools if t.name == choice.name)
    return tuple(tools)


def tool_call_schema(tools: Sequence[ToolSpec], allow_reply: bool) -> dict[str, Any]:
    """The JSON schema of one assistant turn: a call of one of ``tools`` or (``allow_reply``) a text reply."""
    branches: list[dict[str, Any]] = [
        {
            "type": "object",
            "properties": {"tool": {"type": "string", "enum": [tool.name]}, "arguments": parameters_schema(tool)},
            "required": ["tool", "arguments"],
            "additionalProperties": False,
        }
        for tool in tools
    ]
    if allow_reply:
        branches.append(
            {
                "type": "object",
                "properties": {"content": {"type": "string"}},
                "required": ["content"],
                "additionalProperties": False,
            }
        )
    return {"anyOf": branches}


def tools_system_prompt(tools: Sequence[ToolSpec], allow_reply: bool) -> str:
    listing = "\n".join(
        f"- {tool.name}: {tool.description or 'no description'} Arguments schema: "
        f"{json.dumps(parameters_schema(tool), separators=(',', ':'))}"
        for tool in tools
    )
    return TOOLS_SYSTEM.format(reply=REPLY_LINE if allow_reply else "", listing=listing)


def _call_json(call: ToolCall) -> str:
    try:
        arguments = json.loads(call.arguments_json) if call.arguments_json else {}
    except ValueError:
        arguments = call.arguments_json
    return json.dumps({"tool": call.name, "arguments": arguments}, ensure_ascii=False)


def template_messages(
    messages: Sequence[Message], tools: Sequence[ToolSpec], choice: ToolChoice
) -> list[dict[str, str]]:
    """The conversation as chat-template input, with the tools' system prompt and earlier calls as JSON."""
    rendered: list[dict[str, str]] = []
    for message in messages:
        content = message.content
        if message.tool_calls:
            calls = "\n".join(_call_json(call) for call in message.tool_calls)
            content = f"{content}\n{calls}" if content else calls
        rendered.append({"role": message.role, "content": content})
    offered = offered_tools(tools, choice)
    if offered:
        system = tools_system_prompt(offered, allow_reply=tool_mode(tools, choice) is ToolChoiceMode.AUTO)
        if rendered and rendered[0]["role"] == "system":
            rendered[0] = {"role": "system", "content": f"{rendered[0]['content']}\n\n{system}"}
        else:
            rendered.insert(0, {"role": "system", "content": system})
    return rendered


def constraint_for(tools: Sequence[ToolSpec], choice: ToolChoice) -> OutputConstraint | None:
    """The grammar of a turn with tools, or None when no tool is offered."""
    offered = offered_tools(tools, choice)
    if not offered:
        return None
    schema = tool_call_schema(offered, allow_reply=tool_mode(tools, choice) is ToolChoiceMode.AUTO)
    return OutputConstraint(json_schema=json.dumps(schema), source="tools")


def parse_turn(text: str) -> tuple[str, tuple[ToolCall, ...]]:
    """(reply text, calls) of a finished grammar-decoded turn; text that is not a whole turn is returned as is."""
    try:
        value = json.loads(text)
    except ValueError:
        return text, ()
    if isinstance(value, dict) and isinstance(value.get("tool"), str) and isinstance(value.get("arguments"), dict):
        call = ToolCall(
            id=f"call_{uuid.uuid4().hex[:24]}",
            name=value["tool"],
            arguments_json=json.dumps(value["arguments"], ensure_ascii=False),
        )
        return "", (call,)
    if isinstance(value, dict) and isinstance(value.get("content"), str):
        return value["content"], ()
    return text, ()


class ToolCallDecoder:
    """Turns the text deltas of a tool-enabled request into whole replies or calls, one per finished choice."""

    def __init__(self) -> None:
        self._texts: dict[int, list[str]] = {}

    def feed(self, deltas: Sequence[ChoiceDelta]) -> tuple[ChoiceDelta, ...]:
        finished = []
        for delta in deltas:
            self._texts.setdefault(delta.index, []).append(delta.text)
            if delta.finish_reason is None:
                continue
            text = "".join(self._texts.pop(delta.index))
            if delta.finish_reason is FinishReason.LENGTH:  # cut mid-JSON: hand back what there is
                finished.append(ChoiceDelta(index=delta.index, text=text, finish_reason=FinishReason.LENGTH))
                continue
            reply, calls = parse_turn(text)
            finished.append(
                ChoiceDelta(
                    index=delta.index,
                    text=reply,
                    finish_reason=FinishReason.TOOL_CALLS if calls else delta.finish_reason,
                    tool_calls=calls,
                )
            )
        return tuple(finished)
