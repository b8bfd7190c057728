from typing import Any

import pytest
from ray.serve import metrics as serve_metrics

from quorum.reasoning.metrics import SAMPLES_SAVED, TOOL_CALLS
from quorum.services.reasoning_metrics import RayCounterSink


class FakeCounter:
    made: list["FakeCounter"] = []

    def __init__(self, name: str, description: str = "", tag_keys: tuple[str, ...] | None = None) -> None:
        self.name, self.description, self.tag_keys = name, description, tag_keys
        self.calls: list[tuple[float, dict[str, Any]]] = []
        FakeCounter.made.append(self)

    def inc(self, value: float = 1.0, tags: dict[str, str] | None = None) -> None:
        self.calls.append((value, tags or {}))


def test_ray_sink_makes_one_ray_counter_per_metric_and_tags_each_increment(monkeypatch: pytest.MonkeyPatch) -> None:
    FakeCounter.made = []
    monkeypatch.setattr(serve_metrics, "Counter", FakeCounter)
    sink = RayCounterSink()
    sink.inc(SAMPLES_SAVED, ("self_consistency",), 5)
    sink.inc(SAMPLES_SAVED, ("self_consistency",), 2)
    sink.inc(TOOL_CALLS, ("calculator",), 1)
    sink.inc(TOOL_CALLS, ("calculator",), 0)  # Ray counters reject non-positive increments
    saved, calls = FakeCounter.made
    assert (saved.name, saved.tag_keys) == ("quorum_reasoning_samples_saved", ("strategy",))
    assert saved.description == SAMPLES_SAVED.documentation
    assert saved.calls == [(5, {"strategy": "self_consistency"}), (2, {"strategy": "self_consistency"})]
    assert calls.calls == [(1, {"tool": "calculator"})]
