"""The InferenceService servicer: proto in, dispatcher calls, proto out.

Every RPC runs inside :meth:`InferenceServicer._errors`, which turns domain
errors into their gRPC status, so a bad request is answered precisely and the
server keeps serving.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from quorum.cluster.config import GatewayConfig
from quorum.cluster.dispatch import ModelDispatcher
from quorum.cluster.types import (
    DEFAULT_TOOL_CHOICE,
    GenerationChunk,
    GenerationRequest,
    Message,
    ToolChoice,
    ToolSpec,
)
from quorum.v1 import inference_pb2 as pb
from quorum.v1 import inference_pb2_grpc

from .convert import (
    choice_to_proto,
    merge_chunks,
    messages_from_proto,
    sampling_from_proto,
    tools_from_proto,
    usage_to_proto,
)
from .generation import build_request, tokenize_request
from .status import Context, errors_as_status

logger = logging.getLogger(__name__)


class InferenceServicer(inference_pb2_grpc.InferenceServiceServicer):
    def __init__(self, dispatcher: ModelDispatcher, gateway: GatewayConfig) -> None:
        self._dispatcher = dispatcher
        self._gateway = gateway

    def _request(
        self,
        model: str,
        sampling: pb.SamplingParams,
        prompt: str | None,
        messages: tuple[Message, ...] | None,
        stream: bool,
        tools: tuple[tuple[ToolSpec, ...], ToolChoice] = ((), DEFAULT_TOOL_CHOICE),
    ) -> tuple[str, GenerationRequest]:
        return build_request(
            self._dispatcher,
            self._gateway,
            model,
            sampling_from_proto(sampling),
            prompt=prompt,
            messages=messages,
            stream=stream,
            tools=tools[0],
            tool_choice=tools[1],
        )

    async def _unary(self, model_id: str, request: GenerationRequest) -> tuple[list[pb.Choice], pb.Usage]:
        chunks = [chunk async for chunk in self._dispatcher.stream(model_id, request)]
        return merge_chunks(chunks)

    async def _streamed(
        self, model_id: str, request: GenerationRequest
    ) -> AsyncIterator[tuple[GenerationChunk, list[pb.Choice]]]:
        async for chunk in self._dispatcher.stream(model_id, request):
            yield chunk, [choice_to_proto(c) for c in chunk.choices]

    async def Generate(self, request: pb.GenerateRequest, context: Context) -> pb.GenerateResponse:
        async with errors_as_status(context):
            model_id, internal = self._request(request.model, request.sampling, request.prompt, None, stream=False)
            choices, usage = await self._unary(model_id, internal)
            return pb.GenerateResponse(request_id=internal.request_id, model=model_id, choices=choices, usage=usage)

    async def Chat(self, request: pb.ChatRequest, context: Context) -> pb.ChatResponse:
        async with errors_as_status(context):
            messages = messages_from_proto(request.messages)
            tools = tools_from_proto(request.tools, request.tool_choice)
            model_id, internal = self._request(request.model, request.sampling, None, messages, False, tools)
            choices, usage = await self._unary(model_id, internal)
            return pb.ChatResponse(request_id=internal.request_id, model=model_id, choices=choices, usage=usage)

    async def GenerateStream(
        self, request: pb.GenerateStreamRequest, context: Context
    ) -> AsyncIterator[pb.GenerateStreamResponse]:
        async with errors_as_status(context):
            model_id, internal = self._request(request.model, request.sampling, request.prompt, None, stream=True)
            async for chunk, choices in self._streamed(model_id, internal):
                usage = usage_to_proto(chunk.usage) if chunk.usage is not None else None
                yield pb.GenerateStreamResponse(
                    request_id=internal.request_id, model=model_id, choices=choices, usage=usage
                )

    async def ChatStream(self, request: pb.ChatStreamRequest, context: Context) -> AsyncIterator[pb.ChatStreamResponse]:
        async with errors_as_status(context):
            messages = messages_from_proto(request.messages)
            tools = tools_from_proto(request.tools, request.tool_choice)
            model_id, internal = self._request(request.model, request.sampling, None, messages, True, tools)
            async for chunk, choices in self._streamed(model_id, internal):
                usage = usage_to_proto(chunk.usage) if chunk.usage is not None else None
                yield pb.ChatStreamResponse(
                    request_id=internal.request_id, model=model_id, choices=choices, usage=usage
                )

    async def ListModels(self, request: pb.ListModelsRequest, context: Context) -> pb.ListModelsResponse:
        async with errors_as_status(context):
            models = []
            for model_id in self._dispatcher.model_ids:
                config = self._dispatcher.config(model_id)
                models.append(
                    pb.ModelInfo(
                        id=model_id,
                        is_default=model_id == self._dispatcher.default_model,
                        ready=self._dispatcher.status(model_id).ready,
                        max_model_len=config.engine.max_model_len,
                        quantization=config.engine.quantization or "",
                        tensor_parallel_size=config.engine.tensor_parallel_size,
                        replicas=config.deployment.num_replicas,
                        source=config.source,
                    )
                )
            return pb.ListModelsResponse(models=models)

    async def Tokenize(self, request: pb.TokenizeRequest, context: Context) -> pb.TokenizeResponse:
        async with errors_as_status(context):
            messages = messages_from_proto(request.messages) if request.messages else None
            model_id = tokenize_request(self._dispatcher, self._gateway, request.model, request.prompt, messages)
            token_ids = await self._dispatcher.tokenize(model_id, request.prompt or None, messages)
            return pb.TokenizeResponse(
                model=model_id,
                token_ids=token_ids,
                max_model_len=self._dispatcher.config(model_id).engine.max_model_len,
            )
