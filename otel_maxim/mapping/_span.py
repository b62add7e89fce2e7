"""One span -> the records that announce it, describe it and end it."""

from __future__ import annotations

from dataclasses import dataclass

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode
from opentelemetry.util.types import AttributeValue

from otel_maxim import conventions as conv
from otel_maxim.mapping._common import Attributes, is_consumed, iso, prefixed, span_hex, text
from otel_maxim.records import Record

Ref = tuple[str, str]

#: Attribute keys of the OTel ``exception`` event.
_EXC_TYPE = "exception.type"
_EXC_MESSAGE = "exception.message"
_EXC_STACKTRACE = "exception.stacktrace"


@dataclass(frozen=True)
class Options:
    """Mapping settings, fixed for the life of an exporter."""

    #: ``False`` keeps message contents, inputs and outputs out of every record.
    capture_content: bool = True


def open_records(span: ReadableSpan, parent: Ref, options: Options) -> tuple[list[Record], Ref]:
    """The records that announce ``span`` on ``parent`` and describe it; and the span's own ref."""
    span_id = span_hex(span.context.span_id)  # type: ignore[union-attr]
    attributes = span.attributes or {}
    # Key order as maxim-py writes it: id, name, spanId (only under a span), tags, startTimestamp.
    data: dict[str, object] = {"id": span_id, "name": span.name}
    if parent[0] == "span":
        data["spanId"] = parent[1]
    data["tags"] = prefixed(attributes, conv.TAGS_PREFIX)
    data["startTimestamp"] = iso(span.start_time or 0)
    own: Ref = ("span", span_id)
    records = [Record(parent[0], parent[1], "add-span", data)]
    records.extend(own_records(span, own, options))
    return records, own


def own_records(span: ReadableSpan, ref: Ref, options: Options, *, is_trace: bool = False) -> list[Record]:
    """Metadata, events and errors of ``span``, addressed to the entity it became (``ref``)."""
    records: list[Record] = []
    attributes = span.attributes or {}
    metadata = prefixed(attributes, conv.METADATA_PREFIX)
    for key, value in attributes.items():
        if not is_consumed(key):
            metadata.setdefault(key, text(value) or "")
    if metadata:
        records.append(Record(ref[0], ref[1], "update", {"metadata": metadata}))
    if options.capture_content and not is_trace:
        value = attributes.get(conv.INPUT)
        if value is not None:
            records.append(Record(ref[0], ref[1], "update", {"input": {"type": "text", "value": text(value)}}))
    errored = False
    for index, event in enumerate(span.events):
        event_attributes = event.attributes or {}
        if event.name == "exception":
            errored = True
            records.append(_error(ref, event_attributes.get(_EXC_MESSAGE), event_attributes, event.timestamp))
            continue
        data: dict[str, object] = {"id": f"{ref[1]}-e{index}", "name": event.name, "timestamp": iso(event.timestamp)}
        event_metadata = {k: text(v) or "" for k, v in event_attributes.items()}
        if event_metadata:
            data["metadata"] = event_metadata
        records.append(Record(ref[0], ref[1], "add-event", data))
    if span.status.status_code is StatusCode.ERROR and not errored:
        records.append(_error(ref, span.status.description, attributes, span.end_time or span.start_time or 0))
    return records


def _error(ref: Ref, message: AttributeValue | None, attrs: Attributes, timestamp: int) -> Record:
    error_type = attrs.get(_EXC_TYPE) or attrs.get("error.type")
    # Key order as maxim-py writes it: startTimestamp, message, code?, errorType?, metadata?; no id.
    data: dict[str, object] = {
        "startTimestamp": iso(timestamp),
        "message": text(message) if message else (text(error_type) if error_type else "error"),
    }
    if error_type:
        data["errorType"] = text(error_type)
    stack = attrs.get(_EXC_STACKTRACE)
    if stack:
        data["metadata"] = {"stacktrace": text(stack)}
    return Record(ref[0], ref[1], "add-error", data)


def close_records(span: ReadableSpan, own: Ref, options: Options) -> list[Record]:
    """The records after ``span``'s children: its end."""
    return [Record(own[0], own[1], "end", {"endTimestamp": iso(_end(span))})]


def trace_input(root: ReadableSpan, options: Options) -> str | None:
    if not options.capture_content or not root.attributes:
        return None
    return text(root.attributes.get(conv.INPUT))


def trace_close_records(root: ReadableSpan, trace_id: str, options: Options) -> list[Record]:
    """The trace's output (when its root carries one) and its end, from the root span."""
    records: list[Record] = []
    if options.capture_content and root.attributes:
        output = root.attributes.get(conv.OUTPUT)
        if output is not None:
            records.append(Record("trace", trace_id, "update", {"output": text(output)}))
    records.append(Record("trace", trace_id, "end", {"endTimestamp": iso(_end(root))}))
    return records


def _end(span: ReadableSpan) -> int:
    start = span.start_time or 0
    end = span.end_time or start
    return end if end >= start else start
