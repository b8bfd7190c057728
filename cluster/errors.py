"""Domain errors raised by the cluster and mapped to gRPC status codes at the edge (services/).

They carry no transport detail, so plain-Python callers (the reasoning layer,
benchmarks) can handle them too. Each message tells the user what to change.
"""

from __future__ import annotations


class QuorumError(Exception):
    """Base class of errors a client can act on."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __reduce__(self) -> tuple[type, tuple[str, ...]]:
        return (type(self), (self.message,))


class InvalidArgument(QuorumError):
    """A request field is malformed or out of range; ``field`` names it."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem

    def __reduce__(self) -> tuple[type, tuple[str, ...]]:
        return (type(self), (self.field, self.problem))


class ContextOverflow(InvalidArgument):
    """The prompt alone fills the model's context (max_model_len): nothing is left to generate."""


class ModelNotFound(QuorumError):
    """The request names a model the cluster does not serve."""


class EngineUnavailable(QuorumError):
    """The model's engine is starting, failed or was lost; retrying later may succeed."""


class Overloaded(QuorumError):
    """The cluster is at capacity for this model; retry after a back-off."""
