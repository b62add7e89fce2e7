"""Pure functions from finished OTel spans to Maxim records (no I/O)."""

from otel_maxim.mapping._span import Options
from otel_maxim.mapping._trace import MappedTrace, SentTrace, SessionInfo, TraceState, map_trace, session_of

__all__ = ["MappedTrace", "Options", "SentTrace", "SessionInfo", "TraceState", "map_trace", "session_of"]
