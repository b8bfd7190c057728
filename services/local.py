"""Start and stop a whole quorum cluster on this machine: Ray, Serve, the gateway and the engines.

Used by ``quorum up``, the integration tests and the benchmarks, so all three
run the exact code path a deployment runs.
"""

from __future__ import annotations

import logging
from types import TracebackType

import ray
from ray import serve

from quorum.cluster.config import QuorumConfig

from .app import build_app

logger = logging.getLogger(__name__)


class ClusterStartError(RuntimeError):
    """The cluster did not become ready; the message says which model and why."""


class LocalCluster:
    """A quorum cluster on this machine; use as a context manager so everything is stopped."""

    def __init__(self, config: QuorumConfig) -> None:
        self.config = config
        self.target = ""
        self._started_ray = False

    def start(self) -> str:
        """Start Ray (unless ``ray.address`` is set), Serve and the app; return the gRPC target."""
        cfg = self.config
        if not ray.is_initialized():
            ray.init(
                address=cfg.ray.address,
                num_cpus=cfg.ray.num_cpus,
                namespace=cfg.ray.namespace,
                include_dashboard=False,
                log_to_driver=True,
                configure_logging=True,
                logging_level=logging.WARNING,
            )
            self._started_ray = cfg.ray.address is None
        serve.start(proxy_location="Disabled")
        handle = serve.run(build_app(cfg), name=cfg.ray.app_name, route_prefix=None, blocking=False)
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
