"""OpenTelemetry set-up and W3C trace-context propagation across Kafka.

Every process calls :func:`setup_tracing` once. Spans go to the OTLP endpoint in the settings
``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` when set (and the exporter
package is installed), otherwise to a JSON-lines file under ``var/traces/`` (``TWIN_TRACE_FILE``),
which tests read back.

Context crosses Kafka twice over: in message headers (``traceparent``), for any consumer, and in
each record's ``traceContext`` map, which survives re-serialisation by agents.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Mapping, Sequence

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter, SpanExportResult

if TYPE_CHECKING:
    from infra.settings import Settings

__all__ = [
    "setup_tracing",
    "otlp_traces_endpoint",
    "tracer",
    "inject",
    "extract",
    "headers_from_context",
    "context_from_headers",
    "current_trace_id",
    "JsonFileSpanExporter",
]

_configured = False
_lock = threading.Lock()


class JsonFileSpanExporter(SpanExporter):
    """Append finished spans as JSON lines (one file shared by every process, O_APPEND)."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = []
        for s in spans:
            ctx = s.get_span_context()
            lines.append(json.dumps({
                "name": s.name,
                "trace_id": format(ctx.trace_id, "032x"),
                "span_id": format(ctx.span_id, "016x"),
                "parent_id": format(s.parent.span_id, "016x") if s.parent else None,
                "service": s.resource.attributes.get("service.name"),
                "start_ns": s.start_time,
                "end_ns": s.end_time,
                "attributes": {k: v if isinstance(v, (str, int, float, bool)) else str(v)
                               for k, v in (s.attributes or {}).items()},
            }))
        with open(self.path, "a") as fh:
            fh.write("\n".join(lines) + "\n")
        return SpanExportResult.SUCCESS


def setup_tracing(service_name: str, cfg: "Settings | None" = None) -> None:
    """Install the tracer provider once per process (``cfg``: the process's settings by default)."""
    global _configured
    with _lock:
        if _configured:
            return
        if cfg is None:
            from infra.settings import settings as cfg
        provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
        endpoint = otlp_traces_endpoint(cfg)
        if endpoint:
            try:
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            except ImportError as exc:  # pragma: no cover - optional dependency
                raise RuntimeError(
                    "OTEL_EXPORTER_OTLP_ENDPOINT is set but opentelemetry-exporter-otlp-proto-http is not installed"
                ) from exc
            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
        else:
            path = cfg.TWIN_TRACE_FILE or cfg.TWIN_VAR_DIR / "traces" / "spans.jsonl"
            # Simple (synchronous) processor: a span is on disk when it ends, so tests can read it.
            provider.add_span_processor(SimpleSpanProcessor(JsonFileSpanExporter(Path(path))))
        trace.set_tracer_provider(provider)
        _configured = True


def otlp_traces_endpoint(cfg: "Settings") -> str:
    """Where OTLP/HTTP spans go, as the SDK would derive it: the traces endpoint as given, else
    ``<OTEL_EXPORTER_OTLP_ENDPOINT>/v1/traces``; empty when neither is set (spans go to a file)."""
    if cfg.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT:
        return cfg.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT
    if cfg.OTEL_EXPORTER_OTLP_ENDPOINT:
        return cfg.OTEL_EXPORTER_OTLP_ENDPOINT.rstrip("/") + "/v1/traces"
    return ""


def tracer(name: str = "interviewer-twin") -> trace.Tracer:
    return trace.get_tracer(name)


def inject(ctx: otel_context.Context | None = None) -> dict[str, str]:
    """The current (or given) context as a W3C carrier dict, for a record's traceContext field."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=ctx)
    return carrier


def extract(carrier: Mapping[str, str] | None) -> otel_context.Context:
    """A context to parent spans on, from a traceContext field."""
    return propagate.extract(dict(carrier or {}))


def headers_from_context(ctx: otel_context.Context | None = None) -> list[tuple[str, bytes]]:
    """Kafka headers carrying the context."""
    return [(k, v.encode()) for k, v in inject(ctx).items()]


def context_from_headers(headers: Iterable[tuple[str, bytes]] | Mapping[str, bytes] | None) -> otel_context.Context:
    """Parse Kafka headers (list of pairs or mapping) back into a context."""
    items = headers.items() if isinstance(headers, Mapping) else (headers or [])
    return extract({k: (v.decode() if isinstance(v, bytes) else v) for k, v in items})


def current_trace_id() -> str:
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.trace_id else ""
