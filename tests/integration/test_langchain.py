"""The LangChain adapters against the real session cluster: chat model, tools, a LangGraph agent, the retriever."""

from __future__ import annotations

import uuid
from typing import Any, Literal

import grpc
import pytest
from langchain_core.documents import Document
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition
from pydantic import BaseModel

from quorum.client.langchain import QuorumChatModel, QuorumError, QuorumRetriever
from quorum.client.sdk import QuorumClient

from .conftest import RunningCluster

pytestmark = pytest.mark.integration

PARIS = "What is the capital of France?"
TOOL_TOKENS = 96  # a call is a whole JSON object: leave room for it


@pytest.fixture
def llm(cluster: RunningCluster) -> QuorumChatModel:
    return QuorumChatModel(target=cluster.target, temperature=0.0, max_tokens=32)


def test_invoke_answers_with_usage_and_metadata(llm: QuorumChatModel, cluster: RunningCluster) -> None:
    reply = llm.invoke([SystemMessage("Answer in one sentence."), HumanMessage(PARIS)])
    assert isinstance(reply, AIMessage)
    assert "Paris" in reply.text
    assert reply.tool_calls == []
    assert reply.response_metadata["model_name"] == cluster.model_id
    assert reply.response_metadata["finish_reason"] in ("stop", "length")
    assert reply.response_metadata["request_id"]
    usage = reply.usage_metadata
    assert usage is not None
    assert usage["input_tokens"] > 0
    assert 0 < usage["output_tokens"] <= 32
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]


def test_repeated_prompt_reports_cache_reads(llm: QuorumChatModel) -> None:
    document = " ".join(f"Fact {i}: the code word for item {i} is word{i * 11}." for i in range(40))
    messages = [SystemMessage(document), HumanMessage("What is the code word for item 5?")]
    first = llm.invoke(messages, max_tokens=4)
    second = llm.invoke(messages, max_tokens=4)
    assert first.usage_metadata is not None
    assert second.usage_metadata is not None
    cached = second.usage_metadata.get("input_token_details", {}).get("cache_read", 0)
    assert cached >= first.usage_metadata["input_tokens"] // 2


def test_stream_equals_invoke_at_temperature_zero(llm: QuorumChatModel) -> None:
    unary = llm.invoke(PARIS)
    chunks = list(llm.stream(PARIS))
    assert len(chunks) > 1
    merged = chunks[0]
    for chunk in chunks[1:]:
        merged += chunk
    assert isinstance(merged, AIMessageChunk)
    assert merged.text == unary.text
    assert merged.usage_metadata is not None
    assert unary.usage_metadata is not None
    assert merged.usage_metadata["output_tokens"] == unary.usage_metadata["output_tokens"]
    assert merged.response_metadata["finish_reason"] == unary.response_metadata["finish_reason"]


async def test_async_invoke_and_stream(llm: QuorumChatModel) -> None:
    unary = await llm.ainvoke(PARIS)
    streamed = [chunk.text async for chunk in llm.astream(PARIS)]
    assert "Paris" in unary.text
    assert "".join(streamed) == unary.text


def test_server_errors_surface_with_the_servers_message(cluster: RunningCluster) -> None:
    with pytest.raises(QuorumError, match="temperature") as caught:
        QuorumChatModel(target=cluster.target, temperature=-1.0).invoke("hi")
    assert caught.value.code is grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(QuorumError, match="no-such-model") as caught:
        list(QuorumChatModel(target=cluster.target, model="no-such-model").stream("hi"))
    assert caught.value.code is grpc.StatusCode.NOT_FOUND


def _multiply_tool(calls: list[tuple[int, int]]) -> Any:
    @tool
    def multiply(a: int, b: int) -> int:
        """Multiply two integers and return the product."""
        calls.append((a, b))
        return a * b

    return multiply


def test_bind_tools_returns_parsed_tool_calls(llm: QuorumChatModel) -> None:
    multiply = _multiply_tool([])
    reply = llm.bind_tools([multiply], tool_choice="multiply").invoke("What is 12 times 34?", max_tokens=TOOL_TOKENS)
    assert isinstance(reply, AIMessage)
    assert reply.response_metadata["finish_reason"] == "tool_calls", reply
    assert len(reply.tool_calls) == 1
    call = reply.tool_calls[0]
    assert call["name"] == "multiply"
    assert call["id"]
    assert set(call["args"]) == {"a", "b"}
    assert all(isinstance(v, int) for v in call["args"].values())
    # The call goes back to the model as history together with its result.
    answer = llm.bind_tools([multiply], tool_choice="none").invoke(
        [HumanMessage("What is 12 times 34?"), reply, ToolMessage(str(multiply.invoke(call)), tool_call_id=call["id"])]
    )
    assert answer.tool_calls == []
    assert answer.text


def test_langgraph_agent_calls_the_tool_and_answers(llm: QuorumChatModel) -> None:
    """A ReAct loop: model → tool → model. The 135M model is steered by tool_choice, not by luck: the first turn
    must call the tool (forced by name), and once a tool result is in the conversation the model must answer."""
    calls: list[tuple[int, int]] = []
    multiply = _multiply_tool(calls)
    model_calls = 0

    def agent(state: MessagesState) -> dict[str, list[BaseMessage]]:
        nonlocal model_calls
        model_calls += 1
        answered = any(isinstance(m, ToolMessage) for m in state["messages"])
        model = llm.bind_tools([multiply], tool_choice="none" if answered else "multiply", max_tokens=TOOL_TOKENS)
        return {"messages": [model.invoke(state["messages"])]}

    graph = StateGraph(MessagesState)
    graph.add_node("agent", agent)
    graph.add_node("tools", ToolNode([multiply]))
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", tools_condition, ["tools", END])
    graph.add_edge("tools", "agent")
    question = HumanMessage("What is 12 times 34? Use the multiply tool, then state the result.")
    result = graph.compile().invoke({"messages": [question]}, {"recursion_limit": 8})

    messages = result["messages"]
    assert model_calls == 2
    assert len(calls) == 1, "the tool ran exactly once"
    a, b = calls[0]
    assert isinstance(a, int)
    assert isinstance(b, int)
    requested = [c for m in messages if isinstance(m, AIMessage) for c in m.tool_calls]
    assert [(c["name"], c["args"]) for c in requested] == [("multiply", {"a": a, "b": b})]
    results = [m for m in messages if isinstance(m, ToolMessage)]
    assert [(r.tool_call_id, r.content, r.status) for r in results] == [(requested[0]["id"], str(a * b), "success")]
    final = messages[-1]
    assert isinstance(final, AIMessage)
    assert final.tool_calls == []
    assert final.text.strip()


class City(BaseModel):
    name: str
    country: str


@pytest.mark.parametrize("method", ["function_calling", "json_schema"])
def test_structured_output(cluster: RunningCluster, method: Literal["function_calling", "json_schema"]) -> None:
    llm = QuorumChatModel(target=cluster.target, temperature=0.0, max_tokens=48)
    city = llm.with_structured_output(City, method=method).invoke("Name the capital of France and its country.")
    assert isinstance(city, City)
    raw = llm.with_structured_output(City, method=method, include_raw=True).invoke(
        "Name the capital of Italy and its country."
    )
    assert isinstance(raw, dict)
    assert raw["parsing_error"] is None
    assert isinstance(raw["parsed"], City)


DOCUMENTS = {
    "eiffel": "The Eiffel Tower is a wrought-iron lattice tower in Paris, France, completed in 1889.",
    "photosynthesis": "Photosynthesis is how plants use sunlight, water and carbon dioxide to make glucose and oxygen.",
    "python": "Python is a programming language created by Guido van Rossum, known for readable code.",
    "everest": "Mount Everest, on the border of Nepal and China, is the highest mountain above sea level.",
}


async def test_retriever_returns_the_matching_document_first(cluster: RunningCluster) -> None:
    """Needs ReasoningService.Ingest/Search on the server (UNIMPLEMENTED until document collections land)."""
    collection = f"lc-test-{uuid.uuid4().hex[:8]}"
    retriever = QuorumRetriever(target=cluster.target, collection=collection, top_k=3)
    ingested = retriever.add_documents(
        [Document(text, id=doc_id, metadata={"title": doc_id.title()}) for doc_id, text in DOCUMENTS.items()]
    )
    assert ingested.documents == len(DOCUMENTS)
    try:
        queries = {
            "How do plants turn sunlight into glucose?": "photosynthesis",
            "Which programming language did Guido van Rossum create?": "python",
            "What is the highest mountain on Earth?": "everest",
        }
        for query, expected in queries.items():
            docs = retriever.invoke(query)
            assert 0 < len(docs) <= 3
            top = docs[0]
            assert top.metadata["document_id"] == expected, query
            assert top.metadata["title"] == expected.title()
            assert top.metadata["chunk_index"] == 0
            assert top.metadata["collection"] == collection
            assert top.page_content in DOCUMENTS[expected]
            scores = [d.metadata["score"] for d in docs]
            assert scores == sorted(scores, reverse=True)
        docs = await retriever.ainvoke("Where is the Eiffel Tower?")
        assert docs[0].metadata["document_id"] == "eiffel"
    finally:
        with QuorumClient(cluster.target, timeout=60) as client:
            client.delete_documents(collection, list(DOCUMENTS))
