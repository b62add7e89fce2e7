"""``MaximSpanExporter``: finished OTel spans in, Maxim session/trace records out.

``export(spans)`` runs three steps, all on the caller's thread (the SDK's
batching worker, never an application thread):

1. assemble: group the spans by trace and hold each trace until its root ends
   (:mod:`otel_maxim.assembly`); pick out session-end markers;
2. map: each trace that is ready becomes records, parent-first
   (:mod:`otel_maxim.mapping`), preceded by its session's ``create`` the first
   time the session is seen; a marker becomes the session's ``end`` once none
   of that session's traces is still held;
3. send: each trace's records become text lines as soon as they are mapped, and the
   batch's lines go to a sink (a local file by default) in one write.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence, Sized
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from otel_maxim import conventions as conv
from otel_maxim import environment_variables as env
from otel_maxim._config import LONGEST_WAIT, env_str, resolve_bool, resolve_int, resolve_seconds, wait_budget
from otel_maxim._fork import reinit_after_fork
from otel_maxim._log import RateLimitedLog
from otel_maxim._reentry import InsideMark
from otel_maxim.assembly import Ready, TraceAssembler
from otel_maxim.mapping import Options, SentTrace, SessionInfo, TraceState, map_trace, session_of
from otel_maxim.mapping._common import attributes_of, iso
from otel_maxim.records import ORJSON_AVAILABLE, RawRecord, Record, data_encoder, fit_record, mapped_line, serialize
from otel_maxim.sinks import FileSink, Sink

__all__ = ["MaximSpanExporter"]

_logger = logging.getLogger(__name__)

DEFAULT_RECORDS_FILE = "maxim-records.log"
DEFAULT_TRACE_TIMEOUT = 300.0
DEFAULT_MAX_HELD_SPANS = 100_000
DEFAULT_MAX_HELD_TRACES = 10_000
DEFAULT_MAX_HELD_BYTES = 128 * 1024 * 1024
DEFAULT_MAX_RECORD_BYTES = 1_000_000
#: Traces remembered after they were sent, so late spans attach to them: at most this many, and at
#: most :data:`_SENT_SPANS` of their spans in all (about 130 bytes each), the oldest forgotten first.
#: A trace remembers up to 2,048 spans (``MAX_CONTAINERS``): 16,384 such traces took 4 GiB.
_SENT_TRACES = 16_384
_SENT_SPANS = 262_144
#: Sessions remembered as created / ended (a session seen again after eviction is created again:
#: Maxim treats ``create`` of an existing session as an update).
_KNOWN_SESSIONS = 65_536

#: A callable applied to every record before it leaves the process; it returns the record
#: to send (changed or not) or ``None`` to send nothing.
Redactor = Callable[[Record], "Record | None"]


class MaximSpanExporter(SpanExporter):
    """Export finished spans as Maxim session/trace records.

    Every argument defaults to ``None``: the environment decides, then the
    default (see ``otel_maxim.environment_variables``).  With no API key the
    records are appended to a local file: ``output``, else
    ``MAXIM_RECORDS_FILE``, else ``maxim-records.log``; ``output="-"`` writes
    to standard output.  ``sink`` replaces the destination altogether.

    With an API key and a log repository id, records go to Maxim's log API
    (:class:`otel_maxim.sinks.maxim_api.MaximApiSink`) at ``base_url``
    (``MAXIM_BASE_URL``, default ``https://app.getmaxim.ai``).  What the API
    does not take within ``export_timeout`` seconds (``MAXIM_EXPORT_TIMEOUT``,
    default 10, retries included) waits on disk in ``spool_dir``
    (``MAXIM_SPOOL_DIR``, default ``<user cache dir>/otel-maxim/spool``), at
    most ``max_spool_bytes`` (``MAXIM_MAX_SPOOL_BYTES``, default 256 MiB), and
    is sent when the API answers again, also by the next process using that
    directory.  A plain ``http://`` base URL is refused unless its host is
    loopback or ``allow_insecure`` (``MAXIM_ALLOW_INSECURE``) is true.

    ``fast_json`` (``MAXIM_FAST_JSON``; default: true when orjson is installed)
    has orjson write records' data, compact as Maxim's JS SDK writes it; false
    writes maxim-py's bytes with the standard library.
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        repo_id: str | None = None,
        base_url: str | None = None,
        output: str | os.PathLike[str] | None = None,
        sink: Sink | None = None,
        capture_content: bool | None = None,
        redact: Redactor | None = None,
        trace_timeout: float | None = None,
        max_held_spans: int | None = None,
        cross_service_grace: float | None = None,
        spool_dir: str | os.PathLike[str] | None = None,
        max_spool_bytes: int | None = None,
        export_timeout: float | None = None,
        allow_insecure: bool | None = None,
        max_held_traces: int | None = None,
        max_record_bytes: int | None = None,
        max_attributes: int | None = None,
        fast_json: bool | None = None,
        max_held_bytes: int | None = None,
    ) -> None:
        _check_types(sink, api_key=api_key, repo_id=repo_id, base_url=base_url, output=output, spool_dir=spool_dir)
        self._limited = RateLimitedLog(_logger)  # per exporter: one's outage does not silence another's
        self._options = Options(
            capture_content=resolve_bool(capture_content, "capture_content", env.MAXIM_CAPTURE_CONTENT, True),
            max_attributes=resolve_int(max_attributes, "max_attributes", env.MAXIM_MAX_ATTRIBUTES, 128, minimum=0),
        )
        self._max_record_bytes = resolve_int(
            max_record_bytes, "max_record_bytes", env.MAXIM_MAX_RECORD_BYTES, DEFAULT_MAX_RECORD_BYTES, minimum=1024
        )
        if redact is not None and not callable(redact):
            raise ValueError("redact must be callable")
        self._redact = redact
        if fast_json and not ORJSON_AVAILABLE:
            raise ValueError(
                "fast_json=True needs orjson (the 'fast' extra: pip install '.[fast]' in a checkout of otel_maxim)"
            )
        fast = resolve_bool(fast_json, "fast_json", env.MAXIM_FAST_JSON, ORJSON_AVAILABLE)
        if fast and not ORJSON_AVAILABLE:
            _logger.warning(
                "%s is true but orjson is not installed; records are written by the standard library.",
                env.MAXIM_FAST_JSON,
            )
            fast = False
        # A redact callback may put any object in a record: the standard library writes those as
        # maxim-py would (orjson writes some, enums, its own way), in the same style.
        self._encode = data_encoder(fast=fast and redact is None, compact=fast)
        timeout = resolve_seconds(
            trace_timeout, "trace_timeout", env.MAXIM_TRACE_TIMEOUT, DEFAULT_TRACE_TIMEOUT, minimum=0
        )
        max_spans = resolve_int(
            max_held_spans, "max_held_spans", env.MAXIM_MAX_HELD_SPANS, DEFAULT_MAX_HELD_SPANS, minimum=0
        )
        if cross_service_grace is not None and not 0 <= cross_service_grace <= LONGEST_WAIT:
            raise ValueError(f"cross_service_grace must be at least 0 and at most {LONGEST_WAIT}")
        max_traces = resolve_int(
            max_held_traces, "max_held_traces", env.MAXIM_MAX_HELD_TRACES, DEFAULT_MAX_HELD_TRACES, minimum=0
        )
        max_bytes = resolve_int(
            max_held_bytes, "max_held_bytes", env.MAXIM_MAX_HELD_BYTES, DEFAULT_MAX_HELD_BYTES, minimum=0
        )
        self._assembler = TraceAssembler(
            timeout=timeout,
            max_spans=max_spans,
            max_traces=max_traces,
            max_bytes=max_bytes,
            cross_service_grace=cross_service_grace,
        )
        self._sink = (
            sink
            if sink is not None
            else _default_sink(
                api_key,
                repo_id,
                base_url,
                output,
                spool_dir=spool_dir,
                max_spool_bytes=max_spool_bytes,
                export_timeout=export_timeout,
                allow_insecure=allow_insecure,
            )
        )

        self._lock = threading.RLock()  # map + write, so records leave in order whichever thread sends
        self._sent: OrderedDict[int, SentTrace] = OrderedDict()
        self._sent_spans = 0  # the spans that the traces in _sent remember
        #: (trace id, span id) of the end markers taken: a marker delivered again (an OTLP retry through a
        #: Collector and the bridge) is not a second end, which would run the session's evaluations again.
        self._markers_seen: OrderedDict[tuple[int, int], None] = OrderedDict()
        #: session id -> hashes of the name and of the tags it was created or updated with (``None``: none
        #: given), not the texts themselves: 65,536 sessions of long names would hold a lot.
        self._sessions_created: OrderedDict[str, tuple[int | None, int | None]] = OrderedDict()
        #: session id -> (session, end time, traces to wait for, monotonic time after which not to wait).
        self._held_ends: dict[str, tuple[SessionInfo, int, tuple[int, ...], float]] = {}
        #: While end markers wait: held trace id -> (its spans read so far, the session found in them).
        self._held_sessions: dict[int, tuple[int, str | None]] = {}
        self._trace_timeout = timeout
        self._shutdown = False
        #: A shutdown called back from inside the exporter's work: (the thread doing that work, seconds).
        self._deferred: tuple[int, float] | None = None
        self._deferred_lock = threading.Lock()
        self._shut_down = threading.Event()  # set when a shutdown has completed
        self._busy = InsideMark()  # on: this thread is doing the exporter's work, where user code may call back
        self._wake = threading.Event()  # set: the exporter shuts down, or a trace held now is due sooner
        self._reaper: threading.Thread | None = None
        self._reaper_wakes_at = math.inf  # when the reaper looks next (time.monotonic())
        reinit_after_fork(self)

    def _after_fork(self) -> None:
        """In a forked child: the lock may be a copy held by a thread that is not there; no reaper runs.

        What the parent holds (spans of unfinished traces, session ends waiting for a trace) is the
        parent's to send, as the SDK's batch processor empties its queue in the child; what the parent
        sent stays known, so that a span the child adds to one of those traces attaches to it.
        A shutdown that another thread of the parent had under way (or had deferred) is over in
        the child, which has no such thread: its ``shutdown()`` must not wait for it.
        """
        self._lock = threading.RLock()
        self._busy = InsideMark()
        self._deferred = None
        self._deferred_lock = threading.Lock()
        self._shut_down = threading.Event()
        if self._shutdown:
            self._shut_down.set()
        self._wake = threading.Event()
        self._reaper = None
        # The forking thread's spans go on in the parent, which ends and sends them: what the child
        # does below one of them completes its trace here at once (not held for a root that never
        # ends here), and is sent as spans of that trace, which the parent ends.
        self._assembler.forget_all(_open_spans_at_fork())
        self._held_ends = {}
        self._held_sessions = {}

    def __repr__(self) -> str:
        return f"MaximSpanExporter(sink={self._sink!r})"

    def _working_here(self) -> bool:
        """Whether this thread is doing the exporter's work (where a redact callback or the sink runs)."""
        return self._busy.on

    @property
    def sink(self) -> Sink:
        return self._sink

    # --- SpanExporter ------------------------------------------------------

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._shutdown:
            self._limited.warning("after-shutdown", "Exporter already shut down; %s spans not exported.", _count(spans))
            return SpanExportResult.FAILURE
        try:
            with self._lock:
                if self._shutdown:  # shut down while this export waited for the lock
                    self._limited.warning(
                        "after-shutdown", "Exporter already shut down; %s spans not exported.", _count(spans)
                    )
                    return SpanExportResult.FAILURE
                with self._busy:
                    ok = self._send(self._take(spans))
            self._ensure_reaper()
            return SpanExportResult.SUCCESS if ok else SpanExportResult.FAILURE
        except Exception:  # never raise into the SDK's worker (and so never into the application)
            self._limited.error("export", "Could not export %s spans to Maxim records.", _count(spans), exc_info=True)
            return SpanExportResult.FAILURE
        finally:
            self._finish_deferred_shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Send the traces whose wait is over, then flush the sink, within ``timeout_millis``."""
        deadline = time.monotonic() + wait_budget(timeout_millis, 30_000)
        if self._busy.on:
            self._limited.warning(
                "flush-inside",
                "force_flush was called from inside this exporter's own work (a redact callback or the sink); "
                "nothing is flushed.",
            )
            return False
        try:
            if not self._acquire(deadline, "flush"):
                return False
            try:
                with self._busy:
                    ready = self._assembler.expire()
                    lines = self._take_ready(ready)
                    if ready:
                        lines.extend(self._lines(self._release_ends()))
                    self._send(lines)
            finally:
                self._lock.release()
            return self._sink.flush(max(0.0, deadline - time.monotonic()))
        except Exception:  # see export()
            self._limited.error("flush", "Could not flush Maxim records.", exc_info=True)
            return False
        finally:
            self._finish_deferred_shutdown()

    def shutdown(self, timeout_millis: float = 30_000) -> None:
        """Send everything still held (traces sent early if their root never ended), then close the sink."""
        budget = wait_budget(timeout_millis, 30_000)
        if self._shutdown:
            if not self._busy.on:
                self._shut_down.wait(budget)  # one under way on another thread (or deferred): as long as it
            return
        self._shutdown = True  # from now on export() refuses spans, even one already waiting for the lock
        self._wake.set()
        if self._busy.on:
            # Called back from inside this exporter's own work (a redact callback, the sink): closing
            # the sink now would lose the records of the work under way, and waiting for it here would
            # wait for this very thread.  That work completes the shutdown when it is done.
            self._deferred = (threading.get_ident(), budget)
            self._limited.warning(
                "shutdown-inside",
                "shutdown was called from inside this exporter's own work (a redact callback or the sink); "
                "it completes when that work is done.",
            )
            return
        self._shut(time.monotonic() + budget)

    def _shut(self, deadline: float) -> None:
        try:
            self._shut_within(deadline)
        finally:
            self._shut_down.set()

    def _shut_within(self, deadline: float) -> None:
        try:
            if self._acquire(deadline, "shutdown"):
                try:
                    with self._busy:
                        held = self._assembler.held_spans
                        if held:
                            _logger.info("Shutting down: sending %d spans of traces whose root has not ended.", held)
                        lines = self._take_ready(self._assembler.release_all())
                        lines.extend(self._lines(self._release_ends(force=True)))
                        self._send(lines)
                finally:
                    self._lock.release()
            self._sink.close(max(0.0, deadline - time.monotonic()))
        except Exception:  # see export()
            _logger.exception("Could not shut the Maxim exporter down cleanly.")

    def _finish_deferred_shutdown(self) -> None:
        """Complete a shutdown that was called from inside the work this thread has just finished.

        Only that thread completes it: another (an application's ``force_flush``, the reaper) must
        not be made to wait for a shutdown it did not ask for.
        """
        deferred = self._deferred
        if deferred is None or deferred[0] != threading.get_ident() or self._busy.on:
            return
        with self._deferred_lock:  # taken once, whatever else runs
            if self._deferred is not deferred:
                return
            self._deferred = None
        self._shut(time.monotonic() + deferred[1])

    def _acquire(self, deadline: float, what: str) -> bool:
        """Take the lock by ``deadline``; an export stuck in its sink (a pipe nobody reads) may hold it."""
        if self._lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
            return True
        self._limited.warning(
            "busy-" + what,
            "Could not %s in time: an export is still writing records%s.",
            what,
            "; the traces still held are not sent" if what == "shutdown" else "",
        )
        return False

    # --- assemble and map ----------------------------------------------------

    def _take(self, spans: Sequence[ReadableSpan]) -> list[str]:
        markers: list[ReadableSpan] = []
        others: list[ReadableSpan] = []
        for span in spans:
            if attributes_of(span).get(conv.SESSION_END) is True or _stripped_marker(span):
                markers.append(span)
            else:
                others.append(span)
        lines = self._take_ready(self._assembler.add(others, self._sent))
        due = self._assembler.added_due
        if due is not None and time.monotonic() + due < self._reaper_wakes_at:
            self._wake.set()  # a trace held now is due before the reaper looks again: it looks now
        for marker in markers:
            self._on_marker(marker)
        lines.extend(self._lines(self._release_ends()))
        return lines

    def _take_ready(self, ready: list[Ready]) -> list[str]:
        """The lines of the traces that are ready; the caller then releases the session ends they allow."""
        # Each trace's records become lines before the next trace is mapped: only text is kept
        # for the whole batch, so the records of a batch (thousands of small dicts) never pile
        # up, and the garbage collector is not set off by them nor has them to go through.
        lines: list[str] = []
        for item in ready:
            try:
                records = self._map(item)
            except Exception:  # a mapping bug on odd input costs that trace, not the rest of the batch
                self._limited.error(
                    "map",
                    "Could not map trace %032x (%d spans); its records are not sent.",
                    item.trace_id,
                    len(item.spans),
                    exc_info=True,
                )
                continue
            lines.extend(self._lines(records))
        return lines

    def _map(self, item: Ready) -> list[RawRecord]:
        if item.reason in ("timeout", "memory"):
            self._limited.warning(
                "early-" + item.reason,
                "Sending %d spans of trace %032x before its root ended (%s); later spans will attach to it.",
                len(item.spans),
                item.trace_id,
                "held longer than the trace timeout"
                if item.reason == "timeout"
                else "too many spans, traces or bytes held",
            )
        sent = self._sent.get(item.trace_id)
        mapped = map_trace(item.spans, None if sent is None else TraceState.thaw(sent), self._options)
        self._remember_sent(item.trace_id, mapped.state.freeze())
        records: list[RawRecord] = []
        session = mapped.session
        if session is not None:
            self._session_records(session, mapped.start_ns, records)
        records.extend(mapped.records)
        return records

    def _session_records(self, session: SessionInfo, start_ns: int, records: list[RawRecord]) -> None:
        """The session's ``create`` the first time it is seen; later, an ``update`` of a name or tags it
        was not sent with (a title given after the first turn, a tag on resolution), as maxim-py sends
        them with each ``logger.session(...)``."""
        name = None if session.name is None else hash(session.name)
        tags = hash(frozenset(session.tags.items())) if session.tags else None
        sent = self._sessions_created.get(session.id)
        if sent is None:
            records.append(("session", session.id, "create", session.create_data(start_ns)))
            self._remember(self._sessions_created, session.id, (name, tags), _KNOWN_SESSIONS)
            return
        sent_name, sent_tags = sent
        if name is not None and name != sent_name:
            records.append(("session", session.id, "update", {"name": session.name}))
            sent_name = name
        if tags is not None and tags != sent_tags:
            records.append(("session", session.id, "update", {"tags": dict(session.tags)}))
            sent_tags = tags
        self._remember(self._sessions_created, session.id, (sent_name, sent_tags), _KNOWN_SESSIONS)

    def _on_marker(self, marker: ReadableSpan) -> None:
        """Hold the marker's session end until that session's traces are sent (see :meth:`_release_ends`)."""
        context = marker.context
        if context is not None:
            key = (context.trace_id, context.span_id)
            if key in self._markers_seen:
                _logger.debug("An end marker delivered again (span %016x): already taken.", context.span_id)
                return
            self._remember(self._markers_seen, key, None, _KNOWN_SESSIONS)
        session = session_of([marker])
        if session is None:
            self._limited.warning(
                "marker-no-id",
                "Ignoring a session-end marker with no session.id (%d of its attributes were dropped by the span's "
                "limits: OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT, OTEL_ATTRIBUTE_COUNT_LIMIT).",
                marker.dropped_attributes,
            )
            return
        after = attributes_of(marker).get(conv.SESSION_END_AFTER_TRACE)
        after_trace: int | None = None
        if isinstance(after, str):
            try:
                after_trace = int(after, 16)
            except ValueError:
                self._limited.warning(
                    "marker-after", "Ignoring an end marker's malformed %s.", conv.SESSION_END_AFTER_TRACE
                )
        end_ns = marker.end_time or marker.start_time or 0
        afters: tuple[int, ...] = () if after_trace is None else (after_trace,)
        held = self._held_ends.get(session.id)
        if held is not None:  # two ends before either was sent: one, at the later time, after both calls' traces
            self._limited.log(
                logging.INFO,
                "marker-twice-held",
                "A second end marker for session %s while its end waits: ending it once.",
                session.id,
            )
            end_ns = max(end_ns, held[1])
            afters = (*held[2], *afters)
        self._held_ends[session.id] = (session, end_ns, afters, time.monotonic() + self._trace_timeout)

    def _release_ends(self, *, force: bool = False) -> list[RawRecord]:
        """End the sessions whose markers arrived, of which no trace is still held, and whose
        marker's own trace (where ``end_session`` was called) was sent or waited for long enough."""
        if not self._held_ends:
            self._held_sessions.clear()
            return []
        busy: set[str] = set()
        if not force:
            now = time.monotonic()
            # The session of each held trace, read only from the spans that arrived since the last look.
            held_sessions: dict[int, tuple[int, str | None]] = {}
            for trace_id, spans in self._assembler.pending():
                seen, session_id = self._held_sessions.get(trace_id, (0, None))
                if seen > len(spans):  # not the trace that was looked at (released, then held again)
                    seen, session_id = 0, None
                if session_id is None and seen < len(spans):
                    session = session_of(spans[seen:])
                    session_id = session.id if session is not None else None
                    seen = len(spans)
                held_sessions[trace_id] = (seen, session_id)
                if session_id is not None:
                    busy.add(session_id)
            self._held_sessions = held_sessions
            for session_id, (_, _, afters, wait_until) in self._held_ends.items():
                if now < wait_until and any(after not in self._sent for after in afters):
                    busy.add(session_id)
        records: list[RawRecord] = []
        for session_id in [s for s in self._held_ends if s not in busy]:
            session, end_ns, _, _ = self._held_ends.pop(session_id)
            if session_id not in self._sessions_created:
                _logger.info("Session %s ended before any of its traces was seen here; creating it first.", session_id)
            self._session_records(session, end_ns, records)
            # Every marker ends the session, as maxim-py sends an end for every session.end(): a session
            # that goes on after its end (a user who comes back) is ended again after its later traces.
            records.append(("session", session_id, "end", {"endTimestamp": iso(end_ns)}))
        return records

    def _remember_sent(self, trace_id: int, state: SentTrace) -> None:
        sent = self._sent
        old = sent.get(trace_id)
        if old is not None:
            self._sent_spans -= _remembered_spans(old)
        sent[trace_id] = state
        sent.move_to_end(trace_id)
        self._sent_spans += _remembered_spans(state)
        while len(sent) > _SENT_TRACES or self._sent_spans > _SENT_SPANS:
            self._sent_spans -= _remembered_spans(sent.popitem(last=False)[1])

    @staticmethod
    def _remember(lru: OrderedDict[Any, Any], key: Any, value: Any, limit: int) -> None:
        lru[key] = value
        lru.move_to_end(key)
        if len(lru) > limit:
            lru.popitem(last=False)

    # --- send -----------------------------------------------------------------

    def _send(self, lines: list[str]) -> bool:
        return self._sink.write(lines) if lines else True

    def _lines(self, records: list[RawRecord]) -> list[str]:
        """The wire lines of ``records``, redacted (if a callback is set) and each fitted to ``max_record_bytes``."""
        lines: list[str] = []
        redact, encode, limit = self._redact, self._encode, self._max_record_bytes
        for raw in records:
            record: RawRecord | Record = raw
            if redact is not None:
                named = Record._make(raw)
                try:
                    redacted = redact(named)
                except Exception:  # a user callback: its failure must not leak content nor stop export
                    self._limited.error(
                        "redact",
                        "The redact callback failed; the record is not sent (%s).",
                        named.action,
                        exc_info=True,
                    )
                    continue
                if redacted is None:
                    continue
                if not isinstance(redacted, Record):
                    self._limited.error(
                        "redact-type",
                        "The redact callback returned a %s, not a Record or None; the record is not sent (%s).",
                        type(redacted).__name__,
                        named.action,
                    )
                    continue
                record = redacted
            entity, _, action, _ = record
            try:
                line = mapped_line(record, encode) if redact is None else serialize(record, encode)
                # The line is ASCII: characters are bytes.  A file to upload is not cut: the sink
                # sends it to storage, and only a short line about it goes in the log.
                if len(line) > limit and action != "upload-attachment":
                    line = serialize(fit_record(Record._make(record), limit, encode), encode)
                    self._limited.warning(
                        "truncated",
                        "A %s %s record was over %d bytes; its longest text fields were truncated.",
                        entity,
                        action,
                        limit,
                    )
                lines.append(line)
            except Exception as exc:  # what a redact callback put in: its str() may raise anything
                self._limited.error(
                    "serialize",
                    "Could not serialize a %s %s record; it is not sent (%s: %s).",
                    entity,
                    action,
                    type(exc).__name__,
                    exc,
                )
        return lines

    # --- the reaper: traces whose wait is over are sent even when no span arrives ----------

    def _ensure_reaper(self) -> None:
        if self._assembler.held_spans == 0 and not self._held_ends:
            return
        reaper = self._reaper
        if reaper is not None and reaper.is_alive():  # it looks again before it stops, then clears this under the lock
            return
        with self._lock:
            if self._shutdown or (self._reaper is not None and self._reaper.is_alive()):
                return
            self._reaper = threading.Thread(target=self._reap, name="OtelMaximTraceReaper", daemon=True)
            self._reaper.start()

    def _reap(self) -> None:
        while not self._shutdown:
            with self._lock:
                due = self._assembler.next_due()
                if self._held_ends:
                    soonest = min(wait_until for *_, wait_until in self._held_ends.values()) - time.monotonic()
                    due = soonest if due is None else min(due, soonest)
                if due is None:
                    # Nothing held: stop, and say so under the lock, so that an export that holds
                    # something after this look starts a new reaper.
                    self._reaper = None
                    return
            wait = min(max(due, 0.05), 60.0)
            self._reaper_wakes_at = time.monotonic() + wait
            if self._wake.wait(wait):
                if self._shutdown:
                    return
                self._wake.clear()  # a trace due sooner was held: look again
                continue
            try:
                with self._lock:
                    if not self._shutdown:
                        with self._busy:
                            lines = self._take_ready(self._assembler.expire())
                            lines.extend(self._lines(self._release_ends()))
                            self._send(lines)
            except Exception:  # a daemon thread must not die silently
                _logger.exception("Could not send traces whose wait was over.")
            finally:
                self._finish_deferred_shutdown()


def _remembered_spans(state: SentTrace) -> int:
    return (len(state) - 3) // 3  # see TraceState.freeze


def _open_spans_at_fork() -> frozenset[int]:
    """In a forked child: the ids of the span current in the forking thread and of its parent.

    They stay open in the parent process, which ends and sends them; work the child does below
    them (a ``multiprocessing`` worker started inside a request) makes spans whose parent never
    ends here.  A span made earlier than its parent cannot be reached from a context, so two
    levels are what the child can name.
    """
    try:
        current = trace.get_current_span()
        context = current.get_span_context()
        if not context.is_valid:
            return frozenset()
        parent = getattr(current, "parent", None)
        return frozenset({context.span_id} | ({parent.span_id} if parent is not None else set()))
    except Exception:  # runs in a fork hook: never raise there
        _logger.debug("Could not read the span open at the fork.", exc_info=True)
        return frozenset()


def _count(spans: object) -> str:
    """How many spans, for a log line, whatever ``export`` was handed."""
    return str(len(spans)) if isinstance(spans, Sized) else "some"


def _check_types(sink: object, **given: object) -> None:
    """A :class:`ValueError` naming the argument for a value of the wrong type (a key is never shown)."""
    if sink is not None and not isinstance(sink, Sink):
        raise ValueError(f"sink must have write, flush and close methods (a Sink), not a {type(sink).__name__}")
    for name, value in given.items():
        if value is None:
            continue
        if name in ("output", "spool_dir"):
            if not isinstance(value, (str, os.PathLike)):
                raise ValueError(f"{name} must be a path (a string or os.PathLike), not a {type(value).__name__}")
        elif not isinstance(value, str):
            raise ValueError(f"{name} must be a string, not a {type(value).__name__}")


def _default_sink(
    api_key: str | None,
    repo_id: str | None,
    base_url: str | None,
    output: str | os.PathLike[str] | None,
    *,
    spool_dir: str | os.PathLike[str] | None = None,
    max_spool_bytes: int | None = None,
    export_timeout: float | None = None,
    allow_insecure: bool | None = None,
) -> Sink:
    """Maxim's log API when a key and a repository id are configured, else the local file."""
    key = api_key if api_key is not None else env_str(env.MAXIM_API_KEY)
    if key:
        repo = repo_id if repo_id is not None else env_str(env.MAXIM_LOG_REPO_ID)
        if not repo:
            if api_key is not None:
                raise ValueError("repo_id is required with api_key (or set MAXIM_LOG_REPO_ID)")
            _logger.warning(
                "%s is set but %s is not; writing records to a local file.", env.MAXIM_API_KEY, env.MAXIM_LOG_REPO_ID
            )
        else:
            from otel_maxim.sinks.maxim_api import build_sink  # noqa: PLC0415 - only with credentials

            api_sink = build_sink(
                api_key=key,
                key_from_env=api_key is None,
                repo_id=repo,
                base_url=base_url,
                spool_dir=spool_dir,
                max_spool_bytes=max_spool_bytes,
                export_timeout=export_timeout,
                allow_insecure=allow_insecure,
            )
            if api_sink is not None:
                return api_sink
    path = output if output is not None else (env_str(env.MAXIM_RECORDS_FILE) or DEFAULT_RECORDS_FILE)
    if not key and output is None:
        _logger.info("No Maxim API key (%s): records go to the local file %s.", env.MAXIM_API_KEY, os.fspath(path))
    return FileSink(path)


def _stripped_marker(span: ReadableSpan) -> bool:
    """An end marker whose attributes the span's limits dropped (a count limit of 0 or 1): it is named
    as one, so it is taken for one (and logged) rather than shown as a trace.  Over OTLP the count
    arrives as ``dropped_attributes_count``; a producer that does not send it may still have dropped
    the ``session.id``, so a span of that name without one is a marker too."""
    return span.name == conv.SESSION_END_SPAN_NAME and (
        span.dropped_attributes > 0 or conv.SESSION_ID not in attributes_of(span)
    )
