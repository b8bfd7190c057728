"""The metric names the chart's dashboard and alert rules query, parsed out of their PromQL.

Used by the integration test that checks them against a live scrape of Ray's metrics port, and
unit-tested on its own. Queries are parsed with a real PromQL parser (``promql-parser``), after the
Grafana parts that are not PromQL are replaced: ``$__rate_interval``-style variables and
``label_values(metric, label)`` template queries. Helm expressions (``{{ … }}``) in the alert rules
stand for thresholds and are replaced by a number.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import promql_parser
import yaml

CHART = Path(__file__).resolve().parents[1] / "helm" / "quorum"
DASHBOARD = CHART / "dashboards" / "quorum.json"
ALERT_RULES = CHART / "alerts" / "quorum-rules.yaml"
SERVICE_MONITOR = CHART / "templates" / "servicemonitor.yaml"

_RANGE_VARIABLE = re.compile(r"\[\s*\$\{?\w+\}?\s*\]")  # [$__rate_interval], [${window}]
_VARIABLE = re.compile(r"\$\{?\w+(?::\w+)?\}?")  # $model, ${datasource}, ${model:regex}
_LABEL_VALUES = re.compile(r"^\s*label_values\((?P<args>.*)\)\s*$", re.DOTALL)
_HELM = re.compile(r"\{\{.*?\}\}", re.DOTALL)


def grafana_to_promql(query: str) -> str:
    """A Grafana query as plain PromQL: ``label_values(m, l)`` becomes ``m``, variables become values."""
    template = _LABEL_VALUES.match(query)
    if template is not None:
        selector, _, label = template.group("args").rpartition(",")
        query = selector if selector and re.fullmatch(r"\s*\w+\s*", label) else template.group("args")
    query = _RANGE_VARIABLE.sub("[5m]", query)
    return _VARIABLE.sub("x", query)


def _parse(promql: str) -> promql_parser.Expr:
    try:
        return promql_parser.parse(promql)
    except ValueError as exc:
        raise ValueError(f"not valid PromQL: {promql!r}: {exc}") from None


def metric_names(promql: str) -> set[str]:
    """The metric names a PromQL expression selects (``foo{…}``, ``foo[5m]``, ``{__name__="foo"}``).

    Raises ``ValueError`` if the expression does not parse or selects a series without a fixed name.
    """
    names: set[str] = set()

    def visit(node: promql_parser.Expr) -> bool:
        if isinstance(node, promql_parser.VectorSelector):
            name = node.name or next(
                (
                    m.value
                    for m in node.matchers.matchers
                    if m.name == "__name__" and m.op == promql_parser.MatchOp.Equal
                ),
                None,
            )
            if not name:
                raise ValueError(f"a selector without a fixed metric name in {promql!r}")
            names.add(name)
        return True

    promql_parser.walk(_parse(promql), visit)
    return names


def label_names(promql: str) -> set[str]:
    """The label names a PromQL expression matches on or groups by (selectors, ``by``/``without``,
    ``on``/``ignoring``, ``group_left``/``group_right``); ``__name__`` is left out."""
    labels: set[str] = set()

    def visit(node: promql_parser.Expr) -> bool:
        if isinstance(node, promql_parser.VectorSelector):
            labels.update(m.name for m in node.matchers.matchers)
        elif isinstance(node, promql_parser.AggregateExpr) and node.modifier is not None:
            labels.update(node.modifier.labels)
        elif isinstance(node, promql_parser.BinaryExpr) and node.modifier is not None:
            if node.modifier.matching is not None:
                labels.update(node.modifier.matching.labels)
            labels.update(node.modifier.group_labels or ())
        return True

    promql_parser.walk(_parse(promql), visit)
    return labels - {"__name__"}


def _strings_under(document: Any, keys: frozenset[str]) -> Iterator[str]:
    if isinstance(document, dict):
        for key, value in document.items():
            if key in keys and isinstance(value, str) and value.strip():
                yield value
            else:
                yield from _strings_under(value, keys)
    elif isinstance(document, list):
        for item in document:
            yield from _strings_under(item, keys)


def dashboard_queries(dashboard: dict[str, Any]) -> list[str]:
    """Every Prometheus query of a Grafana dashboard: panel targets' ``expr`` and query variables' ``query``.

    (A ``datasource`` variable's ``query`` is a datasource type, not PromQL.)
    """
    queries = list(_strings_under(dashboard.get("panels", []), frozenset({"expr"})))
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") == "query":
            query = variable["query"]
            queries.append(query["query"] if isinstance(query, dict) else query)
    return queries


def alert_queries(rules_text: str) -> list[str]:
    """The ``expr`` of every rule in a Prometheus rules file (Helm ``{{ … }}`` thresholds read as 1)."""
    document = yaml.safe_load(_HELM.sub("1", rules_text))
    return [rule["expr"] for group in document["groups"] for rule in group["rules"]]


def chart_queries() -> dict[str, list[str]]:
    """The chart's PromQL by where it is used: ``dashboard`` (Grafana parts replaced) and ``alerts``.

    (The ServiceMonitor scrapes every metric of Ray's endpoint: it names none.)
    """
    dashboard = json.loads(DASHBOARD.read_text())
    return {
        "dashboard": [grafana_to_promql(q) for q in dashboard_queries(dashboard)],
        "alerts": alert_queries(ALERT_RULES.read_text()),
    }


def chart_metric_names() -> dict[str, set[str]]:
    """Metric names used by the chart, by where they are used: ``dashboard`` and ``alerts``."""
    return {where: set().union(*map(metric_names, queries)) for where, queries in chart_queries().items()}
