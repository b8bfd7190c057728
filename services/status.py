"""Domain errors -> gRPC status codes, with google.rpc error details (grpcio-status)."""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any, TypeAlias

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status
from opentelemetry import trace

from quorum.cluster.errors import EngineUnavailable, InvalidArgument, ModelNotFound, Overloaded, QuorumError
from quorum.reasoning.errors import ReasoningError, ReasoningInputError, StrategyUnavailableError, UnknownToolError
from quorum.reasoning.rag.errors import CollectionNotFoundError, EmbedderMismatchError

logger = logging.getLogger(__name__)
RETRY_AFTER_S = 1.0
# A status travels in HTTP/2 trailers twice (grpc-message, percent-encoded, and grpc-status-details-bin):
# messages that echo a huge request value would pass grpc's 16 KiB metadata limit, and the client would get
# RESOURCE_EXHAUSTED instead of the status. Longer texts are cut (UTF-8 bytes).
MAX_STATUS_TEXT_BYTES = 512
Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"

UserError = QuorumError | ReasoningError
_CODES: list[tuple[type[UserError], grpc.StatusCode]] = [
    (InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (ReasoningInputError, grpc.StatusCode.INVALID_ARGUMENT),
    (ModelNotFound, grpc.StatusCode.NOT_FOUND),
    (UnknownToolError, grpc.StatusCode.NOT_FOUND),
    (CollectionNotFoundError, grpc.StatusCode.NOT_FOUND),
    (EmbedderMismatchError, grpc.StatusCode.FAILED_PRECONDITION),
    (StrategyUnavailableError, grpc.StatusCode.UNIMPLEMENTED),
    (Overloaded, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (EngineUnavailable, grpc.StatusCode.UNAVAILABLE),
]


def status_code(error: UserError) -> grpc.StatusCode:
    for cls, code in _CODES:
        if isinstance(error, cls):
            return code
    return grpc.StatusCode.INTERNAL


def clipped(text: str, limit: int = MAX_STATUS_TEXT_BYTES) -> str:
    """``text`` cut to ``limit`` UTF-8 bytes, saying how much was cut."""
    data = text.encode("utf-8", "replace")
    if len(data) <= limit:
        return text
    return data[:limit].decode("utf-8", "ignore") + f"… ({len(data) - limit} more bytes)"


def to_status(error: UserError) -> grpc.Status:
    """A rich status: code and message, plus BadRequest or RetryInfo details where they apply."""
    code = status_code(error)
    details = []
    if isinstance(error, InvalidArgument | ReasoningInputError):
        violation = error_details_pb2.BadRequest.FieldViolation(
            field=clipped(error.field), description=clipped(error.problem)
        )
        details.append(error_details_pb2.BadRequest(field_violations=[violation]))
    elif isinstance(error, Overloaded | EngineUnavailable):
        delay = duration_pb2.Duration()
        delay.FromNanoseconds(int(RETRY_AFTER_S * 1e9))
        details.append(error_details_pb2.RetryInfo(retry_delay=delay))
    packed = []
    for detail in details:
        any_detail = any_pb2.Any()
        any_detail.Pack(detail)
        packed.append(any_detail)
    message = status_pb2.Status(code=getattr(code_pb2, code.name), message=clipped(error.message), details=packed)
    return rpc_status.to_status(message)


@contextlib.asynccontextmanager
async def errors_as_status(context: Context) -> AsyncIterator[None]:
    """Abort the RPC with the status of any domain error raised inside the block."""
    try:
        yield
    except (QuorumError, ReasoningError) as error:
        status = to_status(error)
        span = trace.get_current_span()
        span.set_attribute("rpc.grpc.status_code", status.code.value[0])
        span.set_attribute("quorum.error", error.message)
        await context.abort(status.code, status.details, status.trailing_metadata)
    except grpc.aio.AbortError:
        raise
    except Exception as error:  # a bug must not leak a traceback to clients
        incident = uuid.uuid4().hex[:12]
        logger.exception("internal error %s", incident)
        trace.get_current_span().record_exception(error)
        await context.abort(grpc.StatusCode.INTERNAL, f"internal error {incident}; the server logs have the details")
