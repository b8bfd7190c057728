"""Start and stop a whole quorum cluster on this machine: Ray, Serve, the gateway and the engines.

Used by ``quorum up``, the integration tests and the benchmarks, so all three
run the exact code path a deployment runs.
"""

from __future__ import annotations

import logging
import time
from types import TracebackType

import grpc
import ray
from grpc_health.v1 import health_pb2, health_pb2_grpc
from ray import serve

from quorum.cluster.config import QuorumConfig

from .app import build_app

logger = logging.getLogger(__name__)


class ClusterStartError(RuntimeError):
    """The cluster did not become ready; the message says which model and why."""


def wait_until_serving(target: str, timeout_s: float, service: str = "") -> None:
    """Block until grpc.health.v1 reports SERVING for ``service`` at ``target`` (watching, not polling)."""
    deadline = time.monotonic() + timeout_s
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ClusterStartError(f"{target} did not report SERVING within {timeout_s:.0f} s")
            try:
                for update in stub.Watch(health_pb2.HealthCheckRequest(service=service), timeout=remaining):
                    if update.status == health_pb2.HealthCheckResponse.SERVING:
                        return
            except grpc.RpcError as exc:
                if exc.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
                    raise
                raise ClusterStartError(f"{target} did not report SERVING within {timeout_s:.0f} s") from None


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
        """Block until every configured model can serve."""
        wait_until_serving(self.target, timeout_s)

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
