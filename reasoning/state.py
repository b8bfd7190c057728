"""The accounting of one run, shared by the dispatcher and the running strategy."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from opentelemetry.trace import Span

from .llm import TokenUsage
from .request import Budget


@dataclass
class RunState:
    """What a run has spent so far; strategies update it, the dispatcher reads it for the final event.

    ``span`` is the run's ``reason`` span, the parent of every span the
    strategy starts. ``usage`` sums the usage of engine requests that
    completed; budget.max_tokens is checked against its completion tokens.
    ``started`` is the run's start on the ``time.monotonic`` clock.
    """

    span: Span
    budget: Budget
    usage: TokenUsage = field(default_factory=TokenUsage)
    tool_calls: int = 0
    started: float = field(default_factory=time.monotonic)

    def add_usage(self, usage: TokenUsage | None) -> None:
        if usage is not None:
            self.usage += usage

    @property
    def seconds(self) -> float:
        """Wall-clock seconds since the run started."""
        return time.monotonic() - self.started

    @property
    def remaining_tokens(self) -> int:
        return max(0, self.budget.max_tokens - self.usage.completion_tokens)

    @property
    def remaining_tool_calls(self) -> int:
        return max(0, self.budget.max_tool_calls - self.tool_calls)
