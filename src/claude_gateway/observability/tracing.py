"""OpenTelemetry tracing: optional, off unless ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set.

Install with ``pip install 'claude-gateway[otel]'``. Spans:

- ``HTTP``: one per request (the FastAPI instrumentation; named by route template);
- ``turn``: a turn from the moment a worker takes it to its end, a child of the
  request that sent the prompt (wherever that request waits);
- ``cli.spawn``: a CLI process starting, a child of the turn that needed it. The SDK
  passes the active trace context to the CLI it starts (``TRACEPARENT``), so a CLI with
  its own telemetry on parents its spans there; a process lives on across turns, so
  this is the context of the turn that started it;
- ``store.read`` / ``store.write``: each store transaction.

Everything else follows the standard ``OTEL_*`` variables (service name, headers,
sampler). Without the extra, or without an endpoint, every span is a no-op costing
nothing.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from typing import Any

logger = logging.getLogger("claude_gateway.tracing")


class Tracing:
    """Spans of one application, from its own tracer provider (None: off)."""

    def __init__(self, provider: Any = None) -> None:
        self.provider = provider
        self._tracer = provider.get_tracer("claude_gateway") if provider is not None else None

    @property
    def enabled(self) -> bool:
        return self._tracer is not None

    @classmethod
    def from_environment(cls) -> Tracing:
        """On when an OTLP endpoint is set and the ``otel`` extra is installed."""
        if not (os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
                or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")):
            return cls()
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
                OTLPSpanExporter,
            )
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor
        except ImportError:
            logger.warning("OTEL_EXPORTER_OTLP_ENDPOINT is set but tracing is not "
                           "installed: pip install 'claude-gateway[otel]'")
            return cls()
        resource = Resource.create({"service.name": os.environ.get(
            "OTEL_SERVICE_NAME", "claude-gateway")})
        provider = TracerProvider(resource=resource)
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        return cls(provider)

    def instrument(self, app: Any) -> None:
        """HTTP spans for every request of ``app``."""
        if self.provider is None:
            return
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        FastAPIInstrumentor.instrument_app(app, tracer_provider=self.provider,
                                           excluded_urls="health,metrics")

    def current(self) -> Any:
        """The active trace context (to parent work that runs elsewhere later)."""
        if self._tracer is None:
            return None
        from opentelemetry import context

        return context.get_current()

    @contextlib.contextmanager
    def span(self, name: str, attributes: dict[str, Any] | None = None,
             parent: Any = None) -> Iterator[Any]:
        if self._tracer is None:
            yield None
            return
        clean = {k: v for k, v in (attributes or {}).items() if v is not None}
        with self._tracer.start_as_current_span(name, context=parent,
                                                attributes=clean) as span:
            yield span

    def shutdown(self) -> None:
        if self.provider is not None:
            self.provider.shutdown()


NO_TRACING = Tracing()
