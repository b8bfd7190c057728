"""Settings of the retrieval library; the service maps its YAML config onto :class:`RagSettings`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RagSettings:
    """Where the store keeps its data, how documents are chunked, and the request limits.

    ``chunk_chars`` and ``chunk_overlap`` are in characters (``chunk_overlap`` <
    ``chunk_chars``); ``max_document_chars`` caps one document's text,
    ``max_documents_per_request`` one ingest's document count,
    ``max_metadata_chars`` one document's metadata (keys plus values; every
    search hit carries it) and ``max_query_chars`` a query; ``top_k`` of a search defaults to
    ``default_top_k`` and must lie in [1, ``max_top_k``]. ``embed_batch_size``
    is how many chunks go to the embedder at once; ``search_threads`` is how
    many OpenMP threads one faiss search uses (see :mod:`.index`). Invalid
    values raise ValueError naming the field.
    """

    data_dir: Path
    chunk_chars: int = 800
    chunk_overlap: int = 120
    max_document_chars: int = 200_000
    max_documents_per_request: int = 256
    max_metadata_chars: int = 4_096
    max_query_chars: int = 4_096
    default_top_k: int = 4
    max_top_k: int = 50
    embed_batch_size: int = 32
    search_threads: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "data_dir", Path(self.data_dir))
        for name in (
            "chunk_chars",
            "max_document_chars",
            "max_documents_per_request",
            "max_metadata_chars",
            "max_query_chars",
            "max_top_k",
            "embed_batch_size",
            "search_threads",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not 0 <= self.chunk_overlap < self.chunk_chars:
            raise ValueError(
                f"chunk_overlap must be in [0, chunk_chars) = [0, {self.chunk_chars}), got {self.chunk_overlap}"
            )
        if not 1 <= self.default_top_k <= self.max_top_k:
            raise ValueError(
                f"default_top_k must be in [1, max_top_k] = [1, {self.max_top_k}], got {self.default_top_k}"
            )
