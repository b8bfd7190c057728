"""Token auth and (mutual) TLS on the gateway: a second quorum app in the same Ray Serve instance.

Its one model points at a missing directory, so it never loads an engine: what is under test is the
gRPC front door (interceptor, TLS handshake), served by the real gateway deployment.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import openai
import pytest
from openai import OpenAI

from quorum.client.sdk import ClientTLS, QuorumClient
from quorum.cluster.config import parse_config
from quorum.services.local import LocalCluster

from ..certs import issue as _issue
from ..certs import new_key
from ..certs import write_pem as _write
from .conftest import RunningCluster

pytestmark = pytest.mark.integration


@dataclass
class SecureGateway:
    target: str
    http_url: str  # the OpenAI-compatible API (plain HTTP on Serve's proxy; bearer tokens still apply)
    tokens_file: Path
    tls: ClientTLS  # CA + client certificate
    ca_only: ClientTLS


@pytest.fixture(scope="module")
def secure(cluster: RunningCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureGateway]:
    work = tmp_path_factory.mktemp("tls")
    ca_key, server_key, client_key = (new_key() for _ in range(3))
    ca = _issue("quorum-test-ca", ca_key, None, is_ca=True)
    server = _issue("localhost", server_key, (ca.subject, ca_key))
    client = _issue("quorum-client", client_key, (ca.subject, ca_key))
    tokens = work / "tokens"
    tokens.write_text("# accepted tokens\nsecret-token-1\n")
    config = parse_config(
        {
            "models": [
                {"id": "ghost", "source": str(work / "no-such-model"), "deployment": {"num_cpus": 0}},
            ],
            "gateway": {
                "grpc_port": 0,
                # The HTTP proxy is shared by every app of this Serve instance; this one lives under /secure.
                "http_port": cluster.config.gateway.http_port,
                "auth_tokens_file": str(tokens),
                "tls_cert_file": _write(work / "server.pem", cert=server),
                "tls_key_file": _write(work / "server.key", key=server_key),
                "tls_client_ca_file": _write(work / "ca.pem", cert=ca),
            },
            "ray": {"app_name": "quorum-secure"},
        }
    )
    ca_file = str(work / "ca.pem")
    client_tls = ClientTLS(
        ca_file=ca_file,
        cert_file=_write(work / "client.pem", cert=client),
        key_file=_write(work / "client.key", key=client_key),
    )
    with LocalCluster(config, route_prefix="/secure") as local:
        yield SecureGateway(local.target, f"{local.http_url}/v1", tokens, client_tls, ClientTLS(ca_file=ca_file))


def _code(call: object) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as info:
        call()  # type: ignore[operator]
    return info.value.code(), info.value.details() or ""


def test_requests_without_a_valid_token_are_unauthenticated(secure: SecureGateway) -> None:
    with QuorumClient(secure.target, timeout=30, tls=secure.tls) as anonymous:
        code, details = _code(anonymous.list_models)
        assert code == grpc.StatusCode.UNAUTHENTICATED
        assert "authorization: Bearer" in details
        code, _ = _code(lambda: list(anonymous.generate_stream("hi", model="ghost")))
        assert code == grpc.StatusCode.UNAUTHENTICATED
    with QuorumClient(secure.target, timeout=30, token="wrong", tls=secure.tls) as intruder:
        code, details = _code(intruder.list_models)
        assert code == grpc.StatusCode.UNAUTHENTICATED
        assert "not accepted" in details


def test_a_valid_token_over_mutual_tls_is_served(secure: SecureGateway) -> None:
    with QuorumClient(secure.target, timeout=30, token="secret-token-1", tls=secure.tls) as client:
        assert [m.id for m in client.list_models().models] == ["ghost"]
        code, details = _code(lambda: client.generate("hi"))
        assert code == grpc.StatusCode.UNAVAILABLE
        assert "no-such-model" in details
    with QuorumClient(secure.target, timeout=30, tls=secure.tls) as probe:
        assert probe.health() != 1  # health needs no token; NOT_SERVING while the model cannot load


def test_plaintext_and_certificate_less_clients_cannot_connect(secure: SecureGateway) -> None:
    with QuorumClient(secure.target, timeout=10, token="secret-token-1") as plaintext:
        code, _ = _code(plaintext.list_models)
        assert code == grpc.StatusCode.UNAVAILABLE
    with QuorumClient(secure.target, timeout=10, token="secret-token-1", tls=secure.ca_only) as no_client_cert:
        code, _ = _code(no_client_cert.list_models)
        assert code == grpc.StatusCode.UNAVAILABLE


def test_http_api_needs_a_bearer_token(secure: SecureGateway) -> None:
    anonymous = httpx.get(f"{secure.http_url}/models", timeout=30)
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "invalid_api_key"
    with OpenAI(base_url=secure.http_url, api_key="wrong", max_retries=0, timeout=30) as intruder:
        with pytest.raises(openai.AuthenticationError) as info:
            intruder.models.list()
        assert "not accepted" in info.value.message
    with OpenAI(base_url=secure.http_url, api_key="secret-token-1", max_retries=0, timeout=30) as api:
        assert [m.id for m in api.models.list().data] == ["ghost"]
        with pytest.raises(openai.InternalServerError) as unavailable:  # 503: the model never loads
            api.completions.create(model="ghost", prompt="hi")
        assert unavailable.value.status_code == 503


def test_rotated_tokens_take_effect_without_a_restart(secure: SecureGateway) -> None:
    secure.tokens_file.write_text("secret-token-2\n")
    stat = secure.tokens_file.stat()
    os.utime(secure.tokens_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    with QuorumClient(secure.target, timeout=30, token="secret-token-2", tls=secure.tls) as new:
        assert new.list_models().models
    with QuorumClient(secure.target, timeout=30, token="secret-token-1", tls=secure.tls) as old:
        code, _ = _code(old.list_models)
        assert code == grpc.StatusCode.UNAUTHENTICATED


def _rewrite(path: Path, text: str) -> None:
    path.write_text(text)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


def _grpc_accepts(secure: SecureGateway, token: str) -> bool:
    with QuorumClient(secure.target, timeout=30, token=token, tls=secure.tls) as client:
        try:
            client.list_models()
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.UNAUTHENTICATED:
                raise
            return False
        return True


def test_emptying_or_deleting_the_token_file_revokes_every_token(secure: SecureGateway) -> None:
    _rewrite(secure.tokens_file, "secret-token-3\n    # secret-token-old\n")
    assert _grpc_accepts(secure, "secret-token-3")
    assert not _grpc_accepts(secure, "# secret-token-old")  # an indented comment is not a token

    _rewrite(secure.tokens_file, "")
    assert not _grpc_accepts(secure, "secret-token-3")
    revoked = httpx.get(f"{secure.http_url}/models", headers={"Authorization": "Bearer secret-token-3"}, timeout=30)
    assert revoked.status_code == 401

    _rewrite(secure.tokens_file, "secret-token-3\n")
    assert _grpc_accepts(secure, "secret-token-3")
    secure.tokens_file.unlink()
    assert not _grpc_accepts(secure, "secret-token-3")
    deleted = httpx.get(f"{secure.http_url}/models", headers={"Authorization": "Bearer secret-token-3"}, timeout=30)
    assert deleted.status_code == 401

    _rewrite(secure.tokens_file, "secret-token-4\n")
    assert _grpc_accepts(secure, "secret-token-4")
