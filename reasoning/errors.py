"""Errors a Reason request can fail with before its first event.

They carry no transport detail; the gRPC layer maps them to status codes:
:class:`ReasoningInputError` to INVALID_ARGUMENT, :class:`UnknownToolError` to
NOT_FOUND and :class:`StrategyUnavailableError` to UNIMPLEMENTED. Each message
tells the caller what to change. They pickle with their fields, so they survive
a hop between processes.
"""

from __future__ import annotations

from collections.abc import Iterable


class ReasoningError(Exception):
    """Base class of the reasoning layer's user-actionable errors."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ReasoningInputError(ReasoningError):
    """A request field is malformed or out of range; ``field`` names it and the message starts with it."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem

    def __reduce__(self) -> tuple[type, tuple[str, str]]:
        return (type(self), (self.field, self.problem))


class UnknownToolError(ReasoningError):
    """The request names a tool the registry does not have."""

    field = "tools"

    def __init__(self, name: str, available: Iterable[str]) -> None:
        self.name = name
        self.available = tuple(available)
        listed = ", ".join(self.available) or "none"
        super().__init__(f"tools: unknown tool '{name}'; available tools: {listed}")

    def __reduce__(self) -> tuple[type, tuple[str, tuple[str, ...]]]:
        return (type(self), (self.name, self.available))


class StrategyUnavailableError(ReasoningError):
    """The strategy is valid but this deployment cannot run it (e.g. RAG before retrieval exists)."""
