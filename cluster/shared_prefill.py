"""One prefill for the ``n`` choices of a request.

vLLM runs each of a request's ``n`` choices as its own sequence. A choice reuses
the prompt's KV blocks through the prefix cache only if they were cached when
the scheduler admitted it; choices admitted in the same scheduler step as the
first one all miss and each prefill the whole prompt (measured on vLLM 0.32:
anywhere from 0 to all 8 of an ``n = 8`` request's choices recomputed a cold
600-token prompt, depending on how the choices' arrival met the engine's step).

So before a request with ``n > 1`` goes in, the replica prefills the part of the
prompt the choices can hit (its whole KV blocks up to the last prompt token) as
a one-token request of its own, the way SGLang sends a prefill-only request
ahead of a parallel-sampling group. Every choice then hits that prefix and
computes only the prompt's last, partial block: ``prompt + (n - 1) * tail``
tokens in all, ``tail`` being at most one block. A warm prompt costs the
prefill request its last block only.
"""

from __future__ import annotations

from collections.abc import Sequence

from vllm import SamplingParams
from vllm.inputs import TokensPrompt
from vllm.sampling_params import RequestOutputKind
from vllm.v1.engine.async_llm import AsyncLLM


def shared_prefix(prompt_ids: Sequence[int], block_size: int) -> list[int]:
    """The prompt tokens the choices of one request can take from the prefix cache: the whole
    ``block_size`` blocks before the last prompt token (vLLM recomputes that token for its logits)."""
    if block_size <= 0:
        raise ValueError(f"block_size must be positive, got {block_size}")
    cut = (len(prompt_ids) - 1) // block_size * block_size if prompt_ids else 0
    return list(prompt_ids[:cut])


async def prefill_shared_prefix(engine: AsyncLLM, prompt_ids: Sequence[int], block_size: int, request_id: str) -> int:
    """Put the prompt's shareable blocks in the prefix cache; returns the prompt tokens this computed
    (the prefix minus its own cache hits). Cancelling the caller aborts the prefill in the engine."""
    prefix = shared_prefix(prompt_ids, block_size)
    if not prefix:
        return 0
    params = SamplingParams(
        n=1, max_tokens=1, temperature=0.0, detokenize=False, output_kind=RequestOutputKind.FINAL_ONLY
    )
    computed = len(prefix)
    async for output in engine.generate(TokensPrompt(prompt_token_ids=prefix), params, f"{request_id}-prefill"):
        computed = len(prefix) - (output.num_cached_tokens or 0)
    return computed
