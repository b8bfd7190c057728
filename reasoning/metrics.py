"""Counters of the reasoning layer, recorded into pluggable sinks.

- ``quorum_reasoning_runs_total{strategy, outcome}``: runs by how they ended
  (a stop reason, "error" or "cancelled").
- ``quorum_reasoning_samples_used_total{strategy}``: samples that finished.
- ``quorum_reasoning_samples_saved_total{strategy}``: samples early stopping did not need (k - used).
- ``quorum_reasoning_tool_calls_total{tool}`` and ``quorum_reasoning_tool_failures_total{tool}``
  ("unknown" for names no tool has).

Every increment goes to each registered :class:`CounterSink`. The default sink
counts into ``prometheus_client``'s process-wide registry (a no-op when the
package is missing); exposing that registry is up to the hosting process. A
host with its own metrics pipeline adds a sink with :func:`add_sink`: the
cluster's reasoning deployment adds one over Ray's metrics API
(``services.reasoning_metrics``), whose agent exports the counters with Ray's
``ray_`` prefix (``ray_quorum_reasoning_samples_saved_total``). This module
imports neither Ray nor gRPC.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class CounterSpec:
    """One counter: ``name`` without the ``_total`` suffix, its help text and its label names."""

    name: str
    documentation: str
    labels: tuple[str, ...]


RUNS = CounterSpec("quorum_reasoning_runs", "Reason runs by strategy and outcome.", ("strategy", "outcome"))
SAMPLES_USED = CounterSpec("quorum_reasoning_samples_used", "Samples that finished, by strategy.", ("strategy",))
SAMPLES_SAVED = CounterSpec(
    "quorum_reasoning_samples_saved", "Samples early stopping made unnecessary, by strategy.", ("strategy",)
)
TOOL_CALLS = CounterSpec("quorum_reasoning_tool_calls", "Tool calls by tool.", ("tool",))
TOOL_FAILURES = CounterSpec("quorum_reasoning_tool_failures", "Tool calls that ended in an error, by tool.", ("tool",))
COUNTERS: tuple[CounterSpec, ...] = (RUNS, SAMPLES_USED, SAMPLES_SAVED, TOOL_CALLS, TOOL_FAILURES)


class CounterSink(Protocol):
    """Where counter increments go; ``values`` are the label values in ``counter.labels`` order."""

    def inc(self, counter: CounterSpec, values: tuple[str, ...], amount: float) -> None: ...


class PrometheusSink:
    """Counts into ``prometheus_client``'s default registry; does nothing without ``prometheus_client``."""

    def __init__(self, counters: Sequence[CounterSpec] = COUNTERS) -> None:
        self._counters: dict[str, Any] = {}
        try:
            prometheus_client = importlib.import_module("prometheus_client")
        except ImportError:
            return
        for spec in counters:
            self._counters[spec.name] = prometheus_client.Counter(spec.name, spec.documentation, spec.labels)

    def inc(self, counter: CounterSpec, values: tuple[str, ...], amount: float) -> None:
        metric = self._counters.get(counter.name)
        if metric is not None:
            metric.labels(*values).inc(amount)


_sinks: list[CounterSink] = [PrometheusSink()]


def add_sink(sink: CounterSink) -> None:
    """Send every later increment to ``sink`` as well (once, however often it is added)."""
    if sink not in _sinks:
        _sinks.append(sink)


def remove_sink(sink: CounterSink) -> None:
    if sink in _sinks:
        _sinks.remove(sink)


def _inc(counter: CounterSpec, *values: str, amount: float = 1) -> None:
    for sink in _sinks:
        sink.inc(counter, values, amount)


def record_run(strategy: str, outcome: str, samples_used: int = 0, samples_saved: int = 0) -> None:
    _inc(RUNS, strategy, outcome)
    if samples_used:
        _inc(SAMPLES_USED, strategy, amount=samples_used)
    if samples_saved:
        _inc(SAMPLES_SAVED, strategy, amount=samples_saved)


def record_tool_call(tool: str, failed: bool) -> None:
    _inc(TOOL_CALLS, tool)
    if failed:
        _inc(TOOL_FAILURES, tool)
