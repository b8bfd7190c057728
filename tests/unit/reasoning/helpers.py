"""Running a request to completion and checking the stream contract."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TypeVar

from quorum.reasoning.events import Event, FinalEvent
from quorum.reasoning.llm import LLMClient
from quorum.reasoning.request import ReasoningLimits, ReasonRequest, validate
from quorum.reasoning.runner import run_reasoning
from quorum.reasoning.tools import ToolRegistry, default_registry

T = TypeVar("T")


async def drain(events: AsyncIterator[Event]) -> list[Event]:
    """All events; asserts the stream contract: exactly one final event, and it is the last."""
    collected = [event async for event in events]
    finals = [event for event in collected if isinstance(event, FinalEvent)]
    assert len(finals) == 1, f"expected exactly one final event, got {len(finals)}"
    assert collected[-1] is finals[0], "the final event must be the last"
    return collected


async def reason(
    request: ReasonRequest, client: LLMClient, registry: ToolRegistry | None = None
) -> tuple[list[Event], FinalEvent]:
    """Run ``request`` as the gateway does (its gate's checks, then the run); the events and the final event."""
    registry = registry or default_registry()
    events = await drain(run_reasoning(validate(request, ReasoningLimits(), registry.names()), client, registry))
    final = events[-1]
    assert isinstance(final, FinalEvent)
    return events, final


def of_type(events: list[Event], kind: type[T]) -> list[T]:
    return [event for event in events if isinstance(event, kind)]
