"""The one thing the reasoning layer needs from a serving stack: an ``LLMClient``.

Strategies depend on this protocol only. In the cluster it is implemented over
Serve deployment handles (next to the engines); remotely, over the gRPC client.
Both live outside this package, so reasoning imports neither Ray nor gRPC.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from quorum.cluster.types import Message, SamplingOptions, Usage

from .errors import ReasoningInputError

# NOTE: an LLM call is the cluster's plain data (quorum.cluster.types, which imports neither Ray nor vLLM):
# the names below are the reasoning layer's words for the same types, not copies of them.
ChatTurn = Message  # one turn of the conversation: role ("system", "user", "assistant" or "tool") and content
TokenUsage = Usage


@dataclass(frozen=True)
class Sampling(SamplingOptions):
    """The cluster's :class:`SamplingOptions` of one engine request (``n`` samples share one prompt prefill),
    with ``max_tokens`` always set: a strategy bounds every call by its token budget."""

    max_tokens: int = 256


@dataclass(frozen=True)
class SampleDelta:
    """New text of sample ``index``; ``finished`` is True on its last delta."""

    index: int
    text: str
    finished: bool = False
    finish_reason: str = ""  # "stop" or "length" once finished


@dataclass(frozen=True)
class StreamChunk:
    """One piece of a streamed answer; the last chunk of a request carries ``usage``."""

    deltas: tuple[SampleDelta, ...]
    usage: TokenUsage | None = None


class ContextFullError(ReasoningInputError):
    """``chat_stream`` raises it when the messages alone fill the model's context (max_model_len).

    Before a run's first model call it is the request's fault (INVALID_ARGUMENT on ``messages``); a
    multi-step strategy whose own turns filled the context ends with ``StopReason.CONTEXT_FULL`` instead.
    """

    def __init__(self, problem: str, field: str = "messages") -> None:
        super().__init__(field, problem)

    def __reduce__(self) -> tuple[type, tuple[str, str]]:
        return (type(self), (self.problem, self.field))


class LLMClient(Protocol):
    """Streams chat completions from a served model.

    Contract:
    - ``chat_stream`` yields chunks until every one of the ``sampling.n`` samples
      has finished; the last chunk carries ``usage`` for the whole request.
    - Closing the iterator early (``aclose()``, or cancelling the consuming task)
      aborts the engine request, including samples that have not finished: this
      is how early stopping saves work.
    - ``sampling.fit_context`` lowers ``max_tokens`` to the room the messages leave in the
      model's context; messages that fill it raise :class:`ContextFullError`.
    - Errors are raised as exceptions carrying a user-actionable message.
    """

    def chat_stream(self, model: str, messages: Sequence[ChatTurn], sampling: Sampling) -> AsyncIterator[StreamChunk]:
        """Stream the answer to ``messages`` from ``model`` (empty string: the default model)."""
        ...
