"""Property-based fuzzing of both gRPC services on a real cluster (hypothesis).

Requests are built from the protobuf descriptors (every field of every request message, so new fields
are covered without touching this file): random and extreme values (huge and deeply nested strings,
pathological regexes and schemas, NaN/inf, integer extremes, unknown enum numbers, long lists), plus raw
undecodable bytes. Whatever the request, the server must answer with a precise status, never INTERNAL or
UNKNOWN (nor one too large for gRPC's metadata, which a client sees as RESOURCE_EXHAUSTED), and must still
serve a normal chat afterwards. Generation is kept short: every max_tokens and
token budget is capped before sending (a refusal by validation is fine too).

Deterministic (``derandomize``) and bounded: EXAMPLES_PER_SERVICE examples per service.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor, ServiceDescriptor
from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quorum.v1 import inference_pb2 as pb
from quorum.v1 import inference_pb2_grpc
from quorum.v1 import reasoning_pb2 as rpb

from .conftest import RunningCluster

EXAMPLES_PER_SERVICE = 200
RPC_DEADLINE_S = 60.0
MAX_DEPTH = 4  # message nesting the generator follows
MAX_TOKENS = 4  # per engine call
MAX_BUDGET_TOKENS = 32  # per Reason run
MAX_BUDGET_SECONDS = 5.0
MAX_DOCUMENTS = 3
MAX_DOCUMENT_CHARS = 400
RAW: dict[str, Any] = {"request_serializer": None, "response_deserializer": None}  # send bytes as they are
FORBIDDEN = (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN)
SERVICES = {
    "InferenceService": pb.DESCRIPTOR.services_by_name["InferenceService"],
    "ReasoningService": rpb.DESCRIPTOR.services_by_name["ReasoningService"],
}


def nested_json(depth: int) -> str:
    return '{"a":' * (depth - 1) + "{}" + "}" * (depth - 1)


def nested_proto(depth: int) -> bytes:
    """Field 1 length-delimited inside itself ``depth`` times (past protobuf's recursion limit)."""
    payload = b""
    for _ in range(depth):
        payload = b"\x0a" + _varint(len(payload)) + payload
    return payload


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


EXTREME_STRINGS = [
    "",
    " ",
    "\x00",
    "é" * 10,
    "x" * 100_000,
    nested_json(5000),
    "[" * 5000,
    "(a+)+$",
    "((a{1,50}){1,50}){1,50}",
    '{"type": "object", "properties": {"a": {"type": "string"}}}',
    '{"type": "string", "maxLength": 100000}',
    "user",
    "assistant",
    "tool",
    "calculator",
    "get_weather",
    "smollm2-135m-instruct",
]
EXTREME_FLOATS = [0.0, -0.0, 1.0, 2.0, 50.0, -1.0, 1e-30, 1e30, math.nan, math.inf, -math.inf]
UNDECODABLE = [b"\xff\xff\xff\xff\xff", b"\x0a\xff\xff\xff\xff\x0f", b"\x0a\x02\xc3\x28", nested_proto(200)]
_INT_RANGES = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}
TEXT = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=40)


def _scalar(field: FieldDescriptor) -> st.SearchStrategy[Any]:
    kind = field.type
    if kind == FieldDescriptor.TYPE_STRING:
        return st.one_of(TEXT, st.sampled_from(EXTREME_STRINGS))
    if kind == FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=64)
    if kind == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if kind in (FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE):
        floats = st.floats(width=32) if kind == FieldDescriptor.TYPE_FLOAT else st.floats()
        return st.one_of(floats, st.sampled_from(EXTREME_FLOATS))
    if kind == FieldDescriptor.TYPE_ENUM:
        assert field.enum_type is not None
        numbers = [value.number for value in field.enum_type.values]
        return st.one_of(st.sampled_from(numbers), st.integers(-5, 1000))
    low, high = _INT_RANGES[kind]
    return st.one_of(st.integers(low, high), st.sampled_from([low, high, 0, 1, 2, 3, 16, 17, 100_000]))


def _value(field: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    if field.message_type is not None:
        return messages(field.message_type, depth + 1)
    return _scalar(field)


def _repeated(field: FieldDescriptor, depth: int) -> st.SearchStrategy[list[Any]]:
    small = st.lists(_value(field, depth), max_size=3)
    if field.type == FieldDescriptor.TYPE_STRING:
        return st.one_of(small, st.just(["x"] * 20_000), st.just([f"option {i}" for i in range(5000)]))
    return small


@st.composite
def messages(draw: st.DrawFn, descriptor: Descriptor, depth: int = 0, fields: tuple[str, ...] | None = None) -> Message:
    """A message of ``descriptor`` with a random subset of its fields (all of ``fields``, when given) set to
    random or extreme values."""
    message: Message = message_factory.GetMessageClass(descriptor)()
    if depth > MAX_DEPTH:
        return message
    for field in descriptor.fields:
        if (field.name not in fields) if fields is not None else not draw(st.booleans()):
            continue
        target = getattr(message, field.name)
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            key, value = field.message_type.fields_by_name["key"], field.message_type.fields_by_name["value"]
            if value.type != FieldDescriptor.TYPE_MESSAGE:
                target.update(draw(st.dictionaries(_scalar(key), _scalar(value), max_size=3)))
        elif field.is_repeated and field.type == FieldDescriptor.TYPE_MESSAGE:
            for item in draw(_repeated(field, depth)):
                target.add().CopyFrom(item)
        elif field.is_repeated:
            target.extend(draw(_repeated(field, depth)))
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            target.CopyFrom(draw(_value(field, depth)))
        else:
            setattr(message, field.name, draw(_value(field, depth)))
    return message


def tame(message: Any) -> Any:
    """Cap what a request may cost to run (tokens, seconds, documents) without touching what is refused."""
    name = message.DESCRIPTOR.full_name
    if (
        name in ("quorum.v1.SamplingParams", "quorum.v1.ReasoningSampling")
        and not 1 <= message.max_tokens <= MAX_TOKENS
    ):
        message.max_tokens = MAX_TOKENS
    if name == "quorum.v1.Budget":
        if not 1 <= message.max_tokens <= MAX_BUDGET_TOKENS:
            message.max_tokens = MAX_BUDGET_TOKENS
        seconds = message.max_seconds
        if seconds == 0 or (math.isfinite(seconds) and seconds > MAX_BUDGET_SECONDS):
            message.max_seconds = MAX_BUDGET_SECONDS
    for capped in ("sampling", "budget"):  # unset means the server's defaults (256 tokens, 60 s): set, then cap
        if capped in message.DESCRIPTOR.fields_by_name:
            getattr(message, capped).SetInParent()
    if "collection" in message.DESCRIPTOR.fields_by_name and message.collection:  # clear of other tests' collections
        message.collection = "fuzz" + message.collection
    if name == "quorum.v1.IngestRequest":
        del message.documents[MAX_DOCUMENTS:]
        for document in message.documents:
            document.text = document.text[:MAX_DOCUMENT_CHARS]
    for field, value in message.ListFields():
        if field.message_type is None or field.message_type.GetOptions().map_entry:
            continue
        for item in value if field.is_repeated else [value]:
            tame(item)
    return message


def _seeds() -> dict[str, Message]:
    """A valid request per method that does some work: mutating one field of it reaches deeper than a
    request random in every field (which validation mostly refuses at its first field)."""
    sampling = pb.SamplingParams(max_tokens=MAX_TOKENS)
    question = [pb.ChatMessage(role="user", content="What is the capital of France?")]
    budget = rpb.Budget(max_tokens=MAX_BUDGET_TOKENS, max_seconds=MAX_BUDGET_SECONDS)
    document = rpb.Document(id="d1", text="Paris is the capital of France.")
    return {
        "Generate": pb.GenerateRequest(prompt="Once upon a time", sampling=sampling),
        "GenerateStream": pb.GenerateStreamRequest(prompt="Once upon a time", sampling=sampling),
        "Chat": pb.ChatRequest(messages=question, sampling=sampling),
        "ChatStream": pb.ChatStreamRequest(messages=question, sampling=sampling),
        "Tokenize": pb.TokenizeRequest(prompt="Once upon a time"),
        "Reason": rpb.ReasonRequest(question="What is 2 + 3?", strategy=rpb.STRATEGY_DIRECT, budget=budget),
        "Ingest": rpb.IngestRequest(collection="docs", documents=[document]),
        "Search": rpb.SearchRequest(collection="docs", query="capital"),
        "DeleteDocuments": rpb.DeleteDocumentsRequest(collection="docs", document_ids=["d1"]),
    }


SEEDS = _seeds()


@st.composite
def mutated(draw: st.DrawFn, method: MethodDescriptor) -> Message:
    """The method's seed request with one field (top-level, or one level down) set to a random value."""
    message: Message = message_factory.GetMessageClass(method.input_type)()
    seed = SEEDS.get(method.name)
    if seed is not None:
        message.CopyFrom(seed)
    target, descriptor = message, method.input_type
    if not descriptor.fields:
        return message
    field = draw(st.sampled_from(list(descriptor.fields)))
    nested = field.message_type
    descend = nested is not None and not field.is_repeated and not nested.GetOptions().map_entry and bool(nested.fields)
    if descend and draw(st.booleans()):  # one level down: e.g. sampling.temperature, budget.max_seconds
        assert nested is not None
        target, descriptor = getattr(message, field.name), nested
        field = draw(st.sampled_from(list(descriptor.fields)))
    only = draw(messages(descriptor, fields=(field.name,)))
    target.MergeFrom(only)
    return message


def payloads(service: ServiceDescriptor) -> st.SearchStrategy[tuple[MethodDescriptor, bytes]]:
    """(method, request bytes): a tamed request, random in every field or a seed with one field mutated;
    sometimes bytes that do not decode."""

    @st.composite
    def build(draw: st.DrawFn) -> tuple[MethodDescriptor, bytes]:
        method = draw(st.sampled_from(list(service.methods)))
        kind = draw(st.integers(0, 9))
        if kind == 0:
            return method, draw(st.one_of(st.sampled_from(UNDECODABLE), st.binary(min_size=1, max_size=64)))
        request = draw(messages(method.input_type) if kind < 5 else mutated(method))
        return method, tame(request).SerializeToString()

    return build()


class Outcomes:
    def __init__(self) -> None:
        self.codes: dict[str, int] = {}
        self.samples: dict[str, str] = {}  # one status message per status code, for the summary
        self.examples = 0


@pytest.fixture(scope="module")
def channel(cluster: RunningCluster) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(cluster.target, options=[("grpc.max_send_message_length", 16 << 20)]) as opened:
        yield opened


def send(channel: grpc.Channel, method: MethodDescriptor, payload: bytes) -> tuple[grpc.StatusCode, str]:
    """The status of one call (OK when it succeeded) and its details."""
    path = f"/{method.containing_service.full_name}/{method.name}"
    try:
        if method.server_streaming:
            for _ in channel.unary_stream(path, **RAW)(payload, timeout=RPC_DEADLINE_S):
                pass
        else:
            channel.unary_unary(path, **RAW)(payload, timeout=RPC_DEADLINE_S)
    except grpc.RpcError as error:
        return error.code(), str(error.details())
    return grpc.StatusCode.OK, ""


def normal_chat_succeeds(channel: grpc.Channel) -> None:
    stub = inference_pb2_grpc.InferenceServiceStub(channel)
    reply = stub.Chat(
        pb.ChatRequest(
            messages=[pb.ChatMessage(role="user", content="What is the capital of France?")],
            sampling=pb.SamplingParams(max_tokens=8, temperature=0),
        ),
        timeout=RPC_DEADLINE_S,
    )
    assert reply.choices[0].text


@pytest.mark.parametrize("service", list(SERVICES))
def test_fuzzed_requests_never_get_internal_or_unknown(channel: grpc.Channel, service: str) -> None:
    outcomes = Outcomes()
    started = time.monotonic()

    @settings(
        max_examples=EXAMPLES_PER_SERVICE,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(payloads(SERVICES[service]))
    def fuzz(case: tuple[MethodDescriptor, bytes]) -> None:
        method, payload = case
        code, details = send(channel, method, payload)
        assert code not in FORBIDDEN, f"{method.full_name}: {code.name} {details} for {payload[:200]!r}"
        assert "metadata size" not in details, f"{method.full_name}: the status did not fit in gRPC metadata"
        outcomes.examples += 1
        key = f"{method.name}:{code.name}"
        outcomes.codes[key] = outcomes.codes.get(key, 0) + 1
        outcomes.samples.setdefault(code.name, details[:160])

    fuzz()
    print(
        f"{service}: {outcomes.examples} examples in {time.monotonic() - started:.1f} s;",
        dict(sorted(outcomes.codes.items())),
        dict(sorted(outcomes.samples.items())),
    )
    normal_chat_succeeds(channel)
