"""``reasoning.llm.LLMClient`` over the cluster's model deployments.

The reasoning deployment uses this adapter to reach the engines through Serve
handles (no gRPC hop): a self-consistency group is one engine request with
``n = k`` that shares one prompt prefill, and closing the stream early aborts
the request, with its unfinished samples, inside the engine.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence

from quorum.cluster.dispatch import ModelDispatcher
from quorum.cluster.errors import ContextOverflow
from quorum.cluster.telemetry import inject_context
from quorum.cluster.types import GenerationRequest, Message, OutputConstraint, SamplingOptions
from quorum.reasoning.llm import ChatTurn, ContextFullError, SampleDelta, Sampling, StreamChunk, TokenUsage


def _options(sampling: Sampling) -> SamplingOptions:
    constraint = None
    if sampling.json_schema is not None:
        # A strategy's grammar (ReAct's actions): built by the server around the request's client tools.
        constraint = OutputConstraint(json_schema=sampling.json_schema, source="client_tools")
    return SamplingOptions(
        max_tokens=sampling.max_tokens,
        temperature=sampling.temperature,
        top_p=sampling.top_p,
        seed=sampling.seed,
        stop=sampling.stop,
        n=sampling.n,
        constraint=constraint,
        fit_context=sampling.fit_context,
        frequency_penalty=sampling.frequency_penalty,
    )


class DispatcherLLMClient:
    """Streams chat completions through a :class:`ModelDispatcher`."""

    def __init__(self, dispatcher: ModelDispatcher) -> None:
        self._dispatcher = dispatcher

    async def chat_stream(
        self, model: str, messages: Sequence[ChatTurn], sampling: Sampling
    ) -> AsyncIterator[StreamChunk]:
        model_id = self._dispatcher.resolve(model)
        request = GenerationRequest(
            request_id=uuid.uuid4().hex,
            sampling=_options(sampling),
            messages=tuple(Message(role=turn.role, content=turn.content) for turn in messages),
            stream=True,
            trace_context=inject_context(),
        )
        stream = self._dispatcher.stream(model_id, request)
        try:
            async for chunk in stream:
                deltas = tuple(
                    SampleDelta(
                        index=choice.index,
                        text=choice.text,
                        finished=choice.finish_reason is not None,
                        finish_reason=choice.finish_reason.value if choice.finish_reason is not None else "",
                    )
                    for choice in chunk.choices
                )
                usage = None
                if chunk.usage is not None:
                    usage = TokenUsage(
                        prompt_tokens=chunk.usage.prompt_tokens,
                        completion_tokens=chunk.usage.completion_tokens,
                        cached_prompt_tokens=chunk.usage.cached_prompt_tokens,
                        computed_prompt_tokens=chunk.usage.computed_prompt_tokens,
                    )
                yield StreamChunk(deltas=deltas, usage=usage)
        except ContextOverflow as error:
            raise ContextFullError(
                f"with the strategy's instructions, worked examples and the question, the prompt {error.problem}"
            ) from None
        finally:
            await stream.aclose()
