"""``otel-maxim bridge``: real OTLP clients (the SDK's exporters, rotel) into a real server, out as records."""

from __future__ import annotations

import base64
import contextlib
import gc
import gzip
import json
import logging
import os
import random
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import weakref
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from google.rpc import status_pb2
from opentelemetry import propagate
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as encode_protobuf
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as ProtobufSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import otel_maxim
from otel_maxim import MaximSpanExporter, SessionBaggageProcessor, otlp
from otel_maxim import environment_variables as env
from otel_maxim.assembly import held_size
from otel_maxim.bridge import Bridge, BridgeServer
from otel_maxim.cli import main
from otel_maxim.otlp import BodyTooLarge, decompress, parse_request, spans_from_request
from otel_maxim.records import Record, parse
from tests.conftest import read_records
from tests.fake_maxim import FakeMaxim
from tests.otlp_helpers import (
    RecordingExporter,
    StreamLines,
    free_port,
    rotel_binary,
    rotel_environment,
    running_bridge,
    stop_process,
    wait_for,
    wait_for_port,
)
from tests.record_checks import ListSink, assert_parent_first, exported

PROTOBUF = {"Content-Type": "application/x-protobuf"}
JSON = {"Content-Type": "application/json"}
TRACE_HEX = "5b8efff798038103d269b633813fc60c"
SPAN_HEX = "eee19b7ec3c1b174"
PARENT_HEX = "00f067aa0ba902b7"


def _hex(value: int, width: int) -> str:
    return format(value, f"0{width}x")


# --- the scenario: two services share a session through W3C headers, then the session ends ----------------


class Scenario:
    """Service ``frontend`` calls service ``backend`` over a real ``traceparent`` + ``baggage`` header."""

    session_id = "conv-42"

    def __init__(self, make_exporter: Callable[[], SpanExporter]) -> None:
        self.providers = []
        for service in ("frontend", "backend"):
            provider = TracerProvider(resource=Resource.create({"service.name": service}))
            provider.add_span_processor(SessionBaggageProcessor())  # session.id from baggage onto every span
            provider.add_span_processor(BatchSpanProcessor(make_exporter()))
            self.providers.append(provider)
        self.frontend, self.backend = self.providers
        self.headers: dict[str, str] = {}
        self.ids: dict[str, int] = {}

    def run(self) -> None:
        tracer_a = self.frontend.get_tracer("frontend")
        tracer_b = self.backend.get_tracer("backend")
        with otel_maxim.session(self.session_id, name="Support chat", tracer_provider=self.frontend) as session:
            with session.trace("turn-1") as root:
                self.ids["turn-1"] = root.get_span_context().span_id
                with tracer_a.start_as_current_span("call backend", kind=SpanKind.CLIENT) as call:
                    self.ids["call backend"] = call.get_span_context().span_id
                    propagate.inject(self.headers)
                    # The backend service: only the headers cross the process boundary.
                    incoming = propagate.extract(dict(self.headers), context=Context())
                    with tracer_b.start_as_current_span("handle", context=incoming, kind=SpanKind.SERVER) as handle:
                        self.ids["handle"] = handle.get_span_context().span_id
                        with tracer_b.start_as_current_span(
                            "chat gpt-4o",
                            attributes={
                                "gen_ai.operation.name": "chat",
                                "gen_ai.system": "openai",
                                "gen_ai.request.model": "gpt-4o",
                            },
                        ) as chat:
                            self.ids["chat gpt-4o"] = chat.get_span_context().span_id
            with session.trace("turn-2") as root:
                self.ids["turn-2"] = root.get_span_context().span_id
            # The backend's spans reach the bridge first: the trace waits for its frontend half.
            self.backend.force_flush()
            self.frontend.force_flush()
            session.end()
        self.frontend.force_flush()
        for provider in self.providers:
            provider.shutdown()

    def check(self, records: list[Record]) -> None:
        assert "traceparent" in self.headers and "session.id=conv-42" in self.headers.get("baggage", "")
        assert records, "no records"
        assert_parent_first(records)
        assert (records[0].entity, records[0].id, records[0].action) == ("session", "conv-42", "create")
        assert records[0].data["name"] == "Support chat"
        assert (records[-1].entity, records[-1].id, records[-1].action) == ("session", "conv-42", "end")
        sessions = [(r.id, r.action) for r in records if r.entity == "session"]
        assert sessions == [("conv-42", "create"), ("conv-42", "end")]
        traces = [r for r in records if r.entity == "trace" and r.action == "create"]
        assert [t.data["name"] for t in traces] == ["turn-1", "turn-2"]
        assert all(t.data["sessionId"] == "conv-42" for t in traces)
        announced = {str(r.data["id"]): r for r in records if r.action.startswith("add-") and "id" in r.data}
        # Every span of both services is in Maxim, under the span that called it, across the service boundary.
        for name in ("call backend", "handle", "chat gpt-4o"):
            assert _hex(self.ids[name], 16) in announced, f"{name} missing"
        handle = announced[_hex(self.ids["handle"], 16)]
        assert (handle.entity, handle.id) == ("span", _hex(self.ids["call backend"], 16))
        chat = announced[_hex(self.ids["chat gpt-4o"], 16)]
        assert (chat.entity, chat.id, chat.action) == ("span", _hex(self.ids["handle"], 16), "add-generation")
        assert (chat.data["model"], chat.data["provider"]) == ("gpt-4o", "openai")  # attributes survived OTLP
        ended = {r.id for r in records if r.action == "end"}
        assert {t.id for t in traces} <= ended


@pytest.fixture
def fake_maxim() -> Iterator[FakeMaxim]:
    with FakeMaxim() as fake:
        yield fake


@pytest.fixture
def maxim_bridge(fake_maxim: FakeMaxim, tmp_path: Path) -> Iterator[tuple[str, FakeMaxim]]:
    """A bridge in-process whose exporter delivers to a local server that speaks Maxim's log API."""
    exporter = MaximSpanExporter(
        api_key=fake_maxim.api_key,
        repo_id="test-repo",
        base_url=fake_maxim.base_url,
        spool_dir=str(tmp_path / "spool"),
        cross_service_grace=5.0,
    )
    with running_bridge(Bridge(exporter)) as server:
        yield server.url, fake_maxim


def _delivered(fake: FakeMaxim) -> list[Record]:
    return [parse(line) for line in fake.distinct()]


def _session_ended(fake: FakeMaxim) -> bool:
    return any(r.entity == "session" and r.action == "end" for r in _delivered(fake))


@pytest.mark.parametrize("encoding", ["protobuf", "protobuf+gzip", "json"])
def test_two_services_share_a_session_through_the_bridge(maxim_bridge: tuple[str, FakeMaxim], encoding: str) -> None:
    url, fake = maxim_bridge
    endpoint = url + "/v1/traces"

    def make_exporter() -> SpanExporter:
        if encoding == "json":
            # Imported here: the SDK's OTLP/JSON exporter needs a recent SDK (make test-oldest has none).
            from opentelemetry.exporter.otlp.json.http.trace_exporter import OTLPSpanExporter  # noqa: PLC0415

            return OTLPSpanExporter(endpoint=endpoint)
        compression = Compression.Gzip if encoding.endswith("gzip") else Compression.NoCompression
        return ProtobufSpanExporter(endpoint=endpoint, compression=compression)

    scenario = Scenario(make_exporter)
    scenario.run()
    wait_for(lambda: _session_ended(fake), what="the records at the fake Maxim")
    scenario.check(_delivered(fake))
    assert len(fake.accepted()) == len(fake.distinct()), "a record was delivered twice"


def test_through_rotel_a_collector_style_relay(maxim_bridge: tuple[str, FakeMaxim], tmp_path: Path) -> None:
    url, fake = maxim_bridge
    http_port, grpc_port = free_port(), free_port()
    command = [
        str(rotel_binary()),
        "start",
        "--otlp-http-endpoint",
        f"127.0.0.1:{http_port}",
        "--otlp-grpc-endpoint",
        f"127.0.0.1:{grpc_port}",
        "--exporter",
        "otlp",
        "--otlp-exporter-protocol",
        "http",  # rotel appends /v1/traces to the endpoint
        "--otlp-exporter-endpoint",
        url,
        "--otlp-exporter-compression",
        "gzip",
        "--batch-timeout",
        "100ms",
        "--pid-file",
        str(tmp_path / "rotel.pid"),
        "--log-file",
        str(tmp_path / "rotel.log"),
    ]
    relay = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=rotel_environment())
    try:
        wait_for_port(http_port, relay)
        scenario = Scenario(lambda: ProtobufSpanExporter(endpoint=f"http://127.0.0.1:{http_port}/v1/traces"))
        scenario.run()
        wait_for(lambda: _session_ended(fake), what="the records at the fake Maxim")
    finally:
        stop_process(relay)
    scenario.check(_delivered(fake))


# --- decoding: every OTLP value kind, ids, flags, through a real JSON post ---------------------------------


def _otlp_json() -> dict[str, object]:
    """A hand-written OTLP JSON request (the encoding's own rules: hex ids, camelCase, int64 as strings)."""
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "checkout"}}]},
                "scopeSpans": [
                    {
                        "scope": {"name": "shop.instrumentation", "version": "1.2.3"},
                        "spans": [
                            {
                                "traceId": TRACE_HEX.upper(),  # hex is case-insensitive
                                "spanId": SPAN_HEX,
                                "parentSpanId": PARENT_HEX,
                                "flags": 0x301,  # sampled; the parent is known to be remote
                                "traceState": "vendor=value",
                                "name": "checkout",
                                "kind": 2,
                                "startTimeUnixNano": "1700000000000000000",
                                "endTimeUnixNano": "1700000001500000000",
                                "attributes": [
                                    {"key": "session.id", "value": {"stringValue": "conv-7"}},
                                    {"key": "retries", "value": {"intValue": "3"}},
                                    {"key": "ratio", "value": {"doubleValue": 0.25}},
                                    {"key": "cached", "value": {"boolValue": True}},
                                    {"key": "blob", "value": {"bytesValue": base64.b64encode(b"\x00\xff").decode()}},
                                    {
                                        "key": "tags",
                                        "value": {
                                            "arrayValue": {"values": [{"stringValue": "a"}, {"stringValue": "b"}]}
                                        },
                                    },
                                    {
                                        "key": "mixed",
                                        "value": {"arrayValue": {"values": [{"stringValue": "a"}, {"intValue": "1"}]}},
                                    },
                                    {
                                        "key": "user",
                                        "value": {
                                            "kvlistValue": {
                                                "values": [
                                                    {"key": "id", "value": {"intValue": "42"}},
                                                    {
                                                        "key": "roles",
                                                        "value": {"arrayValue": {"values": [{"stringValue": "x"}]}},
                                                    },
                                                ]
                                            }
                                        },
                                    },
                                    {"key": "nothing", "value": {}},
                                ],
                                "events": [
                                    {
                                        "timeUnixNano": "1700000000500000000",
                                        "name": "cache miss",
                                        "attributes": [{"key": "key", "value": {"stringValue": "cart"}}],
                                    }
                                ],
                                "links": [
                                    {"traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": "b7ad6b7169203331"}
                                ],
                                "status": {"code": 2, "message": "card declined"},
                                "unknownFieldFromTheFuture": True,
                            },
                            {"traceId": "not hex", "spanId": SPAN_HEX, "name": "bad trace id"},
                            {"traceId": TRACE_HEX, "spanId": "0000000000000000", "name": "zero span id"},
                        ],
                    }
                ],
            }
        ]
    }


def test_otlp_json_every_value_kind_becomes_real_sdk_spans() -> None:
    recorder = RecordingExporter()
    with running_bridge(Bridge(recorder)) as server:
        response = requests.post(server.url + "/v1/traces", data=json.dumps(_otlp_json()), headers=JSON, timeout=10)
        assert response.status_code == 200, response.text
        # Partial success: two spans rejected, with the reasons; the valid one is accepted.
        partial = response.json()["partialSuccess"]
        assert partial["rejectedSpans"] == "2"
        assert "invalid trace id" in partial["errorMessage"] and "invalid span id" in partial["errorMessage"]
        wait_for(lambda: recorder.spans, what="the span")
    assert recorder.shut_down
    span = recorder.by_name("checkout")
    assert span.context is not None and span.parent is not None
    assert (span.context.trace_id, span.context.span_id) == (int(TRACE_HEX, 16), int(SPAN_HEX, 16))
    assert not span.context.is_remote and span.context.trace_flags.sampled
    assert span.context.trace_state.get("vendor") == "value"
    assert (span.parent.span_id, span.parent.is_remote) == (int(PARENT_HEX, 16), True)
    assert span.kind is SpanKind.SERVER
    assert (span.start_time, span.end_time) == (1_700_000_000_000_000_000, 1_700_000_001_500_000_000)
    assert span.resource.attributes["service.name"] == "checkout"
    assert span.instrumentation_scope is not None
    assert (span.instrumentation_scope.name, span.instrumentation_scope.version) == ("shop.instrumentation", "1.2.3")
    attributes = dict(span.attributes or {})
    assert attributes == {
        "session.id": "conv-7",
        "retries": 3,
        "ratio": 0.25,
        "cached": True,
        "blob": "AP8=",
        "tags": ("a", "b"),
        "mixed": ("a", 1),  # as SDK 1.4x holds any sequence, and a mapping as a dict: AnyValue
        "user": {"id": 42, "roles": ("x",)},
        "nothing": None,  # an empty value: the SDK keeps None
    }
    assert [(e.name, e.timestamp, dict(e.attributes or {})) for e in span.events] == [
        ("cache miss", 1_700_000_000_500_000_000, {"key": "cart"})
    ]
    assert [(link.context.trace_id, link.context.span_id) for link in span.links] == [
        (0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331)
    ]
    assert (span.status.status_code, span.status.description) == (StatusCode.ERROR, "card declined")


def _span(name: str, span_id: int, parent_id: int | None = None, flags: int = 0) -> Span:
    return Span(
        trace_id=bytes.fromhex(TRACE_HEX),
        span_id=span_id.to_bytes(8, "big"),
        parent_span_id=b"" if parent_id is None else parent_id.to_bytes(8, "big"),
        flags=flags,
        name=name,
        start_time_unix_nano=1,
        end_time_unix_nano=2,
    )


def _request(*spans: Span) -> ExportTraceServiceRequest:
    return ExportTraceServiceRequest(resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=list(spans))])])


def _held_bytes(raw: bytes) -> int:
    """What the spans of a protobuf request (uncompressed) count against the bridge's ``max_pending_bytes``."""
    decoded = spans_from_request(parse_request(raw, otlp.CONTENT_TYPE_PROTOBUF))
    return sum(map(held_size, decoded.spans)) + decoded.values_bytes


@pytest.mark.parametrize(
    ("flags", "parent_id", "remote"),
    [
        (0x100, 7, False),  # the producer says: a local parent
        (0x300, 7, True),  # the producer says: a remote parent
        (0x000, 7, True),  # the producer does not say: wait for it as for a remote parent (bounded by the grace)
        (0x300, 0, None),  # an all-zero parent id is no parent: a root
        (0x300, None, None),
    ],
)
def test_parent_remoteness_comes_from_the_otlp_span_flags(flags: int, parent_id: int | None, remote: bool) -> None:
    decoded = spans_from_request(_request(_span("s", 1, parent_id, flags)))
    parent = decoded.spans[0].parent
    assert (None if parent is None else parent.is_remote) == remote


def test_a_span_whose_parent_also_arrives_is_not_a_root_across_services(tmp_path: Path) -> None:
    """Two services' halves of one trace, in one request: one trace in Maxim, the server span under the client."""
    request = _request(
        _span("server", 2, parent_id=3, flags=0x300),  # the called service: a remote parent, which also arrives
        _span("client call", 3, parent_id=1, flags=0x100),
        _span("client root", 1),
    )
    records_path = tmp_path / "records.log"
    exporter = MaximSpanExporter(output=str(records_path), cross_service_grace=30.0)
    exporter.export(spans_from_request(request).spans)
    exporter.shutdown()
    records = read_records(records_path)
    assert [r.action for r in records if r.entity == "trace"].count("create") == 1
    server = next(r for r in records if r.action == "add-span" and r.data["name"] == "server")
    assert (server.entity, server.id) == ("span", _hex(3, 16))
    assert_parent_first(records)


# --- what a client can get wrong ---------------------------------------------------------------------


@pytest.fixture
def recorder_bridge() -> Iterator[tuple[str, RecordingExporter]]:
    recorder = RecordingExporter()
    with running_bridge(Bridge(recorder, max_body_bytes=64 * 1024)) as server:
        yield server.url + "/v1/traces", recorder


def _good_request(name: str = "good") -> bytes:
    data: bytes = _request(_span(name, 1)).SerializeToString()
    return data


@pytest.mark.parametrize(
    ("body", "headers", "expected"),
    [
        (b"\xff\xff\xff garbage", PROTOBUF, "not a protobuf ExportTraceServiceRequest"),
        (b'{"resourceSpans": [', JSON, "not JSON"),
        (b"[1, 2]", JSON, "not a JSON object"),
        (b'{"resourceSpans": 5}', JSON, "not an OTLP JSON ExportTraceServiceRequest"),
        (b"", JSON, "not JSON"),
        (b"\xc3\x28", JSON, "not JSON"),
        (b"not gzip at all", {**PROTOBUF, "Content-Encoding": "gzip"}, "not valid gzip"),
        (gzip.compress(_good_request())[:-8], {**PROTOBUF, "Content-Encoding": "gzip"}, "truncated"),
        (gzip.compress(b"") * 1001, {**PROTOBUF, "Content-Encoding": "gzip"}, "more than 1000 gzip members"),
    ],
)
def test_a_malformed_body_is_answered_400_and_nothing_else_is_lost(
    recorder_bridge: tuple[str, RecordingExporter], body: bytes, headers: dict[str, str], expected: str
) -> None:
    url, recorder = recorder_bridge
    response = requests.post(url, data=body, headers=headers, timeout=10)
    assert response.status_code == 400
    assert expected in _status_message(response)
    # The next request goes through as if nothing had happened.
    assert requests.post(url, data=_good_request(), headers=PROTOBUF, timeout=10).status_code == 200
    wait_for(lambda: recorder.spans, what="the good span")
    assert [span.name for span in recorder.spans] == ["good"]


def test_strings_that_are_not_utf8_are_read_with_replacement_characters_not_refused_with_the_batch(
    recorder_bridge: tuple[str, RecordingExporter], caplog: pytest.LogCaptureFixture
) -> None:
    """proto3 forbids them and the runtime refuses the whole request, but the Collector's receivers pass
    them on: a 400 (never retried) cost every span batched with the bad one."""
    url, recorder = recorder_bridge
    request = _request(_span("first", 1), _span("BAD!", 2), _span("third", 3))
    request.resource_spans[0].resource.attributes.add(key="service.name").value.string_value = "svc-BAD!"
    body = request.SerializeToString().replace(b"BAD!", b"B\xff\xfeD")
    with caplog.at_level(logging.WARNING, logger="otel_maxim"):
        response = requests.post(url, data=body, headers=PROTOBUF, timeout=10)
    assert response.status_code == 200
    assert not ExportTraceServiceResponse.FromString(response.content).HasField("partial_success")
    wait_for(lambda: len(recorder.spans) == 3, what="the three spans")
    assert sorted(span.name for span in recorder.spans) == ["B\ufffd\ufffdD", "first", "third"]
    assert {span.resource.attributes["service.name"] for span in recorder.spans} == {"svc-B\ufffd\ufffdD"}
    assert "2 strings that are not valid UTF-8" in caplog.text


def test_an_empty_request_is_accepted_with_nothing_to_export(recorder_bridge: tuple[str, RecordingExporter]) -> None:
    url, recorder = recorder_bridge
    for body, headers in ((b"", PROTOBUF), (b"{}", JSON), (b'{"resourceSpans": []}', JSON)):
        response = requests.post(url, data=body, headers=headers, timeout=10)
        assert response.status_code == 200, body
        if headers is PROTOBUF:
            assert not ExportTraceServiceResponse.FromString(response.content).HasField("partial_success")
        else:
            assert response.json() == {}
    assert recorder.spans == []


def test_oversized_bodies_are_answered_413(recorder_bridge: tuple[str, RecordingExporter]) -> None:
    url, recorder = recorder_bridge
    big = _request(*(_span(f"span-{i}" + "x" * 200, i + 1) for i in range(400))).SerializeToString()
    assert len(big) > 64 * 1024
    declared = requests.post(url, data=big, headers=PROTOBUF, timeout=10)
    assert declared.status_code == 413
    assert "larger than 65536 bytes" in status_pb2.Status.FromString(declared.content).message
    # No Content-Length (chunked): the body is cut off as it is read.
    chunked = requests.post(url, data=iter([big[i : i + 8192] for i in range(0, len(big), 8192)]), headers=PROTOBUF)
    assert chunked.status_code == 413
    # Small when compressed, too large once decompressed.
    bomb = requests.post(url, data=gzip.compress(big), headers={**PROTOBUF, "Content-Encoding": "gzip"}, timeout=10)
    assert len(gzip.compress(big)) < 64 * 1024
    assert bomb.status_code == 413
    assert "decompressed" in status_pb2.Status.FromString(bomb.content).message
    assert recorder.spans == []


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Content-Type": "text/plain"}, 415),
        ({**PROTOBUF, "Content-Encoding": "br"}, 415),
        ({"Content-Type": "application/x-protobuf; charset=binary"}, 200),
        ({**PROTOBUF, "Content-Encoding": "identity"}, 200),
    ],
)
def test_media_types_and_encodings(
    recorder_bridge: tuple[str, RecordingExporter], headers: dict[str, str], status: int
) -> None:
    url, _ = recorder_bridge
    assert requests.post(url, data=_good_request(), headers=headers, timeout=10).status_code == status


def test_what_the_sdk_refuses_in_a_request_is_said_once_not_per_span(
    recorder_bridge: tuple[str, RecordingExporter], caplog: pytest.LogCaptureFixture
) -> None:
    """A malformed tracestate or an empty attribute key on every span: one line for the request."""
    url, recorder = recorder_bridge
    spans = []
    for i in range(200):
        span = _span(f"s{i}", i + 1)
        span.trace_state = "not a valid tracestate!!"
        span.attributes.add(key="", value=AnyValue(int_value=i))
        span.attributes.add(key="kept", value=AnyValue(int_value=i))
        spans.append(span)
    with caplog.at_level(logging.WARNING):
        assert requests.post(url, data=_request(*spans).SerializeToString(), headers=PROTOBUF, timeout=10).ok
        wait_for(lambda: len(recorder.spans) == 200, what="every span")
    assert all(span.attributes == {"kept": i} for i, span in enumerate(recorder.spans))
    assert not [r for r in caplog.records if r.name.startswith("opentelemetry") or r.name == "otel_maxim.otlp"]
    (said,) = [r for r in caplog.records if r.name == "otel_maxim.bridge"]
    assert "Dropped 400 invalid items of one OTLP request, as the OpenTelemetry SDK drops them" in said.getMessage()
    # Elsewhere, the SDK still says what it says.
    with caplog.at_level(logging.WARNING):
        Resource({"": 1})
    assert any(r.name == "opentelemetry.attributes" for r in caplog.records)


def test_gzip_and_deflate_bodies(recorder_bridge: tuple[str, RecordingExporter]) -> None:
    url, recorder = recorder_bridge
    body = _good_request("gzipped")
    assert requests.post(url, data=gzip.compress(body), headers={**PROTOBUF, "Content-Encoding": "gzip"}).ok
    deflated = requests.post(
        url, data=zlib.compress(_good_request("deflated")), headers={**PROTOBUF, "Content-Encoding": "deflate"}
    )
    assert deflated.ok
    wait_for(lambda: len(recorder.spans) == 2, what="both spans")
    assert sorted(span.name for span in recorder.spans) == ["deflated", "gzipped"]
    # Several gzip members one after another are one body.
    two = _request(_span("first", 1)).SerializeToString()
    assert decompress(gzip.compress(two[:5]) + gzip.compress(two[5:]), "gzip", 1024) == two
    # Members larger than the slices the inflater is fed, then many small ones, then a last large one.
    noise = random.Random(7).randbytes(200_000)  # incompressible: 200 kB compressed too
    pieces = [noise, *(bytes([i % 256]) * i for i in range(998)), noise[::-1]]
    joined = b"".join(pieces)
    assert decompress(b"".join(gzip.compress(p) for p in pieces), "gzip", len(joined)) == joined
    with pytest.raises(BodyTooLarge):
        decompress(b"".join(gzip.compress(p) for p in pieces), "gzip", len(joined) - 1)


def _raw_deflate(data: bytes) -> bytes:
    """``data`` as a raw deflate stream (no zlib header), which some clients send as ``deflate``."""
    deflater = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    return deflater.compress(data) + deflater.flush()


def test_raw_deflate_bodies_that_decompress_just_past_a_64_kib_multiple_are_taken() -> None:
    """The inflater gives at most 64 KiB a call: a raw deflate stream whose whole input was fed with output
    still held back was taken for a truncated one (and refused as "incorrect header check", the zlib try's)."""
    for size in (65_535, 65_536, 65_537, 65_540, 131_073, 5 * 65_536 + 1):
        assert decompress(_raw_deflate(bytes(size)), "deflate", 1 << 20) == bytes(size), size
    recorder = RecordingExporter()
    body = _request(_span("x" * 65_480, 1)).SerializeToString()  # 65542 bytes: just past 64 KiB
    with running_bridge(Bridge(recorder)) as server:
        url = server.url + "/v1/traces"
        headers = {**PROTOBUF, "Content-Encoding": "deflate"}
        for sent in (_raw_deflate(body), zlib.compress(body)):
            response = requests.post(url, data=sent, headers=headers, timeout=10)
            assert response.status_code == 200, status_pb2.Status.FromString(response.content).message
        wait_for(lambda: len(recorder.spans) == 2, what="both spans")
        # A raw stream cut short is refused, and the answer says what is wrong with it (not the zlib try's
        # complaint about a header it never had); a zlib stream's own fault is said as such.
        for sent, expected in (
            (_raw_deflate(body)[:-20], "the compressed stream is truncated"),
            (zlib.compress(body)[:-2] + b"!!", "incorrect data check"),
        ):
            response = requests.post(url, data=sent, headers=headers, timeout=10)
            assert response.status_code == 400
            message = status_pb2.Status.FromString(response.content).message
            assert message.startswith("the body is not valid deflate data: ") and expected in message, message
    assert [span.name for span in recorder.spans] == ["x" * 65_480] * 2


def test_a_full_queue_answers_503_with_retry_after_and_recovers() -> None:
    slow = RecordingExporter(block=True)
    with running_bridge(Bridge(slow, queue_size=2, retry_after=7)) as server:
        url = server.url + "/v1/traces"
        two = _request(_span("a", 1), _span("b", 2)).SerializeToString()
        assert requests.post(url, data=two, headers=PROTOBUF, timeout=10).status_code == 200
        assert slow.entered.wait(10)  # the worker holds the first request in a slow export
        assert requests.post(url, data=two, headers=PROTOBUF, timeout=10).status_code == 200  # queued
        busy = requests.post(url, data=two, headers=PROTOBUF, timeout=10)
        assert busy.status_code == 503
        assert busy.headers["Retry-After"] == "7"
        assert "retry later" in status_pb2.Status.FromString(busy.content).message
        assert _health(server.url) == {
            "status": "ok",
            "queued_spans": 2,
            "queued_bytes": _held_bytes(two),
            "pending_bytes": 0,
            "queue_capacity": 2,
            "busy_responses": 1,
        }
        slow.release.set()
        wait_for(lambda: len(slow.spans) == 4, what="the queue to drain")
        assert requests.post(url, data=two, headers=PROTOBUF, timeout=10).status_code == 200
        wait_for(lambda: len(slow.spans) == 6, what="the retried request")


def test_a_request_with_more_spans_than_the_queue_is_answered_413_before_its_spans_are_built() -> None:
    """A small body can hold a great many tiny spans, each far larger built than sent."""
    recorder = RecordingExporter()
    with running_bridge(Bridge(recorder, queue_size=100)) as server:
        url = server.url + "/v1/traces"
        many = _request(*[_span(f"s{i}", i) for i in range(1, 1001)]).SerializeToString()
        refused = requests.post(url, data=many, headers=PROTOBUF, timeout=10)
        assert refused.status_code == 413
        message = status_pb2.Status.FromString(refused.content).message
        assert (
            message
            == "1000 spans in one request; the bridge takes at most 100 (MAXIM_BRIDGE_QUEUE_SIZE): send smaller batches"
        )
        assert requests.post(url, data=_good_request(), headers=PROTOBUF, timeout=10).status_code == 200
        wait_for(lambda: recorder.spans, what="the good span")
    assert [span.name for span in recorder.spans] == ["good"]


def _request_of_items(name: str, items: int, media: str) -> bytes:
    """One span carrying ``items`` items in all, as ``media``: the resource spans, the scope spans, the span,
    its one attribute (a key-value list), that list's one entry, and ``items - 5`` values in an array in it."""
    ints = items - 5
    if media == otlp.CONTENT_TYPE_PROTOBUF:
        array = AnyValue(array_value=ArrayValue(values=[AnyValue(int_value=1)] * ints))
        span = _span(name, 1)
        span.attributes.add(
            key="nested", value=AnyValue(kvlist_value=KeyValueList(values=[KeyValue(key="inner", value=array)]))
        )
        data: bytes = _request(span).SerializeToString()
        return data
    array_json = {"arrayValue": {"values": [{"intValue": "1"}] * ints}}
    nested = {"kvlistValue": {"values": [{"key": "inner", "value": array_json}]}}
    span_json = {
        "traceId": TRACE_HEX,
        "spanId": "01" * 8,
        "name": name,
        "attributes": [{"key": "nested", "value": nested}],
    }
    return json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span_json]}]}]}).encode()


def _status_message(response: requests.Response) -> str:
    """The message of the ``google.rpc.Status`` the bridge answered, as protobuf or JSON."""
    if response.headers["Content-Type"] == otlp.CONTENT_TYPE_JSON:
        message: str = response.json()["message"]
        return message
    return str(status_pb2.Status.FromString(response.content).message)


@pytest.mark.parametrize("media", [otlp.CONTENT_TYPE_PROTOBUF, otlp.CONTENT_TYPE_JSON])
def test_a_request_of_more_items_than_the_bound_is_answered_413_and_one_at_the_bound_goes_through(
    media: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Spans are bounded by the queue, but what they carry was not: a 50 KB gzip body of 20 MB of tiny
    values took seconds of CPU each.  Items (spans, events, links, attributes, values however nested) are
    counted before they are built; one past the bound is refused, as too large, and nothing of it exported."""
    monkeypatch.setattr(otlp, "MAX_ITEMS", 1000)
    recorder = RecordingExporter()
    with running_bridge(Bridge(recorder)) as server:
        url = server.url + "/v1/traces"
        headers = {"Content-Type": media, "Content-Encoding": "gzip"}
        over = requests.post(
            url, data=gzip.compress(_request_of_items("over", 1001, media)), headers=headers, timeout=10
        )
        assert over.status_code == 413
        assert "more than 1000 items" in _status_message(over)
        at = requests.post(url, data=gzip.compress(_request_of_items("at", 1000, media)), headers=headers, timeout=10)
        assert at.status_code == 200
        wait_for(lambda: recorder.spans, what="the span at the bound")
    assert [span.name for span in recorder.spans] == ["at"]
    assert len(recorder.spans[0].attributes["nested"]["inner"]) == 995  # type: ignore[index]


def test_a_small_body_of_a_million_tiny_values_is_refused_before_the_json_parser_sees_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The real bound, with the shape of the attack: a few kB of gzip that decompress to over a million
    empty values.  As JSON it is refused right after ``json.loads``, before ``ParseDict`` (seconds for it)."""
    parsed: list[object] = []
    real_parse_dict = otlp.json_format.ParseDict

    def watched_parse_dict(*args: Any, **kwargs: Any) -> Any:
        parsed.append(args[0])
        return real_parse_dict(*args, **kwargs)

    monkeypatch.setattr(otlp.json_format, "ParseDict", watched_parse_dict)
    values = otlp.MAX_ITEMS  # with the span's five other items, just past the bound
    doc = {
        "resourceSpans": [
            {
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": TRACE_HEX,
                                "spanId": SPAN_HEX,
                                "name": "bomb",
                                "attributes": [{"key": "a", "value": {"arrayValue": {"values": [{}] * values}}}],
                            }
                        ]
                    }
                ]
            }
        ]
    }
    bomb_json = gzip.compress(json.dumps(doc).encode())
    array = AnyValue(array_value=ArrayValue(values=[AnyValue()] * values))
    span = _span("bomb", 1)
    span.attributes.add(key="a", value=array)
    bomb_protobuf = gzip.compress(_request(span).SerializeToString())
    assert len(bomb_json) < 100_000 and len(bomb_protobuf) < 100_000
    recorder = RecordingExporter()
    with running_bridge(Bridge(recorder)) as server:
        url = server.url + "/v1/traces"
        for body, media in ((bomb_json, otlp.CONTENT_TYPE_JSON), (bomb_protobuf, otlp.CONTENT_TYPE_PROTOBUF)):
            refused = requests.post(
                url, data=body, headers={"Content-Type": media, "Content-Encoding": "gzip"}, timeout=30
            )
            assert refused.status_code == 413, media
            assert f"more than {otlp.MAX_ITEMS} items" in _status_message(refused)
        assert parsed == []
        assert requests.post(url, data=_good_request(), headers=PROTOBUF, timeout=10).status_code == 200
        wait_for(lambda: recorder.spans, what="the good span")
    assert [span.name for span in recorder.spans] == ["good"]


class _Document(dict):  # type: ignore[type-arg]
    """A parsed JSON document that can be watched through a weak reference."""


def test_a_refused_request_is_let_go_at_once_not_at_the_next_full_garbage_collection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An exception out of the thread pool sat in a reference cycle (anyio's frame, its future, the
    exception's traceback) with the frames that decoded the request: each refused request's parsed JSON,
    hundreds of MB for a 50 KB gzip body, stayed until a full collection, and the bridge grew to gigabytes."""
    documents: list[weakref.ref[_Document]] = []
    real_loads = json.loads

    def watched_loads(data: bytes) -> _Document:
        document = _Document(real_loads(data))
        documents.append(weakref.ref(document))
        return document

    monkeypatch.setattr(otlp, "MAX_ITEMS", 1000)
    monkeypatch.setattr(otlp.json, "loads", watched_loads)
    recorder = RecordingExporter()
    with running_bridge(Bridge(recorder)) as server:
        url = server.url + "/v1/traces"
        gc.disable()  # only reference counting frees anything now
        try:
            refused = requests.post(url, data=_request_of_items("over", 1001, otlp.CONTENT_TYPE_JSON), headers=JSON)
            assert refused.status_code == 413
            assert len(documents) == 1
            wait_for(lambda: documents[0]() is None, timeout=5, what="the refused request's document to be let go")
        finally:
            gc.enable()


def test_events_and_links_count_as_items_even_when_empty(monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty event is 2 bytes of protobuf and an ``Event`` once built: they count like any item."""
    monkeypatch.setattr(otlp, "MAX_ITEMS", 100)
    span = _span("events", 1)
    span.events.extend([Span.Event()] * 60)
    span.links.extend([Span.Link()] * 37)  # with the resource spans, the scope spans and the span: 100
    assert len(spans_from_request(_request(span)).spans) == 1
    span.links.add()
    with pytest.raises(otlp.TooManyItems, match="more than 100 items"):
        spans_from_request(_request(span))


class _WatchedDecodes(Bridge):
    """A bridge whose decoding waits to be released, counting how many decode at once."""

    def __init__(self) -> None:
        super().__init__(RecordingExporter())
        self.lock = threading.Lock()
        self.active = self.most = 0
        self.release = threading.Event()

    def _decode(self, body: bytes, encoding: str | None, media: str) -> tuple[otlp.DecodedSpans, int]:
        with self.lock:
            self.active += 1
            self.most = max(self.most, self.active)
        self.release.wait(10)
        with self.lock:
            self.active -= 1
        return super()._decode(body, encoding, media)


def test_requests_are_decoded_two_at_a_time() -> None:
    bridge = _WatchedDecodes()
    with running_bridge(bridge) as server:
        url = server.url + "/v1/traces"
        statuses: list[int] = []

        def post(i: int) -> None:
            response = requests.post(url, data=_good_request(f"r{i}"), headers=PROTOBUF, timeout=20)
            statuses.append(response.status_code)

        posts = [threading.Thread(target=post, args=(i,)) for i in range(5)]
        for thread in posts:
            thread.start()
        wait_for(lambda: bridge.active == 2, what="two decodes")
        time.sleep(0.3)  # time for a third to start, were it allowed to
        assert bridge.most == 2
        bridge.release.set()
        for thread in posts:
            thread.join(20)
    assert statuses == [200] * 5
    assert bridge.most == 2


def test_while_shutting_down_requests_are_refused_with_503_and_health_says_so() -> None:
    recorder = RecordingExporter()
    bridge = Bridge(recorder, retry_after=3)
    with running_bridge(bridge) as server:
        bridge.close()  # what the lifespan does at shutdown (then again, as a no-op)
        assert recorder.shut_down
        refused = requests.post(server.url + "/v1/traces", data=_good_request(), headers=PROTOBUF, timeout=10)
        assert refused.status_code == 503 and refused.headers["Retry-After"] == "3"
        assert "shutting down" in status_pb2.Status.FromString(refused.content).message
        assert requests.get(server.url + "/healthz", timeout=10).status_code == 503


def test_requests_still_in_flight_when_the_graceful_shutdown_runs_out_are_answered_503_not_500(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """uvicorn cancels the requests still in flight when its graceful shutdown window runs out, and answered
    them 500, which OTLP clients never retry (their spans were lost): they are answered 503, which they retry."""
    monkeypatch.setattr("otel_maxim.bridge._GRACEFUL_SECONDS", 0.5)
    bridge = _WatchedDecodes()  # decodes wait to be released: two decode, a third waits for a slot
    body = _good_request("in flight")
    with running_bridge(bridge) as server, contextlib.ExitStack() as stack:
        clients = []
        for _ in range(3):
            sock = stack.enter_context(socket.create_connection((server.host, server.port), timeout=20))
            sock.sendall(_head(len(body)) + body)
            clients.append(sock)
        wait_for(lambda: bridge.active == 2 and _pending(server.url) == 3 * len(body), what="three requests in")
        server.stop()  # what SIGTERM does
        try:
            answers = [_read_to_end(sock) for sock in clients]
        finally:
            bridge.release.set()
    for answer in answers:
        head, _, text = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 503 "), answer[:200]
        assert b"\r\nretry-after: 2\r\n" in head.lower() and b"\r\nconnection: close" in head.lower()
        assert status_pb2.Status.FromString(text).message == "the bridge is shutting down; retry later"
    assert bridge.exporter.shut_down  # type: ignore[attr-defined]
    assert "still in flight when the server stopped waiting for it" in caplog.text


def test_a_bug_in_decoding_is_a_500_and_the_bridge_keeps_serving(
    recorder_bridge: tuple[str, RecordingExporter], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, recorder = recorder_bridge

    def broken(request: ExportTraceServiceRequest) -> None:
        raise RuntimeError("a bug")

    with monkeypatch.context() as patch:
        patch.setattr("otel_maxim.otlp.spans_from_request", broken)
        failed = requests.post(url, data=_good_request(), headers=PROTOBUF, timeout=10)
    assert failed.status_code == 500
    assert status_pb2.Status.FromString(failed.content).message == "the bridge failed to decode the request"
    assert requests.post(url, data=_good_request(), headers=PROTOBUF, timeout=10).status_code == 200
    wait_for(lambda: recorder.spans, what="the span")


def test_the_sdk_exporter_retries_a_503_until_the_bridge_has_room() -> None:
    slow = RecordingExporter(block=True)
    with running_bridge(Bridge(slow, queue_size=1, retry_after=1)) as server:
        url = server.url + "/v1/traces"
        assert requests.post(url, data=_good_request("first"), headers=PROTOBUF, timeout=10).ok
        assert slow.entered.wait(10)
        assert requests.post(url, data=_good_request("second"), headers=PROTOBUF, timeout=10).ok  # the queue is full
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(ProtobufSpanExporter(endpoint=url, timeout=20)))
        client = threading.Thread(target=lambda: provider.get_tracer("t").start_span("third").end())
        client.start()  # the SDK exports on end(), and retries a 503 after its Retry-After
        try:
            wait_for(lambda: _health(server.url)["busy_responses"] >= 1, what="a 503")
            slow.release.set()
        finally:
            client.join(30)
            provider.shutdown()
        wait_for(lambda: len(slow.spans) == 3, what="all three spans")
    assert sorted(span.name for span in slow.spans) == ["first", "second", "third"]


def _health(base: str) -> dict[str, object]:
    health: dict[str, object] = requests.get(base + "/healthz", timeout=10).json()
    return health


def test_a_bearer_token_is_required_when_configured(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    recorder = RecordingExporter()
    bridge = Bridge(recorder, token="s3cr3t-token\n")  # as read from a file: the newline is no part of it
    assert "s3cr3t" not in repr(bridge)
    with running_bridge(bridge) as server:
        url = server.url + "/v1/traces"
        missing = requests.post(url, data=_good_request(), headers=PROTOBUF, timeout=10)
        assert missing.status_code == 401
        assert missing.headers["WWW-Authenticate"] == "Bearer"
        wrong = requests.post(url, data=_good_request(), headers={**PROTOBUF, "Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        basic = requests.post(url, data=_good_request(), headers={**PROTOBUF, "Authorization": "Basic s3cr3t-token"})
        assert basic.status_code == 401
        assert requests.get(server.url + "/healthz", timeout=10).status_code == 200  # probes need no token
        exporter = ProtobufSpanExporter(endpoint=url, headers={"Authorization": "Bearer s3cr3t-token"})
        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(exporter))
        provider.get_tracer("t").start_span("authorized").end()
        provider.shutdown()
        wait_for(lambda: recorder.spans, what="the authorized span")
    assert [span.name for span in recorder.spans] == ["authorized"]
    assert "s3cr3t" not in caplog.text


def test_unknown_paths_and_methods(recorder_bridge: tuple[str, RecordingExporter]) -> None:
    url, _ = recorder_bridge
    base = url.removesuffix("/v1/traces")
    assert requests.get(url, timeout=10).status_code == 405
    assert requests.post(base + "/v1/logs", data=b"", headers=PROTOBUF, timeout=10).status_code == 404


# --- connections that hold on without a request ---------------------------------------------------------


@pytest.mark.parametrize(
    "sent",
    [b"", b"POST /v1/traces HTTP/1.1\r\nHost: bridge\r\nContent-Type: application/x-protobuf\r\n"],
    ids=["nothing", "half a head"],
)
def test_a_connection_without_a_request_head_in_time_is_closed(sent: bytes, caplog: pytest.LogCaptureFixture) -> None:
    """uvicorn alone closes a kept-alive connection only after a first request: one that never sends
    a whole head held its file descriptor for ever."""
    with (
        running_bridge(Bridge(RecordingExporter()), header_timeout=0.3) as server,
        socket.create_connection((server.host, server.port), timeout=20) as sock,
    ):
        sock.sendall(sent)
        assert sock.recv(1024) == b""  # closed by the bridge, not answered (a socket timeout would raise)
    assert "sent no complete request head within 0.3 s" in caplog.text


def _read_response(sock: socket.socket) -> bytes:
    """One whole HTTP/1.1 response with a Content-Length: its head and its body."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head = data.split(b"\r\n\r\n", 1)[0]
    length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
    while len(data) < len(head) + 4 + length:
        data += sock.recv(65536)
    return data


def test_a_connection_answered_before_its_body_came_still_has_a_head_deadline() -> None:
    """A 404 goes out before the body is read; the body comes after the deadline, then nothing:
    the next head's deadline starts when that body is in (it once started nowhere)."""
    with (
        running_bridge(Bridge(RecordingExporter()), header_timeout=0.3) as server,
        socket.create_connection((server.host, server.port), timeout=20) as sock,
    ):
        sock.sendall(b"POST /nowhere HTTP/1.1\r\nHost: bridge\r\nContent-Length: 5\r\n\r\n")
        assert _read_response(sock).startswith(b"HTTP/1.1 404")
        time.sleep(0.6)  # past the deadline, with the body still owed: the request is not over
        sock.sendall(b"12345")
        assert sock.recv(1024) == b""  # then closed, as a connection that sends no head


def test_a_request_whose_head_came_in_time_is_not_cut_short_by_the_head_deadline() -> None:
    recorder = RecordingExporter()
    body = _good_request("slow body")
    head = (
        f"POST /v1/traces HTTP/1.1\r\nHost: bridge\r\nContent-Type: application/x-protobuf\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    with (
        running_bridge(Bridge(recorder), header_timeout=0.3) as server,
        socket.create_connection((server.host, server.port), timeout=20) as sock,
    ):
        for _ in range(2):  # the head's deadline starts again after each response
            sock.sendall(head + body[:5])
            time.sleep(0.6)  # twice the head's deadline: the body has its own, longer one (30 s by default)
            sock.sendall(body[5:])
            answer = _read_response(sock)
            assert answer.startswith(b"HTTP/1.1 200"), answer[:100]
            time.sleep(0.1)  # the next head, on the same connection, within its deadline
    wait_for(lambda: len(recorder.spans) == 2, what="both spans")


def _read_to_end(sock: socket.socket) -> bytes:
    """Everything the bridge sends until it closes the connection (a socket timeout raises)."""
    data = b""
    with contextlib.suppress(ConnectionResetError):  # a close with our bytes unread: what came before stays
        while chunk := sock.recv(65536):
            data += chunk
    return data


def _trickle_until_answered(sock: socket.socket, seconds: float = 15.0) -> None:
    """Send a byte every 50 ms until the bridge answers or closes (``seconds`` at most, then fail)."""
    deadline = time.monotonic() + seconds
    while not select.select([sock], [], [], 0.05)[0]:
        assert time.monotonic() < deadline, f"the bridge let a body trickle in for {seconds} s"
        sock.sendall(b"x")


def _status_of(address: tuple[str, int], path: str = "/healthz") -> int:
    """The status of ``GET path`` on a new connection."""
    with socket.create_connection(address, timeout=20) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: bridge\r\nConnection: close\r\n\r\n".encode())
        return int(_read_to_end(sock).split(b" ", 2)[1])


HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: bridge\r\n\r\n"


def test_a_connection_over_the_limit_is_answered_503_with_retry_after_at_once_and_closed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """uvicorn alone takes any number of connections (each one a file descriptor, for as long as its client
    holds it): past ``max_connections`` the bridge answers 503 at once, which OTLP clients retry, and closes."""
    with (
        running_bridge(Bridge(RecordingExporter(), retry_after=4), max_connections=3) as server,
        contextlib.ExitStack() as stack,
    ):
        address = (server.host, server.port)
        held = [stack.enter_context(socket.create_connection(address, timeout=20)) for _ in range(3)]
        for sock in held:  # each one served, so each one open and counted
            sock.sendall(HEALTHZ)
            assert _read_response(sock).startswith(b"HTTP/1.1 200")
        with socket.create_connection(address, timeout=20) as extra:
            answer = _read_to_end(extra)  # sent nothing: answered all the same, then closed
        head, _, text = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
        assert b"\r\nRetry-After: 4\r\n" in head and b"\r\nConnection: close" in head
        assert text == b"the bridge holds as many connections as it may; retry later\n"
        # A client that sends its request at once reads the same 503, as the SDK's exporter does.
        refused = requests.post(server.url + "/v1/traces", data=_good_request(), headers=PROTOBUF, timeout=10)
        assert (refused.status_code, refused.headers["Retry-After"]) == (503, "4")
        for sock in held:  # the connections held go on being served
            sock.sendall(HEALTHZ)
            assert _read_response(sock).startswith(b"HTTP/1.1 200")
        held.pop().close()  # room for one: refused connections never counted
        wait_for(lambda: _status_of(address) == 200, what="a connection to be served again")
    assert "connections are open, the most the bridge holds (MAXIM_BRIDGE_MAX_CONNECTIONS)" in caplog.text


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts the process's open files in /proc")
def test_a_flood_of_connections_holds_no_more_descriptors_than_the_limit() -> None:
    """300 connections that send nothing, and a head deadline longer than the test: the bridge holds 20
    of them (a file descriptor each), and has answered and closed the 280 others."""

    def open_files() -> int:
        return len(os.listdir("/proc/self/fd"))

    with (
        running_bridge(Bridge(RecordingExporter()), header_timeout=600, max_connections=20) as server,
        contextlib.ExitStack() as stack,
    ):
        before = open_files()
        clients = [
            stack.enter_context(socket.create_connection((server.host, server.port), timeout=20)) for _ in range(300)
        ]
        # This process holds both ends: the 300 clients' and, past them, the bridge's.
        wait_for(lambda: open_files() - before - len(clients) <= 20, what="the bridge to hold 20 connections at most")
        poller = select.poll()
        for sock in clients:
            poller.register(sock, select.POLLIN)
        wait_for(lambda: len(poller.poll(0)) == 280, what="280 connections answered")
        answered = {fd for fd, _ in poller.poll(0)}
        for sock in clients:
            if sock.fileno() in answered:
                assert _read_to_end(sock).startswith(b"HTTP/1.1 503 ")
        assert open_files() - before - len(clients) == 20
        assert _status_of((server.host, server.port)) == 503  # still full: the 20 are held
        for sock in clients:
            if sock.fileno() not in answered:
                sock.sendall(HEALTHZ)
                assert _read_response(sock).startswith(b"HTTP/1.1 200")


@pytest.mark.parametrize("pace", ["stalled", "trickling"])
def test_a_body_that_has_not_all_arrived_within_its_deadline_is_answered_408(
    pace: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Its head came in time; its body stops, or comes a byte at a time: it once held its connection, and
    a request in the bridge waiting for the rest, for as long as its client liked."""
    recorder = RecordingExporter()
    head = (
        b"POST /v1/traces HTTP/1.1\r\nHost: bridge\r\nContent-Type: application/x-protobuf\r\n"
        b"Content-Length: 10000\r\n\r\n"
    )
    with (
        running_bridge(Bridge(recorder), body_timeout=0.5) as server,
        socket.create_connection((server.host, server.port), timeout=20) as sock,
    ):
        sock.sendall(head + b"x")
        if pace == "trickling":
            _trickle_until_answered(sock)  # a byte every 50 ms: never idle, never done
        answer = _read_to_end(sock)
        assert _status_of((server.host, server.port)) == 200  # the bridge serves on
    head_of_answer, _, body = answer.partition(b"\r\n\r\n")
    assert head_of_answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), answer[:200]
    assert b"\r\nconnection: close" in head_of_answer.lower()
    status = status_pb2.Status.FromString(body)  # in the request's own media type, as OTLP errors are
    assert (status.code, status.message) == (4, "the request body did not all arrive within 0.5 s of its head")
    assert "Answered 408 and closed a connection from 127.0.0.1:" in caplog.text
    assert "within 0.5 s of its head (MAXIM_BRIDGE_BODY_TIMEOUT)" in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]  # the request's handler ended quietly
    assert recorder.spans == []


@pytest.mark.parametrize(
    ("token", "path", "status"),
    [(None, "/nowhere", b"404"), ("s3cret", "/v1/traces", b"401")],
    ids=["unknown path", "no token"],
)
def test_a_request_answered_before_its_body_cannot_hold_its_connection_with_a_trickle(
    token: str | None, path: str, status: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    """uvicorn reads and discards the body of a request answered early for as long as it comes."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: bridge\r\nContent-Type: application/x-protobuf\r\nContent-Length: 10000\r\n\r\n"
    )
    with (
        running_bridge(Bridge(RecordingExporter(), token=token), body_timeout=0.5) as server,
        socket.create_connection((server.host, server.port), timeout=20) as sock,
    ):
        sock.sendall(head.encode() + b"x")
        assert _read_response(sock).startswith(b"HTTP/1.1 " + status)
        _trickle_until_answered(sock)
        assert _read_to_end(sock) == b""  # closed: it had its answer already
    assert "Closed a connection from 127.0.0.1:" in caplog.text
    assert "whose request body did not all arrive within 0.5 s of its head" in caplog.text


def test_a_client_that_pipelines_requests_and_never_reads_the_answers_is_dropped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Its answers back up, and the request being answered waited for it to read them with no deadline: it
    held its connection (here the only one allowed) for ever, and every other client got 503."""
    with running_bridge(Bridge(RecordingExporter()), body_timeout=0.5, max_connections=1) as server:
        address = (server.host, server.port)
        stuck = socket.socket()
        stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stuck.connect(address)

        def pipeline() -> None:
            with contextlib.suppress(OSError):  # until the bridge drops it
                for _ in range(100):
                    stuck.sendall(HEALTHZ * 2000)  # about 100 MB of answers, none of them read

        feeder = threading.Thread(target=pipeline, daemon=True)
        feeder.start()
        try:
            assert _status_of(address) == 503  # the one connection allowed is the stuck one's
            wait_for(lambda: _status_of(address) == 200, what="the connection that reads nothing to be dropped")
        finally:
            stuck.close()
            feeder.join(10)
    assert "that read none of its answers for 0.5 s (MAXIM_BRIDGE_BODY_TIMEOUT)" in caplog.text


def test_a_body_sent_slowly_but_within_its_deadline_is_served() -> None:
    """Three requests on one connection, each body in three pieces with pauses longer than the head's
    deadline: each body is in well within its own deadline (1.5 s), all three together are not."""
    recorder = RecordingExporter()
    with (
        running_bridge(Bridge(recorder), header_timeout=0.3, body_timeout=1.5) as server,
        socket.create_connection((server.host, server.port), timeout=20) as sock,
    ):
        for i in range(3):
            body = _good_request(f"slow {i}")
            sock.sendall(
                f"POST /v1/traces HTTP/1.1\r\nHost: bridge\r\nContent-Type: application/x-protobuf\r\n"
                f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body[:10]
            )
            for piece in (body[10:20], body[20:]):
                time.sleep(0.35)
                sock.sendall(piece)
            answer = _read_response(sock)
            assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    wait_for(lambda: len(recorder.spans) == 3, what="the three spans")
    assert sorted(span.name for span in recorder.spans) == ["slow 0", "slow 1", "slow 2"]


# --- bytes of request bodies held at once -----------------------------------------------------------------


def _request_of_about(size: int, name: str) -> bytes:
    """A real OTLP protobuf request of ``size`` bytes or a few more: one span, its name padded."""
    body: bytes = _request(_span(name + "x" * max(0, size - len(_good_request(name))), 1)).SerializeToString()
    assert size <= len(body) < size + 8, len(body)
    return body


def _head(length: int | None) -> bytes:
    """A ``POST /v1/traces`` head whose body has ``length`` bytes, or is chunked when ``length`` is ``None``."""
    framing = "Transfer-Encoding: chunked" if length is None else f"Content-Length: {length}"
    return (
        f"POST /v1/traces HTTP/1.1\r\nHost: bridge\r\nContent-Type: application/x-protobuf\r\n{framing}\r\n\r\n"
    ).encode()


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def _pending(base: str) -> object:
    return _health(base)["pending_bytes"]


def _wait_for_the_queue_to_drain(base: str) -> None:
    """Until the worker takes them, queued spans count against the byte budget too (by their decoded size)."""
    wait_for(lambda: _health(base)["queued_bytes"] == 0, what="the queued spans' bytes to be let go")


def test_a_request_past_the_byte_budget_is_answered_503_until_the_bodies_held_are_done(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """1000 connections each sending a 20 MiB body could make the bridge hold 20 GB: the bytes of bodies
    held at once, across requests, are bounded, and a request past the bound is answered 503 (OTLP retries it)."""
    recorder = RecordingExporter()
    first, second = _request_of_about(800, "first"), _request_of_about(800, "second")
    with (
        running_bridge(Bridge(recorder, max_pending_bytes=1000, retry_after=5)) as server,
        socket.create_connection((server.host, server.port), timeout=20) as sock,
    ):
        url = server.url + "/v1/traces"
        half = len(first) // 2
        sock.sendall(_head(len(first)) + first[:half])  # half sent: held until it is done
        wait_for(lambda: _pending(server.url) == half, what="the first body's bytes to be held")
        refused = requests.post(url, data=second, headers=PROTOBUF, timeout=10)
        assert (refused.status_code, refused.headers["Retry-After"]) == (503, "5")
        status = status_pb2.Status.FromString(refused.content)
        assert (status.code, status.message) == (
            otlp.CODE_UNAVAILABLE,
            "the bridge holds as many request bytes as it may; retry later",
        )
        health = _health(server.url)
        assert (health["pending_bytes"], health["busy_responses"]) == (half, 1)  # the refused one holds none
        sock.sendall(first[half:])
        answer = _read_response(sock)
        assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
        assert _pending(server.url) == 0  # released before the answer went out
        _wait_for_the_queue_to_drain(server.url)
        assert requests.post(url, data=second, headers=PROTOBUF, timeout=10).status_code == 200  # the retry
        wait_for(lambda: len(recorder.spans) == 2, what="both spans")
    assert sorted(span.name.rstrip("x") for span in recorder.spans) == ["first", "second"]
    assert f"other request bodies hold {len(first) // 2} bytes" in caplog.text  # not counting the refused one's
    assert "past the 1000 it may hold (MAXIM_BRIDGE_MAX_PENDING_BYTES)" in caplog.text


def test_connections_that_declare_large_bodies_and_send_nothing_hold_no_budget() -> None:
    """A declared Content-Length was reserved before any of its bytes came: a few idle connections declaring
    large bodies turned every other client away with 503 until their body deadline."""
    recorder = RecordingExporter()
    with (
        running_bridge(Bridge(recorder, max_pending_bytes=10_000)) as server,
        contextlib.ExitStack() as stack,
    ):
        for _ in range(3):
            idle = stack.enter_context(socket.create_connection((server.host, server.port), timeout=20))
            idle.sendall(_head(9_000) + b"x")  # 9000 bytes declared, one sent
        wait_for(lambda: _pending(server.url) == 3, what="the bytes sent to be held, and only those")
        response = requests.post(server.url + "/v1/traces", data=_good_request("other"), headers=PROTOBUF, timeout=10)
        assert response.status_code == 200
        wait_for(lambda: recorder.spans, what="the other client's span")
        # A declared length past max_body_bytes is still refused at once.
        with socket.create_connection((server.host, server.port), timeout=20) as sock:
            sock.sendall(_head(20 * 1024 * 1024 + 1))
            assert _read_response(sock).startswith(b"HTTP/1.1 413")


def test_a_chunked_body_that_grows_past_the_byte_budget_is_answered_503() -> None:
    """No Content-Length to reserve up front: a chunked body's bytes count as they arrive."""
    first = _request_of_about(800, "first")
    with (
        running_bridge(Bridge(RecordingExporter(), max_pending_bytes=1000)) as server,
        socket.create_connection((server.host, server.port), timeout=20) as held,
        socket.create_connection((server.host, server.port), timeout=20) as chunked,
    ):
        held.sendall(_head(len(first)) + first[:-10])  # all but 10 bytes sent, and held
        wait_for(lambda: _pending(server.url) == len(first) - 10, what="the first body's bytes to be held")
        chunked.sendall(_head(None) + _chunk(b"x" * 100))
        wait_for(lambda: _pending(server.url) == len(first) + 90, what="the first chunk to be held")  # fits
        chunked.sendall(_chunk(b"x" * 200))  # 1090 bytes with the first body's: past the budget
        head, _, body = _read_response(chunked).partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 503"), head
        assert b"\r\nretry-after: 2" in head.lower()
        assert "request bytes" in status_pb2.Status.FromString(body).message
        assert _pending(server.url) == len(first) - 10  # the chunks read are let go
        held.sendall(first[-10:])
        assert _read_response(held).startswith(b"HTTP/1.1 200")
        assert _pending(server.url) == 0


def test_one_body_larger_than_the_byte_budget_goes_through_when_no_other_request_holds_bytes() -> None:
    """The budget never starves: a body up to max_body_bytes is taken whenever nothing else is held."""
    recorder = RecordingExporter()
    declared, chunked = _request_of_about(800, "declared"), _request_of_about(800, "chunked")
    with running_bridge(Bridge(recorder, max_pending_bytes=100)) as server:
        url = server.url + "/v1/traces"
        assert requests.post(url, data=declared, headers=PROTOBUF, timeout=10).status_code == 200
        _wait_for_the_queue_to_drain(server.url)
        pieces = iter([chunked[i : i + 100] for i in range(0, len(chunked), 100)])  # sent chunked
        assert requests.post(url, data=pieces, headers=PROTOBUF, timeout=10).status_code == 200
        assert _pending(server.url) == 0
        wait_for(lambda: len(recorder.spans) == 2, what="both spans")
    assert sorted(span.name.rstrip("x") for span in recorder.spans) == ["chunked", "declared"]


def _incompressible(size: int) -> bytes:
    return random.Random(size).randbytes(size)


@pytest.mark.parametrize(
    "ending",
    ["malformed (400)", "too large as sent (413)", "too large decompressed (413)", "client gone", "too late (408)"],
)
def test_the_bytes_of_a_request_refused_or_abandoned_are_let_go(ending: str) -> None:
    """Whatever becomes of a request, its bytes are released: a leak would hold the budget and turn
    every later request away with a 503 (here, a held body and a small request's span fit in the budget of
    3000 bytes, but not beside the 799 or more bytes of a refused request)."""
    first, small = _request_of_about(800, "held"), _good_request("small")
    assert len(first) - 10 + _held_bytes(small) <= 3000 < len(first) - 10 + _held_bytes(small) + 799
    bridge = Bridge(RecordingExporter(), max_body_bytes=2000, max_pending_bytes=3000)
    with running_bridge(bridge, body_timeout=1.0 if ending == "too late (408)" else None) as server:
        url = server.url + "/v1/traces"
        if ending == "malformed (400)":
            body = b"\xff\xff\xff garbage" + b"x" * 800
            assert requests.post(url, data=body, headers=PROTOBUF, timeout=10).status_code == 400
        elif ending == "too large as sent (413)":
            with socket.create_connection((server.host, server.port), timeout=20) as sock:
                sock.sendall(_head(None) + _chunk(b"x" * 900))  # chunked: its bytes are held as they come
                wait_for(lambda: _pending(server.url) == 900, what="the first chunk to be held")
                sock.sendall(_chunk(b"x" * 1200))  # 2100 bytes: past max_body_bytes
                assert _read_response(sock).startswith(b"HTTP/1.1 413")
        elif ending == "too large decompressed (413)":
            body = gzip.compress(_incompressible(800) + bytes(5000))
            assert 800 < len(body) <= 2000
            response = requests.post(url, data=body, headers={**PROTOBUF, "Content-Encoding": "gzip"}, timeout=10)
            assert response.status_code == 413
            assert "decompressed" in status_pb2.Status.FromString(response.content).message
        elif ending == "too late (408)":
            with socket.create_connection((server.host, server.port), timeout=20) as sock:
                sock.sendall(_head(800) + b"x" * 799)  # and no more: past body_timeout, answered 408
                wait_for(lambda: _pending(server.url) == 799, what="the body's bytes to be held")
                assert _read_to_end(sock).startswith(b"HTTP/1.1 408")
        else:
            with socket.create_connection((server.host, server.port), timeout=20) as sock:
                sock.sendall(_head(800) + b"x" * 799)
                wait_for(lambda: _pending(server.url) == 799, what="the body's bytes to be held")
            wait_for(lambda: _pending(server.url) == 0, what="the bytes of a request whose client left")
        assert _pending(server.url) == 0
        with socket.create_connection((server.host, server.port), timeout=20) as sock:
            sock.sendall(_head(len(first)) + first[:-10])
            wait_for(lambda: _pending(server.url) == len(first) - 10, what="a new body's bytes to be held")
            # fits beside it, unless bytes leaked
            assert requests.post(url, data=small, headers=PROTOBUF, timeout=10).status_code == 200
            _wait_for_the_queue_to_drain(server.url)
            sock.sendall(first[-10:])
            assert _read_response(sock).startswith(b"HTTP/1.1 200")


GZIP_PROTOBUF = {**PROTOBUF, "Content-Encoding": "gzip"}


def _gzipped_big_span(name: str, span_id: int) -> tuple[bytes, int]:
    """A gzip body of a few hundred bytes whose one span holds 200 kB, and the size its span counts as."""
    raw = _request(_span(name + "x" * 200_000, span_id)).SerializeToString()
    return gzip.compress(raw), _held_bytes(raw)


def test_spans_waiting_for_the_exporter_count_against_the_byte_budget_by_their_decoded_size() -> None:
    """A slow exporter once let small gzip bodies pile up as huge decoded spans, with pending_bytes at 0:
    the spans in the queue hold the budget until the worker takes them, and past it requests get 503."""
    first, _ = _gzipped_big_span("first", 1)
    second, second_size = _gzipped_big_span("second", 2)
    third, _ = _gzipped_big_span("third", 3)
    assert len(second) < 2000 < 64 * 1024 < second_size
    slow = RecordingExporter(block=True)
    with running_bridge(Bridge(slow, max_pending_bytes=64 * 1024, retry_after=5)) as server:
        url = server.url + "/v1/traces"
        try:
            assert requests.post(url, data=first, headers=GZIP_PROTOBUF, timeout=10).status_code == 200
            assert slow.entered.wait(10)  # the worker took it, and is stuck exporting it
            # Nothing else is held: 200 kB of spans, over the budget, still go through (and wait in the queue).
            assert requests.post(url, data=second, headers=GZIP_PROTOBUF, timeout=10).status_code == 200
            health = _health(server.url)
            assert (health["queued_spans"], health["queued_bytes"], health["pending_bytes"]) == (1, second_size, 0)
            refused = requests.post(url, data=third, headers=GZIP_PROTOBUF, timeout=10)
            assert (refused.status_code, refused.headers["Retry-After"]) == (503, "5")
            assert "request bytes" in status_pb2.Status.FromString(refused.content).message
            assert _health(server.url)["busy_responses"] == 1
        finally:  # also when an assertion failed: the bridge stops once the export ends
            slow.release.set()
        _wait_for_the_queue_to_drain(server.url)
        assert requests.post(url, data=third, headers=GZIP_PROTOBUF, timeout=10).status_code == 200  # the retry
        wait_for(lambda: len(slow.spans) == 3, what="the three spans")
    assert sorted(span.name.rstrip("x") for span in slow.spans) == ["first", "second", "third"]


def _empty_kvlists(count: int, where: str) -> bytes:
    """A gzip request of one span with an attribute of ``count`` empty key-value lists (4 bytes an item as
    protobuf, a dict of 64 bytes and its 8-byte reference decoded), on the span or on its resource."""
    value = AnyValue(array_value={"values": [AnyValue(kvlist_value={})] * count})
    request = _request(_span("kvlists", 1))
    owner = (
        request.resource_spans[0].resource if where == "resource" else request.resource_spans[0].scope_spans[0].spans[0]
    )
    owner.attributes.add(key="many", value=value)
    return gzip.compress(request.SerializeToString())


@pytest.mark.parametrize("where", ["span", "resource"])
def test_nested_attribute_values_count_against_the_byte_budget_by_what_their_objects_take(where: str) -> None:
    """An item of a nested value was counted 8 bytes whatever it was, and a resource's attributes not at all:
    100 000 empty key-value lists (400 kB as protobuf, 7 MB decoded) counted 0.8 MB, or nothing, so the bridge
    held several times ``max_pending_bytes``.  Now each counts what CPython takes for it."""
    count = 100_000
    body = _empty_kvlists(count, where)
    slow = RecordingExporter(block=True)
    with running_bridge(Bridge(slow, max_pending_bytes=4_000_000)) as server:
        url = server.url + "/v1/traces"
        try:
            assert requests.post(url, data=body, headers=GZIP_PROTOBUF, timeout=20).status_code == 200
            assert slow.entered.wait(10)  # the worker holds the first in a stuck export
            # Nothing else held: it goes through, and waits in the queue counted by what it holds.
            assert requests.post(url, data=body, headers=GZIP_PROTOBUF, timeout=20).status_code == 200
            assert _health(server.url)["queued_bytes"] >= 72 * count  # was about 8 bytes an item, or 2 kB
            assert requests.post(url, data=body, headers=GZIP_PROTOBUF, timeout=20).status_code == 503
        finally:
            slow.release.set()
        _wait_for_the_queue_to_drain(server.url)
        assert requests.post(url, data=body, headers=GZIP_PROTOBUF, timeout=20).status_code == 200
        wait_for(lambda: len(slow.spans) == 3, what="the three spans")


def test_a_small_compressed_body_is_counted_by_the_spans_it_decodes_to(caplog: pytest.LogCaptureFixture) -> None:
    """Its body fits beside another request's, but its spans do not: 503 once decoded, before they are queued."""
    recorder = RecordingExporter()
    held = _request_of_about(800, "held")
    small, small_size = _gzipped_big_span("small", 2)
    with (
        running_bridge(Bridge(recorder, max_pending_bytes=64 * 1024)) as server,
        socket.create_connection((server.host, server.port), timeout=20) as sock,
    ):
        url = server.url + "/v1/traces"
        sock.sendall(_head(len(held)) + held[:-10])
        wait_for(lambda: _pending(server.url) == len(held) - 10, what="the held body's bytes")
        refused = requests.post(url, data=small, headers=GZIP_PROTOBUF, timeout=10)
        assert (refused.status_code, refused.headers["Retry-After"]) == (503, "2")
        health = _health(server.url)
        assert (health["pending_bytes"], health["queued_bytes"], health["busy_responses"]) == (len(held) - 10, 0, 1)
        sock.sendall(held[-10:])
        assert _read_response(sock).startswith(b"HTTP/1.1 200")
        assert requests.post(url, data=small, headers=GZIP_PROTOBUF, timeout=10).status_code == 200  # alone now
        wait_for(lambda: len(recorder.spans) == 2, what="both spans")
    assert f"other request bodies hold {len(held) - 10} bytes" in caplog.text
    assert small_size > 64 * 1024


# --- configuration and the command ---------------------------------------------------------------------


def test_configuration_arguments_then_environment_then_defaults(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(env.MAXIM_BRIDGE_QUEUE_SIZE, "5")
    monkeypatch.setenv(env.MAXIM_BRIDGE_MAX_BODY_BYTES, "lots")
    monkeypatch.setenv(env.MAXIM_BRIDGE_RETRY_AFTER, "-1")
    monkeypatch.setenv(env.MAXIM_BRIDGE_TOKEN, "from-env")
    bridge = Bridge(RecordingExporter())
    assert bridge._queue.capacity == 5
    assert bridge._max_body == 20 * 1024 * 1024  # a bad value: warned about, the default used
    assert bridge._retry_after == 2
    assert bridge._token == b"from-env"
    assert env.MAXIM_BRIDGE_MAX_BODY_BYTES in caplog.text and env.MAXIM_BRIDGE_RETRY_AFTER in caplog.text
    explicit = Bridge(RecordingExporter(), queue_size=0 + 9, max_body_bytes=10, retry_after=0, token="from-arg")
    assert (explicit._queue.capacity, explicit._max_body, explicit._retry_after) == (9, 10, 0)
    assert explicit._token == b"from-arg"
    for bad in ({"queue_size": 0}, {"max_body_bytes": 1.5}, {"retry_after": -1}, {"cross_service_grace": 1.0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            Bridge(RecordingExporter(), **bad)  # type: ignore[arg-type]
    built: dict[str, object] = {}

    class Spy(MaximSpanExporter):
        def __init__(self, **kwargs: object) -> None:
            built.update(kwargs)
            super().__init__(**kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr("otel_maxim.bridge.MaximSpanExporter", Spy)
    monkeypatch.setenv(env.MAXIM_BRIDGE_CROSS_SERVICE_GRACE, "3.5")
    default = Bridge()
    assert isinstance(default.exporter, Spy) and built == {"cross_service_grace": 3.5}
    default.close()
    Bridge(cross_service_grace=0).close()  # the argument wins over the environment, and 0 counts
    assert built == {"cross_service_grace": 0}


def test_the_header_timeout_from_the_argument_then_the_environment_then_the_default(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def header_timeout(**kwargs: float) -> float:
        server = BridgeServer(Bridge(RecordingExporter()), "127.0.0.1", 0, **kwargs)  # type: ignore[arg-type]
        server._socket.close()
        server.bridge.close()
        return server.header_timeout

    assert header_timeout() == 10.0
    monkeypatch.setenv(env.MAXIM_BRIDGE_HEADER_TIMEOUT, "2.5")
    assert header_timeout() == 2.5
    assert header_timeout(header_timeout=0.5) == 0.5
    monkeypatch.setenv(env.MAXIM_BRIDGE_HEADER_TIMEOUT, "soon")
    assert header_timeout() == 10.0
    assert env.MAXIM_BRIDGE_HEADER_TIMEOUT in caplog.text
    with pytest.raises(ValueError, match="header_timeout"):
        header_timeout(header_timeout=float("nan"))


def test_the_body_timeout_and_the_connection_limit_from_the_argument_then_the_environment_then_the_default(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def settings(**kwargs: float) -> tuple[float, int]:
        bridge = Bridge(RecordingExporter())
        try:
            server = BridgeServer(bridge, "127.0.0.1", 0, **kwargs)  # type: ignore[arg-type]
            server._socket.close()
        finally:
            bridge.close()
        return server.body_timeout, server.max_connections

    default_connections = 1000
    if sys.platform != "win32":
        import resource  # noqa: PLC0415 - POSIX only

        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if soft != resource.RLIM_INFINITY:  # the default is lowered to keep 128 files for the rest
            default_connections = min(1000, max(1, soft - 128))
    assert settings() == (30.0, default_connections)
    monkeypatch.setenv(env.MAXIM_BRIDGE_BODY_TIMEOUT, "2.5")
    monkeypatch.setenv(env.MAXIM_BRIDGE_MAX_CONNECTIONS, "50")
    assert settings() == (2.5, 50)
    assert settings(body_timeout=0.5, max_connections=7) == (0.5, 7)
    monkeypatch.setenv(env.MAXIM_BRIDGE_BODY_TIMEOUT, "whenever")
    monkeypatch.setenv(env.MAXIM_BRIDGE_MAX_CONNECTIONS, "0")
    assert settings() == (30.0, default_connections)
    assert env.MAXIM_BRIDGE_BODY_TIMEOUT in caplog.text and env.MAXIM_BRIDGE_MAX_CONNECTIONS in caplog.text
    for bad in (
        {"body_timeout": 0},
        {"body_timeout": float("nan")},
        {"max_connections": 0},
        {"max_connections": 2.5},
        {"max_connections": True},
    ):
        with pytest.raises(ValueError, match=next(iter(bad))):
            settings(**bad)


def test_the_byte_budget_from_the_argument_then_the_environment_then_the_default(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    def budget(**kwargs: object) -> int:
        bridge = Bridge(RecordingExporter(), **kwargs)  # type: ignore[arg-type]
        bridge.close()
        return bridge._max_pending

    assert budget() == 128 * 1024 * 1024
    monkeypatch.setenv(env.MAXIM_BRIDGE_MAX_PENDING_BYTES, "4096")
    assert budget() == 4096
    assert budget(max_pending_bytes=100) == 100
    for bad in ("abc", "0", "1.5"):  # warned about, naming the variable; the default used
        monkeypatch.setenv(env.MAXIM_BRIDGE_MAX_PENDING_BYTES, bad)
        caplog.clear()
        assert budget() == 128 * 1024 * 1024
        assert f"Ignoring {env.MAXIM_BRIDGE_MAX_PENDING_BYTES}={bad!r}" in caplog.text
    for wrong in (0, -1, "abc", 1.5, True):
        with pytest.raises(ValueError, match="^max_pending_bytes must be"):
            budget(max_pending_bytes=wrong)
    with pytest.raises(SystemExit):
        main(["bridge", "--help"])
    usage = capsys.readouterr().out
    assert "--max-pending-bytes" in usage and env.MAXIM_BRIDGE_MAX_PENDING_BYTES in usage


@pytest.mark.skipif(sys.platform == "win32", reason="a POSIX limit on open files")
def test_the_connection_limit_stays_below_the_processs_limit_on_open_files() -> None:
    """A limit the process cannot hold would not keep descriptors for the exporter: it is lowered, and said so."""
    script = """if True:
        import logging, resource
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
        resource.setrlimit(resource.RLIMIT_NOFILE, (300, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        from otel_maxim.bridge import Bridge, BridgeServer
        for wanted in (None, 5000, 100):
            bridge = Bridge(InMemorySpanExporter())
            server = BridgeServer(bridge, "127.0.0.1", 0, max_connections=wanted)
            server._socket.close()
            bridge.close()
            print("held", wanted, server.max_connections, flush=True)
    """
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.splitlines() == ["held None 172", "held 5000 172", "held 100 100"]
    lowered = [line for line in done.stderr.splitlines() if "The bridge holds at most 172 connections" in line]
    assert [line.split()[0] for line in lowered] == ["INFO", "WARNING"]  # a default lowered, then a setting
    assert "the process may open 300 files (ulimit -n)" in lowered[0]


def test_the_command_rejects_bad_flags(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bridge", "--queue-size", "0"]) == 2
    assert "--queue-size must be at least 1" in capsys.readouterr().err
    assert main(["bridge", "--port", "0", "--header-timeout", "0"]) == 2
    assert "--header-timeout must be at least 0.001" in capsys.readouterr().err
    assert main(["bridge", "--port", "0", "--body-timeout", "0"]) == 2
    assert "--body-timeout must be at least" in capsys.readouterr().err
    assert main(["bridge", "--port", "0", "--max-connections", "0"]) == 2
    assert "--max-connections must be at least 1" in capsys.readouterr().err
    assert main(["bridge", "--port", "0", "--max-pending-bytes", "0"]) == 2
    assert "--max-pending-bytes must be at least 1" in capsys.readouterr().err
    assert main(["bridge", "--port", "70000"]) == 2
    assert "--port must be at most 65535" in capsys.readouterr().err


@pytest.mark.parametrize("from_variables", [False, True])
def test_an_address_that_cannot_be_listened_on_is_named_with_where_it_came_from(
    from_variables: bool, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """It said "cannot listen on the address: [Errno 98] ...", naming neither the address nor whether a flag or
    a variable gave it."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        if from_variables:
            monkeypatch.setenv(env.MAXIM_BRIDGE_HOST, "127.0.0.1")
            monkeypatch.setenv(env.MAXIM_BRIDGE_PORT, str(port))
            assert main(["bridge"]) == 1
        else:
            assert main(["bridge", "--host", "127.0.0.1", "--port", str(port)]) == 1
    given = f" (from {env.MAXIM_BRIDGE_HOST} and {env.MAXIM_BRIDGE_PORT})" if from_variables else ""
    assert (
        capsys.readouterr().err
        == f"otel-maxim bridge: cannot listen on 127.0.0.1:{port}{given}: Address already in use\n"
    )


def test_a_bad_count_variable_is_told_its_bounds_without_an_infinite_one(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """ "must be finite, at least 1 and at most inf" for a count that has no maximum."""
    monkeypatch.setenv(env.MAXIM_BRIDGE_QUEUE_SIZE, "-5")
    Bridge(RecordingExporter()).close()
    assert f"Ignoring {env.MAXIM_BRIDGE_QUEUE_SIZE}='-5': must be at least 1; using the default" in caplog.text


@pytest.mark.parametrize("value", ["abc", "70000", "-1"])
def test_a_bad_port_variable_is_warned_about_and_the_default_port_served(
    value: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Out of range is as bad as not a number: the deployment's mistake, so a warning, not a stop (a flag, above,
    is a usage error). The default port is made a free one here, so that the test binds no fixed port."""
    default = free_port()
    monkeypatch.setattr("otel_maxim.bridge.DEFAULT_PORT", default)
    monkeypatch.setenv(env.MAXIM_BRIDGE_PORT, value)
    bridge = Bridge(RecordingExporter())
    server = BridgeServer(bridge, "127.0.0.1")
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started, what="the bridge to start")
        assert server.port == default
        assert _status_of(("127.0.0.1", default)) == 200
    finally:
        server.stop()
        thread.join(30)
    assert f"Ignoring {env.MAXIM_BRIDGE_PORT}={value!r}" in caplog.text
    unserved = Bridge(RecordingExporter())
    with pytest.raises(ValueError, match="^port must be at most 65535, not 70000$"):  # the argument stays strict
        BridgeServer(unserved, "127.0.0.1", 70000)
    unserved.close()


@pytest.mark.parametrize("token", ["", "  "])
def test_an_empty_token_is_refused_not_taken_for_no_authentication(
    token: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--token "$TOKEN"`` with TOKEN unset once replaced MAXIM_BRIDGE_TOKEN and turned authentication off."""
    monkeypatch.setenv(env.MAXIM_BRIDGE_TOKEN, "s3cret")
    with pytest.raises(ValueError, match="token must not be empty"):
        Bridge(token=token)
    assert main(["bridge", "--port", "0", "--token", token]) == 2
    assert "--token must not be empty" in capsys.readouterr().err
    bridge = Bridge()  # the variable, when no argument is given
    try:
        assert bridge.requires_token
    finally:
        bridge.close()


@pytest.mark.parametrize("value", ["", "   "])
def test_a_blank_token_variable_is_refused_not_taken_for_no_authentication(
    value: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(env.MAXIM_BRIDGE_TOKEN, value)
    with pytest.raises(ValueError, match="MAXIM_BRIDGE_TOKEN must not be empty"):
        Bridge(RecordingExporter())
    assert main(["bridge", "--port", "0"]) == 2
    assert "MAXIM_BRIDGE_TOKEN must not be empty" in capsys.readouterr().err


@pytest.mark.parametrize("token", ["pässwort", "two words", "tab\there"])
def test_a_token_no_client_can_send_alike_is_refused(token: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Clients encode a non-ASCII header each their own way (Go as UTF-8, Starlette reads latin-1)."""
    with pytest.raises(ValueError, match="token must be printable ASCII"):
        Bridge(RecordingExporter(), token=token)
    monkeypatch.setenv(env.MAXIM_BRIDGE_TOKEN, token)
    with pytest.raises(ValueError, match="MAXIM_BRIDGE_TOKEN must be printable ASCII"):
        Bridge(RecordingExporter())


def test_what_a_client_wrote_reaches_the_log_escaped_and_bounded(
    recorder_bridge: tuple[str, RecordingExporter], caplog: pytest.LogCaptureFixture
) -> None:
    url, _ = recorder_bridge
    forged = "X\n2026-01-01 00:00:00 CRITICAL otel_maxim.bridge: forged line"
    span = {"name": "x", "startTimeUnixNano": forged + "Z" * 30_000}  # the parser quotes a bad number
    body = json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]})
    with caplog.at_level(logging.WARNING, logger="otel_maxim"):
        response = requests.post(url, data=body.encode(), headers=JSON, timeout=10)
    assert response.status_code == 400
    assert len(response.content) < 1_000
    (line,) = [r.getMessage() for r in caplog.records if "malformed OTLP request" in r.getMessage()]
    assert "\n" not in line and len(line) < 1_000


def test_the_http_servers_own_warnings_are_rate_limited(
    recorder_bridge: tuple[str, RecordingExporter], caplog: pytest.LogCaptureFixture
) -> None:
    """uvicorn warns once per bad connection: any client could otherwise write a line per connection."""
    url, _ = recorder_bridge
    address = urlsplit(url)
    with caplog.at_level(logging.WARNING, logger="uvicorn.error"):
        for _ in range(20):
            with socket.create_connection((address.hostname, address.port), timeout=10) as sock:
                sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
                sock.recv(1024)  # its 400, then the connection closes
        wait_for(lambda: "Invalid HTTP request received." in caplog.text, what="uvicorn's warning")
    assert caplog.text.count("Invalid HTTP request received.") == 1


def test_show_counts_a_line_that_is_not_text_and_says_when_a_file_cannot_be_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    binary = tmp_path / "records.log"
    binary.write_bytes(b"\xff\xfe not utf-8")
    assert main(["show", str(binary)]) == 0
    assert "(1 lines were not records)" in capsys.readouterr().out
    assert main(["show", str(tmp_path)]) == 1  # a directory
    assert f"otel-maxim: cannot read {tmp_path}:" in capsys.readouterr().err


def test_the_command_says_which_extra_is_missing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delitem(sys.modules, "otel_maxim.bridge")
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # as if the 'bridge' extra were not installed
    assert main(["bridge"]) == 2
    assert "pip install '.[bridge]' in a checkout of otel_maxim" in capsys.readouterr().err


@pytest.mark.parametrize("maxim", ["up", "down"])
def test_the_command_serves_until_sigterm_and_flushes_on_the_way_out(
    fake_maxim: FakeMaxim, tmp_path: Path, maxim: str
) -> None:
    """``otel-maxim bridge`` as a process, configured by the environment: a held trace, then SIGTERM.

    The shutdown sends what the exporter holds; what Maxim does not take waits in the spool.
    """
    spool = tmp_path / "spool"
    environment = {
        **os.environ,
        env.MAXIM_API_KEY: fake_maxim.api_key,
        env.MAXIM_LOG_REPO_ID: "test-repo",
        env.MAXIM_BASE_URL: fake_maxim.base_url,
        env.MAXIM_SPOOL_DIR: str(spool),
        env.MAXIM_BRIDGE_TOKEN: "env-token",
        env.MAXIM_BRIDGE_CROSS_SERVICE_GRACE: "600",  # only the shutdown can let the trace go
    }
    command = [sys.executable, "-m", "otel_maxim.cli", "bridge", "--port", "0", "--log-level", "INFO"]
    process = subprocess.Popen(command, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert process.stderr is not None
    stderr = StreamLines(process.stderr)
    try:
        port = int(stderr.wait_for(re.compile(rb"listening on http://127\.0\.0\.1:(\d+)/v1/traces")).group(1))
        url = f"http://127.0.0.1:{port}/v1/traces"
        held = _request(_span("server half", 2, parent_id=1, flags=0x300)).SerializeToString()
        assert requests.post(url, data=held, headers=PROTOBUF, timeout=10).status_code == 401
        response = requests.post(url, data=held, headers={**PROTOBUF, "Authorization": "Bearer env-token"})
        assert response.status_code == 200
        wait_for(lambda: _exported(port), what="the span to reach the exporter")
        assert fake_maxim.distinct() == []  # held: waiting for the calling service's spans
        if maxim == "down":
            fake_maxim.go_down()
        os.kill(process.pid, signal.SIGTERM)
        process.wait(45)
    finally:
        returncode = stop_process(process)
    output = stderr.all()
    assert returncode in (0, -signal.SIGTERM), output.decode()
    assert b"env-token" not in output
    if maxim == "up":
        records = _delivered(fake_maxim)
    else:
        spooled = b"".join(path.read_bytes() for path in spool.rglob("*") if path.is_file())
        records = [parse(line) for line in spooled.decode().splitlines() if line.startswith(("trace{", "span{"))]
    assert [(r.entity, r.action, r.data.get("name")) for r in records][0] == ("trace", "create", "server half")
    assert records[-1].action == "end"


def _exported(port: int) -> bool:
    return _health(f"http://127.0.0.1:{port}")["queued_spans"] == 0


def test_parse_request_rejects_an_unknown_media_type() -> None:
    with pytest.raises(ValueError, match="unsupported Content-Type"):
        parse_request(b"", "text/plain")


def test_show_draws_errors_of_any_shape(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Well-formed lines whose error is text or a list, not an object, are drawn, not a crash."""
    log = tmp_path / "records.log"
    log.write_text(
        'trace{id=t1,action=create,data={"name": "x"}}\n'
        'trace{id=t1,action=add-tool-call,data={"id": "c1", "name": "f"}}\n'
        'tool_call{id=c1,action=error,data={"error": "boom"}}\n'
        'trace{id=t1,action=add-error,data={"error": ["x"]}}\n'
    )
    assert main(["show", str(log)]) == 0
    out = capsys.readouterr().out
    assert "tool_call 'f'  [c1]  error: boom" in out
    assert "error: ['x']" in out


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(float("nan"), id="nan"),
        pytest.param(2**63 - 1, id="int64-max"),
        pytest.param([], id="empty-list"),
        pytest.param(["a", None], id="list-with-none"),
        pytest.param([float("nan"), 1.0], id="list-with-nan"),
        pytest.param(b"\x00\xffhi", id="bytes"),
        pytest.param([b"hi", b"yo"], id="list-of-bytes"),
        # What SDK 1.4x keeps too (AnyValue): mappings, mixed and nested sequences, None.
        pytest.param({"a": 1, "nested": [1, {"b": None}]}, id="structured-mapping"),
        pytest.param(["a", 1], id="structured-mixed-list"),
        pytest.param([[1, 2], ["x"]], id="structured-nested-list"),
        pytest.param({"x": float("nan"), "k": "Grüße", "": "dropped"}, id="structured-nan-unicode-empty-key"),
        pytest.param(None, id="structured-none"),
    ],
)
@pytest.mark.parametrize("encoding", ["protobuf", "json"])
def test_a_span_received_over_otlp_maps_to_the_records_of_the_same_span_made_here(value: object, encoding: str) -> None:
    """Encoded by the SDK's own OTLP encoders (protobuf and JSON), decoded by the bridge: the same records."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "svc"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    with provider.get_tracer("t").start_as_current_span("root", attributes={"session.id": "s1", "odd": value}):  # type: ignore[dict-item]
        pass
    made_here = list(memory.get_finished_spans())

    def records_of(spans: list[ReadableSpan]) -> list[str]:
        sink = ListSink()
        exporter = MaximSpanExporter(sink=sink)
        exporter.export(spans)
        exporter.shutdown()
        return sink.lines

    expected = records_of(made_here)
    assert any('"odd":' in line for line in expected)
    if encoding == "protobuf":
        request = otlp.parse_request(encode_protobuf(made_here).SerializeToString(), otlp.CONTENT_TYPE_PROTOBUF)
    else:
        from opentelemetry.exporter.otlp.json.common.trace_encoder import encode_spans  # noqa: PLC0415 - see above

        request = otlp.parse_request(encode_spans(made_here).to_json().encode(), otlp.CONTENT_TYPE_JSON)
    assert records_of(otlp.spans_from_request(request).spans) == expected


def test_an_end_marker_left_with_only_its_session_id_by_a_count_limit_ends_the_session_over_otlp() -> None:
    """OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT=1 leaves the marker its session.id only, and the SDK's OTLP encoder
    sends how many attributes were dropped: received by the bridge, it is still a marker, as it is when
    made in the same process."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(span_limits=SpanLimits(max_span_attributes=1))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    with otel_maxim.session("s-1", tracer_provider=provider) as session:
        with session.trace("turn"):
            pass
        session.end()
    provider.shutdown()
    made_here = list(memory.get_finished_spans())
    marker = made_here[-1]
    assert marker.name == "maxim.session.end" and dict(marker.attributes or {}) == {"session.id": "s-1"}
    request = otlp.parse_request(encode_protobuf(made_here).SerializeToString(), otlp.CONTENT_TYPE_PROTOBUF)
    received = otlp.spans_from_request(request).spans
    assert [span.dropped_attributes for span in received] == [span.dropped_attributes for span in made_here]
    records = exported(received).records()
    assert [(r.entity, r.id, r.action) for r in records if r.entity == "session" and r.action == "end"] == [
        ("session", "s-1", "end")
    ]
    assert not [r for r in records if r.entity == "trace" and r.data.get("name") == "maxim.session.end"]


_MESSAGES = [{"role": "user", "parts": [{"type": "text", "content": "Where is my order?"}]}]
_ANSWER = [{"role": "assistant", "parts": [{"type": "text", "content": "It shipped."}], "finish_reason": "stop"}]


@pytest.mark.parametrize("encoding", ["protobuf", "json"])
def test_structured_genai_messages_over_otlp_map_as_made_here_and_as_their_json_text(encoding: str) -> None:
    """GenAI instrumentations may record messages structured (the convention's preferred form where the SDK
    takes it) or as JSON text: both, made here or received over OTLP, give the same generation."""
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("t")
    for form in (json.dumps, lambda value: value):
        attributes = {"gen_ai.operation.name": "chat", "gen_ai.input.messages": form(_MESSAGES)}
        attributes["gen_ai.output.messages"] = form(_ANSWER)
        tracer.start_span("chat", attributes=attributes).end()  # type: ignore[arg-type]
    as_text, structured = memory.get_finished_spans()
    assert isinstance(structured.attributes["gen_ai.input.messages"], tuple)  # type: ignore[index]

    def generation_of(spans: list[ReadableSpan]) -> list[tuple[str, dict[str, Any]]]:
        kept = ("messages", "model", "provider")
        return [
            (r.action, {k: v for k, v in r.data.items() if k in kept} if r.action == "add-generation" else r.data)
            for r in exported(spans).records()
            if r.action in ("add-generation", "result")
        ]

    expected = generation_of([as_text])
    assert expected[0][1]["messages"] == [{"role": "user", "content": "Where is my order?"}]
    assert expected[1][1]["result"]["choices"][0]["message"]["content"] == "It shipped."
    if encoding == "protobuf":
        request = otlp.parse_request(encode_protobuf([structured]).SerializeToString(), otlp.CONTENT_TYPE_PROTOBUF)
    else:
        from opentelemetry.exporter.otlp.json.common.trace_encoder import encode_spans  # noqa: PLC0415 - see above

        request = otlp.parse_request(encode_spans([structured]).to_json().encode(), otlp.CONTENT_TYPE_JSON)
    received = otlp.spans_from_request(request).spans
    for spans in ([structured], received):
        got = generation_of(spans)
        got[1][1]["result"]["id"] = expected[1][1]["result"]["id"]  # the span id: another span here
        assert got == expected


def _any_value(value: object) -> AnyValue:
    """``value`` as OTLP carries it, built by hand (SDK 1.27's encoder knows no mappings)."""
    if value is None:
        return AnyValue()
    if isinstance(value, str):
        return AnyValue(string_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, dict):
        return AnyValue(kvlist_value={"values": [KeyValue(key=k, value=_any_value(v)) for k, v in value.items()]})
    assert isinstance(value, list)
    return AnyValue(array_value={"values": [_any_value(v) for v in value]})


def test_otlp_maps_and_arrays_become_what_the_sdk_holds_whatever_its_version() -> None:
    """Key-value lists as dicts, arrays as tuples (nested as deep), an empty value as None, an empty key
    dropped; and a generation reads its messages from them."""
    span = _span("chat", 1)
    values = {
        "gen_ai.operation.name": "chat",
        "gen_ai.input.messages": _MESSAGES,
        "user": {"id": 42, "roles": ["x", 1], "": "dropped", "none": None},
    }
    for key, value in values.items():
        span.attributes.add(key=key, value=_any_value(value))
    (received,) = otlp.spans_from_request(_request(span)).spans
    assert dict(received.attributes or {}) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.input.messages": ({"role": "user", "parts": ({"type": "text", "content": "Where is my order?"},)},),
        "user": {"id": 42, "roles": ("x", 1), "none": None},
    }
    records = exported([received]).records()
    (announce,) = [r for r in records if r.action == "add-generation"]
    assert announce.data["messages"] == [{"role": "user", "content": "Where is my order?"}]
    (update,) = [r for r in records if r.action == "update" and "metadata" in r.data]
    assert update.data["metadata"] == {"user": '{"id": 42, "roles": ["x", 1], "none": null}'}


def test_an_end_marker_stripped_by_a_span_limit_is_not_a_trace_over_otlp_either(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """OTLP carries no count of the attributes a limit dropped into the span the bridge makes: a span named
    as an end marker with nothing that names its session is still taken for one, and logged."""
    stripped = _span("maxim.session.end", 1)
    with caplog.at_level(logging.WARNING, logger="otel_maxim"):
        records = exported(otlp.spans_from_request(_request(stripped)).spans).records()
    assert records == []
    assert "Ignoring a session-end marker with no session.id" in caplog.text
