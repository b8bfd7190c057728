"""The OpenAI HTTP app against a stand-in dispatcher: routing, auth, error bodies and SSE framing."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any, cast

import pytest
from fastapi.testclient import TestClient

from quorum.cluster.config import DEFAULT_CONFIG, load_config
from quorum.cluster.dispatch import ModelDispatcher
from quorum.cluster.errors import EngineUnavailable, ModelNotFound, Overloaded, QuorumError
from quorum.cluster.types import ChoiceDelta, FinishReason, GenerationChunk, GenerationRequest, ModelStatus, Usage
from quorum.services.openai_http import build_openai_app
from quorum.services.security import TokenFile

CONFIG = load_config(DEFAULT_CONFIG)
MODEL = CONFIG.models[0].id
CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}


class FakeDispatcher:
    """Answers every request with "Hello" in two chunks, or raises ``fail``."""

    def __init__(self) -> None:
        self.fail: BaseException | None = None
        self.requests: list[GenerationRequest] = []

    model_ids = [MODEL]
    default_model = MODEL
    constraints = CONFIG.constraints

    def resolve(self, requested: str) -> str:
        if requested not in ("", MODEL):
            raise ModelNotFound(f"model '{requested}' is not served here")
        return MODEL

    def config(self, model_id: str) -> Any:
        return CONFIG.models[0]

    def status(self, model_id: str) -> ModelStatus:
        return ModelStatus(ready=True, state="ready")

    async def stream(self, model_id: str, request: GenerationRequest) -> AsyncGenerator[GenerationChunk, None]:
        self.requests.append(request)
        if self.fail is not None:
            raise self.fail
        yield GenerationChunk((ChoiceDelta(0, "Hel"),))
        yield GenerationChunk((ChoiceDelta(0, "lo", FinishReason.STOP),), usage=Usage(5, 2, 3))


@pytest.fixture
def fake() -> FakeDispatcher:
    return FakeDispatcher()


@pytest.fixture
def http(fake: FakeDispatcher) -> TestClient:
    return TestClient(build_openai_app(cast(ModelDispatcher, fake), CONFIG.gateway, None))


def test_models_and_chat(http: TestClient, fake: FakeDispatcher) -> None:
    models = http.get("/v1/models").json()
    assert [m["id"] for m in models["data"]] == [MODEL]
    assert http.get(f"/v1/models/{MODEL}").json()["object"] == "model"
    assert http.get("/v1/models/nope").status_code == 404
    reply = http.post("/v1/chat/completions", json={**CHAT, "temperature": 0}).json()
    assert reply["choices"][0]["message"]["content"] == "Hello"
    assert reply["usage"]["prompt_tokens_details"]["cached_tokens"] == 3
    assert fake.requests[-1].sampling.temperature == 0
    text = http.post("/v1/completions", json={"model": MODEL, "prompt": "Say"}).json()
    assert text["choices"][0]["text"] == "Hello"


def test_stream_is_server_sent_events_ending_with_done(http: TestClient) -> None:
    body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    with http.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [line.removeprefix("data: ") for line in response.iter_lines() if line]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"]) == "Hello"
    assert chunks[-1]["usage"]["completion_tokens"] == 2


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (Overloaded("busy"), 429, "rate_limit_exceeded"),
        (EngineUnavailable("still loading"), 503, "model_not_ready"),
        (RuntimeError("bug"), 500, "internal_error"),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_cluster_errors_before_the_first_chunk_get_a_status(
    http: TestClient, fake: FakeDispatcher, error: Exception, status: int, code: str, stream: bool
) -> None:
    fake.fail = error
    response = http.post("/v1/chat/completions", json={**CHAT, "stream": stream})
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    if status != 500:
        assert response.headers["retry-after"] == "1"
    else:
        assert "internal error" in response.json()["error"]["message"]
        assert "bug" not in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({**CHAT, "temperature": -1}, "temperature"),
        ({**CHAT, "top_p": 1.5}, "top_p"),
        ({**CHAT, "messages": []}, "messages"),
        ({**CHAT, "n": "many"}, "n"),
        ({**CHAT, "tools": [{"type": "function", "function": {"name": "bad name"}}]}, "tools[0].function.name"),
    ],
)
def test_bad_fields_are_400_naming_the_param(http: TestClient, body: dict[str, Any], param: str) -> None:
    response = http.post("/v1/chat/completions", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param


def test_malformed_json_and_unknown_routes(http: TestClient) -> None:
    response = http.post("/v1/chat/completions", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    missing = http.get("/v1/nothing-here")
    assert missing.status_code == 404
    assert "error" in missing.json()
    assert http.post("/v1/chat/completions", json={**CHAT, "model": "nope"}).status_code == 404


def test_bearer_token_is_required_when_configured(fake: FakeDispatcher, tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("good-token\n")
    http = TestClient(build_openai_app(cast(ModelDispatcher, fake), CONFIG.gateway, TokenFile(str(tokens))))
    anonymous = http.get("/v1/models")
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "invalid_api_key"
    assert http.get("/v1/models", headers={"Authorization": "Bearer wrong"}).status_code == 401
    bad_body = http.post("/v1/chat/completions", content=b"{", headers={"content-type": "application/json"})
    assert bad_body.status_code == 401
    assert http.get("/v1/models", headers={"Authorization": "Bearer good-token"}).status_code == 200


def test_quorum_errors_are_never_500_with_a_traceback(http: TestClient, fake: FakeDispatcher) -> None:
    fake.fail = QuorumError("odd")
    response = http.post("/v1/completions", json={"prompt": "x"})
    assert response.status_code == 500
    assert response.json()["error"]["message"] == "odd"


@pytest.mark.parametrize(
    ("field", "value"),
    [("seed", 2**64), ("seed", -(2**63) - 1), ("top_k", 2**70), ("min_tokens", 2**64), ("max_tokens", 2**40)],
)
def test_integers_wider_than_the_engine_takes_are_a_400_naming_the_field(
    http: TestClient, fake: FakeDispatcher, field: str, value: int
) -> None:
    response = http.post("/v1/chat/completions", json={**CHAT, field: value})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == field
    assert fake.requests == []  # rejected before it reached a model


def test_the_widest_accepted_seed_reaches_the_model(http: TestClient, fake: FakeDispatcher) -> None:
    for seed in (2**63 - 1, -(2**63)):
        assert http.post("/v1/completions", json={"prompt": "x", "seed": seed}).status_code == 200
    assert [r.sampling.seed for r in fake.requests] == [2**63 - 1, -(2**63)]
