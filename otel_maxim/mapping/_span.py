"""One span -> the records that announce it, describe it and end it (key orders as maxim-py writes them)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from opentelemetry.trace import StatusCode
from opentelemetry.util.types import AttributeValue

from otel_maxim import conventions as conv
from otel_maxim.mapping import genai
from otel_maxim.mapping._common import (
    Attributes,
    PerKeySet,
    as_text,
    is_consumed,
    iso,
    json_text,
    metadata_text,
    parse_json,
    span_hex,
    text,
    whole_ns,
)
from otel_maxim.mapping.genai import Described
from otel_maxim.records import RawRecord

Ref = tuple[str, str]

#: Attribute keys of the OTel ``exception`` event.
_EXC_TYPE = "exception.type"
_EXC_MESSAGE = "exception.message"
_EXC_STACKTRACE = "exception.stacktrace"
#: Where an error's metadata keeps the span's status description when the exception's message says something else.
_STATUS_DESCRIPTION = "otel.status_description"

#: Attributes that hold content (inputs, outputs, messages): never metadata.  The first of
#: ``_CONTENT_INPUTS`` that is set is a span's input, the first of ``_CONTENT_OUTPUTS`` its metadata
#: entry ``output`` (maxim-py's spans have no output); on the root, the trace's input and output.
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
        "gen_ai.agent.system_prompt",  # Strands Agents' agent span
        "gen_ai.prompt",  # the attributes of the gen_ai.content.prompt / .completion events
        "gen_ai.completion",
        "gen_ai.tool.call.arguments",
        "gen_ai.tool.call.result",
        "gen_ai.retrieval.query.text",
        "gen_ai.retrieval.query",
        "gen_ai.retrieval.documents",
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
        "ai.response.reasoning",
        "ai.response.reasoningDetails",
        "ai.value",  # what the Vercel AI SDK embeds, and the vectors
        "ai.values",
        "ai.embedding",
        "ai.embeddings",
        "llm.prompts",  # OpenInference: a completions API's prompts and answers, a function call
        "llm.choices",
        "llm.function_call",
    }
)
#: Flattened content (messages, prompts, documents, embedded texts, OpenInference's input and output
#: images and documents, a reranker's query and documents): never metadata either.
_CONTENT_PREFIXES = (
    "llm.input_messages.",
    "llm.output_messages.",
    "llm.prompts.",
    "llm.choices.",
    "gen_ai.prompt.",
    "gen_ai.completion.",
    "retrieval.documents.",
    "embedding.embeddings.",
    "input.",
    "output.",
    "reranker.",
    "ai.result.",  # the Vercel AI SDK's names before ai.response.*
)
#: The tools offered to a model (their schemas): not sent, as maxim-py does not send them; one
#: metadata entry per tool on every call of an agent would drown the rest.
_TOOL_DEFINITIONS = frozenset({"gen_ai.tool.definitions", "ai.prompt.tools"})
_TOOL_DEFINITION_PREFIXES = ("llm.tools.", "llm.request.functions.")
#: What the older GenAI message events (``gen_ai.user.message``, ``gen_ai.choice``, ...) carry their messages
#: in; ``tool.result``: the tools' results, on Strands Agents' ``gen_ai.choice`` of an agent loop's cycle.
_GENAI_EVENT_CONTENT = frozenset({"content", "message", "tool_calls", "gen_ai.event.content", "tool.result"})
#: OpenInference's tags (a list of strings) and metadata (a JSON object as text).
_OI_TAGS = "tag.tags"
_OI_METADATA = "metadata"
#: The application's own metadata as other instrumentations carry it, one attribute per entry:
#: Traceloop's association properties and the Vercel AI SDK's telemetry metadata.
_ENTRY_METADATA_PREFIXES = ("traceloop.association.properties.", "ai.telemetry.metadata.")
#: Request headers an instrumentation recorded (Traceloop's, the Vercel AI SDK's): they may carry
#: credentials, so they are never metadata.
_HEADERS = frozenset({"llm.headers", "gen_ai.headers"})
_HEADERS_PREFIX = "ai.request.headers."
#: Metadata entry of a plain span's output.
_OUTPUT = "output"
#: Metadata entry that counts the attributes left out past ``Options.max_attributes``.
_DROPPED_ATTRIBUTES = "otel_maxim.dropped_attributes"


@dataclass(frozen=True)
class Options:
    """Mapping settings, fixed for the life of an exporter."""

    #: ``False`` keeps message contents, inputs and outputs out of every record.
    capture_content: bool = True
    #: Most attributes of one span sent as metadata (the rest are counted, not sent).
    max_attributes: int = 128


# What each attribute key is to the mapping.  The answer depends on the key alone, and spans
# repeat the same few dozen keys, so it is worked out once per key and remembered (up to
# _MAX_KNOWN_KEYS keys: attribute names come from the application, and a program that makes
# them up per span must not grow this without bound; past it, keys are worked out every time).
_TAG = 0  # maxim.tags.<name>: a tag
_METADATA = 1  # maxim.metadata.<name>: metadata that wins over a plain attribute of the same name
_OI_TAG_LIST = 2  # OpenInference's tag.tags
_OI_METADATA_JSON = 3  # OpenInference's metadata
_CONVENTION = 4  # an instrumentation's own attribute: read into a generation etc., metadata on a plain span
_PLAIN = 5  # anything else: metadata under its own name
_SKIP = 6  # read elsewhere (session, ids, content): never metadata
_ENTRY_METADATA = 7  # an entry of the application's metadata, in an instrumentation's own attribute
_MAX_KNOWN_KEYS = 4096
_known_keys: dict[str, tuple[int, str]] = {}


def _key_kind(key: str) -> tuple[int, str]:
    """``(kind, name)`` of a key not yet in ``_known_keys``; ``name`` is the tag or metadata name if any."""
    for prefix, kind in ((conv.TAGS_PREFIX, _TAG), (conv.METADATA_PREFIX, _METADATA)):
        if key.startswith(prefix):
            found = (kind, key[len(prefix) :]) if len(key) > len(prefix) else (_SKIP, "")
            break
    else:
        if key == _OI_TAGS:
            found = (_OI_TAG_LIST, "")
        elif key == _OI_METADATA:
            found = (_OI_METADATA_JSON, "")
        elif is_consumed(key) or _is_content(key) or _is_left_out(key):
            found = (_SKIP, "")
        elif key in genai.READ_KEYS:
            found = (_CONVENTION, "")
        else:
            found = (_PLAIN, key)
            for prefix in _ENTRY_METADATA_PREFIXES:
                if key.startswith(prefix) and len(key) > len(prefix):
                    found = (_ENTRY_METADATA, key[len(prefix) :])
                    break
    if len(_known_keys) < _MAX_KNOWN_KEYS:
        _known_keys[key] = found
    return found


class _ReadKeys(NamedTuple):
    """What :func:`tags_and_metadata` reads of a span's keys."""

    #: ``(key, role, name)`` of each key that is a tag or metadata.
    read: tuple[tuple[str, int, str], ...]
    #: When every one of them is plain metadata (no tag, no ``maxim.metadata.``, nothing of
    #: OpenInference's; most spans): those keys, else ``None``.
    only_plain: tuple[str, ...] | None


def _read_keys_among(keys: tuple[str, ...], plain_conventions: bool) -> _ReadKeys:
    """What of ``keys`` is a tag or metadata; an instrumentation's own keys are plain metadata when
    ``plain_conventions`` (a plain span), else left out."""
    read = []
    for key in keys:
        what, name = _known_keys.get(key) or _key_kind(key)
        if what == _CONVENTION and plain_conventions:
            what = _PLAIN
        if what not in (_SKIP, _CONVENTION):
            read.append((key, what, name))
    only_plain = tuple(key for key, what, _ in read) if all(what == _PLAIN for _, what, _ in read) else None
    return _ReadKeys(tuple(read), only_plain)


#: What tags_and_metadata reads of a span's keys: on plain spans, and on the other entities.
_read_keys = (
    PerKeySet(lambda keys: _read_keys_among(keys, plain_conventions=False)),
    PerKeySet(lambda keys: _read_keys_among(keys, plain_conventions=True)),
)


def _is_left_out(key: str) -> bool:
    """Whether ``key`` is recorded request headers (credentials) or tool definitions: never sent."""
    return (
        key in _HEADERS
        or key in _TOOL_DEFINITIONS
        or key.startswith(_HEADERS_PREFIX)
        or key.startswith(_TOOL_DEFINITION_PREFIXES)
    )


def _is_content(key: str) -> bool:
    """Whether the attribute ``key`` holds content (inputs, outputs, messages, documents)."""
    return key in _CONTENT or key.startswith(_CONTENT_PREFIXES)


def tags_and_metadata(attributes: Attributes, kind: str, limit: int) -> tuple[dict[str, str], dict[str, str]]:
    """The span's tags and its metadata (at most ``limit`` entries).

    Tags: ``maxim.tags.<key>`` attributes, plus OpenInference ``tag.tags`` (each tag as ``{tag: "true"}``).
    Metadata: ``maxim.metadata.<key>`` attributes first, then the application's metadata as
    instrumentations carry it (OpenInference's ``metadata`` object, Traceloop's
    ``traceloop.association.properties.<key>``, the Vercel AI SDK's ``ai.telemetry.metadata.<key>``),
    then every other attribute that the mapping does not read elsewhere, under its own name; an
    earlier source wins a name.  What a generation, tool call or retrieval reads into itself
    (:data:`~otel_maxim.mapping.genai.READ_KEYS`) is metadata only on plain spans.
    """
    read, only_plain = _read_keys[kind == genai.SPAN](attributes)
    if only_plain is not None:  # no tags, and each metadata entry under its own name
        return {}, _within_limit({key: metadata_text(attributes[key]) for key in only_plain}, limit)
    tags: dict[str, str] = {}
    metadata: dict[str, str] = {}
    entries: dict[str, str] = {}
    plain: dict[str, str] = {}
    oi_tags: AttributeValue | None = None
    oi_metadata: AttributeValue | None = None
    for key, what, name in read:
        value = attributes[key]
        if what == _PLAIN:
            plain[key] = metadata_text(value)
        elif what == _TAG:
            if value is not None:  # a tag set to None is no tag ("null" would read as one)
                tags[name] = as_text(value)
        elif what == _METADATA:
            metadata[name] = metadata_text(value)
        elif what == _ENTRY_METADATA:
            entries[name] = metadata_text(value)
        elif what == _OI_TAG_LIST:
            oi_tags = value
        elif what == _OI_METADATA_JSON:
            oi_metadata = value
    # OpenInference's names, but not its shapes (an application's own "metadata" text, say): plain metadata.
    if isinstance(oi_tags, (list, tuple)):
        for tag in oi_tags:
            tags.setdefault(str(tag), "true")
    elif oi_tags is not None:
        plain[_OI_TAGS] = metadata_text(oi_tags)
    if oi_metadata is not None and not _add_openinference_metadata(metadata, oi_metadata):
        plain[_OI_METADATA] = metadata_text(oi_metadata)
    for name, text_value in entries.items():
        metadata.setdefault(name, text_value)
    if metadata:
        for key, text_value in plain.items():
            metadata.setdefault(key, text_value)
    else:
        metadata = plain
    return tags, _within_limit(metadata, limit)


def _within_limit(metadata: dict[str, str], limit: int) -> dict[str, str]:
    """``metadata``, or its first ``limit`` entries and a count of the others."""
    if len(metadata) <= limit:
        return metadata
    kept = dict(list(metadata.items())[:limit])
    kept[_DROPPED_ATTRIBUTES] = str(len(metadata) - limit)
    return kept


def _add_openinference_metadata(metadata: dict[str, str], raw: AttributeValue) -> bool:
    """Add the entries of OpenInference's ``metadata`` (a JSON object, as text or a mapping) to ``metadata``;
    ``False`` if it is not one."""
    parsed = (
        raw if isinstance(raw, Mapping) else parse_json(raw) if isinstance(raw, str) and raw.startswith("{") else None
    )
    if not isinstance(parsed, dict):
        return False
    for key, value in parsed.items():
        metadata.setdefault(str(key), value if isinstance(value, str) else json_text(value))
    return True


def open_records(described: Described, parent: Ref, options: Options, records: list[RawRecord]) -> Ref:
    """Append the records that announce the span on ``parent`` and describe it; return the span's own ref."""
    span_id = span_hex(described.span_id)
    attributes = described.attributes
    kind = described.kind
    under_span = parent[0] == "span"
    tags, metadata = tags_and_metadata(attributes, kind, options.max_attributes)
    start = iso(described.start)
    data: dict[str, object]
    if kind == genai.GENERATION:
        data = {"name": described.name, "tags": tags, "startTimestamp": start}
        if described.model is not None:
            data["model"] = described.model
        data["provider"] = described.provider
        data["messages"] = described.messages if options.capture_content else []
        data["modelParameters"] = described.parameters or {}
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
        data = {"id": span_id, "name": described.span_name}
        if under_span and kind == genai.SPAN:
            data["spanId"] = parent[1]
        data["tags"] = tags
        data["startTimestamp"] = start
        action = "add-retrieval" if kind == genai.RETRIEVAL else "add-span"
    own: Ref = (kind, span_id)
    records.append((parent[0], parent[1], action, data))
    if described.files and options.capture_content:
        records.extend(attachment_records(span_id, described.files, "input"))
    own_records(described, own, parent, options, records, metadata=metadata)
    return own


def attachment_records(generation_id: str, files: Sequence[dict[str, str]], attach_to: str) -> list[RawRecord]:
    """A generation's input or output files as ``upload-attachment`` records, the ones maxim-py makes of them.

    Its ``Generation`` takes images out of the messages and commits one such record each, with
    the fields of its ``UrlAttachment`` or ``FileDataAttachment`` that are set (a file inline as
    base64 text in ``data``), tagged ``attach-to`` ``input`` (its integrations tag what a model
    made ``output``).  The sink resolves each when it delivers it: it uploads the file to
    Maxim's storage, if inline, and sends ``add-attachment`` in its place (see ``otel_maxim.sinks``).
    The id of the n-th file is ``<generation id>-a<n>`` (``-o<n>`` for an output), so a record
    sent again is the same file.
    """
    records = []
    letter = "o" if attach_to == "output" else "a"
    for n, file in enumerate(files):
        data: dict[str, object] = {"id": f"{generation_id}-{letter}{n}"}
        if "url" in file:
            data.update(type="url", url=file["url"])
        else:
            data.update(type="file_data", data=file["data"])
        if "mime_type" in file:
            data["mime_type"] = file["mime_type"]
        data["tags"] = {"attach-to": attach_to}
        records.append(("generation", generation_id, "upload-attachment", data))
    return records


def own_records(
    described: Described,
    ref: Ref,
    container: Ref,
    options: Options,
    records: list[RawRecord],
    *,
    metadata: dict[str, str],
    is_trace: bool = False,
) -> None:
    """Append the span's metadata, input, events and errors to ``records``.

    Addressed to the entity it became (``ref``); events and errors of a generation,
    tool call or retrieval go to ``container``, the nearest trace or span, since
    only traces and spans take them.  ``metadata`` is the span's (see :func:`tags_and_metadata`);
    a plain span's output joins it as ``output``, and the status description of a failed generation
    or tool call as ``otel.status_description`` (unless the application named an entry so).
    """
    attributes = described.attributes
    kind = described.kind
    span_input = None
    if kind == genai.SPAN and not is_trace and options.capture_content:
        span_input = content_text(attributes, _CONTENT_INPUTS)
        output = content_text(attributes, _CONTENT_OUTPUTS)
        if output is not None and _OUTPUT not in metadata:
            metadata = {**metadata, _OUTPUT: output}
    elif (
        kind in (genai.GENERATION, genai.TOOL_CALL)
        and described.error is not None
        and _STATUS_DESCRIPTION not in metadata
    ):
        # A generation's or tool call's error has no field for a status description that its
        # exception's message does not say (see _error): it is the entity's metadata instead.
        # (A retrieval's error is an add-error, which says it; see the end of this function.)
        description = described.status.description
        if description and description != described.error["message"]:
            metadata = {**metadata, _STATUS_DESCRIPTION: description}
    if metadata:
        records.append((ref[0], ref[1], "update", {"metadata": metadata}))
    if span_input is not None:
        records.append((ref[0], ref[1], "update", {"input": {"type": "text", "value": span_input}}))
    if kind == genai.RETRIEVAL and options.capture_content:
        if described.query is not None:
            records.append((ref[0], ref[1], "update", {"input": described.query}))
        if described.documents is not None:
            records.append((ref[0], ref[1], "update", {"docs": described.documents}))

    event_target = ref if kind == genai.SPAN else container
    errored = False
    last_error: tuple[int, Attributes, int] | None = None  # (where in records, attributes, time) of the last exception
    for index, event in enumerate(described.events):
        if index in described.consumed_events:
            continue
        event_attributes = event.attributes or {}
        if event.name == "exception":
            errored = True
            if kind in (genai.SPAN, genai.RETRIEVAL):  # generations and tool calls carry their error themselves
                last_error = (len(records), event_attributes, event.timestamp)
                records.append(
                    _error(event_target, event_attributes.get(_EXC_MESSAGE), event_attributes, event.timestamp)
                )
            continue
        data: dict[str, object] = {"id": f"{ref[1]}-e{index}", "name": event.name, "timestamp": iso(event.timestamp)}
        if options.capture_content:
            event_metadata = {k: metadata_text(v) for k, v in event_attributes.items()}
        else:
            event_metadata = _event_metadata_without_content(event.name, event_attributes)
        if kind != genai.SPAN:
            event_metadata.setdefault("maxim.entity", f"{kind}:{ref[1]}")
        if event_metadata:
            data["metadata"] = event_metadata
        records.append((event_target[0], event_target[1], "add-event", data))
    status = described.status
    if status.status_code is StatusCode.ERROR and kind in (genai.SPAN, genai.RETRIEVAL):
        if not errored:
            records.append(_error(event_target, status.description, attributes, described.end))
        elif status.description and last_error is not None:
            # The status says what the exceptions came to: it goes with the last one, which set it.
            at, event_attributes, timestamp = last_error
            message = event_attributes.get(_EXC_MESSAGE)
            records[at] = _error(event_target, message, event_attributes, timestamp, status.description)


def _event_metadata_without_content(name: str, attributes: Attributes) -> dict[str, str]:
    """An event's attributes as metadata, less the content: what spans never show as metadata
    either, and the message fields of the GenAI events (an application's own ``message`` stays)."""
    genai_event = name.startswith("gen_ai.")
    return {
        key: metadata_text(value)
        for key, value in attributes.items()
        if not (_is_content(key) or (genai_event and key in _GENAI_EVENT_CONTENT))
    }


def content_text(attributes: Attributes, keys: tuple[str, ...]) -> str | None:
    """The first of ``keys`` that is set (not empty), as text, out of Traceloop's LangChain envelope if in one.

    Traceloop's LangChain instrumentation wraps a chain's input and output in the callback's
    arguments (``{"inputs": ..., "tags": [...], "metadata": {...}, "kwargs": {...}}``, ``{"outputs":
    ..., "kwargs": {...}}``): a workflow's input is the question asked, not that envelope (a tool's
    arguments and result are taken out of theirs in :mod:`~otel_maxim.mapping.genai`).
    """
    for key in keys:
        value = attributes.get(key)
        if value is not None and value != "":
            envelope = _ENVELOPES.get(key)
            return text(value if envelope is None else _unwrapped(value, *envelope))
    return None


#: Content attributes that Traceloop's LangChain instrumentation fills with its envelope: the
#: envelope's key for the content, and every key it may hold.
_ENVELOPES = {
    **dict.fromkeys(
        ("traceloop.entity.input", "gen_ai.task.input"), ("inputs", frozenset({"inputs", "tags", "metadata", "kwargs"}))
    ),
    **dict.fromkeys(("traceloop.entity.output", "gen_ai.task.output"), ("outputs", frozenset({"outputs", "kwargs"}))),
}


def _unwrapped(value: AttributeValue, inner: str, envelope_keys: frozenset[str]) -> AttributeValue:
    """``value``'s ``inner`` entry if it is the envelope (a JSON object of those keys alone), else ``value``."""
    if isinstance(value, str):
        if f'"{inner}"' not in value:
            return value  # not the envelope: no need to parse it
        parsed = parse_json(value)
    else:
        parsed = value  # a structured attribute (SDK 1.4x keeps mappings)
    if isinstance(parsed, Mapping) and inner in parsed and parsed.keys() <= envelope_keys:
        return parsed[inner]  # type: ignore[no-any-return]
    return value


def _error(
    ref: Ref, message: AttributeValue | None, attrs: Attributes, timestamp: int, description: str | None = None
) -> RawRecord:
    """An ``add-error`` record; ``description``: the span's status description, when an exception is the error.

    The description says what an exception may not (a ``TimeoutError`` has no message; "payment
    provider unavailable after 3 retries" says what the retries came to).  It is the message of an
    exception that has none, as a generation's error reads it; else, when it says something else,
    it is kept in the error's metadata as ``otel.status_description`` (OTel's name for it outside
    OTLP): maxim-py's error has no other field for it, and a second error would count one failure twice.
    """
    error_type = attrs.get(_EXC_TYPE) or attrs.get("error.type")
    if not message and description:
        message, description = description, None
    message_text = text(message) if message else (text(error_type) if error_type else "error")
    # Key order as maxim-py writes it: startTimestamp, message, code?, errorType?, metadata?; no id.
    data: dict[str, object] = {"startTimestamp": iso(timestamp), "message": message_text}
    if error_type:
        data["errorType"] = text(error_type)
    metadata: dict[str, object] = {}
    stack = attrs.get(_EXC_STACKTRACE)
    if stack:
        metadata["stacktrace"] = text(stack)
    if description and description != message_text:
        metadata[_STATUS_DESCRIPTION] = description
    if metadata:
        data["metadata"] = metadata
    return (ref[0], ref[1], "add-error", data)


def close_records(described: Described, own: Ref, options: Options, records: list[RawRecord]) -> None:
    """Append the records after the span's children: its result or error, then its end."""
    kind = described.kind
    if kind == genai.GENERATION:
        result = _generation_result(described, own[1], options)
        if result is not None:
            records.append((own[0], own[1], "result", {"result": result}))
        if described.output_files and options.capture_content:
            records.extend(attachment_records(own[1], described.output_files, "output"))
    elif kind == genai.TOOL_CALL:
        if described.error is not None:
            records.append((own[0], own[1], "error", {"error": described.error}))
        elif described.result is not None and options.capture_content:
            records.append((own[0], own[1], "result", {"result": described.result}))
    records.append((own[0], own[1], "end", {"endTimestamp": iso(described.end)}))


def _generation_result(described: Described, gen_id: str, options: Options) -> dict[str, object] | None:
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
        "created": described.created or whole_ns(described.end) // 1_000_000_000,
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


def trace_input(root_attributes: Attributes, options: Options) -> str | None:
    """The root's input, read as any span's is."""
    if not options.capture_content:
        return None
    return content_text(root_attributes, _CONTENT_INPUTS)


def trace_output(root_attributes: Attributes, options: Options) -> str | None:
    """The root's output, read as any span's is."""
    if not options.capture_content:
        return None
    return content_text(root_attributes, _CONTENT_OUTPUTS)


def trace_close_records(trace_id: str, root: Described, output: str | None, records: list[RawRecord]) -> None:
    """Append the trace's output and its end, from the root span."""
    if output is not None:
        records.append(("trace", trace_id, "update", {"output": output}))
    records.append(("trace", trace_id, "end", {"endTimestamp": iso(root.end)}))
