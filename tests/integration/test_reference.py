"""The served default model agrees with HF transformers float32 greedy on the fixed reference prompts."""

from __future__ import annotations

import re

import pytest

from quorum.client.cli import main
from quorum.cluster.reference import REFERENCE_PROMPTS

from .conftest import RunningCluster

REQUIRED = 15  # of 16: one late near-tie flip is tolerated, a broken numeric path is not


def test_models_verify_holds_on_the_shipped_config(cluster: RunningCluster, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["models", "verify", "--target", cluster.target, "--model", cluster.model_id, "--timeout", "120"])
    out = capsys.readouterr().out
    match = re.search(r"^reference model=(\S+) agreement=(\d+)/(\d+)$", out, re.MULTILINE)
    assert match is not None, out
    assert match.group(1) == cluster.model_id
    assert int(match.group(3)) == len(REFERENCE_PROMPTS)
    assert int(match.group(2)) >= REQUIRED, out
    assert code == 0
    assert "The capital of France is Paris." in out  # the README's first example, both sides


def test_models_verify_names_an_unknown_model(cluster: RunningCluster, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "verify", "--target", cluster.target, "--model", "absent"]) == 2
    assert "--model: 'absent' is not served" in capsys.readouterr().err
