"""Sends requests from the gateway to the models' LLM-server deployments.

``ModelDispatcher`` knows which models exist, which can serve right now, and
turns Ray and Serve failures into quorum's domain errors (see ``errors.py``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass

from ray.exceptions import (
    ActorDiedError,
    ActorUnavailableError,
    NodeDiedError,
    ObjectLostError,
    RayActorError,
    RayTaskError,
    WorkerCrashedError,
)
from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError, ReplicaUnavailableError
from ray.serve.handle import DeploymentHandle

from .config import ModelConfig, QuorumConfig
from .errors import EngineUnavailable, ModelNotFound, Overloaded, QuorumError
from .types import GenerationChunk, GenerationRequest, Message, ModelStatus

logger = logging.getLogger(__name__)

StatusListener = Callable[[str, ModelStatus], Awaitable[None]]
# A replica's actor, worker process or node is gone, or so are the results it held (ObjectLostError covers
# OwnerDiedError): the request is lost with it, and another replica may serve a retry.
_UNREACHABLE = (
    ActorDiedError,
    ActorUnavailableError,
    RayActorError,
    ReplicaUnavailableError,
    NodeDiedError,
    WorkerCrashedError,
    ObjectLostError,
)


class StreamTruncated(Exception):
    """A replica's stream ended without its final chunk (the one carrying usage)."""


@dataclass
class _Model:
    config: ModelConfig
    handle: DeploymentHandle
    status: ModelStatus


def unwrap(exc: BaseException) -> BaseException:
    """The exception a replica raised, without Ray's RayTaskError wrapper."""
    return exc.cause if isinstance(exc, RayTaskError) and exc.cause is not None else exc


def domain_error(exc: BaseException, model_id: str) -> QuorumError | None:
    """The quorum error a Ray/Serve failure means for a client, or None if it is a bug."""
    cause = unwrap(exc)
    if isinstance(cause, QuorumError):
        return cause
    if isinstance(cause, BackPressureError):
        return Overloaded(f"model '{model_id}' has too many queued requests ({cause.message}); retry with back-off")
    if isinstance(cause, DeploymentUnavailableError):
        return EngineUnavailable(f"model '{model_id}' failed to deploy; see `quorum status`")
    if isinstance(cause, (*_UNREACHABLE, StreamTruncated)):
        return EngineUnavailable(f"the replica serving model '{model_id}' was lost ({type(cause).__name__}); retry")
    return None


class ModelDispatcher:
    """Routes requests to model deployments and tracks which models are ready."""

    def __init__(
        self,
        config: QuorumConfig,
        handles: dict[str, DeploymentHandle],
        status_timeout_s: float = 5.0,
    ) -> None:
        self._default = config.default_model_id
        self.constraints = config.constraints  # grammar bounds every front door applies (cluster/constraints.py)
        self._status_timeout_s = status_timeout_s
        self._models = {
            m.id: _Model(m, handles[m.id], ModelStatus(ready=False, state="loading", detail="not yet probed"))
            for m in config.models
        }
        self._listeners: list[StatusListener] = []

    @property
    def model_ids(self) -> list[str]:
        return list(self._models)

    @property
    def default_model(self) -> str:
        return self._default

    def config(self, model_id: str) -> ModelConfig:
        return self._model(model_id).config

    def status(self, model_id: str) -> ModelStatus:
        return self._model(model_id).status

    def add_listener(self, listener: StatusListener) -> None:
        self._listeners.append(listener)

    def resolve(self, requested: str) -> str:
        """The model id to use for a request's ``model`` field (empty means the default)."""
        model_id = requested or self._default
        if model_id not in self._models:
            raise ModelNotFound(
                f"model '{model_id}' is not served here; served models: {', '.join(self._models)} (see ListModels)"
            )
        return model_id

    def _model(self, model_id: str) -> _Model:
        return self._models[self.resolve(model_id)]

    async def probe(self, model_id: str) -> ModelStatus:
        """Ask a replica of ``model_id`` for its engine status and remember the answer."""
        model = self._model(model_id)
        try:
            status: ModelStatus = await asyncio.wait_for(
                model.handle.status.remote(),
                timeout=self._status_timeout_s,  # type: ignore[arg-type]
            )
        except TimeoutError:
            status = ModelStatus(ready=False, state="loading", detail="no replica answered yet")
        except Exception as exc:  # noqa: BLE001 - any probe failure means "cannot serve now"...
            if isinstance(domain_error(exc, model_id), Overloaded):
                # ...except back-pressure: the replicas are alive and busy, and requests still get admission
                # control's RESOURCE_EXHAUSTED rather than UNAVAILABLE.
                return model.status
            status = ModelStatus(ready=False, state="failed", detail=f"{type(unwrap(exc)).__name__}: {exc}")
        if status != model.status:
            logger.info("model %s: %s %s", model_id, status.state, status.detail)
        model.status = status
        for listener in self._listeners:
            await listener(model_id, status)
        return status

    async def probe_all(self) -> None:
        await asyncio.gather(*(self.probe(model_id) for model_id in self._models))

    async def monitor(self, period_s: float) -> None:
        """Probe every model forever, every ``period_s`` seconds (run as a background task)."""
        while True:
            await self.probe_all()
            await asyncio.sleep(period_s)

    async def _ensure_ready(self, model_id: str) -> _Model:
        model = self._model(model_id)
        if not model.status.ready:
            status = await self.probe(model_id)
            if not status.ready:
                if status.state == "failed":
                    raise EngineUnavailable(f"model '{model_id}' cannot serve: {status.detail}")
                raise EngineUnavailable(
                    f"model '{model_id}' is still loading ({status.detail}); retry when the grpc.health.v1 "
                    f"status of 'model/{model_id}' is SERVING"
                )
        return model

    async def stream(self, model_id: str, request: GenerationRequest) -> AsyncGenerator[GenerationChunk, None]:
        """Chunks of the answer; cancelling the consumer aborts the engine request.

        NOTE: a replica's stream always ends with a chunk carrying usage. One that stops before it (its
        replica or node was lost in a way Ray reports as a plain end of stream) raises EngineUnavailable,
        never a silently truncated answer.
        """
        model = await self._ensure_ready(model_id)
        response = model.handle.options(stream=True).generate.remote(request)
        finished = False
        try:
            final = False
            async for chunk in response:
                final = chunk.usage is not None
                yield chunk
            if not final:
                raise StreamTruncated(f"the stream of request {request.request_id} ended before its final chunk")
            finished = True
        except Exception as exc:
            # NOTE: the call itself failed (e.g. back-pressure refused it): there is nothing to cancel, and
            # cancel() would raise the same error again. Only a consumer that stops early needs the abort.
            finished = True
            error = domain_error(exc, model_id)
            if error is None:
                raise
            if isinstance(error, EngineUnavailable):
                model.status = ModelStatus(ready=False, state="loading", detail=error.message)
            raise error from None
        finally:
            if not finished:
                response.cancel()

    async def tokenize(self, model_id: str, prompt: str | None, messages: tuple[Message, ...] | None) -> list[int]:
        model = await self._ensure_ready(model_id)
        try:
            token_ids: list[int] = await model.handle.tokenize.remote(prompt, messages)
        except Exception as exc:
            error = domain_error(exc, model_id)
            if error is None:
                raise
            raise error from None
        return token_ids
