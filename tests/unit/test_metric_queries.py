"""Metric names out of the dashboard's and alert rules' PromQL: functions, label names, label values,
Grafana variables and Helm thresholds are not metric names; a query that does not parse is an error."""

from __future__ import annotations

import pytest

from tests.metric_queries import (
    alert_queries,
    chart_metric_names,
    dashboard_queries,
    grafana_to_promql,
    label_names,
    metric_names,
)


def names(query: str) -> set[str]:
    return metric_names(grafana_to_promql(query))


def test_selectors_are_found_inside_functions_aggregations_and_binary_operators() -> None:
    query = (
        'histogram_quantile(0.95, sum by (le, model_name) (rate(a_bucket{model_name=~"$model"}[$__rate_interval])))'
        " / on (model_name) group_left sum without (ReplicaId) (b_total offset 1h) or vector(0)"
    )
    assert names(query) == {"a_bucket", "b_total"}


def test_label_names_values_and_variables_are_not_metric_names() -> None:
    query = 'sum by (code, method) (rate(requests_total{code!="OK", method=~"${method:regex}|rate"}[5m])) > 0.05'
    assert names(query) == {"requests_total"}


def test_labels_come_from_matchers_groupings_and_vector_matching() -> None:
    query = (
        'sum by (le, model_name) (rate(a_bucket{model_name=~"$model", code!="OK"}[5m]))'
        " / on (model_name) group_left (engine) sum without (ReplicaId) (b_total)"
    )
    assert label_names(grafana_to_promql(query)) == {"le", "model_name", "code", "engine", "ReplicaId"}
    assert label_names('{__name__="x"}') == set()


def test_name_matchers_and_colons_count() -> None:
    assert names('{__name__="vllm:num_requests_waiting", model_name="m"}') == {"vllm:num_requests_waiting"}
    assert names("vllm:time_to_first_token_seconds_bucket") == {"vllm:time_to_first_token_seconds_bucket"}


def test_grafana_label_values_query_names_its_metric() -> None:
    assert names("label_values(ray_vllm_num_requests_waiting, model_name)") == {"ray_vllm_num_requests_waiting"}
    assert names('label_values(up{job="ray"}, instance)') == {"up"}


def test_a_query_that_is_not_promql_or_selects_no_fixed_name_is_an_error() -> None:
    with pytest.raises(ValueError, match="not valid PromQL"):
        names("sum(rate(x_total[5m])")
    with pytest.raises(ValueError, match="without a fixed metric name"):
        names('{__name__=~"ray_.*"}')


def test_dashboard_queries_come_from_panels_and_query_variables_only() -> None:
    dashboard = {
        "templating": {
            "list": [
                {"name": "datasource", "type": "datasource", "query": "prometheus"},
                {"name": "model", "type": "query", "query": {"query": "label_values(m_waiting, model_name)"}},
            ]
        },
        "panels": [
            {"type": "row", "panels": [{"targets": [{"expr": "rate(a_total[5m])"}]}]},
            {"targets": [{"expr": "b"}, {"expr": ""}]},
        ],
    }
    assert sorted(dashboard_queries(dashboard)) == ["b", "label_values(m_waiting, model_name)", "rate(a_total[5m])"]


def test_alert_rules_read_helm_thresholds_as_numbers() -> None:
    rules = """
groups:
  - name: g
    rules:
      - alert: A
        expr: sum(rate(x_total[5m])) > {{ .Values.metrics.prometheusRule.errorRatio }}
"""
    (expr,) = alert_queries(rules)
    assert metric_names(expr) == {"x_total"}


def test_the_chart_names_only_ray_exported_metrics() -> None:
    """vLLM's own names (``vllm:…``) never reach Prometheus through Ray's metrics agent; ``ray_vllm_…`` do."""
    used = chart_metric_names()
    assert used["dashboard"]
    assert used["alerts"]
    for name in set().union(*used.values()):
        assert name.startswith("ray_"), name
