"""One trace's finished spans -> its Maxim records, parent-first.

Pure functions: no I/O, no clocks, no shared state (a rate-limited log aside).  The exporter keeps the
:class:`TraceState` of each trace it has sent (frozen, see :meth:`TraceState.freeze`),
so that spans arriving after their trace was sent (a child outliving its root, a
trace sent early because it was held too long) attach to what Maxim already has.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain, islice
from operator import attrgetter
from typing import NamedTuple

from opentelemetry.sdk.trace import ReadableSpan

from otel_maxim import conventions as conv
from otel_maxim._log import RateLimitedLog
from otel_maxim.ids import maxim_id, open_trace_ids
from otel_maxim.mapping import _span, genai
from otel_maxim.mapping._common import (
    Attributes,
    as_text,
    attributes_of,
    first,
    iso,
    prefixed,
    span_hex,
    text,
    trace_hex,
)
from otel_maxim.records import RawRecord

_limited = RateLimitedLog(logging.getLogger(__name__))

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


#: A sent trace as the exporter keeps it (see :meth:`TraceState.freeze`).
SentTrace = tuple[str | int, ...]

#: The most spans of one sent trace whose later children are placed under them: the newest.  A
#: trace whose root stays open (a worker loop, a websocket) is sent batch after batch; remembering
#: every span of it would grow without end, and each batch would thaw and freeze all of them.  A
#: child that comes after four batches of newer spans of its trace is rare: it attaches to the trace.
MAX_CONTAINERS = 2_048


@dataclass
class TraceState:
    """What is remembered of a trace already sent."""

    maxim_id: str
    #: span id -> where that span's children attach.
    containers: dict[int, Ref] = field(default_factory=dict)
    #: Whether the trace's root arrived (and the trace was ended).
    root_seen: bool = False
    #: Whether the trace's ``create`` named a session (Maxim joins a trace to a session only there).
    in_session: bool = False

    def freeze(self) -> SentTrace:
        """This state as one flat tuple: ``(maxim id, root seen, in session, span id, entity, id, ...)``.

        The exporter remembers thousands of sent traces.  The garbage collector stops tracking a
        tuple of strings and numbers the first time it looks at it, so frozen states add nothing
        to its full passes.  A class instance or a dict would be walked on every one of them, and
        so would a tuple of tuples, as long as it is looked at before what it holds.

        Only the newest :data:`MAX_CONTAINERS` spans are kept.
        """
        flat: list[str | int] = [self.maxim_id, self.root_seen, self.in_session]
        containers = self.containers.items()
        for span_id, (entity, id_) in islice(containers, max(0, len(containers) - MAX_CONTAINERS), None):
            flat += (span_id, entity, id_)
        return tuple(flat)

    @classmethod
    def thaw(cls, sent: SentTrace) -> TraceState:
        containers: dict[int, Ref] = {}
        for i in range(3, len(sent), 3):
            span_id, entity, id_ = sent[i : i + 3]
            containers[int(span_id)] = (str(entity), str(id_))
        return cls(str(sent[0]), containers, bool(sent[1]), bool(sent[2]))


class MappedTrace(NamedTuple):
    records: list[RawRecord]
    state: TraceState
    #: Start of the trace in this batch, for the session's ``create``.
    start_ns: int
    #: The trace's session, read from its spans when the trace is first mapped (``None`` on a later batch).
    session: SessionInfo | None


def session_of(spans: Iterable[ReadableSpan]) -> SessionInfo | None:
    """The session of a trace, from any of its spans (the caller puts the root first)."""
    return _session_in(map(attributes_of, spans))


def _session_in(span_attributes: Iterable[Attributes]) -> SessionInfo | None:
    """The session named by the first of these spans' attributes that names one."""
    for attributes in span_attributes:
        if not attributes:
            continue
        # Stripped, as the baggage, Session and end_session() strip it: " conv-7" is conv-7's session.
        original = as_text(attributes.get(conv.SESSION_ID)).strip()
        if not original:
            original = as_text(first(attributes, conv.FOREIGN_SESSION_ID_KEYS)).strip()
        if not original:
            continue
        name = attributes.get(conv.SESSION_NAME)
        return SessionInfo(
            id=maxim_id(original),
            original_id=original,
            name=None if name is None else text(name),
            tags=prefixed(attributes, conv.SESSION_TAGS_PREFIX),
        )
    return None


#: Spans in start order (the span id breaks ties, so the order is the same on every run).
_start_order = attrgetter("start", "span_id")
#: Spans in end order.
_end_order = attrgetter("end", "start")


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
    by_id: dict[int, genai.Described] = {}
    for described in sorted(map(genai.describe, spans), key=_start_order):
        span_id = described.span_id
        if span_id in by_id or (prior is not None and span_id in prior.containers):
            _limited.warning(
                "duplicate-span",
                "Dropping a second span with the id %s in trace %s.",
                span_hex(span_id),
                _trace_of(spans[0]),
            )
            continue
        by_id[span_id] = described

    children: dict[int, list[genai.Described]] = {}
    tops: list[genai.Described] = []
    generations: list[genai.Described] = []  # for the trace's input and output when its root has none
    for described in by_id.values():  # already in start order
        parent_id = described.parent_id
        if parent_id is not None and parent_id in by_id:
            children.setdefault(parent_id, []).append(described)
        else:
            tops.append(described)
        if described.kind == genai.GENERATION:
            generations.append(described)

    root: genai.Described | None = None
    if prior is None or not prior.root_seen:
        candidates = [d for d in tops if d.parent_id is None or d.parent_remote]
        if candidates:
            root = next((d for d in candidates if d.parent_id is None), candidates[0])

    # The root's attributes, tags and metadata, read once: for the trace's records and the root's own.
    root_attributes: Attributes = {}
    root_tags: dict[str, str] = {}
    root_metadata: dict[str, str] = {}
    if root is not None:
        root_attributes = root.attributes
        root_tags, root_metadata = _span.tags_and_metadata(root_attributes, root.kind, options.max_attributes)
    records: list[RawRecord] = []
    start_ns = next(iter(by_id.values())).start if by_id else 0  # the earliest start: they are in start order
    if prior is None:
        # The root first, then the other spans at the top, then the rest; a span met again names
        # no session (the search would have stopped at it), so none needs leaving out.
        first_looked_at = [root] if root is not None else []
        session = _session_in(d.attributes for d in chain(first_looked_at, tops, by_id.values()))
        trace_id = _maxim_trace_id(root_attributes, spans)
        state = TraceState(trace_id, in_session=session is not None)
        # The trace is named by its root, else its earliest top span, else (every span in a
        # parent cycle) its earliest span.
        source = root if root is not None else (tops[0] if tops else next(iter(by_id.values()), None))
        if source is not None:
            data: dict[str, object] = {
                "name": source.span_name,
                "tags": root_tags,
                "startTimestamp": iso(root.start if root is not None and root.start else start_ns),
            }
            if session is not None:
                data["sessionId"] = session.id
            if options.capture_content:
                value = _span.trace_input(root_attributes, options)
                if value is None:
                    value = _first_user_message(generations)
                if value is not None:
                    data["input"] = value
            records.append(("trace", trace_id, "create", data))
    else:
        # A copy: ``prior`` stays as it was if mapping these spans fails half way.
        session = None
        state = TraceState(prior.maxim_id, dict(prior.containers), prior.root_seen, prior.in_session)
        trace_id = prior.maxim_id
        if root is not None:
            # A root that arrives after its trace was sent (held too long): what it says of the trace.
            records.append(("trace", trace_id, "update", {"name": root.span_name}))
            if root_tags:
                records.append(("trace", trace_id, "update", {"tags": root_tags}))
            value = _span.trace_input(root_attributes, options)
            if value is not None:
                records.append(("trace", trace_id, "update", {"input": value}))
            late_session = None if prior.in_session else _session_in([root_attributes])
            if late_session is not None:
                _limited.warning(
                    "late-session",
                    "Trace %s was sent before its root, which names session %s; Maxim joins a trace to a "
                    "session only when the trace is created, so this trace stays out of it.",
                    trace_id,
                    late_session.original_id,
                )

    trace_ref: Ref = ("trace", trace_id)
    stack: list[tuple[bool, genai.Described, Ref]] = []
    for top in reversed(tops):
        if top is root:
            continue
        parent = top.parent_id
        ref = state.containers.get(parent, trace_ref) if parent is not None else trace_ref
        stack.append((True, top, ref))
    if root is not None:
        if root.kind == genai.SPAN:
            state.containers[root.span_id] = trace_ref
            _span.own_records(root, trace_ref, trace_ref, options, records, metadata=root_metadata, is_trace=True)
            for child in reversed(children.get(root.span_id, ())):
                stack.append((True, child, trace_ref))
        else:
            # A root that is itself a generation, tool call or retrieval (an LLM call with no
            # application span around it): the trace, and that entity inside it.
            stack.append((True, root, trace_ref))
    opened = _walk(stack, children, state, options, records)
    root_counted = 1 if root is not None and root.kind == genai.SPAN else 0
    if opened + root_counted < len(by_id):
        # Only a cycle of parent ids (a producer's bug) leaves spans unreached.  Each cycle is
        # entered at one of its spans, attached to the trace; the rest hang below it as sent.
        _limited.warning(
            "parent-cycle",
            "%d spans of trace %s form a parent cycle; attaching the cycle to the trace.",
            len(by_id) - opened - root_counted,
            trace_id,
        )
        for described in by_id.values():
            if described.span_id not in state.containers:
                stack.append((True, _cycle_entry(described, by_id), trace_ref))
                _walk(stack, children, state, options, records)

    if root is not None:
        state.root_seen = True
        output = _span.trace_output(root_attributes, options)
        if output is None and options.capture_content:
            output = _last_assistant_answer(generations)
        _span.trace_close_records(trace_id, root, output, records)
    return MappedTrace(records, state, start_ns, session)


def _walk(
    stack: list[tuple[bool, genai.Described, Ref]],
    children: Mapping[int, Sequence[genai.Described]],
    state: TraceState,
    options: _span.Options,
    records: list[RawRecord],
) -> int:
    """Append the records of the spans on ``stack`` and of all below them; return how many spans were opened.

    Depth-first, parent-first, siblings by start time; an explicit stack, so deep trees cannot
    exhaust Python's recursion limit.  Each span: its announcement, its children, then its end.
    A span already placed (met again in a parent cycle) is not opened twice.
    """
    opened = 0
    containers = state.containers
    while stack:
        opening, described, ref = stack.pop()  # ref: the parent's when opening, the span's own when closing
        if not opening:
            _span.close_records(described, ref, options, records)
            continue
        if described.span_id in containers:
            continue
        opened += 1
        own_ref = _span.open_records(described, ref, options, records)
        # Only traces and spans take children: below a generation, tool call or retrieval,
        # children attach to the nearest trace or span above it.
        container = own_ref if own_ref[0] == "span" else ref
        containers[described.span_id] = container
        stack.append((False, described, own_ref))
        for child in reversed(children.get(described.span_id, ())):
            stack.append((True, child, container))
    return opened


def _cycle_entry(described: genai.Described, by_id: Mapping[int, genai.Described]) -> genai.Described:
    """A span of the parent cycle above ``described`` (not reached, so each parent is in ``by_id``)."""
    met: set[int] = set()
    while described.span_id not in met:
        met.add(described.span_id)
        described = by_id[described.parent_id]  # type: ignore[index]
    return described


def _trace_of(span: ReadableSpan) -> str:
    return trace_hex(span.context.trace_id) if span.context else "?"


def _maxim_trace_id(root_attributes: Attributes, spans: Sequence[ReadableSpan]) -> str:
    chosen = root_attributes.get(conv.TRACE_ID)
    if chosen is not None and chosen != "":  # a number is its text, as a session id is
        return maxim_id(as_text(chosen))
    trace_id: int = spans[0].context.trace_id  # type: ignore[union-attr]
    # No root here: one still open may have chosen the id (Session.trace(id=...) in this process).
    return open_trace_ids.get(trace_id) or trace_hex(trace_id)


def _first_user_message(generations: Iterable[genai.Described]) -> str | None:
    """The newest user message of the trace's first generation (the trace's input when its root has none);
    ``generations``: the trace's, in start order.

    A chat model gets the whole conversation: the turn's own question is the last user message.
    """
    for described in generations:
        for message in reversed(described.messages):
            if message.get("role") == "user" and message.get("content"):
                return str(message["content"])
    return None


def _last_assistant_answer(generations: Iterable[genai.Described]) -> str | None:
    """The answer of the trace's last generation (the trace's output when its root has none): its first
    choice with content, as maxim-py takes a trace's output from ``choices[0]``.  ``generations``: the
    trace's, in start order (which orders those that end at the same time)."""
    # reversed(), not reverse=True: of two alike in end and start, the later in the list comes first.
    for described in reversed(sorted(generations, key=_end_order)):
        for choice in described.choices:
            content = choice.get("message", {}).get("content")
            if content:
                return str(content)
    return None
