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
    "MAXIM_API_KEY",
    "MAXIM_BASE_URL",
    "MAXIM_CAPTURE_CONTENT",
    "MAXIM_LOG_REPO_ID",
    "MAXIM_MAX_HELD_SPANS",
    "MAXIM_RECORDS_FILE",
    "MAXIM_SPOOL_DIR",
    "MAXIM_TRACE_TIMEOUT",
    "VARIABLES",
    "Variable",
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
MAXIM_CAPTURE_CONTENT = "MAXIM_CAPTURE_CONTENT"

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
        "Where records go when no API key is set: a file that records are appended to, or `-` for standard output.",
    ),
    Variable(
        MAXIM_SPOOL_DIR,
        "`<user cache dir>/otel-maxim/spool`",
        "Directory where undeliverable records wait on disk to be sent again.",
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
        MAXIM_CAPTURE_CONTENT,
        "`true`",
        "`false` keeps message contents, inputs and outputs out of every record.",
    ),
)


def markdown_table() -> str:
    """The README's environment variable table, in Markdown."""
    lines = ["| Variable | Default | Meaning |", "|---|---|---|"]
    lines += [f"| `{v.name}` | {v.default} | {v.meaning} |" for v in VARIABLES]
    return "\n".join(lines)
