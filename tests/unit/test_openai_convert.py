"""OpenAI JSON <-> the cluster's plain types: request bodies, error mapping, responses and stream chunks."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from quorum.cluster.errors import EngineUnavailable, InvalidArgument, ModelNotFound, Overloaded
from quorum.cluster.types import (
    ChoiceDelta,
    FinishReason,
    GenerationChunk,
    TokenLogprob,
    ToolCall,
    ToolChoiceMode,
    TopLogprob,
    Usage,
)
from quorum.services.openai_convert import (
    StreamEncoder,
    chat_input,
    chat_response,
    completion_input,
    completion_response,
    domain_error,
    openai_param,
    sse,
    validation_error,
)
from quorum.services.openai_schema import ChatCompletionRequest, CompletionRequest

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def chat(**fields: Any) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate(
        {"model": "m", "messages": [{"role": "user", "content": "hi"}], **fields}
    )


def test_chat_body_becomes_sampling_options_with_openai_defaults() -> None:
    parsed = chat_input(chat())
    assert parsed.endpoint == "chat"
    options = parsed.options
    assert (options.temperature, options.top_p, options.n, options.max_tokens, options.logprobs) == (
        1.0,
        1.0,
        1,
        None,
        None,
    )
    assert parsed.messages is not None
    assert parsed.messages[0].role == "user"
    assert not parsed.stream
    assert not parsed.include_usage


def test_chat_body_sampling_fields_map_one_to_one() -> None:
    parsed = chat_input(
        chat(
            max_completion_tokens=7,
            temperature=0.5,
            top_p=0.9,
            n=2,
            stop="\n",
            seed=3,
            presence_penalty=0.1,
            frequency_penalty=0.2,
            logprobs=True,
            top_logprobs=2,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    o = parsed.options
    assert (o.max_tokens, o.temperature, o.top_p, o.n, o.stop, o.seed) == (7, 0.5, 0.9, 2, ("\n",), 3)
    assert (o.presence_penalty, o.frequency_penalty, o.logprobs) == (0.1, 0.2, 2)
    assert parsed.stream
    assert parsed.include_usage
    assert parsed.logprobs
    assert parsed.max_tokens_param == "max_completion_tokens"


def test_response_format_becomes_a_json_schema_constraint() -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    parsed = chat_input(chat(response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}))
    assert parsed.options.constraint is not None
    assert json.loads(parsed.options.constraint.json_schema or "") == schema
    as_object = chat_input(chat(response_format={"type": "json_object"})).options.constraint
    assert as_object is not None
    assert json.loads(as_object.json_schema or "") == {"type": "object"}
    assert chat_input(chat(response_format={"type": "text"})).options.constraint is None


def test_tools_tool_choice_and_tool_messages() -> None:
    messages = [
        {"role": "developer", "content": [{"type": "text", "text": "Be brief."}]},
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "18 C"},
    ]
    parsed = chat_input(chat(messages=messages, tools=[WEATHER], tool_choice="required"))
    assert parsed.tools[0].name == "get_weather"
    assert json.loads(parsed.tools[0].parameters_json_schema)["required"] == ["city"]
    assert parsed.tool_choice.mode is ToolChoiceMode.REQUIRED
    assert not parsed.tool_choice.name
    assert parsed.messages is not None
    assert parsed.messages[0].role == "system"
    assert parsed.messages[0].content == "Be brief."
    assert parsed.messages[2].tool_calls == (ToolCall("call_1", "get_weather", '{"city":"Paris"}'),)
    assert parsed.messages[3].tool_call_id == "call_1"
    named = chat_input(chat(tools=[WEATHER], tool_choice={"type": "function", "function": {"name": "get_weather"}}))
    assert named.tool_choice.name == "get_weather"
    assert chat_input(chat(tools=[WEATHER], tool_choice="none")).tool_choice.mode is ToolChoiceMode.NONE


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].tool_call_id"),
        ({"messages": [{"role": "tool", "content": "x", "tool_call_id": "nope"}]}, "messages[0].tool_call_id"),
        ({"max_tokens": 3, "max_completion_tokens": 3}, "max_completion_tokens"),
        ({"top_logprobs": 2}, "top_logprobs"),
        ({"stream_options": {"include_usage": True}}, "stream_options"),
        ({"logit_bias": {"1": 2.0}}, "logit_bias"),
        ({"response_format": {"type": "json_schema"}}, "response_format.json_schema"),
    ],
)
def test_bad_chat_fields_name_the_field(fields: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        chat_input(chat(**fields))
    assert info.value.field == param


def test_completion_body() -> None:
    parsed = completion_input(CompletionRequest.model_validate({"model": "m", "prompt": ["Once"], "logprobs": 2}))
    assert parsed.prompt == "Once"
    assert parsed.options.logprobs == 2
    assert parsed.logprobs
    for fields, param in (({"prompt": ["a", "b"]}, "prompt"), ({"echo": True}, "echo"), ({"suffix": "x"}, "suffix")):
        with pytest.raises(InvalidArgument) as info:
            completion_input(CompletionRequest.model_validate({"model": "m", "prompt": "a", **fields}))
        assert info.value.field == param


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": [{"role": "user", "content": "hi"}], "temperature": "hot"}, "temperature"),
        ({"messages": [{"role": "wizard", "content": "hi"}]}, "messages[0].role"),
        ({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, "messages[0].content"),
        ({"messages": [{"role": "user", "content": "hi"}], "stop": [1]}, "stop[0]"),
        ({"messages": [{"role": "user", "content": "hi"}], "tool_choice": "sometimes"}, "tool_choice"),
        ({"messages": [{"role": "user", "content": "hi"}], "temprature": 1}, "temprature"),
        ({}, "messages"),
    ],
)
def test_pydantic_errors_become_openai_errors_naming_the_field(body: dict[str, Any], param: str) -> None:
    with pytest.raises(ValidationError) as info:
        ChatCompletionRequest.model_validate(body)
    errors = [{**e, "loc": ("body", *e["loc"])} for e in info.value.errors()]
    error = validation_error(errors)["error"]
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"
    assert error["message"].startswith(f"{param}: ")


def test_malformed_json_is_a_400_without_param() -> None:
    error = validation_error([{"type": "json_invalid", "loc": ("body", 1), "msg": "JSON decode error"}])["error"]
    assert error["param"] is None
    assert "not valid JSON" in error["message"]


@pytest.mark.parametrize(
    ("field", "endpoint", "param"),
    [
        ("sampling.temperature", "chat", "temperature"),
        ("sampling.max_tokens", "chat", "max_tokens"),
        ("sampling.logprobs", "chat", "top_logprobs"),
        ("sampling.logprobs", "completions", "logprobs"),
        ("sampling.constraint.json_schema", "chat", "response_format"),
        ("prompt", "chat", "messages"),
        ("prompt", "completions", "prompt"),
        ("tools[1].name", "chat", "tools[1].function.name"),
        ("tools[0].parameters_json_schema", "chat", "tools[0].function.parameters"),
        ("tool_choice.name", "chat", "tool_choice.function.name"),
        ("messages[2].role", "chat", "messages[2].role"),
    ],
)
def test_domain_fields_map_to_openai_params(field: str, endpoint: Any, param: str) -> None:
    assert openai_param(field, endpoint) == param


def test_domain_errors_get_openai_statuses() -> None:
    status, body = domain_error(InvalidArgument("sampling.top_p", "must be in (0, 1], got 2"), "chat")
    assert status == 400
    assert body["error"] == {
        "message": "top_p: must be in (0, 1], got 2",
        "type": "invalid_request_error",
        "param": "top_p",
        "code": None,
    }
    assert domain_error(InvalidArgument("sampling.max_tokens", "x"), "chat", "max_completion_tokens")[1]["error"][
        "param"
    ] == ("max_completion_tokens")
    assert domain_error(ModelNotFound("no"), "chat")[0] == 404
    assert domain_error(Overloaded("busy"), "chat")[0] == 429
    assert domain_error(EngineUnavailable("loading"), "chat")[0] == 503


LOGPROB = TokenLogprob("Hi", 5, -0.1, (TopLogprob("Hi", 5, -0.1), TopLogprob("Yo", 6, -2.0)))


def test_whole_responses() -> None:
    parsed = chat_input(chat(logprobs=True, top_logprobs=2))
    choices = [ChoiceDelta(0, "Hi", FinishReason.STOP, (LOGPROB,))]
    body = chat_response(parsed, "rid", "m", 1, choices, Usage(10, 1, 8))
    assert body["id"] == "chatcmpl-rid"
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "Hi"}
    assert body["choices"][0]["finish_reason"] == "stop"
    top = body["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
    assert [t["token"] for t in top] == ["Hi", "Yo"]
    assert body["usage"] == {
        "prompt_tokens": 10,
        "completion_tokens": 1,
        "total_tokens": 11,
        "prompt_tokens_details": {"cached_tokens": 8},
    }
    call = ToolCall("call_1", "get_weather", '{"city": "Paris"}')
    tool_body = chat_response(parsed, "r", "m", 1, [ChoiceDelta(0, "", FinishReason.TOOL_CALLS, (), (call,))], Usage())
    message = tool_body["choices"][0]["message"]
    assert message["content"] is None
    assert message["tool_calls"] == [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
    ]
    assert tool_body["choices"][0]["finish_reason"] == "tool_calls"
    completion = completion_input(CompletionRequest.model_validate({"prompt": "x", "logprobs": 1}))
    text = completion_response(completion, "rid", "m", 1, choices, Usage(1, 1))
    assert text["object"] == "text_completion"
    assert text["choices"][0]["text"] == "Hi"
    assert text["choices"][0]["logprobs"]["top_logprobs"] == [{"Hi": -0.1, "Yo": -2.0}]


def test_chat_stream_chunks_and_usage() -> None:
    parsed = chat_input(chat(n=2, temperature=1, stream=True, stream_options={"include_usage": True}))
    encoder = StreamEncoder(parsed, "rid", "m", 1)
    first = encoder.encode(GenerationChunk((ChoiceDelta(0, "Hel"), ChoiceDelta(1, "Yo"))))
    assert len(first) == 1
    assert [c["delta"] for c in first[0]["choices"]] == [
        {"role": "assistant", "content": "Hel"},
        {"role": "assistant", "content": "Yo"},
    ]
    assert first[0]["object"] == "chat.completion.chunk"
    assert first[0]["usage"] is None
    last = encoder.encode(GenerationChunk((ChoiceDelta(0, "lo", FinishReason.STOP),), usage=Usage(3, 4, 1)))
    assert last[0]["choices"] == [{"index": 0, "delta": {"content": "lo"}, "logprobs": None, "finish_reason": "stop"}]
    assert encoder.encode(GenerationChunk((ChoiceDelta(1, ""),))) == []
    (closing,) = encoder.finish()
    assert closing["choices"] == []
    assert closing["usage"]["prompt_tokens_details"] == {"cached_tokens": 1}
    assert sse({"a": 1}) == 'data: {"a":1}\n\n'


def test_streamed_tool_call_is_one_delta() -> None:
    parsed = chat_input(chat(tools=[WEATHER], stream=True))
    encoder = StreamEncoder(parsed, "rid", "m", 1)
    call = ToolCall("call_1", "get_weather", '{"city": "Paris"}')
    (chunk,) = encoder.encode(GenerationChunk((ChoiceDelta(0, "", FinishReason.TOOL_CALLS, (), (call,)),), Usage()))
    choice = chunk["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["delta"] == {
        "role": "assistant",
        "tool_calls": [
            {
                "index": 0,
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            }
        ],
    }
    assert "usage" not in chunk
    assert encoder.finish() == []


def test_completion_stream_offsets() -> None:
    parsed = completion_input(CompletionRequest.model_validate({"prompt": "x", "stream": True, "logprobs": 0}))
    encoder = StreamEncoder(parsed, "rid", "m", 1)
    encoder.encode(GenerationChunk((ChoiceDelta(0, "Hi", None, (LOGPROB,)),)))
    (chunk,) = encoder.encode(GenerationChunk((ChoiceDelta(0, "Hi", FinishReason.LENGTH, (LOGPROB,)),)))
    assert chunk["object"] == "text_completion"
    assert chunk["choices"][0]["logprobs"]["text_offset"] == [2]
    assert chunk["choices"][0]["finish_reason"] == "length"
