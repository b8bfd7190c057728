"""Prometheus counters of the reasoning layer (no-ops when ``prometheus_client`` is not installed).

- ``quorum_reasoning_runs_total{strategy, outcome}``: runs by how they ended
  (a stop reason, "error" or "cancelled").
- ``quorum_reasoning_samples_used_total{strategy}``: samples that finished.
- ``quorum_reasoning_samples_saved_total{strategy}``: samples early stopping did not need (k - used).
- ``quorum_reasoning_tool_calls_total{tool}`` and ``quorum_reasoning_tool_failures_total{tool}``
  ("unknown" for names no tool has).

The counters live in the process-wide default registry; exposing it (an HTTP
endpoint, or Ray's metrics agent) is up to the hosting process.
"""

from __future__ import annotations

import importlib
from typing import Protocol


class _Counter(Protocol):
    def labels(self, *values: str) -> _Counter: ...

    def inc(self, amount: float = 1) -> None: ...


class _NoCounter:
    def labels(self, *values: str) -> _NoCounter:
        return self

    def inc(self, amount: float = 1) -> None:
        return None


def _counter(name: str, documentation: str, labels: tuple[str, ...]) -> _Counter:
    try:
        prometheus_client = importlib.import_module("prometheus_client")
    except ImportError:
        return _NoCounter()
    counter: _Counter = prometheus_client.Counter(name, documentation, labels)
    return counter


RUNS = _counter("quorum_reasoning_runs", "Reason runs by strategy and outcome.", ("strategy", "outcome"))
SAMPLES_USED = _counter("quorum_reasoning_samples_used", "Samples that finished, by strategy.", ("strategy",))
SAMPLES_SAVED = _counter(
    "quorum_reasoning_samples_saved", "Samples early stopping made unnecessary, by strategy.", ("strategy",)
)
TOOL_CALLS = _counter("quorum_reasoning_tool_calls", "Tool calls by tool.", ("tool",))
TOOL_FAILURES = _counter("quorum_reasoning_tool_failures", "Tool calls that ended in an error, by tool.", ("tool",))


def record_run(strategy: str, outcome: str, samples_used: int = 0, samples_saved: int = 0) -> None:
    RUNS.labels(strategy, outcome).inc()
    if samples_used:
        SAMPLES_USED.labels(strategy).inc(samples_used)
    if samples_saved:
        SAMPLES_SAVED.labels(strategy).inc(samples_saved)


def record_tool_call(tool: str, failed: bool) -> None:
    TOOL_CALLS.labels(tool).inc()
    if failed:
        TOOL_FAILURES.labels(tool).inc()
