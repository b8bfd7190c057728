"""Serve deployment options computed from the config (no decorators on the classes)."""

from __future__ import annotations

from typing import Any

from ray import serve
from ray.serve import Application

from .config import ModelConfig, QuorumConfig
from .llm_server import LLMServer


def llm_deployment_name(model: ModelConfig) -> str:
    return f"llm-{model.id}"


def _runtime_env(model: ModelConfig) -> dict[str, Any]:
    env: dict[str, str] = {}
    if model.engine.cpu_threads_bind is not None:
        env["VLLM_CPU_OMP_THREADS_BIND"] = model.engine.cpu_threads_bind
    return {"env_vars": env} if env else {}


def llm_server_app(model: ModelConfig, config: QuorumConfig) -> Application:
    """One LLM-server deployment for ``model``, bound to its constructor arguments."""
    options: dict[str, Any] = {
        "name": llm_deployment_name(model),
        "num_replicas": model.deployment.num_replicas,
        "max_ongoing_requests": model.deployment.max_ongoing_requests,
        "max_queued_requests": model.deployment.max_queued_requests or -1,
        "ray_actor_options": {
            "num_cpus": model.deployment.num_cpus,
            "num_gpus": model.deployment.num_gpus,
            "runtime_env": _runtime_env(model),
        },
        "health_check_period_s": 10,
        "health_check_timeout_s": 30,
        "graceful_shutdown_timeout_s": 20,
        # One access-log line per streamed request and per health probe costs CPU next to the engine.
        "logging_config": {"enable_access_log": False},
    }
    deployment = serve.deployment(LLMServer).options(**options)
    return deployment.bind(model, config.model_cache_dir, config.telemetry, config.gateway.default_max_tokens)
