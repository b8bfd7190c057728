"""The reasoning deployment's document store: config -> :class:`DocumentStore`, and its async retriever face.

The store's calls block (embedding, SQLite, faiss), so the asyncio side runs
them in worker threads; the store itself is thread-safe and several replicas
may share its directory.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from quorum.cluster.config import RagConfig
from quorum.reasoning.events import Passage
from quorum.reasoning.rag import (
    BUNDLED_MODEL_ID,
    CollectionInfo,
    CollectionNotFoundError,
    Document,
    DocumentStore,
    Hit,
    IngestResult,
    MiniLMEmbedder,
)

BUNDLED_NAMES = ("all-MiniLM-L6-v2", BUNDLED_MODEL_ID)


def document_store(config: RagConfig) -> DocumentStore:
    """The store of ``config``: the bundled all-MiniLM-L6-v2 embedder, or a local sentence-transformers model."""
    model_dir = None if config.embedding_model in BUNDLED_NAMES else Path(config.embedding_model).expanduser()
    embedder = MiniLMEmbedder(model_dir, batch_size=config.embed_batch_size)
    return DocumentStore(config, embedder)


class Documents:
    """Async access to a :class:`DocumentStore`; also the reasoning layer's :class:`Retriever`."""

    def __init__(self, store: DocumentStore) -> None:
        self._store = store

    @property
    def default_top_k(self) -> int:
        return self._store.settings.default_top_k

    @property
    def max_top_k(self) -> int:
        return self._store.settings.max_top_k

    async def ingest(self, collection: str, documents: Sequence[Document]) -> IngestResult:
        return await asyncio.to_thread(self._store.ingest, collection, documents)

    async def search(self, collection: str, query: str, top_k: int | None) -> list[Hit]:
        return await asyncio.to_thread(self._store.search, collection, query, top_k)

    async def delete_documents(self, collection: str, ids: Sequence[str]) -> int:
        return await asyncio.to_thread(self._store.delete_documents, collection, ids)

    async def delete_collection(self, collection: str) -> int:
        return await asyncio.to_thread(self._store.delete_collection, collection)

    async def list_collections(self) -> list[CollectionInfo]:
        return await asyncio.to_thread(self._store.list_collections)

    async def check_collection(self, collection: str) -> None:
        if not await asyncio.to_thread(self._store.has_collection, collection):
            raise CollectionNotFoundError(collection)

    async def retrieve(self, collection: str, query: str, top_k: int) -> tuple[Passage, ...]:
        hits = await self.search(collection, query, top_k)
        return tuple(Passage(doc_id=hit.document_id, text=hit.text, score=hit.score) for hit in hits)

    def close(self) -> None:
        self._store.close()
