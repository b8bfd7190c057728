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
from quorum.cluster.types import GenerationRequest
from quorum.reasoning.llm import ChatTurn, ContextFullError, SampleDelta, Sampling, StreamChunk


class DispatcherLLMClient:
    """Streams chat completions through a :class:`ModelDispatcher`."""

    def __init__(self, dispatcher: ModelDispatcher) -> None:
        self._dispatcher = dispatcher

    async def chat_stream(
        self, model: str, messages: Sequence[ChatTurn], sampling: Sampling
    ) -> AsyncIterator[StreamChunk]:
        request = GenerationRequest(
            request_id=uuid.uuid4().hex,
            sampling=sampling,
            messages=tuple(messages),
            stream=True,
            trace_context=inject_context(),
        )
        stream = self._dispatcher.stream(model, request)  # a Reason run's model: resolved by its gate
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
                yield StreamChunk(deltas=deltas, usage=chunk.usage)
        except ContextOverflow as error:
            raise ContextFullError(
                f"with the strategy's instructions, worked examples and the question, the prompt {error.problem}"
            ) from None
        finally:
            await stream.aclose()
