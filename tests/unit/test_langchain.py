"""The LangChain adapters' conversions: messages, tools, responses, stream chunks, documents."""

from __future__ import annotations

import copy
import json
import pickle
from functools import reduce
from typing import Any

import pytest
from langchain_core.documents import Document
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.outputs import ChatGenerationChunk
from langchain_core.tools import tool
from pydantic import BaseModel, Field

from quorum.client.langchain import (
    QuorumChatModel,
    ai_message,
    chat_result,
    from_chat_message,
    quorum_documents,
    retrieved_documents,
    stream_chunk,
    to_chat_messages,
    tool_choice_name,
    tool_definition,
    tool_definitions,
)
from quorum.client.sdk import documents
from quorum.v1 import inference_pb2 as pb
from quorum.v1 import reasoning_pb2 as rpb


@tool
def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


class Weather(BaseModel):
    """Look up the weather of a city."""

    city: str = Field(description="The city's name")
    unit: str = "celsius"


def add(x: float, y: float) -> float:
    """Add two numbers.

    Args:
        x: The first number.
        y: The second number.
    """
    return x + y


def _schema(definition: pb.ToolDefinition) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(definition.parameters_json_schema)
    return schema


# --- tools -------------------------------------------------------------------------------------------------------


def test_base_tool_becomes_a_tool_definition() -> None:
    definition = tool_definition(multiply)
    assert definition.name == "multiply"
    assert definition.description == "Multiply two integers."
    schema = _schema(definition)
    assert schema["type"] == "object"
    assert schema["properties"] == {"a": {"type": "integer"}, "b": {"type": "integer"}}
    assert sorted(schema["required"]) == ["a", "b"]


def test_pydantic_model_function_and_dicts_become_tool_definitions() -> None:
    openai_style = {
        "type": "function",
        "function": {"name": "lookup", "description": "Look up a word.", "parameters": {"type": "object"}},
    }
    plain = {"name": "ping", "description": "Ping.", "parameters": {"type": "object", "properties": {}}}
    weather, adder, lookup, ping = tool_definitions([Weather, add, openai_style, plain])
    assert (weather.name, weather.description) == ("Weather", "Look up the weather of a city.")
    assert _schema(weather)["properties"]["city"] == {"type": "string", "description": "The city's name"}
    assert _schema(weather)["required"] == ["city"]
    assert adder.name == "add"
    assert _schema(adder)["properties"]["x"]["type"] == "number"
    assert (lookup.name, _schema(lookup)) == ("lookup", {"type": "object"})
    assert ping.name == "ping"


def test_a_tool_definition_passes_through() -> None:
    definition = pb.ToolDefinition(name="t", description="d", parameters_json_schema="")
    assert tool_definition(definition) is definition


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        (None, None),
        ("auto", "auto"),
        ("none", "none"),
        ("required", "required"),
        ("any", "required"),
        (True, "required"),
        (False, "none"),
        ("multiply", "multiply"),
        ({"type": "function", "function": {"name": "multiply"}}, "multiply"),
        ({"name": "multiply"}, "multiply"),
    ],
)
def test_tool_choice_spellings(choice: Any, expected: str | None) -> None:
    assert tool_choice_name(choice, ["multiply"]) == expected


def test_tool_choice_must_name_a_bound_tool() -> None:
    with pytest.raises(ValueError, match="divide"):
        tool_choice_name("divide", ["multiply"])
    with pytest.raises(ValueError, match="names no tool"):
        tool_choice_name({"type": "function"}, ["multiply"])


def test_bind_tools_binds_openai_dicts_and_the_choice() -> None:
    bound = QuorumChatModel().bind_tools([multiply, Weather], tool_choice="any")
    kwargs = bound.kwargs  # type: ignore[attr-defined]
    assert [t["function"]["name"] for t in kwargs["tools"]] == ["multiply", "Weather"]  # what agents inspect
    assert kwargs["tool_choice"] == "required"
    with pytest.raises(ValueError, match="divide"):
        QuorumChatModel().bind_tools([multiply], tool_choice="divide")


def test_call_arguments_become_the_request() -> None:
    llm = QuorumChatModel(model="m", temperature=0.0, max_tokens=16, stop=["\n"])
    bound = llm.bind_tools([multiply], tool_choice="multiply")
    request = llm._request(None, {**bound.kwargs, "seed": 3, "max_tokens": 8})  # type: ignore[attr-defined]
    assert request["model"] == "m"
    assert [t.name for t in request["tools"]] == ["multiply"]
    assert request["tool_choice"] == "multiply"
    assert (request["temperature"], request["max_tokens"], request["seed"], request["stop"]) == (0.0, 8, 3, ["\n"])
    assert llm._request(["END"], {"model": "other"})["stop"] == ["END"]
    assert llm._request(None, {"model": "other"})["model"] == "other"
    with pytest.raises(TypeError, match="bogus"):
        llm._request(None, {"bogus": 1})


# --- messages ----------------------------------------------------------------------------------------------------


def test_langchain_messages_become_chat_messages() -> None:
    call = {"name": "multiply", "args": {"a": 6, "b": 7}, "id": "call_1", "type": "tool_call"}
    messages = [
        SystemMessage("Be brief."),
        HumanMessage([{"type": "text", "text": "What is "}, "6 * 7?"]),
        AIMessage("", tool_calls=[call]),
        ToolMessage("42", tool_call_id="call_1"),
        ChatMessage(role="human", content="thanks"),
    ]
    converted = to_chat_messages(messages)
    assert [(m.role, m.content) for m in converted] == [
        ("system", "Be brief."),
        ("user", "What is 6 * 7?"),
        ("assistant", ""),
        ("tool", "42"),
        ("user", "thanks"),
    ]
    assert converted[2].tool_calls[0].id == "call_1"
    assert converted[2].tool_calls[0].name == "multiply"
    assert json.loads(converted[2].tool_calls[0].arguments_json) == {"a": 6, "b": 7}
    assert converted[3].tool_call_id == "call_1"


def test_non_text_content_is_refused() -> None:
    image = {"type": "image", "url": "https://example.invalid/cat.png"}
    with pytest.raises(ValueError, match="'image'"):
        to_chat_messages([HumanMessage([image])])
    with pytest.raises(TypeError, match="FunctionMessage"):
        to_chat_messages([FunctionMessage(name="f", content="x")])


def test_chat_messages_become_langchain_messages() -> None:
    call = pb.ToolCallRequest(id="call_1", name="multiply", arguments_json='{"a": 6, "b": 7}')
    system, user, assistant, result = (
        from_chat_message(m)
        for m in [
            pb.ChatMessage(role="system", content="s"),
            pb.ChatMessage(role="user", content="u"),
            pb.ChatMessage(role="assistant", content="", tool_calls=[call]),
            pb.ChatMessage(role="tool", content="42", tool_call_id="call_1"),
        ]
    )
    assert isinstance(system, SystemMessage)
    assert isinstance(user, HumanMessage)
    assert isinstance(assistant, AIMessage)
    assert assistant.tool_calls == [{"name": "multiply", "args": {"a": 6, "b": 7}, "id": "call_1", "type": "tool_call"}]
    assert isinstance(result, ToolMessage)
    assert result.tool_call_id == "call_1"
    back = to_chat_messages([assistant])[0].tool_calls[0]
    assert (back.id, back.name, json.loads(back.arguments_json)) == ("call_1", "multiply", {"a": 6, "b": 7})


# --- responses ---------------------------------------------------------------------------------------------------


def _response(**choice: Any) -> pb.ChatResponse:
    return pb.ChatResponse(
        request_id="req-1",
        model="m",
        choices=[pb.Choice(index=0, **choice)],
        usage=pb.Usage(prompt_tokens=20, completion_tokens=5, cached_prompt_tokens=16),
    )


def test_text_response_becomes_an_ai_message() -> None:
    response = _response(text="Paris.", finish_reason=pb.FINISH_REASON_STOP)
    message = ai_message(response.choices[0], response)
    assert message.content == "Paris."
    assert message.tool_calls == []
    assert message.usage_metadata == {
        "input_tokens": 20,
        "output_tokens": 5,
        "total_tokens": 25,
        "input_token_details": {"cache_read": 16},
    }
    assert message.response_metadata == {"model_name": "m", "request_id": "req-1", "finish_reason": "stop"}


def test_tool_calls_are_parsed_and_bad_arguments_kept_as_invalid() -> None:
    calls = [
        pb.ToolCallRequest(id="call_1", name="multiply", arguments_json='{"a": 6, "b": 7}'),
        pb.ToolCallRequest(id="call_2", name="multiply", arguments_json="{oops"),
        pb.ToolCallRequest(id="call_3", name="multiply", arguments_json="[1]"),
    ]
    response = _response(finish_reason=pb.FINISH_REASON_TOOL_CALLS, tool_calls=calls)
    message = ai_message(response.choices[0], response)
    assert message.tool_calls == [{"name": "multiply", "args": {"a": 6, "b": 7}, "id": "call_1", "type": "tool_call"}]
    assert [(c["id"], c["args"]) for c in message.invalid_tool_calls] == [("call_2", "{oops"), ("call_3", "[1]")]
    assert message.response_metadata["finish_reason"] == "tool_calls"


def test_chat_result_has_one_generation_per_choice() -> None:
    response = pb.ChatResponse(
        request_id="r",
        model="m",
        choices=[
            pb.Choice(index=0, text="a", finish_reason=pb.FINISH_REASON_STOP),
            pb.Choice(index=1, text="b", finish_reason=pb.FINISH_REASON_LENGTH),
        ],
        usage=pb.Usage(prompt_tokens=3, completion_tokens=2),
    )
    result = chat_result(response)
    assert [g.text for g in result.generations] == ["a", "b"]
    assert [g.generation_info for g in result.generations] == [{"finish_reason": "stop"}, {"finish_reason": "length"}]
    assert result.llm_output is not None
    assert result.llm_output["request_id"] == "r"


def test_stream_chunks_merge_into_one_message() -> None:
    call = pb.ToolCallRequest(id="call_1", name="multiply", arguments_json='{"a": 6, "b": 7}')
    responses = [
        pb.ChatStreamResponse(request_id="r", model="m"),  # nothing yet
        pb.ChatStreamResponse(request_id="r", model="m", choices=[pb.Choice(index=0, text="Let me ")]),
        pb.ChatStreamResponse(request_id="r", model="m", choices=[pb.Choice(index=0, text="check.")]),
        pb.ChatStreamResponse(
            request_id="r",
            model="m",
            choices=[pb.Choice(index=0, finish_reason=pb.FINISH_REASON_TOOL_CALLS, tool_calls=[call])],
            usage=pb.Usage(prompt_tokens=10, completion_tokens=4, cached_prompt_tokens=8),
        ),
    ]
    chunks = [c for c in map(stream_chunk, responses) if c is not None]
    assert len(chunks) == 3
    merged: ChatGenerationChunk = reduce(lambda a, b: a + b, chunks)
    message = merged.message
    assert isinstance(message, AIMessageChunk)
    assert message.content == "Let me check."
    assert message.tool_calls == [{"name": "multiply", "args": {"a": 6, "b": 7}, "id": "call_1", "type": "tool_call"}]
    assert message.response_metadata == {"finish_reason": "tool_calls", "model_name": "m", "request_id": "r"}
    assert message.usage_metadata is not None
    assert message.usage_metadata["input_tokens"] == 10
    assert message.usage_metadata["input_token_details"] == {"cache_read": 8}
    assert merged.generation_info == {"finish_reason": "tool_calls"}


def test_streaming_refuses_several_choices() -> None:
    with pytest.raises(ValueError, match="n > 1"):
        next(iter(QuorumChatModel(n=2).stream("hi")))


# --- documents ---------------------------------------------------------------------------------------------------


def test_search_hits_become_documents() -> None:
    response = rpb.SearchResponse(
        chunks=[
            rpb.RetrievedChunk(document_id="d1", text="alpha", score=0.9, chunk_index=2, metadata={"title": "A"}),
            rpb.RetrievedChunk(document_id="d2", text="beta", score=0.5),
        ]
    )
    first, second = retrieved_documents(response, "docs")
    assert (first.id, first.page_content) == ("d1#2", "alpha")
    assert first.metadata == {
        "title": "A",
        "document_id": "d1",
        "chunk_index": 2,
        "score": pytest.approx(0.9),
        "collection": "docs",
    }
    assert (second.metadata["document_id"], second.metadata["chunk_index"]) == ("d2", 0)


def test_documents_to_ingest_need_ids() -> None:
    docs = [Document("one", id="a", metadata={"year": 2024}), Document("two", metadata={"document_id": "b"})]
    converted = quorum_documents(docs)
    assert [(d.id, d.text, dict(d.metadata)) for d in converted] == [("a", "one", {"year": "2024"}), ("b", "two", {})]
    assert [d.id for d in quorum_documents(docs, ids=["x", "y"])] == ["x", "y"]
    with pytest.raises(ValueError, match="no id"):
        quorum_documents([Document("three")])
    with pytest.raises(ValueError, match="2 ids for 1"):
        quorum_documents([Document("three")], ids=["x", "y"])


def test_client_documents_accept_protos_pairs_and_mappings() -> None:
    converted = documents(
        [rpb.Document(id="p", text="proto"), ("t", "tuple"), {"id": "m", "text": "map", "metadata": {"n": 1}}]
    )
    assert [(d.id, d.text, dict(d.metadata)) for d in converted] == [
        ("p", "proto", {}),
        ("t", "tuple", {}),
        ("m", "map", {"n": "1"}),
    ]


def test_models_can_be_copied_and_pickled_without_their_channel() -> None:
    llm = QuorumChatModel(target="127.0.0.1:1", token="secret", temperature=0.5)
    first = llm._sync_client()  # a lazily opened channel (nothing is sent)
    try:
        clone = copy.deepcopy(llm)
        assert (clone.target, clone.temperature, clone._connection._client) == ("127.0.0.1:1", 0.5, None)
        assert pickle.loads(pickle.dumps(llm)).token.get_secret_value() == "secret"
        moved = llm.model_copy(update={"target": "127.0.0.1:2"})
        assert moved._sync_client().target == "127.0.0.1:2"
        assert llm._sync_client() is not first
        assert llm._sync_client().target == "127.0.0.1:1"
    finally:
        llm.close()
