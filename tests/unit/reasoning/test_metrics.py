from collections.abc import Iterator

import pytest
from prometheus_client import REGISTRY

from quorum.reasoning import metrics
from quorum.reasoning.metrics import COUNTERS, CounterSpec


class RecordingSink:
    def __init__(self) -> None:
        self.increments: list[tuple[str, dict[str, str], float]] = []

    def inc(self, counter: CounterSpec, values: tuple[str, ...], amount: float) -> None:
        self.increments.append((counter.name, dict(zip(counter.labels, values, strict=True)), amount))


@pytest.fixture
def sink() -> Iterator[RecordingSink]:
    recording = RecordingSink()
    metrics.add_sink(recording)
    metrics.add_sink(recording)  # adding twice still counts once
    yield recording
    metrics.remove_sink(recording)


def test_added_sinks_get_every_increment_with_named_labels(sink: RecordingSink) -> None:
    metrics.record_run("self_consistency", "consensus", samples_used=3, samples_saved=5)
    metrics.record_tool_call("calculator", failed=True)
    assert sink.increments == [
        ("quorum_reasoning_runs", {"strategy": "self_consistency", "outcome": "consensus"}, 1),
        ("quorum_reasoning_samples_used", {"strategy": "self_consistency"}, 3),
        ("quorum_reasoning_samples_saved", {"strategy": "self_consistency"}, 5),
        ("quorum_reasoning_tool_calls", {"tool": "calculator"}, 1),
        ("quorum_reasoning_tool_failures", {"tool": "calculator"}, 1),
    ]


def test_the_default_prometheus_sink_keeps_counting(sink: RecordingSink) -> None:
    before = REGISTRY.get_sample_value("quorum_reasoning_samples_saved_total", {"strategy": "x"}) or 0
    metrics.record_run("x", "consensus", samples_used=1, samples_saved=2)
    assert REGISTRY.get_sample_value("quorum_reasoning_samples_saved_total", {"strategy": "x"}) == before + 2


def test_a_removed_sink_gets_nothing() -> None:
    recording = RecordingSink()
    metrics.add_sink(recording)
    metrics.remove_sink(recording)
    metrics.record_tool_call("calculator", failed=False)
    assert recording.increments == []


def test_counter_names_are_the_dashboards_without_prefix_and_suffix() -> None:
    assert {spec.name for spec in COUNTERS} >= {"quorum_reasoning_samples_saved", "quorum_reasoning_runs"}
    assert all(not spec.name.endswith("_total") for spec in COUNTERS)
