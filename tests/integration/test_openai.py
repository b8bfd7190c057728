"""The OpenAI-compatible HTTP API end to end: the official ``openai`` client against the session cluster."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import jsonschema
import openai
import pytest
from openai import OpenAI
from openai.types.chat import ChatCompletionMessageFunctionToolCall

from .conftest import MAX_MODEL_LEN, SECOND_MODEL, RunningCluster

pytestmark = pytest.mark.integration

PARIS: list[Any] = [{"role": "user", "content": "What is the capital of France?"}]
WEATHER_PARAMETERS = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
    "required": ["city", "unit"],
    "additionalProperties": False,
}
WEATHER: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather of a city.",
        "parameters": WEATHER_PARAMETERS,
    },
}
ASK_WEATHER: list[Any] = [{"role": "user", "content": "What is the weather in Paris?"}]


@pytest.fixture
def api(openai_base_url: str) -> Iterator[OpenAI]:
    with OpenAI(base_url=openai_base_url, api_key="unused", timeout=120, max_retries=0) as client:
        yield client


def _paris(api: OpenAI, model: str) -> None:
    """The server still answers correctly."""
    reply = api.chat.completions.create(model=model, messages=PARIS, temperature=0, max_tokens=16)
    assert "Paris" in (reply.choices[0].message.content or "")


def test_models_are_listed(api: OpenAI, cluster: RunningCluster) -> None:
    models = api.models.list()
    assert [m.id for m in models.data] == [m.id for m in cluster.config.models]
    assert all(m.object == "model" and m.owned_by == "quorum" for m in models.data)
    assert api.models.retrieve(SECOND_MODEL).id == SECOND_MODEL


def test_completion(api: OpenAI, cluster: RunningCluster) -> None:
    prompt = "The capital of France is"
    reply = api.completions.create(model=cluster.model_id, prompt=prompt, temperature=0, max_tokens=8)
    assert reply.object == "text_completion"
    assert reply.model == cluster.model_id
    assert reply.choices[0].text
    assert reply.choices[0].finish_reason in ("stop", "length")
    assert reply.usage is not None
    assert reply.usage.completion_tokens > 0
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens
    streamed = api.completions.create(model=cluster.model_id, prompt=prompt, temperature=0, max_tokens=8, stream=True)
    assert "".join(chunk.choices[0].text for chunk in streamed if chunk.choices) == reply.choices[0].text


def test_chat_answers_paris_with_usage(api: OpenAI, cluster: RunningCluster) -> None:
    reply = api.chat.completions.create(model=cluster.model_id, messages=PARIS, temperature=0, max_tokens=32)
    assert reply.id.startswith("chatcmpl-")
    assert reply.object == "chat.completion"
    message = reply.choices[0].message
    assert message.role == "assistant"
    assert "Paris" in (message.content or "")
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None
    assert reply.usage.prompt_tokens > 0
    assert reply.usage.prompt_tokens_details is not None
    assert reply.usage.prompt_tokens_details.cached_tokens is not None


def test_streamed_chat_equals_unary_and_reports_usage(api: OpenAI, cluster: RunningCluster) -> None:
    unary = api.chat.completions.create(model=cluster.model_id, messages=PARIS, temperature=0, max_tokens=48)
    chunks = list(
        api.chat.completions.create(
            model=cluster.model_id,
            messages=PARIS,
            temperature=0,
            max_completion_tokens=48,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert len(chunks) > 2
    assert all(c.object == "chat.completion.chunk" and c.id == chunks[0].id for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == unary.choices[0].message.content
    assert chunks[0].choices[0].delta.role == "assistant"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == [unary.choices[0].finish_reason]
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert unary.usage is not None
    assert chunks[-1].usage.completion_tokens == unary.usage.completion_tokens
    assert all(c.usage is None for c in chunks[:-1])


def test_n_choices_with_sampling(api: OpenAI, cluster: RunningCluster) -> None:
    reply = api.chat.completions.create(
        model=cluster.model_id, messages=PARIS, n=2, temperature=1.0, top_p=0.95, seed=7, max_tokens=12
    )
    assert [c.index for c in reply.choices] == [0, 1]
    assert all(c.message.content for c in reply.choices)
    stream = api.chat.completions.create(
        model=cluster.model_id, messages=PARIS, n=2, temperature=1.0, max_tokens=12, stream=True
    )
    assert {choice.index for chunk in stream for choice in chunk.choices} == {0, 1}


def test_repeated_long_prompt_reports_cached_tokens(api: OpenAI, cluster: RunningCluster) -> None:
    document = " ".join(f"Fact {i}: the password for door {i} is word{i * 3}." for i in range(40))
    messages: list[Any] = [{"role": "user", "content": f"{document}\nWhat is the password for door 5?"}]
    first = api.chat.completions.create(model=cluster.model_id, messages=messages, temperature=0, max_tokens=4)
    second = api.chat.completions.create(model=cluster.model_id, messages=messages, temperature=0, max_tokens=4)
    assert first.usage is not None
    assert second.usage is not None
    assert second.usage.prompt_tokens_details is not None
    assert first.usage.prompt_tokens > 256
    assert (second.usage.prompt_tokens_details.cached_tokens or 0) >= first.usage.prompt_tokens // 2


def test_logprobs(api: OpenAI, cluster: RunningCluster) -> None:
    reply = api.chat.completions.create(
        model=cluster.model_id, messages=PARIS, temperature=0, max_tokens=4, logprobs=True, top_logprobs=2
    )
    logprobs = reply.choices[0].logprobs
    assert logprobs is not None
    assert logprobs.content is not None
    assert len(logprobs.content) == (reply.usage.completion_tokens if reply.usage else -1)
    for position in logprobs.content:
        assert len(position.top_logprobs) == 2
        assert position.logprob == pytest.approx(position.top_logprobs[0].logprob, abs=1e-4)


def test_required_tool_choice_yields_a_valid_call(api: OpenAI, cluster: RunningCluster) -> None:
    reply = api.chat.completions.create(
        model=cluster.model_id,
        messages=ASK_WEATHER,
        tools=[WEATHER],
        tool_choice="required",
        temperature=0,
        max_tokens=64,
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls is not None
    (call,) = choice.message.tool_calls
    assert call.type == "function"
    assert call.id.startswith("call_")
    assert call.function.name == "get_weather"
    jsonschema.validate(json.loads(call.function.arguments), WEATHER_PARAMETERS)
    named = api.chat.completions.create(
        model=cluster.model_id,
        messages=ASK_WEATHER,
        tools=[WEATHER, {"type": "function", "function": {"name": "get_time"}}],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        temperature=0,
        max_tokens=64,
    )
    assert named.choices[0].message.tool_calls is not None
    named_call = named.choices[0].message.tool_calls[0]
    assert isinstance(named_call, ChatCompletionMessageFunctionToolCall)
    assert named_call.function.name == "get_weather"


def test_streamed_tool_call_arrives_as_one_delta(api: OpenAI, cluster: RunningCluster) -> None:
    chunks = list(
        api.chat.completions.create(
            model=cluster.model_id,
            messages=ASK_WEATHER,
            tools=[WEATHER],
            tool_choice="required",
            temperature=0,
            max_tokens=64,
            stream=True,
        )
    )
    calls = [call for c in chunks if c.choices for call in c.choices[0].delta.tool_calls or ()]
    assert len(calls) == 1
    assert calls[0].index == 0
    assert calls[0].function is not None
    assert calls[0].function.name == "get_weather"
    jsonschema.validate(json.loads(calls[0].function.arguments or ""), WEATHER_PARAMETERS)
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["tool_calls"]


def test_auto_tool_choice_round_trip_with_a_tool_result(api: OpenAI, cluster: RunningCluster) -> None:
    first = api.chat.completions.create(
        model=cluster.model_id, messages=ASK_WEATHER, tools=[WEATHER], tool_choice="required", temperature=0
    )
    assistant = first.choices[0].message
    assert assistant.tool_calls is not None
    messages: list[Any] = [
        *ASK_WEATHER,
        assistant.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": assistant.tool_calls[0].id, "content": '{"temperature": 18, "sky": "sunny"}'},
    ]
    reply = api.chat.completions.create(
        model=cluster.model_id, messages=messages, tools=[WEATHER], tool_choice="auto", temperature=0, max_tokens=64
    )
    choice = reply.choices[0]
    assert choice.finish_reason in ("stop", "tool_calls", "length")
    if choice.finish_reason == "tool_calls":
        assert choice.message.tool_calls is not None
        again = choice.message.tool_calls[0]
        assert isinstance(again, ChatCompletionMessageFunctionToolCall)
        jsonschema.validate(json.loads(again.function.arguments), WEATHER_PARAMETERS)
    else:
        assert choice.message.content
    no_tools = api.chat.completions.create(
        model=cluster.model_id, messages=messages, tools=[WEATHER], tool_choice="none", temperature=0, max_tokens=16
    )
    assert no_tools.choices[0].message.tool_calls is None


def test_response_format_json_schema(api: OpenAI, cluster: RunningCluster) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "country": {"type": "string"}},
        "required": ["city", "country"],
        "additionalProperties": False,
    }
    reply = api.chat.completions.create(
        model=cluster.model_id,
        messages=[{"role": "user", "content": "Name the capital of France as JSON with keys city and country."}],
        response_format={"type": "json_schema", "json_schema": {"name": "capital", "schema": schema, "strict": True}},
        temperature=0,
        max_tokens=64,
    )
    jsonschema.validate(json.loads(reply.choices[0].message.content or ""), schema)


ErrorCall = Callable[[OpenAI, str], Any]


@pytest.mark.parametrize(
    ("call", "error", "param", "needle"),
    [
        (
            lambda api, m: api.chat.completions.create(model="no-such-model", messages=PARIS),
            openai.NotFoundError,
            "model",
            "no-such-model",
        ),
        (
            lambda api, m: api.chat.completions.create(model=m, messages=PARIS, temperature=-1),
            openai.BadRequestError,
            "temperature",
            "must be in [0, 2]",
        ),
        (
            lambda api, m: api.chat.completions.create(model=m, messages=PARIS, top_p=1.5, stream=True),
            openai.BadRequestError,
            "top_p",
            "(0, 1]",
        ),
        (lambda api, m: api.chat.completions.create(model=m, messages=[]), openai.BadRequestError, "messages", "one"),
        (
            lambda api, m: api.chat.completions.create(
                model=m, messages=[{"role": "user", "content": "hello " * 2 * MAX_MODEL_LEN}]
            ),
            openai.BadRequestError,
            "messages",
            "shorten the prompt",
        ),
        (
            lambda api, m: api.completions.create(model=m, prompt="hello " * 2 * MAX_MODEL_LEN, stream=True),
            openai.BadRequestError,
            "prompt",
            "shorten the prompt",
        ),
        (
            lambda api, m: api.chat.completions.create(model=m, messages=PARIS, max_tokens=MAX_MODEL_LEN + 1),
            openai.BadRequestError,
            "max_tokens",
            "does not fit",
        ),
        (
            lambda api, m: api.chat.completions.create(
                model=m, messages=PARIS, tools=[{"type": "function", "function": {"name": "bad name"}}]
            ),
            openai.BadRequestError,
            "tools[0].function.name",
            "letters",
        ),
        (
            lambda api, m: api.chat.completions.create(
                model=m, messages=PARIS, tools=[WEATHER], tool_choice={"type": "function", "function": {"name": "x"}}
            ),
            openai.BadRequestError,
            "tool_choice.function.name",
            "get_weather",
        ),
        (
            lambda api, m: api.chat.completions.create(model=m, messages=PARIS, n="two"),  # type: ignore[arg-type]
            openai.BadRequestError,
            "n",
            "integer",
        ),
    ],
)
def test_errors_use_openai_format_and_the_server_keeps_serving(
    api: OpenAI, cluster: RunningCluster, call: ErrorCall, error: type[openai.APIStatusError], param: str, needle: str
) -> None:
    with pytest.raises(error) as info:
        call(api, cluster.model_id)
    body = info.value.body
    assert isinstance(body, dict)
    assert body["param"] == param
    assert needle in body["message"]
    assert body["type"] == "invalid_request_error"
    _paris(api, cluster.model_id)


def test_malformed_body_is_a_400(openai_base_url: str, api: OpenAI, cluster: RunningCluster) -> None:
    url = f"{openai_base_url}/chat/completions"
    response = httpx.post(url, content=b'{"model": ', headers={"content-type": "application/json"}, timeout=30)
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["error"]["message"]
    unknown = httpx.post(url, json={"messages": PARIS, "temprature": 0}, timeout=30)
    assert unknown.status_code == 400
    assert unknown.json()["error"]["param"] == "temprature"
    _paris(api, cluster.model_id)
