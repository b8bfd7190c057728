"""Moving a replica's own processes off the cores its engine workers are bound to (real processes)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import psutil
import pytest

from quorum.cluster.affinity import pin_engine_front, pin_off, worker_cores

CORES = sorted(os.sched_getaffinity(0))
pytestmark = pytest.mark.skipif(len(CORES) < 2, reason="needs at least two usable cores")

# A replica-like tree: the root starts a scheduler (unbound) that starts a worker bound to the first core.
TREE = f"""
import os, subprocess, sys, time
worker = "import os, time; os.sched_setaffinity(0, {{{CORES[0]}}}); print('bound', flush=True); time.sleep(60)"
scheduler = f"import subprocess, sys; subprocess.Popen([sys.executable, '-c', {{worker!r}}]).wait()"
subprocess.Popen([sys.executable, "-c", scheduler])
time.sleep(60)
"""


def _wait(predicate: Callable[[], bool], timeout_s: float = 20) -> None:
    """Poll until ``predicate`` holds (the process tree starts asynchronously)."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "the process tree did not start"
        time.sleep(0.05)


@pytest.fixture
def tree() -> Iterator[psutil.Process]:
    root = subprocess.Popen([sys.executable, "-c", TREE])
    proc = psutil.Process(root.pid)
    try:
        _wait(lambda: len(proc.children(recursive=True)) == 2 and bool(worker_cores(proc)))
        yield proc
    finally:
        for child in proc.children(recursive=True):
            child.kill()
        root.kill()
        root.wait()


def test_the_workers_cores_are_found_by_their_binding(tree: psutil.Process) -> None:
    assert worker_cores(tree) == {CORES[0]}


def test_replica_and_scheduler_move_off_the_workers_core_and_the_worker_stays(tree: psutil.Process) -> None:
    scheduler, worker = sorted(tree.children(recursive=True), key=lambda p: len(p.cpu_affinity() or ()), reverse=True)
    assert pin_engine_front(tree) == CORES[1:]
    for proc in (tree, scheduler):
        for thread in proc.threads():
            assert os.sched_getaffinity(thread.id) == set(CORES[1:])
    assert worker.cpu_affinity() == [CORES[0]]


def test_nothing_moves_when_every_core_is_busy(tree: psutil.Process) -> None:
    assert pin_off([tree.pid], CORES) == []
    assert tree.cpu_affinity() == CORES


def test_an_empty_busy_set_gives_every_core_back(tree: psutil.Process) -> None:
    pin_off([tree.pid], {CORES[0]})
    assert tree.cpu_affinity() == CORES[1:]
    assert pin_off([tree.pid], set()) == []
    assert tree.cpu_affinity() == CORES
