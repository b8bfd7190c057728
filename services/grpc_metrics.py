"""A request counter for the gateway's gRPC API: every quorum RPC by method and final status code.

The gateway's server is grpc.aio of our own, not Serve's gRPC proxy, so Serve's request metrics do not
see it. :class:`RequestCounter` is its outermost interceptor: it sees every call to a ``quorum.*``
service, including those the bearer-token check refuses, and records the status the client receives.
In the cluster the count goes to ``ray.serve.metrics.Counter`` ``quorum_grpc_requests``, which Ray's
metrics agent exports as ``ray_quorum_grpc_requests_total{method, code}`` (plus Serve's
``deployment``, ``replica`` and ``application`` labels).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from ray.serve import metrics as serve_metrics

from .interceptors import CallInterceptor, Context, Handler, Streaming, Unary, rebuild_handler

Record = Callable[[str, str], None]  # (method, status code name)

REQUESTS_METRIC = "quorum_grpc_requests"
# NOTE: a client whose deadline passes cancels the call before the server's own deadline (set when the
# request arrived, so a little later) expires: a cancel this close to the deadline counts as DEADLINE_EXCEEDED.
DEADLINE_SLACK_S = 1.0


def final_code(context: Context, error: BaseException | None) -> grpc.StatusCode:
    """The status a client receives for a handler that returned (``error`` None) or raised ``error``."""
    if isinstance(error, asyncio.CancelledError | GeneratorExit):  # the call ended before the handler
        remaining = context.time_remaining()
        expired = remaining is not None and remaining <= DEADLINE_SLACK_S
        return grpc.StatusCode.DEADLINE_EXCEEDED if expired else grpc.StatusCode.CANCELLED
    code = context.code()
    if code is not None:
        return code
    return grpc.StatusCode.OK if error is None else grpc.StatusCode.UNKNOWN


def _counted(handler: Handler, method: str, record: Record) -> Handler:
    def done(context: Context, error: BaseException | None) -> None:
        record(method, final_code(context, error).name)

    def unary(behavior: Unary) -> Unary:
        async def call(request: Any, context: Context) -> Any:
            try:
                response = await behavior(request, context)
            except BaseException as error:
                done(context, error)
                raise
            done(context, None)
            return response

        return call

    def streaming(behavior: Streaming) -> Streaming:
        async def call(request: Any, context: Context) -> AsyncIterator[Any]:
            try:
                async for response in behavior(request, context):
                    yield response
            except BaseException as error:
                done(context, error)
                raise
            done(context, None)

        return call

    return rebuild_handler(handler, unary, streaming)


class RequestCounter(CallInterceptor):
    """Counts each call to a ``quorum.*`` method once it ends, by method (``quorum.v1.InferenceService/Chat``)
    and status code name (``OK``, ``INVALID_ARGUMENT``, …). Install it first so it sees every outcome."""

    def __init__(self, record: Record) -> None:
        self._record = record

    def wrap(self, handler: Handler, details: grpc.HandlerCallDetails) -> Handler:
        method: str = details.method  # type: ignore[attr-defined]
        return _counted(handler, method.lstrip("/"), self._record)


class RayRequestCount:
    """A :data:`Record` over ``ray.serve.metrics.Counter`` (``ray_quorum_grpc_requests_total`` on the scrape)."""

    def __init__(self) -> None:
        self._counter = serve_metrics.Counter(
            REQUESTS_METRIC,
            description="quorum gRPC requests by method and final status code.",
            tag_keys=("method", "code"),
        )

    def __call__(self, method: str, code: str) -> None:
        self._counter.inc(1, tags={"method": method, "code": code})
