"""What a tool is: the :class:`Tool` protocol, its few-shot example and :class:`ToolError`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol


class ToolError(Exception):
    """A tool could not produce a result; the message is shown to the model and the client as the tool error."""


@dataclass(frozen=True)
class ToolExample:
    """One worked use of a tool, shown to the model as a few-shot exchange.

    The model sees ``question``, answers with a call of the tool with
    ``arguments`` after the ``thought`` that leads to it (what the question
    gives and what to do with it), is shown ``output`` and then gives
    ``answer`` as final answer.
    """

    question: str
    arguments: Mapping[str, Any]
    output: str
    answer: str
    thought: str


class Tool(Protocol):
    """A function the model may call.

    ``parameters`` is the JSON schema of the arguments object; it becomes part
    of the grammar the model decodes under, so keep it to types, ``enum``,
    ``pattern``, ``properties``, ``required`` and ``additionalProperties``.
    ``run`` gets arguments that may still violate the schema (the caller might
    not decode under it) and must check them; it signals failures by raising
    :class:`ToolError` and should finish quickly (the registry enforces a timeout).
    """

    @property
    def name(self) -> str: ...

    @property
    def description(self) -> str: ...

    @property
    def parameters(self) -> Mapping[str, Any]: ...

    @property
    def example(self) -> ToolExample | None:
        """A worked use shown to the model before the question (None: the tool is only listed)."""
        ...

    async def run(self, arguments: Mapping[str, Any]) -> str:
        """The tool's result as text for the model."""
        ...
