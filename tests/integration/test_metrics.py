"""Prometheus against the real cluster: after a chat, a stream, a self-consistency run that stops early and
failed requests over gRPC and HTTP, every metric name the chart's dashboard and alert rules query is on
Ray's metrics port (the endpoint `quorum up` prints and the ServiceMonitor scrapes)."""

from __future__ import annotations

import re
from urllib.parse import urlparse

import grpc
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from quorum.client.sdk import QuorumClient
from quorum.v1 import reasoning_pb2 as rpb
from quorum.v1 import reasoning_pb2_grpc
from tests.metric_queries import SERVICE_MONITOR, chart_queries, label_names, metric_names

from .conftest import MAX_N, RunningCluster, wait_for

pytestmark = pytest.mark.integration
# Ray's metrics agent exports what replicas record every few seconds (its report interval).
EXPORT_TIMEOUT_S = 120


def scrape(url: str) -> dict[str, set[str]]:
    """Sample name (``…_bucket``, ``…_total``, gauges) -> the label names its series carry, from one scrape."""
    text = httpx.get(url, timeout=30).raise_for_status().text
    labels: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels.setdefault(sample.name, set()).update(sample.labels)
    return labels


def send_traffic(cluster: RunningCluster) -> None:
    with QuorumClient(cluster.target, timeout=120) as client:
        assert client.chat([("user", "What is the capital of France?")], temperature=0, max_tokens=8).choices
        assert list(client.chat_stream([("user", "Say hello.")], max_tokens=8))
        with pytest.raises(grpc.RpcError) as error:
            client.chat([("user", "Hi")], model="no-such-model", max_tokens=4)
        assert error.value.code() == grpc.StatusCode.NOT_FOUND
    with grpc.insecure_channel(cluster.target) as channel:
        events = list(
            reasoning_pb2_grpc.ReasoningServiceStub(channel).Reason(
                rpb.ReasonRequest(
                    question="What is 6 + 1? Answer with the number.",
                    strategy=rpb.STRATEGY_SELF_CONSISTENCY,
                    samples=MAX_N,
                    # Near-greedy seeded samples agree: the window rule stops early and saves samples.
                    sampling=rpb.ReasoningSampling(max_tokens=48, temperature=0.05, seed=5),
                    early_stopping=rpb.EarlyStopping(rule=rpb.EARLY_STOP_RULE_WINDOW, window=2, min_samples=2),
                ),
                timeout=180,
            )
        )
    assert events[-1].final.samples_used < MAX_N
    with httpx.Client(base_url=f"{cluster.http_url}/v1", timeout=120) as http:
        ok = http.post("/chat/completions", json={"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4})
        assert ok.status_code == 200
        missing = http.post(
            "/chat/completions", json={"model": "no-such-model", "messages": [{"role": "user", "content": "Hi"}]}
        )
        assert missing.status_code == 404


def test_every_metric_the_dashboard_and_alerts_query_is_exported(cluster: RunningCluster) -> None:
    port = cluster.config.ray.metrics_export_port
    assert cluster.metrics_url == f"http://127.0.0.1:{port}/metrics"
    # The ServiceMonitor scrapes the same path and names no metrics of its own (no relabeling on __name__).
    monitor = SERVICE_MONITOR.read_text()
    assert re.search(rf"^\s*path: {urlparse(cluster.metrics_url).path}$", monitor, re.MULTILINE)
    assert "__name__" not in monitor
    queries = [query for where in chart_queries().values() for query in where]
    wanted = set().union(*map(metric_names, queries))
    assert len(wanted) >= 15

    send_traffic(cluster)
    exported: dict[str, set[str]] = {}

    def all_exported() -> bool:
        exported.clear()
        exported.update(scrape(cluster.metrics_url))
        return wanted <= exported.keys()

    try:
        wait_for(all_exported, EXPORT_TIMEOUT_S, "every metric the chart uses on Ray's metrics port")
    except pytest.fail.Exception:
        pytest.fail(f"the chart queries metrics that are not exported: {sorted(wanted - exported.keys())}")
    # Each query filters and groups by labels its metrics' series carry.
    for query in queries:
        carried = set().union(*(exported[name] for name in metric_names(query)))
        assert label_names(query) <= carried, (query, sorted(label_names(query) - carried))
