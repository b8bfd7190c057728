"""Constraint safety on a real cluster: the tester's pathological inputs are refused with INVALID_ARGUMENT
naming the field, constrained requests keep being served right after each one, and the engine's memory
stays bounded; malformed request bytes get INVALID_ARGUMENT on every RPC of both services.

Runs in file order: the EngineCore memory check at the end compares against the RSS recorded before the
first pathological case.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import psutil
import pytest
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message

from quorum.v1 import inference_pb2 as pb
from quorum.v1 import inference_pb2_grpc, reasoning_pb2_grpc
from quorum.v1 import reasoning_pb2 as rpb

from .conftest import RunningCluster

GIB = 1 << 30
MIB = 1 << 20
# The bound this file proves: no EngineCore of this cluster grows by more than this over the pathological
# cases (the tester's engine grew to 16.9 GB), and none ends above ENGINE_RSS_LIMIT.
ENGINE_RSS_GROWTH_LIMIT = 512 * MIB
ENGINE_RSS_LIMIT = 4 * GIB
FOLLOW_UP_DEADLINE_S = 30.0  # a constrained request stuck behind a compile would miss it
REFUSAL_DEADLINE_S = 60.0
DEEP = 5000


def nested(depth: int) -> str:
    return '{"a":' * (depth - 1) + "{}" + "}" * (depth - 1)


def properties(count: int) -> str:
    return json.dumps({"type": "object", "properties": {f"p{i}": {"type": "string"} for i in range(count)}})


def engine_rss() -> dict[int, int]:
    """RSS of this cluster's EngineCore processes (descendants of this test process: Ray runs under it)."""
    sizes = {}
    for process in psutil.Process().children(recursive=True):
        try:
            if "EngineCore" in process.name() or any("EngineCore" in part for part in process.cmdline()):
                sizes[process.pid] = process.memory_info().rss
        except psutil.Error:
            continue
    return sizes


@pytest.fixture(scope="module")
def channel(cluster: RunningCluster) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(cluster.target, options=[("grpc.max_send_message_length", 16 << 20)]) as opened:
        yield opened


@pytest.fixture(scope="module")
def inference(channel: grpc.Channel) -> inference_pb2_grpc.InferenceServiceStub:
    return inference_pb2_grpc.InferenceServiceStub(channel)


@pytest.fixture(scope="module")
def reasoning(channel: grpc.Channel) -> reasoning_pb2_grpc.ReasoningServiceStub:
    return reasoning_pb2_grpc.ReasoningServiceStub(channel)


@pytest.fixture(scope="module")
def rss_before(inference: inference_pb2_grpc.InferenceServiceStub) -> dict[int, int]:
    # A first constrained request (long deadline) so the replica's grammar checker has started.
    constrained_chat(inference, "warm", deadline_s=300)
    before = engine_rss()
    assert before, "no EngineCore process found under this test process"
    print("EngineCore RSS before (MiB):", {pid: rss // MIB for pid, rss in before.items()})
    return before


_follow_ups = iter(range(1_000_000))


def constrained_chat(
    stub: inference_pb2_grpc.InferenceServiceStub, key: str = "", deadline_s: float = FOLLOW_UP_DEADLINE_S
) -> dict[str, Any]:
    """A JSON-schema-constrained chat with a schema not used before (so the engine compiles it anew)."""
    name = f"answer_{key}{next(_follow_ups)}"
    schema = {"type": "object", "properties": {name: {"type": "string", "maxLength": 8}}, "required": [name]}
    reply = stub.Chat(
        pb.ChatRequest(
            messages=[pb.ChatMessage(role="user", content="Name a colour.")],
            sampling=pb.SamplingParams(
                max_tokens=48, temperature=0, constraint=pb.OutputConstraint(json_schema=json.dumps(schema))
            ),
        ),
        timeout=deadline_s,
    )
    value: dict[str, Any] = json.loads(reply.choices[0].text)
    assert list(value) == [name]
    return value


def complete(call: Any, request: Any) -> None:
    """Make the call and read a streamed response to its end."""
    response = call(request, timeout=REFUSAL_DEADLINE_S)
    if not isinstance(response, Message):
        list(response)


def refused(call: Any, request: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        complete(call, request)
    return info.value


def chat_with(constraint: pb.OutputConstraint | None = None, **fields: Any) -> pb.ChatRequest:
    sampling = pb.SamplingParams(max_tokens=8, constraint=constraint) if constraint else pb.SamplingParams(max_tokens=8)
    return pb.ChatRequest(messages=[pb.ChatMessage(role="user", content="hi")], sampling=sampling, **fields)


WEATHER = pb.ToolDefinition(name="get_weather", parameters_json_schema='{"type": "object"}')


def react(**fields: Any) -> rpb.ReasonRequest:
    return rpb.ReasonRequest(question="What is the weather in Paris?", strategy=rpb.STRATEGY_REACT, **fields)


def deep_step() -> list[pb.ChatMessage]:
    call = pb.ToolCallRequest(id="c1", name="get_weather", arguments_json=nested(DEEP))
    return [
        pb.ChatMessage(role="assistant", tool_calls=[call]),
        pb.ChatMessage(role="tool", tool_call_id="c1", content="sunny"),
    ]


# (case id, service, method, request, field the refusal names, words in the message)
CASES: list[tuple[str, str, str, Any, str, str]] = [
    (
        "1MB-schema",
        "inference",
        "Chat",
        chat_with(pb.OutputConstraint(json_schema=properties(23_810))),
        "sampling.constraint.json_schema",
        "constraints.max_json_bytes",
    ),
    (
        "nested-unbounded-regex",
        "inference",
        "Chat",
        chat_with(pb.OutputConstraint(regex="(a+)+$")),
        "sampling.constraint.regex",
        "unbounded repetition",
    ),
    (
        "counted-repetition-regex",
        "inference",
        "Generate",
        pb.GenerateRequest(
            prompt="hi",
            sampling=pb.SamplingParams(max_tokens=8, constraint=pb.OutputConstraint(regex="((a{1,50}){1,50}){1,50}")),
        ),
        "sampling.constraint.regex",
        "constraints.max_repetition",
    ),
    (
        "100k-choices",
        "inference",
        "ChatStream",
        pb.ChatStreamRequest(
            messages=[pb.ChatMessage(role="user", content="hi")],
            sampling=pb.SamplingParams(
                max_tokens=8,
                constraint=pb.OutputConstraint(choice=pb.ChoiceList(values=[f"option {i}" for i in range(100_000)])),
            ),
        ),
        "sampling.constraint.choice",
        "constraints.max_choices",
    ),
    (
        "slow-to-compile-schema",  # within the static bounds of this cluster (conftest), over the compile budget
        "inference",
        "Chat",
        chat_with(pb.OutputConstraint(json_schema=properties(2000))),
        "sampling.constraint.json_schema",
        "constraints.compile_timeout_s",
    ),
    (
        "deep-constraint",
        "inference",
        "Chat",
        chat_with(pb.OutputConstraint(json_schema=nested(DEEP))),
        "sampling.constraint.json_schema",
        "constraints.max_depth",
    ),
    (
        "deep-tool-schema",
        "inference",
        "Chat",
        chat_with(tools=[pb.ToolDefinition(name="deep", parameters_json_schema=nested(DEEP))]),
        "tools[0].parameters_json_schema",
        "constraints.max_depth",
    ),
    (
        "deep-client-tool-schema",
        "reasoning",
        "Reason",
        react(client_tools=[pb.ToolDefinition(name="get_weather", parameters_json_schema=nested(DEEP))]),
        "client_tools[0].parameters_json_schema",
        "constraints.max_depth",
    ),
    (
        "deep-step-arguments",
        "reasoning",
        "Reason",
        react(client_tools=[WEATHER], steps=deep_step()),
        "steps[0].tool_calls[0].arguments_json",
        "constraints.max_depth",
    ),
    (
        "temperature-50",
        "inference",
        "Chat",
        pb.ChatRequest(
            messages=[pb.ChatMessage(role="user", content="hi")],
            sampling=pb.SamplingParams(max_tokens=8, temperature=50),
        ),
        "sampling.temperature",
        "must be in [0, 2]",
    ),
    (
        "reason-temperature-50",
        "reasoning",
        "Reason",
        rpb.ReasonRequest(
            question="What is 2 + 3?", strategy=rpb.STRATEGY_DIRECT, sampling=rpb.ReasoningSampling(temperature=50)
        ),
        "sampling.temperature",
        "must be in [0, 2]",
    ),
]


@pytest.mark.parametrize(
    ("service", "method", "request_", "field", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_pathological_input_is_refused_and_constrained_requests_keep_working(
    rss_before: dict[int, int],
    inference: inference_pb2_grpc.InferenceServiceStub,
    reasoning: reasoning_pb2_grpc.ReasoningServiceStub,
    service: str,
    method: str,
    request_: Any,
    field: str,
    words: str,
) -> None:
    stub = inference if service == "inference" else reasoning
    error = refused(getattr(stub, method), request_)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    details = str(error.details())
    assert details.startswith(f"{field}:"), details
    assert words in details
    constrained_chat(inference)  # not stuck behind a compile: answers within FOLLOW_UP_DEADLINE_S


def test_a_refused_constraint_is_refused_again_from_the_cache(
    inference: inference_pb2_grpc.InferenceServiceStub,
) -> None:
    error = refused(inference.Chat, chat_with(pb.OutputConstraint(json_schema=properties(2000))))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "constraints.compile_timeout_s" in str(error.details())
    constrained_chat(inference)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (
            {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "x", "schema": json.loads(nested(100))},
                }
            },
            "response_format",
        ),
        (
            {"tools": [{"type": "function", "function": {"name": "f", "parameters": json.loads(nested(100))}}]},
            "tools[0].function.parameters",
        ),
        (
            {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "x", "schema": json.loads(properties(23_810))},
                }
            },
            "response_format",
        ),
        ({"temperature": 50}, "temperature"),
    ],
    ids=["deep-response-format", "deep-tool-parameters", "1MB-response-format", "temperature-50"],
)
def test_the_openai_endpoint_refuses_the_same_inputs_with_400_naming_the_param(
    cluster: RunningCluster, inference: inference_pb2_grpc.InferenceServiceStub, body: dict[str, Any], param: str
) -> None:
    request = {"model": cluster.model_id, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8, **body}
    response = httpx.post(f"{cluster.http_url}/v1/chat/completions", json=request, timeout=REFUSAL_DEADLINE_S)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"
    constrained_chat(inference)


def test_a_request_body_nested_5000_deep_is_a_400(cluster: RunningCluster) -> None:
    body = (
        f'{{"model": "{cluster.model_id}", "messages": [{{"role": "user", "content": "hi"}}], '
        f'"response_format": {{"type": "json_schema", "json_schema": {{"name": "x", "schema": {nested(DEEP)}}}}}}}'
    )
    response = httpx.post(
        f"{cluster.http_url}/v1/chat/completions",
        content=body,
        headers={"content-type": "application/json"},
        timeout=REFUSAL_DEADLINE_S,
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["type"] == "invalid_request_error"


def _methods() -> list[MethodDescriptor]:
    return [
        *pb.DESCRIPTOR.services_by_name["InferenceService"].methods,
        *rpb.DESCRIPTOR.services_by_name["ReasoningService"].methods,
    ]


def _invalid_utf8(method: MethodDescriptor) -> bytes | None:
    """A request whose first string field holds invalid UTF-8 (None when the message has no string field)."""
    for field in method.input_type.fields:
        if field.type == field.TYPE_STRING:
            return bytes([field.number << 3 | 2, 2]) + b"\xc3\x28"
    return None


@pytest.mark.parametrize("method", _methods(), ids=lambda m: m.full_name)
def test_undecodable_request_bytes_are_invalid_argument_on_every_rpc(
    channel: grpc.Channel, inference: inference_pb2_grpc.InferenceServiceStub, method: MethodDescriptor
) -> None:
    path = f"/{method.containing_service.full_name}/{method.name}"
    raw: dict[str, Any] = {"request_serializer": None, "response_deserializer": None}  # bytes as they are
    call = channel.unary_stream(path, **raw) if method.server_streaming else channel.unary_unary(path, **raw)
    payloads = [b"\xff\xff\xff\xff\xff", b"\x0a\xff\xff\xff\xff\x0f"]
    utf8 = _invalid_utf8(method)
    if utf8 is not None:
        payloads.append(utf8)
    for payload in payloads:
        error = refused(call, payload)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (payload, error.details())
        assert str(error.details()).startswith(f"request is not a valid {method.input_type.full_name}: ")
    constrained_chat(inference)


def test_engine_memory_stayed_bounded(rss_before: dict[int, int]) -> None:
    after = engine_rss()
    print("EngineCore RSS after (MiB):", {pid: rss // MIB for pid, rss in after.items()})
    for pid, before in rss_before.items():
        if pid not in after:
            pytest.fail(f"EngineCore {pid} is gone: an engine died during the pathological cases")
        assert after[pid] - before < ENGINE_RSS_GROWTH_LIMIT, (pid, before // MIB, after[pid] // MIB)
        assert after[pid] < ENGINE_RSS_LIMIT, (pid, after[pid] // MIB)
