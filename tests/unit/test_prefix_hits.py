"""Usage of an engine request with n choices: prefill work counted per choice (cluster.engine.PrefixHits)."""

from __future__ import annotations

from vllm.outputs import CompletionOutput, RequestOutput

from quorum.cluster.engine import PrefixHits


def output(indices: list[int], cached: int, finished: bool = False) -> RequestOutput:
    choices = [
        CompletionOutput(index=i, text="x", token_ids=[1], cumulative_logprob=None, logprobs=None) for i in indices
    ]
    return RequestOutput("r", None, [1] * 87, None, choices, finished, num_cached_tokens=cached)


def test_streamed_choices_each_count_their_own_prefill() -> None:
    # What vLLM reports for an 87-token prompt with n=4 at block size 32: the first choice computes the
    # whole prompt, its siblings find its two full blocks (64 tokens) and compute the 23-token tail.
    hits = PrefixHits(prompt_tokens=87, n=4)
    for index, cached in ((0, 0), (1, 64), (2, 64), (3, 64)):
        hits.observe(output([index], cached))
    hits.observe(output([2], 64, finished=True))
    usage = hits.usage(completion_tokens=40)
    assert (usage.prompt_tokens, usage.completion_tokens, usage.cached_prompt_tokens) == (87, 40, 0)
    assert usage.computed_prompt_tokens == 87 + 3 * 23


def test_one_choice_is_prompt_minus_its_hits() -> None:
    hits = PrefixHits(prompt_tokens=87, n=1)
    hits.observe(output([0], 64, finished=True))
    usage = hits.usage(completion_tokens=5)
    assert (usage.cached_prompt_tokens, usage.computed_prompt_tokens) == (64, 23)


def test_an_aggregate_output_applies_its_hits_to_every_choice() -> None:
    hits = PrefixHits(prompt_tokens=100, n=3)
    hits.observe(output([0, 1, 2], 96, finished=True))
    assert hits.usage(completion_tokens=3).computed_prompt_tokens == 3 * 4


def test_no_output_yet_counts_the_whole_prompt_per_choice() -> None:
    assert PrefixHits(prompt_tokens=10, n=2).usage(completion_tokens=0).computed_prompt_tokens == 20


def test_the_shared_prefill_is_added_to_the_choices_work() -> None:
    # After the replica prefilled the 64 shareable tokens, all four choices hit them and compute the tail.
    hits = PrefixHits(prompt_tokens=87, n=4, prefill_tokens=64)
    for index in range(4):
        hits.observe(output([index], 64))
    assert hits.usage(completion_tokens=4).computed_prompt_tokens == 64 + 4 * 23
