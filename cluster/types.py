"""Plain data passed between the gateway, the reasoning layer and the LLM servers (no protobuf, no Ray).

An LLM call is the same data wherever it starts: a model id, :class:`Message` s (or a prompt) and
:class:`SamplingOptions` (with its :class:`OutputConstraint`). The gRPC and OpenAI front doors build them
from their wire formats, the reasoning strategies build them directly (``quorum.reasoning.llm``), and
``cluster/engine.py`` is the one place that turns them into vLLM's types.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum

CHAT_ROLES = ("system", "user", "assistant", "tool")
MAX_TEMPERATURE = 2.0  # vLLM's own range is [0, 2]


def temperature_problem(value: float) -> str | None:
    """What is wrong with ``value`` as a sampling temperature, or None: the one rule for every request kind."""
    if not math.isfinite(value):
        return f"must be a finite number, got {value}"
    if not 0 <= value <= MAX_TEMPERATURE:
        return f"must be in [0, {MAX_TEMPERATURE:g}] (0 is greedy), got {value:g}"
    return None


def top_p_problem(value: float) -> str | None:
    """What is wrong with ``value`` as a nucleus-sampling top_p, or None: the one rule for every request kind."""
    if not math.isfinite(value):
        return f"must be a finite number, got {value}"
    if not 0 < value <= 1:
        return f"must be in (0, 1], got {value:g}"
    return None


class FinishReason(StrEnum):
    STOP = "stop"
    LENGTH = "length"
    TOOL_CALLS = "tool_calls"


class ToolChoiceMode(StrEnum):
    AUTO = "auto"
    NONE = "none"
    REQUIRED = "required"


@dataclass(frozen=True)
class ToolSpec:
    """A function the model may call; ``parameters`` is a JSON Schema object (already parsed)."""

    name: str
    description: str = ""
    parameters_json_schema: str = ""


@dataclass(frozen=True)
class ToolChoice:
    """``name`` forces that tool (and implies REQUIRED)."""

    mode: ToolChoiceMode = ToolChoiceMode.AUTO
    name: str = ""


DEFAULT_TOOL_CHOICE = ToolChoice()


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments_json: str


@dataclass(frozen=True)
class OutputConstraint:
    """At most one of the kinds is set. ``source`` is the request field the constraint came from, named in
    errors about it ("sampling.constraint", "tools" for a tool-call grammar, "client_tools" for ReAct's)."""

    json_schema: str | None = None
    regex: str | None = None
    choice: tuple[str, ...] | None = None
    source: str = "sampling.constraint"


@dataclass(frozen=True)
class SamplingOptions:
    """Decoding parameters after defaults are applied (see services' conversion)."""

    max_tokens: int | None = None  # None: fill the room left in the context, up to the default
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    n: int = 1
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    repetition_penalty: float = 1.0
    min_tokens: int = 0
    logprobs: int | None = None
    constraint: OutputConstraint | None = None
    fit_context: bool = False  # lower max_tokens to the room the prompt leaves instead of rejecting it

    @property
    def json_schema(self) -> str | None:
        """The JSON schema the output is constrained to, if that is the constraint."""
        return self.constraint.json_schema if self.constraint is not None else None


@dataclass(frozen=True)
class Message:
    role: str
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str = ""


@dataclass(frozen=True)
class GenerationRequest:
    """One request to an LLM server: a raw prompt or a conversation."""

    request_id: str
    sampling: SamplingOptions
    prompt: str | None = None
    messages: tuple[Message, ...] | None = None
    stream: bool = False
    trace_context: dict[str, str] = field(default_factory=dict)
    tools: tuple[ToolSpec, ...] = ()
    tool_choice: ToolChoice = DEFAULT_TOOL_CHOICE


@dataclass(frozen=True)
class TopLogprob:
    token: str
    token_id: int
    logprob: float


@dataclass(frozen=True)
class TokenLogprob:
    token: str
    token_id: int
    logprob: float
    top: tuple[TopLogprob, ...] = ()


@dataclass(frozen=True)
class ChoiceDelta:
    """New text of one choice; ``finish_reason`` is set on its last delta."""

    index: int
    text: str
    finish_reason: FinishReason | None = None
    logprobs: tuple[TokenLogprob, ...] = ()
    tool_calls: tuple[ToolCall, ...] = ()


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_prompt_tokens: int = 0
    computed_prompt_tokens: int = 0  # over all n choices: prompt x n minus every choice's prefix-cache hits

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.cached_prompt_tokens + other.cached_prompt_tokens,
            self.computed_prompt_tokens + other.computed_prompt_tokens,
        )


@dataclass(frozen=True)
class GenerationChunk:
    """A streamed piece of a response; the last one carries ``usage``."""

    choices: tuple[ChoiceDelta, ...]
    usage: Usage | None = None


@dataclass(frozen=True)
class ModelStatus:
    """What a replica says about its engine."""

    ready: bool
    state: str  # "loading", "ready" or "failed"
    detail: str = ""
    max_model_len: int = 0
    running_requests: int = 0
    engine_cores: tuple[int, ...] = ()  # cores the engine's CPU workers are bound to (empty: none, or GPUs)
    node_id: str = ""  # Ray node of the replica
