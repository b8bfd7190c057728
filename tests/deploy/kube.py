"""Helpers to look inside rendered objects: the RayService's pod templates and its serveConfigV2."""

from __future__ import annotations

from typing import Any

import yaml

from .helm_render import Rendering

GRPC_PORT = 50051
OPENAI_PORT = 8000


def rayservice(rendering: Rendering) -> dict[str, Any]:
    return rendering.one("RayService")


def cluster_spec(rendering: Rendering) -> dict[str, Any]:
    spec: dict[str, Any] = rayservice(rendering)["spec"]["rayClusterConfig"]
    return spec


def head_template(rendering: Rendering) -> dict[str, Any]:
    template: dict[str, Any] = cluster_spec(rendering)["headGroupSpec"]["template"]
    return template


def worker_groups(rendering: Rendering) -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = cluster_spec(rendering).get("workerGroupSpecs") or []
    return groups


def pod_templates(rendering: Rendering) -> list[tuple[str, dict[str, Any]]]:
    """(name, pod template) of the head and of every worker group."""
    found = [("head", head_template(rendering))]
    found += [(group["groupName"], group["template"]) for group in worker_groups(rendering)]
    return found


def container(template: dict[str, Any]) -> dict[str, Any]:
    """The Ray container (KubeRay runs Ray in the first one)."""
    first: dict[str, Any] = template["spec"]["containers"][0]
    return first


def mounts(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """mountPath -> volumeMount of the Ray container."""
    return {m["mountPath"]: m for m in container(template).get("volumeMounts", [])}


def volumes(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in template["spec"].get("volumes", [])}


def env(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container(template).get("env", [])}


def serve_config(rendering: Rendering) -> dict[str, Any]:
    """serveConfigV2, parsed (it is a YAML string in the RayService)."""
    parsed: dict[str, Any] = yaml.safe_load(rayservice(rendering)["spec"]["serveConfigV2"])
    return parsed


def quorum_app(rendering: Rendering) -> dict[str, Any]:
    apps = serve_config(rendering)["applications"]
    assert len(apps) == 1, apps
    app: dict[str, Any] = apps[0]
    return app


def quorum_config(rendering: Rendering) -> dict[str, Any]:
    """The inline QuorumConfig passed as args.config to quorum.services.app:app_builder."""
    config: dict[str, Any] = quorum_app(rendering)["args"]["config"]
    return config


def as_pods(rendering: Rendering) -> list[dict[str, Any]]:
    """The RayService's pod templates as Pod objects, so pod-level scanners see what KubeRay will create."""
    name = rayservice(rendering)["metadata"]["name"]
    namespace = rayservice(rendering)["metadata"].get("namespace")
    pods = []
    for group, template in pod_templates(rendering):
        metadata = {**template.get("metadata", {}), "name": f"{name}-{group}"}
        if namespace:
            metadata["namespace"] = namespace
        pods.append({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": template["spec"]})
    return pods
