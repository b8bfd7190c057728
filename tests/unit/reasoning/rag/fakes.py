"""A deterministic bag-of-words embedder for unit tests of the store's logic (MiniLM is tested separately)."""

from __future__ import annotations

import re
import threading
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from quorum.reasoning.rag.embedder import Vectors

_WORD = re.compile(r"[a-z0-9]+")


@dataclass
class HashEmbedder:
    """Each lowercase word adds 1 to the coordinate its CRC32 picks; rows are normalised.

    Texts sharing words are close, texts sharing none are orthogonal (up to
    collisions), so lexical queries rank predictably. Counts its calls.
    """

    dimension: int = 256
    model_id: str = "test/hash-embedder"
    calls: list[int] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def embed(self, texts: Sequence[str]) -> Vectors:
        with self._lock:
            self.calls.append(len(texts))
        vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in _WORD.findall(text.lower()):
                vectors[row, zlib.crc32(word.encode()) % self.dimension] += 1.0
            vectors[row, 0] += 1e-3  # no all-zero rows
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors
