"""The OpenAI-compatible HTTP API: a FastAPI app served by the gateway deployment through Ray Serve's HTTP proxy.

``GET /v1/models``, ``GET /v1/models/{model}``, ``POST /v1/completions`` and ``POST /v1/chat/completions``
(streaming as server-sent events ending with ``data: [DONE]``). Requests take the gRPC API's path:
the same checks (``services.generation.build_request``), the same ``ModelDispatcher`` and the same
LLM-server deployments; only the JSON mapping (``openai_convert``) differs.

Errors use OpenAI's format ``{"error": {"message", "type", "param", "code"}}``: 400 for a bad field
(``param`` names it), 401 without an accepted bearer token (when ``gateway.auth_tokens_file`` is set),
404 for an unknown model, 429 when the model's queue is full, 503 while it loads, 500 with an incident
id for bugs. A stream that fails after it started sends one ``data: {"error": ...}`` event and ends.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from opentelemetry import trace
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from quorum.cluster.config import GatewayConfig
from quorum.cluster.dispatch import ModelDispatcher
from quorum.cluster.errors import QuorumError
from quorum.cluster.telemetry import extract_context, tracer
from quorum.cluster.types import GenerationChunk

from .generation import build_request, merge_deltas
from .openai_convert import (
    SSE_DONE,
    Endpoint,
    ParsedRequest,
    StreamEncoder,
    chat_input,
    chat_response,
    completion_input,
    completion_response,
    domain_error,
    error_body,
    sse,
    validation_error,
)
from .openai_schema import ChatCompletionRequest, CompletionRequest
from .security import REJECTED_TOKEN, TokenFile, bearer_token
from .status import RETRY_AFTER_S

logger = logging.getLogger(__name__)

MISSING_HTTP_TOKEN = "missing credentials: send the header 'Authorization: Bearer <token>'"


def _json_error(status: int, body: dict[str, Any]) -> JSONResponse:
    headers = {"Retry-After": str(max(1, round(RETRY_AFTER_S)))} if status in (429, 503) else None
    return JSONResponse(body, status_code=status, headers=headers)


def _incident(error: BaseException) -> tuple[int, dict[str, Any]]:
    incident = uuid.uuid4().hex[:12]
    logger.error("internal error %s", incident, exc_info=error)
    trace.get_current_span().record_exception(error)
    message = f"internal error {incident}; the server logs have the details"
    return 500, error_body(message, "server_error", None, "internal_error")


class BearerAuth:
    """ASGI middleware: 401 unless the request carries an accepted ``Authorization: Bearer`` token.

    A middleware rather than a route dependency, so it answers before the body is even parsed.
    """

    def __init__(self, app: ASGIApp, tokens: TokenFile) -> None:
        self._app = app
        self._tokens = tokens

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            token = bearer_token(dict(scope["headers"]).get(b"authorization"))
            problem = MISSING_HTTP_TOKEN if token is None else None
            if token is not None and not self._tokens.accepts(token):
                problem = REJECTED_TOKEN
            if problem is not None:
                body = error_body(problem, "invalid_request_error", None, "invalid_api_key")
                response = JSONResponse(body, status_code=401, headers={"WWW-Authenticate": "Bearer"})
                await response(scope, receive, send)
                return
        await self._app(scope, receive, send)


class OpenAIRoutes:
    """The endpoints, bound to the gateway's dispatcher and config."""

    def __init__(self, dispatcher: ModelDispatcher, gateway: GatewayConfig) -> None:
        self._dispatcher = dispatcher
        self._gateway = gateway
        self._created = int(time.time())
        self._tracer = tracer("quorum.openai")

    def _model_json(self, model_id: str) -> dict[str, Any]:
        config = self._dispatcher.config(model_id)
        return {
            "id": model_id,
            "object": "model",
            "created": self._created,
            "owned_by": "quorum",
            "max_model_len": config.engine.max_model_len,
            "ready": self._dispatcher.status(model_id).ready,
        }

    async def list_models(self) -> JSONResponse:
        return JSONResponse({"object": "list", "data": [self._model_json(m) for m in self._dispatcher.model_ids]})

    async def get_model(self, model: str) -> JSONResponse:
        try:
            return JSONResponse(self._model_json(self._dispatcher.resolve(model)))
        except QuorumError as error:
            return _json_error(*domain_error(error, "completions"))

    async def completions(self, body: CompletionRequest, request: Request) -> Response:
        return await self._serve(request, "completions", lambda: completion_input(body))

    async def chat_completions(self, body: ChatCompletionRequest, request: Request) -> Response:
        return await self._serve(request, "chat", lambda: chat_input(body))

    async def _serve(self, request: Request, endpoint: Endpoint, parse: Callable[[], ParsedRequest]) -> Response:
        name = f"POST {request.url.path}"
        parsed: ParsedRequest | None = None
        context = extract_context(dict(request.headers))
        with self._tracer.start_as_current_span(name, context=context, kind=trace.SpanKind.SERVER) as span:
            try:
                parsed = parse()
                model_id, internal = build_request(
                    self._dispatcher,
                    self._gateway,
                    parsed.model,
                    parsed.options,
                    prompt=parsed.prompt,
                    messages=parsed.messages,
                    stream=parsed.stream,
                    tools=parsed.tools,
                    tool_choice=parsed.tool_choice,
                )
                created = int(time.time())
                chunks = self._dispatcher.stream(model_id, internal)
                if not parsed.stream:
                    choices, usage = merge_deltas([chunk async for chunk in chunks])
                    respond = chat_response if endpoint == "chat" else completion_response
                    return JSONResponse(respond(parsed, internal.request_id, model_id, created, choices, usage))
                # Wait for the first chunk so that a request the engine refuses gets a real status.
                first = await anext(chunks)
            except QuorumError as error:
                span.set_attribute("quorum.error", error.message)
                max_tokens_param = parsed.max_tokens_param if parsed is not None else "max_tokens"
                return _json_error(*domain_error(error, endpoint, max_tokens_param))
            except Exception as error:  # noqa: BLE001 - a bug must not leak a traceback to clients
                return _json_error(*_incident(error))
        encoder = StreamEncoder(parsed, internal.request_id, model_id, created)
        return StreamingResponse(
            _events(encoder, first, chunks, endpoint),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )


async def _events(
    encoder: StreamEncoder, first: GenerationChunk, rest: AsyncGenerator[GenerationChunk, None], endpoint: Endpoint
) -> AsyncIterator[str]:
    """The server-sent events of a stream; closing it (client gone) cancels the engine request."""
    try:
        for event in encoder.encode(first):
            yield sse(event)
        async for chunk in rest:
            for event in encoder.encode(chunk):
                yield sse(event)
        for event in encoder.finish():
            yield sse(event)
        yield SSE_DONE
    except QuorumError as error:
        yield sse(domain_error(error, endpoint)[1])
    except Exception as error:  # noqa: BLE001 - reported to the client as an error event
        yield sse(_incident(error)[1])
    finally:
        await rest.aclose()


def build_openai_app(dispatcher: ModelDispatcher, gateway: GatewayConfig, tokens: TokenFile | None) -> FastAPI:
    """The FastAPI app of the OpenAI-compatible API (``/v1/...``)."""
    app = FastAPI(
        title="quorum OpenAI-compatible API",
        description="OpenAI-compatible completions and chat completions on the quorum cluster.",
        docs_url="/docs",
        redoc_url=None,
    )
    routes = OpenAIRoutes(dispatcher, gateway)
    router = APIRouter(prefix="/v1")
    router.add_api_route("/models", routes.list_models, methods=["GET"])
    router.add_api_route("/models/{model}", routes.get_model, methods=["GET"])
    router.add_api_route("/completions", routes.completions, methods=["POST"], response_model=None)
    router.add_api_route("/chat/completions", routes.chat_completions, methods=["POST"], response_model=None)
    app.include_router(router)

    async def on_validation_error(request: Request, exc: Exception) -> Response:
        errors = exc.errors() if isinstance(exc, RequestValidationError) else []
        return _json_error(400, validation_error(list(errors)))

    async def on_http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        detail = exc.detail if isinstance(exc, HTTPException) else str(exc)
        message = f"{detail}: {request.method} {request.url.path}"
        return JSONResponse(error_body(message, "invalid_request_error", None, None), status_code=status)

    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(HTTPException, on_http_error)
    if tokens is not None:
        app.add_middleware(BearerAuth, tokens=tokens)
    return app
