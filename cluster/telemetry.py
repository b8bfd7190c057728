"""OpenTelemetry setup shared by the gateway and the LLM servers.

The exporter comes from the YAML (``telemetry.exporter``). Trace context crosses
process boundaries as a W3C ``traceparent`` carrier dict, so one client request
is one trace from the gRPC edge down to the engine call.
"""

from __future__ import annotations

import threading

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

from .config import TelemetryConfig

_lock = threading.Lock()
_configured: TelemetryConfig | None = None


def _exporter(config: TelemetryConfig) -> SpanExporter | None:
    if config.exporter == "console":
        return ConsoleSpanExporter()
    if config.exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(endpoint=config.otlp_endpoint, insecure=config.otlp_endpoint.startswith("http://"))
    return None


def setup_tracing(config: TelemetryConfig, component: str) -> None:
    """Install the process-wide tracer provider once; later calls with the same config are no-ops."""
    global _configured
    with _lock:
        if _configured is not None:
            return
        provider = TracerProvider(
            resource=Resource.create({"service.name": config.service_name, "quorum.component": component})
        )
        exporter = _exporter(config)
        if exporter is not None:
            provider.add_span_processor(BatchSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        _configured = config


def inject_context() -> dict[str, str]:
    """The current trace context as a W3C carrier, to send along with a request."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


def extract_context(carrier: dict[str, str]) -> Context:
    return propagate.extract(carrier)


def tracer(name: str) -> trace.Tracer:
    return trace.get_tracer(name)
