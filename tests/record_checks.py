"""Checks on record streams shared by the tests: Maxim's ordering rule, and a sink that keeps lines."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan

from otel_maxim import MaximSpanExporter
from otel_maxim.records import Record, parse

#: ``add-*`` action -> the entity it announces.
ANNOUNCES = {
    "add-span": "span",
    "add-generation": "generation",
    "add-tool-call": "tool_call",
    "add-retrieval": "retrieval",
}


def assert_parent_first(records: Sequence[Record]) -> None:
    """Every record is addressed to an entity announced before it (Maxim applies records in order)."""
    announced: set[tuple[str, str]] = set()
    for index, record in enumerate(records):
        key = (record.entity, record.id)
        if record.action == "create":
            if record.entity == "trace" and "sessionId" in record.data:
                assert ("session", record.data["sessionId"]) in announced, f"#{index}: trace before its session"
            announced.add(key)
            continue
        assert key in announced, f"#{index}: {record.entity} {record.id} {record.action} before its announcement"
        child = ANNOUNCES.get(record.action)
        if child is not None:
            announced.add((child, str(record.data["id"])))


class ListSink:
    """A sink that keeps every line (thread-safe), for tests."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._lock = threading.Lock()

    def write(self, lines: Sequence[str]) -> bool:
        with self._lock:
            self.lines.extend(lines)
        return True

    def flush(self, timeout: float) -> bool:
        return True

    def close(self, timeout: float) -> None:
        pass

    def records(self) -> list[Record]:
        with self._lock:
            return [parse(line) for line in self.lines]


def exported(spans: Sequence[ReadableSpan], **options: Any) -> ListSink:
    """What a new exporter (with ``options``) writes of ``spans``, exported as one batch, then shut down."""
    sink = ListSink()
    exporter = MaximSpanExporter(sink=sink, **options)
    exporter.export(spans)
    exporter.shutdown()
    return sink
