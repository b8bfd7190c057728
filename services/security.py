"""Front-door security: bearer-token auth (an aio server interceptor) and TLS server credentials."""

from __future__ import annotations

import contextlib
import hmac
import os
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc

from quorum.cluster.config import GatewayConfig

# Kubernetes and load balancers probe health without credentials.
UNAUTHENTICATED_SERVICES = ("/grpc.health.v1.Health/",)


class TokenFile:
    """Accepted tokens from a file, one per line; re-read when its modification time changes."""

    def __init__(self, path: str) -> None:
        self._path = Path(path)
        self._lock = threading.Lock()
        self._mtime_ns = -1
        self._tokens: tuple[bytes, ...] = ()
        self._load()

    def _load(self) -> None:
        stat = os.stat(self._path)
        if stat.st_mtime_ns == self._mtime_ns:
            return
        with self._lock:
            lines = self._path.read_text().splitlines()
            tokens = tuple(line.strip().encode() for line in lines if line.strip() and not line.startswith("#"))
            if not tokens:
                raise ValueError(f"gateway.auth_tokens_file {self._path} holds no tokens")
            self._tokens, self._mtime_ns = tokens, stat.st_mtime_ns

    def accepts(self, token: str) -> bool:
        with contextlib.suppress(OSError, ValueError):  # keep the last good set while the file is replaced
            self._load()
        candidate = token.encode()
        return any(hmac.compare_digest(candidate, known) for known in self._tokens)


MISSING_TOKEN = "missing credentials: send metadata 'authorization: Bearer <token>'"
REJECTED_TOKEN = "the bearer token is not accepted by this cluster (gateway.auth_tokens_file)"


def bearer_token(authorization: str | bytes | None) -> str | None:
    """The token of an ``authorization: Bearer <token>`` value (gRPC metadata or HTTP header), else None."""
    if authorization is None:
        return None
    text = authorization.decode() if isinstance(authorization, bytes) else authorization
    scheme, _, token = text.strip().partition(" ")
    return (token.strip() or None) if scheme.lower() == "bearer" else None


def _bearer(metadata: tuple[tuple[str, str | bytes], ...] | None) -> str | None:
    for key, value in metadata or ():
        if key == "authorization":
            return bearer_token(value)
    return None


def _denied(handler: grpc.RpcMethodHandler[Any, Any], message: str) -> grpc.RpcMethodHandler[Any, Any]:
    async def abort(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    async def abort_stream(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)
        yield  # pragma: no cover - abort raises

    deserializer, serializer = handler.request_deserializer, handler.response_serializer
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(abort_stream, deserializer, serializer)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(abort, deserializer, serializer)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(abort_stream, deserializer, serializer)
    return grpc.unary_unary_rpc_method_handler(abort, deserializer, serializer)


class BearerTokenInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Answers UNAUTHENTICATED unless the call carries an accepted ``authorization: Bearer`` token."""

    def __init__(self, tokens: TokenFile) -> None:
        self._tokens = tokens

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(handler_call_details)
        if handler is None or handler_call_details.method.startswith(UNAUTHENTICATED_SERVICES):
            return handler
        token = _bearer(handler_call_details.invocation_metadata)  # type: ignore[arg-type]
        if token is None:
            return _denied(handler, MISSING_TOKEN)
        if not self._tokens.accepts(token):
            return _denied(handler, REJECTED_TOKEN)
        return handler


def server_credentials(gateway: GatewayConfig) -> grpc.ServerCredentials | None:
    """TLS (or mutual TLS) credentials from the configured PEM files, or None for plaintext."""
    if gateway.tls_cert_file is None or gateway.tls_key_file is None:
        return None
    key = Path(gateway.tls_key_file).read_bytes()
    chain = Path(gateway.tls_cert_file).read_bytes()
    client_ca = Path(gateway.tls_client_ca_file).read_bytes() if gateway.tls_client_ca_file else None
    return grpc.ssl_server_credentials([(key, chain)], root_certificates=client_ca, require_client_auth=bool(client_ca))
