"""What the chart renders for key values: GPUs, model sources, auth, TLS, profiles, network exposure, security."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import pytest

from .helm_render import Rendering, render
from .kube import (
    GRPC_PORT,
    OPENAI_PORT,
    cluster_spec,
    container,
    env,
    head_template,
    mounts,
    pod_templates,
    quorum_app,
    quorum_config,
    volumes,
    worker_groups,
)

GPU = "nvidia.com/gpu"


def model(model_id: str = "m", **extra: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"id": model_id, "source": {"hub": "org/model"}}
    entry.update(extra)
    return entry


def with_models(*models: dict[str, Any], **values: Any) -> Rendering:
    return render({"quorum": {"models": list(models)}, **values})


# --- GPUs -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("tp", "pp"), [(1, 1), (2, 1), (4, 1), (2, 2), (1, 3)])
def test_worker_gpus_follow_tensor_times_pipeline_parallel(tp: int, pp: int) -> None:
    rendering = with_models(model(engine={"tensor_parallel_size": tp, "pipeline_parallel_size": pp}))
    (group,) = worker_groups(rendering)
    resources = container(group["template"])["resources"]
    assert resources["requests"][GPU] == tp * pp
    assert resources["limits"][GPU] == tp * pp
    # One Serve replica owns all GPUs of its pod.
    assert quorum_config(rendering)["models"][0]["deployment"]["num_gpus"] == tp * pp


def test_one_worker_group_per_model_sized_by_its_replicas() -> None:
    rendering = with_models(
        model("a", engine={"tensor_parallel_size": 2}, deployment={"num_replicas": 3}),
        model("B_model.v2", engine={"tensor_parallel_size": 1}),
    )
    groups = {g["groupName"]: g for g in worker_groups(rendering)}
    assert set(groups) == {"gpu-a", "gpu-b-model-v2"}
    assert (groups["gpu-a"]["replicas"], groups["gpu-a"]["minReplicas"], groups["gpu-a"]["maxReplicas"]) == (3, 3, 3)
    assert container(groups["gpu-b-model-v2"]["template"])["resources"]["limits"][GPU] == 1


def test_gpu_workers_get_node_selector_tolerations_and_per_model_overrides() -> None:
    rendering = with_models(
        model("a"), model("b", workerGroup={"nodeSelector": {"gpu": "h100"}, "resources": {"limits": {"cpu": "2"}}})
    )
    groups = {g["groupName"]: g["template"]["spec"] for g in worker_groups(rendering)}
    assert groups["gpu-a"]["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert groups["gpu-a"]["tolerations"][0]["key"] == GPU
    assert groups["gpu-b"]["nodeSelector"] == {"nvidia.com/gpu.present": "true", "gpu": "h100"}
    assert groups["gpu-b"]["containers"][0]["resources"]["limits"] == {"cpu": "2", "memory": "64Gi", GPU: 1}


def test_explicit_num_gpus_is_kept() -> None:
    rendering = with_models(model(engine={"tensor_parallel_size": 2}, deployment={"num_gpus": 0.5}))
    assert quorum_config(rendering)["models"][0]["deployment"]["num_gpus"] == 0.5


def test_head_has_no_gpu_and_no_logical_cpus_in_the_gpu_profile(renderings: dict[str, Rendering]) -> None:
    spec = cluster_spec(renderings["default"])["headGroupSpec"]
    assert spec["rayStartParams"]["num-cpus"] == "0"
    resources = container(spec["template"])["resources"]
    assert GPU not in resources["requests"]
    assert GPU not in resources["limits"]


# --- serve autoscaling / Ray autoscaler ----------------------------------------------------------


def test_serve_autoscaling_drives_the_worker_group_bounds() -> None:
    autoscaling = {"min_replicas": 1, "max_replicas": 4, "target_ongoing_requests": 32}
    rendering = with_models(model("a", serveAutoscaling=autoscaling), ray={"autoscaler": {"enabled": True}})
    (group,) = worker_groups(rendering)
    assert (group["replicas"], group["minReplicas"], group["maxReplicas"]) == (1, 1, 4)
    overrides = {d["name"]: d for d in quorum_app(rendering)["deployments"]}
    assert overrides["llm-a"] == {"name": "llm-a", "num_replicas": "auto", "autoscaling_config": autoscaling}
    spec = cluster_spec(rendering)
    assert spec["enableInTreeAutoscaling"] is True
    assert spec["autoscalerOptions"]["securityContext"]["readOnlyRootFilesystem"] is True
    assert "limits" in spec["autoscalerOptions"]["resources"]


def test_serve_autoscaling_without_the_ray_autoscaler_is_refused() -> None:
    with pytest.raises(Exception, match=r"serveAutoscaling needs ray.autoscaler.enabled"):
        with_models(model("a", serveAutoscaling={"min_replicas": 1, "max_replicas": 2}))


def test_head_service_account_token_only_with_the_autoscaler(renderings: dict[str, Rendering]) -> None:
    for name, rendering in renderings.items():
        autoscaling = cluster_spec(rendering)["enableInTreeAutoscaling"]
        assert head_template(rendering)["spec"]["automountServiceAccountToken"] is autoscaling, name
        for group in worker_groups(rendering):
            assert group["template"]["spec"]["automountServiceAccountToken"] is False


# --- the gateway on the head ---------------------------------------------------------------------


def test_gateway_is_pinned_to_the_head(rendering: Rendering) -> None:
    overrides = {d["name"]: d for d in quorum_app(rendering)["deployments"]}
    assert overrides["gateway"]["ray_actor_options"] == {"num_cpus": 0, "resources": {"quorum_gateway": 0.001}}
    head = cluster_spec(rendering)["headGroupSpec"]["rayStartParams"]
    assert json.loads(json.loads(head["resources"])) == {"quorum_gateway": 1000}
    for group in worker_groups(rendering):
        assert "quorum_gateway" not in json.dumps(group["rayStartParams"])


def test_grpc_service_targets_the_gateway_port_on_the_head(rendering: Rendering) -> None:
    service = rendering.one("Service", "-grpc")
    labels = head_template(rendering)["metadata"]["labels"]
    selector = {k: v for k, v in service["spec"]["selector"].items() if k != "ray.io/serve"}
    assert selector.items() <= labels.items()
    assert labels["app.kubernetes.io/component"] == "ray-head"
    (port,) = service["spec"]["ports"]
    ports = {p["name"]: p["containerPort"] for p in container(head_template(rendering))["ports"]}
    assert ports[port["targetPort"]] == GRPC_PORT == quorum_config(rendering)["gateway"]["grpc_port"]
    for group in worker_groups(rendering):
        assert not selector.items() <= group["template"]["metadata"]["labels"].items()


def test_openai_service_is_off_by_default_and_targets_port_8000(renderings: dict[str, Rendering]) -> None:
    for rendering in renderings.values():
        assert rendering.find("Service", "-openai") == []
    rendering = render({"openai": {"enabled": True}})
    (port,) = rendering.one("Service", "-openai")["spec"]["ports"]
    assert (port["port"], port["targetPort"]) == (OPENAI_PORT, "serve")
    gateway_policy = rendering.one("NetworkPolicy", "-gateway")
    assert {p["port"] for p in gateway_policy["spec"]["ingress"][0]["ports"]} == {GRPC_PORT, OPENAI_PORT}


# --- model sources --------------------------------------------------------------------------------


def test_pvc_source_is_mounted_read_only_and_passed_as_source() -> None:
    rendering = with_models(
        model("a", source={"pvc": {"claimName": "weights", "path": "/llama/8b/"}}),
        model("b", source={"pvc": {"claimName": "weights"}}),
        model("c", source={"pvc": {"claimName": "team.models"}}),
    )
    sources = [m["source"] for m in quorum_config(rendering)["models"]]
    assert sources == ["/models/weights/llama/8b", "/models/weights", "/models/team.models"]
    for _, template in pod_templates(rendering):
        claims = [v for v in volumes(template).values() if "persistentVolumeClaim" in v]
        assert claims == [
            {"name": "models-weights", "persistentVolumeClaim": {"claimName": "weights", "readOnly": True}},
            {"name": "models-team-models", "persistentVolumeClaim": {"claimName": "team.models", "readOnly": True}},
        ]
        assert mounts(template)["/models/weights"]["readOnly"] is True
        assert mounts(template)["/models/team.models"]["name"] == "models-team-models"


def test_hub_source_with_token_secret_as_env() -> None:
    rendering = render({"hub": {"token": {"value": "hf_secret"}}})
    secret = rendering.one("Secret", "-hub-token")
    assert base64.b64decode(secret["data"]["token"]) == b"hf_secret"
    assert quorum_config(rendering)["models"][0]["source"] == "Qwen/Qwen2.5-1.5B-Instruct"
    for _, template in pod_templates(rendering):
        ref = env(template)["HF_TOKEN"]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": secret["metadata"]["name"], "key": "token"}


def test_hub_token_from_an_existing_secret_as_a_file() -> None:
    rendering = render({"hub": {"token": {"existingSecret": "hf", "key": "t", "asFile": True}}})
    # No hub-token Secret of the chart's own (the generated auth Secret is the only one).
    assert [s["metadata"]["name"] for s in rendering.find("Secret")] == ["quorum-auth"]
    for _, template in pod_templates(rendering):
        assert "HF_TOKEN" not in env(template)
        assert env(template)["HF_TOKEN_PATH"]["value"] == "/etc/quorum/hub/t"
        assert volumes(template)["hub-token"]["secret"]["secretName"] == "hf"
        assert mounts(template)["/etc/quorum/hub"]["readOnly"] is True


def test_no_token_for_public_models(renderings: dict[str, Rendering]) -> None:
    rendering = renderings["default"]
    for _, template in pod_templates(rendering):
        assert not {"HF_TOKEN", "HF_TOKEN_PATH"} & set(env(template))


def test_a_model_needs_exactly_one_source() -> None:
    with pytest.raises(Exception, match="source"):
        with_models(model("a", source={"hub": "x/y", "embedded": "smollm2-135m-instruct"}))


# --- the cpu dev profile -------------------------------------------------------------------------


def test_cpu_dev_profile_has_no_gpu_and_serves_the_embedded_model(renderings: dict[str, Rendering]) -> None:
    rendering = renderings["cpu-dev"]
    assert worker_groups(rendering) == []
    assert "workerGroupSpecs" not in cluster_spec(rendering)
    assert GPU not in json.dumps(rendering.one("RayService"))
    (entry,) = quorum_config(rendering)["models"]
    assert entry["source"] == "embedded:smollm2-135m-instruct"
    assert entry["deployment"]["num_gpus"] == 0
    head = cluster_spec(rendering)["headGroupSpec"]
    assert "num-cpus" not in head["rayStartParams"], "the head's CPUs run the engine in the cpu profile"
    assert container(head["template"])["image"] == "quorum:0.1.0-cpu"


def test_cpu_profile_forces_num_gpus_to_zero() -> None:
    rendering = render({"profile": "cpu", "quorum": {"models": [model(deployment={"num_gpus": 1})]}})
    assert quorum_config(rendering)["models"][0]["deployment"]["num_gpus"] == 0
    assert worker_groups(rendering) == []


# --- auth and TLS --------------------------------------------------------------------------------


def test_auth_is_on_by_default_with_a_generated_token(renderings: dict[str, Rendering]) -> None:
    rendering = renderings["default"]
    assert quorum_config(rendering)["gateway"]["auth_tokens_file"] == "/etc/quorum/auth/tokens"
    assert mounts(head_template(rendering))["/etc/quorum/auth"]["readOnly"] is True
    token = base64.b64decode(rendering.one("Secret", "-auth")["data"]["tokens"]).decode()
    assert re.fullmatch(r"[A-Za-z0-9]{48}\n", token)
    again = base64.b64decode(render().one("Secret", "-auth")["data"]["tokens"]).decode()
    assert again != token  # generated per release (an upgrade reads the existing Secret back instead)
    assert quorum_config(renderings["cpu-dev"])["gateway"]["auth_tokens_file"] == "/etc/quorum/auth/tokens"


def test_auth_can_be_turned_off() -> None:
    rendering = render({"auth": {"enabled": False}})
    assert "auth_tokens_file" not in quorum_config(rendering)["gateway"]
    assert "/etc/quorum/auth" not in mounts(head_template(rendering))
    assert rendering.find("Secret") == []


def test_auth_on_creates_mounts_and_references_the_tokens_file() -> None:
    rendering = render({"auth": {"enabled": True, "tokens": ["a" * 32, "b" * 32]}})
    secret = rendering.one("Secret", "-auth")
    assert base64.b64decode(secret["data"]["tokens"]).decode() == f"{'a' * 32}\n{'b' * 32}\n"
    head = head_template(rendering)
    assert mounts(head)["/etc/quorum/auth"]["readOnly"] is True
    volume = volumes(head)[mounts(head)["/etc/quorum/auth"]["name"]]
    assert volume["secret"]["secretName"] == secret["metadata"]["name"]
    assert volume["secret"]["items"] == [{"key": "tokens", "path": "tokens"}]
    assert quorum_config(rendering)["gateway"]["auth_tokens_file"] == "/etc/quorum/auth/tokens"
    for group in worker_groups(rendering):
        assert "/etc/quorum/auth" not in mounts(group["template"])


def test_auth_with_an_existing_secret_creates_none(renderings: dict[str, Rendering]) -> None:
    rendering = renderings["gpu"]
    assert rendering.find("Secret") == []
    head = head_template(rendering)
    assert volumes(head)["auth"]["secret"]["secretName"] == "quorum-auth"
    assert quorum_config(rendering)["gateway"]["auth_tokens_file"] == "/etc/quorum/auth/tokens"


def test_tls_on_mounts_the_secret_and_references_it() -> None:
    rendering = render({"tls": {"enabled": True, "cert": "CERT", "key": "KEY", "clientAuth": True}})
    secret = rendering.one("Secret", "-tls")
    assert secret["type"] == "kubernetes.io/tls"
    head = head_template(rendering)
    assert mounts(head)["/etc/quorum/tls"]["readOnly"] is True
    assert volumes(head)[mounts(head)["/etc/quorum/tls"]["name"]]["secret"]["secretName"] == secret["metadata"]["name"]
    gateway = quorum_config(rendering)["gateway"]
    assert (gateway["tls_cert_file"], gateway["tls_key_file"], gateway["tls_client_ca_file"]) == (
        "/etc/quorum/tls/tls.crt",
        "/etc/quorum/tls/tls.key",
        "/etc/quorum/tls/ca.crt",
    )


def test_tls_with_an_existing_secret(renderings: dict[str, Rendering]) -> None:
    head = head_template(renderings["gpu"])
    assert volumes(head)["tls"]["secret"]["secretName"] == "quorum-grpc-tls"
    assert "tls_client_ca_file" not in quorum_config(renderings["gpu"])["gateway"]


def test_tls_is_off_by_default(renderings: dict[str, Rendering]) -> None:
    gateway = quorum_config(renderings["default"])["gateway"]
    assert not {"tls_cert_file", "tls_key_file"} & set(gateway)
    assert "/etc/quorum/tls" not in mounts(head_template(renderings["default"]))


# --- network exposure ----------------------------------------------------------------------------


def _release_selector(rendering: Rendering) -> dict[str, str]:
    labels: dict[str, str] = rendering.one("PodDisruptionBudget")["spec"]["selector"]["matchLabels"]
    return labels


def test_network_policies_expose_only_the_gateway_ports(rendering: Rendering) -> None:
    """Every ingress rule either comes from the release's own pods (Ray) or opens only a gateway port --
    except the KubeRay operator's dashboard ports and, with the ServiceMonitor, the metrics port, each
    restricted to its peers."""
    release = _release_selector(rendering)
    gateway_ports = {GRPC_PORT} | ({OPENAI_PORT} if rendering.find("Service", "-openai") else set())
    policies = rendering.find("NetworkPolicy")
    assert policies, "NetworkPolicy is on by default"
    opened: dict[str, set[int]] = {}
    for policy in policies:
        spec = policy["spec"]
        assert spec["policyTypes"] == ["Ingress"]
        assert release.items() <= spec["podSelector"]["matchLabels"].items()
        for rule in spec["ingress"]:
            peers = rule.get("from", [])
            if peers == [{"podSelector": {"matchLabels": release}}]:
                assert "ports" not in rule  # Ray uses many dynamic ports between its own pods
                continue
            ports = {p["port"] for p in rule["ports"]}
            opened[policy["metadata"]["name"].rsplit("-", 1)[1]] = ports
            if ports <= gateway_ports:
                assert spec["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "ray-head"
            elif ports == {8265, 52365, 8000}:
                (peer,) = peers
                assert set(peer) == {"namespaceSelector", "podSelector"}, "operator rule must name its pods"
            else:
                assert ports == {8080}, ports
                assert rendering.find("ServiceMonitor"), "metrics port open without a ServiceMonitor"
                assert peers, "the metrics port is open only to the monitoring peers"
    assert opened["gateway"] == gateway_ports


def test_network_policy_peers_for_the_gateway(renderings: dict[str, Rendering]) -> None:
    rule = renderings["gpu"].one("NetworkPolicy", "-gateway")["spec"]["ingress"][0]
    assert rule["from"][0] == {"ipBlock": {"cidr": "10.0.0.0/8"}}
    assert "from" not in renderings["default"].one("NetworkPolicy", "-gateway")["spec"]["ingress"][0]


def test_network_policies_can_be_turned_off() -> None:
    assert render({"networkPolicy": {"enabled": False}}).find("NetworkPolicy") == []


# --- security defaults ---------------------------------------------------------------------------


def test_every_ray_container_is_hardened(rendering: Rendering) -> None:
    for name, template in pod_templates(rendering):
        pod = template["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == 1000
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["enableServiceLinks"] is False
        for item in pod["containers"]:
            context = item["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["capabilities"]["drop"] == ["ALL"], name
            assert context["seccompProfile"] == {"type": "RuntimeDefault"}, name
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(item["resources"][kind]), (name, kind)


def test_writable_paths_are_emptydirs_and_shm_is_in_memory(rendering: Rendering) -> None:
    for name, template in pod_templates(rendering):
        mounted = mounts(template)
        for path in ("/tmp", "/home/ray/.cache", "/dev/shm"):
            assert "emptyDir" in volumes(template)[mounted[path]["name"]], (name, path)
        shm = volumes(template)[mounted["/dev/shm"]["name"]]["emptyDir"]
        assert shm["medium"] == "Memory", name
        assert shm["sizeLimit"], name
    # The image's embedded model, prepared at build time (the root filesystem is read-only).
    assert quorum_config(rendering)["model_cache_dir"] == "/opt/quorum/models"


def test_image_defaults_to_the_app_version_and_profile_and_can_use_a_digest(renderings: dict[str, Rendering]) -> None:
    assert container(head_template(renderings["default"]))["image"] == "quorum:0.1.0-gpu"
    assert container(head_template(renderings["cpu-dev"]))["image"] == "quorum:0.1.0-cpu"
    digest = "sha256:" + "a" * 64
    rendering = render({"image": {"digest": digest, "pullPolicy": "Always"}})
    for _, template in pod_templates(rendering):
        assert container(template)["image"] == f"quorum@{digest}"
        skips = " ".join(template["metadata"]["annotations"].values())
        assert "CKV_K8S_43" not in skips
        assert "CKV_K8S_15" not in skips


# --- observability -------------------------------------------------------------------------------


def test_service_monitor_is_optional_and_scrapes_ray_metrics(renderings: dict[str, Rendering]) -> None:
    assert renderings["default"].find("ServiceMonitor") == []
    rendering = renderings["gpu"]
    monitor = rendering.one("ServiceMonitor")
    service = rendering.one("Service", "-metrics")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"] == "metrics"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    for _, template in pod_templates(rendering):
        assert {"name": "metrics", "containerPort": 8080, "protocol": "TCP"} in container(template)["ports"]


def test_grafana_dashboard_has_the_serving_panels(rendering: Rendering) -> None:
    config_map = rendering.one("ConfigMap", "-dashboard")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(config_map["data"]["quorum.json"])
    queries = {p["title"]: " ".join(t["expr"] for t in p["targets"]) for p in dashboard["panels"]}
    # The names as Ray's metrics agent exports them; tests/integration/test_metrics.py checks every name
    # the dashboard uses against a live scrape.
    expected = {
        "Time to first token (TTFT)": ["ray_vllm_time_to_first_token_seconds_bucket"],
        "Inter-token latency": ["ray_vllm_inter_token_latency_seconds_bucket"],
        "End-to-end request latency": ["ray_vllm_e2e_request_latency_seconds_bucket"],
        "Requests waiting and running": ["ray_vllm_num_requests_waiting", "ray_vllm_num_requests_running"],
        "KV-cache usage": ["ray_vllm_kv_cache_usage_perc"],
        "Prefix-cache hit rate": ["ray_vllm_prefix_cache_hits_total", "ray_vllm_prefix_cache_queries_total"],
        "Tokens per second": ["ray_vllm_generation_tokens_total", "ray_vllm_prompt_tokens_total"],
        "gRPC errors by method and status": ["ray_quorum_grpc_requests_total"],
        "HTTP requests by status": ["ray_serve_num_http_requests_total"],
        "Reasoning runs": ["ray_quorum_reasoning_runs_total"],
        "Reasoning samples used and saved": ["ray_quorum_reasoning_samples_saved_total"],
    }
    for title, metrics in expected.items():
        for metric in metrics:
            assert metric in queries[title], (title, metric)
    assert "vllm:" not in json.dumps(dashboard), "vLLM's own names do not reach Prometheus through Ray"


def test_alert_rules_are_optional_and_take_their_thresholds_from_values(renderings: dict[str, Rendering]) -> None:
    assert renderings["default"].find("PrometheusRule") == []
    rule = renderings["gpu"].one("PrometheusRule")
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    (group,) = rule["spec"]["groups"]
    alerts = {r["alert"]: r for r in group["rules"]}
    assert set(alerts) == {"QuorumGrpcErrorRate", "QuorumHttpErrorRate", "QuorumKVCacheFull", "QuorumRequestsQueued"}
    assert alerts["QuorumGrpcErrorRate"]["expr"].rstrip().endswith("> 0.05")
    assert alerts["QuorumKVCacheFull"]["expr"].rstrip().endswith("> 0.95")
    assert "{{" not in json.dumps(rule)


def test_telemetry_otlp_endpoint_reaches_the_config(renderings: dict[str, Rendering]) -> None:
    telemetry = quorum_config(renderings["gpu"])["telemetry"]
    assert telemetry == {
        "exporter": "otlp",
        "otlp_endpoint": "http://otel-collector.observability.svc.cluster.local:4317",
        "service_name": "quorum",
    }


def test_pod_disruption_budget_covers_every_ray_pod(rendering: Rendering) -> None:
    selector = _release_selector(rendering)
    assert rendering.one("PodDisruptionBudget")["spec"]["maxUnavailable"] == 1
    for name, template in pod_templates(rendering):
        assert selector.items() <= template["metadata"]["labels"].items(), name
