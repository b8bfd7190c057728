"""Undecodable request bytes get INVALID_ARGUMENT, not UNKNOWN.

grpc calls a method's request deserializer (``Message.FromString``) before the
servicer runs; when it raises (garbage bytes, a truncated message, invalid
UTF-8 in a string field) grpc answers UNKNOWN "Unexpected DecodeError", as if
the server had failed. :class:`UndecodableRequestInterceptor` wraps the
deserializer of every ``quorum.*`` method so that a failure becomes a marker
value, and the method's behavior so that the marker aborts the call with
INVALID_ARGUMENT "request is not a valid quorum.v1.ChatRequest: …".
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.message import DecodeError

Context = grpc.aio.ServicerContext[Any, Any]
WRAPPED_PREFIX = "/quorum."


@dataclass(frozen=True)
class Undecodable:
    """Stands in for a request whose bytes did not parse as ``message``."""

    message: str
    error: str


def _message_name(deserializer: Callable[[bytes], Any]) -> str:
    cls = getattr(deserializer, "__self__", None)
    descriptor = getattr(cls, "DESCRIPTOR", None)
    return str(getattr(descriptor, "full_name", "request message"))


def _safe_deserializer(deserializer: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    name = _message_name(deserializer)

    def deserialize(data: bytes) -> Any:
        try:
            return deserializer(data)
        except (DecodeError, UnicodeDecodeError, ValueError, RecursionError) as error:
            return Undecodable(name, str(error) or type(error).__name__)

    return deserialize


async def _refuse(request: Undecodable, context: Context) -> None:
    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"request is not a valid {request.message}: {request.error}")


def _unary(behavior: Callable[[Any, Context], Awaitable[Any]]) -> Callable[[Any, Context], Awaitable[Any]]:
    async def call(request: Any, context: Context) -> Any:
        if isinstance(request, Undecodable):
            await _refuse(request, context)
        return await behavior(request, context)

    return call


def _streaming(behavior: Callable[[Any, Context], AsyncIterator[Any]]) -> Callable[[Any, Context], Any]:
    async def call(request: Any, context: Context) -> AsyncIterator[Any]:
        if isinstance(request, Undecodable):
            await _refuse(request, context)
        async for response in behavior(request, context):
            yield response

    return call


def safe_handler(handler: grpc.RpcMethodHandler[Any, Any]) -> grpc.RpcMethodHandler[Any, Any]:
    """``handler`` with its request deserializer and behavior wrapped (unary-request methods; others as is)."""
    deserializer, serializer = handler.request_deserializer, handler.response_serializer
    unary: Any = handler.unary_unary  # typed for the sync server; an aio server's behaviors are coroutines
    streaming: Any = handler.unary_stream
    if deserializer is None:
        return handler
    if unary is not None:
        return grpc.unary_unary_rpc_method_handler(_unary(unary), _safe_deserializer(deserializer), serializer)
    if streaming is not None:
        return grpc.unary_stream_rpc_method_handler(_streaming(streaming), _safe_deserializer(deserializer), serializer)
    return handler


class UndecodableRequestInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Applies :func:`safe_handler` to every ``quorum.*`` method (see the module docstring)."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method  # type: ignore[attr-defined]
        if handler is None or not method.startswith(WRAPPED_PREFIX):
            return handler
        return safe_handler(handler)
