"""DocumentStore behaviour with the deterministic HashEmbedder (MiniLM is covered in test_minilm.py)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from quorum.cluster.config import RagConfig
from quorum.reasoning.rag import (
    CollectionInfo,
    CollectionNotFoundError,
    Document,
    DocumentStore,
    RagInputError,
    catalog,
)
from quorum.reasoning.rag.store import DATABASE_NAME

from .fakes import HashEmbedder

REPO = Path(__file__).resolve().parents[4]

ANIMALS = Document(
    "animals",
    "Cats purr and chase mice through the barn. Dogs bark at the mailman every morning. "
    "Horses gallop across wide green meadows while cows graze nearby.",
    {"topic": "animals", "source": "farm.txt"},
)
SPACE = Document(
    "space",
    "Rockets launch satellites into orbit around the planet. Astronauts float inside the station "
    "and telescopes watch distant galaxies.",
    {"topic": "space"},
)
COOKING = Document("cooking", "Knead the dough, let it rise, then bake the bread in a hot oven until golden.", {})


def hit_ids(store: DocumentStore, collection: str, query: str, top_k: int = 50) -> list[str]:
    return [hit.document_id for hit in store.search(collection, query, top_k)]


def test_ingest_then_search_ranks_matching_chunks_first(store: DocumentStore) -> None:
    result = store.ingest("docs", [ANIMALS, SPACE, COOKING])
    assert result.documents == 3
    assert result.replaced == 0
    assert result.chunks >= 5, "the 120-character chunks split the longer documents"

    hits = store.search("docs", "rockets and astronauts in orbit", top_k=3)
    assert hits[0].document_id == "space"
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert -1.0 - 1e-5 <= hits[-1].score <= hits[0].score <= 1.0 + 1e-5

    top = store.search("docs", "bake bread in the oven")[0]
    assert top.document_id == "cooking"
    assert top.chunk_index == 0
    assert top.text == COOKING.text[top.start : top.end]
    assert store.search("docs", "dogs bark at the mailman")[0].metadata == {"topic": "animals", "source": "farm.txt"}


def test_top_k_defaults_and_is_capped_by_the_collection_size(store: DocumentStore) -> None:
    store.ingest("docs", [ANIMALS, SPACE, COOKING])
    assert len(store.search("docs", "the")) == store.settings.default_top_k
    chunks = store.list_collections()[0].chunks
    assert len(store.search("docs", "the", top_k=50)) == chunks


def test_embeds_in_batches(settings: RagConfig, embedder: HashEmbedder) -> None:
    settings = RagConfig(data_dir=settings.data_dir, chunk_chars=50, chunk_overlap=0, embed_batch_size=4)
    with DocumentStore(settings, embedder) as store:
        result = store.ingest("docs", [Document("long", "word " * 100)])
    assert result.chunks == 10
    assert embedder.calls == [4, 4, 2]


def test_reingest_replaces_all_chunks_and_metadata(store: DocumentStore) -> None:
    store.ingest("docs", [ANIMALS, COOKING])
    before = store.list_collections()[0]
    replacement = Document("animals", "Penguins waddle on the ice.", {"topic": "birds"})
    result = store.ingest("docs", [replacement])
    assert (result.documents, result.chunks, result.replaced) == (1, 1, 1)

    after = store.list_collections()[0]
    assert after.documents == before.documents == 2
    assert after.chunks < before.chunks
    texts = {hit.text for hit in store.search("docs", "cats dogs horses cows barn", top_k=50)}
    assert not any("Cats" in text or "Horses" in text for text in texts), "old chunks are gone"
    hit = store.search("docs", "penguins on the ice")[0]
    assert (hit.document_id, hit.text, hit.metadata) == ("animals", replacement.text, {"topic": "birds"})


def test_delete_documents(store: DocumentStore) -> None:
    store.ingest("docs", [ANIMALS, SPACE, COOKING])
    assert store.delete_documents("docs", ["space", "never-ingested", "space"]) == 1
    assert "space" not in hit_ids(store, "docs", "rockets astronauts")
    assert store.list_collections()[0].documents == 2
    assert store.delete_documents("docs", ["space"]) == 0

    assert store.delete_documents("docs", ["animals", "cooking"]) == 2
    assert store.list_collections() == [CollectionInfo("docs", 0, 0)]
    assert store.search("docs", "anything") == []


def test_list_and_delete_collections(store: DocumentStore) -> None:
    assert store.list_collections() == []
    store.ingest("b-docs", [SPACE])
    store.ingest("a-docs", [ANIMALS, COOKING])
    infos = store.list_collections()
    assert [info.name for info in infos] == ["a-docs", "b-docs"]
    assert infos[0].documents == 2
    assert infos[0].chunks > 2
    assert infos[1].documents == 1

    store.search("a-docs", "cats")  # cache its index
    assert store.delete_collection("a-docs") == 2
    assert [info.name for info in store.list_collections()] == ["b-docs"]
    with pytest.raises(CollectionNotFoundError):
        store.search("a-docs", "cats")

    store.ingest("a-docs", [COOKING])
    assert hit_ids(store, "a-docs", "cats dogs horses") == ["cooking"], "a re-created collection starts empty"


def test_collections_are_separate(store: DocumentStore) -> None:
    store.ingest("one", [Document("shared-id", "apples and pears")])
    store.ingest("two", [Document("shared-id", "rockets and planets")])
    assert store.search("one", "rockets")[0].text == "apples and pears"
    store.delete_documents("one", ["shared-id"])
    assert store.search("two", "rockets")[0].text == "rockets and planets"


def test_survives_a_restart_without_re_embedding(settings: RagConfig) -> None:
    with DocumentStore(settings, HashEmbedder()) as store:
        store.ingest("docs", [ANIMALS, SPACE, COOKING])
        store.delete_documents("docs", ["cooking"])
        expected = store.search("docs", "galaxies and telescopes", top_k=10)
        infos = store.list_collections()

    embedder = HashEmbedder()
    with DocumentStore(settings, embedder) as reopened:
        assert reopened.list_collections() == infos
        assert reopened.search("docs", "galaxies and telescopes", top_k=10) == expected
    assert embedder.calls == [1], "only the query is embedded; stored vectors are reused"
    assert (settings.data_path / DATABASE_NAME).is_file()


def test_two_instances_on_one_directory_see_each_others_writes(settings: RagConfig) -> None:
    with DocumentStore(settings, HashEmbedder()) as first, DocumentStore(settings, HashEmbedder()) as second:
        first.ingest("docs", [ANIMALS])
        assert hit_ids(second, "docs", "cats") == ["animals"] * len(second.search("docs", "cats", 50))

        second.ingest("docs", [SPACE])  # first has the index cached at the previous generation
        assert first.search("docs", "rockets astronauts")[0].document_id == "space"

        second.ingest("docs", [Document("animals", "Penguins waddle on the ice.")])
        assert first.search("docs", "cats dogs horses penguins", top_k=50)[0].text == "Penguins waddle on the ice."
        assert "Cats" not in " ".join(hit.text for hit in first.search("docs", "cats dogs", top_k=50))

        first.delete_documents("docs", ["space"])
        assert "space" not in hit_ids(second, "docs", "rockets astronauts")

        second.delete_collection("docs")
        with pytest.raises(CollectionNotFoundError):
            first.search("docs", "cats")
        second.ingest("docs", [COOKING])
        assert hit_ids(first, "docs", "cats bread") == ["cooking"]


def test_a_failure_inside_the_ingest_transaction_leaves_nothing(
    store: DocumentStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.ingest("docs", [ANIMALS, SPACE])
    before = store.list_collections()
    expected = store.search("docs", "cats rockets", top_k=50)

    def fail(conn: sqlite3.Connection, collection_id: int) -> int:
        raise OSError("disk on fire")

    monkeypatch.setattr(catalog, "bump_generation", fail)  # after every insert and delete ran
    with pytest.raises(OSError, match="disk on fire"):
        store.ingest("docs", [Document("animals", "Penguins waddle."), COOKING])
    with pytest.raises(OSError, match="disk on fire"):
        store.ingest("new-collection", [COOKING])
    with pytest.raises(OSError, match="disk on fire"):
        store.delete_documents("docs", ["space"])
    monkeypatch.undo()

    assert store.list_collections() == before
    assert store.search("docs", "cats rockets", top_k=50) == expected
    with DocumentStore(store.settings, HashEmbedder()) as fresh:
        assert fresh.search("docs", "cats rockets", top_k=50) == expected
    store.ingest("docs", [COOKING])
    assert store.search("docs", "bread oven")[0].document_id == "cooking"


def test_an_embedder_failure_writes_nothing(settings: RagConfig) -> None:
    class FailingSecondBatch(HashEmbedder):
        def embed(self, texts: Sequence[str]) -> catalog.Vectors:
            if self.calls:
                raise RuntimeError("model crashed")
            return super().embed(texts)

    settings = RagConfig(data_dir=settings.data_dir, chunk_chars=50, chunk_overlap=0, embed_batch_size=2)
    with DocumentStore(settings, FailingSecondBatch()) as store:
        with pytest.raises(RuntimeError, match="model crashed"):
            store.ingest("docs", [ANIMALS])
        assert store.list_collections() == []


CRASHING_WRITER = """
import os, sys
from pathlib import Path
from quorum.cluster.config import RagConfig
from quorum.reasoning.rag import Document, DocumentStore, catalog
from tests.unit.reasoning.rag.fakes import HashEmbedder

store = DocumentStore(RagConfig(data_dir=sys.argv[1], chunk_chars=120, chunk_overlap=20), HashEmbedder())
store.ingest("docs", [Document("kept", "Acknowledged before the crash: rockets and telescopes.")])
print("acked", flush=True)
insert = catalog.insert_chunks

def insert_then_die(*args, **kwargs):
    insert(*args, **kwargs)
    os._exit(3)  # the process dies mid-transaction, after rows were written

catalog.insert_chunks = insert_then_die
store.ingest("docs", [Document("lost", "Never acknowledged: rockets everywhere."), Document("kept", "replaced?")])
"""


def test_a_process_killed_mid_ingest_loses_only_the_unacknowledged_write(settings: RagConfig) -> None:
    with DocumentStore(settings, HashEmbedder()) as store:
        store.ingest("other", [COOKING])
        assert store.search("other", "bread")[0].document_id == "cooking"  # index cached

        child = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(CRASHING_WRITER), settings.data_dir],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert child.returncode == 3, child.stderr
        assert child.stdout.strip() == "acked"

        hits = store.search("docs", "rockets telescopes", top_k=50)
        assert [hit.document_id for hit in hits] == ["kept"]
        assert hits[0].text == "Acknowledged before the crash: rockets and telescopes."
        assert store.list_collections() == [CollectionInfo("docs", 1, 1), CollectionInfo("other", 1, 1)]

    with DocumentStore(settings, HashEmbedder()) as reopened:
        assert hit_ids(reopened, "docs", "rockets everywhere") == ["kept"]
        reopened.ingest("docs", [Document("later", "writes go on after the crash")])
        assert reopened.list_collections()[0] == CollectionInfo("docs", 2, 2)
    conn = sqlite3.connect(settings.data_path / DATABASE_NAME)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        conn.close()


def version_text(version: int) -> str:
    return " ".join(f"Sentence {i} of marker version{version:03d} text." for i in range(12))


def test_concurrent_ingest_and_search_never_see_half_an_ingest(settings: RagConfig) -> None:
    rounds = 15
    seen_versions: set[str] = set()
    with DocumentStore(settings, HashEmbedder()) as reader, DocumentStore(settings, HashEmbedder()) as other:
        expected_chunks = reader.ingest("docs", [Document("v", version_text(0))]).chunks
        assert 3 <= expected_chunks <= 20
        done = threading.Event()

        def replace_versions() -> None:
            for version in range(1, rounds + 1):
                reader.ingest("docs", [Document("v", version_text(version))])

        def add_and_delete_others() -> None:  # another instance, like another replica's writes
            for i in range(rounds):
                other.ingest("docs", [Document(f"other-{i}", f"unrelated filler number {i}")])
                if i % 3 == 2:
                    other.delete_documents("docs", [f"other-{i - 1}"])

        def search() -> int:
            searches = 0
            while not done.is_set():
                hits = reader.search("docs", "marker version sentence", top_k=50)
                ours = [hit for hit in hits if hit.document_id == "v"]
                versions = {word for hit in ours for word in hit.text.split() if word.startswith("version")}
                assert len(ours) == expected_chunks, f"saw {len(ours)} of {expected_chunks} chunks"
                assert len(versions) == 1, f"saw a mix of versions {versions}"
                seen_versions.update(versions)
                searches += 1
            return searches

        with ThreadPoolExecutor(max_workers=5) as pool:
            searches = [pool.submit(search) for _ in range(3)]
            writers = [pool.submit(replace_versions), pool.submit(add_and_delete_others)]
            try:
                for writer in writers:
                    writer.result(timeout=120)
            finally:
                done.set()
            assert all(future.result(timeout=120) > 0 for future in searches)

        assert len(seen_versions) >= 2, "the searches ran while the writes happened"
        final = reader.search("docs", "marker", top_k=50)
        assert {w for hit in final for w in hit.text.split() if w.startswith("version")} == {f"version{rounds:03d}"}
        assert reader.list_collections()[0].documents == 1 + rounds - rounds // 3


def test_has_collection(store: DocumentStore) -> None:
    assert not store.has_collection("docs")
    store.ingest("docs", [COOKING])
    assert store.has_collection("docs")
    with pytest.raises(RagInputError) as caught:
        store.has_collection("bad name!")
    assert caught.value.field == "collection"
