"""Keeps quorum's own processes off the cores vLLM's CPU workers compute on.

vLLM's CPU backend binds each worker's OpenMP threads to cores
(``VLLM_CPU_OMP_THREADS_BIND``; "auto" binds them and leaves the rest to its
scheduler process). The other processes of a node float over every core: the
LLM-server replica (streaming each token to Serve), vLLM's EngineCore
scheduler, the gateway. Whenever one of them runs on a worker's core it
preempts an OpenMP thread and the whole engine step waits for it. Restricting
them to the cores no worker is bound to keeps per-token front-door work from
slowing the engine (measured in docs/overhead.md). The LLM-server replica moves
itself and its engine's scheduler once the engine runs (``pin_engine_front``) and
reports the workers' cores in its status; the gateway moves itself off the cores
the models of its own node report (``pin_off``).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable

import psutil


def bound_descendants(root: psutil.Process) -> list[psutil.Process]:
    """Descendants of ``root`` bound to fewer cores than ``root`` may use: vLLM's CPU workers.

    NOTE: by binding, not by name: vLLM's process titles ("VLLM::Worker") are not set in every environment.
    """
    allowed = set(root.cpu_affinity() or ())
    bound = []
    for child in root.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if set(child.cpu_affinity() or ()) < allowed:
                bound.append(child)
    return bound


def pin(pid: int, cores: Iterable[int]) -> None:
    """Restrict every thread of process ``pid`` to ``cores`` (threads it starts later inherit it)."""
    allowed = set(cores)
    for task in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(ProcessLookupError):  # a thread that ended meanwhile
            os.sched_setaffinity(int(task), allowed)


def worker_cores(root: psutil.Process | None = None) -> set[int]:
    """The cores vLLM's CPU workers under ``root`` (default: this process) are bound to; empty if none is."""
    cores: set[int] = set()
    for worker in bound_descendants(root or psutil.Process()):
        with contextlib.suppress(psutil.Error):
            cores.update(worker.cpu_affinity() or ())
    return cores


def pin_off(pids: Iterable[int], busy: Iterable[int], allowed: Iterable[int] | None = None) -> list[int]:
    """Restrict ``pids`` to ``allowed`` (default: this thread's cores) minus ``busy``; with ``busy`` empty,
    give them all of ``allowed`` back.

    Returns the cores left to them when some were busy; empty when none was, or when ``busy`` covers every
    allowed core (then nothing changes).
    """
    busy = set(busy)
    free = sorted(set(os.sched_getaffinity(0) if allowed is None else allowed) - busy)
    if not free:
        return []
    for pid in pids:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            pin(pid, free)
    return free if busy else []


def pin_engine_front(root: psutil.Process | None = None) -> list[int]:
    """After a CPU engine started under ``root`` (default: this process), move ``root`` and its descendants
    that are not bound (vLLM's EngineCore scheduler) off the workers' cores. Returns the cores used."""
    root = root or psutil.Process()
    workers = {w.pid for w in bound_descendants(root)}
    busy = worker_cores(root)
    return pin_off([root.pid, *(p.pid for p in root.children(recursive=True) if p.pid not in workers)], busy)
