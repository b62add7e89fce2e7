"""Every environment variable ``otel_maxim`` reads: its name, meaning and default.

A constructor argument wins over its variable, and the variable over the
default.  A bad value in a variable logs a warning that names the variable
and the default is used; a bad constructor argument raises ``ValueError``.
Batching is left to the SDK's standard ``OTEL_BSP_*`` variables.

The README's table is generated from :data:`VARIABLES` by :func:`markdown_table`
and a test checks that the two agree.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = [
    "MAXIM_ALLOW_INSECURE",
    "MAXIM_API_KEY",
    "MAXIM_BASE_URL",
    "MAXIM_BRIDGE_BODY_TIMEOUT",
    "MAXIM_BRIDGE_CROSS_SERVICE_GRACE",
    "MAXIM_BRIDGE_HEADER_TIMEOUT",
    "MAXIM_BRIDGE_HOST",
    "MAXIM_BRIDGE_MAX_BODY_BYTES",
    "MAXIM_BRIDGE_MAX_CONNECTIONS",
    "MAXIM_BRIDGE_MAX_PENDING_BYTES",
    "MAXIM_BRIDGE_PORT",
    "MAXIM_BRIDGE_QUEUE_SIZE",
    "MAXIM_BRIDGE_RETRY_AFTER",
    "MAXIM_BRIDGE_TOKEN",
    "MAXIM_CAPTURE_CONTENT",
    "MAXIM_EXPORT_TIMEOUT",
    "MAXIM_FAST_JSON",
    "MAXIM_LOG_REPO_ID",
    "MAXIM_MAX_ATTRIBUTES",
    "MAXIM_MAX_HELD_BYTES",
    "MAXIM_MAX_HELD_SPANS",
    "MAXIM_MAX_HELD_TRACES",
    "MAXIM_MAX_RECORD_BYTES",
    "MAXIM_MAX_SPOOL_BYTES",
    "MAXIM_RECORDS_FILE",
    "MAXIM_SESSION_BAGGAGE",
    "MAXIM_SESSION_ID_PATTERN",
    "MAXIM_SPOOL_DIR",
    "MAXIM_TRACE_TIMEOUT",
    "VARIABLES",
    "Variable",
    "markdown_table",
]


class Variable(NamedTuple):
    """One environment variable: its name, its default (as the README shows it) and its meaning."""

    name: str
    default: str
    meaning: str


MAXIM_API_KEY = "MAXIM_API_KEY"
MAXIM_LOG_REPO_ID = "MAXIM_LOG_REPO_ID"
MAXIM_BASE_URL = "MAXIM_BASE_URL"
MAXIM_RECORDS_FILE = "MAXIM_RECORDS_FILE"
MAXIM_SPOOL_DIR = "MAXIM_SPOOL_DIR"
MAXIM_TRACE_TIMEOUT = "MAXIM_TRACE_TIMEOUT"
MAXIM_MAX_HELD_SPANS = "MAXIM_MAX_HELD_SPANS"
MAXIM_MAX_HELD_BYTES = "MAXIM_MAX_HELD_BYTES"
MAXIM_CAPTURE_CONTENT = "MAXIM_CAPTURE_CONTENT"
MAXIM_SESSION_ID_PATTERN = "MAXIM_SESSION_ID_PATTERN"
MAXIM_MAX_RECORD_BYTES = "MAXIM_MAX_RECORD_BYTES"
MAXIM_MAX_ATTRIBUTES = "MAXIM_MAX_ATTRIBUTES"
MAXIM_MAX_HELD_TRACES = "MAXIM_MAX_HELD_TRACES"
MAXIM_MAX_SPOOL_BYTES = "MAXIM_MAX_SPOOL_BYTES"
MAXIM_EXPORT_TIMEOUT = "MAXIM_EXPORT_TIMEOUT"
MAXIM_ALLOW_INSECURE = "MAXIM_ALLOW_INSECURE"
MAXIM_FAST_JSON = "MAXIM_FAST_JSON"
# --- otel-maxim bridge (the Collector path) ---
MAXIM_BRIDGE_HOST = "MAXIM_BRIDGE_HOST"
MAXIM_BRIDGE_PORT = "MAXIM_BRIDGE_PORT"
MAXIM_BRIDGE_TOKEN = "MAXIM_BRIDGE_TOKEN"
MAXIM_BRIDGE_MAX_BODY_BYTES = "MAXIM_BRIDGE_MAX_BODY_BYTES"
MAXIM_BRIDGE_QUEUE_SIZE = "MAXIM_BRIDGE_QUEUE_SIZE"
MAXIM_BRIDGE_CROSS_SERVICE_GRACE = "MAXIM_BRIDGE_CROSS_SERVICE_GRACE"
MAXIM_BRIDGE_RETRY_AFTER = "MAXIM_BRIDGE_RETRY_AFTER"
MAXIM_BRIDGE_HEADER_TIMEOUT = "MAXIM_BRIDGE_HEADER_TIMEOUT"
MAXIM_BRIDGE_BODY_TIMEOUT = "MAXIM_BRIDGE_BODY_TIMEOUT"
MAXIM_BRIDGE_MAX_CONNECTIONS = "MAXIM_BRIDGE_MAX_CONNECTIONS"
MAXIM_BRIDGE_MAX_PENDING_BYTES = "MAXIM_BRIDGE_MAX_PENDING_BYTES"
# --- opentelemetry-instrument (otel_maxim.auto) ---
MAXIM_SESSION_BAGGAGE = "MAXIM_SESSION_BAGGAGE"

#: The table, in the order the README shows it.
VARIABLES: tuple[Variable, ...] = (
    Variable(
        MAXIM_API_KEY,
        "(unset)",
        "Maxim API key. Set: records go to Maxim's log API. Unset: records go to a local file.",
    ),
    Variable(MAXIM_LOG_REPO_ID, "(unset)", "Maxim log repository id; needed with an API key."),
    Variable(MAXIM_BASE_URL, "`https://app.getmaxim.ai`", "Base URL of Maxim's log API."),
    Variable(
        MAXIM_RECORDS_FILE,
        "`maxim-records.log`",
        "Where records go when no API key is set: a file that records are appended to (its directory is made "
        "if missing), or `-` for standard output.",
    ),
    Variable(
        MAXIM_SPOOL_DIR,
        "`<user cache dir>/otel-maxim/spool`",
        "Directory where undeliverable records wait on disk to be sent again.",
    ),
    Variable(
        MAXIM_MAX_SPOOL_BYTES,
        "`268435456` (256 MiB)",
        "Most bytes one process's spool (quarantine included) may hold; past it new records are refused, "
        "counted and logged.",
    ),
    Variable(
        MAXIM_EXPORT_TIMEOUT,
        "`10`",
        "Seconds one delivery attempt may take, retries included, before its records go to the spool.",
    ),
    Variable(
        MAXIM_ALLOW_INSECURE,
        "`false`",
        "`true` allows a plain `http://` base URL to a host that is not loopback (https:// is always verified).",
    ),
    Variable(
        MAXIM_TRACE_TIMEOUT,
        "`300`",
        "Seconds a trace is held waiting for its root span to end before what arrived is sent anyway.",
    ),
    Variable(
        MAXIM_MAX_HELD_SPANS,
        "`100000`",
        "Most spans held in memory waiting for their trace's root; past it the oldest traces are sent early.",
    ),
    Variable(
        MAXIM_MAX_HELD_BYTES,
        "`134217728`",
        "Most bytes of those spans (estimated: their texts, the objects of their attribute values, about 2 KB "
        "for the rest of each span); past it the oldest traces are sent early.",
    ),
    Variable(
        MAXIM_CAPTURE_CONTENT,
        "`true`",
        "`false` keeps message contents, inputs and outputs out of every record.",
    ),
    Variable(
        MAXIM_SESSION_ID_PATTERN,
        "(unset: any id)",
        "A regular expression a `session.id` from baggage must match whole to be accepted "
        "(baggage is attacker-controlled: set it on public endpoints).",
    ),
    Variable(
        MAXIM_MAX_RECORD_BYTES,
        "`1000000`",
        "Largest record; the longest text fields of a larger one are truncated, with a visible marker.",
    ),
    Variable(
        MAXIM_FAST_JSON,
        "`true` if orjson is installed",
        "`true`: records' data is written by orjson (the `fast` extra), compact as Maxim's JS SDK writes it; "
        "`false`: by the standard library, byte for byte as maxim-py writes it.",
    ),
    Variable(
        MAXIM_MAX_ATTRIBUTES,
        "`128`",
        "Most span attributes sent as one entity's metadata; the rest are counted in `otel_maxim.dropped_attributes`.",
    ),
    Variable(
        MAXIM_MAX_HELD_TRACES,
        "`10000`",
        "Most traces held waiting for their root; past it the oldest are sent early.",
    ),
    Variable(
        MAXIM_BRIDGE_HOST,
        "`127.0.0.1`",
        "`otel-maxim bridge`: the address to listen on (`0.0.0.0` or `::` in a container).",
    ),
    Variable(
        MAXIM_BRIDGE_PORT,
        "`4318`",
        "`otel-maxim bridge`: the port to listen on (4318 is OTLP/HTTP's standard port).",
    ),
    Variable(
        MAXIM_BRIDGE_TOKEN,
        "(unset)",
        "`otel-maxim bridge`: when set, requests must carry `Authorization: Bearer <token>` (else 401); "
        "a blank value or one outside visible ASCII stops the bridge at start.",
    ),
    Variable(
        MAXIM_BRIDGE_MAX_BODY_BYTES,
        "`20971520`",
        "`otel-maxim bridge`: the largest request body, compressed or not (else 413).",
    ),
    Variable(
        MAXIM_BRIDGE_QUEUE_SIZE,
        "`16384`",
        "`otel-maxim bridge`: spans queued for the exporter; when full, requests are answered 503 with "
        "`Retry-After`, and a request of more spans than this 413.",
    ),
    Variable(
        MAXIM_BRIDGE_CROSS_SERVICE_GRACE,
        "`10`",
        "`otel-maxim bridge`: seconds a trace whose top span has a remote parent waits for that parent's service.",
    ),
    Variable(
        MAXIM_BRIDGE_RETRY_AFTER,
        "`2`",
        "`otel-maxim bridge`: the `Retry-After` seconds sent with each 503 (the span queue full, request bytes or "
        "connections at their bound, shutting down).",
    ),
    Variable(
        MAXIM_BRIDGE_HEADER_TIMEOUT,
        "`10`",
        "`otel-maxim bridge`: seconds a connection may take to send a request's line and headers (from when it "
        "opens, or its previous response ends) before it is closed.",
    ),
    Variable(
        MAXIM_BRIDGE_BODY_TIMEOUT,
        "`30`",
        "`otel-maxim bridge`: seconds a request's whole body may take to arrive once its head is in; past it the "
        "request is answered 408 (OTLP clients do not retry it) and its connection closed.",
    ),
    Variable(
        MAXIM_BRIDGE_MAX_CONNECTIONS,
        "`1000` (at most `ulimit -n` minus 128)",
        "`otel-maxim bridge`: connections held open at once; one more is answered 503 with `Retry-After` at once, "
        "without reading its request, and closed.",
    ),
    Variable(
        MAXIM_BRIDGE_MAX_PENDING_BYTES,
        "`134217728` (128 MiB)",
        "`otel-maxim bridge`: bytes held at once for requests: each body's bytes as they arrive (not its "
        "declared `Content-Length`) until it is decoded or refused, then its decoded spans (an estimate) until "
        "the exporter's worker takes them; a request that would take more is answered 503 with `Retry-After`, "
        "unless nothing else is held.",
    ),
    Variable(
        MAXIM_SESSION_BAGGAGE,
        "(unset)",
        "Under `opentelemetry-instrument`: `true` copies `session.id` (and the session name and tags) from baggage "
        "onto every span whatever the exporter (e.g. OTLP to a Collector and the bridge); `false` never; "
        "unset: only when `OTEL_TRACES_EXPORTER` names `maxim`.",
    ),
)


def markdown_table() -> str:
    """The README's environment variable table, in Markdown."""
    lines = ["| Variable | Default | Meaning |", "|---|---|---|"]
    lines += [f"| `{v.name}` | {v.default} | {v.meaning} |" for v in VARIABLES]
    return "\n".join(lines)
