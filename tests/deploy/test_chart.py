"""The chart as a package: lint, values schema (fresh, strict, enforced by Helm), NOTES, metadata."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from .conftest import PROFILES
from .helm_render import CHART, Rendering, lint, load_values, render, render_notes

# Helm's lint severities (pkg/lint/support): 1 info, 2 warning, 3 error.
LINT_WARNING = 2


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("generate_schema", CHART / "generate_schema.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_chart_metadata() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    assert chart["appVersion"] == "0.1.0"
    assert chart["type"] == "application"


def test_values_schema_is_fresh() -> None:
    """values.schema.json is generated from values.yaml: regenerate with `bash scripts/deploy_check.sh --regen`."""
    assert (CHART / "values.schema.json").read_text() == generator().generate()


def test_every_value_is_documented() -> None:
    """Every key of values.yaml (outside list items) has a helm-docs `# --` comment, groups included."""
    module = generator()
    text = (CHART / "values.yaml").read_text()
    comments = module.parse_comments(text)
    opaque = {path for path, info in comments.items() if {"freeForm", "$ref"} & set(info["schema"])}
    # Keys inside a free-form value (resources, securityContext, ...) are its default content, not values.
    values = [path for path in comments if not any(path[:i] in opaque for i in range(1, len(path)))]
    undocumented = [".".join(path) for path in values if not comments[path]["description"]]
    groups = {"image", "ray", "ray.autoscaler", "ray.head", "ray.gpuWorkers", "quorum", "hub", "hub.token",
              "tls", "service", "service.grpc", "openai", "openai.service", "networkPolicy",
              "networkPolicy.kuberayOperator", "podDisruptionBudget", "metrics", "metrics.serviceMonitor",
              "metrics.prometheusRule", "metrics.dashboard", "auth"}  # fmt: skip
    assert sorted(set(undocumented) - groups) == []


def test_templates_one_resource_kind_per_file() -> None:
    kinds: dict[str, set[str]] = {}
    for template in (CHART / "templates").glob("*.yaml"):
        kinds[template.name] = set(re.findall(r"^kind: (\w+)", template.read_text(), re.MULTILINE))
    assert all(len(found) == 1 for found in kinds.values()), kinds
    assert (CHART / "templates" / "_helpers.tpl").exists()
    assert (CHART / "templates" / "NOTES.txt").exists()


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_lint_is_clean(name: str) -> None:
    """helm lint (as --strict: warnings fail too) with the chart defaults and each ci/ values file."""
    values = load_values(*PROFILES[name])
    result = lint(values)
    problems = [m for m in result["Messages"] if m["Severity"] >= LINT_WARNING]
    if problems or result["Errors"]:
        # helm-sdkpy drops lint message texts; a render names the failing template.
        render(values)
    assert problems == [], result
    assert not result["Errors"], result


def test_lint_catches_a_broken_values_file() -> None:
    result = lint({"image": {"pullPolicy": "Sometimes"}})
    assert any(m["Severity"] > LINT_WARNING for m in result["Messages"])


@pytest.mark.parametrize(
    ("values", "error"),
    [
        ({"image": {"tagg": "1"}}, "tagg"),
        ({"profile": "tpu"}, "/profile"),
        (
            {"quorum": {"models": [{"id": "m", "source": {"hub": "a/b"}, "engine": {"tensor_paralel_size": 2}}]}},
            "tensor_paralel_size",
        ),
        (
            {"quorum": {"models": [{"id": "m", "source": {"hub": "a/b"}, "deployment": {"num_replicas": 0}}]}},
            "/quorum/models/0/deployment/num_replicas",
        ),
        ({"quorum": {"models": [{"id": "m", "source": {"s3": "bucket"}}]}}, "s3"),
        ({"quorum": {"models": [{"id": "-bad", "source": {"hub": "a/b"}}]}}, "/quorum/models/0/id"),
        ({"quorum": {"models": []}}, "/quorum/models"),
        ({"quorum": {"gateway": {"max_n": 0}}}, "/quorum/gateway/max_n"),
        ({"quorum": {"telemetry": {"exporter": "jaeger"}}}, "/quorum/telemetry/exporter"),
        ({"auth": {"tokens": ["short"]}}, "/auth/tokens/0"),
    ],
)
def test_helm_enforces_the_values_schema(values: dict[str, Any], error: str) -> None:
    """Helm itself rejects bad values through values.schema.json, including QuorumConfig's own rules."""
    with pytest.raises(Exception, match=r"(?s)values don't meet the specifications of the schema.*" + error):
        render(values)


def test_notes_print_the_grpc_endpoint_and_a_first_command() -> None:
    notes = render_notes()
    assert "quorum-grpc.quorum.svc.cluster.local:50051 (bearer token required)" in notes
    assert "kubectl -n quorum port-forward svc/quorum-grpc 50051:50051" in notes
    assert (
        "kubectl -n quorum get secret quorum-auth -o jsonpath='{.data.tokens}' | base64 -d | "
        "grep -v '^[[:space:]]*#' | head -n 1 > quorum-token"
    ) in notes
    assert "emptying it revokes every token" in notes
    assert (
        'grpcurl -plaintext -H "authorization: Bearer $QUORUM_TOKEN" localhost:50051 '
        "quorum.v1.InferenceService/ListModels"
    ) in notes
    assert "gRPC is plaintext (tls.enabled: false)" in notes
    assert 'quorum chat --target localhost:50051 --token-file quorum-token --model qwen2.5-1.5b-instruct "' in notes
    open_notes = render_notes({"auth": {"enabled": False}})
    assert "WARNING: auth.enabled is false" in open_notes
    assert "grpcurl -plaintext localhost:50051 quorum.v1.InferenceService/ListModels" in open_notes
    secured = render_notes(load_values(*PROFILES["gpu"]))
    assert "(TLS) (bearer token required)" in secured
    assert (
        'grpcurl -cacert ca.crt -servername quorum-grpc.quorum.svc -H "authorization: Bearer $QUORUM_TOKEN" '
        "localhost:50051 quorum.v1.InferenceService/ListModels"
    ) in secured
    assert "External address" in secured


def test_renders_the_expected_objects(renderings: dict[str, Rendering]) -> None:
    def kinds(rendering: Rendering) -> list[str]:
        return sorted(f"{o['kind']}/{o['metadata']['name']}" for o in rendering.objects)

    base = [
        "ConfigMap/quorum-dashboard",
        "NetworkPolicy/quorum-gateway",
        "NetworkPolicy/quorum-kuberay",
        "NetworkPolicy/quorum-ray",
        "PodDisruptionBudget/quorum",
        "RayService/quorum",
        "Service/quorum-grpc",
    ]
    assert kinds(renderings["default"]) == sorted([*base, "Secret/quorum-auth"])  # the generated token
    assert kinds(renderings["cpu-dev"]) == base  # its Secret is created beforehand (auth.existingSecret)
    gpu = [
        *base,
        "NetworkPolicy/quorum-metrics",
        "PrometheusRule/quorum",
        "Service/quorum-metrics",
        "ServiceMonitor/quorum",
    ]
    assert kinds(renderings["gpu"]) == sorted(gpu)
    for rendering in renderings.values():
        for obj in rendering.objects:
            assert obj["metadata"]["namespace"] == "quorum"
            assert obj["metadata"]["labels"]["app.kubernetes.io/instance"] == "quorum"


def test_long_release_names_keep_kuberay_names_short() -> None:
    rendering = render(release="a-very-long-release-name-for-the-llm-cluster-in-prod1")
    for obj in rendering.objects:
        assert len(obj["metadata"]["name"]) <= 63
    assert len(rendering.one("RayService")["metadata"]["name"]) <= 40


def test_ci_values_files_exist() -> None:
    for files in PROFILES.values():
        for file in files:
            assert Path(file).is_file()
