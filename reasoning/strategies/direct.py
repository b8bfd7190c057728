"""DIRECT: one greedy answer, no reasoning."""

from __future__ import annotations

from collections.abc import AsyncIterator

from ..events import Event
from ..llm import LLMClient
from ..prompts import direct_messages
from ..request import ReasonRequest
from ..state import RunState
from .common import single_pass

TEMPERATURE = 0.0
MAX_TOKENS = 64


def run(request: ReasonRequest, client: LLMClient, state: RunState) -> AsyncIterator[Event]:
    """Stream the answer as step 1, then the final event (see :func:`~.common.single_pass`)."""
    return single_pass(request, client, state, direct_messages(request), temperature=TEMPERATURE, max_tokens=MAX_TOKENS)
