"""Deadlines, cancellation, health and reflection against the real cluster."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
from grpc_tools import protoc

from quorum.client.sdk import QuorumClient

from .conftest import RunningCluster, wait_for

pytestmark = pytest.mark.integration

LONG: dict[str, Any] = {"temperature": 1.0, "max_tokens": 900, "seed": 3}


def _no_running_requests(cluster: RunningCluster) -> bool:
    return cluster.engine_status().running_requests == 0


def test_deadline_aborts_the_engine_request(cluster: RunningCluster) -> None:
    with QuorumClient(cluster.target, timeout=1.0) as short:
        with pytest.raises(grpc.RpcError) as info:
            list(short.generate_stream("Write a very long story about a dragon:", **LONG))
        assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        with pytest.raises(grpc.RpcError) as unary:
            short.generate("Write a very long story about a dragon:", **LONG)
        assert unary.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    wait_for(lambda: _no_running_requests(cluster), 30, "the engine to drop the expired requests")


def test_cancelled_streams_free_the_engine(cluster: RunningCluster, client: QuorumClient) -> None:
    for _ in range(5):
        stream = client.generate_stream("Write a very long story about a castle:", **LONG)
        first = next(iter(stream))
        assert first.choices
        stream.close()  # closing the generator cancels the RPC
    wait_for(lambda: _no_running_requests(cluster), 30, "the engine to drop the cancelled requests")
    assert "Paris" in client.chat([("user", "What is the capital of France?")], temperature=0).choices[0].text


def test_health_reports_serving_per_model(cluster: RunningCluster) -> None:
    with grpc.insecure_channel(cluster.target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        services = ["", "quorum.v1.InferenceService", *(f"model/{m.id}" for m in cluster.config.models)]
        # Every served quorum.v1 service has a status; reasoning's follows a probe of its own replicas.
        wait_for(
            lambda: (
                stub.Check(health_pb2.HealthCheckRequest(service="quorum.v1.ReasoningService"), timeout=10).status
                == health_pb2.HealthCheckResponse.SERVING
            ),
            60,
            "quorum.v1.ReasoningService to report SERVING",
        )
        for service in services:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING, service
        with pytest.raises(grpc.RpcError) as info:
            stub.Check(health_pb2.HealthCheckRequest(service="model/absent"), timeout=10)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_reflection_describes_the_api(cluster: RunningCluster) -> None:
    with grpc.insecure_channel(cluster.target) as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        services = set(database.get_services())
        assert {"quorum.v1.InferenceService", "grpc.health.v1.Health"} <= services
        pool = descriptor_pool.DescriptorPool(database)
        service = pool.FindServiceByName("quorum.v1.InferenceService")
        assert {m.name for m in service.methods} == {
            "Generate",
            "GenerateStream",
            "Chat",
            "ChatStream",
            "ListModels",
            "Tokenize",
        }


def test_one_trace_per_request_continues_the_client_context(cluster: RunningCluster) -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    traceparent = f"00-{trace_id}-00f067aa0ba902b7-01"
    with grpc.insecure_channel(cluster.target) as channel:
        from quorum.v1 import inference_pb2, inference_pb2_grpc

        stub = inference_pb2_grpc.InferenceServiceStub(channel)
        request = inference_pb2.ChatRequest(
            messages=[inference_pb2.ChatMessage(role="user", content="Say hi")],
            sampling=inference_pb2.SamplingParams(max_tokens=4, temperature=0),
        )
        stub.Chat(request, timeout=60, metadata=(("traceparent", traceparent),))
    expected = {("gateway", "/quorum.v1.InferenceService/Chat"), ("llm-server", "llm.generate")}
    wait_for(lambda: expected <= set(cluster.traces.spans_of(trace_id)), 60, "both spans at the collector")


def test_a_client_generated_only_from_the_proto_gets_paris(cluster: RunningCluster, tmp_path: Path) -> None:
    proto_root = Path(__file__).resolve().parents[2] / "proto"
    protos = [str(p.relative_to(proto_root)) for p in (proto_root / "quorum" / "v1").glob("*.proto")]
    assert (
        protoc.main(["protoc", f"-I{proto_root}", f"--python_out={tmp_path}", f"--grpc_python_out={tmp_path}", *protos])
        == 0
    )
    script = f"""
import sys
sys.meta_path = [f for f in sys.meta_path if "editable" not in repr(f).lower()]  # hide the installed quorum
sys.path.insert(0, {str(tmp_path)!r})
import grpc
from quorum.v1 import inference_pb2 as pb, inference_pb2_grpc as rpc
assert pb.__file__.startswith({str(tmp_path)!r}), pb.__file__
with grpc.insecure_channel({cluster.target!r}) as channel:
    reply = rpc.InferenceServiceStub(channel).Chat(pb.ChatRequest(
        messages=[pb.ChatMessage(role="user", content="What is the capital of France?")],
        sampling=pb.SamplingParams(temperature=0, max_tokens=32)), timeout=60)
print(reply.choices[0].text)
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert "Paris" in result.stdout


def test_one_trace_per_reason_run_with_engine_spans(cluster: RunningCluster) -> None:
    from quorum.v1 import reasoning_pb2, reasoning_pb2_grpc

    trace_id = "5cf92f3577b34da6a3ce929d0e0e4737"
    with grpc.insecure_channel(cluster.target) as channel:
        stub = reasoning_pb2_grpc.ReasoningServiceStub(channel)
        request = reasoning_pb2.ReasonRequest(
            question="What is 12 * 12?", strategy=reasoning_pb2.STRATEGY_REACT, tools=["calculator"]
        )
        metadata = (("traceparent", f"00-{trace_id}-00f067aa0ba902b8-01"),)
        events = list(stub.Reason(request, timeout=120, metadata=metadata))
    assert events[-1].HasField("final")
    expected = {
        ("gateway", "/quorum.v1.ReasoningService/Reason"),
        ("reasoning", "reason"),
        ("llm-server", "llm.generate"),
    }
    wait_for(lambda: expected <= set(cluster.traces.spans_of(trace_id)), 60, "the run's spans at the collector")
