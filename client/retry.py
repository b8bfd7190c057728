"""When the SDK tries a failed call again, and how long it waits first.

The gateway answers an overloaded or restarting cluster with RESOURCE_EXHAUSTED or UNAVAILABLE and a
``google.rpc.RetryInfo`` detail saying when to come back (``services/status.py``); the clients of
``quorum.client.sdk`` wait that long and try again, within a :class:`RetryPolicy`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED})
# The errors that carry a status: the sync stubs raise grpc.Call objects, the asyncio ones AioRpcError.
StatusError = grpc.Call | grpc.aio.AioRpcError


def server_retry_delay(error: grpc.RpcError) -> float | None:
    """The ``retry_delay`` (seconds) of the ``google.rpc.RetryInfo`` detail ``error`` carries, else None."""
    if not isinstance(error, StatusError):
        return None
    try:
        status = rpc_status.from_call(error)  # type: ignore[arg-type]  # AioRpcError has the same three methods
    except ValueError:  # a details trailer that disagrees with the status code: ignore the details
        return None
    if status is None:
        return None
    for detail in status.details:
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            return float(info.retry_delay.ToNanoseconds()) / 1e9
    return None


@dataclass(frozen=True)
class RetryPolicy:
    """Which failed calls are tried again, and when.

    A call that failed with UNAVAILABLE, or with RESOURCE_EXHAUSTED that carries the server's RetryInfo,
    is tried again after the server's ``retry_delay``; without one, after an exponential backoff with full
    jitter (a random wait up to ``initial_backoff_s * backoff_multiplier ** (attempt - 1)``). A call is
    tried at most ``max_attempts`` times in all, never waits longer than ``max_delay_s`` (a server asking
    for a longer wait gets the error raised instead of an early retry), and never waits past its deadline.
    RESOURCE_EXHAUSTED without RetryInfo (such as a message over the size limit, raised by grpc itself) and
    every other status are raised at once. Streams are retried only when they failed before their first
    response: what was already received is never repeated.
    """

    max_attempts: int = 3
    initial_backoff_s: float = 0.5
    backoff_multiplier: float = 2.0
    max_delay_s: float = 10.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts: must be at least 1 (1 = no retries), got {self.max_attempts}")
        for name in ("initial_backoff_s", "backoff_multiplier", "max_delay_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: must not be negative, got {getattr(self, name)}")

    def delay(self, error: grpc.RpcError, attempt: int, remaining_s: float | None) -> float | None:
        """Seconds to wait before trying again after ``error`` ended try number ``attempt`` (from 1), with
        ``remaining_s`` left before the call's deadline (None: no deadline); None when it must not retry."""
        if attempt >= self.max_attempts or not isinstance(error, StatusError):
            return None
        code = error.code()
        if code not in RETRYABLE:
            return None
        delay = server_retry_delay(error)
        if delay is None:
            if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
                return None
            backoff = self.initial_backoff_s * self.backoff_multiplier ** (attempt - 1)
            delay = random.uniform(0, min(backoff, self.max_delay_s))
        if delay > self.max_delay_s or (remaining_s is not None and delay >= remaining_s):
            return None
        return delay


NO_RETRY = RetryPolicy(max_attempts=1)
