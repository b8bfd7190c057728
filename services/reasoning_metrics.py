"""The reasoning counters (``quorum.reasoning.metrics``) as Ray metrics.

Ray's metrics agent on each node exports them with the ``ray_`` prefix (a
counter ``quorum_reasoning_samples_saved`` is scraped as
``ray_quorum_reasoning_samples_saved_total``) on the metrics export port the
chart's ServiceMonitor scrapes. Inside a Serve replica, ``ray.serve.metrics``
adds the ``deployment``, ``replica`` and ``application`` labels.
"""

from __future__ import annotations

from ray.serve import metrics as serve_metrics

from quorum.reasoning.metrics import CounterSpec


class RayCounterSink:
    """A :class:`quorum.reasoning.metrics.CounterSink` over ``ray.serve.metrics.Counter``; one per process."""

    def __init__(self) -> None:
        self._counters: dict[str, serve_metrics.Counter] = {}

    def inc(self, counter: CounterSpec, values: tuple[str, ...], amount: float) -> None:
        if amount <= 0:
            return
        metric = self._counters.get(counter.name)
        if metric is None:
            metric = serve_metrics.Counter(counter.name, description=counter.documentation, tag_keys=counter.labels)
            self._counters[counter.name] = metric
        metric.inc(amount, tags=dict(zip(counter.labels, values, strict=True)))


SINK = RayCounterSink()
