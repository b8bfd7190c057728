"""`pip install quorum` alone (no server extra) is a working client: a fresh venv talks to the cluster."""

from __future__ import annotations

import pytest

from .client_venv import ClientRun, make_client_venv, run_client_checks
from .conftest import RunningCluster

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def client_run(cluster: RunningCluster, tmp_path_factory: pytest.TempPathFactory) -> ClientRun:
    python = make_client_venv(tmp_path_factory.mktemp("client-venv") / "venv")
    return run_client_checks(python, cluster.target)


def test_the_client_package_installs_without_the_server_stack(client_run: ClientRun) -> None:
    assert client_run.importable_server_modules == []


def test_from_quorum_import_quorumclient_answers(client_run: ClientRun) -> None:
    assert client_run.sdk_module == "quorum.client.sdk"
    assert client_run.health == "SERVING"
    assert "Paris" in client_run.answer


def test_the_cli_lists_the_served_models(client_run: ClientRun, cluster: RunningCluster) -> None:
    assert client_run.models_list.returncode == 0, client_run.models_list.stderr
    assert cluster.model_id in client_run.models_list.stdout


def test_quorum_up_names_the_server_extra(client_run: ClientRun) -> None:
    assert client_run.up.returncode == 2
    assert "quorum[server" in client_run.up.stderr
    assert "Traceback" not in client_run.up.stderr
