"""One real cluster per test session: Ray Serve + the vllm engine + the gRPC gateway on loopback."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import grpc
import pytest
from ray import serve

from quorum.cluster.config import DEFAULT_CONFIG, QuorumConfig, load_config
from quorum.cluster.deployments import llm_deployment_name
from quorum.cluster.types import ModelStatus
from quorum.services.client import QuorumClient
from quorum.services.local import LocalCluster

MAX_MODEL_LEN = 1024
MAX_N = 4


def integration_config() -> QuorumConfig:
    """The shipped default config, shrunk for tests and on a free port."""
    config = load_config(DEFAULT_CONFIG)
    model = config.models[0]
    engine = model.engine.model_copy(update={"max_model_len": MAX_MODEL_LEN, "kv_cache_memory_gib": 0.5})
    return config.model_copy(
        update={
            "models": [model.model_copy(update={"engine": engine})],
            "gateway": config.gateway.model_copy(update={"grpc_port": 0, "max_n": MAX_N}),
            "ray": config.ray.model_copy(update={"num_cpus": 2, "app_name": "quorum-test"}),
        }
    )


@dataclass
class RunningCluster:
    config: QuorumConfig
    target: str
    first_response: grpc.RpcError | None  # the answer to a request sent before the engine was ready

    @property
    def model_id(self) -> str:
        return self.config.models[0].id

    def engine_status(self) -> ModelStatus:
        handle = serve.get_deployment_handle(llm_deployment_name(self.config.models[0]), self.config.ray.app_name)
        status: ModelStatus = handle.status.remote().result(timeout_s=30)
        return status


@pytest.fixture(scope="session")
def cluster() -> Iterator[RunningCluster]:
    config = integration_config()
    with LocalCluster(config) as local:
        first: grpc.RpcError | None = None
        with QuorumClient(local.target, timeout=30) as client:
            try:
                client.generate("Hello", max_tokens=1)
            except grpc.RpcError as exc:
                first = exc
        local.wait_ready(timeout_s=600)
        yield RunningCluster(config=config, target=local.target, first_response=first)


@pytest.fixture
def client(cluster: RunningCluster) -> Iterator[QuorumClient]:
    with QuorumClient(cluster.target, timeout=120) as c:
        yield c


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Re-check ``condition`` until it holds; fail the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.05)
