"""Document collections and RAG end to end: Ingest -> Search -> Reason(RAG) with citations, over gRPC."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from quorum.v1 import reasoning_pb2 as rpb
from quorum.v1 import reasoning_pb2_grpc

from .conftest import RunningCluster

pytestmark = pytest.mark.integration

DOCUMENTS = {
    "orlin": "The Orlin Bridge was designed by the engineer Mara Quellin in the year 1911. It crosses the Vesk river.",
    "tarro": "The Tarromo Observatory was founded by Ido Brannick in 1877 and is known for its star charts.",
    "pelli": "Pellisar is a small island whose only export is blue pears, shipped every spring.",
}


@pytest.fixture
def stub(cluster: RunningCluster) -> Iterator[reasoning_pb2_grpc.ReasoningServiceStub]:
    with grpc.insecure_channel(cluster.target) as channel:
        yield reasoning_pb2_grpc.ReasoningServiceStub(channel)


def ingest(stub: reasoning_pb2_grpc.ReasoningServiceStub, collection: str, docs: dict[str, str]) -> rpb.IngestResponse:
    request = rpb.IngestRequest(
        collection=collection,
        documents=[rpb.Document(id=i, text=t, metadata={"source": f"{i}.txt"}) for i, t in docs.items()],
    )
    return stub.Ingest(request, timeout=300)


def test_ingest_search_and_cited_rag_answer(stub: reasoning_pb2_grpc.ReasoningServiceStub) -> None:
    reply = ingest(stub, "landmarks", DOCUMENTS)
    assert (reply.documents, reply.replaced) == (3, 0)
    assert reply.chunks >= 3

    hits = stub.Search(rpb.SearchRequest(collection="landmarks", query="Who designed the Orlin Bridge?"), timeout=60)
    assert hits.chunks[0].document_id == "orlin"
    assert hits.chunks[0].metadata["source"] == "orlin.txt"
    assert hits.chunks[0].score > hits.chunks[-1].score

    events = list(
        stub.Reason(
            rpb.ReasonRequest(
                question="Who designed the Orlin Bridge?",
                strategy=rpb.STRATEGY_RAG,
                collection="landmarks",
                answer_format=rpb.ANSWER_FORMAT_TEXT,
                top_k=2,
            ),
            timeout=180,
        )
    )
    retrievals = [e.retrieval for e in events if e.HasField("retrieval")]
    assert len(retrievals) == 1
    assert len(retrievals[0].chunks) == 2
    assert retrievals[0].chunks[0].document_id == "orlin"
    final = events[-1].final
    assert final.stop_reason == rpb.STOP_REASON_ANSWERED
    assert "Quellin" in final.answer
    assert final.citations[0] == "orlin"
    assert final.usage.prompt_tokens > 0


def test_reingest_replaces_and_delete_removes(stub: reasoning_pb2_grpc.ReasoningServiceStub) -> None:
    ingest(stub, "versions", {"a": "The launch code word is alpha.", "b": "Bananas are yellow."})
    replaced = ingest(stub, "versions", {"a": "The launch code word is omega."})
    assert replaced.replaced == 1
    hits = stub.Search(rpb.SearchRequest(collection="versions", query="launch code word", top_k=5), timeout=60)
    texts = [c.text for c in hits.chunks if c.document_id == "a"]
    assert texts == ["The launch code word is omega."]
    listed = {c.name: c for c in stub.ListCollections(rpb.ListCollectionsRequest(), timeout=30).collections}
    assert listed["versions"].documents == 2
    deleted = stub.DeleteDocuments(
        rpb.DeleteDocumentsRequest(collection="versions", document_ids=["a", "zz"]), timeout=60
    )
    assert deleted.deleted == 1
    hits = stub.Search(rpb.SearchRequest(collection="versions", query="launch code word", top_k=5), timeout=60)
    assert {c.document_id for c in hits.chunks} == {"b"}


def test_react_retrieve_tool_searches_the_collection(stub: reasoning_pb2_grpc.ReasoningServiceStub) -> None:
    ingest(stub, "landmarks", DOCUMENTS)
    events = list(
        stub.Reason(
            rpb.ReasonRequest(
                question="Which island exports blue pears?",
                strategy=rpb.STRATEGY_REACT,
                tools=["retrieve"],
                collection="landmarks",
                answer_format=rpb.ANSWER_FORMAT_TEXT,
                max_steps=3,
            ),
            timeout=180,
        )
    )
    calls = [e.tool_call for e in events if e.HasField("tool_call")]
    results = [e.tool_result for e in events if e.HasField("tool_result")]
    assert calls[0].name == "retrieve"
    assert "(pelli)" in results[0].output
    assert events[-1].HasField("final")


@pytest.mark.parametrize(
    ("call", "code", "needle"),
    [
        ("ingest-empty-name", grpc.StatusCode.INVALID_ARGUMENT, "collection"),
        ("ingest-oversize", grpc.StatusCode.INVALID_ARGUMENT, "documents[0].text"),
        ("ingest-empty-text", grpc.StatusCode.INVALID_ARGUMENT, "documents[0].text"),
        ("ingest-duplicate-ids", grpc.StatusCode.INVALID_ARGUMENT, "documents[1].id"),
        ("search-unknown", grpc.StatusCode.NOT_FOUND, "nowhere"),
        ("search-empty-query", grpc.StatusCode.INVALID_ARGUMENT, "query"),
        ("search-top-k", grpc.StatusCode.INVALID_ARGUMENT, "top_k"),
        ("delete-unknown", grpc.StatusCode.NOT_FOUND, "nowhere"),
    ],
)
def test_bad_document_requests_get_precise_statuses(
    stub: reasoning_pb2_grpc.ReasoningServiceStub,
    cluster: RunningCluster,
    call: str,
    code: grpc.StatusCode,
    needle: str,
) -> None:
    limit = cluster.config.rag.max_document_chars
    calls = {
        "ingest-empty-name": lambda: ingest(stub, "", {"a": "text"}),
        "ingest-oversize": lambda: ingest(stub, "big", {"a": "x" * (limit + 1)}),
        "ingest-empty-text": lambda: ingest(stub, "small", {"a": ""}),
        "ingest-duplicate-ids": lambda: stub.Ingest(
            rpb.IngestRequest(
                collection="dups", documents=[rpb.Document(id="a", text="1"), rpb.Document(id="a", text="2")]
            ),
            timeout=60,
        ),
        "search-unknown": lambda: stub.Search(rpb.SearchRequest(collection="nowhere", query="q"), timeout=60),
        "search-empty-query": lambda: stub.Search(rpb.SearchRequest(collection="landmarks", query=""), timeout=60),
        "search-top-k": lambda: stub.Search(
            rpb.SearchRequest(collection="landmarks", query="q", top_k=cluster.config.rag.max_top_k + 1), timeout=60
        ),
        "delete-unknown": lambda: stub.DeleteDocuments(
            rpb.DeleteDocumentsRequest(collection="nowhere", document_ids=["a"]), timeout=60
        ),
    }
    ingest(stub, "landmarks", DOCUMENTS)
    with pytest.raises(grpc.RpcError) as info:
        calls[call]()
    assert info.value.code() == code
    assert needle in (info.value.details() or "")
    assert stub.Search(rpb.SearchRequest(collection="landmarks", query="Orlin Bridge"), timeout=60).chunks
