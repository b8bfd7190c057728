"""The reasoning deployment: runs ``quorum.reasoning`` strategies next to the engines.

It reaches the model deployments through Serve handles (``DispatcherLLMClient``),
so a self-consistency group is one engine request and early stopping aborts it
inside the engine. The gateway streams its events out as ``ReasonResponse``s.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

from ray.serve.handle import DeploymentHandle

from quorum.cluster.config import QuorumConfig
from quorum.cluster.dispatch import ModelDispatcher
from quorum.cluster.telemetry import extract_context, setup_tracing
from quorum.reasoning import Event, ReasoningLimits, ReasonRequest, default_registry, run_reasoning
from quorum.reasoning.tools import Tool

from .llm_client import DispatcherLLMClient


def limits(config: QuorumConfig) -> ReasoningLimits:
    reasoning = config.reasoning
    return ReasoningLimits(
        max_samples=reasoning.max_samples, max_seconds=reasoning.max_seconds, max_tokens=reasoning.max_tokens
    )


class ReasoningServer:
    """Serve deployment class (undecorated; see ``services.app``)."""

    def __init__(self, config: QuorumConfig, handles: dict[str, DeploymentHandle]) -> None:
        setup_tracing(config.telemetry, component="reasoning")
        self._dispatcher = ModelDispatcher(config, handles)
        self._client = DispatcherLLMClient(self._dispatcher)
        self._registry = default_registry(timeout_s=config.reasoning.tool_timeout_s)
        self._limits = limits(config)

    async def reason(self, request: ReasonRequest, trace_context: dict[str, str]) -> AsyncGenerator[Event, None]:
        """The run's events; errors in the request are raised before the first event."""
        parent = extract_context(trace_context)
        async for event in run_reasoning(request, self._client, self._registry, self._limits, trace_parent=parent):
            yield event

    async def tools(self) -> list[tuple[str, str, dict[str, object]]]:
        """(name, description, JSON schema of the arguments) of every server tool."""
        described: list[tuple[str, str, dict[str, object]]] = []
        for name in self._registry.names():
            tool: Tool = self._registry.get(name)
            described.append((tool.name, tool.description, dict(tool.parameters)))
        return described
