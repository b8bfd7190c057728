"""The events a Reason run streams, one per message of ``ReasoningService.Reason``.

Each event class maps onto one arm of a protobuf ``oneof``; all fields are plain
values (strings, numbers, tuples of small records) so the mapping is 1:1.

Stream contract (enforced by :func:`quorum.reasoning.runner.run_reasoning`):
any number of step, sample, vote, tool call, tool result and retrieval events,
then exactly one :class:`FinalEvent`, which is always the last event. Budget
exhaustion, loops and tool failures end the run with a final event whose
``stop_reason`` says why; only errors of the LLM client itself (engine
unavailable, model not found, ...) propagate as exceptions instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from .llm import TokenUsage
from .tools.client import ToolStep


class StopReason(StrEnum):
    """Why a run ended."""

    ANSWERED = "answered"  # the strategy ran to completion and produced an answer
    CONSENSUS = "consensus"  # self-consistency stopped early: the stopping rule saw enough agreement
    BUDGET_TOKENS = "budget_tokens"  # budget.max_tokens (generated tokens) ran out
    BUDGET_TIME = "budget_time"  # budget.max_seconds passed
    BUDGET_TOOL_CALLS = "budget_tool_calls"  # the model asked for a tool after budget.max_tool_calls
    MAX_STEPS = "max_steps"  # ReAct used max_steps model calls without a final answer
    LOOP_DETECTED = "loop_detected"  # ReAct repeated a tool call with the same arguments
    NO_ANSWER = "no_answer"  # the model finished but no answer could be extracted
    CONTEXT_FULL = "context_full"  # the conversation filled the model's context before an answer
    TOOL_CALL = "tool_call"  # ReAct called a client tool: the client runs it and continues the run with its result


@dataclass(frozen=True)
class StepEvent:
    """A piece of text the model wrote in step ``step`` (1-based); a step's pieces arrive in order.

    Direct and chain-of-thought runs have one step (the answer or the thoughts);
    a ReAct step is one model call, whose text is the JSON action.
    """

    step: int
    text: str


@dataclass(frozen=True)
class SampleEvent:
    """Self-consistency sample ``index`` finished with ``text``; ``answer`` is None when none was found."""

    index: int
    text: str
    answer: str | None
    finish_reason: str  # "stop" or "length"


@dataclass(frozen=True)
class AnswerCount:
    answer: str
    count: int


@dataclass(frozen=True)
class VoteEvent:
    """The vote after a finished sample: ``counts`` leader first (ties: the answer seen first wins)."""

    counts: tuple[AnswerCount, ...]
    unanswered: int  # finished samples without an extractable answer


@dataclass(frozen=True)
class ToolCallEvent:
    """In ReAct step ``step`` the model called tool ``name`` (a step makes at most one call).

    ``call_id`` identifies the call within the run; the client answers a call of one of its own tools by it.
    """

    step: int
    name: str
    arguments: str  # the arguments as a JSON object
    call_id: str = ""


@dataclass(frozen=True)
class ToolResultEvent:
    """The result of the call in step ``step``: ``output`` when it succeeded, else ``error`` (non-empty).

    ``seconds`` is the tool's run time.
    """

    step: int
    name: str
    output: str = ""
    error: str = ""
    seconds: float = 0.0
    call_id: str = ""


@dataclass(frozen=True)
class Passage:
    doc_id: str
    text: str
    score: float


@dataclass(frozen=True)
class RetrievalEvent:
    """Passages retrieved for ``query`` (RAG), best first."""

    query: str
    passages: tuple[Passage, ...]


@dataclass(frozen=True)
class FinalEvent:
    """The outcome of the run; always the last event.

    ``answer`` is the normalized answer or None. ``confidence`` is the share of
    answered samples that agree with it (1.0 for a single answered sample, 0.0
    without an answer). ``usage`` sums the token usage of every engine request
    that ran to completion; requests aborted early (early stopping, the time
    budget) report no usage. ``citations`` are the doc ids the answer relies on
    (RAG). ``seconds`` is the wall-clock time the run took. ``detail`` explains
    budget and loop stops in words. ``steps`` (ReAct) are the run's tool calls
    with their results, the replayed ones first; after a TOOL_CALL stop the
    last one is the pending client call.
    """

    answer: str | None
    confidence: float
    samples_used: int
    stop_reason: StopReason
    usage: TokenUsage
    seconds: float
    citations: tuple[str, ...] = ()
    detail: str = ""
    steps: tuple[ToolStep, ...] = ()


Event = StepEvent | SampleEvent | VoteEvent | ToolCallEvent | ToolResultEvent | RetrievalEvent | FinalEvent
