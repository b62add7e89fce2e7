"""Span processors: stamp the session from baggage on start; batch finished spans to the exporter.

``MaximSpanProcessor`` does both and is what most applications add.
``SessionBaggageProcessor`` only stamps: for setups where the exporter is
wired elsewhere (``OTEL_TRACES_EXPORTER=maxim``, an OTLP exporter to a Collector
and the bridge), so that spans carry ``session.id`` wherever they are sent.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from opentelemetry import baggage
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

from otel_maxim import conventions as conv
from otel_maxim._log import RateLimitedLog

__all__ = ["MaximSpanProcessor", "SessionBaggageProcessor", "session_attributes"]

_logger = logging.getLogger(__name__)
_limited = RateLimitedLog(_logger)


def session_attributes(parent_context: Context | None) -> dict[str, Any] | None:
    """The session attributes to stamp on a span started in ``parent_context``, from its baggage."""
    entries = baggage.get_all(parent_context)
    if not entries:
        return None
    session_id = entries.get(conv.SESSION_ID)
    if not isinstance(session_id, str) or not session_id:
        return None
    attributes: dict[str, Any] = {conv.SESSION_ID: session_id}
    for key, value in entries.items():
        if key == conv.SESSION_NAME or key.startswith(conv.SESSION_TAGS_PREFIX):
            attributes[key] = str(value)
    return attributes


def _stamp(span: Span, parent_context: Context | None) -> None:
    try:
        attributes = session_attributes(parent_context)
        if attributes is None:
            return
        existing = span.attributes
        if existing and existing.get(conv.SESSION_ID):
            return  # an explicit session.id on the span wins over baggage
        span.set_attributes(attributes)
    except Exception:  # on_start runs on the application's thread: never raise there
        _limited.error("on_start", "Could not stamp the session on a span.", exc_info=True)


class SessionBaggageProcessor(SpanProcessor):
    """Only the stamping half of :class:`MaximSpanProcessor`: copies the session baggage onto spans."""

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        _stamp(span, parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        pass

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


class MaximSpanProcessor(BatchSpanProcessor):
    """A span processor that sends spans to Maxim as sessions and traces.

    ``on_start`` copies the baggage entries ``session.id``, ``session.name`` and
    ``maxim.session.tags.*`` onto the span (a dictionary read, no I/O); a span
    that already has a ``session.id`` keeps it.  ``on_end`` hands the span to the
    SDK's batching (``OTEL_BSP_*`` settings apply), which feeds ``exporter``,
    by default a :class:`~otel_maxim.MaximSpanExporter` configured from the
    environment.
    """

    def __init__(
        self,
        exporter: SpanExporter | None = None,
        *,
        max_queue_size: int | None = None,
        schedule_delay_millis: float | None = None,
        max_export_batch_size: int | None = None,
        export_timeout_millis: float | None = None,
    ) -> None:
        if exporter is None:
            from otel_maxim.exporter import MaximSpanExporter  # noqa: PLC0415 - only when defaulted

            exporter = MaximSpanExporter()
        self._exporter = exporter
        super().__init__(
            exporter,
            max_queue_size=max_queue_size,
            schedule_delay_millis=schedule_delay_millis,
            max_export_batch_size=max_export_batch_size,
            export_timeout_millis=export_timeout_millis,
        )

    @property
    def exporter(self) -> SpanExporter:
        return self._exporter

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        _stamp(span, parent_context)

    def force_flush(self, timeout_millis: int | None = None) -> bool:
        """Export what is queued, then flush the exporter (held traces whose wait is over, the sink)."""
        timeout = 30_000 if timeout_millis is None else timeout_millis
        deadline = time.monotonic() + timeout / 1000
        try:
            if not super().force_flush(timeout):
                return False
            remaining = max(0, int((deadline - time.monotonic()) * 1000))
            return self._exporter.force_flush(remaining)
        except Exception:  # see on_start
            _logger.exception("Could not flush the Maxim span processor.")
            return False
