"""One span -> the records that announce it, describe it and end it (key orders as maxim-py writes them)."""

from __future__ import annotations

from dataclasses import dataclass

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode
from opentelemetry.util.types import AttributeValue

from otel_maxim import conventions as conv
from otel_maxim.mapping import genai
from otel_maxim.mapping._common import (
    Attributes,
    attributes_of,
    first,
    is_consumed,
    iso,
    json_text,
    prefixed,
    span_hex,
    text,
)
from otel_maxim.mapping.genai import Described
from otel_maxim.records import Record

Ref = tuple[str, str]

#: Attribute keys of the OTel ``exception`` event.
_EXC_TYPE = "exception.type"
_EXC_MESSAGE = "exception.message"
_EXC_STACKTRACE = "exception.stacktrace"

#: Attributes that hold content (inputs, outputs, messages): never metadata; ``input`` becomes the span's input.
_CONTENT_INPUTS = (conv.INPUT, "input.value", "traceloop.entity.input", "gen_ai.task.input")
_CONTENT_OUTPUTS = (conv.OUTPUT, "output.value", "traceloop.entity.output", "gen_ai.task.output")
_CONTENT = frozenset(
    {
        *_CONTENT_INPUTS,
        *_CONTENT_OUTPUTS,
        "input.mime_type",
        "output.mime_type",
        "gen_ai.input.messages",
        "gen_ai.output.messages",
        "gen_ai.system_instructions",
        "gen_ai.tool.call.arguments",
        "gen_ai.tool.call.result",
        "llm.prompt_template.template",
        "llm.prompt_template.variables",
        "ai.prompt",
        "ai.prompt.messages",
        "ai.response.text",
        "ai.response.toolCalls",
        "ai.response.object",
        "ai.toolCall.args",
        "ai.toolCall.result",
        "ai.toolCall.output",
    }
)
#: Flattened content (messages, prompts, documents, embedded texts): never metadata either.
_CONTENT_PREFIXES = (
    "llm.input_messages.",
    "llm.output_messages.",
    "gen_ai.prompt.",
    "gen_ai.completion.",
    "retrieval.documents.",
    "embedding.embeddings.",
)
#: OpenInference's tags (a list of strings) and metadata (a JSON object as text).
_OI_TAGS = "tag.tags"
_OI_METADATA = "metadata"
#: Metadata entry that counts the attributes left out past ``Options.max_attributes``.
_DROPPED_ATTRIBUTES = "otel_maxim.dropped_attributes"


@dataclass(frozen=True)
class Options:
    """Mapping settings, fixed for the life of an exporter."""

    #: ``False`` keeps message contents, inputs and outputs out of every record.
    capture_content: bool = True
    #: Most attributes of one span sent as metadata (the rest are counted, not sent).
    max_attributes: int = 128


def tags_of(attributes: Attributes) -> dict[str, str]:
    """``maxim.tags.<key>`` attributes, plus OpenInference ``tag.tags`` (each tag as ``{tag: "true"}``)."""
    tags = prefixed(attributes, conv.TAGS_PREFIX)
    oi_tags = attributes.get(_OI_TAGS)
    if isinstance(oi_tags, (list, tuple)):
        for tag in oi_tags:
            tags.setdefault(str(tag), "true")
    return tags


def open_records(span: ReadableSpan, parent: Ref, options: Options, described: Described) -> tuple[list[Record], Ref]:
    """The records that announce ``span`` on ``parent`` and describe it; and the span's own ref."""
    span_id = span_hex(span.context.span_id)  # type: ignore[union-attr]
    attributes = attributes_of(span)
    kind = described.kind
    under_span = parent[0] == "span"
    tags = tags_of(attributes)
    start = iso(span.start_time or 0)
    data: dict[str, object]
    if kind == genai.GENERATION:
        data = {"name": described.name, "tags": tags, "startTimestamp": start}
        if described.model is not None:
            data["model"] = described.model
        data["provider"] = described.provider
        data["messages"] = described.messages if options.capture_content else []
        data["modelParameters"] = described.parameters
        data["id"] = span_id
        if under_span:
            data["spanId"] = parent[1]
        action = "add-generation"
    elif kind == genai.TOOL_CALL:
        data = {"name": described.name}
        if tags:
            data["tags"] = tags
        data["startTimestamp"] = start
        if described.description is not None:
            data["description"] = described.description
        if described.arguments is not None and options.capture_content:
            data["args"] = described.arguments
        data["id"] = span_id
        action = "add-tool-call"
    else:
        data = {"id": span_id, "name": span.name}
        if under_span and kind == genai.SPAN:
            data["spanId"] = parent[1]
        data["tags"] = tags
        data["startTimestamp"] = start
        action = "add-retrieval" if kind == genai.RETRIEVAL else "add-span"
    own: Ref = (kind, span_id)
    records = [Record(parent[0], parent[1], action, data)]
    records.extend(own_records(span, own, parent, options, described))
    return records, own


def own_records(
    span: ReadableSpan, ref: Ref, container: Ref, options: Options, described: Described, *, is_trace: bool = False
) -> list[Record]:
    """Metadata, input, events and errors of ``span``.

    Addressed to the entity it became (``ref``); events and errors of a generation,
    tool call or retrieval go to ``container``, the nearest trace or span, since
    only traces and spans take them.
    """
    records: list[Record] = []
    attributes = attributes_of(span)
    kind = described.kind
    metadata = _metadata(attributes, kind, options.max_attributes)
    if metadata:
        records.append(Record(ref[0], ref[1], "update", {"metadata": metadata}))
    if kind == genai.SPAN and not is_trace and options.capture_content:
        value = first_text(attributes, _CONTENT_INPUTS)
        if value is not None:
            records.append(Record(ref[0], ref[1], "update", {"input": {"type": "text", "value": value}}))
    if kind == genai.RETRIEVAL and options.capture_content:
        if described.query is not None:
            records.append(Record(ref[0], ref[1], "update", {"input": described.query}))
        if described.documents is not None:
            records.append(Record(ref[0], ref[1], "update", {"docs": described.documents}))

    event_target = ref if kind == genai.SPAN else container
    errored = False
    for index, event in enumerate(span.events):
        if index in described.consumed_events:
            continue
        event_attributes = event.attributes or {}
        if event.name == "exception":
            errored = True
            if kind in (genai.SPAN, genai.RETRIEVAL):  # generations and tool calls carry their error themselves
                records.append(
                    _error(event_target, event_attributes.get(_EXC_MESSAGE), event_attributes, event.timestamp)
                )
            continue
        data: dict[str, object] = {"id": f"{ref[1]}-e{index}", "name": event.name, "timestamp": iso(event.timestamp)}
        event_metadata = {k: text(v) or "" for k, v in event_attributes.items()}
        if kind != genai.SPAN:
            event_metadata.setdefault("maxim.entity", f"{kind}:{ref[1]}")
        if event_metadata:
            data["metadata"] = event_metadata
        records.append(Record(event_target[0], event_target[1], "add-event", data))
    if span.status.status_code is StatusCode.ERROR and not errored and kind in (genai.SPAN, genai.RETRIEVAL):
        records.append(_error(event_target, span.status.description, attributes, span.end_time or span.start_time or 0))
    return records


def _metadata(attributes: Attributes, kind: str, limit: int) -> dict[str, str]:
    metadata = prefixed(attributes, conv.METADATA_PREFIX)
    oi_metadata = attributes.get(_OI_METADATA)
    if isinstance(oi_metadata, str) and oi_metadata.startswith("{"):
        try:
            import json  # noqa: PLC0415 - only for OpenInference metadata

            parsed = json.loads(oi_metadata)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            for key, value in parsed.items():
                metadata.setdefault(str(key), value if isinstance(value, str) else json_text(value))
    for key, value in attributes.items():
        if is_consumed(key) or key in _CONTENT or key in (_OI_TAGS, _OI_METADATA) or key.startswith(_CONTENT_PREFIXES):
            continue
        if kind != genai.SPAN and key.startswith(genai.CONVENTION_PREFIXES):
            continue  # read into the generation / tool call / retrieval itself
        metadata.setdefault(key, text(value) or "")
    if len(metadata) > limit:
        kept = dict(list(metadata.items())[:limit])
        kept[_DROPPED_ATTRIBUTES] = str(len(metadata) - limit)
        return kept
    return metadata


def first_text(attributes: Attributes, keys: tuple[str, ...]) -> str | None:
    """The first of ``keys`` that is set (not empty), as text."""
    return text(first(attributes, keys))


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


def close_records(span: ReadableSpan, own: Ref, options: Options, described: Described) -> list[Record]:
    """The records after ``span``'s children: its result or error, then its end."""
    records: list[Record] = []
    kind = described.kind
    if kind == genai.GENERATION:
        result = _generation_result(span, own[1], options, described)
        if result is not None:
            records.append(Record(own[0], own[1], "result", {"result": result}))
    elif kind == genai.TOOL_CALL:
        if described.error is not None:
            records.append(Record(own[0], own[1], "error", {"error": described.error}))
        elif described.result is not None and options.capture_content:
            records.append(Record(own[0], own[1], "result", {"result": described.result}))
    records.append(Record(own[0], own[1], "end", {"endTimestamp": iso(end_of(span))}))
    return records


def _generation_result(
    span: ReadableSpan, gen_id: str, options: Options, described: Described
) -> dict[str, object] | None:
    if described.error is not None:
        return {"error": described.error, "id": described.response_id or gen_id}
    if not described.choices and described.usage is None:
        return None
    choices = described.choices
    if not options.capture_content:
        choices = [_without_content(choice) for choice in choices]
    result: dict[str, object] = {
        "id": described.response_id or gen_id,
        "object": "chat.completion",
        "created": end_of(span) // 1_000_000_000,
        "model": described.model or "",
        "choices": choices,
    }
    if described.usage is not None:
        result["usage"] = described.usage
    return result


def _without_content(choice: dict[str, object]) -> dict[str, object]:
    message = dict(choice.get("message") or {})  # type: ignore[call-overload]
    message["content"] = None
    if "tool_calls" in message:
        message["tool_calls"] = [
            {**call, "function": {**call["function"], "arguments": ""}} for call in message["tool_calls"]
        ]
    return {**choice, "message": message}


def trace_input(root: ReadableSpan, options: Options) -> str | None:
    if not options.capture_content:
        return None
    return first_text(attributes_of(root), (conv.INPUT, "input.value"))


def trace_output(root: ReadableSpan, options: Options) -> str | None:
    if not options.capture_content:
        return None
    return first_text(attributes_of(root), (conv.OUTPUT, "output.value"))


def trace_close_records(trace_id: str, root: ReadableSpan, output: str | None) -> list[Record]:
    """The trace's output and its end, from the root span."""
    records: list[Record] = []
    if output is not None:
        records.append(Record("trace", trace_id, "update", {"output": output}))
    records.append(Record("trace", trace_id, "end", {"endTimestamp": iso(end_of(root))}))
    return records


def end_of(span: ReadableSpan) -> int:
    """The span's end, never before its start."""
    start = span.start_time or 0
    end = span.end_time or start
    return end if end >= start else start
