from dataclasses import replace

import pytest

from quorum.reasoning.early_stop import EarlyStopping, StopRule
from quorum.reasoning.events import AnswerCount, SampleEvent, StopReason, VoteEvent
from quorum.reasoning.llm import SampleDelta, StreamChunk, TokenUsage
from quorum.reasoning.request import Budget, ReasonRequest, Strategy

from .fakes import USAGE, ScriptedClient, samples
from .helpers import of_type, reason

SC = ReasonRequest(question="What is 5 + 8?", strategy=Strategy.SELF_CONSISTENCY, samples=8)
BETA = EarlyStopping(StopRule.BETA, threshold=0.95)
AGREE_FIRST = ["So 5 + 8 = 13. The answer is 13."] * 4 + [
    "The answer is 14.",
    "The answer is 12.",
    "The answer is 14.",
    "The answer is 15.",
]


async def test_one_engine_request_with_n_equal_k() -> None:
    client = ScriptedClient([samples(AGREE_FIRST)])
    await reason(SC, client)
    (call,) = client.calls
    assert call.sampling.n == 8
    assert call.sampling.temperature == 0.7
    assert "step by step" in call.messages[-1].content


async def test_beta_rule_stops_after_four_agreeing_samples_and_aborts_the_rest() -> None:
    client = ScriptedClient([samples(AGREE_FIRST)])
    events, final = await reason(replace(SC, early_stopping=BETA), client)
    assert client.calls[0].aborted  # the stream was closed: the engine aborts the 4 unfinished samples
    assert final.samples_used == 4
    assert final.stop_reason is StopReason.CONSENSUS
    assert final.answer == "13"
    assert final.confidence == 1.0
    assert final.usage == TokenUsage()  # an aborted request reports no usage
    assert [sample.index for sample in of_type(events, SampleEvent)] == [0, 1, 2, 3]
    assert of_type(events, VoteEvent)[-1].counts == (AnswerCount("13", 4),)


async def test_without_early_stopping_all_samples_are_used() -> None:
    client = ScriptedClient([samples(AGREE_FIRST)])
    events, final = await reason(SC, client)
    assert not client.calls[0].aborted
    assert final.samples_used == 8
    assert final.stop_reason is StopReason.ANSWERED
    assert final.answer == "13"
    assert final.confidence == 4 / 8
    assert final.usage == USAGE
    votes = of_type(events, VoteEvent)
    assert len(votes) == 8
    assert votes[-1].counts == (
        AnswerCount("13", 4),
        AnswerCount("14", 2),
        AnswerCount("12", 1),
        AnswerCount("15", 1),
    )


async def test_each_finished_sample_is_followed_by_its_vote() -> None:
    client = ScriptedClient([samples(["The answer is 1.", "no idea", "The answer is 1."])])
    events, _ = await reason(replace(SC, samples=3), client)
    kinds = [type(event).__name__ for event in events]
    assert kinds == ["SampleEvent", "VoteEvent"] * 3 + ["FinalEvent"]
    first = events[0]
    assert first == SampleEvent(0, "The answer is 1.", "1", "stop")
    no_answer = events[3]
    assert isinstance(no_answer, VoteEvent)
    assert no_answer.unanswered == 1


async def test_beta_rule_does_not_stop_without_a_clear_leader() -> None:
    texts = [f"The answer is {value}." for value in (13, 14, 13, 14, 13, 14, 13, 14)]
    client = ScriptedClient([samples(texts)])
    _, final = await reason(replace(SC, early_stopping=BETA), client)
    assert final.samples_used == 8
    assert final.stop_reason is StopReason.ANSWERED
    assert final.answer == "13"  # a 4:4 tie goes to the answer that appeared first


async def test_esc_window_rule() -> None:
    texts = ["The answer is 14."] + ["The answer is 13."] * 7
    client = ScriptedClient([samples(texts)])
    _, final = await reason(replace(SC, early_stopping=EarlyStopping(StopRule.ESC, window=3)), client)
    assert client.calls[0].aborted
    assert final.samples_used == 4
    assert final.stop_reason is StopReason.CONSENSUS
    assert final.answer == "13"
    assert final.confidence == 3 / 4


async def test_min_samples_delays_the_stop() -> None:
    rule = EarlyStopping(StopRule.BETA, threshold=0.95, min_samples=6)
    client = ScriptedClient([samples(["The answer is 13."] * 8)])
    _, final = await reason(replace(SC, early_stopping=rule), client)
    assert final.samples_used == 6


async def test_the_last_sample_is_not_an_early_stop() -> None:
    client = ScriptedClient([samples(["The answer is 13."] * 4)])
    _, final = await reason(replace(SC, samples=4, early_stopping=BETA), client)
    assert not client.calls[0].aborted
    assert final.stop_reason is StopReason.ANSWERED


async def test_no_sample_has_an_answer() -> None:
    _, final = await reason(replace(SC, samples=2), ScriptedClient([samples(["hmm", "well"])]))
    assert (final.answer, final.stop_reason, final.confidence, final.samples_used) == (
        None,
        StopReason.NO_ANSWER,
        0,
        2,
    )


@pytest.mark.parametrize(("budget", "reason_"), [(8, StopReason.BUDGET_TOKENS), (4096, StopReason.NO_ANSWER)])
async def test_samples_cut_off_by_the_token_budget(budget: int, reason_: StopReason) -> None:
    cut_off = [
        StreamChunk((SampleDelta(0, "Let", True, "length"), SampleDelta(1, "So", True, "length")), USAGE),
    ]
    client = ScriptedClient([cut_off])
    _, final = await reason(replace(SC, samples=2, budget=Budget(max_tokens=budget)), client)
    assert client.calls[0].sampling.max_tokens == min(256, budget // 2)
    assert final.stop_reason is reason_
