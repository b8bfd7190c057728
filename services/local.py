"""Start and stop a whole quorum cluster on this machine: Ray, Serve, the gateway and the engines.

Used by ``quorum up``, the integration tests and the benchmarks, so all three
run the exact code path a deployment runs.
"""

from __future__ import annotations

import logging
import socket
from types import TracebackType

import ray
from ray import serve

from quorum.cluster.config import QuorumConfig

from .app import build_app
from .ray_head import start_ray

logger = logging.getLogger(__name__)


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


class ClusterStartError(RuntimeError):
    """The cluster did not become ready; the message says which model and why."""


class LocalCluster:
    """A quorum cluster on this machine; use as a context manager so everything is stopped."""

    def __init__(self, config: QuorumConfig, route_prefix: str = "/") -> None:
        """``route_prefix``: where Serve's HTTP proxy mounts this app (several apps can share one Serve)."""
        self.config = config
        self.route_prefix = route_prefix
        self.target = ""
        self._started_ray = False

    @property
    def http_url(self) -> str:
        """Base URL of the HTTP endpoint; OpenAI clients use ``f"{http_url}/v1"`` as their base URL."""
        gateway = self.config.gateway
        return f"http://{gateway.http_host}:{gateway.http_port}{self.route_prefix.rstrip('/')}"

    @property
    def metrics_url(self) -> str | None:
        """Ray's Prometheus endpoint on this machine's node (``ray.metrics_export_port``), once Ray runs.

        It serves the engine (``ray_vllm_*``), Serve (``ray_serve_*``) and quorum (``ray_quorum_*``) metrics
        of every replica on the node. None before Ray runs or if the node reports no metrics port.
        """
        if not ray.is_initialized():
            return None
        node_ip = ray.util.get_node_ip_address()
        for node in ray.nodes():
            port = node.get("MetricsExportPort")
            if node.get("Alive") and node.get("NodeManagerAddress") == node_ip and port:
                host = "127.0.0.1" if self._started_ray else node_ip
                return f"http://{host}:{port}/metrics"
        return None

    def start(self) -> str:
        """Start Ray (unless ``ray.address`` is set), Serve with its HTTP proxy, and the app; return the gRPC target.

        Serve's HTTP options are per Ray cluster: when Serve already runs, its proxy keeps its address.
        """
        if self.config.gateway.http_port == 0:  # Serve's proxy needs a concrete port: pick a free one
            gateway = self.config.gateway.model_copy(update={"http_port": _free_port(self.config.gateway.http_host)})
            self.config = self.config.model_copy(update={"gateway": gateway})
        cfg = self.config
        if not ray.is_initialized():
            start_ray(cfg.ray)
            self._started_ray = cfg.ray.address is None
        serve.start(
            proxy_location="HeadOnly",
            http_options={"host": cfg.gateway.http_host, "port": cfg.gateway.http_port},
        )
        handle = serve.run(build_app(cfg), name=cfg.ray.app_name, route_prefix=self.route_prefix, blocking=False)
        self.target = str(handle.endpoint.remote().result(timeout_s=60))
        return self.target

    def wait_ready(self, timeout_s: float = 600) -> None:
        """Block until every configured model can serve (asked of the gateway, so TLS and auth don't matter)."""
        gateway = serve.get_app_handle(self.config.ray.app_name)
        if not gateway.wait_ready.remote(timeout_s).result(timeout_s=timeout_s + 30):
            states = gateway.model_states.remote().result(timeout_s=30)
            waiting = ", ".join(f"{m}: {s.state} {s.detail}".strip() for m, s in states.items() if not s.ready)
            raise ClusterStartError(f"models not ready after {timeout_s:.0f} s: {waiting or 'no status yet'}")

    def stop(self) -> None:
        """Delete the app; shut Serve and Ray down if this object started Ray."""
        if not ray.is_initialized():
            return
        if self._started_ray:
            serve.shutdown()
            ray.shutdown()
            self._started_ray = False
        else:
            serve.delete(self.config.ray.app_name)

    def __enter__(self) -> LocalCluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
