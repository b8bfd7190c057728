import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from quorum.client.sdk import sampling
from quorum.cluster.errors import EngineUnavailable, InvalidArgument, ModelNotFound, Overloaded
from quorum.cluster.types import ChoiceDelta, FinishReason, GenerationChunk, Usage
from quorum.services.convert import merge_chunks, sampling_from_proto
from quorum.services.status import to_status
from quorum.v1 import inference_pb2 as pb


def test_unset_fields_take_documented_defaults() -> None:
    options = sampling_from_proto(pb.SamplingParams())
    assert options.temperature == 1.0
    assert options.top_p == 1.0
    assert options.n == 1
    assert options.max_tokens is None
    assert options.seed is None
    assert options.constraint is None


def test_explicit_zero_temperature_is_greedy() -> None:
    options = sampling_from_proto(sampling(temperature=0.0, seed=7, stop="\n", json_schema='{"type": "object"}'))
    assert options.temperature == 0.0
    assert options.seed == 7
    assert options.stop == ("\n",)
    assert options.constraint is not None
    assert options.constraint.json_schema == '{"type": "object"}'


def test_merge_chunks_joins_deltas_per_choice() -> None:
    chunks = [
        GenerationChunk(choices=(ChoiceDelta(0, "Hel"), ChoiceDelta(1, "Yo"))),
        GenerationChunk(choices=(ChoiceDelta(0, "lo", FinishReason.STOP),)),
        GenerationChunk(choices=(ChoiceDelta(1, "!", FinishReason.LENGTH),), usage=Usage(5, 4, 2)),
    ]
    choices, usage = merge_chunks(chunks)
    assert [(c.index, c.text, c.finish_reason) for c in choices] == [
        (0, "Hello", pb.FINISH_REASON_STOP),
        (1, "Yo!", pb.FINISH_REASON_LENGTH),
    ]
    assert (usage.prompt_tokens, usage.completion_tokens, usage.cached_prompt_tokens) == (5, 4, 2)


def test_status_codes_and_details() -> None:
    status = to_status(InvalidArgument("sampling.top_p", "must be in (0, 1]"))
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT
    assert status.details == "sampling.top_p: must be in (0, 1]"
    rich = rpc_status.from_call(_FakeCall(status))  # type: ignore[arg-type]
    assert rich is not None
    bad_request = error_details_pb2.BadRequest()
    rich.details[0].Unpack(bad_request)
    assert bad_request.field_violations[0].field == "sampling.top_p"
    assert to_status(ModelNotFound("x")).code == grpc.StatusCode.NOT_FOUND
    assert to_status(Overloaded("x")).code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert to_status(EngineUnavailable("x")).code == grpc.StatusCode.UNAVAILABLE


def test_a_status_echoing_a_huge_value_stays_within_grpc_metadata_limits() -> None:
    """A 100,000-character model name in the message would overflow grpc's 16 KiB metadata limit and reach
    the client as RESOURCE_EXHAUSTED; the message and its BadRequest description are cut instead."""
    status = to_status(InvalidArgument("prompt", "é" * 100_000))
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT
    assert len(status.details.encode()) < 1024
    assert status.details.endswith("more bytes)")
    assert sum(len(value) for _, value in status.trailing_metadata) < 4096


class _FakeCall:
    """The two methods rpc_status.from_call reads, filled from a status."""

    def __init__(self, status: grpc.Status) -> None:
        self._status = status

    def code(self) -> grpc.StatusCode:
        return self._status.code

    def details(self) -> str:
        return self._status.details

    def trailing_metadata(self) -> tuple[tuple[str, bytes], ...]:
        return tuple((key, value) for key, value in self._status.trailing_metadata if isinstance(value, bytes))
