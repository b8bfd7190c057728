"""ReAct's step outcomes: what one decoded reply amounts to, and the decision the run takes on it."""

from __future__ import annotations

import json

import pytest

from quorum.reasoning.events import StopReason, ToolCallEvent
from quorum.reasoning.llm import Sampling, TokenUsage
from quorum.reasoning.strategies.common import Completion
from quorum.reasoning.strategies.react import (
    MAX_TOKENS,
    Answered,
    ClientCall,
    ContextFilled,
    CutIgnored,
    NoCallsLeft,
    OutOfTokens,
    Repeated,
    ServerCall,
    StepOutcome,
    Unusable,
    parse_action,
)
from quorum.reasoning.strategies.react import classify as classify_step
from quorum.reasoning.tools import FINAL_ANSWER, ToolOutcome

from .fakes import ANSWER, CALCULATE, ScriptedClient, action, reply
from .helpers import of_type, reason
from .test_react import REACT

ALLOWED = ("calculator", "get_weather", FINAL_ANSWER)
LOOP = (StopReason.LOOP_DETECTED, "step 2 repeated the call ...")
PRODUCT = ToolOutcome(output="7006652")


def classify(
    text: str,
    *,
    finish_reason: str = "stop",
    usage: TokenUsage | None = None,
    max_tokens: int = MAX_TOKENS,
    cut: tuple[StopReason, str] | None = None,
    results: dict[str, ToolOutcome] | None = None,
    tool_calls_left: int = 8,
) -> StepOutcome:
    """The outcome of a step whose model call wrote ``text`` (``max_tokens``: its limit after the budget)."""
    completion = Completion(text, finish_reason, usage or TokenUsage(100, 20))
    return classify_step(
        completion,
        Sampling(max_tokens=max_tokens),
        allowed=ALLOWED,
        call_limit=MAX_TOKENS,
        cut=cut,
        results=results or {},
        tool_calls_left=tool_calls_left,
        client_tools={"get_weather"},
    )


def signature(text: str) -> str:
    return parse_action(text, ALLOWED).signature()


def test_a_final_answer_is_answered_even_after_a_cut() -> None:
    assert classify(ANSWER) == Answered(parse_action(ANSWER, ALLOWED))
    assert classify(ANSWER, cut=LOOP) == Answered(parse_action(ANSWER, ALLOWED))


def test_a_tool_call_after_a_cut_ends_the_run_with_the_cuts_reason() -> None:
    other = action("calculator", expression="2 + 2")
    assert classify(other, cut=LOOP) == CutIgnored(parse_action(other, ALLOWED), *LOOP)


def test_a_call_made_before_is_a_loop_whatever_its_spacing_and_budget() -> None:
    results = {signature(CALCULATE): PRODUCT}
    again = action("calculator", expression="1234*5678")
    assert classify(again, results=results) == Repeated(parse_action(again, ALLOWED), PRODUCT)
    assert classify(again, results=results, tool_calls_left=0) == Repeated(parse_action(again, ALLOWED), PRODUCT)


def test_a_new_call_past_the_tool_call_budget_is_cut() -> None:
    assert classify(CALCULATE, tool_calls_left=0) == NoCallsLeft(parse_action(CALCULATE, ALLOWED))


def test_a_new_call_runs_on_the_server_or_the_client() -> None:
    weather = action("get_weather", city="Paris")
    assert classify(CALCULATE) == ServerCall(parse_action(CALCULATE, ALLOWED))
    assert classify(weather) == ClientCall(parse_action(weather, ALLOWED))


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("I will multiply.", "the reply is not valid JSON"),
        (action("shell", cmd="ls"), "there is no tool 'shell'"),
        (json.dumps({"tool": FINAL_ANSWER, "arguments": {}}), 'needs the arguments {"answer": ...}'),
    ],
)
def test_an_unusable_reply_is_fed_back_with_the_reason(text: str, problem: str) -> None:
    outcome = classify(text)
    assert isinstance(outcome, Unusable)
    assert outcome.text == text
    assert problem in outcome.error


def test_a_reply_cut_off_by_the_end_of_the_context_fills_it() -> None:
    full = TokenUsage(prompt_tokens=2036, completion_tokens=12)
    outcome = classify('{"tool": "final_', finish_reason="length", usage=full)
    assert isinstance(outcome, ContextFilled)
    assert "2036 prompt + 12 generated tokens" in outcome.detail


def test_a_reply_cut_off_by_the_token_budget_is_out_of_tokens() -> None:
    lowered = TokenUsage(prompt_tokens=100, completion_tokens=10)
    assert classify('{"tool": "final_', finish_reason="length", usage=lowered, max_tokens=10) == OutOfTokens()


def test_a_reply_that_runs_to_the_steps_own_limit_is_fed_back() -> None:
    rambling = TokenUsage(prompt_tokens=100, completion_tokens=MAX_TOKENS)
    outcome = classify('{"thought": "4288 liters: 4288 liters: 4288', finish_reason="length", usage=rambling)
    assert isinstance(outcome, Unusable)


async def test_after_a_rambling_step_the_run_goes_on_and_answers() -> None:
    rambling = reply('{"thought": "4288 liters: 4288', finish_reason="length", usage=TokenUsage(100, MAX_TOKENS))
    client = ScriptedClient([rambling, reply(CALCULATE), reply(ANSWER)])
    events, final = await reason(REACT, client)
    assert (final.answer, final.stop_reason) == ("7006652", StopReason.ANSWERED)
    assert client.calls[1].messages[-1].content.startswith("Error: the reply is not valid JSON")
    assert [call.step for call in of_type(events, ToolCallEvent)] == [2]


async def test_a_tool_call_after_a_cut_runs_nothing_and_keeps_the_cuts_reason() -> None:
    other = action("calculator", expression="7006652 + 1")
    client = ScriptedClient([reply(CALCULATE), reply(CALCULATE), reply(other)])
    events, final = await reason(REACT, client)
    assert len(of_type(events, ToolCallEvent)) == 1
    assert (final.answer, final.stop_reason) == (None, StopReason.LOOP_DETECTED)
    assert final.detail.startswith("step 2 repeated the call")
