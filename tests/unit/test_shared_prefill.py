"""The prompt part an n>1 request's choices can share through the prefix cache (cluster.shared_prefill)."""

from __future__ import annotations

import pytest

from quorum.cluster.shared_prefill import shared_prefix


@pytest.mark.parametrize(
    ("length", "shared"),
    [(0, 0), (1, 0), (32, 0), (33, 32), (64, 32), (65, 64), (607, 576), (609, 608)],
)
def test_whole_blocks_before_the_last_prompt_token(length: int, shared: int) -> None:
    # vLLM recomputes the last prompt token for its logits, so a 64-token prompt can share one block only.
    prompt = list(range(100, 100 + length))
    assert shared_prefix(prompt, 32) == prompt[:shared]


def test_block_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="block_size"):
        shared_prefix([1, 2, 3], 0)
