"""OTLP/HTTP trace requests in, SDK ``ReadableSpan`` objects out: pure functions, no I/O (a log line aside).

The bridge (:mod:`otel_maxim.bridge`) decodes a request body in three steps:

1. :func:`decompress`: undo ``Content-Encoding`` (gzip, deflate or none),
   bounded so that a small compressed body cannot expand without limit;
2. :func:`parse_request`: protobuf or OTLP JSON into an
   ``ExportTraceServiceRequest`` (the ``opentelemetry-proto`` type).  OTLP JSON
   differs from proto3 JSON in one place: trace and span ids are hex strings,
   not base64;
3. :func:`spans_from_request`: every valid span becomes a
   :class:`~opentelemetry.sdk.trace.ReadableSpan` with the real SDK types
   (``SpanContext``, ``Resource``, ``InstrumentationScope``, ``Event``,
   ``Link``, ``Status``); a span with an invalid trace or span id is counted as
   rejected, for OTLP's partial-success answer.

Decoding costs CPU for each item a request carries (a span, an attribute, an
item of an array value, ...), and a small body can carry millions of them: a
request of more than :data:`MAX_ITEMS` raises :class:`TooManyItems` (a
:class:`BodyTooLarge`, which the bridge answers 413).  OTLP JSON is counted
right after ``json.loads``, before the costly protobuf JSON parser; protobuf
(cheap to parse) as its spans are built, each container counted before any of
its items is.

Whether a span's parent is remote decides how the exporter assembles a trace
across services (see :mod:`otel_maxim.assembly`): OTLP carries it in the span's
``flags`` (bits 8 and 9).  When the producer says nothing (older SDKs), the
parent is taken as remote, so a trace waits at most the cross-service grace for
it instead of the whole trace timeout; a parent that does arrive still makes
the span its child, never a root.
"""

from __future__ import annotations

import base64
import functools
import json
import logging
import zlib
from collections.abc import Iterable, Mapping, MutableMapping, Sequence
from typing import Any, NamedTuple

from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory  # type: ignore[import-untyped]  # typed by types-protobuf when installed
from google.protobuf.descriptor import FieldDescriptor  # type: ignore[import-untyped]
from google.protobuf.message import DecodeError, Message  # type: ignore[import-untyped]
from google.rpc import status_pb2  # type: ignore[import-untyped]  # googleapis-common-protos ships no py.typed
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope as SdkScope
from opentelemetry.trace import Link, SpanContext, SpanKind, StatusCode, TraceFlags, TraceState
from opentelemetry.trace.status import Status as SdkStatus

from otel_maxim._log import RateLimitedLog
from otel_maxim.assembly import attributes_size

__all__ = [
    "CONTENT_TYPE_JSON",
    "CONTENT_TYPE_PROTOBUF",
    "MAX_ITEMS",
    "BodyTooLarge",
    "DecodedSpans",
    "OtlpDecodeError",
    "TooManyItems",
    "decompress",
    "encode_response",
    "encode_status",
    "parse_request",
    "spans_from_request",
]

CONTENT_TYPE_PROTOBUF = "application/x-protobuf"
CONTENT_TYPE_JSON = "application/json"

#: Says what a request holds that the SDK would refuse; the bridge counts these per request (see its
#: ``_SdkRefusals``) and says them once.
_logger = logging.getLogger(__name__)
_limited = RateLimitedLog(_logger)

#: ``google.rpc.Code`` values used in error bodies.
CODE_INVALID_ARGUMENT = 3
CODE_RESOURCE_EXHAUSTED = 8
CODE_INTERNAL = 13
CODE_UNAVAILABLE = 14
CODE_UNAUTHENTICATED = 16

_HAS_IS_REMOTE = 0x100  # SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK
_IS_REMOTE = 0x200  # SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK

#: OTLP ``Span.SpanKind`` (1-based, 0 = unspecified) -> the SDK's ``SpanKind``.
_KINDS: Mapping[int, SpanKind] = {
    Span.SPAN_KIND_UNSPECIFIED: SpanKind.INTERNAL,
    Span.SPAN_KIND_INTERNAL: SpanKind.INTERNAL,
    Span.SPAN_KIND_SERVER: SpanKind.SERVER,
    Span.SPAN_KIND_CLIENT: SpanKind.CLIENT,
    Span.SPAN_KIND_PRODUCER: SpanKind.PRODUCER,
    Span.SPAN_KIND_CONSUMER: SpanKind.CONSUMER,
}
_STATUS_CODES: Mapping[int, StatusCode] = {
    Status.STATUS_CODE_UNSET: StatusCode.UNSET,
    Status.STATUS_CODE_OK: StatusCode.OK,
    Status.STATUS_CODE_ERROR: StatusCode.ERROR,
}

#: OTLP JSON keys holding hex ids, in both spellings a receiver must accept.
_SPAN_ID_KEYS = ("traceId", "trace_id", "spanId", "span_id", "parentSpanId", "parent_span_id")
_LINK_ID_KEYS = ("traceId", "trace_id", "spanId", "span_id")
#: What a malformed hex id becomes: one byte, a length no id has, so the span is rejected, not the request.
_BAD_ID = base64.b64encode(b"\xff").decode("ascii")
#: How much compressed input an inflater gets at a time, and the most it gives back at a time.
_DECOMPRESS_CHUNK = 1 << 16
#: Most gzip members in one body (senders write one; a body of countless empty ones is an attack).
MAX_GZIP_MEMBERS = 1000
#: How much of a parser's complaint (which may quote the request) a log line and a 400 answer show.
_DETAIL_LIMIT = 300
#: Most items one request may carry, counted before they are built: the elements of every repeated field
#: (resource and scope spans, spans, events, links, attributes, and the items of array and key-value-list
#: values, however nested); as OTLP JSON, the items of every list.
#:
#: Each item costs CPU to decode, most of all as OTLP JSON (``json_format.ParseDict`` takes 4 to 11
#: microseconds an item), and an item can be tiny: an empty value is 3 bytes of JSON (2 of protobuf), so a
#: body of ``max_body_bytes`` (20 MiB, some 20 KB gzipped) held 7 million of them and took 28 s of CPU and
#: 850 MB.  A million caps the worst at some 10 s (900 000 key-value-list entries fill 20 MiB of JSON),
#: within twice what 20 MiB of ordinary JSON attributes takes (about 6 s), which no bound on items can
#: lower without refusing real requests.  It is far above what those carry: the bridge takes at most
#: ``queue_size`` spans a request (16 384 by default; the shipped Collector configurations send at most
#: 4096), and a span carries tens of attributes, an LLM application's rarely more than a hundred.  A
#: request over it is answered 413, which its sender does not retry: a lower bound would lose real data.
MAX_ITEMS = 1_000_000


class OtlpDecodeError(ValueError):
    """The request body is not an OTLP trace request; the message says why (it is sent to the client)."""


class BodyTooLarge(OtlpDecodeError):
    """The body, once decompressed, is larger than allowed."""


class TooManyItems(BodyTooLarge):
    """The request carries more than :data:`MAX_ITEMS` items (answered as too large: retrying cannot help)."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"the request holds more than {limit} items (spans, events, links, attributes and the values "
            "of arrays and key-value lists): send smaller batches"
        )


class DecodedSpans(NamedTuple):
    """What a request held: the spans to export, and how many were rejected and why."""

    spans: list[ReadableSpan]
    rejected: int
    #: Empty when nothing was rejected.
    error_message: str
    #: About how many bytes the resources' and scopes' attributes hold, which all the spans of a resource
    #: share (:func:`~otel_maxim.assembly.held_size` counts a span's own).
    values_bytes: int = 0


# --- 1. Content-Encoding ----------------------------------------------------


def decompress(body: bytes, encoding: str | None, limit: int) -> bytes:
    """Undo ``encoding`` (``gzip``, ``deflate``, ``identity`` or none); at most ``limit`` bytes out.

    Raises :class:`BodyTooLarge` past ``limit`` and :class:`OtlpDecodeError`
    for a corrupt stream or an unsupported encoding.
    """
    coding = (encoding or "identity").strip().lower()
    if coding in ("", "identity"):
        if len(body) > limit:
            raise BodyTooLarge(f"the body is larger than {limit} bytes")
        return body
    if coding in ("gzip", "x-gzip"):
        wbits = 16 + zlib.MAX_WBITS
    elif coding == "deflate":
        wbits = 32 + zlib.MAX_WBITS  # zlib stream (RFC 9110's "deflate"); raw deflate is tried below
    else:
        raise OtlpDecodeError(f"unsupported Content-Encoding {encoding!r}: use gzip, deflate or none")
    try:
        return _inflate(body, wbits, limit)
    except zlib.error as exc:
        if coding != "deflate":
            raise OtlpDecodeError(f"the body is not valid {coding} data: {_detail(exc)}") from None
        wrapped = exc
    try:
        return _inflate(body, -zlib.MAX_WBITS, limit)
    except zlib.error as exc:
        # Say what is wrong with the form the body looks like: a zlib (or gzip) stream by its header, else raw.
        wrong = wrapped if _has_zlib_header(body) else exc
        raise OtlpDecodeError(f"the body is not valid deflate data: {_detail(wrong)}") from None


def _has_zlib_header(body: bytes) -> bool:
    """Whether ``body`` starts as a zlib stream (RFC 1950: method 8, header check) or a gzip member does."""
    if body[:2] == b"\x1f\x8b":
        return True
    return len(body) >= 2 and body[0] & 0x0F == 8 and (body[0] << 8 | body[1]) % 31 == 0


def _inflate(data: bytes, wbits: int, limit: int) -> bytes:
    """Inflate ``data``, gzip member after member, feeding the inflater bounded slices.

    Each member's inflater gets the body a slice at a time, so what it leaves over (the next
    members) is never copied whole: a body of many tiny members costs time in proportion to
    its size, and past :data:`MAX_GZIP_MEMBERS` members it is refused.
    """
    out = bytearray()
    view = memoryview(data)
    position = 0  # how far into ``data`` the inflaters have been fed
    members = 0
    while True:  # gzip allows several members one after another
        members += 1
        if members > MAX_GZIP_MEMBERS:
            raise zlib.error(f"more than {MAX_GZIP_MEMBERS} gzip members")
        inflater = zlib.decompressobj(wbits)
        while not inflater.eof:
            piece: bytes | memoryview = inflater.unconsumed_tail
            if not piece:
                if position >= len(view):
                    # All the input is in, but the inflater may still hold output that the last call's
                    # max_length held back (a raw deflate stream ending just past a slice boundary does).
                    more = inflater.decompress(b"", min(_DECOMPRESS_CHUNK, limit + 1 - len(out)))
                    if not more and not inflater.eof:
                        raise zlib.error("the compressed stream is truncated")
                    out += more
                    if len(out) > limit:
                        raise BodyTooLarge(f"the decompressed body is larger than {limit} bytes")
                    continue
                piece = view[position : position + _DECOMPRESS_CHUNK]
                position += len(piece)
            out += inflater.decompress(piece, min(_DECOMPRESS_CHUNK, limit + 1 - len(out)))
            if len(out) > limit:
                raise BodyTooLarge(f"the decompressed body is larger than {limit} bytes")
        position -= len(inflater.unused_data)  # fed to this member, but the start of the next one
        if position >= len(view) or wbits < 0:
            return bytes(out)


def _detail(exc: BaseException) -> str:
    """A parser's complaint for a log line and a 400 answer: it may quote the client's text, so it is
    escaped (no line breaks or control characters reach the log) and cut to a few hundred characters."""
    text = str(exc)
    shown = text[:_DETAIL_LIMIT].encode("unicode_escape").decode("ascii")
    return shown + "..." if len(text) > _DETAIL_LIMIT else shown


# --- 2. protobuf or OTLP JSON -------------------------------------------------


def parse_request(body: bytes, content_type: str) -> ExportTraceServiceRequest:
    """Parse a (decompressed) body as ``content_type``; :class:`OtlpDecodeError` if it is not a trace request."""
    request = ExportTraceServiceRequest()
    if content_type == CONTENT_TYPE_PROTOBUF:
        try:
            _parse_protobuf(body, request)
        except (DecodeError, RecursionError, ValueError) as exc:
            raise OtlpDecodeError(f"the body is not a protobuf ExportTraceServiceRequest: {_detail(exc)}") from None
        return request
    if content_type == CONTENT_TYPE_JSON:
        try:
            document = json.loads(body)
        except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
            raise OtlpDecodeError(f"the body is not JSON: {_detail(exc)}") from None
        if not isinstance(document, dict):
            raise OtlpDecodeError("the body is not a JSON object (an OTLP ExportTraceServiceRequest)")
        _check_json_items(document, MAX_ITEMS)
        _hex_ids_to_base64(document)
        try:
            json_format.ParseDict(document, request, ignore_unknown_fields=True)
        except (json_format.ParseError, RecursionError, ValueError, TypeError) as exc:
            raise OtlpDecodeError(f"the body is not an OTLP JSON ExportTraceServiceRequest: {_detail(exc)}") from None
        return request
    raise OtlpDecodeError(f"unsupported Content-Type {content_type!r}")


def _parse_protobuf(body: bytes, request: ExportTraceServiceRequest) -> None:
    """Read ``body`` into ``request``; a request whose only fault is strings that are not UTF-8 is read
    with U+FFFD for their bad bytes (older runtimes do not say which fault they met: the second way tells)."""
    try:
        request.ParseFromString(body)
    except DecodeError as refused:
        try:
            _parse_replacing_bad_utf8(body, request)
        except (DecodeError, RecursionError, ValueError):
            raise refused from None


def _parse_replacing_bad_utf8(body: bytes, request: ExportTraceServiceRequest) -> None:
    """Read ``body`` into ``request`` with each string that is not valid UTF-8 decoded with U+FFFD.

    proto3 forbids such strings and the protobuf runtime refuses the whole message for one of them,
    but the Collector's receivers take them and pass them on: refusing would cost every span batched
    with the bad one (a 400, which no client retries).  The body is read with a copy of the OTLP
    messages whose strings are bytes, then copied over, decoding them.
    """
    lenient = _lenient_request_class().FromString(body)
    request.Clear()  # what the strict parse read before it stopped
    replaced = 0
    stack: list[tuple[Message, Message]] = [(lenient, request)]
    while stack:  # iterative: as deep as AnyValue nests, which the runtime already bounded
        source, target = stack.pop()
        for field, value in source.ListFields():
            name = field.name
            if field.message_type is not None:
                if _is_repeated(field):
                    items = getattr(target, name)
                    stack.extend((item, items.add()) for item in value)
                else:
                    child = getattr(target, name)
                    child.SetInParent()  # an empty message set is still set (an empty AnyValue, say)
                    stack.append((value, child))
            elif target.DESCRIPTOR.fields_by_name[name].type == FieldDescriptor.TYPE_STRING:
                texts = [_text_of(raw) for raw in (value if _is_repeated(field) else [value])]
                replaced += sum(not ok for _, ok in texts)
                if _is_repeated(field):
                    getattr(target, name).extend(text for text, _ in texts)
                else:
                    setattr(target, name, texts[0][0])
            elif _is_repeated(field):
                getattr(target, name).extend(value)
            else:
                setattr(target, name, value)
    _limited.warning(
        "bad-utf8",
        "An OTLP request held %d strings that are not valid UTF-8; they were read with U+FFFD for the bad bytes.",
        replaced,
    )


def _is_repeated(field: FieldDescriptor) -> bool:
    repeated = getattr(field, "is_repeated", None)  # protobuf 6 and later: ``label`` is gone
    return repeated if isinstance(repeated, bool) else field.label == FieldDescriptor.LABEL_REPEATED


def _text_of(raw: bytes) -> tuple[str, bool]:
    """``raw`` as text, bad bytes as U+FFFD, and whether it was valid UTF-8."""
    try:
        return raw.decode("utf-8"), True
    except UnicodeDecodeError:
        return raw.decode("utf-8", "replace"), False


@functools.cache
def _lenient_request_class() -> type[Message]:
    """``ExportTraceServiceRequest`` with every string field made ``bytes`` (the wire format is the same),
    in a descriptor pool of its own, under the package ``lenient.`` (made once, when first needed)."""
    pool = descriptor_pool.DescriptorPool()
    for file in _with_dependencies(ExportTraceServiceRequest.DESCRIPTOR.file):
        proto = descriptor_pb2.FileDescriptorProto()
        file.CopyToProto(proto)
        proto.name = "lenient/" + proto.name
        proto.package = "lenient." + proto.package
        proto.dependency[:] = ["lenient/" + name for name in proto.dependency]
        del proto.service[:]  # the gRPC service: not needed to read a request
        messages = list(proto.message_type)
        while messages:
            message = messages.pop()
            messages.extend(message.nested_type)
            for field in message.field:
                if field.type == FieldDescriptor.TYPE_STRING:
                    field.type = FieldDescriptor.TYPE_BYTES
                if field.type_name.startswith("."):
                    field.type_name = ".lenient" + field.type_name
        pool.Add(proto)
    full_name = "lenient." + ExportTraceServiceRequest.DESCRIPTOR.full_name
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(full_name))  # type: ignore[no-any-return]


def _with_dependencies(file: Any) -> list[Any]:
    """``file`` and the files it imports, each after those it imports."""
    ordered: list[Any] = []

    def visit(current: Any) -> None:
        if current in ordered:
            return
        for dependency in current.dependencies:
            visit(dependency)
        ordered.append(current)

    visit(file)
    return ordered


def _check_json_items(document: dict[str, Any], limit: int) -> None:
    """Raise :class:`TooManyItems` if the lists of a parsed JSON document hold more than ``limit`` items in all.

    Every list counts, wherever it is: in OTLP JSON each is a repeated field (an unknown one too, which
    the parser would skip, so it counts more than it must, never less).  An object's entries do not: its
    known fields are few, and the parser skips unknown ones at less than ``json.loads`` took to read them.
    Iterative, so that no nesting ``json.loads`` accepts can exhaust the stack; a few percent of what
    ``ParseDict`` takes for the same document.
    """
    items = 0
    stack: list[dict[str, Any] | list[Any]] = [document]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            items += len(node)
            if items > limit:
                raise TooManyItems(limit)
            children: Iterable[Any] = node
        else:
            children = node.values()
        for child in children:
            if type(child) is dict or type(child) is list:  # what json.loads makes: no subclasses
                stack.append(child)


def _hex_ids_to_base64(document: dict[str, Any]) -> None:
    """Rewrite OTLP JSON's hex ids as the base64 that proto3 JSON expects, in place."""
    for resource_spans in _dicts(document.get("resourceSpans", document.get("resource_spans"))):
        for scope_spans in _dicts(resource_spans.get("scopeSpans", resource_spans.get("scope_spans"))):
            for span in _dicts(scope_spans.get("spans")):
                _rewrite_ids(span, _SPAN_ID_KEYS)
                for link in _dicts(span.get("links")):
                    _rewrite_ids(link, _LINK_ID_KEYS)


def _dicts(value: object) -> Iterable[dict[str, Any]]:
    if isinstance(value, list):
        return [item for item in value if isinstance(item, dict)]
    return ()


def _rewrite_ids(node: MutableMapping[str, Any], keys: Iterable[str]) -> None:
    for key in keys:
        value = node.get(key)
        if not isinstance(value, str):
            continue  # absent, or not a string: ParseDict reports the latter
        try:
            raw = bytes.fromhex(value)
        except ValueError:
            node[key] = _BAD_ID
            continue
        node[key] = base64.b64encode(raw).decode("ascii")


# --- 3. spans ------------------------------------------------------------------


def span_count(request: ExportTraceServiceRequest) -> int:
    """How many spans ``request`` holds, before any is built (a span costs far more built than parsed)."""
    return sum(
        len(scope_spans.spans)
        for resource_spans in request.resource_spans
        for scope_spans in resource_spans.scope_spans
    )


def spans_from_request(request: ExportTraceServiceRequest) -> DecodedSpans:
    """Every span of ``request`` as a ``ReadableSpan``; spans with invalid ids are counted, not returned.

    Raises :class:`TooManyItems` as soon as the items counted pass :data:`MAX_ITEMS`, before the
    container that passes it has any of its items built.
    """
    spans: list[ReadableSpan] = []
    rejected = 0
    reasons: dict[str, None] = {}
    shared_bytes = 0
    counter = _Items()
    counter.count(len(request.resource_spans))
    for resource_spans in request.resource_spans:
        counter.count(len(resource_spans.scope_spans))
        resource_attributes = _attributes(resource_spans.resource.attributes, counter)
        shared_bytes += attributes_size(resource_attributes)
        resource = Resource(resource_attributes, resource_spans.schema_url or None)
        for scope_spans in resource_spans.scope_spans:
            counter.count(len(scope_spans.spans))
            scope = _scope(scope_spans.scope, scope_spans.schema_url, counter)
            shared_bytes += attributes_size(scope.attributes)
            for span in scope_spans.spans:
                reason = _invalid(span)
                if reason is not None:
                    rejected += 1
                    reasons[reason] = None
                    continue
                spans.append(_readable(span, resource, scope, counter))
    message = ""
    if rejected:
        message = f"{rejected} span{'s' if rejected != 1 else ''} rejected: {'; '.join(reasons)}"
    return DecodedSpans(spans, rejected, message, shared_bytes)


def _invalid(span: Span) -> str | None:
    if len(span.trace_id) != 16 or not any(span.trace_id):
        return "invalid trace id (must be 16 bytes, 32 hex digits, not all zero)"
    if len(span.span_id) != 8 or not any(span.span_id):
        return "invalid span id (must be 8 bytes, 16 hex digits, not all zero)"
    if len(span.parent_span_id) not in (0, 8):
        return "invalid parent span id (must be empty or 8 bytes, 16 hex digits)"
    return None


def _readable(span: Span, resource: Resource, scope: SdkScope, counter: _Items) -> ReadableSpan:
    events, links = span.events, span.links
    counter.count(len(events) + len(links))
    trace_id = int.from_bytes(span.trace_id, "big")
    # A span reached an exporter, so it was sampled; Python's encoder leaves the trace-flag bits at 0.
    flags = TraceFlags((span.flags & 0xFF) | TraceFlags.SAMPLED)
    context = SpanContext(
        trace_id,
        int.from_bytes(span.span_id, "big"),
        is_remote=False,
        trace_flags=flags,
        trace_state=_trace_state(span.trace_state),
    )
    parent: SpanContext | None = None
    parent_id = int.from_bytes(span.parent_span_id, "big") if span.parent_span_id else 0
    if parent_id:
        parent = SpanContext(trace_id, parent_id, is_remote=_parent_is_remote(span.flags), trace_flags=flags)
    status = _STATUS_CODES.get(span.status.code, StatusCode.UNSET)
    dropped = span.dropped_attributes_count
    make = functools.partial(_LimitedSpan, dropped) if dropped else ReadableSpan
    return make(
        name=span.name,
        context=context,
        parent=parent,
        resource=resource,
        attributes=_attributes(span.attributes, counter),
        events=[Event(e.name, _attributes(e.attributes, counter), e.time_unix_nano) for e in events],
        links=[link for link in (_link(link, counter) for link in links) if link is not None],
        kind=_KINDS.get(span.kind, SpanKind.INTERNAL),
        # The SDK keeps a description only with ERROR (and warns otherwise).
        status=SdkStatus(status, (span.status.message or None) if status is StatusCode.ERROR else None),
        start_time=span.start_time_unix_nano,
        end_time=span.end_time_unix_nano,
        instrumentation_scope=scope,
    )


class _LimitedSpan(ReadableSpan):
    """A span whose producer dropped some of its attributes (a span limit): OTLP carries their count,
    which a ``ReadableSpan`` made from a mapping would report as 0.  The exporter reads it to know an
    end marker that a count limit of 1 left with only its ``session.id``."""

    def __init__(self, dropped_attributes: int, **fields: Any) -> None:
        super().__init__(**fields)
        self._dropped_attributes = dropped_attributes

    @property
    def dropped_attributes(self) -> int:
        return self._dropped_attributes


def _parent_is_remote(flags: int) -> bool:
    """Bits 8 and 9 of OTLP span flags; unknown (bit 8 clear) counts as remote, see the module docstring."""
    if flags & _HAS_IS_REMOTE:
        return bool(flags & _IS_REMOTE)
    return True


def _link(link: Span.Link, counter: _Items) -> Link | None:
    if len(link.trace_id) != 16 or len(link.span_id) != 8 or not any(link.trace_id) or not any(link.span_id):
        return None  # a link to nothing is dropped; the span itself is fine
    context = SpanContext(
        int.from_bytes(link.trace_id, "big"),
        int.from_bytes(link.span_id, "big"),
        is_remote=_parent_is_remote(link.flags),
        trace_flags=TraceFlags(link.flags & 0xFF),
        trace_state=_trace_state(link.trace_state),
    )
    return Link(context, _attributes(link.attributes, counter))


def _trace_state(header: str) -> TraceState | None:
    if not header:
        return None
    return TraceState.from_header([header])


def _scope(scope: InstrumentationScope, schema_url: str, counter: _Items) -> SdkScope:
    return SdkScope(
        scope.name,
        scope.version or None,
        schema_url or None,
        _attributes(scope.attributes, counter) or None,
    )


# --- attribute values ---------------------------------------------------------


class _Items:
    """The items (see :data:`MAX_ITEMS`) of a request counted so far."""

    __slots__ = ("items", "limit")

    def __init__(self) -> None:
        self.items = 0
        self.limit = MAX_ITEMS

    def count(self, items: int) -> None:
        """Count a container's ``items`` before they are built; :class:`TooManyItems` past the limit."""
        self.items += items
        if self.items > self.limit:
            raise TooManyItems(self.limit)


def _attributes(pairs: Sequence[KeyValue], counter: _Items) -> dict[str, Any]:
    """OTLP key-values as the SDK holds attributes (since 1.4x, ``AnyValue``): primitives as they are,
    arrays as tuples and key-value lists as dicts (nested as deep as they come), bytes as base64
    text, an empty value as ``None``.  An empty key is dropped, as the SDK drops it.  The values
    count as ``counter``'s items."""
    counter.count(len(pairs))
    attributes = {pair.key: _attribute(pair.value, counter) for pair in pairs}
    if "" in attributes:
        del attributes[""]
        _logger.warning("Dropped an attribute with an empty key, as the SDK drops it.")
    return attributes


def _attribute(value: AnyValue, counter: _Items) -> Any:
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "int_value":
        return value.int_value
    if kind == "double_value":
        return value.double_value
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode("ascii")
    if kind == "array_value":
        values = value.array_value.values
        counter.count(len(values))
        return tuple(_attribute(item, counter) for item in values)
    if kind == "kvlist_value":
        pairs = value.kvlist_value.values
        counter.count(len(pairs))
        return {kv.key: _attribute(kv.value, counter) for kv in pairs if kv.key}
    return None  # unset (an empty value), or a profiling-only string index


# --- responses ------------------------------------------------------------------


def encode_response(rejected: int, error_message: str, content_type: str) -> bytes:
    """An ``ExportTraceServiceResponse``, with ``partial_success`` when spans were rejected."""
    response = ExportTraceServiceResponse()
    if rejected or error_message:
        response.partial_success.CopyFrom(
            ExportTracePartialSuccess(rejected_spans=rejected, error_message=error_message)
        )
    return _encode(response, content_type)


def encode_status(code: int, message: str, content_type: str) -> bytes:
    """A ``google.rpc.Status`` error body, as OTLP/HTTP prescribes for failed requests."""
    return _encode(status_pb2.Status(code=code, message=message), content_type)


def _encode(message: Any, content_type: str) -> bytes:
    if content_type == CONTENT_TYPE_PROTOBUF:
        data: bytes = message.SerializeToString()
        return data
    text: str = json_format.MessageToJson(message, indent=None)
    return text.encode("utf-8")
