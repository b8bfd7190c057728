"""The SQLite catalog: the store's source of truth for collections, documents, chunks and vectors.

One database file in WAL mode (readers never block the writer and see a
consistent snapshot for the whole of a read transaction) with
``synchronous=FULL``, so a committed transaction survives a crash or power
loss. Row ids use AUTOINCREMENT and are never reused: a chunk id always means
the same chunk, which is what lets an in-memory index catch up by id
differences. ``collections.generation`` goes up by one in every transaction that
changes a collection's chunks, so a process can tell cheaply that its cached
index is stale. Vectors are stored as little-endian float32 blobs.

The functions take a connection inside a transaction opened by
:func:`transaction`; they do not commit.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from .types import Chunk, CollectionInfo, Document

_T = TypeVar("_T")
Ids = npt.NDArray[np.int64]
Vectors = npt.NDArray[np.float32]

SCHEMA_VERSION = 1
BUSY_TIMEOUT_SECONDS = 30.0
_IN_BATCH = 500  # ids per "IN (...)" query, well under SQLite's parameter limit

_SCHEMA = """
CREATE TABLE collections (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    generation INTEGER NOT NULL,
    model_id TEXT NOT NULL,
    dimension INTEGER NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE documents (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    collection_id INTEGER NOT NULL REFERENCES collections(id),
    doc_id TEXT NOT NULL,
    metadata TEXT NOT NULL,
    chars INTEGER NOT NULL,
    ingested_at REAL NOT NULL,
    UNIQUE (collection_id, doc_id)
);
CREATE TABLE chunks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    collection_id INTEGER NOT NULL REFERENCES collections(id),
    document_id INTEGER NOT NULL REFERENCES documents(id),
    chunk_index INTEGER NOT NULL,
    start_char INTEGER NOT NULL,
    end_char INTEGER NOT NULL,
    text TEXT NOT NULL,
    embedding BLOB NOT NULL
);
CREATE INDEX chunks_by_collection ON chunks(collection_id);
CREATE INDEX chunks_by_document ON chunks(document_id);
"""


@dataclass(frozen=True)
class CollectionRow:
    id: int
    name: str
    generation: int
    model_id: str
    dimension: int

    @property
    def version(self) -> tuple[int, int]:
        """(row id, generation): grows with every change, and a re-created collection has a larger id."""
        return (self.id, self.generation)


@dataclass(frozen=True)
class HitRow:
    document_id: str
    chunk_index: int
    start: int
    end: int
    text: str
    metadata: dict[str, str]


def connect(path: Path) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), WAL, full sync, foreign keys on."""
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None, check_same_thread=False)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
    except BaseException:
        conn.close()
        raise
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection, *, write: bool) -> Iterator[sqlite3.Connection]:
    """A transaction for the ``with`` block: committed when it ends normally, rolled back when it raises.

    A write transaction takes the database's write lock up front (waiting for
    another writer up to the busy timeout); a read transaction sees one
    snapshot from its first query to its end.
    """
    conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def ensure_schema(conn: sqlite3.Connection) -> None:
    """Create the tables in a new database; refuse one written by a newer schema. Call in a write transaction."""
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version == 0:
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    elif version > SCHEMA_VERSION:
        raise RuntimeError(
            f"the retrieval database has schema version {version}; this version of quorum reads up to {SCHEMA_VERSION}"
        )


def find_collection(conn: sqlite3.Connection, name: str) -> CollectionRow | None:
    row = conn.execute(
        "SELECT id, name, generation, model_id, dimension FROM collections WHERE name = ?", (name,)
    ).fetchone()
    return None if row is None else CollectionRow(*row)


def create_collection(conn: sqlite3.Connection, name: str, model_id: str, dimension: int) -> CollectionRow:
    cursor = conn.execute(
        "INSERT INTO collections (name, generation, model_id, dimension, created_at) VALUES (?, 0, ?, ?, ?)",
        (name, model_id, dimension, time.time()),
    )
    assert cursor.lastrowid is not None
    return CollectionRow(cursor.lastrowid, name, 0, model_id, dimension)


def bump_generation(conn: sqlite3.Connection, collection_id: int) -> int:
    """Mark the collection changed; returns its new generation."""
    conn.execute("UPDATE collections SET generation = generation + 1 WHERE id = ?", (collection_id,))
    return int(conn.execute("SELECT generation FROM collections WHERE id = ?", (collection_id,)).fetchone()[0])


def drop_collection(conn: sqlite3.Connection, collection_id: int) -> None:
    conn.execute("DELETE FROM chunks WHERE collection_id = ?", (collection_id,))
    conn.execute("DELETE FROM documents WHERE collection_id = ?", (collection_id,))
    conn.execute("DELETE FROM collections WHERE id = ?", (collection_id,))


def find_documents(conn: sqlite3.Connection, collection_id: int, doc_ids: Sequence[str]) -> dict[str, int]:
    """The row ids of those of ``doc_ids`` the collection holds, by document id."""
    found: dict[str, int] = {}
    for batch in _batches(doc_ids):
        marks = ",".join("?" * len(batch))
        query = f"SELECT doc_id, id FROM documents WHERE collection_id = ? AND doc_id IN ({marks})"
        found.update(conn.execute(query, (collection_id, *batch)).fetchall())
    return found


def chunk_ids_of_documents(conn: sqlite3.Connection, document_rows: Sequence[int]) -> Ids:
    ids: list[int] = []
    for batch in _batches(document_rows):
        marks = ",".join("?" * len(batch))
        ids.extend(row[0] for row in conn.execute(f"SELECT id FROM chunks WHERE document_id IN ({marks})", batch))
    return np.array(ids, dtype=np.int64)


def delete_documents(conn: sqlite3.Connection, document_rows: Sequence[int]) -> None:
    """Delete the documents with these row ids and all their chunks."""
    for batch in _batches(document_rows):
        marks = ",".join("?" * len(batch))
        conn.execute(f"DELETE FROM chunks WHERE document_id IN ({marks})", batch)
        conn.execute(f"DELETE FROM documents WHERE id IN ({marks})", batch)


def insert_document(conn: sqlite3.Connection, collection_id: int, document: Document) -> int:
    """Insert the document's row (not its chunks); returns its row id."""
    cursor = conn.execute(
        "INSERT INTO documents (collection_id, doc_id, metadata, chars, ingested_at) VALUES (?, ?, ?, ?, ?)",
        (collection_id, document.id, json.dumps(document.metadata, sort_keys=True), len(document.text), time.time()),
    )
    assert cursor.lastrowid is not None
    return cursor.lastrowid


def insert_chunks(
    conn: sqlite3.Connection, collection_id: int, document_row: int, chunks: Sequence[Chunk], vectors: Vectors
) -> Ids:
    """Insert a document's chunks with their vectors (row i for chunk i); returns the chunks' row ids."""
    if len(chunks) != len(vectors):
        raise ValueError(f"{len(chunks)} chunks but {len(vectors)} vectors")
    blobs = np.ascontiguousarray(vectors, dtype="<f4")
    ids = np.empty(len(chunks), dtype=np.int64)
    for i, chunk in enumerate(chunks):
        cursor = conn.execute(
            "INSERT INTO chunks (collection_id, document_id, chunk_index, start_char, end_char, text, embedding) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (collection_id, document_row, chunk.index, chunk.start, chunk.end, chunk.text, blobs[i].tobytes()),
        )
        assert cursor.lastrowid is not None
        ids[i] = cursor.lastrowid
    return ids


def chunk_ids(conn: sqlite3.Connection, collection_id: int) -> Ids:
    """The row ids of all the collection's chunks, ascending."""
    rows = conn.execute("SELECT id FROM chunks WHERE collection_id = ? ORDER BY id", (collection_id,)).fetchall()
    return np.array([row[0] for row in rows], dtype=np.int64)


def all_vectors(conn: sqlite3.Connection, collection_id: int, dimension: int) -> tuple[Ids, Vectors]:
    """The row ids and vectors of all the collection's chunks."""
    rows = conn.execute(
        "SELECT id, embedding FROM chunks WHERE collection_id = ? ORDER BY id", (collection_id,)
    ).fetchall()
    return _decode(rows, dimension)


def vectors_of(conn: sqlite3.Connection, ids: Ids, dimension: int) -> tuple[Ids, Vectors]:
    """The vectors of the chunks with these row ids (those that exist), with their ids."""
    rows: list[tuple[int, bytes]] = []
    for batch in _batches([int(i) for i in ids]):
        marks = ",".join("?" * len(batch))
        rows.extend(conn.execute(f"SELECT id, embedding FROM chunks WHERE id IN ({marks})", batch))
    return _decode(rows, dimension)


def hit_rows(conn: sqlite3.Connection, ids: Sequence[int]) -> dict[int, HitRow]:
    """What a search returns about the chunks with these row ids, by row id."""
    found: dict[int, HitRow] = {}
    for batch in _batches(ids):
        marks = ",".join("?" * len(batch))
        query = (
            "SELECT c.id, d.doc_id, c.chunk_index, c.start_char, c.end_char, c.text, d.metadata "
            f"FROM chunks c JOIN documents d ON d.id = c.document_id WHERE c.id IN ({marks})"
        )
        for row_id, doc_id, index, start, end, text, metadata in conn.execute(query, batch):
            found[row_id] = HitRow(doc_id, index, start, end, text, json.loads(metadata))
    return found


def document_count(conn: sqlite3.Connection, collection_id: int) -> int:
    row = conn.execute("SELECT COUNT(*) FROM documents WHERE collection_id = ?", (collection_id,)).fetchone()
    return int(row[0])


def collection_infos(conn: sqlite3.Connection) -> list[CollectionInfo]:
    """Every collection with its document and chunk counts, by name."""
    rows = conn.execute(
        "SELECT c.name, "
        "(SELECT COUNT(*) FROM documents d WHERE d.collection_id = c.id), "
        "(SELECT COUNT(*) FROM chunks k WHERE k.collection_id = c.id) "
        "FROM collections c ORDER BY c.name"
    ).fetchall()
    return [CollectionInfo(name, documents, chunks) for name, documents, chunks in rows]


def _decode(rows: Sequence[tuple[int, bytes]], dimension: int) -> tuple[Ids, Vectors]:
    ids = np.array([row[0] for row in rows], dtype=np.int64)
    width = 4 * dimension
    if any(len(row[1]) != width for row in rows):
        raise RuntimeError(f"a stored vector does not have dimension {dimension}; the retrieval database is corrupt")
    data = b"".join(row[1] for row in rows)
    vectors = np.frombuffer(data, dtype="<f4").reshape(len(rows), dimension).astype(np.float32)
    return ids, vectors


def _batches(items: Sequence[_T]) -> Iterator[Sequence[_T]]:
    for start in range(0, len(items), _IN_BATCH):
        yield items[start : start + _IN_BATCH]
