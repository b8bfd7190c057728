"""CHAIN_OF_THOUGHT: think step by step, finish with "The answer is X"."""

from __future__ import annotations

from collections.abc import AsyncIterator

from ..events import Event
from ..llm import LLMClient
from ..prompts import chain_of_thought_messages
from ..request import ReasonRequest
from ..state import RunState
from .common import single_pass

TEMPERATURE = 0.0
MAX_TOKENS = 256


def run(request: ReasonRequest, client: LLMClient, state: RunState) -> AsyncIterator[Event]:
    """Stream the thoughts as step 1, then the final event with the answer they end in."""
    return single_pass(
        request, client, state, chain_of_thought_messages(request), temperature=TEMPERATURE, max_tokens=MAX_TOKENS
    )
