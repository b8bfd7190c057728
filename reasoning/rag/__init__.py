"""Retrieval for RAG: chunking, embedding and a persistent vector store (no Ray or gRPC imports).

Entry point: :class:`DocumentStore` over the config's ``rag`` section (``RagConfig``) and an
:class:`Embedder` (:class:`MiniLMEmbedder` runs the bundled all-MiniLM-L6-v2
offline). Importing this package does not load torch or the model.
"""

from .chunking import chunk_text
from .embedder import BUNDLED_MODEL_ID, Embedder, MiniLMEmbedder, bundled_model_dir
from .errors import CollectionNotFoundError, EmbedderMismatchError, RagInputError
from .store import DocumentStore
from .types import Chunk, CollectionInfo, Document, Hit, IngestResult

__all__ = [
    "BUNDLED_MODEL_ID",
    "Chunk",
    "CollectionInfo",
    "CollectionNotFoundError",
    "Document",
    "DocumentStore",
    "Embedder",
    "EmbedderMismatchError",
    "Hit",
    "IngestResult",
    "MiniLMEmbedder",
    "RagInputError",
    "bundled_model_dir",
    "chunk_text",
]
