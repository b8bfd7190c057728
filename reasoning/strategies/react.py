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
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass, replace
from typing import Any

from opentelemetry.trace import Span, Status, StatusCode

from ..answers import AnswerFormat, answer_json_schema, extract_answer
from ..events import Event, FinalEvent, StopReason, ToolCallEvent, ToolResultEvent
from ..grounding import answer_schema, asks_for_count, expression_schema, grounded_numbers, result_values
from ..llm import ChatTurn, ContextFullError, LLMClient
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
    allowed = (*request.offered_tools, FINAL_ANSWER)
    client_tools = {tool.name for tool in request.client_tools}
    for tool in request.client_tools:
        registry = registry.with_tool(tool)
    seen = [request.question, *(turn.content for turn in request.messages)]  # numbers the run may ground on
    messages = react_messages(request, [registry.get(name) for name in request.offered_tools])
    results: dict[str, ToolOutcome] = {}  # by action signature
    transcript: list[ToolStep] = []
    count = request.grounded and request.answer_format is AnswerFormat.NUMBER and asks_for_count(request.question)
    for done in request.steps:
        action = Action(done.tool, done.arguments, done.thought)
        if done.tool not in client_tools:
            rerun = await _call_tool(registry, action, state.span)
            done = replace(done, output=rerun.output, error=rerun.error)
        transcript.append(done)
        results[action.signature()] = done.outcome
        state.tool_calls += 1
        if done.outcome.ok:
            seen.append(done.output)
        messages += [ChatTurn("assistant", action_json(done.tool, done.arguments, done.thought))]
        messages += [ChatTurn("user", _observe(done.outcome, count))]
    cut: tuple[StopReason, str] | None = None

    def finish(answer: str | None, reason: StopReason, detail: str = "") -> FinalEvent:
        return final_event(state, answer, reason, samples_used=1, detail=detail, steps=tuple(transcript))

    for step in range(len(request.steps) + 1, request.max_steps + 1):
        if state.remaining_tokens == 0:
            yield finish(None, StopReason.BUDGET_TOKENS, tokens_exhausted(state))
            return
        schema = _schema(request, registry, seen, results, answering=cut is not None, count=count)
        sampling = step_sampling(
            request,
            state,
            temperature=TEMPERATURE,
            max_tokens=MAX_TOKENS,
            json_schema=schema,
            frequency_penalty=FREQUENCY_PENALTY,
        )
        completion = Completion()
        with ending(start_span("reason.step", state.span, {"quorum.step": step})) as span:
            model_call = stream_step(client, request.model, messages, sampling, state, span, step, completion)
            try:
                async with aclosing(model_call) as steps:
                    async for event in steps:
                        yield event
            except ContextFullError as error:
                if step == 1:  # the request's own messages do not fit: INVALID_ARGUMENT
                    raise
                yield finish(None, StopReason.CONTEXT_FULL, error.problem)
                return
            try:
                action = parse_action(completion.text, allowed)
            except ActionError as error:
                if cut_by_context(completion, sampling):
                    yield finish(None, StopReason.CONTEXT_FULL, context_full(completion))
                    return
                if completion.finish_reason == "length" and sampling.max_tokens < call_tokens(request, MAX_TOKENS):
                    yield finish(None, StopReason.BUDGET_TOKENS, tokens_exhausted(state))
                    return
                span.set_attribute("quorum.action_error", str(error))
                messages += [
                    ChatTurn("assistant", completion.text),
                    ChatTurn("user", f"Error: {error}. Reply with one JSON object like before."),
                ]
                continue
            span.set_attribute("quorum.action", action.tool)
            if action.tool == FINAL_ANSWER:
                answer = extract_answer(_as_text(action.arguments["answer"]), request.answer_format, request.choices)
                reason, detail = cut or (StopReason.ANSWERED if answer is not None else StopReason.NO_ANSWER, "")
                yield finish(answer, reason, detail)
                return
            if cut is not None:  # only an unconstrained client can get here: it did not answer when told to
                yield finish(None, *cut)
                return
            call = action_json(action.tool, action.arguments, action.thought)
            previous = results.get(action.signature())
            if previous is not None:
                cut = (StopReason.LOOP_DETECTED, f"step {step} repeated the call {call}")
                reminder = f"{observation(previous)}\nYou already made this call. Reply with {FINAL_ANSWER} now."
                messages += [ChatTurn("assistant", call), ChatTurn("user", reminder)]
                continue
            if state.remaining_tool_calls == 0:
                cut = (StopReason.BUDGET_TOOL_CALLS, f"budget.max_tool_calls={state.budget.max_tool_calls} used up")
                reminder = f"Error: no tool calls left. Reply with {FINAL_ANSWER} now."
                messages += [ChatTurn("assistant", call), ChatTurn("user", reminder)]
                continue
            state.tool_calls += 1
            call_id = f"call_{uuid.uuid4().hex[:16]}"
            arguments = json.dumps(action.arguments, ensure_ascii=False)
            yield ToolCallEvent(step, action.tool, arguments, call_id)
            if action.tool in client_tools:
                span.set_attribute("quorum.tool_runs_on", "client")
                transcript.append(ToolStep(call_id, action.tool, action.arguments, action.thought, pending=True))
                detail = f"step {step} called the client tool {action.tool} (call id {call_id}): run it and continue"
                yield finish(None, StopReason.TOOL_CALL, detail)
                return
            outcome = await _call_tool(registry, action, span)
            results[action.signature()] = outcome
            transcript.append(
                ToolStep(call_id, action.tool, action.arguments, action.thought, outcome.output, outcome.error)
            )
            if outcome.ok:
                seen.append(outcome.output)
            yield ToolResultEvent(step, action.tool, outcome.output, outcome.error, outcome.latency_s, call_id)
            messages += [ChatTurn("assistant", call), ChatTurn("user", _observe(outcome, count))]
    reason, detail = cut or (StopReason.MAX_STEPS, f"max_steps={request.max_steps} model calls gave no final answer")
    yield finish(None, reason, detail)


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
