"""One trace's finished spans -> its Maxim records, parent-first.

Pure functions: no I/O, no clocks, no shared state.  The exporter keeps a
:class:`TraceState` for each trace it has sent, so that spans arriving after
their trace was sent (a child outliving its root, a trace sent early because it
was held too long) attach to what Maxim already has.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from opentelemetry.sdk.trace import ReadableSpan

from otel_maxim import conventions as conv
from otel_maxim.ids import maxim_id
from otel_maxim.mapping import _span
from otel_maxim.mapping._common import first, iso, prefixed, span_hex, text, trace_hex
from otel_maxim.records import Record

_logger = logging.getLogger(__name__)

#: Where a child's ``add-*`` record goes: (entity, id) of the nearest trace or span above it.
Ref = tuple[str, str]


@dataclass(frozen=True)
class SessionInfo:
    """The session a trace belongs to, as read from its spans."""

    id: str  # the Maxim id (mapped when needed)
    original_id: str
    name: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)

    def create_data(self, start_ns: int) -> dict[str, object]:
        tags = dict(self.tags)
        if self.id != self.original_id:
            tags[conv.ORIGINAL_ID_TAG] = self.original_id
        data: dict[str, object] = {}
        if self.name is not None:
            data["name"] = self.name
        data["tags"] = tags
        data["startTimestamp"] = iso(start_ns)
        return data


@dataclass
class TraceState:
    """What is remembered of a trace already sent."""

    maxim_id: str
    session: SessionInfo | None
    #: span id -> where that span's children attach.
    containers: dict[int, Ref] = field(default_factory=dict)
    #: Whether the trace's root arrived (and the trace was ended).
    root_seen: bool = False


class MappedTrace(NamedTuple):
    records: list[Record]
    state: TraceState
    #: Start of the trace in this batch, for the session's ``create``.
    start_ns: int


def session_of(spans: Sequence[ReadableSpan]) -> SessionInfo | None:
    """The session of a trace, from any of its spans (the caller puts the root first)."""
    for span in spans:
        attributes = span.attributes
        if not attributes:
            continue
        raw = attributes.get(conv.SESSION_ID)
        if raw is None or raw == "":
            raw = first(attributes, conv.FOREIGN_SESSION_ID_KEYS)
        if raw is None or raw == "":
            continue
        original = raw if isinstance(raw, str) else text(raw) or ""
        name = attributes.get(conv.SESSION_NAME)
        return SessionInfo(
            id=maxim_id(original),
            original_id=original,
            name=None if name is None else text(name),
            tags=prefixed(attributes, conv.SESSION_TAGS_PREFIX),
        )
    return None


def _sort_key(span: ReadableSpan) -> tuple[int, int]:
    return (span.start_time or 0, span.context.span_id if span.context else 0)


def _is_root_candidate(span: ReadableSpan) -> bool:
    return span.parent is None or span.parent.is_remote


def map_trace(
    spans: Sequence[ReadableSpan],
    prior: TraceState | None,
    options: _span.Options,
) -> MappedTrace:
    """Map the finished ``spans`` of one trace (any order) to records in parent-first order.

    ``prior`` is the state of the trace if records of it were already sent.
    The root is the span with no parent, else the earliest span whose parent is
    remote; a span whose (local) parent is not here attaches to the trace itself.
    """
    by_id: dict[int, ReadableSpan] = {}
    for span in sorted(spans, key=_sort_key):
        span_id = span.context.span_id  # type: ignore[union-attr]
        if span_id in by_id or (prior is not None and span_id in prior.containers):
            _logger.warning("Dropping a second span with the id %s in trace %s.", span_hex(span_id), _trace_of(span))
            continue
        by_id[span_id] = span

    children: dict[int, list[ReadableSpan]] = {}
    tops: list[ReadableSpan] = []
    for span in by_id.values():  # already in start order
        parent_id = span.parent.span_id if span.parent is not None else None
        if parent_id is not None and parent_id in by_id:
            children.setdefault(parent_id, []).append(span)
        else:
            tops.append(span)

    root: ReadableSpan | None = None
    if prior is None or not prior.root_seen:
        candidates = [s for s in tops if _is_root_candidate(s)]
        if candidates:
            root = next((s for s in candidates if s.parent is None), candidates[0])

    records: list[Record] = []
    start_ns = min((s.start_time or 0) for s in by_id.values()) if by_id else 0
    if prior is None:
        ordered = ([root] if root is not None else []) + [s for s in tops if s is not root]
        session = session_of(ordered + [s for s in by_id.values() if s not in ordered])
        source = root if root is not None else (tops[0] if tops else None)
        trace_id = _maxim_trace_id(root, spans)
        state = TraceState(trace_id, session)
        if source is not None:
            records.append(_trace_create(trace_id, source, root is not None, session, start_ns, options))
    else:
        state = prior
        trace_id = prior.maxim_id
        if root is not None:
            records.append(Record("trace", trace_id, "update", {"name": root.name}))
            tags = prefixed(root.attributes or {}, conv.TAGS_PREFIX)
            if tags:
                records.append(Record("trace", trace_id, "update", {"tags": tags}))

    trace_ref: Ref = ("trace", trace_id)
    if root is not None:
        state.containers[root.context.span_id] = trace_ref  # type: ignore[union-attr]
        records.extend(_span.own_records(root, trace_ref, options, is_trace=True))

    # Depth-first, parent-first, siblings by start time; an explicit stack, so deep trees cannot
    # exhaust Python's recursion limit.  Each span: its announcement, its children, then its end.
    stack: list[tuple[bool, ReadableSpan, Ref]] = []
    for top in reversed(tops):
        if top is root:
            continue
        parent = top.parent.span_id if top.parent is not None else None
        ref = state.containers.get(parent, trace_ref) if parent is not None else trace_ref
        stack.append((True, top, ref))
    if root is not None:
        for child in reversed(children.get(root.context.span_id, ())):  # type: ignore[union-attr]
            stack.append((True, child, trace_ref))
    seen = 0
    while stack:
        opening, span, ref = stack.pop()
        span_id = span.context.span_id  # type: ignore[union-attr]
        if not opening:
            records.extend(_span.close_records(span, state.containers[span_id], options))
            continue
        seen += 1
        opened, own_ref = _span.open_records(span, ref, options)
        records.extend(opened)
        # Only traces and spans take children: below a generation, tool call or retrieval,
        # children attach to the nearest trace or span above it.
        container = own_ref if own_ref[0] == "span" else ref
        state.containers[span_id] = container
        stack.append((False, span, own_ref))
        for child in reversed(children.get(span_id, ())):
            stack.append((True, child, container))

    if root is not None:
        state.root_seen = True
        records.extend(_span.trace_close_records(root, trace_id, options))
    unreached = len(by_id) - seen - (1 if root is not None else 0)
    if unreached:
        # Only a cycle of parent ids (a producer's bug) leaves spans unreached: attach them to the trace.
        _logger.warning("%d spans of trace %s form a parent cycle; attaching them to the trace.", unreached, trace_id)
        for span in by_id.values():
            if span.context.span_id not in state.containers:  # type: ignore[union-attr]
                opened, own_ref = _span.open_records(span, trace_ref, options)
                records.extend(opened)
                state.containers[span.context.span_id] = own_ref if own_ref[0] == "span" else trace_ref  # type: ignore[union-attr]
                records.extend(_span.close_records(span, own_ref, options))
    return MappedTrace(records, state, start_ns)


def _trace_of(span: ReadableSpan) -> str:
    return trace_hex(span.context.trace_id) if span.context else "?"


def _maxim_trace_id(root: ReadableSpan | None, spans: Sequence[ReadableSpan]) -> str:
    if root is not None and root.attributes:
        chosen = root.attributes.get(conv.TRACE_ID)
        if isinstance(chosen, str) and chosen:
            return maxim_id(chosen)
    return trace_hex(spans[0].context.trace_id)  # type: ignore[union-attr]


def _trace_create(
    trace_id: str,
    source: ReadableSpan,
    is_root: bool,
    session: SessionInfo | None,
    start_ns: int,
    options: _span.Options,
) -> Record:
    attributes = source.attributes or {}
    data: dict[str, object] = {
        "name": source.name,
        "tags": prefixed(attributes, conv.TAGS_PREFIX) if is_root else {},
        "startTimestamp": iso(source.start_time if is_root and source.start_time else start_ns),
    }
    if session is not None:
        data["sessionId"] = session.id
    if is_root:
        value = _span.trace_input(source, options)
        if value is not None:
            data["input"] = value
    return Record("trace", trace_id, "create", data)
