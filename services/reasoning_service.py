"""The ReasoningService servicer: ReasonRequest in, the reasoning deployment's events out."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any, TypeVar

from opentelemetry import trace
from ray.serve.handle import DeploymentHandle

from quorum.cluster.config import ConstraintsConfig, ReasoningConfig
from quorum.cluster.constraints import check_choice, check_json_schema, check_json_value
from quorum.cluster.dispatch import ModelDispatcher, domain_error, unwrap
from quorum.cluster.errors import InvalidArgument
from quorum.cluster.telemetry import inject_context
from quorum.reasoning import (
    AnswerFormat,
    Budget,
    EarlyStopping,
    Event,
    FinalEvent,
    ReasoningError,
    ReasoningInputError,
    ReasoningLimits,
    ReasonRequest,
    RetrievalEvent,
    SampleEvent,
    SamplingOverrides,
    StepEvent,
    StopRule,
    Strategy,
    ToolCallEvent,
    ToolResultEvent,
    VoteEvent,
    default_registry,
    validate,
)
from quorum.reasoning.llm import ChatTurn
from quorum.reasoning.rag import Document
from quorum.reasoning.retrieval import RETRIEVE_TOOL
from quorum.reasoning.tools import ClientTool, ToolStep
from quorum.reasoning.tools.client import step_result
from quorum.v1 import inference_pb2 as ipb
from quorum.v1 import reasoning_pb2 as rpb
from quorum.v1 import reasoning_pb2_grpc

from .status import Context, errors_as_status

_STRATEGIES: dict[int, Strategy] = {
    rpb.STRATEGY_UNSPECIFIED: Strategy.CHAIN_OF_THOUGHT,
    rpb.STRATEGY_DIRECT: Strategy.DIRECT,
    rpb.STRATEGY_CHAIN_OF_THOUGHT: Strategy.CHAIN_OF_THOUGHT,
    rpb.STRATEGY_SELF_CONSISTENCY: Strategy.SELF_CONSISTENCY,
    rpb.STRATEGY_REACT: Strategy.REACT,
    rpb.STRATEGY_RAG: Strategy.RAG,
}
_RULES: dict[int, StopRule] = {
    rpb.EARLY_STOP_RULE_UNSPECIFIED: StopRule.BETA,
    rpb.EARLY_STOP_RULE_NONE: StopRule.NONE,
    rpb.EARLY_STOP_RULE_BETA: StopRule.BETA,
    rpb.EARLY_STOP_RULE_WINDOW: StopRule.ESC,
}
_FORMATS: dict[int, AnswerFormat] = {
    rpb.ANSWER_FORMAT_UNSPECIFIED: AnswerFormat.NUMBER,
    rpb.ANSWER_FORMAT_NUMBER: AnswerFormat.NUMBER,
    rpb.ANSWER_FORMAT_CHOICE: AnswerFormat.CHOICE,
    rpb.ANSWER_FORMAT_TEXT: AnswerFormat.FREE_TEXT,
}
_STOP_REASONS = {name.removeprefix("STOP_REASON_").lower(): value for name, value in rpb.StopReason.items()}
_DEFAULTS = ReasonRequest(question="")
DEFAULT_CONSTRAINTS = ConstraintsConfig()
T = TypeVar("T")
R = TypeVar("R")


def _lookup(table: Mapping[int, T], value: int, field: str) -> T:
    if value not in table:
        raise ReasoningInputError(field, f"unknown value {value}; see quorum/v1/reasoning.proto for the values")
    return table[value]


def request_from_proto(
    message: rpb.ReasonRequest, config: ReasoningConfig, limits: ConstraintsConfig = DEFAULT_CONSTRAINTS
) -> ReasonRequest:
    """The plain request, with 0/unset fields replaced by the documented defaults; the parts that become
    grammars (client tool schemas, step arguments, choice labels) are held to the grammar bounds ``limits``."""
    strategy = _lookup(_STRATEGIES, message.strategy, "strategy")
    early = message.early_stopping
    rule = _lookup(_RULES, early.rule, "early_stopping.rule")
    defaults, budget_defaults = _DEFAULTS.early_stopping, _DEFAULTS.budget
    samples = message.samples or (config.default_samples if strategy is Strategy.SELF_CONSISTENCY else 1)
    sampling = message.sampling
    return ReasonRequest(
        question=message.question,
        model=message.model,
        strategy=strategy,
        messages=tuple(ChatTurn(role=m.role, content=m.content) for m in message.messages),
        samples=samples,
        tools=tuple(message.tools),
        max_steps=message.max_steps or _DEFAULTS.max_steps,
        budget=Budget(
            max_tokens=message.budget.max_tokens or budget_defaults.max_tokens,
            max_seconds=message.budget.max_seconds or budget_defaults.max_seconds,
            max_tool_calls=message.budget.max_tool_calls or budget_defaults.max_tool_calls,
        ),
        early_stopping=EarlyStopping(
            rule=rule if strategy is Strategy.SELF_CONSISTENCY else StopRule.NONE,
            threshold=early.threshold or defaults.threshold,
            window=early.window or defaults.window,
            min_samples=early.min_samples or defaults.min_samples,
        ),
        sampling=SamplingOverrides(
            temperature=sampling.temperature if sampling.HasField("temperature") else None,
            top_p=sampling.top_p if sampling.HasField("top_p") else None,
            max_tokens=sampling.max_tokens or None,
            seed=sampling.seed if sampling.HasField("seed") else None,
        ),
        answer_format=(
            AnswerFormat.FREE_TEXT
            if strategy is Strategy.RAG and message.answer_format == rpb.ANSWER_FORMAT_UNSPECIFIED
            else _lookup(_FORMATS, message.answer_format, "answer_format")
        ),
        choices=_choices(message.choices, limits),
        collection=message.collection,
        top_k=message.top_k,
        grounded=not message.free_arithmetic,
        client_tools=client_tools_from_proto(message.client_tools, limits),
        steps=steps_from_proto(message.steps, (*message.tools, *(tool.name for tool in message.client_tools)), limits),
    )


def reasoning_limits(config: ReasoningConfig) -> ReasoningLimits:
    return ReasoningLimits(
        max_samples=config.max_samples,
        max_seconds=config.max_seconds,
        max_tokens=config.max_tokens,
        max_input_chars=config.max_input_chars,
    )


def reason_request(message: rpb.ReasonRequest, dispatcher: ModelDispatcher, config: ReasoningConfig) -> ReasonRequest:
    """The Reason gate: the one place a Reason call is checked. Returns the request the reasoning deployment
    runs without checking it again (its ``model`` the served model's id), or raises the domain error of the
    first bad field: the model first, then the wire form (:func:`request_from_proto`), then
    :func:`quorum.reasoning.validate` against the server's caps and tools."""
    model_id = dispatcher.resolve(message.model)
    plain = replace(request_from_proto(message, config, dispatcher.constraints), model=model_id)
    return validate(plain, reasoning_limits(config), (*default_registry().names(), RETRIEVE_TOOL))


def _bounded(check: Callable[..., T], field: str, value: Any, limits: ConstraintsConfig) -> T:
    """``check(field, value, limits)`` (a grammar bound of cluster.constraints), its error as a reasoning one."""
    try:
        return check(field, value, limits)
    except InvalidArgument as error:
        raise ReasoningInputError(error.field, error.problem) from None


def _choices(labels: Sequence[str], limits: ConstraintsConfig) -> tuple[str, ...]:
    """The answer's choice labels (they become a grammar's enum): within the choice bounds."""
    _bounded(check_choice, "choices", list(labels), limits)
    return tuple(labels) or _DEFAULTS.choices


def client_tools_from_proto(
    tools: Sequence[ipb.ToolDefinition], limits: ConstraintsConfig = DEFAULT_CONSTRAINTS
) -> tuple[ClientTool, ...]:
    """The declared client tools; a schema that is not JSON, or breaks a grammar bound, is INVALID_ARGUMENT
    naming it."""
    declared = []
    for position, tool in enumerate(tools):
        parameters: Any = {"type": "object", "properties": {}}
        if tool.parameters_json_schema:
            field = f"client_tools[{position}].parameters_json_schema"
            parameters = _bounded(check_json_schema, field, tool.parameters_json_schema, limits)
        declared.append(ClientTool(tool.name, tool.description, parameters))
    return tuple(declared)


def steps_from_proto(
    messages: Sequence[ipb.ChatMessage], offered: Sequence[str], limits: ConstraintsConfig = DEFAULT_CONSTRAINTS
) -> tuple[ToolStep, ...]:
    """The tool steps of a continued run: pairs of an "assistant" message with one tool call and the
    "tool" message answering it (as :func:`steps_to_proto` writes them, plus the client's result)."""
    steps: list[ToolStep] = []
    call: tuple[int, ipb.ChatMessage, dict[str, Any]] | None = None  # the call awaiting its result
    for position, message in enumerate(messages):
        field = f"steps[{position}]"
        if call is None:
            call = (position, message, _step_call(field, message, offered, limits))
            continue
        _, asked, arguments = call
        request = asked.tool_calls[0]
        if message.role != "tool":
            raise ReasoningInputError(
                f"{field}.role", f'expected the "tool" message answering call {request.id!r}, got {message.role!r}'
            )
        if message.tool_call_id != request.id:
            raise ReasoningInputError(
                f"{field}.tool_call_id",
                f"must be {request.id!r}, the id of the call before it, got {message.tool_call_id!r}",
            )
        output, error = step_result(message.content)
        steps.append(ToolStep(request.id, request.name, arguments, asked.content, output, error))
        call = None
    if call is not None:
        position, asked, _ = call
        call_id = asked.tool_calls[0].id
        raise ReasoningInputError(
            f"steps[{position}]",
            f'the call {call_id!r} has no result: append a "tool" message with tool_call_id {call_id!r} '
            "and the tool's output as content",
        )
    return tuple(steps)


def _step_call(
    field: str, message: ipb.ChatMessage, offered: Sequence[str], limits: ConstraintsConfig
) -> dict[str, Any]:
    """The arguments of the one tool call an "assistant" step message carries; raises naming the field."""
    if message.role != "assistant" or len(message.tool_calls) != 1:
        raise ReasoningInputError(
            field, 'expected an "assistant" message with exactly one tool call, as final.steps has them'
        )
    call = message.tool_calls[0]
    if not call.id:
        raise ReasoningInputError(f"{field}.tool_calls[0].id", "must not be empty")
    if call.name not in offered:
        raise ReasoningInputError(
            f"{field}.tool_calls[0].name",
            f"'{call.name}' is not among the request's tools ({', '.join(offered) or 'none'})",
        )
    arguments = _bounded(check_json_value, f"{field}.tool_calls[0].arguments_json", call.arguments_json or "{}", limits)
    if not isinstance(arguments, dict):
        raise ReasoningInputError(f"{field}.tool_calls[0].arguments_json", "must be a JSON object")
    return arguments


def steps_to_proto(steps: Sequence[ToolStep]) -> list[ipb.ChatMessage]:
    """A run's steps as chat messages: the call (thought as content), then its result unless pending."""
    messages = []
    for step in steps:
        call = ipb.ToolCallRequest(id=step.call_id, name=step.tool, arguments_json=step.arguments_json)
        messages.append(ipb.ChatMessage(role="assistant", content=step.thought, tool_calls=[call]))
        if not step.pending:
            messages.append(ipb.ChatMessage(role="tool", content=step.result_text, tool_call_id=step.call_id))
    return messages


def event_to_proto(run_id: str, event: Event) -> rpb.ReasonResponse:
    response = rpb.ReasonResponse(run_id=run_id)
    if isinstance(event, StepEvent):
        response.thought.CopyFrom(rpb.Thought(step=event.step, text=event.text))
    elif isinstance(event, SampleEvent):
        response.sample.CopyFrom(rpb.Sample(index=event.index, text=event.text, answer=event.answer or ""))
    elif isinstance(event, VoteEvent):
        counts = [rpb.VoteCount(answer=c.answer, count=c.count) for c in event.counts]
        response.vote.CopyFrom(rpb.Vote(counts=counts, unanswered=event.unanswered))
    elif isinstance(event, ToolCallEvent):
        response.tool_call.CopyFrom(
            rpb.ToolCall(step=event.step, name=event.name, arguments_json=event.arguments, id=event.call_id)
        )
    elif isinstance(event, ToolResultEvent):
        response.tool_result.CopyFrom(
            rpb.ToolResult(
                step=event.step,
                name=event.name,
                output=event.output,
                error=event.error,
                seconds=event.seconds,
                tool_call_id=event.call_id,
            )
        )
    elif isinstance(event, RetrievalEvent):
        chunks = [rpb.RetrievedChunk(document_id=p.doc_id, text=p.text, score=p.score) for p in event.passages]
        response.retrieval.CopyFrom(rpb.Retrieval(query=event.query, chunks=chunks))
    else:
        response.final.CopyFrom(_final(event))
    return response


def _final(event: FinalEvent) -> rpb.Final:
    usage = rpb.TokenUsage(
        prompt_tokens=event.usage.prompt_tokens,
        completion_tokens=event.usage.completion_tokens,
        cached_prompt_tokens=event.usage.cached_prompt_tokens,
        computed_prompt_tokens=event.usage.computed_prompt_tokens,
    )
    return rpb.Final(
        answer=event.answer or "",
        confidence=event.confidence,
        samples_used=event.samples_used,
        citations=list(event.citations),
        usage=usage,
        stop_reason=_STOP_REASONS.get(event.stop_reason.value, rpb.STOP_REASON_UNSPECIFIED),  # type: ignore[arg-type]
        seconds=event.seconds,
        detail=event.detail,
        steps=steps_to_proto(event.steps),
    )


def _user_error(exc: Exception, model_id: str) -> Exception | None:
    """The user-actionable error behind a failed call of the reasoning deployment, or None for a bug."""
    cause = unwrap(exc)
    if isinstance(cause, ReasoningError):
        return cause
    return domain_error(exc, model_id)


class ReasoningServicer(reasoning_pb2_grpc.ReasoningServiceServicer):
    def __init__(self, reasoning: DeploymentHandle, dispatcher: ModelDispatcher, config: ReasoningConfig) -> None:
        self._reasoning = reasoning
        self._dispatcher = dispatcher
        self._config = config

    async def Reason(self, request: rpb.ReasonRequest, context: Context) -> AsyncIterator[rpb.ReasonResponse]:
        async with errors_as_status(context):
            plain = reason_request(request, self._dispatcher, self._config)
            run_id = uuid.uuid4().hex
            span = trace.get_current_span()
            span.set_attribute("quorum.run_id", run_id)
            span.set_attribute("quorum.strategy", plain.strategy.value)
            response = self._reasoning.options(stream=True).reason.remote(plain, inject_context())
            finished = False
            try:
                async for event in response:
                    yield event_to_proto(run_id, event)
                finished = True
            except Exception as exc:
                finished = True  # the call failed: nothing to cancel (cancel() would re-raise)
                error = _user_error(exc, plain.model)
                if error is None:
                    raise
                raise error from None
            finally:
                if not finished:
                    response.cancel()

    async def ListTools(self, request: rpb.ListToolsRequest, context: Context) -> rpb.ListToolsResponse:
        async with errors_as_status(context):
            described = await self._remote(self._reasoning.tools.remote())
            return rpb.ListToolsResponse(
                tools=[
                    rpb.ToolInfo(name=name, description=description, parameters_json_schema=json.dumps(schema))
                    for name, description, schema in described
                ]
            )

    async def _remote(self, call: Awaitable[R]) -> R:
        """Await a call of the reasoning deployment, re-raising its user errors as themselves."""
        try:
            return await call
        except Exception as exc:
            error = _user_error(exc, "")
            if error is None:
                raise
            raise error from None

    async def Ingest(self, request: rpb.IngestRequest, context: Context) -> rpb.IngestResponse:
        async with errors_as_status(context):
            documents = [Document(id=d.id, text=d.text, metadata=dict(d.metadata)) for d in request.documents]
            result = await self._remote(self._reasoning.ingest.remote(request.collection, documents))
            trace.get_current_span().set_attribute("quorum.collection", request.collection)
            return rpb.IngestResponse(
                collection=request.collection,
                documents=result.documents,
                chunks=result.chunks,
                replaced=result.replaced,
            )

    async def Search(self, request: rpb.SearchRequest, context: Context) -> rpb.SearchResponse:
        async with errors_as_status(context):
            hits = await self._remote(
                self._reasoning.search.remote(request.collection, request.query, request.top_k or None)
            )
            return rpb.SearchResponse(
                chunks=[
                    rpb.RetrievedChunk(
                        document_id=hit.document_id,
                        text=hit.text,
                        score=hit.score,
                        chunk_index=hit.chunk_index,
                        metadata=hit.metadata,
                    )
                    for hit in hits
                ]
            )

    async def DeleteDocuments(
        self, request: rpb.DeleteDocumentsRequest, context: Context
    ) -> rpb.DeleteDocumentsResponse:
        async with errors_as_status(context):
            deleted = await self._remote(
                self._reasoning.delete_documents.remote(request.collection, list(request.document_ids))
            )
            return rpb.DeleteDocumentsResponse(deleted=deleted)

    async def DeleteCollection(
        self, request: rpb.DeleteCollectionRequest, context: Context
    ) -> rpb.DeleteCollectionResponse:
        async with errors_as_status(context):
            documents = await self._remote(self._reasoning.delete_collection.remote(request.collection))
            return rpb.DeleteCollectionResponse(documents=documents)

    async def ListCollections(
        self, request: rpb.ListCollectionsRequest, context: Context
    ) -> rpb.ListCollectionsResponse:
        async with errors_as_status(context):
            infos = await self._remote(self._reasoning.list_collections.remote())
            return rpb.ListCollectionsResponse(
                collections=[
                    rpb.CollectionInfo(name=info.name, documents=info.documents, chunks=info.chunks) for info in infos
                ]
            )
