"""Send OpenTelemetry traces to Maxim AI as sessions.

>>> provider.add_span_processor(MaximSpanProcessor())   # doctest: +SKIP
>>> with otel_maxim.session("conv-42", name="Support chat") as s:   # doctest: +SKIP
...     with s.trace("turn-1"):
...         ...
...     s.end()
"""

from otel_maxim import records
from otel_maxim._version import __version__
from otel_maxim.exporter import MaximSpanExporter
from otel_maxim.processor import MaximSpanProcessor, SessionBaggageProcessor
from otel_maxim.sessions import Session, carry_context, end_session, session

__all__ = [
    "MaximSpanExporter",
    "MaximSpanProcessor",
    "Session",
    "SessionBaggageProcessor",
    "__version__",
    "carry_context",
    "end_session",
    "records",
    "session",
]
