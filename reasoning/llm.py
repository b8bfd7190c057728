"""The one thing the reasoning layer needs from a serving stack: an ``LLMClient``.

Strategies depend on this protocol only. In the cluster it is implemented over
Serve deployment handles (next to the engines); remotely, over the gRPC client.
Both live outside this package, so reasoning imports neither Ray nor gRPC.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from .errors import ReasoningInputError


@dataclass(frozen=True)
class ChatTurn:
    role: str  # "system", "user", "assistant" or "tool"
    content: str


@dataclass(frozen=True)
class Sampling:
    """Decoding settings of one engine request; ``n`` samples share one prompt prefill."""

    max_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    n: int = 1
    json_schema: str | None = None  # grammar-constrained decoding when set
    fit_context: bool = False  # lower max_tokens to the room the prompt leaves in the model's context
    frequency_penalty: float = 0.0  # subtracted from a token's logit per time it was already generated


@dataclass(frozen=True)
class SampleDelta:
    """New text of sample ``index``; ``finished`` is True on its last delta."""

    index: int
    text: str
    finished: bool = False
    finish_reason: str = ""  # "stop" or "length" once finished


@dataclass(frozen=True)
class TokenUsage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_prompt_tokens: int = 0
    computed_prompt_tokens: int = 0  # prompt tokens the engine computed over all n samples of the call

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.cached_prompt_tokens + other.cached_prompt_tokens,
            self.computed_prompt_tokens + other.computed_prompt_tokens,
        )


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
