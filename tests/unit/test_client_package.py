"""The client package stands apart from the server: importing it loads no server module, and the CLI's
server commands say which extra to install instead of failing with a traceback."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from quorum.client import cli

# Not opentelemetry: langsmith (under langchain-core) imports it when it is installed.
SERVER_MODULES = ("ray", "vllm", "torch", "transformers", "faiss", "fastapi", "sentence_transformers")
SERVER_PACKAGES = ("quorum.services", "quorum.reasoning", "quorum.cluster")


def test_importing_the_client_loads_nothing_of_the_server() -> None:
    probe = (
        "import json, sys\n"
        "from quorum import QuorumClient, AsyncQuorumClient\n"
        "import quorum.client.cli, quorum.client.langchain, quorum.client.k8s\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {SERVER_MODULES!r}"
        f" or m.startswith({SERVER_PACKAGES!r}))))"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    assert json.loads(loaded.stdout) == []


def test_import_quorum_cluster_does_not_load_grpc() -> None:
    probe = "import sys, quorum.cluster.config; print('grpc' in sys.modules)"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    assert loaded.stdout.strip() == "False"


@pytest.mark.parametrize(
    ("command", "argv"),
    [
        ("up", ["up"]),
        ("models prepare", ["models", "prepare"]),
        ("models verify", ["models", "verify"]),
        ("quantize", ["quantize", "--source", "embedded:x", "--output", "out"]),
    ],
)
def test_server_commands_without_the_server_stack_exit_2_naming_the_extra(
    command: str, argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(cli.SERVER_MODULES, command, ("quorum_no_such_module",))
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert f"`quorum {command}` needs the server stack (quorum_no_such_module not installed)" in err
    assert "pip install 'quorum[server,cpu]'" in err
