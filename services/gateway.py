"""The gateway: a grpc.aio server of quorum's own, running inside a Ray Serve replica.

The same deployment is the application's HTTP ingress (``serve.ingress``): Ray Serve's HTTP proxy
routes ``/v1/...`` to the OpenAI-compatible FastAPI app built in ``__serve_build_asgi_app__``
(``services/openai_http.py``), which shares the dispatcher, the checks and the token file with gRPC.

Why our own server rather than Ray Serve's gRPC proxy: the contract needs the
standard ``grpc.health.v1`` service with per-model status, server reflection,
rich error details, deadline and cancellation propagation into the engine, and
(for deployments) interceptors for auth/TLS and OpenTelemetry. Serve's proxy
offers none of these hooks. Running the server inside a Serve deployment keeps
one code path from a laptop (``quorum up``) to a KubeRay RayService: the gateway
is the application's ingress deployment, bound to one LLM-server deployment per
model, and reaches them through Serve deployment handles.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

import grpc
import ray
from fastapi import FastAPI
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from opentelemetry.instrumentation.grpc import aio_server_interceptor, filters
from ray.serve.handle import DeploymentHandle

from quorum.client.sdk import model_health_name
from quorum.cluster.affinity import pin_off
from quorum.cluster.config import QuorumConfig
from quorum.cluster.dispatch import ModelDispatcher
from quorum.cluster.telemetry import setup_tracing
from quorum.cluster.types import ModelStatus
from quorum.v1 import inference_pb2, inference_pb2_grpc, reasoning_pb2, reasoning_pb2_grpc

from .grpc_metrics import RayRequestCount, RequestCounter
from .inference import InferenceServicer
from .openai_http import build_openai_app
from .reasoning_service import ReasoningServicer
from .request_decoding import UndecodableRequestInterceptor
from .security import BearerTokenInterceptor, TokenFile, server_credentials

logger = logging.getLogger(__name__)

INFERENCE_SERVICE = inference_pb2.DESCRIPTOR.services_by_name["InferenceService"].full_name
REASONING_SERVICE = reasoning_pb2.DESCRIPTOR.services_by_name["ReasoningService"].full_name
HEALTH_PERIOD_S = 1.0
REASONING_PROBE_TIMEOUT_S = 10.0


def _serving(ready: bool) -> health_pb2.HealthCheckResponse.ServingStatus.ValueType:
    return health_pb2.HealthCheckResponse.SERVING if ready else health_pb2.HealthCheckResponse.NOT_SERVING


class Gateway:
    """Serve ingress deployment that owns the gRPC server (see the module docstring)."""

    def __init__(self, config: QuorumConfig, handles: dict[str, DeploymentHandle], reasoning: DeploymentHandle) -> None:
        setup_tracing(config.telemetry, component="gateway")
        self._config = config
        self._dispatcher = ModelDispatcher(config, handles)
        self._reasoning = reasoning
        self._reasoning_up = False
        self._health = health.aio.HealthServicer()  # type: ignore[attr-defined]
        self._dispatcher.add_listener(self._on_status)
        gateway = config.gateway
        # Trace the quorum API; the health service's Watch is not an async generator,
        # which the tracing interceptor's streaming wrapper cannot handle.
        interceptors: list[grpc.aio.ServerInterceptor[Any, Any]] = [
            aio_server_interceptor(filter_=filters.service_prefix("quorum."))  # type: ignore[no-untyped-call]
        ]
        self._tokens = TokenFile(gateway.auth_tokens_file) if gateway.auth_tokens_file is not None else None
        if self._tokens is not None:
            interceptors.insert(0, BearerTokenInterceptor(self._tokens))
        # Outermost: every quorum RPC is counted by method and final status, refused ones included.
        interceptors.insert(0, RequestCounter(RayRequestCount()))
        # Innermost: undecodable request bytes become INVALID_ARGUMENT (outer interceptors see that status).
        interceptors.append(UndecodableRequestInterceptor())
        self._server = grpc.aio.server(
            interceptors=interceptors,
            options=[
                ("grpc.max_receive_message_length", gateway.max_message_bytes),
                ("grpc.max_send_message_length", gateway.max_message_bytes),
                ("grpc.so_reuseport", 1),
            ],
        )
        inference_pb2_grpc.add_InferenceServiceServicer_to_server(
            InferenceServicer(self._dispatcher, gateway), self._server
        )
        reasoning_pb2_grpc.add_ReasoningServiceServicer_to_server(
            ReasoningServicer(reasoning, self._dispatcher, config.reasoning), self._server
        )
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        reflection.enable_server_reflection(
            (
                INFERENCE_SERVICE,
                REASONING_SERVICE,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ),
            self._server,
        )
        address = f"{gateway.host}:{gateway.grpc_port}"
        credentials = server_credentials(gateway)
        if credentials is None:
            self.port = self._server.add_insecure_port(address)
        else:
            self.port = self._server.add_secure_port(address, credentials)
        self._all_ready = asyncio.Event()
        self._statuses: dict[str, ModelStatus] = {}
        self._node_id = ray.get_runtime_context().get_node_id()
        self._engine_cores: set[int] = set()
        self._allowed_cores = os.sched_getaffinity(0)
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._run()), loop.create_task(self._watch_reasoning())]
        logger.info("gRPC gateway listening on %s:%d", gateway.host, self.port)

    def __serve_build_asgi_app__(self) -> FastAPI:
        """Ray Serve's hook for a late-bound ingress app: the OpenAI-compatible HTTP API on this replica."""
        return build_openai_app(self._dispatcher, self._config.gateway, self._tokens)

    async def _run(self) -> None:
        await self._set_overall()
        await self._server.start()
        await self._dispatcher.monitor(HEALTH_PERIOD_S)

    async def _watch_reasoning(self) -> None:
        """Probe the reasoning deployment (a cheap call) every period; ReasoningService health follows it."""
        while True:
            try:
                await asyncio.wait_for(self._reasoning.tools.remote(), REASONING_PROBE_TIMEOUT_S)
                up = True
            except Exception:  # noqa: BLE001 - any failure means the reasoning replicas cannot answer now
                up = False
            if up != self._reasoning_up:
                logger.info("reasoning deployment %s", "answering" if up else "not answering")
                self._reasoning_up = up
                await self._set_overall()
            await asyncio.sleep(HEALTH_PERIOD_S)

    async def _on_status(self, model_id: str, status: ModelStatus) -> None:
        self._statuses[model_id] = status
        if self._config.gateway.pin_off_engine_cores:
            self._keep_off_engine_cores()
        await self._health.set(model_health_name(model_id), _serving(status.ready))
        await self._set_overall()

    def _keep_off_engine_cores(self) -> None:
        """Move this process off the cores the CPU engines of this node compute on (when they change)."""
        busy = {core for s in self._statuses.values() if s.node_id == self._node_id for core in s.engine_cores}
        if busy != self._engine_cores:
            self._engine_cores = busy
            cores = pin_off([os.getpid()], busy, self._allowed_cores)
            if cores:
                logger.info("gateway moved to cores %s (engines of this node compute on %s)", cores, sorted(busy))

    async def _set_overall(self) -> None:
        statuses = [self._statuses.get(m) for m in self._dispatcher.model_ids]
        ready = all(s is not None and s.ready for s in statuses)
        if ready:
            self._all_ready.set()
        else:
            self._all_ready.clear()
        serving = _serving(ready)
        await self._health.set("", serving)
        await self._health.set(INFERENCE_SERVICE, serving)
        # Reasoning runs strategies on the engines: it serves when they do and its own replicas answer.
        await self._health.set(REASONING_SERVICE, _serving(ready and self._reasoning_up))

    async def wait_ready(self, timeout_s: float) -> bool:
        """Wait until every model can serve; False on timeout."""
        try:
            await asyncio.wait_for(self._all_ready.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    def model_states(self) -> dict[str, ModelStatus]:
        return dict(self._statuses)

    async def endpoint(self) -> str:
        """The address clients dial."""
        return f"{self._config.gateway.host}:{self.port}"

    async def check_health(self) -> None:
        for task in self._tasks:
            if task.done() and task.exception() is not None:
                raise RuntimeError(f"gateway task failed: {task.exception()!r}")

    async def __del__(self) -> None:
        for task in self._tasks:
            task.cancel()
        await self._health.enter_graceful_shutdown()
        await self._server.stop(self._config.gateway.graceful_shutdown_s)
