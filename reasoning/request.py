"""What a Reason call asks for, the server's caps on it, and :func:`validate`, the checks of its gate."""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import TypeVar

from quorum.cluster.types import CHAT_ROLES, temperature_problem, top_p_problem

from .answers import DEFAULT_CHOICES, AnswerFormat
from .early_stop import EarlyStopping, StopRule
from .errors import ReasoningInputError, UnknownToolError
from .llm import ChatTurn
from .retrieval import RETRIEVE_TOOL
from .tools import FINAL_ANSWER, ClientTool, ToolStep

CLIENT_TOOL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
MAX_CLIENT_TOOLS = 32

_E = TypeVar("_E", bound=StrEnum)


class Strategy(StrEnum):
    DIRECT = "direct"  # one greedy answer
    CHAIN_OF_THOUGHT = "chain_of_thought"  # step-by-step thoughts, then the answer
    SELF_CONSISTENCY = "self_consistency"  # k chain-of-thought samples in one engine request, majority vote
    REACT = "react"  # tool calls (JSON actions under constrained decoding) until a final answer
    RAG = "rag"  # retrieval-augmented; needs ``collection``


@dataclass(frozen=True)
class Budget:
    """Caps on one run. ``max_tokens`` counts generated (completion) tokens over all model calls."""

    max_tokens: int = 4096
    max_seconds: float = 60.0
    max_tool_calls: int = 8


@dataclass(frozen=True)
class SamplingOverrides:
    """Decoding settings that replace a strategy's defaults; None keeps the default.

    ``max_tokens`` applies per model call (per step; per sample for self-consistency).
    """

    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    seed: int | None = None


@dataclass(frozen=True)
class ReasonRequest:
    """One Reason call.

    ``messages`` is the prior conversation, placed before the question.
    ``samples`` (k) is only for self-consistency, ``tools`` and ``max_steps``
    only for ReAct, ``early_stopping`` only for self-consistency, ``collection``
    for RAG and for ReAct's ``retrieve`` tool (``top_k`` passages per search,
    0 for the retriever's default). ``choices`` are the labels of a CHOICE
    answer. ``model`` empty means the cluster's default model. ``grounded``
    (ReAct) limits the calculator to numbers of the question and of earlier
    tool results, each used once, and a numeric answer to the tool results
    (see :mod:`quorum.reasoning.grounding`). ``client_tools`` (ReAct) are
    functions the client runs itself; ``steps`` continue a run that stopped
    at one of their calls (see :mod:`quorum.reasoning.tools.client`).
    """

    question: str
    model: str = ""
    strategy: Strategy = Strategy.CHAIN_OF_THOUGHT
    messages: tuple[ChatTurn, ...] = ()
    samples: int = 1
    tools: tuple[str, ...] = ()
    max_steps: int = 6
    budget: Budget = field(default_factory=Budget)
    early_stopping: EarlyStopping = field(default_factory=EarlyStopping)
    sampling: SamplingOverrides = field(default_factory=SamplingOverrides)
    answer_format: AnswerFormat = AnswerFormat.NUMBER
    choices: tuple[str, ...] = DEFAULT_CHOICES
    collection: str = ""
    top_k: int = 0
    grounded: bool = True
    client_tools: tuple[ClientTool, ...] = ()
    steps: tuple[ToolStep, ...] = ()

    @property
    def offered_tools(self) -> tuple[str, ...]:
        """The names the model may call: the server tools, then the client's."""
        return (*self.tools, *(tool.name for tool in self.client_tools))


@dataclass(frozen=True)
class ReasoningLimits:
    """Server-side caps on requests (from the deployment's config)."""

    max_samples: int = 16
    max_question_chars: int = 16_000
    max_messages: int = 64
    max_steps: int = 16
    max_tokens: int = 32_768
    max_seconds: float = 300.0
    max_tool_calls: int = 32
    max_step_tokens: int = 4096
    max_input_chars: int = 1_000_000  # question + messages + replayed steps, checked before tokenizing


def validate(request: ReasonRequest, limits: ReasoningLimits, known_tools: Collection[str]) -> ReasonRequest:
    """The checks of the Reason gate: the request to run, or :class:`ReasoningInputError` naming the first bad
    field, or :class:`UnknownToolError`.

    ``known_tools`` are the names the tool registry offers. The result has its
    enum fields (strategy, answer format, early-stopping rule) as enums; passing
    means the request can run, and what runs it trusts it without checking it
    again: every later problem ends the run with a final event.
    """
    strategy = _enum(Strategy, request.strategy, "strategy")
    _check_question(request, limits)
    _check_messages(request.messages, limits)
    _check_input_size(request, limits)
    _check_samples(request, strategy, limits)
    _check_tools(request, strategy, limits, known_tools)
    _check_client_tools(request, known_tools)
    _check_steps(request, limits)
    _check_budget(request.budget, limits)
    rule = _check_early_stopping(request, strategy)
    _check_sampling(request.sampling, limits)
    answer_format = _check_answer_format(request)
    _check_collection(request, strategy)
    return replace(
        request,
        strategy=strategy,
        answer_format=answer_format,
        early_stopping=replace(request.early_stopping, rule=rule),
    )


def _check_collection(request: ReasonRequest, strategy: Strategy) -> None:
    retrieves = strategy is Strategy.REACT and RETRIEVE_TOOL in request.tools
    if strategy is Strategy.RAG and not request.collection.strip():
        raise ReasoningInputError("collection", "the rag strategy needs the name of a document collection")
    if retrieves and not request.collection.strip():
        raise ReasoningInputError("collection", f"the {RETRIEVE_TOOL} tool needs the name of a document collection")
    if strategy is not Strategy.RAG and not retrieves and request.collection:
        raise ReasoningInputError(
            "collection", f"only the rag strategy and the {RETRIEVE_TOOL} tool read a collection, not {strategy.value}"
        )
    if request.top_k < 0:
        raise ReasoningInputError("top_k", f"must be >= 0 (0 is the server default), got {request.top_k}")


def _enum(kind: type[_E], value: str, name: str) -> _E:
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(member.value for member in kind)
        raise ReasoningInputError(name, f"unknown value {value!r}; use one of: {allowed}") from None


def _finite(name: str, value: float) -> None:
    if not math.isfinite(value):
        raise ReasoningInputError(name, f"must be a finite number, got {value}")


def _check_question(request: ReasonRequest, limits: ReasoningLimits) -> None:
    if not request.question.strip():
        raise ReasoningInputError("question", "must not be empty")
    if len(request.question) > limits.max_question_chars:
        raise ReasoningInputError(
            "question", f"{len(request.question)} characters; the limit is {limits.max_question_chars}"
        )


def _check_messages(messages: tuple[ChatTurn, ...], limits: ReasoningLimits) -> None:
    if len(messages) > limits.max_messages:
        raise ReasoningInputError("messages", f"{len(messages)} prior messages; the limit is {limits.max_messages}")
    for position, message in enumerate(messages):
        if message.role not in CHAT_ROLES:
            raise ReasoningInputError(
                f"messages[{position}].role", f"unknown role {message.role!r}; use one of: {', '.join(CHAT_ROLES)}"
            )


def _check_input_size(request: ReasonRequest, limits: ReasoningLimits) -> None:
    """The text the model would read, counted before anything is tokenized (a long text costs seconds)."""
    total = len(request.question) + sum(len(message.content) for message in request.messages)
    if total > limits.max_input_chars:
        raise ReasoningInputError(
            "messages",
            f"the question and messages hold {total} characters; the limit is {limits.max_input_chars} "
            "(reasoning.max_input_chars)",
        )
    for step in request.steps:
        total += len(step.thought) + len(step.output) + len(step.error) + len(step.arguments_json)
        if total > limits.max_input_chars:
            raise ReasoningInputError(
                "steps",
                f"the question, messages and steps hold over {limits.max_input_chars} characters, the limit "
                "(reasoning.max_input_chars)",
            )


def _check_samples(request: ReasonRequest, strategy: Strategy, limits: ReasoningLimits) -> None:
    if strategy is Strategy.SELF_CONSISTENCY:
        if not 1 <= request.samples <= limits.max_samples:
            raise ReasoningInputError(
                "samples", f"must be between 1 and {limits.max_samples} for self_consistency, got {request.samples}"
            )
        if request.budget.max_tokens < request.samples:
            raise ReasoningInputError(
                "budget.max_tokens",
                f"{request.budget.max_tokens} cannot give each of the {request.samples} samples a token",
            )
    elif request.samples != 1:
        raise ReasoningInputError(
            "samples", f"only self_consistency draws several samples; {strategy.value} needs 1, got {request.samples}"
        )


def _check_tools(
    request: ReasonRequest, strategy: Strategy, limits: ReasoningLimits, known_tools: Collection[str]
) -> None:
    if strategy is not Strategy.REACT:
        for name, given in (("tools", request.tools), ("client_tools", request.client_tools), ("steps", request.steps)):
            if given:
                raise ReasoningInputError(name, f"only the react strategy calls tools, not {strategy.value}")
        return
    if not request.tools and not request.client_tools:
        raise ReasoningInputError("tools", "the react strategy needs at least one tool (tools or client_tools)")
    if len(set(request.tools)) != len(request.tools):
        raise ReasoningInputError("tools", "each tool may be named once")
    for name in request.tools:
        if name not in known_tools:
            raise UnknownToolError(name, sorted(known_tools))
    if not 1 <= request.max_steps <= limits.max_steps:
        raise ReasoningInputError("max_steps", f"must be between 1 and {limits.max_steps}, got {request.max_steps}")


def _check_client_tools(request: ReasonRequest, known_tools: Collection[str]) -> None:
    if len(request.client_tools) > MAX_CLIENT_TOOLS:
        raise ReasoningInputError(
            "client_tools", f"at most {MAX_CLIENT_TOOLS} client tools per request, got {len(request.client_tools)}"
        )
    seen: set[str] = set()
    for position, tool in enumerate(request.client_tools):
        field = f"client_tools[{position}]"
        if not CLIENT_TOOL_NAME.match(tool.name):
            raise ReasoningInputError(
                f"{field}.name", f"must be 1-64 letters, digits or '_', not starting with a digit, got {tool.name!r}"
            )
        if tool.name == FINAL_ANSWER or tool.name in known_tools:
            raise ReasoningInputError(f"{field}.name", f"'{tool.name}' is a server tool's name; choose another")
        if tool.name in seen:
            raise ReasoningInputError(f"{field}.name", f"'{tool.name}' is declared twice")
        seen.add(tool.name)
        _check_object_schema(f"{field}.parameters_json_schema", tool.parameters)


def _check_object_schema(field: str, schema: Mapping[str, object]) -> None:
    """A tool's arguments schema must describe a JSON object whose properties are schemas."""
    if not isinstance(schema, Mapping) or schema.get("type", "object") != "object":
        raise ReasoningInputError(field, 'must be a JSON Schema of an object ({"type": "object", ...})')
    properties = schema.get("properties", {})
    if not isinstance(properties, Mapping) or not all(isinstance(value, Mapping) for value in properties.values()):
        raise ReasoningInputError(field, '"properties" must map each argument name to its schema')


def _check_steps(request: ReasonRequest, limits: ReasoningLimits) -> None:
    """``steps`` replay a run: at most ``max_steps`` of them, with distinct call ids.

    NOTE: that each step names an offered tool, has an id and carries its result is checked where the
    steps are read from the wire (``services.reasoning_service.steps_from_proto``, naming the message).
    """
    if len(request.steps) > limits.max_steps:
        raise ReasoningInputError("steps", f"{len(request.steps)} steps; a run has at most {limits.max_steps}")
    ids: set[str] = set()
    for position, step in enumerate(request.steps):
        if step.call_id in ids:
            raise ReasoningInputError(f"steps[{position}].call_id", "call ids must be non-empty and distinct")
        ids.add(step.call_id)


def _check_budget(budget: Budget, limits: ReasoningLimits) -> None:
    if not 1 <= budget.max_tokens <= limits.max_tokens:
        raise ReasoningInputError(
            "budget.max_tokens", f"must be between 1 and {limits.max_tokens}, got {budget.max_tokens}"
        )
    _finite("budget.max_seconds", budget.max_seconds)
    if not 0 < budget.max_seconds <= limits.max_seconds:
        raise ReasoningInputError(
            "budget.max_seconds", f"must be > 0 and at most {limits.max_seconds:g}, got {budget.max_seconds:g}"
        )
    if not 0 <= budget.max_tool_calls <= limits.max_tool_calls:
        raise ReasoningInputError(
            "budget.max_tool_calls", f"must be between 0 and {limits.max_tool_calls}, got {budget.max_tool_calls}"
        )


def _check_early_stopping(request: ReasonRequest, strategy: Strategy) -> StopRule:
    settings = request.early_stopping
    rule = _enum(StopRule, settings.rule, "early_stopping.rule")
    if rule is StopRule.NONE:
        return rule
    if strategy is not Strategy.SELF_CONSISTENCY:
        raise ReasoningInputError("early_stopping.rule", f"only self_consistency stops early, not {strategy.value}")
    if not 1 <= settings.min_samples <= request.samples:
        raise ReasoningInputError(
            "early_stopping.min_samples", f"must be between 1 and samples={request.samples}, got {settings.min_samples}"
        )
    if rule is StopRule.BETA:
        _finite("early_stopping.threshold", settings.threshold)
        if not 0.5 <= settings.threshold < 1:
            raise ReasoningInputError(
                "early_stopping.threshold", f"must be in [0.5, 1) for the beta rule, got {settings.threshold:g}"
            )
    elif not 2 <= settings.window <= request.samples:
        raise ReasoningInputError(
            "early_stopping.window", f"must be between 2 and samples={request.samples}, got {settings.window}"
        )
    return rule


def _check_sampling(sampling: SamplingOverrides, limits: ReasoningLimits) -> None:
    for name, problem in (
        ("sampling.temperature", None if sampling.temperature is None else temperature_problem(sampling.temperature)),
        ("sampling.top_p", None if sampling.top_p is None else top_p_problem(sampling.top_p)),
    ):
        if problem is not None:
            raise ReasoningInputError(name, problem)
    if sampling.max_tokens is not None and not 1 <= sampling.max_tokens <= limits.max_step_tokens:
        raise ReasoningInputError(
            "sampling.max_tokens", f"must be between 1 and {limits.max_step_tokens}, got {sampling.max_tokens}"
        )
    if sampling.seed is not None and sampling.seed < 0:
        raise ReasoningInputError("sampling.seed", f"must be >= 0, got {sampling.seed}")


def _check_answer_format(request: ReasonRequest) -> AnswerFormat:
    answer_format = _enum(AnswerFormat, request.answer_format, "answer_format")
    if answer_format is not AnswerFormat.CHOICE:
        return answer_format
    if not request.choices:
        raise ReasoningInputError("choices", "a choice answer needs at least one label")
    if any(not label.strip() or label != label.strip() for label in request.choices):
        raise ReasoningInputError("choices", "labels must be non-empty without surrounding whitespace")
    if len({label.casefold() for label in request.choices}) != len(request.choices):
        raise ReasoningInputError("choices", "labels must be distinct (ignoring case)")
    return answer_format
