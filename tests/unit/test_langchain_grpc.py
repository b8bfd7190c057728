"""The LangChain adapters against an in-process fake quorum server: the calls, streams and errors they make."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest
from langchain_core.documents import Document
from langchain_core.messages import AIMessageChunk

from quorum.client.langchain import QuorumChatModel, QuorumError, QuorumRetriever
from quorum.v1 import inference_pb2 as pb
from quorum.v1 import inference_pb2_grpc, reasoning_pb2_grpc
from quorum.v1 import reasoning_pb2 as rpb


class FakeInference(inference_pb2_grpc.InferenceServiceServicer):
    def __init__(self) -> None:
        self.requests: list[pb.ChatRequest | pb.ChatStreamRequest] = []
        self.tokens: list[str] = []

    def _check(self, request: pb.ChatRequest | pb.ChatStreamRequest, context: grpc.ServicerContext) -> None:
        self.requests.append(request)
        self.tokens.append(str(dict(context.invocation_metadata()).get("authorization", "")))
        if request.sampling.HasField("temperature") and request.sampling.temperature < 0:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "sampling.temperature: must be >= 0")

    def Chat(self, request: pb.ChatRequest, context: grpc.ServicerContext) -> pb.ChatResponse:
        self._check(request, context)
        echo = request.messages[-1].content
        return pb.ChatResponse(
            request_id="req-1",
            model=request.model or "default",
            choices=[pb.Choice(index=0, text=echo.upper(), finish_reason=pb.FINISH_REASON_STOP)],
            usage=pb.Usage(prompt_tokens=7, completion_tokens=2, cached_prompt_tokens=4),
        )

    def ChatStream(
        self, request: pb.ChatStreamRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.ChatStreamResponse]:
        self._check(request, context)
        for word in ("one ", "two "):
            yield pb.ChatStreamResponse(request_id="req-2", model="m", choices=[pb.Choice(index=0, text=word)])
        yield pb.ChatStreamResponse(
            request_id="req-2",
            model="m",
            choices=[pb.Choice(index=0, text="three", finish_reason=pb.FINISH_REASON_STOP)],
            usage=pb.Usage(prompt_tokens=5, completion_tokens=3),
        )


class FakeReasoning(reasoning_pb2_grpc.ReasoningServiceServicer):
    def __init__(self) -> None:
        self.ingested: list[rpb.IngestRequest] = []

    def Ingest(self, request: rpb.IngestRequest, context: grpc.ServicerContext) -> rpb.IngestResponse:
        self.ingested.append(request)
        return rpb.IngestResponse(collection=request.collection, documents=len(request.documents))

    def Search(self, request: rpb.SearchRequest, context: grpc.ServicerContext) -> rpb.SearchResponse:
        if request.collection != "docs":
            context.abort(grpc.StatusCode.NOT_FOUND, f"collection '{request.collection}' does not exist")
        hits = [
            rpb.RetrievedChunk(document_id=f"d{i}", text=f"{request.query} {i}", score=1 - i / 10) for i in range(9)
        ]
        return rpb.SearchResponse(chunks=hits[: request.top_k or 3])


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, FakeInference, FakeReasoning]]:
    grpc_server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    inference, reasoning = FakeInference(), FakeReasoning()  # type: ignore[abstract]  # unused RPCs stay abstract
    inference_pb2_grpc.add_InferenceServiceServicer_to_server(inference, grpc_server)
    reasoning_pb2_grpc.add_ReasoningServiceServicer_to_server(reasoning, grpc_server)
    port = grpc_server.add_insecure_port("127.0.0.1:0")
    grpc_server.start()
    yield f"127.0.0.1:{port}", inference, reasoning
    grpc_server.stop(grace=None)


def test_invoke_and_stream_over_grpc(server: tuple[str, FakeInference, FakeReasoning]) -> None:
    target, inference, _ = server
    llm = QuorumChatModel(target=target, model="m", temperature=0.0, token="secret")
    reply = llm.invoke("hello")
    assert reply.content == "HELLO"
    assert reply.usage_metadata is not None
    assert reply.usage_metadata["input_token_details"] == {"cache_read": 4}
    assert inference.requests[-1].sampling.temperature == 0.0
    assert inference.tokens[-1] == "Bearer secret"
    chunks = list(llm.stream("hello"))
    assert "".join(str(c.content) for c in chunks) == "one two three"
    merged = sum(chunks[1:], chunks[0])
    assert isinstance(merged, AIMessageChunk)
    assert merged.response_metadata == {"finish_reason": "stop", "model_name": "m", "request_id": "req-2"}
    llm.close()


async def test_async_invoke_and_stream(server: tuple[str, FakeInference, FakeReasoning]) -> None:
    llm = QuorumChatModel(target=server[0])
    assert (await llm.ainvoke("async")).content == "ASYNC"
    assert [c.content async for c in llm.astream("x")] == ["one ", "two ", "three"]


async def test_server_errors_carry_the_status_and_message(server: tuple[str, FakeInference, FakeReasoning]) -> None:
    llm = QuorumChatModel(target=server[0], temperature=-1.0)
    for call in (lambda: llm.invoke("x"), lambda: list(llm.stream("x"))):
        with pytest.raises(QuorumError, match=r"sampling\.temperature") as caught:
            call()
        assert caught.value.code is grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(QuorumError, match=r"INVALID_ARGUMENT: sampling\.temperature"):
        await llm.ainvoke("x")


async def test_retriever_and_ingest(server: tuple[str, FakeInference, FakeReasoning]) -> None:
    target, _, reasoning = server
    retriever = QuorumRetriever(target=target, collection="docs", top_k=2)
    docs = retriever.invoke("q")
    assert [(d.page_content, d.metadata["document_id"]) for d in docs] == [("q 0", "d0"), ("q 1", "d1")]
    assert [d.page_content for d in await retriever.ainvoke("a")] == ["a 0", "a 1"]
    assert retriever.add_documents([Document("text", id="x")]).documents == 1
    assert (await retriever.aadd_documents([Document("t")], ids=["y"])).documents == 1
    assert [d.id for r in reasoning.ingested for d in r.documents] == ["x", "y"]
    with pytest.raises(QuorumError, match="collection 'other' does not exist") as caught:
        QuorumRetriever(target=target, collection="other").invoke("q")
    assert caught.value.code is grpc.StatusCode.NOT_FOUND
