from __future__ import annotations

import pickle
import re
from pathlib import Path

import pytest

from quorum.cluster.config import RagConfig
from quorum.reasoning.errors import ReasoningError, ReasoningInputError
from quorum.reasoning.rag import (
    CollectionNotFoundError,
    Document,
    DocumentStore,
    EmbedderMismatchError,
    RagInputError,
)

from .fakes import HashEmbedder

DOC = Document("a", "some text")


def input_error(field: str, match: str) -> pytest.RaisesExc[RagInputError]:
    return pytest.raises(RagInputError, match=f"^{re.escape(field)}: {match}")


@pytest.mark.parametrize("name", ["", "-lead", ".hidden", "has space", "slash/name", "ü", "x" * 65])
def test_collection_name(store: DocumentStore, name: str) -> None:
    with pytest.raises(RagInputError) as caught:
        store.ingest(name, [DOC])
    assert caught.value.field == "collection"
    with pytest.raises(RagInputError, match=r"^collection: "):
        store.search(name, "query")
    with pytest.raises(RagInputError, match=r"^collection: "):
        store.delete_documents(name, ["a"])
    with pytest.raises(RagInputError, match=r"^collection: "):
        store.delete_collection(name)


@pytest.mark.parametrize("name", ["a", "A0", "docs_v1.2-final", "9" * 64])
def test_valid_collection_names(store: DocumentStore, name: str) -> None:
    assert store.ingest(name, [DOC]).documents == 1


def test_documents_empty_and_too_many(store: DocumentStore) -> None:
    with input_error("documents", "must not be empty"):
        store.ingest("c", [])
    too_many = [Document(str(i), "text") for i in range(store.settings.max_documents_per_request + 1)]
    with input_error("documents", "257 documents in one request; the limit is 256"):
        store.ingest("c", too_many)


def test_document_id(store: DocumentStore) -> None:
    with input_error("documents[1].id", "must not be empty"):
        store.ingest("c", [DOC, Document("", "text")])
    with input_error("documents[0].id", "is 257 characters long; the limit is 256"):
        store.ingest("c", [Document("x" * 257, "text")])
    assert store.ingest("c", [Document("x" * 256, "text")]).documents == 1


def test_duplicate_ids(store: DocumentStore) -> None:
    with input_error("documents[2].id", "duplicate id 'a' \\(also documents\\[0\\].id\\)"):
        store.ingest("c", [DOC, Document("b", "t"), Document("a", "t")])


def test_document_text(store: DocumentStore) -> None:
    with input_error("documents[0].text", "must not be empty"):
        store.ingest("c", [Document("a", " \n ")])
    limit = store.settings.max_document_chars
    with input_error("documents[1].text", f"is {limit + 1} characters long; the limit is {limit}"):
        store.ingest("c", [DOC, Document("b", "y" * (limit + 1))])


def test_metadata_values_must_be_strings(store: DocumentStore) -> None:
    with input_error("documents[0].metadata['n']", "must be a string"):
        store.ingest("c", [Document("a", "text", {"n": 1})])  # type: ignore[dict-item]


def test_nothing_is_written_by_a_rejected_request(store: DocumentStore) -> None:
    with pytest.raises(RagInputError):
        store.ingest("c", [DOC, Document("b", "")])
    assert store.list_collections() == []


def test_query_and_top_k(store: DocumentStore) -> None:
    store.ingest("c", [DOC])
    with input_error("query", "must not be empty"):
        store.search("c", "   ")
    with input_error("query", "is 4097 characters long; the limit is 4096"):
        store.search("c", "q" * 4097)
    for top_k in (0, -1, 51):
        with input_error("top_k", f"must be an integer in \\[1, 50\\], got {top_k}"):
            store.search("c", "text", top_k)
    assert len(store.search("c", "text", 50)) == 1


def test_delete_ids(store: DocumentStore) -> None:
    store.ingest("c", [DOC])
    with input_error("ids", "must not be empty"):
        store.delete_documents("c", [])
    with input_error("ids[1]", "must not be empty"):
        store.delete_documents("c", ["a", ""])


def test_unknown_collection_is_not_found(store: DocumentStore) -> None:
    for call in (
        lambda: store.search("missing", "query"),
        lambda: store.delete_documents("missing", ["a"]),
        lambda: store.delete_collection("missing"),
    ):
        with pytest.raises(CollectionNotFoundError, match=r"^collection: no collection named 'missing'$") as caught:
            call()
        assert caught.value.name == "missing"
        assert not isinstance(caught.value, ReasoningInputError)


def test_embedder_mismatch(settings: RagConfig, store: DocumentStore) -> None:
    store.ingest("c", [DOC])
    with DocumentStore(settings, HashEmbedder(dimension=32)) as other:
        with pytest.raises(EmbedderMismatchError, match="built with embedder 'test/hash-embedder' \\(dimension 256\\)"):
            other.search("c", "text")
        with pytest.raises(EmbedderMismatchError):
            other.ingest("c", [DOC])
        other.ingest("fresh", [DOC])
    with DocumentStore(settings, HashEmbedder(model_id="test/other")) as other, pytest.raises(EmbedderMismatchError):
        other.search("c", "text")


def test_errors_pickle_with_their_fields() -> None:
    errors: list[ReasoningError] = [
        RagInputError("documents[0].text", "must not be empty"),
        CollectionNotFoundError("c"),
        EmbedderMismatchError("c", "m1", 384, "m2", 8),
    ]
    for error in errors:
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error)
        assert copy.message == error.message
    assert isinstance(errors[0], ReasoningInputError)
    assert errors[0].field == "documents[0].text"


@pytest.mark.parametrize(
    "changes",
    [
        {"chunk_chars": 0},
        {"chunk_overlap": 800},
        {"chunk_overlap": -1},
        {"default_top_k": 51},
        {"max_top_k": 0},
        {"embed_batch_size": 0},
        {"max_documents_per_request": 0},
    ],
)
def test_settings_are_checked(tmp_path: Path, changes: dict[str, int]) -> None:
    """The store's settings are the config's rag section: a bad value is refused naming its field."""
    (field,) = changes
    with pytest.raises(ValueError, match=field):
        RagConfig(data_dir=str(tmp_path), **changes)  # type: ignore[arg-type]


def test_search_threads_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="search_threads must be at least 1"):
        DocumentStore(RagConfig(data_dir=str(tmp_path)), HashEmbedder(), search_threads=0)


def test_metadata_size_is_capped_so_search_results_stay_sendable(store: DocumentStore) -> None:
    limit = store.settings.max_metadata_chars
    bloated = Document("big", "some text", {"blob": "x" * 6_000_000})  # 6 MB, as observed
    with input_error("documents[1].metadata", f"holds 6000004 characters \\(keys plus values\\); the limit is {limit}"):
        store.ingest("c", [DOC, bloated])
    assert store.list_collections() == [], "nothing of a rejected ingest is stored"
    at_limit = Document("ok", "some text", {"k": "v" * (limit - 1)})
    store.ingest("c", [at_limit])
    assert store.search("c", "text")[0].metadata == at_limit.metadata
