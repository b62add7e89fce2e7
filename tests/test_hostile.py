"""Never break the host: hostile attributes, baggage and trace shapes; limits; baggage trust."""

from __future__ import annotations

import copy
import enum
import json
import logging
import math
import threading
import time
from collections.abc import Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry import baggage, context, propagate, trace
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import otel_maxim
from otel_maxim import MaximSpanExporter, MaximSpanProcessor
from otel_maxim.ids import maxim_id
from otel_maxim.mapping import genai
from otel_maxim.records import TRUNCATION_MARKER, Record, parse
from tests.record_checks import ListSink, assert_parent_first

# Every OTel attribute value type, with the awkward values included.
_scalars = (
    st.text()
    | st.text(alphabet=st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), max_size=3)  # lone surrogates
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=True, allow_infinity=True)
)
_nested_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=30,
).map(json.dumps)
_values = (
    _scalars
    | _nested_json
    | st.lists(st.text(max_size=20), max_size=5)
    | st.lists(st.integers(), max_size=5)
    | st.lists(st.floats(allow_nan=True), max_size=5)
    | st.just("x" * 200_000)
)
# Attribute keys, including the ones the mapping reads, so hostile values reach every reader.
_keys = st.sampled_from(
    [
        "session.id",
        "session.name",
        "maxim.trace.id",
        "maxim.tags.t",
        "maxim.metadata.m",
        "maxim.input",
        "maxim.output",
        "gen_ai.operation.name",
        "gen_ai.input.messages",
        "gen_ai.output.messages",
        "gen_ai.system_instructions",
        "gen_ai.usage.input_tokens",
        "gen_ai.response.finish_reasons",
        "gen_ai.request.temperature",
        "openinference.span.kind",
        "llm.input_messages.0.message.content",
        "llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments",
        "llm.invocation_parameters",
        "input.value",
        "ai.operationId",
        "ai.prompt.messages",
        "ai.response.toolCalls",
        "gen_ai.prompt.0.role",
        "tag.tags",
        "metadata",
        "retrieval.documents.0.document.content",
        "maxim.session.end",
        "llm.input_messages.\u00b2.message.role",  # a digit that int() refuses
        "ai.prompt",
        "index",  # fields of the older GenAI events
        "message",
        "tool_calls",
        "gen_ai.prompt",  # of the first GenAI events
        "gen_ai.completion",
    ]
) | st.text(max_size=30)
_attributes = st.dictionaries(_keys, _values, max_size=8)
_EVENT_NAMES = [
    "exception",
    "gen_ai.user.message",
    "gen_ai.choice",
    "gen_ai.content.prompt",
    "gen_ai.content.completion",
    "x",
]
_baggage = st.dictionaries(
    st.sampled_from(["session.id", "session.name", "maxim.session.tags.a", "other"]) | st.text(min_size=1, max_size=8),
    st.text(max_size=300) | st.text(alphabet=st.characters(max_codepoint=0x1F), max_size=5) | st.just("y" * 5000),
    max_size=6,
)


@st.composite
def _traces(draw: st.DrawFn) -> list[tuple[int, dict[str, object], list[tuple[str, dict[str, object]]]]]:
    """(parent index, attributes, events) per span; node 0 is the root."""
    size = draw(st.integers(1, 6))
    return [
        (
            -1 if i == 0 else draw(st.integers(0, i - 1)),
            draw(_attributes),
            draw(
                st.lists(
                    st.tuples(st.sampled_from(_EVENT_NAMES), _attributes),
                    max_size=2,
                )
            ),
        )
        for i in range(size)
    ]


class _ErrorRecords(logging.Handler):
    """Keeps the messages logged at ERROR or above."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(shape=_traces(), bag=_baggage, status_error=st.booleans(), end_session=st.booleans())
def test_nothing_hostile_raises_and_every_line_parses(
    shape: list[tuple[int, dict[str, object], list[tuple[str, dict[str, object]]]]],
    bag: dict[str, str],
    status_error: bool,
    end_session: bool,
) -> None:
    errors = _ErrorRecords()
    logging.getLogger("otel_maxim").addHandler(errors)
    sink = ListSink()
    exporter = MaximSpanExporter(sink=sink, max_record_bytes=50_000)
    provider = TracerProvider()
    provider.add_span_processor(otel_maxim.SessionBaggageProcessor())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("fuzz")

    ctx = context.Context()
    for key, value in bag.items():
        ctx = baggage.set_baggage(key, value, ctx)
    token = context.attach(ctx)
    try:
        spans: list[trace.Span] = []
        for parent, attributes, events in shape:
            parent_ctx = None if parent < 0 else trace.set_span_in_context(spans[parent])
            span = tracer.start_span("s", context=parent_ctx)
            for key, value in attributes.items():
                span.set_attribute(key, value)  # type: ignore[arg-type]
            for name, event_attributes in events:
                span.add_event(name, event_attributes)  # type: ignore[arg-type]
            if status_error:
                span.set_status(trace.StatusCode.ERROR, "boom\n}{")
            spans.append(span)
        for span in reversed(spans):
            span.end()
        if end_session and isinstance(bag.get("session.id"), str) and bag["session.id"]:
            otel_maxim.end_session(bag["session.id"], tracer_provider=provider)
    finally:
        context.detach(token)
        provider.shutdown()
        logging.getLogger("otel_maxim").removeHandler(errors)

    assert errors.messages == []  # no span or trace was given up on
    records = [parse(line) for line in sink.lines]  # every line parses, as strict JSON (no NaN/Infinity)
    assert all(len(line) <= 50_000 and line.isascii() for line in sink.lines)
    assert_parent_first(records)
    # A span that sets maxim.session.end itself is a session-end marker, not part of the trace.
    traced = any(attributes.get("maxim.session.end") is not True for _, attributes, _ in shape)
    assert sum(1 for r in records if r.entity == "trace" and r.action == "create") == (1 if traced else 0)


def test_a_hostile_baggage_header_cannot_forge_records() -> None:
    sink = ListSink()
    provider = TracerProvider()
    provider.add_span_processor(MaximSpanProcessor(MaximSpanExporter(sink=sink)))
    header = "session.id=a%7D%20session%7Bid%3Dx%2Caction%3Dend%2Cdata%3D%7B%7D%7D,session.name=%7D%7B%22"
    token = context.attach(propagate.extract({"baggage": header}))
    try:
        with provider.get_tracer("t").start_as_current_span("request"):
            pass
    finally:
        context.detach(token)
    provider.shutdown()
    records = sink.records()
    assert len(sink.lines) == len(records) == 3  # session create, trace create, trace end: nothing forged
    assert records[0].entity == "session" and records[0].id.startswith("mx-")
    assert records[0].data["tags"]["original_id"] == "a} session{id=x,action=end,data={}}"
    assert records[0].data["name"] == '}{"'
    assert not [r for r in records if r.action == "end" and r.entity == "session"]


# --- limits ---------------------------------------------------------------------------------------


def _one_span(exporter: MaximSpanExporter, attributes: dict[str, object], name: str = "span") -> None:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("root"), tracer.start_as_current_span(name, attributes=attributes):  # type: ignore[arg-type]
        pass
    provider.shutdown()


def test_an_oversized_record_is_truncated_with_a_marker_never_dropped(caplog: pytest.LogCaptureFixture) -> None:
    sink = ListSink()
    with caplog.at_level(logging.WARNING, logger="otel_maxim"):
        _one_span(MaximSpanExporter(sink=sink, max_record_bytes=10_000), {"maxim.metadata.big": "z" * 50_000})
    update = next(r for r in sink.records() if r.action == "update" and "metadata" in r.data)
    value = update.data["metadata"]["big"]
    assert value.startswith("zzz") and "truncated by otel_maxim" in value and "of 50000 characters" in value
    assert max(len(line) for line in sink.lines) <= 10_000
    assert TRUNCATION_MARKER.split("{")[0] in value
    assert "longest text fields were truncated" in caplog.text


def test_json_nested_past_the_parser_limit_is_read_as_no_value(caplog: pytest.LogCaptureFixture) -> None:
    """Text that the JSON parser gives up on (RecursionError) is no value, as text that is not JSON."""
    deep_list = "[" * 100_000 + "]" * 100_000
    deep_object = '{"a":' * 100_000 + "1" + "}" * 100_000
    sink = ListSink()
    with caplog.at_level(logging.WARNING, logger="otel_maxim"):
        _one_span(
            MaximSpanExporter(sink=sink),
            {"gen_ai.operation.name": "chat", "gen_ai.input.messages": deep_list, "metadata": deep_object},
            name="chat",
        )
    generation = next(r for r in sink.records() if r.action == "add-generation")
    assert generation.data["messages"] == []
    # Not an object OpenInference's metadata can be read from: the application's text, kept as it is.
    (update,) = [r for r in sink.records() if r.action == "update"]
    assert update.data == {"metadata": {"metadata": deep_object}}
    assert [r.action for r in sink.records() if r.entity == "trace"][-1] == "end"
    assert not caplog.records


def test_a_trace_that_cannot_be_mapped_costs_only_itself(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A mapping failure (a bug of ours, simulated here) is logged with the trace id; the batch's other traces go."""
    real_map_trace = otel_maxim.exporter.map_trace

    def failing_for_one(spans, prior, options):  # type: ignore[no-untyped-def]
        if spans[0].name == "broken":
            raise RuntimeError("simulated mapping bug")
        return real_map_trace(spans, prior, options)

    monkeypatch.setattr(otel_maxim.exporter, "map_trace", failing_for_one)
    sink = ListSink()
    exporter = MaximSpanExporter(sink=sink)
    provider = TracerProvider()
    tracer = provider.get_tracer("t")
    finished: list[ReadableSpan] = []
    for name in ("first", "broken", "last"):
        span = tracer.start_span(name)
        span.end()
        finished.append(span)
    with caplog.at_level(logging.ERROR, logger="otel_maxim"):
        assert exporter.export(finished) is SpanExportResult.SUCCESS
    assert [r.data["name"] for r in sink.records() if r.action == "create"] == ["first", "last"]
    broken_id = f"{finished[1].context.trace_id:032x}"
    assert f"Could not map trace {broken_id} (1 spans)" in caplog.text
    assert "simulated mapping bug" in caplog.text


_ODD_SHAPES = {
    # Digits that str.isdigit() accepts and int() refuses.
    "usage-superscript": ({"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": "\u00b2"}, None),
    "flat-index-superscript": (
        {"openinference.span.kind": "LLM", "llm.input_messages.\u00b2.message.role": "user"},
        None,
    ),
    "document-index-superscript": (
        {"gen_ai.operation.name": "retrieval", "retrieval.documents.\u00b9.document.content": "d"},
        None,
    ),
    # Older GenAI events with fields of the wrong type.
    "choice-index-text": ({"gen_ai.operation.name": "chat"}, ("gen_ai.choice", {"index": "first"})),
    "choice-index-infinite": ({"gen_ai.operation.name": "chat"}, ("gen_ai.choice", {"index": math.inf})),
    "choice-tool-calls-number": (
        {"gen_ai.operation.name": "chat"},
        ("gen_ai.choice", {"message": '{"content": "x", "tool_calls": 5}'}),
    ),
    # The first GenAI events with messages of odd shapes.
    "content-prompt-odd-message": (
        {"gen_ai.operation.name": "chat"},
        (
            "gen_ai.content.prompt",
            {"gen_ai.prompt": '[{"role": 5, "content": {"a": 1}, "tool_calls": [5, {"function": 5}]}]'},
        ),
    ),
    "content-completion-not-messages": (
        {"gen_ai.operation.name": "chat"},
        ("gen_ai.content.completion", {"gen_ai.completion": "[1, 2]"}),
    ),
    # Vercel's prompt with messages that are not a list.
    "vercel-messages-number": (
        {"ai.operationId": "ai.generateText.doGenerate", "ai.prompt": '{"messages": 5}'},
        None,
    ),
}


@pytest.mark.parametrize("shape", _ODD_SHAPES.values(), ids=_ODD_SHAPES.keys())
def test_odd_attribute_shapes_are_read_as_far_as_they_go(
    shape: tuple[dict[str, object], tuple[str, dict[str, object]] | None], caplog: pytest.LogCaptureFixture
) -> None:
    """Each of these once cost its whole trace; now the span is read, and nothing is logged as an error."""
    attributes, event = shape
    sink = ListSink()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(MaximSpanExporter(sink=sink)))
    tracer = provider.get_tracer("t")
    with caplog.at_level(logging.WARNING, logger="otel_maxim"):
        with tracer.start_as_current_span("root"), tracer.start_as_current_span("llm", attributes=attributes) as span:  # type: ignore[arg-type]
            if event is not None:
                span.add_event(*event)  # type: ignore[arg-type]
        provider.shutdown()
    records = sink.records()
    assert_parent_first(records)
    assert (records[0].entity, records[0].action) == ("trace", "create")
    assert (records[-1].entity, records[-1].action) == ("trace", "end")
    announced = next(r for r in records if r.action.startswith("add-") and r.data.get("name") == "llm")
    assert announced.action in ("add-generation", "add-retrieval")
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_integers_too_long_for_decimal_text_cost_nothing_else() -> None:
    """Python refuses to write an int of over 4300 digits in decimal; that once cost the whole trace."""
    huge = 10**5000
    sink = ListSink()
    _one_span(
        MaximSpanExporter(sink=sink),
        {"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": huge, "big": huge, "bigs": [1, huge]},
        "chat",
    )
    records = sink.records()
    assert [r.action for r in records if r.entity == "trace"] == ["create", "add-generation", "end"]
    metadata = next(r.data["metadata"] for r in records if r.action == "update" and "metadata" in r.data)
    assert metadata["big"] == hex(huge)
    assert metadata["bigs"] == "<a value holding an integer too long to write in decimal>"
    assert not [r for r in records if r.action == "result"]  # no usage: the count is no count


def test_a_span_the_readers_cannot_read_is_sent_as_a_plain_span(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A reader's failure (a bug of ours, simulated here) costs the span its GenAI reading, not its trace."""

    def failing(attributes: object, out: object) -> None:
        raise RuntimeError("simulated reader bug")

    monkeypatch.setattr(genai, "_describe_generation", failing)
    sink = ListSink()
    with caplog.at_level(logging.ERROR, logger="otel_maxim"):
        _one_span(MaximSpanExporter(sink=sink), {"gen_ai.operation.name": "chat", "gen_ai.request.model": "m"}, "chat")
    records = sink.records()
    assert [(r.entity, r.action) for r in records] == [
        ("trace", "create"),
        ("trace", "add-span"),
        ("span", "update"),
        ("span", "end"),
        ("trace", "end"),
    ]
    assert records[2].data == {"metadata": {"gen_ai.operation.name": "chat", "gen_ai.request.model": "m"}}
    assert "as a generation; sending it as a plain span" in caplog.text
    assert "simulated reader bug" in caplog.text


def test_attributes_taken_are_capped_and_counted() -> None:
    sink = ListSink()
    _one_span(MaximSpanExporter(sink=sink, max_attributes=5), {f"a{i}": i for i in range(20)})
    update = next(r for r in sink.records() if r.action == "update" and "metadata" in r.data)
    assert len(update.data["metadata"]) == 6
    assert update.data["metadata"]["otel_maxim.dropped_attributes"] == "15"


def test_traces_held_open_are_capped(caplog: pytest.LogCaptureFixture) -> None:
    sink = ListSink()
    exporter = MaximSpanExporter(sink=sink, max_held_traces=2)
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("t")
    roots = [tracer.start_span(f"open-{i}") for i in range(5)]
    with caplog.at_level(logging.WARNING, logger="otel_maxim"):
        for root in roots:
            with trace.use_span(root), tracer.start_as_current_span("child"):
                pass
    assert exporter._assembler.held_spans == 2  # the two newest traces; the three oldest went early
    assert "too many spans, traces or bytes held" in caplog.text
    for root in roots:
        root.end()
    provider.shutdown()
    records = sink.records()
    assert_parent_first(records)
    assert sum(1 for r in records if r.entity == "trace" and r.action == "end") == 5


# --- baggage trust ------------------------------------------------------------------------------


def _stamped(processor: otel_maxim.SessionBaggageProcessor | MaximSpanProcessor, session_id: object) -> object:
    provider = TracerProvider()
    provider.add_span_processor(processor)
    token = context.attach(baggage.set_baggage("session.id", session_id, context.Context()))
    try:
        span = provider.get_tracer("t").start_span("s")
    finally:
        context.detach(token)
    span.end()
    provider.shutdown()
    return (span.attributes or {}).get("session.id")  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("session_filter", "session_id", "accepted"),
    [
        (None, "anything:goes", True),
        (None, "x" * 257, False),  # longer than what is read from baggage
        (None, "tab\there", False),  # control characters
        (r"[A-Za-z0-9_-]{8,64}", "conv-12345678", True),
        (r"[A-Za-z0-9_-]{8,64}", "conv-1", False),
        (lambda s: s.startswith("signed."), "signed.abc", True),
        (lambda s: s.startswith("signed."), "forged", False),
        (lambda s: 1 / 0, "conv-12345678", False),  # a failing callback refuses, never raises
    ],
)
def test_session_filter(session_filter: object, session_id: str, accepted: bool) -> None:
    processor = otel_maxim.SessionBaggageProcessor(session_filter=session_filter)  # type: ignore[arg-type]
    assert (_stamped(processor, session_id) == session_id) is accepted


def test_a_baggage_session_id_is_read_as_the_propagator_sends_it() -> None:
    """As text, without the whitespace around it: the span here names the session the services it calls see."""
    processor = otel_maxim.SessionBaggageProcessor
    assert _stamped(processor(), " pad ") == "pad"
    assert _stamped(processor(), 42) == "42"  # the propagator sends str(value) downstream
    printable_enough = "nbsp\xa0and-emoji-\U0001f468\u200d\U0001f469"  # not isprintable(), not control characters
    assert _stamped(processor(), printable_enough) == printable_enough
    assert [_stamped(processor(), refused) for refused in ("tab\tid", "c1\x85id", "   ")] == [None, None, None]


def test_w3c_baggage_properties_stay_in_the_session_id_as_the_propagator_keeps_them() -> None:
    """OpenTelemetry Python's propagator keeps a list-member's properties in its value, and decodes ``%3B``
    to the same ``;``: the id is taken whole (README), so ids that differ after a ``;`` never merge."""
    propagator = propagate.get_global_textmap()
    extracted = [
        baggage.get_baggage("session.id", propagator.extract({"baggage": header}))
        for header in ("session.id=conv-1;ttl=60", "session.id=conv-1%3Bttl=60")
    ]
    assert extracted == ["conv-1;ttl=60", "conv-1;ttl=60"]
    assert _stamped(otel_maxim.SessionBaggageProcessor(), extracted[0]) == "conv-1;ttl=60"


def test_session_filter_from_the_environment(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("MAXIM_SESSION_ID_PATTERN", r"conv-\d+")
    assert _stamped(otel_maxim.SessionBaggageProcessor(), "conv-42") == "conv-42"
    assert _stamped(otel_maxim.SessionBaggageProcessor(), "evil") is None
    monkeypatch.setenv("MAXIM_SESSION_ID_PATTERN", "([unclosed")
    with caplog.at_level(logging.WARNING):
        processor = otel_maxim.SessionBaggageProcessor()
    assert _stamped(processor, "conv-42") is None  # a broken allow-list refuses everything
    assert "MAXIM_SESSION_ID_PATTERN" in caplog.text


def test_a_bad_session_filter_argument_raises_naming_it() -> None:
    with pytest.raises(ValueError, match="session_filter"):
        otel_maxim.SessionBaggageProcessor(session_filter="([unclosed")
    with pytest.raises(ValueError, match="session_filter"):
        otel_maxim.SessionBaggageProcessor(session_filter=42)  # type: ignore[arg-type]


def test_many_baggage_tags_are_capped() -> None:
    provider = TracerProvider()
    provider.add_span_processor(otel_maxim.SessionBaggageProcessor())
    ctx = baggage.set_baggage("session.id", "s", context.Context())
    for i in range(100):
        ctx = baggage.set_baggage(f"maxim.session.tags.t{i}", "v" * 1000, ctx)
    span = provider.get_tracer("t").start_span("s", context=ctx)
    span.end()
    tags = {k: v for k, v in (span.attributes or {}).items() if k.startswith("maxim.session.tags.")}
    assert len(tags) == 16 and all(len(str(v)) == 256 for v in tags.values())


class _NoText:
    def __str__(self) -> str:
        raise RuntimeError("no text")


@pytest.mark.parametrize(
    ("key", "value"),
    [(123, "x"), (None, "v"), ("maxim.session.tags.odd", _NoText()), ("session.name", _NoText())],
    ids=["int-key", "none-key", "tag-value-without-text", "name-without-text"],
)
def test_an_odd_baggage_entry_costs_only_itself(key: object, value: object, caplog: pytest.LogCaptureFixture) -> None:
    """Code may put any object into baggage: an entry whose key is not a string, or whose value has no
    text, is left out with a warning; the session and the other entries are stamped, span after span."""
    provider = TracerProvider()
    provider.add_span_processor(otel_maxim.SessionBaggageProcessor())
    ctx = baggage.set_baggage("session.id", "conv-ok", context.Context())
    ctx = baggage.set_baggage("maxim.session.tags.team", "a", ctx)
    ctx = baggage.set_baggage(key, value, ctx)  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, logger="otel_maxim"):
        spans = [provider.get_tracer("t").start_span("s", context=ctx) for _ in range(3)]
    for span in spans:
        span.end()
        attributes = dict(span.attributes or {})
        assert attributes["session.id"] == "conv-ok" and attributes["maxim.session.tags.team"] == "a"
        assert "maxim.session.tags.odd" not in attributes and "session.name" not in attributes
    assert "Ignoring" in caplog.text and "baggage entry" in caplog.text
    assert len(caplog.records) == 1  # the same baggage is read once, not once per span
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_baggage_session_id_without_text_is_refused_once_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    provider = TracerProvider()
    provider.add_span_processor(otel_maxim.SessionBaggageProcessor())
    ctx = baggage.set_baggage("session.id", _NoText(), context.Context())
    with caplog.at_level(logging.WARNING, logger="otel_maxim"):
        spans = [provider.get_tracer("t").start_span("s", context=ctx) for _ in range(3)]
    assert all("session.id" not in (span.attributes or {}) for span in spans)
    assert [r.getMessage() for r in caplog.records] == [
        "Ignoring the baggage entry 'session.id': its value (_NoText) cannot be made text."
    ]


def test_non_finite_model_parameters_stay_strict_json() -> None:
    sink = ListSink()
    _one_span(
        MaximSpanExporter(sink=sink),
        {"gen_ai.operation.name": "chat", "gen_ai.request.temperature": math.nan, "gen_ai.usage.input_tokens": 3},
        name="chat",
    )
    generation = next(r for r in sink.records() if r.action == "add-generation")
    assert generation.data["modelParameters"] == {"temperature": "NaN"}
    assert isinstance(generation, Record)


@pytest.mark.parametrize(
    "limits",
    [SpanLimits(), SpanLimits(max_span_attributes=3), SpanLimits(max_span_attribute_length=4)],
    ids=["default-limits", "no-room-left", "value-length-limit"],
)
@pytest.mark.parametrize(
    "own",
    [{"a": "first", "b": "second"}, {"session.name": "own name", "a": "first"}, {"session.id": "", "a": "first"}],
    ids=["other-keys", "own-session-name", "empty-session-id"],
)
def test_stamping_leaves_what_set_attributes_would(limits: SpanLimits, own: dict[str, str]) -> None:
    """Straight into the span's dict or through the SDK's checks, the span ends up with the same
    attributes, in the same order (which decides what a full span evicts first), and the same dropped count."""
    ctx = baggage.set_baggage("session.id", "s-42", context.Context())
    ctx = baggage.set_baggage("session.name", "Support chat", ctx)
    stamping = TracerProvider(span_limits=limits)
    stamping.add_span_processor(otel_maxim.SessionBaggageProcessor())
    stamped = stamping.get_tracer("t").start_span("s", context=ctx, attributes=own)
    expected = TracerProvider(span_limits=limits).get_tracer("t").start_span("s", context=ctx, attributes=own)
    expected.set_attributes({"session.id": "s-42", "session.name": "Support chat"})
    assert list((stamped.attributes or {}).items()) == list((expected.attributes or {}).items())
    assert stamped.dropped_attributes == expected.dropped_attributes
    assert "session.id" in (stamped.attributes or {})


def _with_attribute_limit(count: int) -> tuple[ListSink, TracerProvider]:
    """A provider whose spans keep at most ``count`` attributes, through the Maxim processor into the sink."""
    sink = ListSink()
    provider = TracerProvider(span_limits=SpanLimits(max_span_attributes=count))
    provider.add_span_processor(otel_maxim.MaximSpanProcessor(MaximSpanExporter(sink=sink)))
    return sink, provider


def test_attribute_limits_that_leave_no_room_keep_the_session_and_never_show_a_marker_as_a_trace(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT=0: the spans get their session back as they end; the end
    marker loses what names its session, so it ends nothing, says why, and is not shown as a trace."""
    sink, provider = _with_attribute_limit(0)
    with (
        caplog.at_level(logging.WARNING, logger="otel_maxim"),
        otel_maxim.session("s-1", tracer_provider=provider) as s,
    ):
        with s.trace("turn"):
            pass
        s.end()
    provider.shutdown()
    records = sink.records()
    (trace_create,) = [r for r in records if r.entity == "trace" and r.action == "create"]
    assert trace_create.data["sessionId"] == "s-1" and trace_create.data["name"] == "turn"
    assert not [r for r in records if r.entity == "session" and r.action == "end"]
    assert "Ignoring a session-end marker with no session.id" in caplog.text
    assert "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT" in caplog.text


@pytest.mark.parametrize(("count", "inside"), [(1, False), (2, True), (3, True)])
def test_an_end_marker_keeps_its_session_id_under_a_low_attribute_count_limit(
    count: int, inside: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """The SDK evicts a span's oldest attributes first: the marker writes session.id last, so a limit that
    leaves it one attribute still ends the session (the flag lost, it is a marker by its name); ended in
    a trace with a limit of 2, what is lost is the wait for that trace, which is said."""
    sink, provider = _with_attribute_limit(count)
    with (
        caplog.at_level(logging.WARNING, logger="otel_maxim"),
        otel_maxim.session("s-1", tracer_provider=provider) as s,
    ):
        with s.trace("turn"):
            if inside:
                s.end()
        if not inside:
            s.end()
    provider.shutdown()
    records = sink.records()
    assert [r.id for r in records if r.entity == "session" and r.action == "end"] == ["s-1"]
    assert [r.data["name"] for r in records if r.entity == "trace" and r.action == "create"] == ["turn"]
    assert "Ignoring a session-end marker" not in caplog.text
    assert ("lost 1 of its attributes to the span attribute count limit" in caplog.text) is (count == 2)


@pytest.mark.parametrize("processor", ["maxim", "exporter-only"])
def test_a_value_length_limit_shorter_than_the_session_ids_does_not_merge_sessions(processor: str) -> None:
    """OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT=8 would cut "conversation-1" and "conversation-2" alike: the
    ids stay whole on the spans of Session.trace, of the baggage and on the end markers (their
    after_trace too), while other values are cut as the limit says."""
    sink = ListSink()
    exporter = MaximSpanExporter(sink=sink)
    provider = TracerProvider(span_limits=SpanLimits(max_span_attribute_length=8))
    if processor == "maxim":
        provider.add_span_processor(MaximSpanProcessor(exporter))
    else:  # no stamping from baggage: only what Session.trace and end_session write themselves
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("t")
    for n in (1, 2):
        with otel_maxim.session(f"conversation-{n}", tracer_provider=provider) as s:
            with s.trace("turn"), tracer.start_as_current_span("step", attributes={"note": "a long value"}):
                pass
            with tracer.start_as_current_span(f"baggage-only-{n}"), tracer.start_as_current_span("goodbye"):
                s.end()
    provider.shutdown()
    records = sink.records()
    created = [r for r in records if r.entity == "trace" and r.action == "create"]
    creates = {r.data["name"]: r.data.get("sessionId") for r in created}
    turns = [r.data["sessionId"] for r in created if r.data["name"] == "turn"]
    assert turns == ["conversation-1", "conversation-2"]
    if processor == "maxim":
        assert creates["baggage-only-1"] == "conversation-1" and creates["baggage-only-2"] == "conversation-2"
    ends = [r.id for r in records if r.entity == "session" and r.action == "end"]
    assert ends == ["conversation-1", "conversation-2"]
    # Each end waited for its goodbye trace: its whole after_trace was read (cut, it would be ignored).
    order = [(r.entity, r.action, r.id if r.entity == "session" else r.data.get("name")) for r in records]
    for n in (1, 2):
        goodbye = order.index(("trace", "create", f"baggage-only-{n}"))
        assert order.index(("session", "end", f"conversation-{n}")) > goodbye
    step = next(r for r in records if r.action == "update" and "metadata" in r.data and "note" in r.data["metadata"])
    assert step.data["metadata"]["note"] == "a long v"  # the limit still cuts what is not an id


@pytest.mark.parametrize("prefix", ["support-chat-000042", "x" * 300], ids=["short", "past-256"])
def test_a_value_length_limit_shorter_than_chosen_trace_ids_does_not_merge_traces(prefix: str) -> None:
    """OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT=12 cut Session.trace(id=...) too: "support-chat-000042-turn-1"
    and "...-turn-2" became one trace "support-chat".  Chosen ids stay whole at any length (Maxim gets
    them mapped: past 128 characters, hashed), while other values are cut as the limit says."""
    sink = ListSink()
    provider = TracerProvider(span_limits=SpanLimits(max_span_attribute_length=12))
    provider.add_span_processor(MaximSpanProcessor(MaximSpanExporter(sink=sink)))
    session = otel_maxim.session("support-chat-000042", tracer_provider=provider)
    for n in (1, 2):
        with session.trace(f"turn-{n}", id=f"{prefix}-turn-{n}", attributes={"note": "a longer value"}):
            pass
    provider.shutdown()
    created = [r for r in sink.records() if r.entity == "trace" and r.action == "create"]
    assert [r.id for r in created] == [maxim_id(f"{prefix}-turn-{n}") for n in (1, 2)]
    assert [r.data["sessionId"] for r in created] == ["support-chat-000042"] * 2
    notes = [r.data["metadata"]["note"] for r in sink.records() if r.action == "update" and "metadata" in r.data]
    assert notes == ["a longer val"] * 2  # the limit still cuts what is not an id


@pytest.mark.parametrize("public_api_only", [False, True], ids=["private-reads", "public-api-only"])
def test_a_change_of_baggage_is_seen_and_the_same_baggage_is_checked_once(
    monkeypatch: pytest.MonkeyPatch, public_api_only: bool
) -> None:
    """The stamper reuses what the previous span's baggage gave; a different baggage is read afresh."""
    if public_api_only:  # as under an API and SDK without the private key and attribute layout it reads
        monkeypatch.setattr(otel_maxim.processor, "_BAGGAGE_KEY", None)
        monkeypatch.setattr(otel_maxim.processor, "BoundedAttributes", type("Other", (), {}))
    checked: list[str] = []

    def allow(session_id: str) -> bool:
        checked.append(session_id)
        return session_id != "refused"

    provider = TracerProvider()
    provider.add_span_processor(otel_maxim.SessionBaggageProcessor(session_filter=allow))
    tracer = provider.get_tracer("t")
    a = baggage.set_baggage("session.name", "A", baggage.set_baggage("session.id", "a", context.Context()))
    b = baggage.set_baggage("session.id", "b", context.Context())
    refused = baggage.set_baggage("session.id", "refused", context.Context())
    contexts = [a, a, b, refused, refused, a, context.Context(), b]
    spans = [tracer.start_span("s", context=ctx) for ctx in contexts]
    stamped = [
        (dict(span.attributes or {}).get("session.id"), dict(span.attributes or {}).get("session.name"))
        for span in spans
    ]
    assert stamped == [
        ("a", "A"),
        ("a", "A"),
        ("b", None),
        (None, None),
        (None, None),
        ("a", "A"),
        (None, None),
        ("b", None),
    ]
    # Once per change of baggage with the key (repeats reuse the answer); the public way checks every span.
    assert checked == (
        ["a", "a", "b", "refused", "refused", "a", "b"] if public_api_only else ["a", "b", "refused", "a", "b"]
    )
    explicit = tracer.start_span("s", context=a, attributes={"session.id": "explicit"})
    assert (explicit.attributes or {})["session.id"] == "explicit"  # an explicit session.id still wins
    assert "session.name" not in (explicit.attributes or {})


@pytest.mark.parametrize(
    ("fast_json", "variable", "compact"),
    [(None, None, True), (None, "false", False), (False, None, False), (True, "false", True)],
    ids=["default-with-orjson", "variable-false", "argument-false", "argument-wins"],
)
def test_the_json_style_is_chosen_by_argument_then_variable_then_orjson(
    monkeypatch: pytest.MonkeyPatch, fast_json: bool | None, variable: str | None, compact: bool
) -> None:
    """orjson is a test dependency, so the default here is the compact style."""
    if variable is not None:
        monkeypatch.setenv("MAXIM_FAST_JSON", variable)
    sink = ListSink()
    _one_span(MaximSpanExporter(sink=sink, fast_json=fast_json), {"a": "b"})
    line = next(line for line in sink.lines if line.startswith("trace{") and ",action=create," in line)
    assert ('"name":"root"' in line) is compact
    assert ('"name": "root"' in line) is not compact


class _Level(enum.Enum):
    HIGH = "high"


@pytest.mark.parametrize("fast_json", [True, False])
def test_what_a_redact_callback_adds_is_written_by_the_standard_library(fast_json: bool) -> None:
    """A redact callback may add any object; orjson would write an enum as its value, the standard library as str()."""

    def redact(record: Record) -> Record:
        return record._replace(data={**record.data, "level": _Level.HIGH}) if record.entity == "trace" else record

    sink = ListSink()
    _one_span(MaximSpanExporter(sink=sink, fast_json=fast_json, redact=redact), {"a": "b"})
    creates = [line for line in sink.lines if line.startswith("trace{") and ",action=create," in line]
    assert len(creates) == 1
    assert ('"level":"_Level.HIGH"' if fast_json else '"level": "_Level.HIGH"') in creates[0]


def test_a_redact_callback_returning_something_else_costs_only_that_record(caplog: pytest.LogCaptureFixture) -> None:
    def redact(record: Record) -> Record | None:
        return {"not": "a record"} if record.entity == "trace" and record.action == "end" else record  # type: ignore[return-value]

    sink = ListSink()
    with caplog.at_level(logging.ERROR, logger="otel_maxim"):
        _one_span(MaximSpanExporter(sink=sink, redact=redact), {"a": "b"})
    actions = [(r.entity, r.action) for r in sink.records()]
    assert ("trace", "create") in actions and ("span", "end") in actions
    assert ("trace", "end") not in actions
    assert "returned a dict, not a Record or None" in caplog.text


class _StuckExporter(MaximSpanExporter):
    """An exporter whose export waits until released (a sink blocked on a pipe nobody reads)."""

    def __init__(self) -> None:
        super().__init__(sink=ListSink())
        self.release = threading.Event()
        self.entered = threading.Event()

    def export(self, spans):  # type: ignore[no-untyped-def]
        self.entered.set()
        self.release.wait(30)
        return super().export(spans)


def test_the_processor_force_flush_keeps_its_deadline_while_an_export_is_stuck(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The SDK's own force_flush waits for the export lock without a limit; ours gives up at the deadline."""
    exporter = _StuckExporter()
    processor = MaximSpanProcessor(exporter, schedule_delay_millis=3_600_000)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    provider.get_tracer("t").start_span("s").end()
    with caplog.at_level(logging.WARNING, logger="otel_maxim"):
        flushed = processor.force_flush(100)
        assert exporter.entered.is_set() and not exporter.release.is_set()  # still stuck, and we are back
        again = processor.force_flush(100)  # waits for the next round, which the same thread runs
        # At most one: with SDK 1.27 the round ends at its own timeout (its force_flush waits on the
        # worker, not on the export lock), so by now that thread may be gone.
        assert [t.name for t in threading.enumerate()].count("OtelMaximForceFlush") <= 1
    assert flushed is False and again is False
    assert "force_flush: the queued spans were not exported within 100 ms" in caplog.text
    exporter.release.set()
    assert processor.force_flush(10_000) is True
    provider.shutdown()
    assert [r.data["name"] for r in exporter.sink.records() if r.action == "create"] == ["s"]  # type: ignore[attr-defined]


def test_a_flush_thread_that_cannot_start_fails_that_flush_only(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A thread limit, or Python >= 3.12 at interpreter shutdown, refuses the flush thread: that call says
    False at once, with a warning, and keeps the spans queued; the next call, with threads again, flushes
    (the never-started thread was kept, and every later call waited its whole timeout for it)."""
    sink = ListSink()
    processor = MaximSpanProcessor(MaximSpanExporter(sink=sink), schedule_delay_millis=3_600_000)
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(processor)
    start = threading.Thread.start

    def refuse(thread: threading.Thread) -> None:
        if thread.name == "OtelMaximForceFlush":
            raise RuntimeError("can't create new thread at interpreter shutdown")
        start(thread)

    provider.get_tracer("t").start_span("first").end()
    monkeypatch.setattr(threading.Thread, "start", refuse)
    with caplog.at_level(logging.WARNING, logger="otel_maxim"):
        began = time.monotonic()
        assert processor.force_flush(5_000) is False
        assert time.monotonic() - began < 1
    assert "force_flush could not start its thread (can't create new thread" in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not [r for r in sink.records() if r.action == "create"]  # still queued, not lost
    monkeypatch.setattr(threading.Thread, "start", start)
    provider.get_tracer("t").start_span("second").end()
    began = time.monotonic()
    assert processor.force_flush(5_000) is True
    assert time.monotonic() - began < 1
    assert [r.data["name"] for r in sink.records() if r.action == "create"] == ["first", "second"]
    provider.shutdown()


def test_the_processor_shutdown_never_raises(caplog: pytest.LogCaptureFixture) -> None:
    class Failing(MaximSpanExporter):
        def shutdown(self, timeout_millis: float | None = None) -> None:  # type: ignore[override]
            raise RuntimeError("exporter shutdown failed")

    processor = MaximSpanProcessor(Failing(sink=ListSink()))
    with caplog.at_level(logging.ERROR, logger="otel_maxim"):
        processor.shutdown()
    assert "Could not shut the Maxim span processor down" in caplog.text
    assert "exporter shutdown failed" in caplog.text


@pytest.mark.parametrize(
    "variables",
    [
        {"OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "4096"},  # larger than the queue
        {"OTEL_BSP_MAX_QUEUE_SIZE": "0"},
        {"OTEL_BSP_SCHEDULE_DELAY": "0"},
    ],
)
def test_otel_bsp_variables_the_sdk_refuses_give_its_defaults(
    variables: dict[str, str], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    batches: list[int] = []

    class Counting(MaximSpanExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            batches.append(len(spans))
            return super().export(spans)

    with caplog.at_level(logging.WARNING, logger="otel_maxim"):
        processor = MaximSpanProcessor(Counting(sink=ListSink()))
    assert "The OTEL_BSP_* variables give settings the SDK refuses" in caplog.text
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(processor)
    for _ in range(600):
        provider.get_tracer("t").start_span("s").end()
    assert processor.force_flush(10_000)
    provider.shutdown()
    assert sum(batches) == 600
    assert max(batches) == 512  # the SDK's default batch, not one cut by what was refused
    with pytest.raises(ValueError, match="max_export_batch_size"):  # explicit arguments are the caller's
        MaximSpanProcessor(
            MaximSpanExporter(sink=ListSink()),
            max_queue_size=10,
            schedule_delay_millis=10,
            max_export_batch_size=20,
            export_timeout_millis=10,
        )


def test_an_otel_bsp_schedule_delay_too_long_to_wait_gives_the_default(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The SDK takes it, and its batch worker dies on its first wait: every span after is dropped."""
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "99999999999999")
    sink = ListSink()
    with caplog.at_level(logging.WARNING, logger="otel_maxim"):
        processor = MaximSpanProcessor(MaximSpanExporter(sink=sink))
    assert "Ignoring OTEL_BSP_SCHEDULE_DELAY='99999999999999': longer than a thread can wait" in caplog.text
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(processor)
    for _ in range(10):
        provider.get_tracer("t").start_span("s").end()
    provider.shutdown()  # drained by the worker
    assert len([r for r in sink.records() if r.action == "create"]) == 10


@pytest.mark.parametrize("delay", [1e14, math.inf, math.nan])
def test_a_schedule_delay_argument_too_long_to_wait_raises(delay: float) -> None:
    with pytest.raises(ValueError, match="schedule_delay_millis must be at most"):
        MaximSpanProcessor(MaximSpanExporter(sink=ListSink()), schedule_delay_millis=delay)


@pytest.mark.parametrize("arguments", [{"max_queue_size": -1}, {"max_export_batch_size": 5000}])
def test_a_bad_processor_argument_raises_without_blaming_the_variables(
    arguments: dict[str, int], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    for name in ("OTEL_BSP_MAX_QUEUE_SIZE", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "OTEL_BSP_SCHEDULE_DELAY"):
        monkeypatch.delenv(name, raising=False)
    with caplog.at_level(logging.WARNING, logger="otel_maxim"), pytest.raises(ValueError):
        MaximSpanProcessor(MaximSpanExporter(sink=ListSink()), **arguments)  # type: ignore[arg-type]
    assert "OTEL_BSP" not in caplog.text


def test_the_processor_force_flush_after_shutdown_says_nothing_was_flushed() -> None:
    processor = MaximSpanProcessor(MaximSpanExporter(sink=ListSink()))
    assert processor.force_flush(1_000) is True
    processor.shutdown()
    assert processor.force_flush(1_000) is False


def test_concurrent_force_flush_calls_each_get_their_own_answer() -> None:
    """Each call waits for a flush that started after it: True, with the span ended before it exported."""
    sink = ListSink()
    processor = MaximSpanProcessor(MaximSpanExporter(sink=sink), schedule_delay_millis=3_600_000)
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(processor)
    failures: list[str] = []

    def work(worker: int) -> None:
        for turn in range(25):
            name = f"w{worker}-{turn}"
            provider.get_tracer("t").start_span(name).end()
            if not processor.force_flush(5_000):
                failures.append(f"{name}: False")
            elif name not in {r.data.get("name") for r in sink.records() if r.action == "create"}:
                failures.append(f"{name}: not exported")

    threads = [threading.Thread(target=work, args=(worker,)) for worker in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    provider.shutdown()
    assert failures == []


@pytest.mark.parametrize("timeout", ["100", float("nan"), object()], ids=["str", "nan", "object"])
def test_a_force_flush_timeout_that_is_not_a_number_gives_the_default(
    timeout: object, caplog: pytest.LogCaptureFixture
) -> None:
    processor = MaximSpanProcessor(MaximSpanExporter(sink=ListSink()))
    with caplog.at_level(logging.WARNING, logger="otel_maxim"):
        flushed = processor.force_flush(timeout)  # type: ignore[arg-type]
    processor.shutdown()
    assert flushed is True
    assert "timeout_millis=" in caplog.text and "is not a number; using 30000 ms" in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_repeated_bad_force_flush_calls_log_once(caplog: pytest.LogCaptureFixture) -> None:
    processor = MaximSpanProcessor(MaximSpanExporter(sink=ListSink()))
    with caplog.at_level(logging.WARNING, logger="otel_maxim"):
        for _ in range(50):
            processor.force_flush(math.nan)
    processor.shutdown()
    assert len(caplog.records) == 1


def test_spans_and_session_ends_after_shutdown_are_dropped_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    sink = ListSink()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(MaximSpanProcessor(MaximSpanExporter(sink=sink)))
    provider.shutdown()
    with caplog.at_level(logging.WARNING, logger="otel_maxim"):
        for _ in range(3):
            provider.get_tracer("t").start_span("late").end()
            otel_maxim.end_session("conv-9", tracer_provider=provider)
    assert sink.lines == []
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("otel_maxim")]  # SDK 1.27 warns too
    assert messages == [
        "Spans ended after the Maxim span processor was shut down are dropped ('late').",
        "The end marker of session conv-9 came after the Maxim span processor was shut down: dropped, "
        "the session is not ended.",
    ]  # once each: rate-limited


class _ClosingSink(ListSink):
    """A sink that refuses lines once closed, as the real ones do."""

    def __init__(self) -> None:
        super().__init__()
        self.closed = threading.Event()

    def write(self, lines: Sequence[str]) -> bool:
        return False if self.closed.is_set() else super().write(lines)

    def close(self, timeout: float) -> None:
        self.closed.set()


def test_shutdown_from_a_redact_callback_that_cannot_start_its_thread_is_left_to_the_next_call(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Python 3.12+ refuses new threads at interpreter shutdown: the RuntimeError reached the callback."""
    start = threading.Thread.start

    def refuse(thread: threading.Thread) -> None:
        if thread.name == "OtelMaximShutdown":
            raise RuntimeError("can't create new thread at interpreter shutdown")
        start(thread)

    monkeypatch.setattr(threading.Thread, "start", refuse)
    raised: list[BaseException] = []

    def redact(record: Record) -> Record:
        if record.entity == "trace" and record.action == "create" and not raised:
            try:
                processor.shutdown()
                raised.append(StopIteration())  # a marker: the call returned
            except BaseException as exc:  # noqa: BLE001 - what the callback would have met
                raised.append(exc)
        return record

    sink = ListSink()
    processor = MaximSpanProcessor(MaximSpanExporter(sink=sink, redact=redact), schedule_delay_millis=3_600_000)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("t")
    with caplog.at_level(logging.WARNING, logger="otel_maxim"):
        tracer.start_span("turn").end()
        processor.force_flush(60_000)
        tracer.start_span("after").end()  # still taken: nothing was shut down
        provider.shutdown()  # outside the export: does it all
    assert [type(exc) for exc in raised] == [StopIteration]
    assert "could not start its thread" in caplog.text
    assert [r.data["name"] for r in sink.records() if r.action == "create"] == ["turn", "after"]


@pytest.mark.parametrize("who", ["exporter", "processor", "provider"])
def test_shutdown_from_a_redact_callback_returns_at_once_and_loses_nothing(
    who: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A callback run by the export itself that shuts down: the SDK's shutdown would wait 30 s for the
    export this very thread is in, and closing the sink under the export would lose its records.
    The call returns, the export finishes writing, and the shutdown completes after it."""
    seen: dict[str, bool] = {}
    sink = _ClosingSink()

    def redact(record: Record) -> Record:
        if record.entity == "trace" and record.action == "create" and "called" not in seen:
            seen["called"] = True
            {"exporter": exporter, "processor": processor, "provider": provider}[who].shutdown()
            seen["sink open after the call"] = not sink.closed.is_set()
        return record

    exporter = MaximSpanExporter(sink=sink, redact=redact)
    processor = MaximSpanProcessor(exporter, schedule_delay_millis=3_600_000)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("turn"):
        tracer.start_span("step").end()
    with caplog.at_level(logging.WARNING, logger="otel_maxim"):
        processor.force_flush(60_000)  # runs the export, and so the callback
        provider.shutdown()  # waits for the shutdown the callback started (a no-op for the exporter's own)
    assert seen == {"called": True, "sink open after the call": True}
    assert sink.closed.is_set()  # the shutdown did complete
    actions = [(r.entity, r.action) for r in sink.records()]
    assert actions == [
        ("trace", "create"),
        ("trace", "add-span"),
        ("span", "end"),
        ("trace", "end"),
    ]
    assert "shutdown was called from inside" in caplog.text


@pytest.mark.parametrize("who", ["processor", "provider"])
def test_shutdown_from_a_redact_callback_on_the_trace_reaper_returns_at_once_and_loses_nothing(who: str) -> None:
    """The callback also runs on the exporter's reaper (a trace sent after ``trace_timeout``), which holds
    the lock the processor's exports wait for: a shutdown from there would wait for this very thread
    (the SDK's whole 30 s), and the spans queued meanwhile were dropped."""
    seen: dict[str, object] = {}
    called_back = threading.Event()
    sink = _ClosingSink()

    def redact(record: Record) -> Record:
        if record.entity == "trace" and record.action == "create" and not called_back.is_set():
            seen["thread"] = threading.current_thread().name
            {"processor": processor, "provider": provider}[who].shutdown()
            seen["traces delivered when the call returned"] = _created_traces(sink)
            called_back.set()
        return record

    exporter = MaximSpanExporter(sink=sink, redact=redact, trace_timeout=0.2)
    processor = MaximSpanProcessor(exporter, schedule_delay_millis=3_600_000)
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("t")
    loop = tracer.start_span("worker-loop")  # a root that never ends: its step waits for the reaper
    with trace.use_span(loop):
        tracer.start_span("step").end()
    processor.force_flush(60_000)  # "step" is held by the exporter now
    for i in range(3):  # complete traces that wait in the processor's queue
        tracer.start_span(f"request-{i}").end()
    assert called_back.wait(60)
    provider.shutdown()  # waits for the shutdown the callback started
    assert seen == {"thread": "OtelMaximTraceReaper", "traces delivered when the call returned": []}
    assert sink.closed.is_set()
    assert _created_traces(sink) == ["step", "request-0", "request-1", "request-2"]


def _created_traces(sink: ListSink) -> list[str]:
    return [r.data["name"] for r in sink.records() if r.entity == "trace" and r.action == "create"]


def test_a_deferred_shutdown_is_completed_by_the_export_that_deferred_it_not_by_another_thread() -> None:
    """While an export that deferred a shutdown still runs, another thread's flush must not complete
    that shutdown (it would close the sink under the export, losing its records), and another
    thread's shutdown waits for it, returning once the records are written and the sink closed."""
    sink = _ClosingSink()
    deferred, others_done = threading.Event(), threading.Event()
    seen: dict[str, object] = {}

    def redact(record: Record) -> Record:
        if record.entity == "trace" and record.action == "create" and not deferred.is_set():
            exporter.shutdown()  # inside the export: deferred
            deferred.set()
            others_done.wait(30)  # the export goes on only once the other threads have had their turn
        return record

    def flush_meanwhile() -> None:
        deferred.wait(30)
        seen["flush"] = exporter.force_flush(timeout_millis=200)  # the export holds the lock: False
        seen["sink closed after the flush"] = sink.closed.is_set()
        others_done.set()

    def shut_meanwhile() -> None:
        deferred.wait(30)
        exporter.shutdown(timeout_millis=30_000)
        seen["records when the shutdown returned"] = len(sink.lines)
        seen["sink closed when the shutdown returned"] = sink.closed.is_set()

    exporter = MaximSpanExporter(sink=sink, redact=redact)
    provider = TracerProvider(shutdown_on_exit=False)
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    with provider.get_tracer("t").start_as_current_span("turn"):
        provider.get_tracer("t").start_span("step").end()
    others = [threading.Thread(target=flush_meanwhile), threading.Thread(target=shut_meanwhile)]
    for thread in others:
        thread.start()
    assert exporter.export(memory.get_finished_spans()) is SpanExportResult.SUCCESS
    for thread in others:
        thread.join(30)
    assert seen == {
        "flush": False,
        "sink closed after the flush": False,
        "records when the shutdown returned": 4,
        "sink closed when the shutdown returned": True,
    }
    assert [(r.entity, r.action) for r in sink.records()] == [
        ("trace", "create"),
        ("trace", "add-span"),
        ("span", "end"),
        ("trace", "end"),
    ]


def test_force_flush_from_a_redact_callback_says_false_at_once(caplog: pytest.LogCaptureFixture) -> None:
    """Waiting for a flush round from inside the export that round waits for would stall until the deadline."""
    answers: list[bool] = []
    sink = ListSink()

    def redact(record: Record) -> Record:
        if not answers:
            answers.extend([processor.force_flush(600_000), exporter.force_flush(600_000)])
        return record

    exporter = MaximSpanExporter(sink=sink, redact=redact)
    processor = MaximSpanProcessor(exporter, schedule_delay_millis=3_600_000)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    provider.get_tracer("t").start_span("turn").end()
    with caplog.at_level(logging.WARNING, logger="otel_maxim"):
        assert processor.force_flush(600_000) is True
    assert answers == [False, False]
    assert [(r.entity, r.action) for r in sink.records()] == [("trace", "create"), ("trace", "end")]
    assert "force_flush was called from inside the processor's own export" in caplog.text
    assert "force_flush was called from inside this exporter's own work" in caplog.text
    provider.shutdown()


def test_the_processor_hands_the_exporter_what_is_left_of_the_sdks_shutdown_budget() -> None:
    """The SDK passes ``timeout_millis`` to an exporter whose shutdown takes it; the processor's wrapper
    around the exporter must pass it on (else a stuck export would make shutdown take 30 s twice)."""
    got: list[object] = []

    class Recording(MaximSpanExporter):
        def shutdown(self, timeout_millis: float | None = None) -> None:  # type: ignore[override]
            got.append(timeout_millis)
            super().shutdown(30_000 if timeout_millis is None else timeout_millis)

    processor = MaximSpanProcessor(Recording(sink=ListSink()))
    processor.shutdown()
    assert len(got) == 1 and isinstance(got[0], (int, float)) and 0 < got[0] <= 30_000
    copied = copy.copy(processor._exporting)  # copy makes the wrapper without __init__: no endless lookup
    assert copied.export.__self__ is copied
