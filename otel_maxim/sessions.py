"""Maxim sessions on top of OpenTelemetry context: baggage in, an end-marker span out.

``with otel_maxim.session("conv-42", name="Support chat"):`` puts ``session.id``
(and ``session.name``, and the tags) into W3C baggage.  Every span started in
that context, in this process and, through the ``baggage`` header, in every
service it calls, is stamped with the session by :class:`~otel_maxim.MaximSpanProcessor`,
so its trace joins the session.  Leaving the block only detaches the context;
the session goes on until :meth:`Session.end` or :func:`end_session`, which
emit a session-end marker: an ordinary span that any OTLP pipeline carries and
the exporter turns into ``session{...,action=end}``.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect
import logging
import types
import weakref
from collections.abc import Callable, Generator, Iterator, Mapping
from contextlib import contextmanager
from types import TracebackType
from typing import Any, TypeVar

from opentelemetry import baggage, context, trace
from opentelemetry.trace import INVALID_SPAN, Span, TracerProvider

from otel_maxim import conventions as conv
from otel_maxim._log import RateLimitedLog
from otel_maxim._version import __version__
from otel_maxim.ids import maxim_id, open_trace_ids, session_id_problem, shown_id
from otel_maxim.mapping._common import trace_hex
from otel_maxim.processor import MAX_BAGGAGE_TAG_LENGTH, MAX_BAGGAGE_TAGS, keep_whole

__all__ = ["Session", "carry_context", "end_session", "session"]

_logger = logging.getLogger(__name__)
_limited = RateLimitedLog(_logger)
_T = TypeVar("_T")

#: The sessions entered in the current context (thread, asyncio task), each with the token that
#: detaches it.  Kept in the context, not on the ``Session``: one ``Session`` entered by two
#: requests at once must detach, on each exit, what that request attached.
_entered: contextvars.ContextVar[tuple[tuple[Session, object], ...]] = contextvars.ContextVar(
    "otel_maxim_entered_sessions", default=()
)


class Session:
    """A Maxim session: a ``with`` / ``async with`` block that puts the session into baggage.

    Build it with :func:`otel_maxim.session`.  The same ``Session`` may be entered many
    times (a web service enters it once per request); entering never ends it.
    """

    __slots__ = ("_tracer_provider", "id", "name", "tags")

    def __init__(
        self,
        id: str,  # noqa: A002 - the seed's own word
        name: str | None = None,
        tags: Mapping[str, str] | None = None,
        *,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        if not isinstance(id, str) or not id.strip():
            raise ValueError("id must be a non-empty string")
        if name is not None and not isinstance(name, str):
            raise ValueError("name must be a string")
        if tags is not None and not isinstance(tags, Mapping):
            raise ValueError(f"tags must be a mapping, not {type(tags).__name__}")
        # Baggage carries the id without the whitespace around it: so does the session.
        self.id = id = id.strip()
        problem = session_id_problem(id)
        if problem is not None:
            _limited.warning(
                "session-id-refused",
                "Session id %s %s: span processors refuse it from baggage, so only the spans of "
                "Session.trace() name this session.",
                shown_id(id),
                problem,
            )
        self.name = name
        self.tags: dict[str, str] = {str(k): str(v) for k, v in (tags or {}).items()}
        self._tracer_provider = tracer_provider
        left_out = _left_out(name, self.tags)
        if left_out:
            _limited.warning(
                "session-limits",
                "Session %s: %s. Span processors read no more from baggage (so that every span names the "
                "session alike), and the session carries no more, in baggage or on Session.trace().",
                shown_id(id),
                "; ".join(left_out),
            )

    def __repr__(self) -> str:
        return f"Session(id={self.id!r}, name={self.name!r})"

    def context(self, parent: context.Context | None = None) -> context.Context:
        """``parent`` (default: the current context) with this session's baggage entries set,
        in place of any other session's (its name and tags included)."""
        ctx = parent
        for key in baggage.get_all(parent):
            if key == conv.SESSION_NAME or key.startswith(conv.SESSION_TAGS_PREFIX):
                ctx = baggage.remove_baggage(key, ctx)
        entries = self._attributes()
        ctx = baggage.set_baggage(conv.SESSION_ID, entries.pop(conv.SESSION_ID), ctx)
        for key, value in entries.items():
            ctx = baggage.set_baggage(key, value, ctx)
        return ctx

    def __enter__(self) -> Session:
        token = context.attach(self.context())
        _entered.set((*_entered.get(), (self, token)))
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        entered = _entered.get()
        for index in range(len(entered) - 1, -1, -1):  # the latest entry of this session here
            session, token = entered[index]
            if session is self:
                _entered.set(entered[:index] + entered[index + 1 :])
                context.detach(token)  # type: ignore[arg-type]
                return

    async def __aenter__(self) -> Session:
        return self.__enter__()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    def _attributes(self) -> dict[str, Any]:
        """The session's entries, in baggage and on :meth:`trace`'s root alike: only what span processors
        take from baggage (256 characters of the name, 16 tags), so that every span of the session names
        it the same way, and a long name does not swell every request's baggage header (past 8 KB the
        propagator drops entries)."""
        attributes: dict[str, Any] = {conv.SESSION_ID: self.id}
        if self.name is not None:
            attributes[conv.SESSION_NAME] = self.name[:MAX_BAGGAGE_TAG_LENGTH]
        for key in _carried_keys(self.tags)[:MAX_BAGGAGE_TAGS]:
            attributes[conv.SESSION_TAGS_PREFIX + key] = self.tags[key][:MAX_BAGGAGE_TAG_LENGTH]
        return attributes

    @contextmanager
    def trace(
        self,
        name: str,
        id: str | None = None,  # noqa: A002
        tags: Mapping[str, str] | None = None,
        *,
        attributes: Mapping[str, Any] | None = None,
    ) -> Iterator[Span]:
        """Start a new trace in this session: a root span, current inside the block.

        ``id`` chooses the Maxim trace id (mapped like session ids when Maxim would
        reject it); by default it is the OTel trace id.  ``tags`` become the trace's tags.
        ``tags`` or ``attributes`` that are not a mapping are ignored, with a warning.
        """
        attrs = self._attributes()
        attrs.update(_mapping(attributes, "attributes"))
        if id is not None:
            attrs[conv.TRACE_ID] = id
        for key, value in _mapping(tags, "tags").items():
            try:
                attrs[conv.TAGS_PREFIX + str(key)] = str(value)
            except Exception:  # a key or value whose str() raises: that tag is left out, not the trace
                _limited.warning("trace-tag", "A tag of trace %r was left out: its key or value has no text.", name)
        # A new trace: the session's baggage on the current context, but no parent span.
        ctx = trace.set_span_in_context(INVALID_SPAN, self.context())
        token = context.attach(ctx)
        opened = None  # the OTel trace id under which the chosen id waits, until the root has ended
        try:
            tracer = _tracer(self._tracer_provider) or trace.NoOpTracer()
            with tracer.start_as_current_span(name, attributes=attrs) as span:
                keep_whole(span, ((conv.SESSION_ID, self.id),))
                if isinstance(id, str):
                    # Two ids that share their first characters must not become one trace either.  Any
                    # length: the id is the application's own, on one span, and Maxim gets it mapped
                    # (past 128 characters, to a hash), so cutting it could only merge traces.
                    keep_whole(span, ((conv.TRACE_ID, id),), longest=None)
                    if id and span.get_span_context().is_valid:
                        opened = span.get_span_context().trace_id
                        open_trace_ids.open(opened, maxim_id(id))
                yield span
        finally:
            if opened is not None:
                open_trace_ids.close(opened)
            context.detach(token)

    def end(self) -> None:
        """End the session: emit its end marker, which triggers Maxim's session-level evaluations."""
        end_session(self.id, tracer_provider=self._tracer_provider)


def _carried_keys(tags: Mapping[str, str]) -> list[str]:
    """The keys of the tags that may go in baggage (the first :data:`MAX_BAGGAGE_TAGS` of them are taken):
    a span processor reads no tag whose key is longer than :data:`MAX_BAGGAGE_TAG_LENGTH`."""
    return [key for key in tags if len(key) <= MAX_BAGGAGE_TAG_LENGTH]


def _left_out(name: str | None, tags: Mapping[str, str]) -> list[str]:
    """What :meth:`Session._attributes` cuts or leaves out of ``name`` and ``tags``, in words (none: ``[]``)."""
    said: list[str] = []
    if name is not None and len(name) > MAX_BAGGAGE_TAG_LENGTH:
        said.append(f"name cut to {MAX_BAGGAGE_TAG_LENGTH} of its {len(name)} characters")
    carried = _carried_keys(tags)
    kept = set(carried)
    long_keys = [key for key in tags if key not in kept]
    if long_keys:
        said.append(f"tags left out for a key longer than {MAX_BAGGAGE_TAG_LENGTH} characters: {_some(long_keys)}")
    if len(carried) > MAX_BAGGAGE_TAGS:
        said.append(f"tags left out past the first {MAX_BAGGAGE_TAGS}: {_some(carried[MAX_BAGGAGE_TAGS:])}")
    cut = sum(1 for key in carried[:MAX_BAGGAGE_TAGS] if len(tags[key]) > MAX_BAGGAGE_TAG_LENGTH)
    if cut:
        said.append(f"tag values cut to {MAX_BAGGAGE_TAG_LENGTH} characters: {cut}")
    return said


def _some(keys: list[str]) -> str:
    """How many ``keys``, and the first few of them, for a log line."""
    shown = ", ".join(shown_id(key, 20) for key in keys[:3])
    return f"{len(keys)} ({shown}{', ...' if len(keys) > 3 else ''})"


def session(
    id: str,  # noqa: A002
    name: str | None = None,
    tags: Mapping[str, str] | None = None,
    *,
    tracer_provider: TracerProvider | None = None,
) -> Session:
    """A Maxim session, to use as ``with`` / ``async with`` block (see :class:`Session`).

    ``tracer_provider`` is where :meth:`Session.trace` and :meth:`Session.end` start their
    spans; by default the global one.
    """
    return Session(id, name, tags, tracer_provider=tracer_provider)


def end_session(id: str, *, tracer_provider: TracerProvider | None = None) -> None:  # noqa: A002
    """End the session ``id``: emit its end marker through ``tracer_provider`` (default: the global one).

    The marker is an ordinary root span with the attributes ``session.id`` and
    ``maxim.session.end = true``; every processor of that provider sees it, and
    the exporter turns it into ``session{id=...,action=end}``.  Never raises.
    """
    try:
        if not isinstance(id, str) or not id.strip():
            _limited.warning(
                "end-no-id", "end_session() needs a non-empty session id; got %r; nothing ended.", type(id).__name__
            )
            return
        tracer = _tracer(tracer_provider)
        if tracer is None:
            return
        id = id.strip()  # noqa: A001 - as the session (see Session)
        # In order of what a low OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT may evict first (the SDK evicts the
        # oldest): the wait for the current trace, then the end flag, and last the session id, without
        # which the marker ends nothing.  With room for two, the flag and the id stay, and the marker is
        # one wherever it is read (over OTLP too); with room for one, only the id, and the exporter
        # takes the span for a marker by its name and its count of dropped attributes.
        attributes: dict[str, Any] = {}
        current_span = trace.get_current_span()
        current = current_span.get_span_context()
        local_elsewhere = current_span.is_recording() and not _same_pipeline(current_span, tracer)
        if current.is_valid and current.trace_flags.sampled and not local_elsewhere:
            # Ended inside a trace (a "goodbye" request): end after that trace, recorded here or, for a
            # context received from another service, wherever that service sends it (a Collector and
            # the bridge).  A trace that is not sampled, or that a span of another provider records
            # here, never reaches this exporter: waiting for it would hold the end for the trace timeout.
            attributes[conv.SESSION_END_AFTER_TRACE] = trace_hex(current.trace_id)
        attributes[conv.SESSION_END] = True
        attributes[conv.SESSION_ID] = id
        # An empty context: the marker is a trace of its own, with no baggage of any other session.
        span = tracer.start_span(conv.SESSION_END_SPAN_NAME, context=context.Context(), attributes=attributes)
        keep_whole(span, [(key, value) for key, value in attributes.items() if isinstance(value, str)])
        dropped = getattr(span, "dropped_attributes", 0)
        if conv.SESSION_END_AFTER_TRACE in attributes and isinstance(dropped, int) and dropped > 0:
            _limited.warning(
                "marker-limit",
                "The end marker of session %s lost %d of its attributes to the span attribute count limit "
                "(OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT): the session's end does not wait for the trace it was "
                "emitted in.",
                shown_id(id),
                dropped,
            )
        if not span.is_recording():
            _limited.warning(
                "marker-not-recorded",
                "The end marker of session %s was not recorded, so the session is not ended: no SDK "
                "TracerProvider is set, the SDK is disabled (OTEL_SDK_DISABLED), or its sampler dropped "
                "the marker (sample %r spans always).",
                id,
                conv.SESSION_END_SPAN_NAME,
            )
        span.end()
    except Exception:  # never raise into the application (a broken provider is not its problem)
        _limited.error("end-session", "Could not emit the end marker of a session.", exc_info=True)


def _same_pipeline(span: trace.Span, tracer: trace.Tracer) -> bool:
    """Whether ``span`` goes to the span processors of ``tracer``'s provider; ``True`` when that cannot be told."""
    ours = getattr(tracer, "span_processor", None)
    if ours is None:  # a ProxyTracer (the global provider, set after the tracer was made): the tracer it uses
        ours = getattr(getattr(tracer, "_tracer", None), "span_processor", None)
    theirs = getattr(span, "_span_processor", None)
    return ours is None or theirs is None or ours is theirs


def carry_context(fn: Callable[..., _T]) -> Callable[..., _T]:
    """Wrap ``fn`` to run in a copy of the current context (the session included).

    Python's ``ThreadPoolExecutor`` and ``threading.Thread`` do not carry
    ``contextvars`` into worker threads; ``executor.submit(carry_context(work), x)``
    does.  (asyncio tasks carry the context by themselves.)  A generator function's
    or a coroutine function's body runs step by step, wherever it is consumed: each
    step runs in the copy.  An async generator function is not supported: it is
    returned as it is, with a warning.
    """
    ctx = contextvars.copy_context()
    given = fn  # as it came: the checks below narrow fn's type
    if inspect.isasyncgenfunction(fn):
        _limited.warning(
            "carry-async-generator",
            "carry_context(%s): an async generator function is not wrapped; its steps run in the context of "
            "whoever iterates it.",
            getattr(fn, "__qualname__", type(fn).__name__),
        )
        return given
    if inspect.isgeneratorfunction(fn):
        # Calling a generator function only makes the generator: its body runs at each step, in the
        # consumer's context, so each step runs in the copy.

        @functools.wraps(fn)
        def run_generator(*args: Any, **kwargs: Any) -> Any:
            context = ctx.copy()
            return (yield from _stepped(context, context.run(fn, *args, **kwargs)))

        return run_generator
    if inspect.iscoroutinefunction(fn):
        # The same for a coroutine, awaited from a task of another context.

        @functools.wraps(fn)
        async def run_coroutine(*args: Any, **kwargs: Any) -> Any:
            context = ctx.copy()
            return await _stepped(context, context.run(fn, *args, **kwargs).__await__())

        return run_coroutine  # type: ignore[return-value]

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> _T:
        return ctx.copy().run(fn, *args, **kwargs)

    return run


@types.coroutine  # awaitable too, for a coroutine's steps
def _stepped(context: contextvars.Context, steps: Generator[Any, Any, Any]) -> Generator[Any, Any, Any]:
    """``steps`` (a generator, or a coroutine's ``__await__``) driven one step at a time in ``context``."""
    try:
        item = context.run(next, steps)
        while True:
            try:
                sent = yield item
            except GeneratorExit:
                context.run(steps.close)
                raise
            except BaseException as exc:  # thrown in by the consumer: into the generator, in its context
                item = context.run(steps.throw, exc)
            else:
                item = context.run(steps.send, sent)
    except StopIteration as stop:
        return stop.value


_tracers: weakref.WeakKeyDictionary[TracerProvider, trace.Tracer] = weakref.WeakKeyDictionary()


def _mapping(value: Mapping[str, Any] | None, argument: str) -> Mapping[str, Any]:
    """``value`` if it is a mapping, else nothing (``Session.trace`` is a runtime call: it must not raise)."""
    if value is None or isinstance(value, Mapping):
        return value or {}
    _limited.warning(
        "trace-" + argument, "Session.trace(%s=...) needs a mapping, not %s; ignored.", argument, type(value).__name__
    )
    return {}


def _tracer(provider: TracerProvider | None) -> trace.Tracer | None:
    """Our tracer of ``provider`` (default: the global one), made once per provider; ``None``, with a
    warning, when ``provider`` gives none (these are runtime calls: they must not raise)."""
    if provider is None:
        provider = trace.get_tracer_provider()
    try:
        tracer = _tracers.get(provider)
    except TypeError:  # a provider that cannot be weakly referenced: asked each time
        tracer = None
    if tracer is not None:
        return tracer
    if not callable(getattr(provider, "get_tracer", None)):
        _limited.warning(
            "bad-provider",
            "Ignoring tracer_provider=%s, which has no get_tracer(): no span is started for the session "
            "(Session.trace() gives a non-recording span, end_session() emits no end marker).",
            type(provider).__name__,
        )
        return None
    try:
        tracer = trace.get_tracer("otel_maxim", __version__, tracer_provider=provider)
    except Exception:  # a broken provider is not the application's problem
        _limited.error("get-tracer", "The tracer_provider could not give a tracer; no span is started.", exc_info=True)
        return None
    with contextlib.suppress(TypeError):
        _tracers[provider] = tracer
    return tracer
