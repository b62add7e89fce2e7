"""Agreement with the reference: maxim-py and otel_maxim, given the same scenario, send the same records.

maxim-py is run for real against a local HTTP server (tests/maxim_py_capture.py). Compared: entities,
user-chosen ids, actions, data keys in order, and every data value except timestamps and generated ids.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Tracer

import otel_maxim
from otel_maxim.records import Record, parse
from tests.maxim_py_capture import (
    API_KEY,
    LOG_PATH,
    REPO_ID,
    SIGNED_UPLOAD_PATH,
    UPLOAD_URL_PATH,
    RecordedRequest,
    capture,
    capture_requests,
    recording_server,
    seed_scenario,
)
from tests.record_checks import ListSink

USER_IDS = {"session-id", "trace-id", "trace-id-2", "session-2", "trace-3"}
TIMESTAMP_KEYS = {"startTimestamp", "endTimestamp", "timestamp"}


def _normalise(records: list[Record]) -> list[tuple[Any, ...]]:
    """Generated ids -> placeholders by first appearance; timestamps -> a marker."""
    names: dict[str, str] = {}

    def name(value: str) -> str:
        if value in USER_IDS:
            return value
        return names.setdefault(value, f"<id{len(names)}>")

    out = []
    for record in records:
        data = {}
        for key, value in record.data.items():
            if key in TIMESTAMP_KEYS:
                data[key] = "<ts>"
            elif key in ("id", "spanId", "sessionId"):
                data[key] = name(str(value))
            else:
                data[key] = value
        out.append((record.entity, name(record.id), record.action, list(data), data))
    return out


def _otel(scenario: Callable[[TracerProvider, Tracer], None]) -> list[Record]:
    sink = ListSink()
    provider = TracerProvider()
    provider.add_span_processor(otel_maxim.MaximSpanProcessor(otel_maxim.MaximSpanExporter(sink=sink)))
    scenario(provider, provider.get_tracer("reference"))
    provider.shutdown()
    return sink.records()


def _otel_seed(provider: TracerProvider, tracer: Tracer) -> None:
    # 1. create a session; 2. add a trace to it
    with otel_maxim.session("session-id", name="session-name", tracer_provider=provider) as session:
        with session.trace("trace-name", id="trace-id"), tracer.start_as_current_span("span-name"):
            pass
    # 3. link a trace by session id
    with tracer.start_as_current_span(
        "trace-2", attributes={"session.id": "session-id", "maxim.trace.id": "trace-id-2"}
    ):
        with tracer.start_as_current_span("span-2"):
            pass
    # 4. end the session
    session.end()


@pytest.fixture(autouse=True)
def _maxim_py_spills_into_tmp_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """maxim-py's writer makes ``<tempdir>/maxim-sdk/<uuid>``: here, under the test's own directory."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))


def test_the_seed_scenario_matches_maxim_py() -> None:
    reference = [parse(line) for line in capture(seed_scenario)]
    ours = _otel(_otel_seed)
    assert _normalise(ours) == _normalise(reference)


def _maxim_nested(logger: Any) -> None:
    session = logger.session({"id": "session-2", "name": "nested", "tags": {"channel": "web"}})
    trace = session.trace({"id": "trace-3", "name": "turn", "tags": {"intent": "refund"}})
    outer = trace.span({"id": "outer", "name": "agent", "tags": {"step": "1"}})
    outer.add_metadata({"order.id": "A-1", "attempt": 2})
    inner = outer.span({"id": "inner", "name": "lookup"})
    inner.end()
    outer.end()
    trace.end()
    session.end()


def _otel_nested(provider: TracerProvider, tracer: Tracer) -> None:
    with otel_maxim.session("session-2", name="nested", tags={"channel": "web"}, tracer_provider=provider) as s:
        with s.trace("turn", id="trace-3", tags={"intent": "refund"}):
            with tracer.start_as_current_span("agent", attributes={"maxim.tags.step": "1"}) as outer:
                outer.set_attributes({"order.id": "A-1", "attempt": 2})
                with tracer.start_as_current_span("lookup"):
                    pass
    s.end()


def test_nested_spans_tags_and_metadata_match_maxim_py() -> None:
    reference = [parse(line) for line in capture(_maxim_nested)]
    ours = _otel(_otel_nested)
    assert _normalise(ours) == _normalise(reference)


BIG_INPUT = "x" * 950_000  # the trace's create record is over 900 KB: both upload it


def _maxim_large(logger: Any) -> None:
    logger.trace({"id": "trace-id", "name": "big", "input": BIG_INPUT}).end()


def _large_upload(requests: list[RecordedRequest]) -> tuple[Any, ...]:
    """The large-log upload as sent: the upload URL's query, the PUT, the ``storage`` line in the record's place."""
    (ask,) = [r for r in requests if r.route == UPLOAD_URL_PATH]
    (put,) = [r for r in requests if r.route == SIGNED_UPLOAD_PATH]
    lines = [x for r in requests if r.route == LOG_PATH for x in r.body.decode().split("\n")]
    query = dict(parse_qsl(urlsplit(ask.path).query))
    key = query["key"]
    record = parse(put.body.decode())
    headers = {name.lower(): value for name, value in put.headers.items()}
    return (
        key.rsplit("/", 1)[0],
        query["mimeType"],
        int(query["size"]) == len(put.body),
        put.method,
        urlsplit(put.path).query == f"key={quote(key, safe='')}",  # the signed URL, its query kept
        headers.get("content-type"),
        API_KEY in str(put.headers),
        _normalise([record]),
        [x for x in lines if x.startswith("storage{")]
        == [f'storage{{id={key.rsplit("/", 1)[1]},action=process-large-log,data={{"key":"{key}"}}}}'],
    )


def _otel_requests(tmp_path: Path, scenario: Callable[[Tracer], None]) -> list[RecordedRequest]:
    """Run ``scenario`` with otel_maxim sending to the recording server (maxim-py's bytes); every request."""
    with recording_server() as (recorder, base_url):
        exporter = otel_maxim.MaximSpanExporter(
            api_key=API_KEY, repo_id=REPO_ID, base_url=base_url, spool_dir=tmp_path / "spool", fast_json=False
        )
        provider = TracerProvider()
        provider.add_span_processor(otel_maxim.MaximSpanProcessor(exporter))
        scenario(provider.get_tracer("reference"))
        provider.shutdown()
    with recorder.cond:
        return list(recorder.requests)


def test_a_large_record_is_uploaded_to_the_signed_url_as_maxim_py_does(tmp_path: Path) -> None:
    reference = _large_upload(capture_requests(_maxim_large))
    attributes = {"maxim.trace.id": "trace-id", "maxim.input": BIG_INPUT}
    ours = _large_upload(_otel_requests(tmp_path, lambda tracer: tracer.start_span("big", attributes=attributes).end()))
    assert ours == reference
    assert reference[0] == f"{REPO_ID}/large-logs" and reference[-1] is True


#: A 1x1 PNG, inline in a data URL, and an image by URL: what an application sends a vision model.
PNG_BASE64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgAAIAAAUAAeIhvDMAAAAASUVORK5CYII="
IMAGE_URL = "https://example.com/cat.png"
QUESTION = "What is in this picture?"


def _maxim_vision(logger: Any) -> None:
    trace = logger.trace({"id": "trace-id", "name": "turn"})
    content = [
        {"type": "text", "text": QUESTION},
        {"type": "image_url", "image_url": {"url": IMAGE_URL}},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_BASE64}"}},
    ]
    generation = trace.generation(
        {"id": "gen", "provider": "openai", "model": "gpt-4o", "messages": [{"role": "user", "content": content}]}
    )
    generation.end()
    trace.end()
    # maxim-py uploads on a thread of its own when its periodic flush comes first; an upload under
    # way when it closes commits its add-attachment after the last flush, and that record is never
    # sent.  So: upload what is still queued here, then wait for any upload already under way.
    logger.writer.flush(is_sync=True)
    logger.writer.upload_executor.submit(lambda: None).result(10)


def _attachments(requests: list[RecordedRequest]) -> list[tuple[Any, ...]]:
    """Each attachment as sent: its ``add-attachment`` data (ids and keys named by their shape), and for
    a file, the upload URL's query and the PUT (method, type, body, whether the API key went along)."""
    lines = [x for r in requests if r.route == LOG_PATH for x in r.body.decode().split("\n")]
    asks = {dict(parse_qsl(urlsplit(r.path).query))["key"]: r for r in requests if r.route == UPLOAD_URL_PATH}
    puts = {dict(parse_qsl(urlsplit(r.path).query))["key"]: r for r in requests if r.route == SIGNED_UPLOAD_PATH}
    out = []
    for record in (parse(x) for x in lines if ",action=add-attachment," in x):
        data = dict(record.data)
        key = data.pop("key")
        prefix, file_id = key.rsplit("/", 1)
        assert file_id == data.pop("id")
        upload: tuple[Any, ...] = ()
        if key in asks:
            query = dict(parse_qsl(urlsplit(asks[key].path).query))
            put = puts[key]
            headers = {name.lower(): value for name, value in put.headers.items()}
            upload = (query["mimeType"], query["size"], put.method, headers.get("content-type"), put.body)
            upload += (API_KEY in str(put.headers),)
        out.append((record.entity, prefix.replace(f"/{record.id}/", "/<generation>/"), list(data), data, upload))
    return sorted(out, key=repr)


def test_images_in_messages_are_attached_as_maxim_py_does(tmp_path: Path) -> None:
    reference = _attachments(capture_requests(_maxim_vision))

    def vision(tracer: Tracer) -> None:
        content = [
            {"type": "text", "text": QUESTION},
            {"type": "image_url", "image_url": {"url": IMAGE_URL}},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_BASE64}"}},
        ]
        attributes = {  # Traceloop's form: OpenAI's messages, content parts as JSON
            "llm.request.type": "chat",
            "gen_ai.system": "openai",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.prompt.0.role": "user",
            "gen_ai.prompt.0.content": json.dumps(content),
        }
        with tracer.start_as_current_span("turn", attributes={"maxim.trace.id": "trace-id"}):
            tracer.start_span("chat", attributes=attributes).end()

    ours = _attachments(_otel_requests(tmp_path, vision))
    assert len(reference) == 2
    assert ours == reference
