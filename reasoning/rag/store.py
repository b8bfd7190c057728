"""A persistent store of named document collections with vector search.

Design:

- **SQLite is the source of truth** (:mod:`.catalog`): documents, their chunks
  and the chunks' vectors live in one WAL database under ``data_dir``. Every
  ingest or delete is one write transaction, so an acknowledged write survives
  a crash and a crash mid-write leaves nothing of it behind: there is no
  half-written collection to find on restart. Embedding happens before the
  transaction opens, so the database write lock is held only for the inserts.
- **faiss is an in-memory cache** (:mod:`.index`): one exact inner-product
  index per collection (unit vectors, so scores are cosine similarities), built
  from SQLite on first search and kept in step afterwards. It is not written to
  disk: a flat index's file would hold the same vectors SQLite holds, so
  loading it would save little over rebuilding, and a second on-disk copy could
  only ever be stale or torn.
- **Several processes may share ``data_dir``** (e.g. Serve replicas on one
  host; WAL needs a local filesystem, not a network share). Each collection has
  a generation counter that every write bumps; a search runs in one read
  transaction, compares the generation with the one its cached index reflects,
  and on a difference brings the index up to date by chunk-id difference (row
  ids are never reused) before searching. The hits' texts are read in the same
  transaction, so a search sees exactly one committed state.
- **Threads**: each thread has its own SQLite connection; each cached index has
  a readers-writer lock, so searches run in parallel (faiss releases the GIL)
  and an index changes only under the write side: a search never sees a
  half-applied ingest. A writer applies its own change to the cached index
  after committing, when the index reflected the state just before it;
  otherwise the next search catches up.

Why faiss: exact SIMD/BLAS inner-product search that scales to millions of
vectors per collection on CPU, removal by id (so re-ingest and delete need no
rebuild), and a path to approximate indexes (IVF, HNSW) behind the same calls
if collections outgrow exact search; a hand-rolled numpy scan would have none of
the last two.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING

import numpy as np

from . import catalog, validation
from .catalog import CollectionRow, Ids, Vectors
from .chunking import chunk_text
from .embedder import Embedder
from .errors import CollectionNotFoundError, EmbedderMismatchError
from .index import VectorIndex
from .rwlock import ReadWriteLock
from .types import Chunk, CollectionInfo, Document, Hit, IngestResult

if TYPE_CHECKING:
    from quorum.cluster.config import RagConfig

DATABASE_NAME = "rag.sqlite3"
_SNAPSHOT_ATTEMPTS = 100


@dataclass
class _CachedIndex:
    """A collection's faiss index and the catalog version (row id, generation) it reflects."""

    lock: ReadWriteLock = field(default_factory=ReadWriteLock)
    version: tuple[int, int] = (0, -1)
    index: VectorIndex | None = None


class DocumentStore:
    """Named collections of chunked, embedded documents under ``settings.data_dir`` (see the module docstring).

    ``settings`` is the cluster config's ``rag`` section (:class:`quorum.cluster.config.RagConfig`, used by
    attribute only: this package does not import it). ``search_threads`` is how many OpenMP threads one
    faiss search uses (see :mod:`.index`).

    Safe to use from many threads, and from many processes on the same
    directory. Request errors raise :class:`RagInputError` naming the field,
    :class:`CollectionNotFoundError` or :class:`EmbedderMismatchError`.
    """

    def __init__(self, settings: RagConfig, embedder: Embedder, *, search_threads: int = 1) -> None:
        if search_threads < 1:
            raise ValueError(f"search_threads must be at least 1, got {search_threads}")
        self._settings = settings
        self._embedder = embedder
        self._search_threads = search_threads
        settings.data_path.mkdir(parents=True, exist_ok=True)
        self._path = settings.data_path / DATABASE_NAME
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self._indexes: dict[str, _CachedIndex] = {}
        self._indexes_lock = threading.Lock()
        self._closed = False
        with catalog.transaction(self._connection(), write=True) as conn:
            catalog.ensure_schema(conn)

    @property
    def settings(self) -> RagConfig:
        return self._settings

    @property
    def embedder(self) -> Embedder:
        return self._embedder

    def ingest(self, collection: str, documents: Sequence[Document]) -> IngestResult:
        """Chunk, embed and store ``documents`` in ``collection``, creating the collection if it is new.

        A document whose id the collection already holds is replaced: its old
        chunks go and its metadata is the new one. All of it commits at once or
        not at all; when this returns, the documents are durable and visible to
        every search that starts afterwards, in any process.
        """
        name = validation.collection_name(collection)
        validation.documents(documents, self._settings)
        chunked = [
            chunk_text(doc.id, doc.text, self._settings.chunk_chars, self._settings.chunk_overlap) for doc in documents
        ]
        vectors = self._embed([chunk.text for chunks in chunked for chunk in chunks])
        conn = self._connection()
        with catalog.transaction(conn, write=True):
            row = catalog.find_collection(conn, name)
            if row is None:
                row = catalog.create_collection(conn, name, self._embedder.model_id, vectors.shape[1])
            self._check_embedder(row, vectors.shape[1])
            existing = catalog.find_documents(conn, row.id, [doc.id for doc in documents])
            removed = catalog.chunk_ids_of_documents(conn, list(existing.values()))
            catalog.delete_documents(conn, list(existing.values()))
            added = self._insert(conn, row.id, documents, chunked, vectors)
            generation = catalog.bump_generation(conn, row.id)
        self._apply(name, row.version, (row.id, generation), removed, added, vectors)
        return IngestResult(documents=len(documents), chunks=len(vectors), replaced=len(existing))

    def search(self, collection: str, query: str, top_k: int | None = None) -> list[Hit]:
        """The ``top_k`` (default ``settings.default_top_k``) chunks closest to ``query``, best first.

        Fewer when the collection holds fewer chunks; one document may
        contribute several chunks.
        """
        name = validation.collection_name(collection)
        text = validation.query(query)
        k = validation.top_k(top_k, self._settings)
        vector = self._embed([text])[0]
        conn = self._connection()
        for _ in range(_SNAPSHOT_ATTEMPTS):
            with catalog.transaction(conn, write=False):
                row = catalog.find_collection(conn, name)
                if row is None:
                    self._forget(name)
                    raise CollectionNotFoundError(name)
                self._check_embedder(row, len(vector))
                hits = self._search_snapshot(conn, row, vector, k)
            if hits is not None:
                return hits
        raise RuntimeError(f"collection '{name}' kept changing; could not search a consistent snapshot")

    def delete_documents(self, collection: str, ids: Sequence[str]) -> int:
        """Delete the documents with these ids and their chunks; returns how many existed (unknown ids are ignored)."""
        name = validation.collection_name(collection)
        doc_ids = validation.document_ids(ids, self._settings)
        conn = self._connection()
        with catalog.transaction(conn, write=True):
            row = catalog.find_collection(conn, name)
            if row is None:
                raise CollectionNotFoundError(name)
            existing = catalog.find_documents(conn, row.id, doc_ids)
            if not existing:
                return 0
            removed = catalog.chunk_ids_of_documents(conn, list(existing.values()))
            catalog.delete_documents(conn, list(existing.values()))
            generation = catalog.bump_generation(conn, row.id)
        empty = np.zeros((0, row.dimension), dtype=np.float32)
        self._apply(name, row.version, (row.id, generation), removed, np.zeros(0, dtype=np.int64), empty)
        return len(existing)

    def has_collection(self, collection: str) -> bool:
        """Whether ``collection`` exists (one indexed lookup; the name is validated like everywhere else)."""
        name = validation.collection_name(collection)
        conn = self._connection()
        with catalog.transaction(conn, write=False):
            return catalog.find_collection(conn, name) is not None

    def list_collections(self) -> list[CollectionInfo]:
        """Every collection with its document and chunk counts, sorted by name."""
        conn = self._connection()
        with catalog.transaction(conn, write=False):
            return catalog.collection_infos(conn)

    def delete_collection(self, name: str) -> int:
        """Delete the collection and everything in it; returns how many documents it held."""
        name = validation.collection_name(name)
        conn = self._connection()
        with catalog.transaction(conn, write=True):
            row = catalog.find_collection(conn, name)
            if row is None:
                raise CollectionNotFoundError(name)
            documents = catalog.document_count(conn, row.id)
            catalog.drop_collection(conn, row.id)
        self._forget(name)
        return documents

    def close(self) -> None:
        """Close the database connections of every thread; the store is unusable afterwards."""
        with self._connections_lock:
            self._closed = True
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        with self._indexes_lock:
            self._indexes.clear()

    def __enter__(self) -> DocumentStore:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def _connection(self) -> sqlite3.Connection:
        """This thread's connection, opened on first use."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        with self._connections_lock:
            if self._closed:
                raise RuntimeError("the document store is closed")
            if conn is None:
                conn = catalog.connect(self._path)
                self._connections.append(conn)
                self._local.conn = conn
        return conn

    def _embed(self, texts: Sequence[str]) -> Vectors:
        """Unit vectors for ``texts``, ``settings.embed_batch_size`` at a time; checks the embedder's output."""
        batch_size = self._settings.embed_batch_size
        parts: list[Vectors] = []
        for start in range(0, len(texts), batch_size):
            batch = texts[start : start + batch_size]
            part = np.asarray(self._embedder.embed(batch), dtype=np.float32)
            if part.ndim != 2 or part.shape[0] != len(batch) or (parts and part.shape[1] != parts[0].shape[1]):
                raise ValueError(f"embedder returned shape {part.shape} for {len(batch)} texts")
            if not np.isfinite(part).all():
                raise ValueError("embedder returned non-finite values")
            norms = np.linalg.norm(part, axis=1, keepdims=True)
            parts.append(part / np.maximum(norms, 1e-12))
        return np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)

    def _check_embedder(self, row: CollectionRow, dimension: int) -> None:
        if row.model_id != self._embedder.model_id or row.dimension != dimension:
            raise EmbedderMismatchError(row.name, row.model_id, row.dimension, self._embedder.model_id, dimension)

    def _insert(
        self,
        conn: sqlite3.Connection,
        collection_id: int,
        documents: Sequence[Document],
        chunked: Sequence[Sequence[Chunk]],
        vectors: Vectors,
    ) -> Ids:
        """Insert the documents and their chunks; returns the chunk row ids, in the order of ``vectors``."""
        ids: list[Ids] = []
        offset = 0
        for doc, chunks in zip(documents, chunked, strict=True):
            document_row = catalog.insert_document(conn, collection_id, doc)
            part = vectors[offset : offset + len(chunks)]
            ids.append(catalog.insert_chunks(conn, collection_id, document_row, chunks, part))
            offset += len(chunks)
        return np.concatenate(ids)

    def _cached(self, name: str) -> _CachedIndex:
        with self._indexes_lock:
            return self._indexes.setdefault(name, _CachedIndex())

    def _forget(self, name: str) -> None:
        with self._indexes_lock:
            self._indexes.pop(name, None)

    def _apply(
        self, name: str, before: tuple[int, int], after: tuple[int, int], removed: Ids, added: Ids, vectors: Vectors
    ) -> None:
        """Bring this process's cached index from ``before`` to ``after`` if it is at ``before``; else leave it."""
        with self._indexes_lock:
            cached = self._indexes.get(name)
        if cached is None:
            return
        with cached.lock.write():
            if cached.version != before or cached.index is None:
                return
            cached.index.remove(removed)
            cached.index.add(added, vectors)
            cached.version = after

    def _search_snapshot(
        self, conn: sqlite3.Connection, row: CollectionRow, vector: Vectors, k: int
    ) -> list[Hit] | None:
        """Search the collection as of this read transaction's snapshot ``row``.

        Brings the cached index up to the snapshot first when it is behind;
        returns None when another thread has moved it past the snapshot (the
        caller retries with a fresh one).
        """
        cached = self._cached(row.name)
        while True:
            with cached.lock.read():
                if cached.version == row.version and cached.index is not None:
                    ids, scores = cached.index.search(vector, k)
                    rows = catalog.hit_rows(conn, [int(i) for i in ids])
                    return [_hit(rows[int(i)], float(s)) for i, s in zip(ids, scores, strict=True) if int(i) in rows]
                if cached.version > row.version:
                    return None
            with cached.lock.write():
                if cached.version < row.version or cached.index is None:
                    _catch_up(conn, cached, row, self._search_threads)


def _catch_up(conn: sqlite3.Connection, cached: _CachedIndex, row: CollectionRow, threads: int) -> None:
    """Make ``cached`` reflect ``row`` (the snapshot of this transaction); the caller holds its write lock."""
    if cached.index is None or cached.version[0] != row.id or cached.index.dimension != row.dimension:
        cached.index = VectorIndex(row.dimension, threads)
        cached.index.add(*catalog.all_vectors(conn, row.id, row.dimension))
    else:
        current = cached.index.ids()
        stored = catalog.chunk_ids(conn, row.id)
        cached.index.remove(np.setdiff1d(current, stored, assume_unique=True))
        missing = np.setdiff1d(stored, current, assume_unique=True)
        cached.index.add(*catalog.vectors_of(conn, missing, row.dimension))
    cached.version = row.version


def _hit(row: catalog.HitRow, score: float) -> Hit:
    return Hit(
        document_id=row.document_id,
        chunk_index=row.chunk_index,
        text=row.text,
        score=score,
        start=row.start,
        end=row.end,
        metadata=row.metadata,
    )
