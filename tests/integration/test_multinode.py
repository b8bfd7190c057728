"""quorum on a head plus two worker Ray nodes: a worker node lost under load, then replaced.

The session cluster connects this process to its own Ray (one driver per process), so the multi-node
run is ``python -m bench.multinode --quick`` in a subprocess: its own Ray head and worker nodes on other
ports, its own Serve app, all stopped when it exits. The test reads the benchmark's last line.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.own_cluster]

ROOT = Path(__file__).resolve().parents[2]
# Cluster start and two engine loads, the load and the kill, a replacement engine load, shutdown: about
# 4 minutes on a loaded 2-core machine. Past this the subprocess is killed and the test fails.
TIMEOUT_S = 720
LAST_LINE = re.compile(
    r"^multinode nodes=(?P<nodes>\d+) replicas_on_distinct_nodes=(?P<distinct>true|false) "
    r"inflight_failed_fast=(?P<fast>[0-9.]+|nan) recovery_s=(?P<recovery>[0-9.]+|inf) lost=(?P<lost>\d+)$"
)


@pytest.mark.timeout(TIMEOUT_S + 60)
def test_a_lost_worker_node_fails_its_streams_fast_and_its_replica_comes_back_on_a_new_node() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "bench.multinode", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    lines = run.stdout.strip().splitlines()
    assert run.returncode == 0, run.stderr[-4000:]
    match = LAST_LINE.match(lines[-1]) if lines else None
    assert match is not None, run.stdout[-2000:]
    # Two LLM replicas on two distinct worker nodes, next to the head.
    assert int(match["nodes"]) >= 3
    assert match["distinct"] == "true"
    # Every stream on the lost node ended UNAVAILABLE (none hung, none became INTERNAL)...
    assert match["fast"] == "1.000", run.stderr[-4000:]
    # ...and no request anywhere was silently truncated or left without a final status.
    assert int(match["lost"]) == 0, run.stderr[-4000:]
    # A new worker node got the replacement replica, which loaded and serves.
    assert match["recovery"] != "inf", run.stderr[-4000:]
