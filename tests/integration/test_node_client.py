"""examples/node, a Node client generated from proto/ only, against the running cluster.

The user's three commands, in a copy of the example: `npm ci`, `npm run generate` (buf + protoc-gen-es from
npm, with proto/buf.gen.yaml), `node client.mjs <target>`.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import RunningCluster

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = Path("examples") / "node"


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} not found on PATH: install Node >= 20 with npm to run examples/node")
    return path


def run(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def node_example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example installed and generated in a temp copy (its ../../proto pointing at this proto/)."""
    npm = tool("npm")
    root = tmp_path_factory.mktemp("node-example")
    (root / "proto").symlink_to(ROOT / "proto")
    example = root / EXAMPLE
    shutil.copytree(ROOT / EXAMPLE, example, ignore=shutil.ignore_patterns("node_modules", "gen"))
    run([npm, "ci", "--no-audit", "--no-fund"], example)
    run([npm, "run", "generate"], example)
    assert (example / "gen" / "quorum" / "v1" / "inference_pb.js").is_file()
    return example


def test_node_client_lists_chats_streams_and_sees_not_found(node_example: Path, cluster: RunningCluster) -> None:
    output = run([tool("node"), "client.mjs", cluster.target], node_example).stdout

    assert f"model: {cluster.model_id} (default, ready" in output
    chat = re.search(r"^chat: (\".*\") \(finish (\w+)", output, re.MULTILINE)
    assert chat, output
    assert json.loads(chat.group(1)).strip()
    assert chat.group(2) in ("STOP", "LENGTH")
    stream = re.search(r"^chat_stream: (\".*\") \((\d+) chunks, finish (\w+)\)", output, re.MULTILINE)
    assert stream, output
    assert json.loads(stream.group(1)).strip()
    assert int(stream.group(2)) > 1
    assert stream.group(3) in ("STOP", "LENGTH")
    assert re.search(r"^status: NOT_FOUND \(code 5\): .*no-such-model", output, re.MULTILINE), output
