"""What the gateway's grpc.aio interceptors share: choosing the calls a check applies to, rebuilding a handler.

Each interceptor of the gateway (request counting, undecodable requests, bearer tokens) replaces the method
handler of the calls it applies to by one whose behaviours are wrapped; :class:`CallInterceptor` is that
loop, :func:`rebuild_handler` the rebuilding.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeAlias, cast

import grpc

Context = grpc.aio.ServicerContext[Any, Any]
Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"  # a string: grpc's class is not subscriptable at run time
# What grpc.aio calls (grpc's type stubs describe the sync server's behaviours).
Unary = Callable[[Any, Context], Awaitable[Any]]
Streaming = Callable[[Any, Context], AsyncIterator[Any]]
QUORUM_PREFIX = "/quorum."  # the quorum API, as opposed to health probes and reflection


def rebuild_handler(
    handler: Handler,
    unary: Callable[[Unary], Unary],
    streaming: Callable[[Streaming], Streaming],
    request_deserializer: Callable[[bytes], Any] | None = None,
) -> Handler:
    """``handler`` with its behaviour wrapped by ``unary`` (one response) or ``streaming`` (a response stream),
    and its request deserializer replaced by ``request_deserializer`` when one is given."""
    deserializer = request_deserializer or handler.request_deserializer
    serializer = handler.response_serializer
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(unary(cast(Unary, handler.unary_unary)), deserializer, serializer)
    if handler.unary_stream is not None:
        behavior = streaming(cast(Streaming, handler.unary_stream))
        return grpc.unary_stream_rpc_method_handler(behavior, deserializer, serializer)
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(unary(cast(Unary, handler.stream_unary)), deserializer, serializer)
    if handler.stream_stream is not None:
        behavior = streaming(cast(Streaming, handler.stream_stream))
        return grpc.stream_stream_rpc_method_handler(behavior, deserializer, serializer)
    return handler


class CallInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Replaces the handler of every call :meth:`applies_to` accepts by :meth:`wrap`'s."""

    def applies_to(self, method: str) -> bool:
        """Whether this interceptor handles ``method`` (``/package.Service/Method``); default: the quorum API."""
        return method.startswith(QUORUM_PREFIX)

    def wrap(self, handler: Handler, details: grpc.HandlerCallDetails) -> Handler:
        raise NotImplementedError

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler:
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method  # type: ignore[attr-defined]
        if handler is None or not self.applies_to(method):
            return handler
        return self.wrap(handler, handler_call_details)
