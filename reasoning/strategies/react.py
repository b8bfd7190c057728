"""REACT: the model acts through tools, one grammar-constrained JSON action per step, until it answers.

Each step is one model call decoding under the registry's tool-call schema, so
even a 135M model writes a valid ``{"thought": ..., "tool": ..., "arguments":
{...}}``; its text streams as step events. The thought (one line: what the
question gives and what to do with it) comes before the call, as in ReAct; the
worked examples' thoughts name the operation in the question's words, which
keeps a small model from copying the examples' operation. A tool action is run (with the tool's timeout)
and its result fed back as the next user turn; ``final_answer`` ends the run.
The prompt shows one worked exchange per tool: call the tool for the
arithmetic, then answer with its result. The schema enforces that order too:
until a tool has returned, the model can only call tools (a small model
otherwise "answers" at once with a number copied from the question).

The loop is cut when the model repeats a call with the same arguments
(LOOP_DETECTED) or asks for a tool after ``budget.max_tool_calls`` calls
(BUDGET_TOOL_CALLS). A cut run gets one more step, decoded under a schema that
only allows ``final_answer`` and shown the earlier result, so it still ends
with an answer when it can; the final event keeps the cut's stop reason. The
run also ends after ``max_steps`` model calls (MAX_STEPS), when the token
budget runs out (BUDGET_TOKENS), or when its turns fill the model's context
(CONTEXT_FULL). A step whose prompt leaves less room in the context than its
token limit gets that room, so a model with a short context still runs.

In a grounded run (``request.grounded``, the default) a question that asks
"how many" is answered with a count. A negative result comes back with a note
saying so, and until there is a result that is not negative the model can
only calculate (loop detection still ends a run that repeats the call; its
last step may then answer any number).

Client tools (``request.client_tools``) are offered under the same grammar; a
call of one ends the run with TOOL_CALL, the pending call last in the final
event's ``steps``. The client runs it and sends the request again with the
steps and the result; the run replays them and goes on (see
:mod:`quorum.reasoning.tools.client`).

The run is a loop of steps: each decodes one action, :func:`classify` names
what it amounts to (one :data:`StepOutcome`: an answer, a server or client tool
call, a repeat, a call past the budget, a call after a cut, an unusable reply,
a full context, a spent token budget) and one decision per outcome says what
the run emits and whether it goes on.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Collection, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass, replace
from typing import Any, assert_never

from opentelemetry.trace import Span, Status, StatusCode

from ..answers import AnswerFormat, answer_json_schema, extract_answer
from ..events import Event, FinalEvent, StopReason, ToolCallEvent, ToolResultEvent
from ..grounding import answer_schema, asks_for_count, expression_schema, grounded_numbers, result_values
from ..llm import ChatTurn, ContextFullError, LLMClient, Sampling
from ..prompts import action_json, observation, react_messages
from ..request import ReasonRequest
from ..state import RunState
from ..telemetry import ending, start_span
from ..tools import CALCULATOR, FINAL_ANSWER, ToolOutcome, ToolRegistry, ToolStep
from .common import (
    Completion,
    call_tokens,
    context_full,
    cut_by_context,
    final_event,
    step_sampling,
    stream_step,
    tokens_exhausted,
)

TEMPERATURE = 0.0
MAX_TOKENS = 192  # a tool call: a thought of up to 120 characters, then the call
# Greedy thoughts of a small model can loop ("4288 liters in the tank: 4288 liters in the tank: ...") up to
# their cap and then pick a wrong operation; a mild penalty on tokens already generated in the step stops
# that (ReAct benchmark, 100 problems: 6 looping thoughts -> 0, differences 2/10 -> 6/10, 0.76 -> 0.78).
FREQUENCY_PENALTY = 0.3
NEGATIVE_COUNT = "A count cannot be negative: the subtraction is the wrong way round."


class ActionError(ValueError):
    """The model's reply is not a usable action; the message is fed back to it."""


@dataclass(frozen=True)
class Action:
    tool: str
    arguments: Mapping[str, Any]
    thought: str = ""

    def signature(self) -> str:
        """Identifies the call for loop detection: whitespace inside string arguments does not matter."""
        return json.dumps([self.tool, _squeezed(self.arguments)], sort_keys=True)


def parse_action(text: str, allowed: Collection[str]) -> Action:
    """The action in ``text`` (one JSON object, optionally followed by anything); raises :class:`ActionError`."""
    try:
        data, _ = json.JSONDecoder().raw_decode(text.strip())
    except json.JSONDecodeError as error:
        raise ActionError(f"the reply is not valid JSON ({error.msg})") from None
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("tool"), str)
        or not isinstance(data.get("arguments"), dict)
    ):
        raise ActionError('the reply must be {"tool": <tool name>, "arguments": {...}}')
    tool, arguments = data["tool"], data["arguments"]
    if tool not in allowed:
        raise ActionError(f"there is no tool '{tool}'; use one of: {', '.join(allowed)}")
    if tool == FINAL_ANSWER and "answer" not in arguments:
        raise ActionError(f'{FINAL_ANSWER} needs the arguments {{"answer": ...}}')
    thought = data.get("thought")
    return Action(tool, arguments, thought if isinstance(thought, str) else "")


@dataclass(frozen=True)
class ActionOutcome:
    """A step whose reply is a usable action."""

    action: Action


@dataclass(frozen=True)
class Answered(ActionOutcome):
    """The model gave its final answer: the run ends with it."""


@dataclass(frozen=True)
class ServerCall(ActionOutcome):
    """A new call of a server tool within the budget: the tool runs and the model is shown its result."""


@dataclass(frozen=True)
class ClientCall(ActionOutcome):
    """A new call of a client tool within the budget: the run ends (TOOL_CALL) until the client sends its result."""


@dataclass(frozen=True)
class Repeated(ActionOutcome):
    """A call already made with the same arguments: a loop, so the run is cut and shown ``previous`` again."""

    previous: ToolOutcome


@dataclass(frozen=True)
class NoCallsLeft(ActionOutcome):
    """A tool call after budget.max_tool_calls calls: the run is cut."""


@dataclass(frozen=True)
class CutIgnored(ActionOutcome):
    """A tool call in a step after a cut, whose grammar allows only the answer (a client that does not decode
    under it can still write one): the run ends with the cut's ``reason`` and ``detail``."""

    reason: StopReason
    detail: str


@dataclass(frozen=True)
class Unusable:
    """A reply that is not a usable action: it and ``error`` (why not) are fed back to the model."""

    text: str
    error: str


@dataclass(frozen=True)
class ContextFilled:
    """The conversation filled the model's context (``detail`` says how): the run ends."""

    detail: str


@dataclass(frozen=True)
class OutOfTokens:
    """The token budget ran out, before the step or cutting its action short: the run ends."""


StepOutcome = (
    Answered | ServerCall | ClientCall | Repeated | NoCallsLeft | CutIgnored | Unusable | ContextFilled | OutOfTokens
)


def classify(
    completion: Completion,
    sampling: Sampling,
    *,
    allowed: Collection[str],
    call_limit: int,
    cut: tuple[StopReason, str] | None,
    results: Mapping[str, ToolOutcome],
    tool_calls_left: int,
    client_tools: Collection[str],
) -> StepOutcome:
    """What one decoded step amounts to.

    ``completion`` was decoded with ``sampling``; ``call_limit`` is a step's
    token limit before the budget lowers it, ``allowed`` the tools the reply
    may name, ``cut`` the loop or budget cut of an earlier step, ``results``
    the tool results so far by :meth:`Action.signature`, ``client_tools`` the
    tools the client runs. A repeated call is a loop even when no tool calls
    are left.
    """
    try:
        action = parse_action(completion.text, allowed)
    except ActionError as error:
        if cut_by_context(completion, sampling):
            return ContextFilled(context_full(completion))
        if completion.finish_reason == "length" and sampling.max_tokens < call_limit:
            return OutOfTokens()
        return Unusable(completion.text, str(error))
    if action.tool == FINAL_ANSWER:
        return Answered(action)
    if cut is not None:
        return CutIgnored(action, *cut)
    previous = results.get(action.signature())
    if previous is not None:
        return Repeated(action, previous)
    if tool_calls_left == 0:
        return NoCallsLeft(action)
    return ClientCall(action) if action.tool in client_tools else ServerCall(action)


async def run(
    request: ReasonRequest, client: LLMClient, state: RunState, registry: ToolRegistry
) -> AsyncIterator[Event]:
    """Step, tool call and tool result events, then the final event.

    ``request.steps`` (a run continued after a client tool call) are replayed
    first: their calls and results join the conversation as the run wrote
    them, count against the step and tool-call limits, feed loop detection
    and grounding, and numbering goes on after them.

    NOTE: only a client tool's result is taken from the client. A replayed
    server tool call is run again and its own result replaces the one the
    client sent, so a forged "server result" never reaches the model, the
    grounding or the final event's steps.
    """
    loop = _Loop(request, state, registry)
    await loop.replay()
    for step in range(len(request.steps) + 1, request.max_steps + 1):
        async with aclosing(loop.step(client, step)) as events:
            async for event in events:
                yield event
                if isinstance(event, FinalEvent):
                    return
    reason, detail = loop.cut or (
        StopReason.MAX_STEPS,
        f"max_steps={request.max_steps} model calls gave no final answer",
    )
    yield loop.finish(None, reason, detail)


class _Loop:
    """A ReAct run between its steps: the conversation, the tool results and transcript, and the cut if any.

    A step decodes one action, :func:`classify` names its outcome and
    :meth:`act` takes the one decision that outcome calls for.
    """

    def __init__(self, request: ReasonRequest, state: RunState, registry: ToolRegistry) -> None:
        self.request = request
        self.state = state
        self.client_tools = {tool.name for tool in request.client_tools}
        for tool in request.client_tools:
            registry = registry.with_tool(tool)
        self.registry = registry
        self.allowed = (*request.offered_tools, FINAL_ANSWER)
        self.count = (
            request.grounded and request.answer_format is AnswerFormat.NUMBER and asks_for_count(request.question)
        )
        self.seen = [request.question, *(turn.content for turn in request.messages)]  # numbers the run may ground on
        self.messages = react_messages(request, [registry.get(name) for name in request.offered_tools])
        self.results: dict[str, ToolOutcome] = {}  # by action signature
        self.transcript: list[ToolStep] = []
        self.cut: tuple[StopReason, str] | None = None

    async def replay(self) -> None:
        """Takes in ``request.steps``, running each server tool call again (see :func:`run`)."""
        for done in self.request.steps:
            if done.tool not in self.client_tools:
                rerun = await _call_tool(
                    self.registry, Action(done.tool, done.arguments, done.thought), self.state.span
                )
                done = replace(done, output=rerun.output, error=rerun.error)
            self.state.tool_calls += 1
            self.record(done, done.outcome)

    async def step(self, client: LLMClient, step: int) -> AsyncGenerator[Event, None]:
        """Step ``step``: decode one action, classify it, act on the outcome; a final event ends the run."""
        if self.state.remaining_tokens == 0:
            yield self.out_of_tokens()
            return
        schema = _schema(
            self.request, self.registry, self.seen, self.results, answering=self.cut is not None, count=self.count
        )
        sampling = step_sampling(
            self.request,
            self.state,
            temperature=TEMPERATURE,
            max_tokens=MAX_TOKENS,
            json_schema=schema,
            frequency_penalty=FREQUENCY_PENALTY,
        )
        completion = Completion()
        with ending(start_span("reason.step", self.state.span, {"quorum.step": step})) as span:
            model_call = stream_step(
                client, self.request.model, self.messages, sampling, self.state, span, step, completion
            )
            outcome: StepOutcome
            try:
                async with aclosing(model_call) as pieces:
                    async for piece in pieces:
                        yield piece
            except ContextFullError as error:
                if step == 1:  # the request's own messages do not fit: INVALID_ARGUMENT
                    raise
                outcome = ContextFilled(error.problem)
            else:
                outcome = classify(
                    completion,
                    sampling,
                    allowed=self.allowed,
                    call_limit=call_tokens(self.request, MAX_TOKENS),
                    cut=self.cut,
                    results=self.results,
                    tool_calls_left=self.state.remaining_tool_calls,
                    client_tools=self.client_tools,
                )
            async with aclosing(self.act(outcome, step, span)) as events:
                async for event in events:
                    yield event

    async def act(self, outcome: StepOutcome, step: int, span: Span) -> AsyncGenerator[Event, None]:
        """The decision ``outcome`` calls for, as events; the last one is the final event when the run ends."""
        if isinstance(outcome, ActionOutcome):
            span.set_attribute("quorum.action", outcome.action.tool)
        match outcome:
            case OutOfTokens():
                yield self.out_of_tokens()
            case ContextFilled(detail):
                yield self.finish(None, StopReason.CONTEXT_FULL, detail)
            case Unusable(text, error):
                span.set_attribute("quorum.action_error", error)
                reply = f"Error: {error}. Reply with one JSON object like before."
                self.messages += [ChatTurn("assistant", text), ChatTurn("user", reply)]
            case Answered(action):
                yield self.answer(action)
            case CutIgnored(_, reason, detail):
                yield self.finish(None, reason, detail)
            case Repeated(action, previous):
                detail = f"step {step} repeated the call {_call_text(action)}"
                reminder = f"{observation(previous)}\nYou already made this call. Reply with {FINAL_ANSWER} now."
                self.cut_off(action, StopReason.LOOP_DETECTED, detail, reminder)
            case NoCallsLeft(action):
                detail = f"budget.max_tool_calls={self.state.budget.max_tool_calls} used up"
                reminder = f"Error: no tool calls left. Reply with {FINAL_ANSWER} now."
                self.cut_off(action, StopReason.BUDGET_TOOL_CALLS, detail, reminder)
            case ClientCall(action):
                call = self.call_event(step, action)
                yield call
                span.set_attribute("quorum.tool_runs_on", "client")
                self.transcript.append(
                    ToolStep(call.call_id, action.tool, action.arguments, action.thought, pending=True)
                )
                detail = (
                    f"step {step} called the client tool {action.tool} (call id {call.call_id}): run it and continue"
                )
                yield self.finish(None, StopReason.TOOL_CALL, detail)
            case ServerCall(action):
                call = self.call_event(step, action)
                yield call
                result = await _call_tool(self.registry, action, span)
                done = ToolStep(
                    call.call_id, action.tool, action.arguments, action.thought, result.output, result.error
                )
                self.record(done, result)
                yield ToolResultEvent(step, action.tool, result.output, result.error, result.latency_s, call.call_id)
            case _:
                assert_never(outcome)

    def answer(self, action: Action) -> FinalEvent:
        """The final event of a final answer; after a cut it keeps the cut's stop reason."""
        answer = extract_answer(_as_text(action.arguments["answer"]), self.request.answer_format, self.request.choices)
        reason, detail = self.cut or (StopReason.ANSWERED if answer is not None else StopReason.NO_ANSWER, "")
        return self.finish(answer, reason, detail)

    def cut_off(self, action: Action, reason: StopReason, detail: str, reminder: str) -> None:
        """Cuts the run: the next step may only answer, after ``reminder``; the final event keeps ``reason``."""
        self.cut = (reason, detail)
        self.messages += [ChatTurn("assistant", _call_text(action)), ChatTurn("user", reminder)]

    def call_event(self, step: int, action: Action) -> ToolCallEvent:
        """Counts the call against the budget and gives it a call id."""
        self.state.tool_calls += 1
        call_id = f"call_{uuid.uuid4().hex[:16]}"
        return ToolCallEvent(step, action.tool, json.dumps(action.arguments, ensure_ascii=False), call_id)

    def record(self, done: ToolStep, outcome: ToolOutcome) -> None:
        """A call that returned ``outcome``: into the transcript, the results, the numbers seen and the conversation."""
        self.transcript.append(done)
        self.results[Action(done.tool, done.arguments).signature()] = outcome
        if outcome.ok:
            self.seen.append(outcome.output)
        call = action_json(done.tool, done.arguments, done.thought)
        self.messages += [ChatTurn("assistant", call), ChatTurn("user", _observe(outcome, self.count))]

    def out_of_tokens(self) -> FinalEvent:
        return self.finish(None, StopReason.BUDGET_TOKENS, tokens_exhausted(self.state))

    def finish(self, answer: str | None, reason: StopReason, detail: str = "") -> FinalEvent:
        return final_event(self.state, answer, reason, samples_used=1, detail=detail, steps=tuple(self.transcript))


def _schema(
    request: ReasonRequest,
    registry: ToolRegistry,
    seen: Sequence[str],
    results: Mapping[str, ToolOutcome],
    *,
    answering: bool,
    count: bool = False,
) -> str:
    """The grammar of the next action: tools only until one has returned, then tools or the final answer,
    only the final answer after a cut. With grounding, the calculator combines only numbers in ``seen``
    and a numeric answer is one of the tool results' numbers (with ``count``, one that is not negative:
    tools only while there is none)."""
    answer = answer_json_schema(request.answer_format, request.choices)
    overrides: dict[str, Mapping[str, Any]] = {}
    may_answer = bool(results)
    if request.grounded:
        outputs = [outcome.output for outcome in results.values() if outcome.ok]
        if request.answer_format is AnswerFormat.NUMBER:
            grounded = answer_schema(outputs, nonnegative=count)
            if grounded is not None:
                answer = grounded
            elif count and result_values(outputs):  # only negative results so far: calculate again
                may_answer = False
        if CALCULATOR in request.tools:
            expression = expression_schema(registry.get(CALCULATOR).parameters, grounded_numbers(seen))
            if expression is not None:
                overrides[CALCULATOR] = expression
    if answering:
        return json.dumps(registry.tool_call_schema((), answer))
    return json.dumps(registry.tool_call_schema(request.offered_tools, answer if may_answer else None, overrides))


def _observe(outcome: ToolOutcome, count: bool) -> str:
    """The tool result as the model sees it; a negative result of a "how many" question says it cannot be."""
    text = observation(outcome)
    values = result_values([outcome.output]) if count and outcome.ok else []
    if values and all(value < 0 for value in values):
        text += " " + NEGATIVE_COUNT
    return text


async def _call_tool(registry: ToolRegistry, action: Action, parent: Span) -> ToolOutcome:
    with ending(start_span("reason.tool", parent, {"quorum.tool": action.tool})) as span:
        outcome = await registry.run(action.tool, action.arguments)
        span.set_attribute("quorum.latency_ms", outcome.latency_s * 1000)
        if not outcome.ok:
            span.set_status(Status(StatusCode.ERROR, outcome.error))
    return outcome


def _call_text(action: Action) -> str:
    """The action as the conversation shows it."""
    return action_json(action.tool, action.arguments, action.thought)


def _as_text(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _squeezed(value: object) -> object:
    if isinstance(value, str):
        return "".join(value.split())
    if isinstance(value, Mapping):
        return {key: _squeezed(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_squeezed(item) for item in value]
    return value
