"""Rendered objects against schemas: Kubernetes (strict), the KubeRay and Prometheus Operator CRDs
(trimmed copies), Ray Serve's config schema and quorum's own QuorumConfig."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest

from .helm_render import Rendering
from .kube import pod_templates, quorum_config, serve_config

SCHEMAS = Path(__file__).resolve().parent / "schemas"
# The oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and the newest kubernetes-validate knows.
KUBE_VERSIONS = ("1.29.0", "1.37.0")
CRD_SCHEMAS = {
    "RayService": "rayservice-ray.io-v1.schema.json",
    "ServiceMonitor": "servicemonitor-monitoring.coreos.com-v1.schema.json",
    "PrometheusRule": "prometheusrule-monitoring.coreos.com-v1.schema.json",
}
MODEL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")  # cluster/config.py _MODEL_ID


@cache
def schema(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((SCHEMAS / name).read_text())
    return loaded


def validator(name: str) -> jsonschema.protocols.Validator:
    document = schema(name)
    cls = jsonschema.validators.validator_for(document)
    cls.check_schema(document)
    return cls(document, format_checker=cls.FORMAT_CHECKER)


def errors(name: str, instance: Any) -> list[str]:
    found = validator(name).iter_errors(instance)
    return [f"{'.'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}" for e in found]


@pytest.mark.parametrize("version", KUBE_VERSIONS)
def test_builtin_objects_validate_strictly(rendering: Rendering, version: str) -> None:
    checked = 0
    for obj in rendering.objects:
        if obj["kind"] in CRD_SCHEMAS:
            continue
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']} (k8s {version}): {exc.message} at {list(exc.path)}")
        checked += 1
    assert checked >= 5


@pytest.mark.parametrize("version", KUBE_VERSIONS)
def test_ray_pod_templates_validate_strictly(rendering: Rendering, version: str) -> None:
    """The CRD embeds corev1.PodTemplateSpec: check each template against Kubernetes' own strict schema."""
    for group, template in pod_templates(rendering):
        wrapped = {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": group}, "template": template}
        try:
            kubernetes_validate.validate(wrapped, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"pod template {group} (k8s {version}): {exc.message} at {list(exc.path)}")


def test_custom_resources_match_their_crd_schemas(rendering: Rendering) -> None:
    kinds = {obj["kind"] for obj in rendering.objects}
    assert "RayService" in kinds
    for obj in rendering.objects:
        if obj["kind"] in CRD_SCHEMAS:
            assert errors(CRD_SCHEMAS[obj["kind"]], obj) == [], obj["metadata"]["name"]


def test_crd_schema_rejects_what_kuberay_would(rendering: Rendering) -> None:
    """The trimmed RayService schema is not vacuous: it catches an unknown field and a non-string rayStartParam."""
    import copy

    broken = copy.deepcopy(rendering.one("RayService"))
    broken["spec"]["rayClusterConfig"]["headGroupSpec"]["rayStartParams"]["num-cpus"] = 0
    broken["spec"]["rayClusterConfig"]["headGroupSpec"]["replicas"] = 1
    found = errors(CRD_SCHEMAS["RayService"], broken)
    assert any("num-cpus" in e for e in found), found
    assert any("replicas" in e for e in found), found


def test_serve_config_matches_ray_serve_schema(rendering: Rendering) -> None:
    """serveConfigV2 parses as YAML and is a valid Ray Serve config (ServeDeploySchema of the pinned Ray)."""
    config = serve_config(rendering)
    assert errors("ray-serve-deploy.schema.json", config) == []
    (app,) = config["applications"]
    assert app["import_path"] == "quorum.services.app:app_builder"
    assert isinstance(app["args"]["config"], dict), "args.config must be an inline mapping"


def test_quorum_config_validates_against_quorum_config_schema(rendering: Rendering) -> None:
    """args.config against QuorumConfig's JSON schema (extra="forbid" -> additionalProperties: false)."""
    config = quorum_config(rendering)
    assert errors("quorum-config.schema.json", config) == []
    # QuorumConfig's validators that a JSON schema cannot express.
    ids = [model["id"] for model in config["models"]]
    assert len(ids) == len(set(ids)), f"duplicate model ids {ids}"
    assert all(MODEL_ID.match(i) for i in ids), ids
    default = config["gateway"].get("default_model")
    assert default is None or default in ids


def test_quorum_config_gateway_listens_on_all_interfaces(rendering: Rendering) -> None:
    gateway = quorum_config(rendering)["gateway"]
    assert (gateway["host"], gateway["grpc_port"]) == ("0.0.0.0", 50051)


def test_quorum_config_schema_validation_is_not_vacuous(renderings: dict[str, Rendering]) -> None:
    config = json.loads(json.dumps(quorum_config(renderings["default"])))
    config["models"][0]["engine"]["tensor_paralel_size"] = 2
    config["gateway"]["grpc_port"] = 70000
    found = errors("quorum-config.schema.json", config)
    assert any("tensor_paralel_size" in e for e in found), found
    assert any("70000" in e for e in found), found
