"""The SDK's retries against a real gRPC server on loopback that fails the first tries.

The server answers like the gateway does when overloaded (services/status.py): RESOURCE_EXHAUSTED or
UNAVAILABLE with a google.rpc.RetryInfo detail. The clients' sleep is replaced by one that records the
requested waits, so the tests assert the delays asked for, not wall-clock time.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field

import grpc
import pytest
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from quorum.client import AsyncQuorumClient, QuorumClient, RetryPolicy
from quorum.client.retry import server_retry_delay
from quorum.v1 import inference_pb2 as pb
from quorum.v1 import inference_pb2_grpc


def rich_status(code: grpc.StatusCode, message: str, retry_delay_s: float | None) -> grpc.Status:
    details = []
    if retry_delay_s is not None:
        delay = duration_pb2.Duration()
        delay.FromNanoseconds(int(retry_delay_s * 1e9))
        packed = any_pb2.Any()
        packed.Pack(error_details_pb2.RetryInfo(retry_delay=delay))
        details.append(packed)
    status = status_pb2.Status(code=getattr(code_pb2, code.name), message=message, details=details)
    return rpc_status.to_status(status)


@dataclass
class Failure:
    code: grpc.StatusCode
    retry_delay_s: float | None = None


@dataclass
class FlakyInference(inference_pb2_grpc.InferenceServiceServicer):
    """Fails the first calls with ``failures`` (in order), then answers "Paris"; streams yield two deltas,
    and fail after the first one when ``fail_mid_stream``."""

    failures: list[Failure] = field(default_factory=list)
    fail_mid_stream: bool = False
    attempts: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _next_failure(self) -> Failure | None:
        with self.lock:
            self.attempts += 1
            return self.failures.pop(0) if self.failures else None

    def Chat(self, request: pb.ChatRequest, context: grpc.ServicerContext) -> pb.ChatResponse:
        failure = self._next_failure()
        if failure is not None:
            context.abort_with_status(rich_status(failure.code, "try later", failure.retry_delay_s))
        return pb.ChatResponse(choices=[pb.Choice(text="Paris")])

    def ChatStream(
        self, request: pb.ChatStreamRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.ChatStreamResponse]:
        failure = self._next_failure()
        if failure is not None:
            context.abort_with_status(rich_status(failure.code, "try later", failure.retry_delay_s))
        yield pb.ChatStreamResponse(choices=[pb.Choice(text="Pa")])
        if self.fail_mid_stream:
            context.abort_with_status(rich_status(grpc.StatusCode.UNAVAILABLE, "engine died", 0.25))
        yield pb.ChatStreamResponse(choices=[pb.Choice(text="ris")])


@pytest.fixture
def servicer() -> FlakyInference:
    return FlakyInference()  # type: ignore[abstract]  # the methods it lacks answer UNIMPLEMENTED


@pytest.fixture
def target(servicer: FlakyInference) -> Iterator[str]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    inference_pb2_grpc.add_InferenceServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(None)


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


class AsyncSleeps(list[float]):
    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


OVERLOADED = Failure(grpc.StatusCode.RESOURCE_EXHAUSTED, retry_delay_s=0.25)


def test_overloaded_twice_then_answers_after_the_servers_delay(servicer: FlakyInference, target: str) -> None:
    servicer.failures = [OVERLOADED, OVERLOADED]
    sleeps = Sleeps()
    with QuorumClient(target, timeout=30, sleep=sleeps) as client:
        reply = client.chat([("user", "capital of France?")])
    assert reply.choices[0].text == "Paris"
    assert servicer.attempts == 3
    assert sleeps == [0.25, 0.25]


async def test_async_client_honours_retry_info_too(servicer: FlakyInference, target: str) -> None:
    servicer.failures = [OVERLOADED, Failure(grpc.StatusCode.UNAVAILABLE, retry_delay_s=1.5)]
    sleeps = AsyncSleeps()
    async with AsyncQuorumClient(target, timeout=30, sleep=sleeps) as client:
        reply = await client.chat([("user", "capital of France?")])
    assert reply.choices[0].text == "Paris"
    assert servicer.attempts == 3
    assert sleeps == [0.25, 1.5]


def test_a_stream_that_failed_before_its_first_delta_is_retried(servicer: FlakyInference, target: str) -> None:
    servicer.failures = [OVERLOADED, OVERLOADED]
    sleeps = Sleeps()
    with QuorumClient(target, timeout=30, sleep=sleeps) as client:
        text = "".join(r.choices[0].text for r in client.chat_stream([("user", "capital of France?")]))
    assert text == "Paris"
    assert servicer.attempts == 3
    assert sleeps == [0.25, 0.25]


async def test_async_stream_is_retried_before_its_first_delta(servicer: FlakyInference, target: str) -> None:
    servicer.failures = [OVERLOADED]
    sleeps = AsyncSleeps()
    async with AsyncQuorumClient(target, timeout=30, sleep=sleeps) as client:
        text = "".join([r.choices[0].text async for r in client.chat_stream([("user", "capital of France?")])])
    assert text == "Paris"
    assert sleeps == [0.25]


def test_a_stream_that_already_yielded_is_never_retried(servicer: FlakyInference, target: str) -> None:
    servicer.fail_mid_stream = True
    sleeps = Sleeps()
    received = []
    with QuorumClient(target, timeout=30, sleep=sleeps) as client:
        stream = client.chat_stream([("user", "capital of France?")])
        received.append(next(stream).choices[0].text)
        with pytest.raises(grpc.RpcError) as failed:
            next(stream)
    assert failed.value.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
    assert received == ["Pa"]
    assert servicer.attempts == 1
    assert sleeps == []


async def test_async_stream_that_already_yielded_is_never_retried(servicer: FlakyInference, target: str) -> None:
    servicer.fail_mid_stream = True
    sleeps = AsyncSleeps()
    received = []
    async with AsyncQuorumClient(target, timeout=30, sleep=sleeps) as client:
        stream = client.chat_stream([("user", "capital of France?")])
        received.append((await anext(stream)).choices[0].text)
        with pytest.raises(grpc.RpcError):
            await anext(stream)
    assert received == ["Pa"]
    assert servicer.attempts == 1
    assert sleeps == []


def test_gives_up_after_max_attempts_with_the_servers_status(servicer: FlakyInference, target: str) -> None:
    servicer.failures = [OVERLOADED] * 5
    sleeps = Sleeps()
    with QuorumClient(target, timeout=30, sleep=sleeps) as client, pytest.raises(grpc.RpcError) as failed:
        client.chat([("user", "hi")])
    assert failed.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED  # type: ignore[attr-defined]
    assert failed.value.details() == "try later"  # type: ignore[attr-defined]
    assert servicer.attempts == 3
    assert sleeps == [0.25, 0.25]


@pytest.mark.parametrize(
    "failure",
    [
        Failure(grpc.StatusCode.INVALID_ARGUMENT),
        Failure(grpc.StatusCode.NOT_FOUND),
        # RESOURCE_EXHAUSTED without RetryInfo is what grpc itself raises for a message over the size limit.
        Failure(grpc.StatusCode.RESOURCE_EXHAUSTED),
    ],
    ids=lambda f: f.code.name,
)
def test_other_failures_are_raised_at_once(servicer: FlakyInference, target: str, failure: Failure) -> None:
    servicer.failures = [failure]
    sleeps = Sleeps()
    with QuorumClient(target, timeout=30, sleep=sleeps) as client, pytest.raises(grpc.RpcError) as failed:
        client.chat([("user", "hi")])
    assert failed.value.code() == failure.code  # type: ignore[attr-defined]
    assert servicer.attempts == 1
    assert sleeps == []


def test_never_waits_past_the_calls_deadline(servicer: FlakyInference, target: str) -> None:
    servicer.failures = [Failure(grpc.StatusCode.UNAVAILABLE, retry_delay_s=60)]
    sleeps = Sleeps()
    with (
        QuorumClient(target, timeout=30, sleep=sleeps, retry=RetryPolicy(max_delay_s=120)) as client,
        pytest.raises(grpc.RpcError),
    ):
        client.chat([("user", "hi")])
    assert servicer.attempts == 1
    assert sleeps == []


def test_a_server_delay_over_the_policys_cap_is_not_shortened(servicer: FlakyInference, target: str) -> None:
    servicer.failures = [Failure(grpc.StatusCode.UNAVAILABLE, retry_delay_s=20)]
    sleeps = Sleeps()
    with QuorumClient(target, timeout=None, sleep=sleeps) as client, pytest.raises(grpc.RpcError):
        client.chat([("user", "hi")])
    assert servicer.attempts == 1
    assert sleeps == []


def test_unavailable_without_retry_info_backs_off_exponentially(servicer: FlakyInference, target: str) -> None:
    servicer.failures = [Failure(grpc.StatusCode.UNAVAILABLE)] * 3
    sleeps = Sleeps()
    policy = RetryPolicy(max_attempts=4, initial_backoff_s=0.5, backoff_multiplier=2)
    with QuorumClient(target, timeout=30, sleep=sleeps, retry=policy) as client:
        assert client.chat([("user", "hi")]).choices[0].text == "Paris"
    assert servicer.attempts == 4
    assert len(sleeps) == 3
    assert all(0 <= s <= bound for s, bound in zip(sleeps, (0.5, 1.0, 2.0), strict=True))


def test_max_attempts_1_turns_retries_off(servicer: FlakyInference, target: str) -> None:
    servicer.failures = [OVERLOADED]
    with (
        QuorumClient(target, timeout=30, sleep=Sleeps(), retry=RetryPolicy(max_attempts=1)) as client,
        pytest.raises(grpc.RpcError),
    ):
        client.chat([("user", "hi")])
    assert servicer.attempts == 1


def test_server_retry_delay_reads_the_detail(servicer: FlakyInference, target: str) -> None:
    servicer.failures = [Failure(grpc.StatusCode.UNAVAILABLE, retry_delay_s=1.25)]
    with (
        QuorumClient(target, timeout=30, retry=RetryPolicy(max_attempts=1)) as client,
        pytest.raises(grpc.RpcError) as failed,
    ):
        client.chat([("user", "hi")])
    assert server_retry_delay(failed.value) == 1.25


def test_a_policy_names_the_bad_field() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError, match="max_delay_s"):
        RetryPolicy(max_delay_s=-1)
