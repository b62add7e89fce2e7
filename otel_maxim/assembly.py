"""Holding each trace's spans until the trace can be sent in parent-first order.

OTel spans finish children-first and reach the exporter in batches that cut
across traces.  The :class:`TraceAssembler` keeps a trace's spans until its
root ends, bounded in time (``timeout``) and memory (``max_spans``): a trace
held too long, or the oldest traces when too many spans are held, are let go
early, and the mapping still puts what arrived in a valid order.  Memory is
bounded by count (``max_spans``, ``max_traces``) and by an estimate of the held
spans' bytes (``max_bytes``, see :func:`held_size`), made for a span only when
it stays held past the batch that brought it.

"Root" is the top of what this process can see.  In-process, a span whose
parent is remote (it came in a ``traceparent`` header) is a local root and
completes the trace at once, and so does a span whose parent is open in the
process this one was forked from.  With ``cross_service_grace`` set (the bridge,
where several services' spans of one trace arrive), a remote parent may still
arrive, so such a trace waits that many seconds for it; only a span with no
parent at all completes a trace at once.

Not thread-safe: the exporter serialises calls.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Container, Iterator, Mapping, Sequence
from typing import NamedTuple

from opentelemetry.sdk.trace import ReadableSpan

from otel_maxim.mapping._common import attributes_of, events_of

__all__ = ["Ready", "TraceAssembler", "attributes_size", "held_size"]

#: What a finished span holds besides its texts and its attribute values (the SDK's span, context, status,
#: the containers): measured with tracemalloc, about 3.4 KB for a span with 5 short attributes and an event.
_SPAN_BYTES = 2_000
#: An attribute besides its texts: its entry, its key's object and a scalar value's object.
_ATTRIBUTE_BYTES = 100
_EVENT_BYTES = 500
#: What the objects inside a sequence or mapping value take in CPython (3.11, 64-bit), measured with
#: ``sys.getsizeof`` and with tracemalloc over 100 000 items of each kind: a reference 8 bytes, a text's
#: header 49 (ASCII; about 75 otherwise; empty and one-character texts are shared), bytes' 33, a float 24,
#: an int outside -5..256 32 (those are shared, as are booleans and ``None``), a tuple's or a list's header
#: about 40, a dict 64 empty, 184 with up to 5 keys and about 32 a key past that.  A mapping's keys count
#: as objects of their own, as the bridge decodes them (in-process they are often shared literals, and
#: a list of small mappings counts up to 1.6 times what it takes).  Counted as 8 bytes an item whatever
#: it was, 1,536 floats of an embedding counted 12 KB for the 49 KB they hold.
_REF_BYTES = 8
_STR_BYTES = 49
_WIDE_STR_BYTES = 76
_BYTES_BYTES = 33
_FLOAT_BYTES = 24
_INT_BYTES = 32
_SEQUENCE_BYTES = 40
_EMPTY_DICT_BYTES = 64
_SMALL_DICT_BYTES = 184
_SMALL_DICT_KEYS = 5
_DICT_KEY_BYTES = 32


def held_size(span: ReadableSpan) -> int:
    """About how many bytes ``span`` keeps alive: its texts in full, the objects of its attribute values,
    and a fixed part for the rest.

    Texts are its name, its status description, and the keys and values of its attributes and
    of its events' and links' attributes, each with the event's name; a text of non-ASCII
    characters counts 4 bytes a character (CPython keeps up to 4).  Never raises: a span that
    cannot be measured (a hand-made one with odd parts) counts as the fixed part alone.
    """
    try:
        size = _SPAN_BYTES + _text_size(span.name) + attributes_size(attributes_of(span))
        status = span.status
        if status is not None:
            size += _text_size(status.description)
        for event in events_of(span):
            size += _EVENT_BYTES + _text_size(event.name) + attributes_size(event.attributes)
        for link in span.links or ():
            size += _EVENT_BYTES + attributes_size(link.attributes)
    except Exception:  # a measure, not a check: the span still goes through
        return _SPAN_BYTES
    return size


def attributes_size(attributes: object) -> int:
    """About how many bytes an attributes mapping holds (see :func:`held_size`); 0 for anything else."""
    if not isinstance(attributes, Mapping):
        return 0
    size = 0
    for key, value in attributes.items():
        size += _ATTRIBUTE_BYTES + _text_size(key)
        if type(value) is str:
            size += len(value) if value.isascii() else 4 * len(value)
        elif isinstance(value, (tuple, list)):
            # A flat sequence of scalars, mostly: counted whole, whatever its length.
            size += _SEQUENCE_BYTES + _REF_BYTES * len(value)
            for item in value:
                size += _nested_size(item) if isinstance(item, (tuple, list, dict)) else _object_size(item)
        elif isinstance(value, dict):
            size += _nested_size(value)
        else:
            size += _text_size(value)
    return size


#: The most items of one nested value that are looked at (a hand-made value that refers to itself never
#: ends; the SDK's and the bridge's are trees, and this is far past any real one).
_MAX_ITEMS = 1_000_000


def _nested_size(value: object) -> int:
    """A sequence or mapping value inside another: its objects and their texts.  Values may nest (the SDK
    takes mappings and nested sequences since 1.4x, ``AnyValue``, as dicts and tuples); they are walked
    without recursion."""
    size = 0
    stack = [value]
    for _ in range(_MAX_ITEMS):
        if not stack:
            break
        item = stack.pop()
        if isinstance(item, dict):
            size += _dict_size(len(item))
            for key, inner in item.items():
                size += _object_size(key)
                stack.append(inner)
        elif isinstance(item, (tuple, list)):
            size += _SEQUENCE_BYTES + _REF_BYTES * len(item)
            stack.extend(item)
        else:
            size += _object_size(item)
    return size


def _dict_size(keys: int) -> int:
    if not keys:
        return _EMPTY_DICT_BYTES
    return _SMALL_DICT_BYTES + _DICT_KEY_BYTES * max(0, keys - _SMALL_DICT_KEYS)


def _object_size(value: object) -> int:
    """A scalar inside a sequence or mapping: its object (0 for those CPython shares) and its text."""
    if isinstance(value, str):
        if value.isascii():
            return len(value) + (_STR_BYTES if len(value) > 1 else 0)
        return 4 * len(value) + _WIDE_STR_BYTES
    if isinstance(value, float):
        return _FLOAT_BYTES
    if isinstance(value, int):
        return 0 if -5 <= value <= 256 else _INT_BYTES  # booleans too
    if isinstance(value, bytes):
        return len(value) + _BYTES_BYTES
    return 0


def _text_size(value: object) -> int:
    """What :func:`held_size` counts for a text (a byte a character if ASCII, else 4) or bytes; 0 for anything else."""
    if isinstance(value, str):
        return len(value) if value.isascii() else 4 * len(value)
    if isinstance(value, bytes):
        return len(value)
    return 0


class Ready(NamedTuple):
    """Spans of one trace that can be mapped now, and why they were let go."""

    trace_id: int
    spans: list[ReadableSpan]
    #: ``complete`` (its root ended), ``late`` (the trace was sent before), ``timeout``,
    #: ``memory`` (let go early to stay under ``max_spans`` / ``max_traces``) or ``flush`` (shutdown).
    reason: str


class _Pending:
    __slots__ = ("complete_at", "deadline", "size", "sized", "spans")

    def __init__(self, deadline: float) -> None:
        self.spans: list[ReadableSpan] = []
        self.deadline = deadline
        self.complete_at: float | None = None
        self.size = 0  # the estimated bytes of spans[:sized]
        self.sized = 0

    @property
    def due(self) -> float:
        """When its wait is over: at its deadline, or sooner once it is complete (after the grace, if any)."""
        return self.deadline if self.complete_at is None else min(self.deadline, self.complete_at)


class TraceAssembler:
    def __init__(
        self,
        *,
        timeout: float,
        max_spans: int,
        max_traces: int = 10_000,
        max_bytes: int = 128 * 1024 * 1024,
        cross_service_grace: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._timeout = timeout
        self._max_spans = max_spans
        self._max_traces = max_traces
        self._max_bytes = max_bytes
        self._grace = cross_service_grace
        self._clock = clock
        self._pending: OrderedDict[int, _Pending] = OrderedDict()  # oldest first
        self._held = 0
        self._held_bytes = 0
        #: Spans open in the process this one was forked from: a child of one completes its trace here.
        self.foreign_parents: frozenset[int] = frozenset()
        #: Seconds from the last :meth:`add` until the soonest wait over of the traces it held
        #: (``None``: it held none), for whoever waits to :meth:`expire` them (see ``next_due``).
        self.added_due: float | None = None

    @property
    def held_spans(self) -> int:
        return self._held

    @property
    def held_bytes(self) -> int:
        """The estimated bytes of the spans held (see :func:`held_size`)."""
        return self._held_bytes

    def pending(self) -> Iterator[tuple[int, Sequence[ReadableSpan]]]:
        """The traces being held: (trace id, spans so far)."""
        for trace_id, pending in self._pending.items():
            yield trace_id, pending.spans

    def add(self, spans: Sequence[ReadableSpan], sent: Container[int]) -> list[Ready]:
        """Take a batch of finished spans; return what can be mapped now.

        ``sent`` holds the ids of traces already sent: their spans are ``late``
        and go straight through.
        """
        now = self._clock()
        late: dict[int, list[ReadableSpan]] = {}
        touched: dict[int, None] = {}
        for span in spans:
            trace_id = span.context.trace_id  # type: ignore[union-attr]
            if trace_id in sent:
                late.setdefault(trace_id, []).append(span)
                continue
            pending = self._pending.get(trace_id)
            if pending is None:
                pending = self._pending[trace_id] = _Pending(now + self._timeout)
            pending.spans.append(span)
            self._held += 1
            touched[trace_id] = None
            parent = span.parent
            if parent is None:
                pending.complete_at = now
            elif (parent.is_remote or parent.span_id in self.foreign_parents) and pending.complete_at is None:
                pending.complete_at = now if self._grace is None else now + self._grace

        ready = [Ready(trace_id, batch, "late") for trace_id, batch in late.items()]
        soonest: float | None = None
        for trace_id in touched:
            pending = self._pending[trace_id]
            if pending.complete_at is not None and pending.complete_at <= now:
                ready.append(self._release(trace_id, "complete"))
            else:  # held past this batch: what it holds counts now
                soonest = pending.due if soonest is None else min(soonest, pending.due)
                added = sum(map(held_size, pending.spans[pending.sized :]))
                pending.size += added
                pending.sized = len(pending.spans)
                self._held_bytes += added
        while (
            self._held > self._max_spans or len(self._pending) > self._max_traces or self._held_bytes > self._max_bytes
        ) and self._pending:
            ready.append(self._release(next(iter(self._pending)), "memory"))
        self.added_due = None if soonest is None else max(0.0, soonest - now)
        return ready

    def expire(self) -> list[Ready]:
        """Traces whose wait is over: past the timeout, or past the cross-service grace."""
        now = self._clock()
        due = [
            (trace_id, "complete" if p.complete_at is not None and p.complete_at <= now else "timeout")
            for trace_id, p in self._pending.items()
            if p.due <= now
        ]
        return [self._release(trace_id, reason) for trace_id, reason in due]

    def next_due(self) -> float | None:
        """Seconds until :meth:`expire` has something to return (``None``: nothing is held)."""
        if not self._pending:
            return None
        soonest = min(p.due for p in self._pending.values())
        return max(0.0, soonest - self._clock())

    def forget_all(self, foreign_parents: frozenset[int] = frozenset()) -> None:
        """Drop everything held (a forked child: its parent sends these); ``foreign_parents`` are the
        spans the parent had open where the child was forked, which the child cannot see end."""
        self._pending.clear()
        self._held = 0
        self._held_bytes = 0
        self.foreign_parents = foreign_parents

    def release_all(self) -> list[Ready]:
        """Everything held, oldest first (shutdown)."""
        return [self._release(trace_id, "flush") for trace_id in list(self._pending)]

    def _release(self, trace_id: int, reason: str) -> Ready:
        pending = self._pending.pop(trace_id)
        self._held -= len(pending.spans)
        self._held_bytes -= pending.size
        return Ready(trace_id, pending.spans, reason)
