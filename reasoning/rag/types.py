"""The values the retrieval library takes and returns."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Document:
    """A document to ingest: ``id`` is unique within its collection; re-ingesting it replaces it."""

    id: str
    text: str
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Chunk:
    """A piece of a document's text: ``text == document_text[start:end]``; ``index`` counts from 0."""

    document_id: str
    index: int
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class Hit:
    """A chunk found by a search; ``score`` is the cosine similarity to the query (higher is closer)."""

    document_id: str
    chunk_index: int
    text: str
    score: float
    start: int
    end: int
    metadata: dict[str, str]


@dataclass(frozen=True)
class IngestResult:
    """What an ingest stored: ``replaced`` of the ``documents`` existed before and lost their old chunks."""

    documents: int
    chunks: int
    replaced: int


@dataclass(frozen=True)
class CollectionInfo:
    """A collection's name and how many documents and chunks it holds."""

    name: str
    documents: int
    chunks: int
