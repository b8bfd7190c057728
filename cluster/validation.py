"""Checks on request fields that need no model: ranges and sizes.

Checks that need the tokenizer (prompt length, max_tokens against the context)
run in the LLM server; see :func:`check_context`.
"""

from __future__ import annotations

import math

from .config import ConstraintsConfig
from .constraints import check_constraint
from .errors import ContextOverflow, InvalidArgument
from .types import CHAT_ROLES, Message, SamplingOptions, temperature_problem, top_p_problem

MAX_STOP_STRINGS = 16
MAX_LOGPROBS = 20
DEFAULT_CONSTRAINTS = ConstraintsConfig()


def _finite(field: str, value: float) -> None:
    if not math.isfinite(value):
        raise InvalidArgument(field, f"must be a finite number, got {value}")


def check_sampling(sampling: SamplingOptions, max_n: int, limits: ConstraintsConfig = DEFAULT_CONSTRAINTS) -> None:
    """Raise :class:`InvalidArgument` naming the first field out of range (the constraint within ``limits``)."""
    for name, problem in (
        ("sampling.temperature", temperature_problem(sampling.temperature)),
        ("sampling.top_p", top_p_problem(sampling.top_p)),
    ):
        if problem is not None:
            raise InvalidArgument(name, problem)
    if sampling.top_k < 0:
        raise InvalidArgument("sampling.top_k", f"must be >= 0 (0 disables it), got {sampling.top_k}")
    if not 1 <= sampling.n <= max_n:
        raise InvalidArgument("sampling.n", f"must be between 1 and {max_n} (gateway.max_n), got {sampling.n}")
    if sampling.n > 1 and sampling.temperature == 0:
        raise InvalidArgument(
            "sampling.n",
            f"greedy decoding (temperature 0) has one answer: use n=1 or a temperature > 0, got n={sampling.n}",
        )
    for name, value in (
        ("sampling.presence_penalty", sampling.presence_penalty),
        ("sampling.frequency_penalty", sampling.frequency_penalty),
    ):
        _finite(name, value)
        if not -2 <= value <= 2:
            raise InvalidArgument(name, f"must be in [-2, 2], got {value:g}")
    _finite("sampling.repetition_penalty", sampling.repetition_penalty)
    if sampling.repetition_penalty <= 0:
        raise InvalidArgument("sampling.repetition_penalty", f"must be > 0, got {sampling.repetition_penalty:g}")
    if len(sampling.stop) > MAX_STOP_STRINGS:
        raise InvalidArgument("sampling.stop", f"at most {MAX_STOP_STRINGS} stop strings, got {len(sampling.stop)}")
    if any(not s for s in sampling.stop):
        raise InvalidArgument("sampling.stop", "stop strings must not be empty")
    if sampling.logprobs is not None and not 0 <= sampling.logprobs <= MAX_LOGPROBS:
        raise InvalidArgument("sampling.logprobs", f"must be between 0 and {MAX_LOGPROBS}, got {sampling.logprobs}")
    if sampling.max_tokens is not None and sampling.min_tokens > sampling.max_tokens:
        raise InvalidArgument(
            "sampling.min_tokens", f"{sampling.min_tokens} exceeds sampling.max_tokens {sampling.max_tokens}"
        )
    if sampling.constraint is not None:
        check_constraint(sampling.constraint, limits)


def check_prompt(prompt: str, max_chars: int) -> None:
    if not prompt:
        raise InvalidArgument("prompt", "must not be empty")
    if len(prompt) > max_chars:
        raise InvalidArgument("prompt", f"is {len(prompt)} characters; the limit is {max_chars}")


def check_messages(messages: tuple[Message, ...], max_chars: int) -> None:
    if not messages:
        raise InvalidArgument("messages", "a chat needs at least one message")
    total = 0
    for i, message in enumerate(messages):
        if message.role not in CHAT_ROLES:
            raise InvalidArgument(
                f"messages[{i}].role", f"must be one of {', '.join(CHAT_ROLES)}, got '{message.role}'"
            )
        total += len(message.content)
    if total > max_chars:
        raise InvalidArgument("messages", f"hold {total} characters; the limit is {max_chars}")


def check_context(
    prompt_tokens: int,
    max_tokens: int | None,
    default_max_tokens: int,
    max_model_len: int,
    model_id: str,
    *,
    fit: bool = False,
) -> int:
    """Return the max_tokens to use, or raise if the prompt or the request does not fit the context.
    With ``fit`` a ``max_tokens`` larger than the room left is lowered to it (the prompt must still fit)."""
    if prompt_tokens >= max_model_len:
        raise ContextOverflow(
            "prompt",
            f"is {prompt_tokens} tokens; model '{model_id}' has a context of {max_model_len} tokens "
            "(max_model_len) for prompt and answer together: shorten the prompt",
        )
    room = max_model_len - prompt_tokens
    if max_tokens is None:
        return min(default_max_tokens, room)
    if max_tokens > room:
        if fit:
            return room
        raise InvalidArgument(
            "sampling.max_tokens",
            f"{max_tokens} does not fit: the prompt uses {prompt_tokens} of the {max_model_len}-token context "
            f"of model '{model_id}', leaving {room}; ask for at most {room}",
        )
    return max_tokens
