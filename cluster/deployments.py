"""Serve deployment options computed from the config (no decorators on the classes)."""

from __future__ import annotations

from typing import Any

from ray import serve
from ray.serve import Application
from ray.serve.config import RequestRouterConfig

from .config import ModelConfig, QuorumConfig
from .llm_server import LLMServer

PREFIX_ROUTER = "quorum.cluster.routing:PrefixAwareRouter"


def llm_deployment_name(model: ModelConfig) -> str:
    return f"llm-{model.id}"


def placement(model: ModelConfig) -> dict[str, Any]:
    """Placement-group options of one replica: a bundle per engine rank (none for a single-rank engine).

    GPU hosts: each bundle holds one accelerator; the replica actor shares the first bundle and the
    vLLM Ray workers take the bundles (``distributed_executor_backend='ray'`` finds the replica's group).
    Tensor-parallel ranks must share a node (STRICT_PACK); with pipeline stages the group may span
    nodes (PACK keeps consecutive ranks, hence each stage's TP group, together where it can).
    CPU hosts: each bundle reserves the replica's CPUs for one rank; the ranks are local processes
    (``mp``), so the whole group sits on one node. Every bundle carries the deployment's label selector.
    """
    world = model.world_size
    if world == 1:
        return {}
    selector = model.deployment.label_selector
    cpus = model.deployment.num_cpus
    if model.uses_gpus:
        bundles: list[dict[str, float]] = [{"CPU": cpus, "GPU": 1}] + [{"GPU": 1} for _ in range(world - 1)]
        spread = model.engine.pipeline_parallel_size > 1 and model.executor_backend == "ray"
        strategy = "PACK" if spread else "STRICT_PACK"
    else:
        bundles = [{"CPU": cpus} for _ in range(world)]
        strategy = "STRICT_PACK"
    options: dict[str, Any] = {"placement_group_bundles": bundles, "placement_group_strategy": strategy}
    if selector:
        options["placement_group_bundle_label_selector"] = [dict(selector) for _ in bundles]
    return options


def spread(model: ModelConfig) -> dict[str, Any]:
    """Serve's ``max_replicas_per_node``: with 1, losing a node loses one replica of the model, not all."""
    limit = model.deployment.max_replicas_per_node
    return {} if limit is None else {"max_replicas_per_node": limit}


def actor_options(model: ModelConfig) -> dict[str, Any]:
    """The replica actor's ``ray_actor_options``: its CPUs and accelerators, and its node labels.

    NOTE: a single-rank replica carries the label selector itself; a multi-rank one through its
    placement group's bundles (see :func:`placement`).
    """
    options: dict[str, Any] = {
        "num_cpus": model.deployment.num_cpus,
        "num_gpus": model.deployment.num_gpus if model.world_size == 1 else 0,
    }
    if model.deployment.label_selector and model.world_size == 1:
        options["label_selector"] = dict(model.deployment.label_selector)
    return options


def scaling(model: ModelConfig) -> dict[str, Any]:
    """Fixed ``num_replicas`` or Serve's ``autoscaling_config``."""
    auto = model.deployment.autoscaling
    if auto is None:
        return {"num_replicas": model.deployment.num_replicas}
    config: dict[str, Any] = {
        "min_replicas": auto.min_replicas,
        "max_replicas": auto.max_replicas,
        "target_ongoing_requests": auto.target_ongoing_requests,
        "upscale_delay_s": auto.upscale_delay_s,
        "downscale_delay_s": auto.downscale_delay_s,
    }
    if auto.initial_replicas is not None:
        config["initial_replicas"] = auto.initial_replicas
    return {"num_replicas": "auto", "autoscaling_config": config}


def router_config(model: ModelConfig, config: QuorumConfig) -> RequestRouterConfig:
    """The request router every handle to this model's deployment uses (gateway and reasoning alike)."""
    routing = model.deployment.routing
    if routing.policy == "power_of_two":
        return RequestRouterConfig(request_routing_stats_period_s=routing.stats_period_s)  # Serve's default router
    return RequestRouterConfig(
        request_router_class=PREFIX_ROUTER,
        request_router_kwargs={"model": model.model_dump(mode="json"), "model_cache_dir": config.model_cache_dir},
        request_routing_stats_period_s=routing.stats_period_s,
    )


def llm_server_app(model: ModelConfig, config: QuorumConfig) -> Application:
    """One LLM-server deployment for ``model``, bound to its constructor arguments."""
    # NOTE: with a placement group the actor's own resources must fit in the first bundle; its
    # accelerators are the workers' (one per bundle), not the actor's.
    options: dict[str, Any] = {
        "name": llm_deployment_name(model),
        **scaling(model),
        **placement(model),
        **spread(model),
        "max_ongoing_requests": model.deployment.max_ongoing_requests,
        "max_queued_requests": model.deployment.max_queued_requests or -1,
        "request_router_config": router_config(model, config),
        "ray_actor_options": actor_options(model),
        "health_check_period_s": 10,
        "health_check_timeout_s": 30,
        "graceful_shutdown_timeout_s": 20,
        # One access-log line per streamed request and per health probe costs CPU next to the engine.
        "logging_config": {"enable_access_log": False},
    }
    deployment = serve.deployment(LLMServer).options(**options)
    return deployment.bind(
        model, config.model_cache_dir, config.telemetry, config.gateway.default_max_tokens, config.constraints
    )
