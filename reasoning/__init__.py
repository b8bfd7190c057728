"""The reasoning layer: strategies over an LLMClient protocol (no Ray or gRPC imports).

Entry point: :func:`run_reasoning` streams the :mod:`events` of answering a
:class:`ReasonRequest` with a :class:`ToolRegistry` of tools for ReAct.
"""

from .answers import AnswerFormat, extract_answer
from .early_stop import EarlyStopping, StopRule
from .errors import ReasoningError, ReasoningInputError, StrategyUnavailableError, UnknownToolError
from .events import (
    AnswerCount,
    Event,
    FinalEvent,
    Passage,
    RetrievalEvent,
    SampleEvent,
    StepEvent,
    StopReason,
    ToolCallEvent,
    ToolResultEvent,
    VoteEvent,
)
from .request import Budget, ReasoningLimits, ReasonRequest, SamplingOverrides, Strategy, validate
from .runner import run_reasoning
from .tools import ToolRegistry, default_registry

__all__ = [
    "AnswerCount",
    "AnswerFormat",
    "Budget",
    "EarlyStopping",
    "Event",
    "FinalEvent",
    "Passage",
    "ReasonRequest",
    "ReasoningError",
    "ReasoningInputError",
    "ReasoningLimits",
    "RetrievalEvent",
    "SampleEvent",
    "SamplingOverrides",
    "StepEvent",
    "StopReason",
    "StopRule",
    "Strategy",
    "StrategyUnavailableError",
    "ToolCallEvent",
    "ToolRegistry",
    "ToolResultEvent",
    "UnknownToolError",
    "VoteEvent",
    "default_registry",
    "extract_answer",
    "run_reasoning",
    "validate",
]
