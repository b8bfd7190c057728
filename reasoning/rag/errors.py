"""Errors the retrieval library raises for requests a caller can fix.

They subclass the reasoning layer's :class:`~quorum.reasoning.errors.ReasoningError`
and carry no transport detail; the gRPC layer maps :class:`RagInputError` to
INVALID_ARGUMENT, :class:`CollectionNotFoundError` to NOT_FOUND and
:class:`EmbedderMismatchError` to FAILED_PRECONDITION. Like the other reasoning
errors they pickle with their fields, so they survive a hop between processes.
"""

from __future__ import annotations

from ..errors import ReasoningError, ReasoningInputError


class RagInputError(ReasoningInputError):
    """A retrieval request field is malformed or out of range.

    ``field`` names it the way the caller spelled it (``collection``,
    ``documents[3].text``, ``top_k``, ...) and the message starts with it.
    """


class CollectionNotFoundError(ReasoningError):
    """A search or delete names a collection the store does not have."""

    field = "collection"

    def __init__(self, name: str) -> None:
        super().__init__(f"collection: no collection named '{name}'")
        self.name = name

    def __reduce__(self) -> tuple[type, tuple[str]]:
        return (type(self), (self.name,))


class EmbedderMismatchError(ReasoningError):
    """A collection was built with another embedding model than the store now uses.

    Vectors of different models are not comparable, so the store refuses to mix
    them; re-ingest into a new collection or configure the original model.
    """

    field = "collection"

    def __init__(self, collection: str, stored_model: str, stored_dimension: int, model: str, dimension: int) -> None:
        super().__init__(
            f"collection: '{collection}' was built with embedder '{stored_model}' (dimension {stored_dimension}) "
            f"but this store embeds with '{model}' (dimension {dimension}); ingest into a new collection "
            "or configure the original embedder"
        )
        self.collection = collection
        self.stored_model = stored_model
        self.stored_dimension = stored_dimension
        self.model = model
        self.dimension = dimension

    def __reduce__(self) -> tuple[type, tuple[str, str, int, str, int]]:
        return (type(self), (self.collection, self.stored_model, self.stored_dimension, self.model, self.dimension))
