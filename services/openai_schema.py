"""Request bodies of the OpenAI-compatible HTTP API (pydantic).

Field names, types and defaults follow OpenAI's API reference. Unknown fields are rejected (as
OpenAI does), so a typo is a 400 naming the field rather than a silently ignored knob. Range checks
that the gRPC API shares (temperature, top_p, n, penalties, ...) happen later in
``quorum.cluster.validation``; these models only check shapes and types, and bound every integer to
the width of the matching gRPC field (a larger one cannot reach the engine: vLLM's messaging between
its front end and the engine core carries at most 64-bit integers).

``str | list`` fields are normalized by before-validators instead of unions, so a validation
error's location is the plain field path (``messages[0].content``), never a union member's tag.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field


def _one_or_many(value: Any) -> Any:
    """``"x"`` -> ``["x"]``; anything else is left for the list validator."""
    return [value] if isinstance(value, str) else value


def _text_content(value: Any) -> Any:
    """A message's content: a string, or a list of text parts (joined with newlines)."""
    if not isinstance(value, list):
        return value
    texts = []
    for i, part in enumerate(value):
        if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
            kind = part.get("type") if isinstance(part, dict) else type(part).__name__
            raise ValueError(f"part {i}: only text parts ({{'type': 'text', 'text': ...}}) are supported, got {kind!r}")
        texts.append(part["text"])
    return "\n".join(texts)


def _tool_choice(value: Any) -> Any:
    """``"auto" | "none" | "required"`` or ``{"type": "function", "function": {"name": ...}}``."""
    if isinstance(value, str):
        if value not in ("auto", "none", "required"):
            raise ValueError(f"must be 'auto', 'none', 'required' or a function object, got {value!r}")
        return {"mode": value}
    if isinstance(value, dict):
        if "function" not in value or "mode" in value:
            raise ValueError('an object must be {"type": "function", "function": {"name": <tool name>}}')
        return {"mode": "required", **value}
    return value


INT32_MAX = 2**31 - 1
UINT32_MAX = 2**32 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FunctionCall(_Body):
    name: str
    arguments: str = Field(description="The call's arguments as a JSON object text.")


class ToolCallParam(_Body):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatMessageParam(_Body):
    """One message of any role; which fields a role may use is checked in the conversion."""

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: Annotated[str, BeforeValidator(_text_content)] | None = None
    name: str | None = None
    tool_calls: list[ToolCallParam] | None = None
    tool_call_id: str | None = None
    refusal: str | None = None


class FunctionDefinition(_Body):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = Field(None, description="JSON Schema of the arguments (an object).")
    strict: bool | None = None


class ToolParam(_Body):
    type: Literal["function"]
    function: FunctionDefinition


class FunctionName(_Body):
    name: str


class ToolChoiceParam(_Body):
    """Normalized form of ``tool_choice`` (see :func:`_tool_choice`)."""

    mode: Literal["auto", "none", "required"]
    type: Literal["function"] = "function"
    function: FunctionName | None = None


class JsonSchemaFormat(_Body):
    name: str
    description: str | None = None
    schema_: dict[str, Any] | None = Field(None, alias="schema")
    strict: bool | None = None


class ResponseFormat(_Body):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None


class StreamOptions(_Body):
    include_usage: bool | None = None
    include_obfuscation: bool | None = None  # accepted, ignored: no obfuscation padding is sent


class SamplingBody(_Body):
    model: str = Field("", description="Served model id; empty uses the cluster's default model.")
    max_tokens: int | None = Field(None, ge=1, le=UINT32_MAX)
    temperature: float | None = None
    top_p: float | None = None
    n: int | None = Field(None, le=UINT32_MAX)
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    stop: Annotated[list[str], BeforeValidator(_one_or_many)] | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    seed: int | None = Field(None, ge=INT64_MIN, le=INT64_MAX)
    logit_bias: dict[str, float] | None = None
    user: str | None = None
    # Extensions (as in vLLM's OpenAI server): the gRPC API's other sampling knobs.
    top_k: int | None = Field(None, ge=-INT32_MAX - 1, le=INT32_MAX)
    min_tokens: int | None = Field(None, ge=0, le=UINT32_MAX)
    repetition_penalty: float | None = None


class CompletionRequest(SamplingBody):
    """POST /v1/completions."""

    prompt: Annotated[list[str], BeforeValidator(_one_or_many)]
    logprobs: int | None = Field(None, ge=0, le=UINT32_MAX)
    echo: bool | None = False
    suffix: str | None = None
    best_of: int | None = Field(None, ge=0, le=UINT32_MAX)


class ChatCompletionRequest(SamplingBody):
    """POST /v1/chat/completions."""

    messages: list[ChatMessageParam]
    max_completion_tokens: int | None = Field(None, ge=1, le=UINT32_MAX)
    logprobs: bool | None = False
    top_logprobs: int | None = Field(None, ge=0, le=UINT32_MAX)
    response_format: ResponseFormat | None = None
    tools: list[ToolParam] | None = None
    tool_choice: Annotated[ToolChoiceParam, BeforeValidator(_tool_choice)] | None = None
    parallel_tool_calls: bool | None = None  # accepted; each turn makes at most one call
    store: bool | None = None
    metadata: dict[str, str] | None = None
    service_tier: str | None = None
