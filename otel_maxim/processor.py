"""Span processors: stamp the session from baggage on start; batch finished spans to the exporter.

``MaximSpanProcessor`` does both and is what most applications add.
``SessionBaggageProcessor`` only stamps: for setups where the exporter is
wired elsewhere (``OTEL_TRACES_EXPORTER=maxim``, an OTLP exporter to a Collector
and the bridge), so that spans carry ``session.id`` wherever they are sent.
"""

from __future__ import annotations

import inspect
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Union

from opentelemetry import baggage
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.context import Context, get_current
from opentelemetry.sdk.environment_variables import OTEL_BSP_SCHEDULE_DELAY
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from otel_maxim import conventions as conv
from otel_maxim import environment_variables as env
from otel_maxim._config import LONGEST_WAIT, env_str, is_number, wait_budget
from otel_maxim._fork import reinit_after_fork
from otel_maxim._log import RateLimitedLog
from otel_maxim._reentry import InsideMark
from otel_maxim.ids import MAX_SESSION_ID_LENGTH, session_id_problem, shown_id

__all__ = ["MaximSpanProcessor", "SessionBaggageProcessor", "SessionFilter"]

_logger = logging.getLogger(__name__)
_limited = RateLimitedLog(_logger)


#: Most session tags read from baggage, and the longest tag key and value.
MAX_BAGGAGE_TAGS = 16
MAX_BAGGAGE_TAG_LENGTH = 256

#: The SDK's BatchSpanProcessor defaults (its specification's), for when OTEL_BSP_* variables are refused.
_BSP_DEFAULTS = {
    "max_queue_size": 2048,
    "schedule_delay_millis": 5000,
    "max_export_batch_size": 512,
    "export_timeout_millis": 30000,
}

#: The longest schedule delay: the SDK's batch worker waits that long, and a longer wait raises
#: ``OverflowError`` there, which ends the worker (every span after it is dropped).
_LONGEST_DELAY_MILLIS = LONGEST_WAIT * 1000

#: What decides whether a session id from baggage is accepted: a regular expression that must
#: match the whole id, or a callable returning ``True`` to accept.
SessionFilter = Union[str, "re.Pattern[str]", Callable[[str], bool]]


def _compile_filter(value: SessionFilter | None, name: str) -> Callable[[str], bool] | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = re.compile(value)
        except re.error as exc:
            raise ValueError(f"{name} is not a valid regular expression: {exc}") from None
    if isinstance(value, re.Pattern):
        pattern = value
        return lambda session_id: pattern.fullmatch(session_id) is not None
    if callable(value):
        return value
    raise ValueError(f"{name} must be a regular expression or a callable")


def _env_filter() -> Callable[[str], bool] | None:
    raw = env_str(env.MAXIM_SESSION_ID_PATTERN)
    if raw is None:
        return None
    try:
        return _compile_filter(raw, env.MAXIM_SESSION_ID_PATTERN)
    except ValueError as exc:
        # A broken allow-list must not open the door: refuse every baggage session until it is fixed.
        _logger.warning("%s; refusing every session.id from baggage.", exc)
        return lambda session_id: False


#: The key under which the API keeps the baggage dict in a Context.  Reading it directly costs
#: a tenth of ``baggage.get_all()`` and gives the dict itself, which the API never changes once
#: made (``set_baggage`` makes a new one), so "the same baggage" is an identity check.  An API
#: without it gets the public way: slower, same result.
_BAGGAGE_KEY: str | None = getattr(baggage, "_BAGGAGE_KEY", None)


#: What a span gets from a baggage: attributes, the session id first, or ``None`` for nothing to stamp.
#: One dict is shared by every span started in the same baggage (and kept beside their attributes for
#: :meth:`_Stamper.restamp`): it is never changed once made.
_Stamp = dict[str, Any] | None


class _Stamper:
    """Copies the session from baggage onto spans, within the trust limits.

    Spans mostly start in the same baggage as the span before them (every span of a
    conversation's turn does), so the last baggage read and what it gave are kept, and the
    same baggage reuses them: the checks and the filter run once per change of baggage, not
    once per span.
    """

    __slots__ = ("_filter", "_last")

    def __init__(self, session_filter: SessionFilter | None) -> None:
        self._filter = (
            _compile_filter(session_filter, "session_filter") if session_filter is not None else _env_filter()
        )
        # (baggage entries, their stamp): one tuple, so a thread never pairs one baggage with another's stamp.
        self._last: tuple[Mapping[str, object], _Stamp] = ({}, None)

    def stamp_for(self, parent_context: Context | None) -> _Stamp:
        """The session attributes to stamp on a span started in ``parent_context``, from its baggage."""
        if _BAGGAGE_KEY is not None:
            entries = (parent_context if parent_context is not None else get_current()).get(_BAGGAGE_KEY)
            if type(entries) is not dict:
                return None
        else:
            entries = dict(baggage.get_all(parent_context))
        if not entries:
            return None
        last_entries, last_stamp = self._last
        if entries is last_entries:
            return last_stamp
        stamp = self.attributes(entries)
        self._last = (entries, stamp)
        return stamp

    def attributes(self, entries: Mapping[str, object]) -> dict[str, Any] | None:
        """The session attributes that the baggage ``entries`` give, or ``None``."""
        raw = entries.get(conv.SESSION_ID)
        if raw is None:
            return None
        # As the W3C propagator carries it to the services this one calls: as text, without the
        # whitespace around it, so that the span here and the spans there name the same session.
        text = _text(conv.SESSION_ID, raw)
        if text is None:
            return None
        session_id = text.strip()
        if not session_id:
            return None
        problem = session_id_problem(session_id)
        if problem is not None:
            _limited.warning(
                "baggage-refused",
                "Ignoring a session.id from baggage that %s (%d characters: %s).",
                problem,
                len(session_id),
                shown_id(session_id),
            )
            return None
        check = self._filter
        if check is not None:
            try:
                accepted = check(session_id)
            except Exception:  # a user callback: its failure refuses the id, never reaches the application
                _limited.error("session-filter", "The session filter failed; session.id refused.", exc_info=True)
                return None
            if not accepted:
                _limited.warning(
                    "session-filtered",
                    "The session filter refused a session.id from baggage (%s).",
                    shown_id(session_id),
                )
                return None
        attributes: dict[str, Any] = {conv.SESSION_ID: session_id}
        tags = 0
        # Baggage set by code may hold any object (the API checks neither keys nor values): an entry
        # that is not what the propagator could carry costs only itself, never the session.
        for key, value in entries.items():
            if not isinstance(key, str):
                _limited.warning(
                    "baggage-key", "Ignoring a baggage entry whose key is not a string (%s).", type(key).__name__
                )
                continue
            if key == conv.SESSION_NAME:
                text = _text(key, value)
                if text is not None:
                    attributes[key] = text[:MAX_BAGGAGE_TAG_LENGTH]
            elif key.startswith(conv.SESSION_TAGS_PREFIX) and tags < MAX_BAGGAGE_TAGS:
                if len(key) - len(conv.SESSION_TAGS_PREFIX) <= MAX_BAGGAGE_TAG_LENGTH:
                    text = _text(key, value)
                    if text is not None:
                        attributes[key] = text[:MAX_BAGGAGE_TAG_LENGTH]
                        tags += 1
        return attributes

    def stamp(self, span: Span, parent_context: Context | None) -> None:
        try:
            stamp = self.stamp_for(parent_context)  # first: most spans have no session baggage
            if stamp is None:
                return
            # The span's own BoundedAttributes and the plain dict inside it.  Reading the dict
            # spares the exception that a missing key costs a Mapping's get().  The stamp's values
            # are short strings, already checked: when the span's limits leave room for all of them,
            # set no value length limit, and none of the stamp's keys is there yet, what
            # BoundedAttributes would do is append each value as it is, so that is done directly,
            # under its lock (another processor may write the same span's attributes concurrently);
            # otherwise each goes through BoundedAttributes, which truncates, moves, evicts and
            # counts as set_attribute does.  Neither way takes the span's own lock nor its "ended"
            # check, which cannot apply in on_start (the span has not been handed to the
            # application yet).  Together that is most of the processor's cost per span
            # (bench/bench_processor.py).
            bounded = getattr(span, "_attributes", None)
            current = getattr(bounded, "_dict", None)
            lock = getattr(bounded, "_lock", None)
            if type(bounded) is not BoundedAttributes or type(current) is not dict or lock is None:
                existing = span.attributes  # another SDK: the public way
                if not (existing and existing.get(conv.SESSION_ID)):
                    span.set_attributes(dict(stamp))  # a copy: the stamp is shared
                return
            session_id = conv.SESSION_ID
            explicit = current.get(session_id)
            if explicit:  # an explicit session.id on the span wins over baggage
                # Session.trace's root: its id is the baggage's, maybe cut by a limit.
                keep_whole(span, ((session_id, stamp[session_id]),))
                explicit = current.get(session_id, explicit)
                bounded._otel_maxim_stamp = {session_id: explicit}  # type: ignore[attr-defined]  # for restamp
                return
            bounded._otel_maxim_stamp = stamp  # type: ignore[attr-defined]  # for restamp, wherever it ends
            with lock:
                limit = bounded.maxlen
                direct = (
                    bounded.max_value_len is None
                    and (limit is None or len(current) + len(stamp) <= limit)
                    and getattr(bounded, "_immutable", True) is False
                    and current.keys().isdisjoint(stamp)
                )
                if direct:
                    current.update(stamp)
            if not direct:
                for key, value in stamp.items():
                    bounded[key] = value
                keep_whole(span, ((session_id, stamp[session_id]),))
        except Exception:  # on_start runs on the application's thread: never raise there
            _limited.error("on_start", "Could not stamp the session on a span.", exc_info=True)

    def restamp(self, span: ReadableSpan) -> None:
        """Put the session back on an ending span whose limit of attributes evicted it.

        The stamp is a span's first attributes, so it is the first that the SDK evicts past the
        limit (128): an LLM span that carries a long chat as OpenInference's flattened messages
        loses it, and a trace of that one span would lose its session.  What :meth:`stamp` gave the
        span (or the ``session.id`` it already had) is kept beside its attributes, and put back as
        it was, whatever context the span ends in.  Only spans that lost attributes are looked at.
        """
        try:
            try:
                bounded = span._attributes  # shared by the span and what on_end is given
                if not bounded.dropped:  # type: ignore[union-attr]
                    return  # nearly every span: nothing was evicted
                current = bounded._dict  # type: ignore[union-attr]
                lock = bounded._lock  # type: ignore[union-attr]
            except AttributeError:  # another SDK: nothing to say what was evicted
                return
            stamp = getattr(bounded, "_otel_maxim_stamp", None)
            # (SDK 1.27 makes the dict an OrderedDict once it evicts.)
            if stamp is None or not isinstance(current, dict) or conv.SESSION_ID in current:
                return
            with lock:
                for key, value in stamp.items():
                    current.setdefault(key, value)
        except Exception:  # on_end runs on the application's thread too
            _limited.error("on_end", "Could not stamp the session again on a span.", exc_info=True)


def _text(key: str, value: object) -> str | None:
    """The baggage ``value`` as text, as the propagator would send it; ``None``, with a warning, when
    its ``str()`` raises (an object set by code): that entry is left out, the others are read."""
    if type(value) is str:
        return value
    try:
        return str(value)
    except Exception:
        _limited.warning(
            "baggage-value",
            "Ignoring the baggage entry %s: its value (%s) cannot be made text.",
            shown_id(key),
            type(value).__name__,
        )
        return None


def keep_whole(span: object, pairs: Sequence[tuple[str, str]], *, longest: int | None = MAX_SESSION_ID_LENGTH) -> None:
    """Undo a value length limit's cut of the span's attributes ``pairs`` (just set to these values).

    ``OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT`` (or ``OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT``) shorter than
    a session id would cut every id to its first characters, and the sessions that share them would
    merge into one in Maxim.  An id is a name, not content, and at most ``longest`` characters
    (default :data:`~otel_maxim.ids.MAX_SESSION_ID_LENGTH`, the longest session id read from baggage;
    ``None``: any length), so it is kept whole.  Only the SDK's ``BoundedAttributes`` has a limit to
    undo; elsewhere nothing is done.
    """
    bounded = getattr(span, "_attributes", None)
    limit = getattr(bounded, "max_value_len", None)
    if not isinstance(limit, int) or all(len(value) <= limit for _, value in pairs):
        return  # nearly always: no limit, or one longer than the ids
    current = getattr(bounded, "_dict", None)
    lock = getattr(bounded, "_lock", None)
    if not isinstance(current, dict) or lock is None:
        return
    with lock:
        for key, value in pairs:
            if (longest is None or len(value) <= longest) and current.get(key) == value[:limit]:
                current[key] = value


class SessionBaggageProcessor(SpanProcessor):
    """Only the stamping half of :class:`MaximSpanProcessor`: copies the session baggage onto spans.

    ``session_filter`` (default: ``MAXIM_SESSION_ID_PATTERN``) decides which session ids from
    baggage are accepted; see :class:`MaximSpanProcessor`.
    """

    def __init__(self, *, session_filter: SessionFilter | None = None) -> None:
        self._stamper = _Stamper(session_filter)

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        self._stamper.stamp(span, parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        self._stamper.restamp(span)

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


class _Exporting(SpanExporter):
    """The exporter as the SDK's batching calls it: it marks the thread while an export runs.

    A callback run by that export (a redact callback, a sink) that shuts the processor down or
    flushes it would otherwise wait for the export it is part of.
    """

    def __init__(self, exporter: SpanExporter) -> None:
        self._exporter = exporter
        self._marks = InsideMark()
        # The SDK gives an exporter whose shutdown takes ``timeout_millis`` what is left of its own
        # 30 s (it looks at the signature): this passes it on to an exporter that takes it.
        try:
            self._timed_shutdown = "timeout_millis" in inspect.signature(exporter.shutdown).parameters
        except (TypeError, ValueError):
            self._timed_shutdown = False

    def __getattr__(self, name: str) -> Any:  # what else code reads of the exporter (the SDK 1.27 ``span_exporter``)
        if name.startswith("_"):  # never for the wrapper's own (as copy and pickle ask before __init__)
            raise AttributeError(name)
        return getattr(self._exporter, name)

    def inside(self) -> bool:
        """Whether this thread is in an export (or in the exporter's shutdown), or in other work of a
        :class:`~otel_maxim.MaximSpanExporter` that runs user code: its trace reaper sends traces whose
        wait is over on a thread of its own, holding the lock the processor's exports wait for."""
        if self._marks.on:
            return True
        working_here = getattr(self._exporter, "_working_here", None)
        return bool(working_here()) if callable(working_here) else False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with self._marks:
            return self._exporter.export(spans)

    def shutdown(self, timeout_millis: float = 30_000) -> None:
        with self._marks:
            if self._timed_shutdown:
                self._exporter.shutdown(timeout_millis=timeout_millis)  # type: ignore[call-arg]
            else:
                self._exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self._exporter.force_flush(timeout_millis)


class MaximSpanProcessor(BatchSpanProcessor):
    """A span processor that sends spans to Maxim as sessions and traces.

    ``on_start`` copies the baggage entries ``session.id``, ``session.name`` and
    ``maxim.session.tags.*`` onto the span (a dictionary read, no I/O); a span
    that already has a ``session.id`` keeps it.  ``on_end`` hands the span to the
    SDK's batching (``OTEL_BSP_*`` settings apply), which feeds ``exporter``,
    by default a :class:`~otel_maxim.MaximSpanExporter` configured from the
    environment.

    Baggage comes from the outside world (any HTTP client can send a ``baggage``
    header), so what is read from it is limited: a ``session.id`` longer than
    256 characters or with control characters is refused (whitespace around it is
    dropped, as the W3C propagator drops it), at most 16 session
    tags are read, and ``session_filter`` (a regular expression the whole id must
    match, or a callable returning ``True`` to accept; default: the
    ``MAXIM_SESSION_ID_PATTERN`` variable) decides which ids are accepted.
    """

    def __init__(
        self,
        exporter: SpanExporter | None = None,
        *,
        max_queue_size: int | None = None,
        schedule_delay_millis: float | None = None,
        max_export_batch_size: int | None = None,
        export_timeout_millis: float | None = None,
        session_filter: SessionFilter | None = None,
    ) -> None:
        if isinstance(schedule_delay_millis, (int, float)) and not schedule_delay_millis <= _LONGEST_DELAY_MILLIS:
            raise ValueError(  # also NaN, which would make the worker spin
                f"schedule_delay_millis must be at most {_LONGEST_DELAY_MILLIS:.0f}, not {schedule_delay_millis!r}"
            )
        self._stamper = _Stamper(session_filter)
        if exporter is None:
            from otel_maxim.exporter import MaximSpanExporter  # noqa: PLC0415 - only when defaulted

            exporter = MaximSpanExporter()
        self._exporter = exporter
        self._exporting = _Exporting(exporter)
        # Re-entrant: a signal handler that flushes may run while this thread is inside the lock.
        self._flush_lock = threading.RLock()
        self._flusher: threading.Thread | None = None  # the thread running the flush rounds, one at a time
        self._next_round: _FlushRound | None = None  # the round that callers arriving now wait for
        self._shut_down = False  # flushing after shutdown says False, whatever the SDK version says
        self._shut_done = threading.Event()  # set when a shutdown has completed, for a second caller to wait on
        reinit_after_fork(self)
        if schedule_delay_millis is None:
            schedule_delay_millis = _env_schedule_delay()
        settings: dict[str, Any] = {
            "max_queue_size": max_queue_size,
            "schedule_delay_millis": schedule_delay_millis,
            "max_export_batch_size": max_export_batch_size,
            "export_timeout_millis": export_timeout_millis,
        }
        try:
            super().__init__(self._exporting, **settings)
        except ValueError as exc:
            if None not in settings.values():
                raise  # the arguments alone are wrong: the caller's to fix
            # Perhaps the OTEL_BSP_* variables gave what the SDK refuses (a batch larger than the
            # queue, a zero delay): the SDK's defaults where no argument was given, rather than no
            # processor.  If the SDK refuses that too, the arguments are wrong, and that is raised.
            defaulted: dict[str, Any] = {k: _BSP_DEFAULTS[k] if v is None else v for k, v in settings.items()}
            super().__init__(self._exporting, **defaulted)
            _logger.warning(
                "The OTEL_BSP_* variables give settings the SDK refuses (%s); using its defaults instead.", exc
            )

    def _after_fork(self) -> None:
        self._flush_lock = threading.RLock()  # a flush thread of the parent may have held it
        self._flusher = self._next_round = None
        self._shut_done = threading.Event()  # a shutdown under way in another thread of the parent is over here
        if self._shut_down:
            self._shut_done.set()

    @property
    def exporter(self) -> SpanExporter:
        return self._exporter

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        self._stamper.stamp(span, parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        # The check that restamp makes first, here: nearly every span lost no attribute, and a call
        # less per span is a measurable share of this processor's cost (bench/bench_processor.py).
        if getattr(getattr(span, "_attributes", None), "dropped", 1):
            self._stamper.restamp(span)
        BatchSpanProcessor.on_end(self, span)

    def force_flush(self, timeout_millis: int | None = None) -> bool:
        """Export what is queued, then flush the exporter (held traces whose wait is over, the sink).

        Returns ``False`` when that is not done within ``timeout_millis`` (not a number: 30 s,
        with a warning).  The SDK's own
        ``force_flush`` exports on the calling thread and waits for the export lock without a
        limit (an export stuck in a sink would hold the application's thread), so it runs on a
        thread of its own here, which the caller waits for only until the deadline.  Each call
        waits for a round of flushing that starts after it was made; calls made while a round
        runs share the next one, so a stuck export holds at most one thread.
        """
        if self._shut_down:
            return False
        if self._exporting.inside():
            _limited.warning(
                "flush-inside",
                "force_flush was called from inside the processor's own export (a redact callback or a sink); "
                "nothing is flushed.",
            )
            return False
        try:
            if timeout_millis is not None and not is_number(timeout_millis):
                _limited.warning(
                    "flush-timeout-arg",
                    "force_flush: timeout_millis=%r is not a number; using 30000 ms.",
                    timeout_millis,
                )
            timeout = wait_budget(timeout_millis, 30_000)  # seconds; a non-number gives the default
            deadline = time.monotonic() + timeout
            starting = None
            with self._flush_lock:
                flush_round = self._next_round
                if flush_round is None:
                    flush_round = self._next_round = _FlushRound()
                flush_round.timeout = max(flush_round.timeout, timeout)
                flusher = self._flusher
                if flusher is None or (flusher.ident is not None and not flusher.is_alive()):  # none, or it died
                    starting = self._flusher = threading.Thread(
                        target=self._flush_rounds, name="OtelMaximForceFlush", daemon=True
                    )
            if starting is not None and not self._start(starting, flush_round):
                return False
            if not flush_round.done.wait(timeout):
                _limited.warning(
                    "flush-timeout", "force_flush: the queued spans were not exported within %d ms.", timeout * 1000
                )
                return False
            if not flush_round.flushed:  # shut down, or the export raised
                return False
            remaining = max(0, int((deadline - time.monotonic()) * 1000))
            return self._exporter.force_flush(remaining)
        except Exception:  # see on_start
            _limited.error("flush", "Could not flush the Maxim span processor.", exc_info=True)
            return False

    def _start(self, starting: threading.Thread, flush_round: _FlushRound) -> bool:
        """Start the flush thread ``starting``; ``False``, with a warning, when no thread can be started.

        Then nothing is flushed: the round is given up (its callers are told ``False`` at once), and the
        next call tries a new thread.  Flushing on the caller's thread instead could not keep its
        deadline: the SDK's ``force_flush`` waits for the export lock without a limit, and an export
        stuck in a sink would hold the application's thread (and a second thread beside the stuck
        one).  Nothing is lost: the queued spans stay queued for the SDK's batch worker, which exports
        them on its schedule and at shutdown.
        """
        try:
            # Outside the lock: starting waits for the thread, and a signal handler that
            # flushes may run during that wait.
            starting.start()
            return True
        except Exception as exc:  # a thread limit; Python >= 3.12 at interpreter shutdown
            with self._flush_lock:
                if self._flusher is starting:  # else a later call's thread replaced it
                    self._flusher = None
                if self._next_round is flush_round:
                    self._next_round = None
            flush_round.done.set()  # flushed stays False
            _limited.warning(
                "flush-thread",
                "force_flush could not start its thread (%s); nothing is flushed now. The queued spans "
                "stay queued: the batch worker exports them on its schedule and at shutdown.",
                exc,
            )
            return False

    def _flush_rounds(self) -> None:
        """Run the waiting flush rounds, one after another, until none is left."""
        while True:
            with self._flush_lock:
                flush_round, self._next_round = self._next_round, None
                if flush_round is None:
                    self._flusher = None
                    return
            try:
                flush_round.flushed = super().force_flush(int(flush_round.timeout * 1000))
            except Exception:  # a thread of ours: log, never lose the reason
                _limited.error("flush-queue", "Could not export the queued spans.", exc_info=True)
            finally:
                flush_round.done.set()

    def shutdown(self) -> None:
        """Export what is queued and shut the exporter down (within the SDK's 30 s); never raises."""
        if self._shut_down:
            if not self._exporting.inside():
                # A shutdown under way in another thread (or started from inside an export): what it
                # delivers or spools is done when it returns, so wait for it, within the SDK's own bound.
                self._shut_done.wait(30)
            return
        self._shut_down = True
        # From now on the SDK drops every span, saying so only at INFO: say it louder.  Set on the
        # instance, so that a span's path pays nothing for it before shutdown.
        self.on_end = self._on_end_after_shutdown  # type: ignore[method-assign]
        if self._exporting.inside():
            # Called back from inside an export (a redact callback, a sink), or from the exporter's
            # reaper: the SDK's shutdown waits for its worker and for a lock (its export lock, the
            # exporter's) that this very thread holds.  It runs on a thread of its own instead, and
            # goes on when this thread's work is done.
            _limited.warning(
                "shutdown-inside",
                "shutdown was called from inside the processor's own export (a redact callback or a sink); "
                "it completes when that export is done.",
            )
            try:
                threading.Thread(target=self._shut, name="OtelMaximShutdown", daemon=True).start()
            except Exception as exc:  # a thread limit; Python >= 3.12 at interpreter shutdown
                # Not shut down, then: taken back, so that the next shutdown() (the provider's at
                # exit, outside any export) does it all.
                del self.on_end
                self._shut_down = False
                _limited.warning(
                    "shutdown-thread",
                    "shutdown, called from inside the processor's own export, could not start its thread "
                    "(%s); nothing is shut down: the next shutdown() outside an export does it.",
                    exc,
                )
            return
        self._shut()

    def _shut(self) -> None:
        try:
            super().shutdown()  # type: ignore[no-untyped-call]  # the SDK leaves it unannotated
        except Exception:  # see on_start: TracerProvider.shutdown runs on the application's thread
            _logger.exception("Could not shut the Maxim span processor down.")
        finally:
            self._shut_done.set()

    def _on_end_after_shutdown(self, span: ReadableSpan) -> None:
        _warn_after_shutdown(span)
        BatchSpanProcessor.on_end(self, span)


class _FlushRound:
    """One run of the SDK's ``force_flush`` and what it said, for every caller that waits on it."""

    __slots__ = ("done", "flushed", "timeout")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.flushed = False
        self.timeout = 0.0  # seconds: the longest any of its callers waits


def _env_schedule_delay() -> int | None:
    """``None`` (the SDK reads the variable), or the default when ``OTEL_BSP_SCHEDULE_DELAY`` is longer
    than a thread can wait: the SDK would take it, and its batch worker would die on it."""
    raw = env_str(OTEL_BSP_SCHEDULE_DELAY)
    try:
        too_long = raw is not None and int(raw) > _LONGEST_DELAY_MILLIS  # parsed as the SDK parses it
    except ValueError:
        return None  # the SDK logs it and uses its default
    if not too_long:
        return None
    default: int = _BSP_DEFAULTS["schedule_delay_millis"]
    _limited.warning(
        "bsp-schedule-delay",
        "Ignoring %s=%r: longer than a thread can wait (%.0f ms); using the default %d.",
        OTEL_BSP_SCHEDULE_DELAY,
        raw,
        _LONGEST_DELAY_MILLIS,
        default,
    )
    return default


def _warn_after_shutdown(span: ReadableSpan) -> None:
    if not (span.context and span.context.trace_flags.sampled):
        return  # never exported anyway
    attributes = span.attributes or {}
    if attributes.get(conv.SESSION_END) is True:
        _limited.warning(
            "session-end-after-shutdown",
            "The end marker of session %s came after the Maxim span processor was shut down: dropped, "
            "the session is not ended.",
            attributes.get(conv.SESSION_ID),
        )
    else:
        _limited.warning(
            "span-after-shutdown",
            "Spans ended after the Maxim span processor was shut down are dropped (%r).",
            span.name,
        )
