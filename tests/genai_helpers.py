"""Helpers for the GenAI mapping tests: one Maxim pipeline per test, and ways to read its records."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import TracerProvider

from otel_maxim import MaximSpanExporter, MaximSpanProcessor
from otel_maxim.records import Record, parse
from tests.record_checks import ListSink, assert_parent_first


@dataclass
class Maxim:
    """A TracerProvider whose only processor is a MaximSpanProcessor writing to ``sink`` (or ``path``)."""

    provider: TracerProvider
    exporter: MaximSpanExporter
    sink: ListSink | None
    path: Path | None = None
    _lines: list[str] | None = None

    def lines(self) -> list[str]:
        """Shut the provider down (once: everything is exported) and return the lines written."""
        if self._lines is None:
            self.provider.shutdown()
            if self.sink is not None:
                self._lines = list(self.sink.lines)
            else:
                assert self.path is not None
                self._lines = self.path.read_text(encoding="utf-8").splitlines() if self.path.exists() else []
        return self._lines

    def records(self) -> list[Record]:
        """The records written: every line parses, and every record comes after its parent's announcement."""
        lines = self.lines()
        records = [parse(line) for line in lines]
        assert_parent_first(records)
        return records


def maxim_pipeline(*, path: Path | None = None, **exporter_options: Any) -> Maxim:
    """A fresh provider and exporter for one test: a ListSink, or the file sink at ``path``."""
    sink = None if path is not None else ListSink()
    if sink is not None:
        exporter = MaximSpanExporter(sink=sink, **exporter_options)
    else:
        exporter = MaximSpanExporter(output=str(path), **exporter_options)
    provider = TracerProvider()
    provider.add_span_processor(MaximSpanProcessor(exporter))
    return Maxim(provider, exporter, sink, path)


@dataclass
class Entity:
    """A generation, tool call or retrieval: its announcement and every record addressed to it."""

    parent: tuple[str, str]
    announced: dict[str, Any]
    records: list[Record]

    @property
    def id(self) -> str:
        return str(self.announced["id"])

    def of(self, action: str) -> list[dict[str, Any]]:
        return [dict(r.data) for r in self.records if r.action == action]

    def one(self, action: str) -> dict[str, Any]:
        found = self.of(action)
        assert len(found) == 1, f"{len(found)} {action} records for {self.id}: {found}"
        return found[0]

    @property
    def result(self) -> Any:
        return self.one("result")["result"]


_ANNOUNCES = {"add-generation": "generation", "add-tool-call": "tool_call", "add-retrieval": "retrieval"}


def entities(records: Sequence[Record], kind: str) -> list[Entity]:
    """Every entity of ``kind`` (``generation``, ``tool_call``, ``retrieval``) in announcement order."""
    found: list[Entity] = []
    for record in records:
        if _ANNOUNCES.get(record.action) == kind:
            child_id = str(record.data["id"])
            mine = [r for r in records if r.entity == kind and r.id == child_id]
            found.append(Entity((record.entity, record.id), dict(record.data), mine))
    return found


def of(records: Iterable[Record], entity: str, action: str) -> list[Record]:
    return [r for r in records if r.entity == entity and r.action == action]


def trace_creates(records: Sequence[Record]) -> list[Record]:
    return of(records, "trace", "create")


def trace_output(records: Sequence[Record], trace_id: str) -> str | None:
    outputs = [r.data["output"] for r in records if r.id == trace_id and r.action == "update" and "output" in r.data]
    assert len(outputs) <= 1
    return outputs[0] if outputs else None


def assert_in_session(records: Sequence[Record], session_id: str) -> None:
    """The session is created first and ended last, and every trace names it."""
    assert (records[0].entity, records[0].id, records[0].action) == ("session", session_id, "create")
    assert (records[-1].entity, records[-1].id, records[-1].action) == ("session", session_id, "end")
    creates = trace_creates(records)
    assert creates, "no trace"
    assert [r.data.get("sessionId") for r in creates] == [session_id] * len(creates)
    assert len(of(records, "session", "create")) == 1 and len(of(records, "session", "end")) == 1


def arguments(call: dict[str, Any]) -> Any:
    """The parsed JSON arguments of a chat-completion tool call."""
    assert call["type"] == "function"
    return json.loads(call["function"]["arguments"])
