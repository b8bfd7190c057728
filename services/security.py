"""Front-door security: bearer-token auth (an aio server interceptor) and TLS server credentials."""

from __future__ import annotations

import hmac
import logging
import os
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc

from quorum.cluster.config import GatewayConfig

from .interceptors import CallInterceptor, Context, Handler, rebuild_handler

logger = logging.getLogger(__name__)

# Kubernetes and load balancers probe health without credentials.
UNAUTHENTICATED_SERVICES = ("/grpc.health.v1.Health/",)


class TokenFile:
    """Accepted tokens from a file, one per line (``#`` starts a comment line); re-read when it changes.

    NOTE: fail closed. Once serving, a token file that is deleted, emptied or unreadable accepts no
    token at all, so removing the file (or every line of it) revokes every token at once. Only at start
    is a missing or empty file an error (a misconfiguration, reported naming the field).
    """

    def __init__(self, path: str) -> None:
        self._path = Path(path)
        self._lock = threading.Lock()
        self._version: tuple[int, int, int] | None = None
        self._tokens: tuple[bytes, ...] = ()
        if not self._path.is_file():
            raise ValueError(f"gateway.auth_tokens_file {self._path} is not a readable file")
        self._load()
        if not self._tokens:
            raise ValueError(f"gateway.auth_tokens_file {self._path} holds no tokens")

    def _load(self) -> None:
        try:
            stat = os.stat(self._path)
        except OSError:
            with self._lock:
                self._tokens, self._version = (), None  # deleted: every token is revoked
            return
        version = (stat.st_mtime_ns, stat.st_ino, stat.st_size)
        if version == self._version:
            return
        with self._lock:
            try:
                self._tokens, self._version = parse_tokens(self._path.read_text()), version
            except (OSError, UnicodeDecodeError):
                self._tokens, self._version = (), None  # unreadable: revoked until it can be read again

    def accepts(self, token: str) -> bool:
        self._load()
        candidate = token.encode()
        return any(hmac.compare_digest(candidate, known) for known in self._tokens)


def parse_tokens(text: str) -> tuple[bytes, ...]:
    """The tokens of a token file's text: each non-blank line that is not a ``#`` comment (indented or not)."""
    lines = (line.strip() for line in text.splitlines())
    return tuple(line.encode() for line in lines if line and not line.startswith("#"))


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


def _denied(handler: Handler, message: str) -> Handler:
    async def abort(request: Any, context: Context) -> Any:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    async def abort_stream(request: Any, context: Context) -> AsyncIterator[Any]:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)
        yield  # pragma: no cover - abort raises

    return rebuild_handler(handler, lambda _: abort, lambda _: abort_stream)


class BearerTokenInterceptor(CallInterceptor):
    """Answers UNAUTHENTICATED unless the call carries an accepted ``authorization: Bearer`` token."""

    def __init__(self, tokens: TokenFile) -> None:
        self._tokens = tokens

    def applies_to(self, method: str) -> bool:
        return not method.startswith(UNAUTHENTICATED_SERVICES)

    def wrap(self, handler: Handler, details: grpc.HandlerCallDetails) -> Handler:
        token = _bearer(details.invocation_metadata)  # type: ignore[arg-type]
        if token is None:
            return _denied(handler, MISSING_TOKEN)
        if not self._tokens.accepts(token):
            return _denied(handler, REJECTED_TOKEN)
        return handler


class CertificateFiles:
    """The gateway's TLS material, re-read when any of its files changes (checked at each TLS handshake).

    A replaced certificate or key serves new connections without a restart; connections already open keep
    the certificate they were made with. Files that are missing or do not form a key pair keep the last
    good material in use (and are logged), so a half-finished rotation never takes the gateway offline.
    """

    def __init__(self, cert_file: str, key_file: str, client_ca_file: str | None) -> None:
        self._paths = tuple(Path(p) for p in (cert_file, key_file, client_ca_file) if p is not None)
        self._cert, self._key = Path(cert_file), Path(key_file)
        self._client_ca = Path(client_ca_file) if client_ca_file else None
        self._version = self._stat()
        self.initial = self._configuration()

    def _stat(self) -> tuple[tuple[int, int, int], ...]:
        stats = (os.stat(path) for path in self._paths)
        return tuple((s.st_mtime_ns, s.st_ino, s.st_size) for s in stats)

    def _configuration(self) -> grpc.ServerCertificateConfiguration:
        client_ca = self._client_ca.read_bytes() if self._client_ca is not None else None
        pair = (self._key.read_bytes(), self._cert.read_bytes())
        return grpc.ssl_server_certificate_configuration([pair], root_certificates=client_ca)

    def fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """gRPC's certificate fetcher: new material when a file changed, else None (keep the current)."""
        try:
            version = self._stat()
            if version == self._version:
                return None
            configuration = self._configuration()
        except (OSError, ValueError) as exc:
            logger.warning("TLS files of the gateway could not be re-read (%s); keeping the current ones", exc)
            return None
        self._version = version
        logger.info("TLS files of the gateway changed; new connections use them")
        return configuration


def server_credentials(gateway: GatewayConfig) -> grpc.ServerCredentials | None:
    """TLS (or mutual TLS) credentials from the configured PEM files, re-read when they change; None for
    plaintext."""
    if gateway.tls_cert_file is None or gateway.tls_key_file is None:
        return None
    files = CertificateFiles(gateway.tls_cert_file, gateway.tls_key_file, gateway.tls_client_ca_file)
    # NOTE: grpc documents None from the fetcher as "no change"; its type stub leaves None out.
    return grpc.dynamic_ssl_server_credentials(
        files.initial,
        files.fetch,  # type: ignore[arg-type]
        require_client_authentication=gateway.tls_client_ca_file is not None,
    )
