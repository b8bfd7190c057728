"""What a benchmark started: its processes, and a bounded wait for them to be gone after a stop."""

from __future__ import annotations

import multiprocessing
import time

import psutil
from rich.console import Console


def descendants() -> set[int]:
    return {p.pid for p in psutil.Process().children(recursive=True)}


def running(pids: set[int]) -> list[int]:
    """Those of ``pids`` still running, ignoring zombies and multiprocessing's resource tracker."""
    multiprocessing.active_children()  # reaps this process's finished children
    alive = []
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            if proc.status() != psutil.STATUS_ZOMBIE and "resource_tracker" not in " ".join(proc.cmdline()):
                alive.append(pid)
        except psutil.NoSuchProcess:
            continue
    return alive


def wait_gone(pids: set[int], what: str, console: Console, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while (alive := running(pids)) and time.monotonic() < deadline:
        time.sleep(0.5)
    if alive:
        console.print(f"[yellow]warning: {what} left processes running: {alive}[/]")
