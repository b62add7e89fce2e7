"""The mapping reads a finished span's attributes and events past the SDK's copying properties; both ways agree."""

from __future__ import annotations

from opentelemetry.sdk.trace import Event, ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanContext, TraceFlags

from otel_maxim.mapping._common import attributes_of, events_of


def _sdk_span() -> ReadableSpan:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    with provider.get_tracer("t").start_as_current_span("s", attributes={"a": 1, "b": ("x", "y")}) as span:
        span.add_event("first", {"k": "v"})
        span.add_event("second")
    (finished,) = memory.get_finished_spans()
    return finished


def _plain_span() -> ReadableSpan:
    """As the bridge builds them from OTLP: a ReadableSpan with a plain dict and a list of events."""
    context = SpanContext(0x1, 0x2, is_remote=False, trace_flags=TraceFlags(1))
    events = [Event("first", {"k": "v"}, timestamp=1), Event("second", timestamp=2)]
    return ReadableSpan("s", context=context, attributes={"a": 1, "b": ("x", "y")}, events=events)


def test_an_sdk_span_is_read_past_its_properties() -> None:
    span = _sdk_span()
    assert type(attributes_of(span)) is dict and attributes_of(span) == dict(span.attributes or {})
    assert type(events_of(span)) is tuple
    assert [(e.name, dict(e.attributes or {})) for e in events_of(span)] == [("first", {"k": "v"}), ("second", {})]
    assert list(events_of(span)) == list(span.events)


def test_a_span_without_the_sdk_layout_is_read_through_its_properties() -> None:
    span = _plain_span()
    assert dict(attributes_of(span)) == {"a": 1, "b": ("x", "y")}
    assert [e.name for e in events_of(span)] == ["first", "second"]
    assert list(events_of(span)) == list(span.events)
