"""Starting Ray: a failed start stops what it spawned, tries again, and says why with Ray's own logs."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from quorum.cluster.config import RayConfig
from quorum.services.ray_head import ATTEMPTS, RayStartError, head_log_tail, start_ray


def write_logs(temp_dir: Path, **logs: str) -> None:
    directory = temp_dir / "session_latest" / "logs"
    directory.mkdir(parents=True)
    for name, text in logs.items():
        (directory / name.replace("_err", ".err").replace("_out", ".out")).write_text(text)


class FailingInit:
    """Stands in for ``ray.init``: each failing call spawns a real process, as a half-started head does."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls: list[dict[str, Any]] = []
        self.spawned: list[subprocess.Popen[bytes]] = []

    def __call__(self, **kwargs: Any) -> None:
        self.calls.append(kwargs)
        if len(self.calls) <= self.failures:
            self.spawned.append(subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"]))
            raise RuntimeError("The current node timed out during startup.")


def test_log_tail_keeps_the_last_lines_of_each_head_log(tmp_path: Path) -> None:
    raylet = "\n".join(f"raylet line {i}" for i in range(40))
    write_logs(tmp_path, raylet_out=raylet, gcs_server_err="", gcs_server_out="gcs listening\n")
    tail = head_log_tail(tmp_path, lines=5)
    assert "raylet line 39" in tail
    assert "raylet line 35" in tail
    assert "raylet line 34" not in tail
    assert "gcs listening" in tail
    assert "gcs_server.err" not in tail  # empty logs are left out


def test_log_tail_is_empty_without_a_session(tmp_path: Path) -> None:
    assert head_log_tail(tmp_path) == ""


def test_a_failed_start_stops_its_processes_and_is_tried_again(tmp_path: Path) -> None:
    init = FailingInit(failures=1)
    start_ray(RayConfig(num_cpus=2, metrics_export_port=None), init=init, temp_dir=tmp_path)
    assert len(init.calls) == 2
    assert init.calls[1]["num_cpus"] == 2
    assert init.calls[1]["address"] == "local"  # a new head, never another cluster running on this machine
    assert init.spawned[0].poll() is not None  # the first attempt's process was stopped


def test_a_start_that_keeps_failing_says_why(tmp_path: Path) -> None:
    write_logs(tmp_path, raylet_err="Check failed: port 6379 in use")
    init = FailingInit(failures=ATTEMPTS)
    with pytest.raises(RayStartError) as error:
        start_ray(RayConfig(metrics_export_port=None), init=init, temp_dir=tmp_path)
    message = str(error.value)
    assert len(init.calls) == ATTEMPTS
    assert f"could not start a local Ray head (attempt {ATTEMPTS} of {ATTEMPTS})" in message
    assert "timed out during startup" in message
    assert "stopped the 1 processes it had started" in message
    assert "Check failed: port 6379 in use" in message
    assert all(proc.poll() is not None for proc in init.spawned)


def test_connecting_to_an_existing_cluster_is_tried_once(tmp_path: Path) -> None:
    init = FailingInit(failures=1)
    with pytest.raises(RayStartError, match=r"Ray at ray.address='ray://head:10001' \(attempt 1 of 1\)"):
        start_ray(RayConfig(address="ray://head:10001"), init=init, temp_dir=tmp_path)
    assert len(init.calls) == 1


def test_a_busy_metrics_port_is_reported_before_ray_starts(tmp_path: Path) -> None:
    """Ray's metrics agent cannot bind a busy port and the node then times out with no hint: say so first."""
    init = FailingInit(failures=0)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(RayStartError, match=rf"ray.metrics_export_port: port {port} is not free"):
            start_ray(RayConfig(metrics_export_port=port), init=init, temp_dir=tmp_path)
    assert init.calls == []
    start_ray(RayConfig(metrics_export_port=port), init=init, temp_dir=tmp_path)  # free again: Ray is started
    assert init.calls[0]["_metrics_export_port"] == port
