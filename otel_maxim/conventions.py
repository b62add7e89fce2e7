"""Every span attribute and baggage key that ``otel_maxim`` reads or writes, in one place.

The README's attribute table lists these names; keep the two in step.
"""

from __future__ import annotations

# --- Sessions --------------------------------------------------------------

#: The session a span's trace belongs to (baggage entry and span attribute).
#: Also the name used by OpenInference and by Maxim's own OTLP examples.
SESSION_ID = "session.id"
#: A display name for the session (baggage entry and span attribute).
SESSION_NAME = "session.name"
#: Prefix of the session's tags, ``maxim.session.tags.<key> = <value>`` (baggage entries and span attributes).
SESSION_TAGS_PREFIX = "maxim.session.tags."

#: Session keys written by other tools, read (in this order) when ``session.id`` is absent.
FOREIGN_SESSION_ID_KEYS = (
    "gen_ai.conversation.id",  # OpenTelemetry GenAI semantic conventions
    "langfuse.session.id",  # Langfuse
    "ai.telemetry.metadata.sessionId",  # Vercel AI SDK telemetry metadata
    "traceloop.association.properties.session_id",  # Traceloop / OpenLLMetry
)

#: Baggage entries copied onto every span started in their context.
BAGGAGE_KEYS = (SESSION_ID, SESSION_NAME)

# --- The session-end marker -------------------------------------------------

#: ``True`` on the span that says "this session ended"; the span also carries ``session.id``.
SESSION_END = "maxim.session.end"
#: On the marker: the trace (32 hex) in which ``end_session`` was called, e.g. a "goodbye" request.
#: The session ends only after that trace was sent, though its root ends after the marker.
SESSION_END_AFTER_TRACE = "maxim.session.end.after_trace"
#: Name of the marker span (informational: the attribute above is what counts).
SESSION_END_SPAN_NAME = "maxim.session.end"

# --- Traces and spans -------------------------------------------------------

#: On a trace's root span: the Maxim trace id to use instead of the OTel trace id.
TRACE_ID = "maxim.trace.id"
#: Prefix of an entity's tags: ``maxim.tags.<key> = <value>`` on a span tags the entity it becomes
#: (on the root span: the trace).
TAGS_PREFIX = "maxim.tags."
#: Prefix of an entity's metadata: ``maxim.metadata.<key> = <value>``.
METADATA_PREFIX = "maxim.metadata."
#: Input and output of the entity a span becomes (on the root span: the trace's input and output).
INPUT = "maxim.input"
OUTPUT = "maxim.output"

#: Attributes consumed by the mapping itself, never repeated as metadata.
CONSUMED = frozenset(
    {SESSION_ID, SESSION_NAME, SESSION_END, SESSION_END_AFTER_TRACE, TRACE_ID, INPUT, OUTPUT, *FOREIGN_SESSION_ID_KEYS}
)
#: Prefixes of attributes consumed by the mapping itself.
CONSUMED_PREFIXES = (SESSION_TAGS_PREFIX, TAGS_PREFIX, METADATA_PREFIX)

# --- Tags written by otel_maxim --------------------------------------------

#: Session tag holding the user's original session id when it had to be mapped (see ``otel_maxim.ids``).
ORIGINAL_ID_TAG = "original_id"
