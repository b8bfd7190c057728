"""One real cluster per test session: Ray Serve + the vllm engine + the gRPC gateway on loopback."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass, field

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from ray import serve

from quorum.client import NO_RETRY, QuorumClient
from quorum.cluster.config import DEFAULT_CONFIG, QuorumConfig, load_config
from quorum.cluster.deployments import llm_deployment_name
from quorum.cluster.types import ModelStatus
from quorum.services.local import LocalCluster

MAX_MODEL_LEN = 2048  # the shipped default: a ReAct step (worked examples + 192 tokens) needs over 1024
MAX_N = 4
SECOND_MODEL = "smollm2-short"
SECOND_MAX_LEN = 256
SECOND_MAX_ONGOING = 2
SECOND_MAX_QUEUED = 2
# Two replicas behind the prefix-aware router (routing, metrics and replica-failure tests), in float32 so
# that the tensor-parallel model can be compared with it token for token.
PAIR_MODEL = "smollm2-pair"
PAIR_REPLICAS = 2
PAIR_DTYPE = "float32"
# Tensor parallelism over 3 ranks: SmolLM2-135M has 9 attention and 3 KV heads, so 2 does not divide them.
TP_MODEL = "smollm2-tp3"
TP_SIZE = 3
COMPILE_PROPERTIES_BOUND = 4096


class TraceCollector(trace_service_pb2_grpc.TraceServiceServicer):
    """A real OTLP/gRPC trace receiver on loopback that keeps every span it is sent."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, str, str]] = []  # (trace id hex, service component, span name)
        self._lock = threading.Lock()

    def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: grpc.ServicerContext
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        with self._lock:
            for resource_spans in request.resource_spans:
                attributes = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
                for scope in resource_spans.scope_spans:
                    for span in scope.spans:
                        self.spans.append((span.trace_id.hex(), attributes.get("quorum.component", ""), span.name))
        return trace_service_pb2.ExportTraceServiceResponse()

    def spans_of(self, trace_id: str) -> list[tuple[str, str]]:
        with self._lock:
            return [(component, name) for tid, component, name in self.spans if tid == trace_id]


@dataclass
class Collector:
    servicer: TraceCollector
    endpoint: str
    server: grpc.Server = field(repr=False)


def start_collector() -> Collector:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = TraceCollector()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return Collector(servicer=servicer, endpoint=f"http://127.0.0.1:{port}", server=server)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def integration_config(otlp_endpoint: str | None = None, rag_dir: str | None = None) -> QuorumConfig:
    """The shipped default config, shrunk for tests and on a free port (documents in ``rag_dir``)."""
    config = load_config(DEFAULT_CONFIG)
    model = config.models[0]
    engine = model.engine.model_copy(update={"max_model_len": MAX_MODEL_LEN, "kv_cache_memory_gib": 0.5})
    return config.model_copy(
        update={
            "models": [
                model.model_copy(update={"engine": engine}),
                # The same weights under a second id with a short context: two engines side by side.
                # Admission control is tested on it: 2 requests in the replica, 2 queued, the rest refused.
                model.model_copy(
                    update={
                        "id": SECOND_MODEL,
                        "engine": engine.model_copy(update={"max_model_len": SECOND_MAX_LEN}),
                        "deployment": model.deployment.model_copy(
                            update={
                                "max_ongoing_requests": SECOND_MAX_ONGOING,
                                "max_queued_requests": SECOND_MAX_QUEUED,
                            }
                        ),
                    }
                ),
                model.model_copy(
                    update={
                        "id": PAIR_MODEL,
                        "engine": engine.model_copy(update={"dtype": PAIR_DTYPE}),
                        "deployment": model.deployment.model_copy(update={"num_replicas": PAIR_REPLICAS}),
                    }
                ),
                model.model_copy(
                    update={
                        "id": TP_MODEL,
                        # 3 ranks on a 2-core machine: the third rank shares core 0.
                        "engine": engine.model_copy(
                            update={"dtype": PAIR_DTYPE, "tensor_parallel_size": TP_SIZE, "cpu_threads_bind": "0|1|0"}
                        ),
                        "deployment": model.deployment.model_copy(update={"num_cpus": 0.5}),
                    }
                ),
            ],
            # http_port 0: LocalCluster picks a free port for Serve's HTTP proxy.
            "gateway": config.gateway.model_copy(update={"grpc_port": 0, "http_port": 0, "max_n": MAX_N}),
            # Logical CPUs: every engine reserves some; they share this machine's cores.
            "ray": config.ray.model_copy(
                update={"num_cpus": 8, "app_name": "quorum-test", "metrics_export_port": free_port()}
            ),
            "rag": config.rag.model_copy(update={"data_dir": rag_dir or config.rag.data_dir}),
            "telemetry": config.telemetry.model_copy(
                update={"exporter": "otlp" if otlp_endpoint else "none", "otlp_endpoint": otlp_endpoint or ""}
            ),
            # More properties than the default bound, so a schema can pass the static bounds and still be
            # refused by the compile-time budget (test_constraint_safety.py).
            "constraints": config.constraints.model_copy(update={"max_schema_properties": COMPILE_PROPERTIES_BOUND}),
        }
    )


@dataclass
class RunningCluster:
    config: QuorumConfig
    target: str
    first_response: grpc.RpcError | None  # the answer to a request sent before the engine was ready
    traces: TraceCollector
    http_url: str = ""  # Serve's HTTP proxy with this app's route prefix (the OpenAI API is under /v1)
    metrics_url: str = ""  # Ray's Prometheus endpoint, as `quorum up` prints it

    @property
    def model_id(self) -> str:
        return self.config.models[0].id

    def engine_status(self) -> ModelStatus:
        handle = serve.get_deployment_handle(llm_deployment_name(self.config.models[0]), self.config.ray.app_name)
        status: ModelStatus = handle.status.remote().result(timeout_s=30)
        return status


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningCluster]:
    collector = start_collector()
    config = integration_config(collector.endpoint, str(tmp_path_factory.mktemp("rag")))
    with LocalCluster(config) as local:
        first: grpc.RpcError | None = None
        with QuorumClient(local.target, timeout=30, retry=NO_RETRY) as client:  # the server's first answer
            try:
                client.generate("Hello", max_tokens=1)
            except grpc.RpcError as exc:
                first = exc
        local.wait_ready(timeout_s=600)
        yield RunningCluster(
            config=local.config,
            target=local.target,
            first_response=first,
            traces=collector.servicer,
            http_url=local.http_url,
            metrics_url=local.metrics_url or "",
        )
    collector.server.stop(grace=None)


@pytest.fixture
def client(cluster: RunningCluster) -> Iterator[QuorumClient]:
    with QuorumClient(cluster.target, timeout=120) as c:
        yield c


@pytest.fixture
def openai_base_url(cluster: RunningCluster) -> str:
    """Base URL for OpenAI clients (``openai.OpenAI(base_url=...)``)."""
    return f"{cluster.http_url}/v1"


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Re-check ``condition`` until it holds; fail the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.05)
