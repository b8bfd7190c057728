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
    ToolCall,
    ToolChoice,
    ToolChoiceMode,
    ToolSpec,
    Usage,
)
from quorum.v1 import inference_pb2 as pb

from .generation import merge_deltas

_FINISH = {
    None: pb.FINISH_REASON_UNSPECIFIED,
    FinishReason.STOP: pb.FINISH_REASON_STOP,
    FinishReason.LENGTH: pb.FINISH_REASON_LENGTH,
    FinishReason.TOOL_CALLS: pb.FINISH_REASON_TOOL_CALLS,
}
_TOOL_MODE = {
    pb.TOOL_CHOICE_MODE_UNSPECIFIED: ToolChoiceMode.AUTO,
    pb.TOOL_CHOICE_MODE_AUTO: ToolChoiceMode.AUTO,
    pb.TOOL_CHOICE_MODE_NONE: ToolChoiceMode.NONE,
    pb.TOOL_CHOICE_MODE_REQUIRED: ToolChoiceMode.REQUIRED,
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
        fit_context=params.fit_context,
    )


def _calls_from_proto(calls: Iterable[pb.ToolCallRequest]) -> tuple[ToolCall, ...]:
    return tuple(ToolCall(id=c.id, name=c.name, arguments_json=c.arguments_json) for c in calls)


def _calls_to_proto(calls: Iterable[ToolCall]) -> list[pb.ToolCallRequest]:
    return [pb.ToolCallRequest(id=c.id, name=c.name, arguments_json=c.arguments_json) for c in calls]


def messages_from_proto(messages: Iterable[pb.ChatMessage]) -> tuple[Message, ...]:
    return tuple(
        Message(role=m.role, content=m.content, tool_calls=_calls_from_proto(m.tool_calls), tool_call_id=m.tool_call_id)
        for m in messages
    )


def tools_from_proto(
    tools: Iterable[pb.ToolDefinition], choice: pb.ToolChoice
) -> tuple[tuple[ToolSpec, ...], ToolChoice]:
    """Declared tools and the tool choice; unknown enum numbers are AUTO (validation happens in cluster)."""
    specs = tuple(
        ToolSpec(name=t.name, description=t.description, parameters_json_schema=t.parameters_json_schema) for t in tools
    )
    return specs, ToolChoice(mode=_TOOL_MODE.get(choice.mode, ToolChoiceMode.AUTO), name=choice.name)


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
        tool_calls=_calls_to_proto(choice.tool_calls),
    )


def usage_to_proto(usage: Usage) -> pb.Usage:
    return pb.Usage(
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        cached_prompt_tokens=usage.cached_prompt_tokens,
        computed_prompt_tokens=usage.computed_prompt_tokens,
    )


def merge_chunks(chunks: Iterable[GenerationChunk]) -> tuple[list[pb.Choice], pb.Usage]:
    """Whole choices (ordered by index) and usage from a sequence of chunks."""
    choices, usage = merge_deltas(chunks)
    return [choice_to_proto(choice) for choice in choices], usage_to_proto(usage)
