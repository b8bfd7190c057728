"""The reasoning deployment: runs ``quorum.reasoning`` strategies next to the engines.

It reaches the model deployments through Serve handles (``DispatcherLLMClient``),
so a self-consistency group is one engine request and early stopping aborts it
inside the engine. The gateway streams its events out as ``ReasonResponse``s.
It also owns the document store behind Ingest/Search and RAG runs.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

from ray.serve.handle import DeploymentHandle

from quorum.cluster.config import QuorumConfig
from quorum.cluster.dispatch import ModelDispatcher
from quorum.cluster.telemetry import extract_context, setup_tracing
from quorum.reasoning import Event, ReasonRequest, default_registry, metrics, run_reasoning
from quorum.reasoning.rag import CollectionInfo, Document, Hit, IngestResult
from quorum.reasoning.rag.embedder import import_embedding_library
from quorum.reasoning.retrieval import RetrieveTool
from quorum.reasoning.tools import Tool

from .documents import Documents, document_store
from .llm_client import DispatcherLLMClient
from .reasoning_metrics import SINK


class ReasoningServer:
    """Serve deployment class (undecorated; see ``services.app``)."""

    def __init__(self, config: QuorumConfig, handles: dict[str, DeploymentHandle]) -> None:
        # Import the embedding library now, on this one thread: imported lazily, it raced the router's
        # tokenizer thread over transformers/accelerate and left a partially initialized module behind.
        import_embedding_library()
        setup_tracing(config.telemetry, component="reasoning")
        metrics.add_sink(SINK)  # the reasoning counters reach Prometheus through Ray's metrics agent
        self._dispatcher = ModelDispatcher(config, handles)
        self._client = DispatcherLLMClient(self._dispatcher)
        self._registry = default_registry(timeout_s=config.reasoning.tool_timeout_s)
        self._documents = Documents(document_store(config.rag))

    async def reason(self, request: ReasonRequest, trace_context: dict[str, str]) -> AsyncGenerator[Event, None]:
        """The run's events for a request that passed the gateway's Reason gate (see
        ``services.reasoning_service.reason_request``); a retrieval problem is raised before the first event."""
        parent = extract_context(trace_context)
        events = run_reasoning(request, self._client, self._registry, trace_parent=parent, retriever=self._documents)
        async for event in events:
            yield event

    async def ingest(self, collection: str, documents: list[Document]) -> IngestResult:
        return await self._documents.ingest(collection, documents)

    async def search(self, collection: str, query: str, top_k: int | None) -> list[Hit]:
        return await self._documents.search(collection, query, top_k)

    async def delete_documents(self, collection: str, ids: list[str]) -> int:
        return await self._documents.delete_documents(collection, ids)

    async def delete_collection(self, collection: str) -> int:
        return await self._documents.delete_collection(collection)

    async def list_collections(self) -> list[CollectionInfo]:
        return await self._documents.list_collections()

    async def tools(self) -> list[tuple[str, str, dict[str, object]]]:
        """(name, description, JSON schema of the arguments) of every server tool."""
        described: list[tuple[str, str, dict[str, object]]] = []
        for name in self._registry.names():
            tool: Tool = self._registry.get(name)
            described.append((tool.name, tool.description, dict(tool.parameters)))
        retrieve = RetrieveTool
        described.append(
            (retrieve.name, retrieve.description + " Needs the request's collection.", dict(retrieve.parameters))
        )
        return described
