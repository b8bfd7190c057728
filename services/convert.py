"""Conversion between the quorum.v1 wire messages and the cluster's plain types."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from quorum.cluster.types import (
    ChoiceDelta,
    FinishReason,
    GenerationChunk,
    Message,
    OutputConstraint,
    SamplingOptions,
    TokenLogprob,
    Usage,
)
from quorum.v1 import inference_pb2 as pb

_FINISH = {
    None: pb.FINISH_REASON_UNSPECIFIED,
    FinishReason.STOP: pb.FINISH_REASON_STOP,
    FinishReason.LENGTH: pb.FINISH_REASON_LENGTH,
}


def sampling_from_proto(params: pb.SamplingParams) -> SamplingOptions:
    """Apply the documented defaults of unset fields; range checks happen in cluster.validation."""
    constraint = None
    kind = params.constraint.WhichOneof("kind")
    if kind == "json_schema":
        constraint = OutputConstraint(json_schema=params.constraint.json_schema)
    elif kind == "regex":
        constraint = OutputConstraint(regex=params.constraint.regex)
    elif kind == "choice":
        constraint = OutputConstraint(choice=tuple(params.constraint.choice.values))
    return SamplingOptions(
        max_tokens=params.max_tokens or None,
        temperature=params.temperature if params.HasField("temperature") else 1.0,
        top_p=params.top_p if params.HasField("top_p") else 1.0,
        top_k=params.top_k,
        seed=params.seed if params.HasField("seed") else None,
        stop=tuple(params.stop),
        n=params.n or 1,
        presence_penalty=params.presence_penalty,
        frequency_penalty=params.frequency_penalty,
        repetition_penalty=params.repetition_penalty if params.HasField("repetition_penalty") else 1.0,
        min_tokens=params.min_tokens,
        logprobs=params.logprobs if params.HasField("logprobs") else None,
        constraint=constraint,
    )


def messages_from_proto(messages: Iterable[pb.ChatMessage]) -> tuple[Message, ...]:
    return tuple(Message(role=m.role, content=m.content) for m in messages)


def _logprobs_to_proto(logprobs: Sequence[TokenLogprob]) -> list[pb.TokenLogprob]:
    return [
        pb.TokenLogprob(
            token=lp.token,
            token_id=lp.token_id,
            logprob=lp.logprob,
            top=[pb.TopLogprob(token=t.token, token_id=t.token_id, logprob=t.logprob) for t in lp.top],
        )
        for lp in logprobs
    ]


def choice_to_proto(choice: ChoiceDelta) -> pb.Choice:
    return pb.Choice(
        index=choice.index,
        text=choice.text,
        finish_reason=_FINISH[choice.finish_reason],
        logprobs=_logprobs_to_proto(choice.logprobs),
    )


def usage_to_proto(usage: Usage) -> pb.Usage:
    return pb.Usage(
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        cached_prompt_tokens=usage.cached_prompt_tokens,
    )


def merge_chunks(chunks: Iterable[GenerationChunk]) -> tuple[list[pb.Choice], pb.Usage]:
    """Whole choices (ordered by index) and usage from a sequence of chunks."""
    texts: dict[int, list[str]] = {}
    finish: dict[int, FinishReason | None] = {}
    logprobs: dict[int, list[TokenLogprob]] = {}
    usage = Usage()
    for chunk in chunks:
        for choice in chunk.choices:
            texts.setdefault(choice.index, []).append(choice.text)
            logprobs.setdefault(choice.index, []).extend(choice.logprobs)
            if choice.finish_reason is not None:
                finish[choice.index] = choice.finish_reason
        if chunk.usage is not None:
            usage = chunk.usage
    choices = [
        choice_to_proto(
            ChoiceDelta(index=i, text="".join(texts[i]), finish_reason=finish.get(i), logprobs=tuple(logprobs[i]))
        )
        for i in sorted(texts)
    ]
    return choices, usage_to_proto(usage)
