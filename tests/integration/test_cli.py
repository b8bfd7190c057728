"""The `quorum` command line against the running cluster, as a user types it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import RunningCluster

pytestmark = pytest.mark.integration

QUORUM = str(Path(sys.executable).with_name("quorum"))


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([QUORUM, *args], capture_output=True, text=True, timeout=120, check=False)


def test_chat_streams_the_answer(cluster: RunningCluster) -> None:
    result = run("chat", "What is the capital of France?", "--target", cluster.target, "--temperature", "0")
    assert result.returncode == 0, result.stderr
    assert "Paris" in result.stdout
    assert "prompt tokens" in result.stderr


def test_generate_with_several_choices(cluster: RunningCluster) -> None:
    result = run("generate", "Once upon a time", "--target", cluster.target, "-n", "2", "--max-tokens", "8")
    assert result.returncode == 0, result.stderr
    assert "choice 0" in result.stdout
    assert "choice 1" in result.stdout


def test_status_and_models_list(cluster: RunningCluster) -> None:
    status = run("status", "--target", cluster.target)
    assert status.returncode == 0, status.stderr
    assert "SERVING" in status.stdout
    assert cluster.model_id in status.stdout
    models = run("models", "list", "--target", cluster.target)
    assert models.returncode == 0, models.stderr
    assert cluster.model_id in models.stdout


def test_errors_are_printed_with_their_status(cluster: RunningCluster) -> None:
    result = run("generate", "hi", "--target", cluster.target, "--top-p", "2")
    assert result.returncode == 1
    assert "INVALID_ARGUMENT" in result.stderr
    assert "sampling.top_p" in result.stderr


def test_config_check_names_the_bad_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("models:\n  - id: m\n    source: x\n    engine: {max_model_len: 1}\n")
    result = run("config", "check", str(bad))
    assert result.returncode == 2
    assert "models.0.engine.max_model_len" in result.stderr


def test_reason_streams_events_readably(cluster: RunningCluster) -> None:
    question = "A shop has 1234 boxes with 5678 pens in each box. How many pens are there?"
    result = run("reason", question, "--strategy", "react", "--tools", "calculator", "--target", cluster.target)
    assert result.returncode == 0, result.stderr
    assert "call calculator" in result.stdout
    assert "answer: 7006652" in result.stdout


def test_k8s_commands_explain_an_unreachable_api(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: k, cluster: {server: 'http://127.0.0.1:1'}}]\n"
        "contexts: [{name: c, context: {cluster: k, user: u, namespace: ml}}]\nusers: [{name: u, user: {}}]\n"
    )
    result = run("k8s", "status", "--kubeconfig", str(kubeconfig))
    assert result.returncode == 1
    assert "kubernetes:" in result.stderr


def test_docs_ingest_search_list_and_rag(cluster: RunningCluster, tmp_path: Path) -> None:
    (tmp_path / "kestrel.txt").write_text("The Kestrel Institute was founded by Dr. Velma Orrin in Baradun.")
    (tmp_path / "pears.txt").write_text("Pellisar is an island whose only export is blue pears.")
    files = [str(tmp_path / "kestrel.txt"), str(tmp_path / "pears.txt")]
    ingested = run("docs", "ingest", *files, "--collection", "cli-docs", "--target", cluster.target)
    assert ingested.returncode == 0, ingested.stderr
    assert "2 documents" in ingested.stdout
    search = run(
        "docs", "search", "Who founded the Kestrel Institute?", "--collection", "cli-docs", "--target", cluster.target
    )
    assert search.returncode == 0, search.stderr
    assert search.stdout.splitlines()[1].split("\t")[1] == "kestrel.txt"  # piped: tab-separated, header first
    listing = run("docs", "list", "--target", cluster.target)
    assert "cli-docs\t2\t" in listing.stdout
    answer = run(
        "reason",
        "Who founded the Kestrel Institute?",
        "--strategy",
        "rag",
        "--collection",
        "cli-docs",
        "--target",
        cluster.target,
    )
    assert answer.returncode == 0, answer.stderr
    assert "retrieved kestrel.txt" in answer.stdout
    missing = run("docs", "search", "x", "--collection", "no-such", "--target", cluster.target)
    assert missing.returncode == 1
    assert "NOT_FOUND" in missing.stderr
