from dataclasses import replace

from quorum.reasoning.answers import AnswerFormat
from quorum.reasoning.events import StepEvent, StopReason
from quorum.reasoning.llm import ChatTurn, TokenUsage
from quorum.reasoning.request import Budget, ReasonRequest, SamplingOverrides, Strategy
from quorum.reasoning.strategies import chain_of_thought

from .fakes import USAGE, ScriptedClient, reply
from .helpers import of_type, reason

DIRECT = ReasonRequest(question="What is 5 + 8?", strategy=Strategy.DIRECT)
COT = ReasonRequest(question="What is 5 + 8?", strategy=Strategy.CHAIN_OF_THOUGHT)


async def test_direct_streams_one_greedy_answer() -> None:
    client = ScriptedClient([reply("The answer is 13.")])
    events, final = await reason(DIRECT, client)
    steps = of_type(events, StepEvent)
    assert "".join(step.text for step in steps) == "The answer is 13."
    assert {step.step for step in steps} == {1}
    assert (final.answer, final.stop_reason, final.samples_used, final.confidence) == ("13", StopReason.ANSWERED, 1, 1)
    assert final.usage == USAGE
    (call,) = client.calls
    assert call.sampling.temperature == 0
    assert call.sampling.n == 1
    assert call.sampling.max_tokens == 64
    assert call.messages[-1].role == "user"
    assert call.messages[-1].content.startswith("What is 5 + 8?")
    assert "only the answer (a number)" in call.messages[-1].content


async def test_chain_of_thought_asks_for_steps_and_extracts_the_answer() -> None:
    thoughts = "First, 5 + 8 = 13.\nThe answer is 13."
    client = ScriptedClient([reply(thoughts, pieces=5)])
    events, final = await reason(COT, client)
    assert "".join(step.text for step in of_type(events, StepEvent)) == thoughts
    assert final.answer == "13"
    prompt = client.calls[0].messages[-1].content
    assert "step by step" in prompt
    assert '"The answer is X."' in prompt


async def test_prior_messages_come_before_the_question() -> None:
    history = (ChatTurn("system", "Be brief."), ChatTurn("user", "Hi"), ChatTurn("assistant", "Hello"))
    client = ScriptedClient([reply("13")])
    await reason(replace(DIRECT, messages=history), client)
    assert client.calls[0].messages[:3] == list(history)


async def test_overrides_replace_defaults() -> None:
    overrides = SamplingOverrides(temperature=0.3, top_p=0.9, max_tokens=20, seed=7)
    client = ScriptedClient([reply("13")])
    await reason(replace(COT, sampling=overrides), client)
    sampling = client.calls[0].sampling
    assert (sampling.temperature, sampling.top_p, sampling.max_tokens, sampling.seed) == (0.3, 0.9, 20, 7)


async def test_no_answer() -> None:
    _, final = await reason(COT, ScriptedClient([reply("I do not know.")]))
    assert (final.answer, final.stop_reason, final.confidence) == (None, StopReason.NO_ANSWER, 0)


async def test_cut_off_by_the_token_budget() -> None:
    client = ScriptedClient([reply("Let me think about", finish_reason="length")])
    _, final = await reason(replace(COT, budget=Budget(max_tokens=10)), client)
    assert client.calls[0].sampling.max_tokens == 10
    assert final.stop_reason is StopReason.BUDGET_TOKENS
    assert "budget.max_tokens=10" in final.detail


async def test_cut_off_by_the_per_call_limit_is_no_answer() -> None:
    at_limit = TokenUsage(prompt_tokens=100, completion_tokens=chain_of_thought.MAX_TOKENS)
    client = ScriptedClient([reply("Let me think about", finish_reason="length", usage=at_limit)])
    _, final = await reason(COT, client)
    assert final.stop_reason is StopReason.NO_ANSWER


async def test_cut_off_by_the_end_of_the_context() -> None:
    # fit_context: the engine lowered max_tokens to the 40 tokens the long conversation left
    short = TokenUsage(prompt_tokens=2008, completion_tokens=40)
    client = ScriptedClient([reply("Let me think about", finish_reason="length", usage=short)])
    _, final = await reason(COT, client)
    assert client.calls[0].sampling.fit_context
    assert (final.answer, final.stop_reason) == (None, StopReason.CONTEXT_FULL)
    assert "2008 prompt + 40 generated tokens" in final.detail


async def test_choice_answers() -> None:
    request = replace(DIRECT, answer_format=AnswerFormat.CHOICE, choices=("A", "B", "C"))
    client = ScriptedClient([reply("Answer: b")])
    _, final = await reason(request, client)
    assert final.answer == "B"
    assert "one of A, B, C" in client.calls[0].messages[-1].content
