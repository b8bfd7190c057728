"""The fine-tuning dataset of ``quorum tune``: JSONL chat rows, validated, rendered and masked.

One JSON object per line::

    {"messages": [{"role": "user", "content": "..."},
                  {"role": "assistant", "content": null,
                   "tool_calls": [{"id": "c1", "type": "function",
                                   "function": {"name": "calculator", "arguments": "{\\"expression\\": \\"2+3\\"}"}}]},
                  {"role": "tool", "tool_call_id": "c1", "content": "5"},
                  {"role": "assistant", "content": "5"}],
     "tools": [{"type": "function", "function": {"name": "calculator", "description": "...", "parameters": {...}}}]}

:func:`load_rows` checks every row before anything is trained and raises one :class:`DatasetError` listing the
problems by 1-based line number and field path (``row 17: messages[2].role: must be one of ...``).

:func:`encode_row` renders a row exactly as the server renders a conversation for the engine
(:func:`quorum.cluster.tool_calls.template_messages` then the tokenizer's chat template): the tools become the
same system prompt, earlier tool calls the same ``{"tool": ..., "arguments": ...}`` JSON. The last assistant
turn of a row with tools is the turn the server decodes under its tool grammar, so a text reply there is trained
in the grammar's reply form ``{"content": "..."}``. Only assistant turns are trained (their content and the
end-of-turn token); every other token has label -100.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .tool_calls import TOOL_NAME, template_messages
from .types import DEFAULT_TOOL_CHOICE, Message, ToolCall, ToolSpec

ROLES = ("system", "user", "assistant", "tool")
IGNORE_INDEX = -100
MAX_REPORTED_ERRORS = 20


class DatasetError(Exception):
    """The dataset cannot be trained on; ``problems`` holds one ``row N: field: message`` line per problem."""

    def __init__(self, path: str | Path, problems: Sequence[str], total: int) -> None:
        self.problems = tuple(problems)
        more = f"\n... and {total - len(problems)} more" if total > len(problems) else ""
        super().__init__(f"{path}: {total} invalid row(s):\n" + "\n".join(problems) + more)


class _RowError(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")


@dataclass(frozen=True)
class ChatRow:
    """One validated conversation: ``line`` is its 1-based line number in the file."""

    line: int
    messages: tuple[Message, ...]
    tools: tuple[ToolSpec, ...] = ()


@dataclass(frozen=True)
class EncodedRow:
    """Token ids of a rendered row and their labels (the token id where trained, -100 elsewhere)."""

    input_ids: tuple[int, ...]
    labels: tuple[int, ...]

    @property
    def trained_tokens(self) -> int:
        return sum(label != IGNORE_INDEX for label in self.labels)


def load_rows(path: str | Path) -> list[ChatRow]:
    """Parse and validate every line of the JSONL file at ``path`` (blank lines are skipped).

    Raises :class:`DatasetError` naming each bad row and field (the first :data:`MAX_REPORTED_ERRORS` of them),
    or when the file holds no rows; :class:`OSError` when it cannot be read.
    """
    rows: list[ChatRow] = []
    problems: list[str] = []
    total = 0
    with Path(path).open(encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                rows.append(parse_row(line, line_number))
            except _RowError as exc:
                total += 1
                if len(problems) < MAX_REPORTED_ERRORS:
                    problems.append(f"row {line_number}: {exc}")
    if total:
        raise DatasetError(path, problems, total)
    if not rows:
        raise DatasetError(path, ["the file holds no rows"], 1)
    return rows


def parse_row(line: str, line_number: int) -> ChatRow:
    """One row from its JSON text; raises ``_RowError`` (caught by :func:`load_rows`) naming the field."""
    try:
        value = json.loads(line)
    except ValueError as exc:
        raise _RowError("(line)", f"not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise _RowError("(line)", f"must be a JSON object, got {_kind(value)}")
    unknown = sorted(set(value) - {"messages", "tools"})
    if unknown:
        raise _RowError(unknown[0], "unknown field (a row has messages and optional tools)")
    tools = _tools(value.get("tools", []))
    messages = _messages(value.get("messages"), {tool.name for tool in tools})
    return ChatRow(line=line_number, messages=messages, tools=tools)


def _kind(value: object) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(type(value), "a number")


def _tools(value: object) -> tuple[ToolSpec, ...]:
    if not isinstance(value, list):
        raise _RowError("tools", f"must be an array, got {_kind(value)}")
    specs: list[ToolSpec] = []
    for i, item in enumerate(value):
        field = f"tools[{i}]"
        if not isinstance(item, dict):
            raise _RowError(field, f"must be an object, got {_kind(item)}")
        if item.get("type", "function") != "function":
            raise _RowError(f"{field}.type", 'must be "function"')
        function = item.get("function")
        if not isinstance(function, dict):
            raise _RowError(f"{field}.function", f"must be an object, got {_kind(function)}")
        name = function.get("name")
        if not isinstance(name, str) or not TOOL_NAME.match(name):
            raise _RowError(f"{field}.function.name", "must be 1-64 letters, digits, '_' or '-'")
        if any(spec.name == name for spec in specs):
            raise _RowError(f"{field}.function.name", f"'{name}' is declared twice")
        description = function.get("description", "")
        if not isinstance(description, str):
            raise _RowError(f"{field}.function.description", f"must be a string, got {_kind(description)}")
        parameters = function.get("parameters", {"type": "object", "properties": {}})
        if not isinstance(parameters, dict) or parameters.get("type", "object") != "object":
            raise _RowError(f"{field}.function.parameters", 'must be a JSON Schema object ({"type": "object", ...})')
        specs.append(ToolSpec(name=name, description=description, parameters_json_schema=json.dumps(parameters)))
    return tuple(specs)


def _messages(value: object, tool_names: set[str]) -> tuple[Message, ...]:
    if not isinstance(value, list):
        raise _RowError("messages", f"must be an array, got {_kind(value)}")
    if not value:
        raise _RowError("messages", "must not be empty")
    messages = tuple(_message(item, i, tool_names) for i, item in enumerate(value))
    if messages[0].role not in ("system", "user"):
        raise _RowError("messages[0].role", "the conversation must start with a system or user message")
    last = len(messages) - 1
    if messages[last].role != "assistant":
        raise _RowError(f"messages[{last}].role", "the last message must be from the assistant (what is trained)")
    return messages


def _message(item: object, i: int, tool_names: set[str]) -> Message:
    field = f"messages[{i}]"
    if not isinstance(item, dict):
        raise _RowError(field, f"must be an object, got {_kind(item)}")
    unknown = sorted(set(item) - {"role", "content", "tool_calls", "tool_call_id", "name"})
    if unknown:
        raise _RowError(f"{field}.{unknown[0]}", "unknown field")
    role = item.get("role")
    if role not in ROLES:
        raise _RowError(f"{field}.role", f"must be one of {', '.join(ROLES)}")
    raw_calls = item.get("tool_calls", [])
    if raw_calls and role != "assistant":
        raise _RowError(f"{field}.tool_calls", "only assistant messages carry tool calls")
    calls = _tool_calls(raw_calls, f"{field}.tool_calls", tool_names)
    content = item.get("content")
    if content is None and calls:
        content = ""
    if not isinstance(content, str):
        raise _RowError(f"{field}.content", f"must be a string, got {_kind(content)}")
    if not content and not calls and role == "assistant":
        raise _RowError(f"{field}.content", "an assistant message needs content or tool_calls")
    tool_call_id = item.get("tool_call_id", "")
    if not isinstance(tool_call_id, str):
        raise _RowError(f"{field}.tool_call_id", f"must be a string, got {_kind(tool_call_id)}")
    return Message(role=role, content=content, tool_calls=calls, tool_call_id=tool_call_id)


def _tool_calls(value: object, field: str, tool_names: set[str]) -> tuple[ToolCall, ...]:
    if not isinstance(value, list):
        raise _RowError(field, f"must be an array, got {_kind(value)}")
    calls: list[ToolCall] = []
    for j, item in enumerate(value):
        where = f"{field}[{j}]"
        if not isinstance(item, dict):
            raise _RowError(where, f"must be an object, got {_kind(item)}")
        function = item.get("function")
        if not isinstance(function, dict):
            raise _RowError(f"{where}.function", f"must be an object, got {_kind(function)}")
        name = function.get("name")
        if not isinstance(name, str) or name not in tool_names:
            known = ", ".join(sorted(tool_names)) or "none"
            raise _RowError(f"{where}.function.name", f"must name one of the row's tools ({known})")
        arguments = function.get("arguments", "{}")
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments)
            except ValueError:
                raise _RowError(f"{where}.function.arguments", "must be a JSON object (or its JSON text)") from None
        if not isinstance(arguments, dict):
            raise _RowError(f"{where}.function.arguments", "must be a JSON object (or its JSON text)")
        call_id = item.get("id", f"call_{j}")
        if not isinstance(call_id, str):
            raise _RowError(f"{where}.id", f"must be a string, got {_kind(call_id)}")
        calls.append(ToolCall(id=call_id, name=name, arguments_json=json.dumps(arguments, ensure_ascii=False)))
    return tuple(calls)


def template_input(row: ChatRow) -> list[dict[str, str]]:
    """The chat-template messages of ``row`` as the server renders them, last turn in its decoded form."""
    messages = list(row.messages)
    last = messages[-1]
    if row.tools and not last.tool_calls:
        reply = json.dumps({"content": last.content}, ensure_ascii=False)
        messages[-1] = Message(role="assistant", content=reply)
    return template_messages(messages, row.tools, DEFAULT_TOOL_CHOICE)


def encode_row(tokenizer: Any, row: ChatRow) -> EncodedRow:
    """Token ids and labels of ``row``: each assistant turn's content and end-of-turn token are trained.

    The text before each assistant turn (up to and including the generation prompt) is tokenized as the server
    tokenizes a prompt, and the turn as the tokens the engine would generate after it.
    """
    rendered = template_input(row)
    end = tokenizer.eos_token
    input_ids: list[int] = []
    labels: list[int] = []
    consumed = ""

    def add(text: str, trained: bool) -> None:
        ids = list(tokenizer.encode(text, add_special_tokens=False)) if text else []
        input_ids.extend(ids)
        labels.extend(ids if trained else [IGNORE_INDEX] * len(ids))

    for i, message in enumerate(rendered):
        if message["role"] != "assistant":
            continue
        prompt = tokenizer.apply_chat_template(rendered[:i], tokenize=False, add_generation_prompt=True)
        full = tokenizer.apply_chat_template(rendered[: i + 1], tokenize=False)
        if not (prompt.startswith(consumed) and full.startswith(prompt)):
            raise ValueError("the chat template does not render a conversation as a concatenation of its turns")
        turn = full[len(prompt) :]
        cut = turn.find(end) + len(end) if end and end in turn else len(turn)
        add(prompt[len(consumed) :], trained=False)
        add(turn[:cut], trained=True)
        consumed = prompt + turn[:cut]
    return EncodedRow(input_ids=tuple(input_ids), labels=tuple(labels))
