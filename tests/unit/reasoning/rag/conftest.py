from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from quorum.cluster.config import RagConfig
from quorum.reasoning.rag import DocumentStore, MiniLMEmbedder

from .fakes import HashEmbedder


@pytest.fixture
def settings(tmp_path: Path) -> RagConfig:
    """Small chunks, so short test documents span several."""
    return RagConfig(data_dir=str(tmp_path / "rag"), chunk_chars=120, chunk_overlap=20, max_document_chars=5_000)


@pytest.fixture
def embedder() -> HashEmbedder:
    return HashEmbedder()


@pytest.fixture
def store(settings: RagConfig, embedder: HashEmbedder) -> Iterator[DocumentStore]:
    with DocumentStore(settings, embedder) as opened:
        yield opened


@pytest.fixture(scope="session")
def minilm() -> MiniLMEmbedder:
    """The bundled all-MiniLM-L6-v2, loaded once for the session."""
    embedder = MiniLMEmbedder()
    embedder.embed(["warm up"])
    return embedder
