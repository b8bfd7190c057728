"""The application builder: config -> Ray Serve application.

One import path for every way quorum is started:
- Python: ``serve.run(build_app(config))`` (what ``quorum up`` does);
- Serve YAML / KubeRay RayService: ``import_path: quorum.services.app:app_builder``
  with ``args: {config: <path or inline mapping>}``.
"""

from __future__ import annotations

from typing import Any

from ray import serve
from ray.serve import Application

from quorum.cluster.config import DEFAULT_CONFIG, QuorumConfig, load_config, parse_config
from quorum.cluster.deployments import llm_server_app

from .gateway import Gateway
from .reasoning_server import ReasoningServer


def front_actor_options(label_selector: dict[str, str]) -> dict[str, Any]:
    """Gateway and reasoning replicas reserve no CPU; a label selector pins them to some nodes (e.g. the head)."""
    options: dict[str, Any] = {"num_cpus": 0}
    if label_selector:
        options["label_selector"] = dict(label_selector)
    return options


def build_app(config: QuorumConfig) -> Application:
    """The gateway ingress (gRPC + OpenAI HTTP) bound to one LLM-server deployment per model and the reasoning one."""
    handles = {model.id: llm_server_app(model, config) for model in config.models}
    reasoning = serve.deployment(ReasoningServer).options(
        name="reasoning",
        num_replicas=config.reasoning.num_replicas,
        ray_actor_options=front_actor_options(config.reasoning.label_selector),
        max_ongoing_requests=1_000,
        logging_config={"enable_access_log": False},
    )
    # One deployment, both protocols: the replica runs the gRPC server and is the HTTP ingress.
    gateway = serve.deployment(serve.ingress()(Gateway)).options(
        name="gateway",
        num_replicas=config.gateway.num_replicas,
        ray_actor_options=front_actor_options(config.gateway.label_selector),
        max_ongoing_requests=10_000,
        logging_config={"enable_access_log": False},
        graceful_shutdown_timeout_s=config.gateway.graceful_shutdown_s + 5,
    )
    return gateway.bind(config, handles, reasoning.bind(config, handles))


def app_builder(args: dict[str, Any]) -> Application:
    """Serve's typed-builder hook: ``args.config`` is a YAML path or an inline mapping."""
    source = args.get("config", str(DEFAULT_CONFIG))
    config = parse_config(source, origin="args.config") if isinstance(source, dict) else load_config(source)
    return build_app(config)
