"""How the dispatcher turns a lost replica or node into EngineUnavailable (UNAVAILABLE at the edge)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from ray.exceptions import (
    ActorDiedError,
    ActorUnavailableError,
    NodeDiedError,
    ObjectLostError,
    OwnerDiedError,
    RayTaskError,
    WorkerCrashedError,
)
from ray.serve.exceptions import BackPressureError

from quorum.cluster.config import parse_config
from quorum.cluster.dispatch import ModelDispatcher, domain_error
from quorum.cluster.errors import EngineUnavailable, Overloaded
from quorum.cluster.types import (
    ChoiceDelta,
    FinishReason,
    GenerationChunk,
    GenerationRequest,
    ModelStatus,
    SamplingOptions,
    Usage,
)

MODEL = "m"
LOST = [
    ActorDiedError(),
    ActorUnavailableError("the actor's node is unreachable", None),
    NodeDiedError("node 1a2b died"),
    OwnerDiedError("ab" * 28, None, "generate()"),
    ObjectLostError("ab" * 28, None, "generate()"),
    WorkerCrashedError(),
]


@pytest.mark.parametrize("exc", LOST, ids=lambda exc: type(exc).__name__)
def test_a_lost_replica_worker_or_node_is_unavailable(exc: Exception) -> None:
    error = domain_error(exc, MODEL)
    assert isinstance(error, EngineUnavailable)
    assert f"model '{MODEL}' was lost ({type(exc).__name__}); retry" in error.message


def test_back_pressure_is_overloaded_and_a_bug_is_not_mapped() -> None:
    assert isinstance(domain_error(BackPressureError(num_queued_requests=3, max_queued_requests=2), MODEL), Overloaded)
    assert domain_error(KeyError("oops"), MODEL) is None


def test_a_replica_error_is_unwrapped() -> None:
    wrapped = RayTaskError("generate", "traceback", NodeDiedError("gone"))
    assert isinstance(domain_error(wrapped, MODEL), EngineUnavailable)


class _Stream:
    """What a streaming DeploymentHandle call returns: an async iterator of chunks, then an optional error."""

    def __init__(self, chunks: list[GenerationChunk], error: Exception | None) -> None:
        self._chunks = chunks
        self._error = error
        self.cancelled = False

    def __aiter__(self) -> AsyncIterator[GenerationChunk]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[GenerationChunk]:
        for chunk in self._chunks:
            yield chunk
        if self._error is not None:
            raise self._error

    def cancel(self) -> None:
        self.cancelled = True


class _Method:
    def __init__(self, result: Any) -> None:
        self._result = result

    def remote(self, *_: Any) -> Any:
        return self._result


class _Handle:
    """A deployment handle double: ``status`` says ready, ``generate`` streams the given chunks."""

    def __init__(self, stream: _Stream) -> None:
        self.generate = _Method(stream)
        self.status = _Method(self._ready())

    async def _ready(self) -> ModelStatus:
        return ModelStatus(ready=True, state="ready")

    def options(self, **_: Any) -> _Handle:
        return self


def _dispatcher(stream: _Stream) -> ModelDispatcher:
    config = parse_config({"models": [{"id": MODEL, "source": "embedded:smollm2-135m-instruct"}]})
    return ModelDispatcher(config, {MODEL: _Handle(stream)})  # type: ignore[dict-item]


def _request() -> GenerationRequest:
    return GenerationRequest(request_id="r1", sampling=SamplingOptions(max_tokens=4), prompt="Hi", stream=True)


TEXT = GenerationChunk(choices=(ChoiceDelta(index=0, text="Hel"),))
FINAL = GenerationChunk(choices=(ChoiceDelta(index=0, text="lo", finish_reason=FinishReason.STOP),), usage=Usage(1, 2))


async def _collect(dispatcher: ModelDispatcher) -> list[GenerationChunk]:
    return [chunk async for chunk in dispatcher.stream(MODEL, _request())]


async def test_a_whole_stream_passes_through() -> None:
    assert await _collect(_dispatcher(_Stream([TEXT, FINAL], None))) == [TEXT, FINAL]


async def test_a_stream_that_stops_before_its_final_chunk_is_unavailable_not_a_short_answer() -> None:
    dispatcher = _dispatcher(_Stream([TEXT], None))
    with pytest.raises(EngineUnavailable, match=r"was lost \(StreamTruncated\); retry"):
        await _collect(dispatcher)
    assert not dispatcher.status(MODEL).ready  # requests wait for the next probe to find a serving replica


@pytest.mark.parametrize("exc", LOST, ids=lambda exc: type(exc).__name__)
async def test_a_replica_lost_mid_stream_is_unavailable(exc: Exception) -> None:
    stream = _Stream([TEXT], exc)
    with pytest.raises(EngineUnavailable):
        await _collect(_dispatcher(stream))
    assert not stream.cancelled  # the call failed: nothing left to abort
