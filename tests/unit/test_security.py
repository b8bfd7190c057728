"""The gateway's token file and TLS material: revocation fails closed, certificates are reloaded.

The TLS tests run a real grpc.aio server with the gateway's credentials on loopback and dial it.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from quorum.cluster.config import GatewayConfig
from quorum.services.security import TokenFile, server_credentials

from ..certs import issue, new_key, write_pem


def _touch_later(path: Path) -> None:
    """Move the modification time on, as a rewrite a second later would (the file's size may not change)."""
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "tokens"
    path.write_text("# accepted tokens\ntoken-a\n  token-b  \n")
    return path


def test_tokens_are_lines_and_an_indented_comment_is_not_a_token(token_file: Path) -> None:
    token_file.write_text("# accepted tokens\ntoken-a\n    # former: token-old\n\t#tab-comment\n")
    tokens = TokenFile(str(token_file))
    assert tokens.accepts("token-a")
    for comment in ("# former: token-old", "#tab-comment", "# accepted tokens"):
        assert not tokens.accepts(comment)


def test_emptying_the_file_revokes_every_token(token_file: Path) -> None:
    tokens = TokenFile(str(token_file))
    assert tokens.accepts("token-a")
    assert tokens.accepts("token-b")
    token_file.write_text("")
    _touch_later(token_file)
    assert not tokens.accepts("token-a")
    assert not tokens.accepts("token-b")
    token_file.write_text("# all revoked\n")
    _touch_later(token_file)
    assert not tokens.accepts("token-a")


def test_deleting_the_file_revokes_every_token_until_it_is_back(token_file: Path) -> None:
    tokens = TokenFile(str(token_file))
    token_file.unlink()
    assert not tokens.accepts("token-a")
    assert not tokens.accepts("token-a")  # still revoked on the next call
    token_file.write_text("token-c\n")
    assert tokens.accepts("token-c")
    assert not tokens.accepts("token-a")


def test_a_missing_or_empty_file_at_start_names_the_field(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"gateway.auth_tokens_file .* is not a readable file"):
        TokenFile(str(tmp_path / "absent"))
    (tmp_path / "empty").write_text("  # nothing\n")
    with pytest.raises(ValueError, match=r"gateway.auth_tokens_file .* holds no tokens"):
        TokenFile(str(tmp_path / "empty"))


@dataclass
class TlsServer:
    target: str
    cert: Path
    key: Path


def _write_server_pair(directory: Path, cert: Path, key: Path, name: str) -> Path:
    """A new CA and a server certificate it signs, written to ``cert``/``key``; returns the CA's file."""
    ca_key, server_key = new_key(), new_key()
    ca = issue(f"{name}-ca", ca_key, None, is_ca=True)
    write_pem(cert, cert=issue("localhost", server_key, (ca.subject, ca_key)))
    write_pem(key, key=server_key)
    return Path(write_pem(directory / f"{name}-ca.pem", cert=ca))


def _serving(target: str, ca: Path) -> bool:
    """Whether a fresh TLS connection trusting only ``ca`` gets an answer (else the handshake failed)."""
    credentials = grpc.ssl_channel_credentials(root_certificates=ca.read_bytes())
    with grpc.secure_channel(target, credentials) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            stub.Check(health_pb2.HealthCheckRequest(), timeout=10)
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.UNAVAILABLE:
                raise
            return False
        return True


@pytest.fixture
async def tls_server(tmp_path: Path) -> AsyncIterator[tuple[TlsServer, Path]]:
    cert, key = tmp_path / "server.pem", tmp_path / "server.key"
    first_ca = _write_server_pair(tmp_path, cert, key, "first")
    gateway = GatewayConfig(tls_cert_file=str(cert), tls_key_file=str(key))
    credentials = server_credentials(gateway)
    assert credentials is not None
    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)  # type: ignore[attr-defined]
    port = server.add_secure_port("127.0.0.1:0", credentials)
    await server.start()
    yield TlsServer(f"localhost:{port}", cert, key), first_ca
    await server.stop(None)


async def test_a_replaced_certificate_serves_new_connections_without_a_restart(
    tls_server: tuple[TlsServer, Path], tmp_path: Path
) -> None:
    server, first_ca = tls_server
    assert await asyncio.to_thread(_serving, server.target, first_ca)
    second_ca = _write_server_pair(tmp_path, server.cert, server.key, "second")
    assert await asyncio.to_thread(_serving, server.target, second_ca)
    assert not await asyncio.to_thread(_serving, server.target, first_ca), "the old certificate is no longer served"


async def test_a_half_written_rotation_keeps_the_last_good_certificate(
    tls_server: tuple[TlsServer, Path],
) -> None:
    server, first_ca = tls_server
    server.key.write_text("not a key\n")
    _touch_later(server.key)
    assert await asyncio.to_thread(_serving, server.target, first_ca)


def test_quorum_up_tells_the_operator_how_tokens_are_revoked() -> None:
    from quorum.client.cli import _auth_summary

    summary = _auth_summary(GatewayConfig(auth_tokens_file="tokens.txt"))
    assert "bearer tokens from tokens.txt" in summary
    assert "emptying or deleting the file revokes every token" in summary
    assert _auth_summary(GatewayConfig()).startswith("auth: off (gateway.auth_tokens_file is not set)")
