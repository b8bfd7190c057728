"""A fresh venv holding only the client package (``pip install quorum``, no extras), and the checks a backend
team would run with it against a running cluster.

Ad hoc, against any cluster: ``python -m tests.integration.client_venv HOST:PORT [VENV_DIR]``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import venv
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# What a source distribution of quorum holds: pyproject's package-dir folders and the files it names.
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "proto", "client", "cluster", "services", "reasoning")
SERVER_MODULES = ("ray", "vllm", "torch", "transformers", "faiss", "fastapi")
INSTALL_TIMEOUT_S = 600

# Run by the venv's interpreter: the SDK as a user imports it, against the cluster at argv[1].
CLIENT_SCRIPT = """
import json, sys
from grpc_health.v1 import health_pb2
from quorum import QuorumClient

with QuorumClient(sys.argv[1], timeout=120) as client:
    health = health_pb2.HealthCheckResponse.ServingStatus.Name(client.health())
    reply = client.chat([("user", "What is the capital of France?")], temperature=0, max_tokens=16)
print(json.dumps({"health": health, "answer": reply.choices[0].text, "module": QuorumClient.__module__}))
"""


@dataclass(frozen=True)
class ClientRun:
    """What the client-only venv saw."""

    importable_server_modules: list[str]
    health: str
    answer: str
    sdk_module: str
    models_list: subprocess.CompletedProcess[str]
    up: subprocess.CompletedProcess[str]


def make_client_venv(dest: Path) -> Path:
    """Create a venv at ``dest`` (no system site-packages) and install into it a wheel of quorum built from
    a copy of this repository's sources, with the base dependencies only. Returns its interpreter.

    The wheel is built by the running interpreter's pip and setuptools (no build isolation: nothing to
    download); the dependencies come from the package index through pip's cache."""
    with tempfile.TemporaryDirectory(prefix="quorum-src-") as tmp:
        src = Path(tmp) / "quorum"
        src.mkdir()
        for name in SOURCES:  # a copy: building in the shared working tree would leave build/ and *.egg-info
            path = ROOT / name
            if path.is_dir():
                shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
            else:
                shutil.copy2(path, src / name)
        wheels = Path(tmp) / "wheels"
        pip = ("-m", "pip", "--quiet", "--disable-pip-version-check")
        build = [sys.executable, *pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(src)]
        subprocess.run(build, check=True, timeout=INSTALL_TIMEOUT_S)
        venv.EnvBuilder(with_pip=True, system_site_packages=False, clear=True).create(dest)
        python = dest / "bin" / "python"
        install = [str(python), *pip, "install", "--only-binary", ":all:", *map(str, wheels.glob("quorum-*.whl"))]
        subprocess.run(install, check=True, timeout=INSTALL_TIMEOUT_S)
    return python


def _run(cwd: Path, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    # cwd: the venv's own folder, so `python -c` finds nothing of the working tree (nor /tmp/ray) on sys.path.
    return subprocess.run(args, capture_output=True, text=True, timeout=300, cwd=cwd, check=check)


def run_client_checks(python: Path, target: str) -> ClientRun:
    """Use the client venv of ``python`` the way a user would, against the cluster at ``target``."""
    home = python.parent.parent
    probe = f"import importlib.util as u; print(','.join(m for m in {SERVER_MODULES!r} if u.find_spec(m)))"
    found = _run(home, str(python), "-c", probe, check=True).stdout.strip()
    script = _run(home, str(python), "-c", CLIENT_SCRIPT, target, check=True)
    result = json.loads(script.stdout.strip().splitlines()[-1])
    cli = str(python.parent / "quorum")
    return ClientRun(
        importable_server_modules=[m for m in found.split(",") if m],
        health=result["health"],
        answer=result["answer"],
        sdk_module=result["module"],
        models_list=_run(home, cli, "models", "list", "--target", target),
        up=_run(home, cli, "up"),
    )


def main(argv: list[str]) -> int:
    target = argv[0]
    dest = Path(argv[1]) if len(argv) > 1 else Path(tempfile.mkdtemp(prefix="quorum-client-venv-"))
    python = make_client_venv(dest)
    outcome = run_client_checks(python, target)
    print(f"venv: {dest}")
    print(f"server modules importable: {outcome.importable_server_modules or 'none'}")
    print(f"health: {outcome.health}; answer: {outcome.answer!r} (from {outcome.sdk_module})")
    print(f"quorum models list -> exit {outcome.models_list.returncode}:\n{outcome.models_list.stdout}")
    print(f"quorum up -> exit {outcome.up.returncode}: {outcome.up.stderr.strip()}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
