"""Shared fixtures: real OTel SDK pipelines writing Maxim records to a temporary file."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Tracer

from otel_maxim import MaximSpanExporter, MaximSpanProcessor, records
from otel_maxim._log import RateLimitedLog
from otel_maxim.records import Record, parse


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No MAXIM_* or OTEL_* variable of the developer's leaks into a test; work in a temp dir."""
    for name in list(os.environ):
        if name.startswith(("MAXIM_", "OTEL_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.fixture(autouse=True)
def _fresh_module_logs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Module-level rate-limited logs live as long as the process: each test starts with none held back."""
    for name, module in list(sys.modules.items()):
        if name.startswith("otel_maxim") and isinstance(getattr(module, "_limited", None), RateLimitedLog):
            monkeypatch.setattr(module, "_limited", RateLimitedLog(logging.getLogger(name)))


@pytest.fixture(params=["standard", "fast"])
def json_style(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each way of writing a record's data: ``standard`` (maxim-py's bytes) and ``fast`` (orjson, maxim-js's)."""
    style: str = request.param
    monkeypatch.setattr(records, "_encode_data", records.data_encoder(fast=style == "fast"))
    monkeypatch.setenv("MAXIM_FAST_JSON", "true" if style == "fast" else "false")
    return style


@pytest.fixture
def standard_json(monkeypatch: pytest.MonkeyPatch) -> None:
    """Records written as maxim-py writes them (what ``MAXIM_FAST_JSON=false`` or no orjson gives)."""
    monkeypatch.setattr(records, "_encode_data", records.data_encoder(fast=False))
    monkeypatch.setenv("MAXIM_FAST_JSON", "false")


def read_records(path: Path) -> list[Record]:
    if not path.exists():
        return []
    return [parse(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


@dataclass
class Pipeline:
    """A TracerProvider with a MaximSpanProcessor feeding an exporter that writes to ``path``."""

    provider: TracerProvider
    tracer: Tracer
    exporter: MaximSpanExporter
    processor: MaximSpanProcessor
    path: Path

    def records(self) -> list[Record]:
        """Flush everything (shutdown) and return the records written."""
        self.provider.shutdown()
        return read_records(self.path)

    def lines(self) -> list[str]:
        self.provider.shutdown()
        return self.path.read_text(encoding="utf-8").splitlines() if self.path.exists() else []


@pytest.fixture
def pipeline(tmp_path: Path) -> Iterator[Pipeline]:
    path = tmp_path / "records.log"
    exporter = MaximSpanExporter(output=str(path))
    processor = MaximSpanProcessor(exporter)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    yield Pipeline(provider, provider.get_tracer("tests"), exporter, processor, path)
    provider.shutdown()


@pytest.fixture
def memory_provider() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    """A plain OTel pipeline (no otel_maxim processor) recording finished spans in memory."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()
