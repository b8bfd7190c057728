"""A faiss index over one collection's chunk vectors, keyed by the chunks' row ids.

``IndexIDMap(IndexFlatIP)``: exact inner-product search over unit vectors, i.e.
cosine similarity, with the SQLite chunk row ids as faiss ids, so hits map
straight back to rows and chunks can be removed by id. Not thread-safe for
mutation; the store guards it with a readers-writer lock (concurrent searches
on a CPU index are safe).

A search uses ``threads`` OpenMP threads. One is the right number for
single-query searches served from many request threads: OpenMP's fork and
join cost more than a query's scan, and spinning OpenMP workers steal the
cores the embedder needs (measured: several times slower on a busy 2-core
host). OpenMP keeps the setting per calling thread, so it is set on each search.
"""

from __future__ import annotations

import faiss
import numpy as np
import numpy.typing as npt

Ids = npt.NDArray[np.int64]
Vectors = npt.NDArray[np.float32]


class VectorIndex:
    def __init__(self, dimension: int, threads: int = 1) -> None:
        self.dimension = dimension
        self.threads = threads
        self._index = faiss.IndexIDMap(faiss.IndexFlatIP(dimension))

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def ids(self) -> Ids:
        """The ids in the index, in insertion order."""
        return faiss.vector_to_array(self._index.id_map).astype(np.int64, copy=False)

    def add(self, ids: Ids, vectors: Vectors) -> None:
        """Add ``vectors`` (shape ``(len(ids), dimension)``) under ``ids``, which must not be in the index."""
        if len(ids) != len(vectors) or (len(vectors) and vectors.shape[1] != self.dimension):
            raise ValueError(f"expected {len(ids)} vectors of dimension {self.dimension}, got shape {vectors.shape}")
        if len(ids):
            self._index.add_with_ids(
                np.ascontiguousarray(vectors, dtype=np.float32), np.ascontiguousarray(ids, dtype=np.int64)
            )

    def remove(self, ids: Ids) -> int:
        """Remove ``ids`` (absent ones are ignored); returns how many were removed."""
        if not len(ids):
            return 0
        return int(self._index.remove_ids(faiss.IDSelectorBatch(np.ascontiguousarray(ids, dtype=np.int64))))

    def search(self, query: Vectors, k: int) -> tuple[Ids, npt.NDArray[np.float32]]:
        """The ids and scores of the ``k`` vectors with the largest inner product with ``query``.

        ``query`` has shape ``(dimension,)``. Best first; fewer than ``k`` when the index holds fewer vectors.
        """
        k = min(k, len(self))
        if k <= 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        faiss.omp_set_num_threads(self.threads)
        scores, ids = self._index.search(np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32), k)
        keep = ids[0] >= 0
        return ids[0][keep], scores[0][keep]
