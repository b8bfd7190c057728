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

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from .interceptors import CallInterceptor, Context, Handler, Streaming, Unary, rebuild_handler


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


def _unary(behavior: Unary) -> Unary:
    async def call(request: Any, context: Context) -> Any:
        if isinstance(request, Undecodable):
            await _refuse(request, context)
        return await behavior(request, context)

    return call


def _streaming(behavior: Streaming) -> Streaming:
    async def call(request: Any, context: Context) -> AsyncIterator[Any]:
        if isinstance(request, Undecodable):
            await _refuse(request, context)
        async for response in behavior(request, context):
            yield response

    return call


def safe_handler(handler: Handler) -> Handler:
    """``handler`` with its request deserializer and behavior wrapped (unary-request methods; others as is)."""
    deserializer = handler.request_deserializer
    if deserializer is None or handler.request_streaming:
        return handler
    return rebuild_handler(handler, _unary, _streaming, _safe_deserializer(deserializer))


class UndecodableRequestInterceptor(CallInterceptor):
    """Applies :func:`safe_handler` to every ``quorum.*`` method (see the module docstring)."""

    def wrap(self, handler: Handler, details: grpc.HandlerCallDetails) -> Handler:
        return safe_handler(handler)
