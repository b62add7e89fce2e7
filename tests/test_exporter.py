"""The exporter's assembly: holding traces, session ends, odd traces, limits and configuration."""

from __future__ import annotations

import functools
import gc
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import context, propagate, trace
from opentelemetry.sdk.trace import Event, ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanContext, Status, StatusCode, TraceFlags

import otel_maxim
import otel_maxim.mapping._span
import otel_maxim.mapping._trace
from otel_maxim import MaximSpanExporter
from otel_maxim.assembly import held_size
from otel_maxim.ids import maxim_id
from otel_maxim.mapping import Options, TraceState, map_trace
from otel_maxim.mapping._common import iso
from otel_maxim.records import Record, parse
from otel_maxim.sinks import FileSink
from tests.record_checks import ListSink, assert_parent_first


def _record_spans(build) -> list[ReadableSpan]:  # type: ignore[no-untyped-def]
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(otel_maxim.SessionBaggageProcessor())
    provider.add_span_processor(SimpleSpanProcessor(memory))
    build(provider, provider.get_tracer("t"))
    provider.shutdown()
    return list(memory.get_finished_spans())


def test_session_end_waits_for_a_trace_of_that_session_still_held() -> None:
    tracer_spans: dict[str, trace.Span] = {}

    def build(provider: TracerProvider, tracer: trace.Tracer) -> None:
        with otel_maxim.session("s1"):
            root = tracer.start_span("turn")
            with trace.use_span(root):
                with tracer.start_as_current_span("child"):
                    pass
            tracer_spans["root"] = root
        otel_maxim.end_session("s1", tracer_provider=provider)
        root.end()  # the root ends after the marker was emitted

    child, marker, root = _record_spans(build)
    sink = ListSink()
    exporter = MaximSpanExporter(sink=sink)
    exporter.export([child, marker])  # the marker arrives while the trace is held
    assert not [r for r in sink.records() if r.action == "end" and r.entity == "session"]
    exporter.export([root])
    exporter.shutdown()
    records = sink.records()
    assert_parent_first(records)
    assert [(r.entity, r.action) for r in records][-3:] == [("span", "end"), ("trace", "end"), ("session", "end")]


def test_a_waiting_session_end_sees_the_session_of_spans_that_arrive_later() -> None:
    """A held trace whose first spans carry no session.id becomes one of the session's when a later span does."""

    def build(provider: TracerProvider, tracer: trace.Tracer) -> None:
        late_root = tracer.start_span("late-turn", attributes={"session.id": "s1"})
        parent = trace.set_span_in_context(late_root)
        tracer.start_span("no-session", context=parent).end()
        tracer.start_span("with-session", context=parent, attributes={"session.id": "s1"}).end()
        other_root = tracer.start_span("other-turn", attributes={"session.id": "s1"})
        other_parent = trace.set_span_in_context(other_root)
        tracer.start_span("other-child", context=other_parent, attributes={"session.id": "s1"}).end()
        otel_maxim.end_session("s1", tracer_provider=provider)
        other_root.end()
        late_root.end()

    spans = {span.name: span for span in _record_spans(build)}
    marker = next(
        span
        for name, span in spans.items()
        if name not in {"late-turn", "no-session", "with-session", "other-turn", "other-child"}
    )
    sink = ListSink()
    exporter = MaximSpanExporter(sink=sink)
    exporter.export([spans["no-session"], spans["other-child"], marker])  # s1 waits for "other-turn"
    exporter.export([spans["with-session"], spans["other-turn"]])  # "other-turn" goes; the held trace is s1's now
    assert not [r for r in sink.records() if r.entity == "session" and r.action == "end"]
    exporter.export([spans["late-turn"]])
    exporter.shutdown()
    records = sink.records()
    assert_parent_first(records)
    late_trace = f"{spans['late-turn'].context.trace_id:032x}"
    assert [(r.entity, r.id, r.action) for r in records][-2:] == [
        ("trace", late_trace, "end"),
        ("session", "s1", "end"),
    ]


def test_markers_twice_and_for_unseen_sessions(caplog: pytest.LogCaptureFixture) -> None:
    def build(provider: TracerProvider, tracer: trace.Tracer) -> None:
        otel_maxim.end_session("never-seen", tracer_provider=provider)
        otel_maxim.end_session("never-seen", tracer_provider=provider)

    sink = ListSink()
    exporter = MaximSpanExporter(sink=sink)
    with caplog.at_level(logging.INFO, logger="otel_maxim"):
        exporter.export(_record_spans(build))
    exporter.shutdown()
    assert [(r.entity, r.id, r.action) for r in sink.records()] == [
        ("session", "never-seen", "create"),
        ("session", "never-seen", "end"),
    ]
    assert "second end marker" in caplog.text and "ended before any of its traces" in caplog.text


def _two_turns_each_ended(provider: TracerProvider, tracer: trace.Tracer) -> None:
    with otel_maxim.session("s1", tracer_provider=provider) as session:
        with session.trace("one"):
            pass
        session.end()
        with session.trace("two"):  # the user comes back; the app ends the session again, from the request
            session.end()


def test_a_session_that_goes_on_after_its_end_is_ended_again() -> None:
    """maxim-py sends an end for every session.end(): the second end comes after the trace it was called in,
    even when its marker is exported before that trace (the request still running), so that the session's
    evaluations see it."""
    one, first_end, second_end, two = _record_spans(_two_turns_each_ended)
    assert (first_end.name, second_end.name) == ("maxim.session.end", "maxim.session.end")
    sink = ListSink()
    exporter = MaximSpanExporter(sink=sink)
    for batch in ([one, first_end], [second_end], [two]):
        exporter.export(batch)
    exporter.shutdown()
    records = sink.records()
    assert_parent_first(records)
    summary = [(r.entity, r.action) for r in records if r.entity == "session" or r.action in ("create", "end")]
    assert summary == [
        ("session", "create"),
        ("trace", "create"),
        ("trace", "end"),
        ("session", "end"),
        ("trace", "create"),
        ("trace", "end"),
        ("session", "end"),
    ]


def test_two_ends_of_a_session_in_one_batch_are_one_end_after_both_traces() -> None:
    one, first_end, second_end, two = _record_spans(_two_turns_each_ended)
    sink = ListSink()
    exporter = MaximSpanExporter(sink=sink)
    exporter.export([one, first_end, two, second_end])
    exporter.shutdown()
    records = sink.records()
    assert_parent_first(records)
    assert [(r.entity, r.action) for r in records if r.entity == "session"] == [
        ("session", "create"),
        ("session", "end"),
    ]
    assert records[-1] == Record("session", "s1", "end", {"endTimestamp": iso(second_end.end_time)})


def test_a_second_end_while_the_first_waits_for_its_trace_keeps_that_wait() -> None:
    """end_session() inside the goodbye request, then again from a thread outside any trace (an idle
    timeout), before the request's trace is sent: one end, after that trace."""
    sink = ListSink()
    exporter = MaximSpanExporter(sink=sink, trace_timeout=30)
    provider = TracerProvider()
    provider.add_span_processor(otel_maxim.SessionBaggageProcessor())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with otel_maxim.session("conv-2"), provider.get_tracer("t").start_as_current_span("goodbye-request"):
        otel_maxim.end_session("conv-2", tracer_provider=provider)
        elsewhere = threading.Thread(
            target=otel_maxim.end_session, args=("conv-2",), kwargs={"tracer_provider": provider}
        )
        elsewhere.start()
        elsewhere.join()
    exporter.shutdown()
    records = sink.records()
    assert_parent_first(records)
    assert [(r.entity, r.action) for r in records][-2:] == [("trace", "end"), ("session", "end")]
    assert sum(1 for r in records if r.entity == "session" and r.action == "end") == 1


def test_an_end_marker_delivered_again_is_not_a_second_end() -> None:
    """An OTLP retry through a Collector and the bridge can deliver the same marker twice: the session's
    evaluations must not run twice. A new end_session() call is a new marker, and ends it again."""

    def build(provider: TracerProvider, tracer: trace.Tracer) -> None:
        with tracer.start_as_current_span("turn", attributes={"session.id": "s1"}):
            pass
        otel_maxim.end_session("s1", tracer_provider=provider)
        otel_maxim.end_session("s1", tracer_provider=provider)

    turn, first, second = _record_spans(build)
    sink = ListSink()
    exporter = MaximSpanExporter(sink=sink)
    for batch in ([turn, first], [first], [second], [second]):
        exporter.export(batch)
    exporter.shutdown()
    assert [r.action for r in sink.records() if r.entity == "session"] == ["create", "end", "end"]


def _held_for_a_short_while() -> tuple[ListSink, TracerProvider]:
    """A provider whose spans reach an exporter (into the sink) that holds a trace for 0.2 s at most."""
    sink = ListSink()
    provider = TracerProvider()
    provider.add_span_processor(otel_maxim.SessionBaggageProcessor())
    provider.add_span_processor(SimpleSpanProcessor(MaximSpanExporter(sink=sink, trace_timeout=0.2)))
    return sink, provider


def test_a_trace_sent_before_its_root_ends_keeps_the_id_its_session_trace_chose() -> None:
    """The chosen id is on the root, which had not ended: the trace was created under its OTel id, and
    the id the application chose (for feedback, or to find the trace) never reached Maxim."""
    sink, provider = _held_for_a_short_while()
    tracer = provider.get_tracer("t")
    session = otel_maxim.session("slow", tracer_provider=provider)
    with session.trace("turn", id="order 42") as root:
        with tracer.start_as_current_span("step"):
            pass
        deadline = time.monotonic() + 5
        while not sink.lines and time.monotonic() < deadline:
            time.sleep(0.02)  # the reaper sends what arrived, the root still open
        assert sink.lines
    provider.shutdown()
    records = sink.records()
    assert {r.id for r in records if r.entity == "trace"} == {maxim_id("order 42")}
    assert [r.data["name"] for r in records if r.entity == "trace" and r.action == "create"] == ["step"]
    assert ("trace", "update", {"name": "turn"}) in [(r.entity, r.action, r.data) for r in records]
    assert otel_maxim.ids.open_trace_ids.get(root.get_span_context().trace_id) is None  # forgotten at the end


def test_a_trace_whose_root_never_ends_is_sent_after_the_timeout(caplog: pytest.LogCaptureFixture) -> None:
    sink, provider = _held_for_a_short_while()
    tracer = provider.get_tracer("t")
    with otel_maxim.session("slow"):
        root = tracer.start_span("long-running")
        with trace.use_span(root), tracer.start_as_current_span("step"):
            pass
    assert sink.lines == []  # held: the root has not ended
    with caplog.at_level(logging.WARNING, logger="otel_maxim"):
        deadline = time.monotonic() + 5
        while not sink.lines and time.monotonic() < deadline:
            time.sleep(0.02)  # the reaper thread sends it with no further export call
    early = sink.records()
    assert_parent_first(early)
    assert [(r.entity, r.action) for r in early] == [
        ("session", "create"),
        ("trace", "create"),
        ("trace", "add-span"),
        ("span", "end"),
    ]
    assert "before its root ended" in caplog.text and "1 spans" in caplog.text
    root.end()  # the root arrives late: the trace gets its name and its end
    provider.shutdown()
    records = sink.records()
    assert_parent_first(records)
    assert [(r.entity, r.action) for r in records[4:]] == [("trace", "update"), ("trace", "end")]
    assert records[4].data == {"name": "long-running"}


@pytest.mark.parametrize("child_in_session", [True, False], ids=["child-in-session", "only-root-in-session"])
def test_a_late_root_sends_its_input_and_says_when_its_session_came_too_late(
    child_in_session: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """The trace was sent with its child only; the root comes in a later batch with the trace's
    input and a session.  The input is an update; a trace cannot join a session after its create."""

    def build(provider: TracerProvider, tracer: trace.Tracer) -> None:
        root_attributes = {"session.id": "conv-42", "maxim.input": "Where is my order?"}
        with tracer.start_as_current_span("turn", attributes=root_attributes):
            tracer.start_span("child", attributes={"session.id": "conv-42"} if child_in_session else {}).end()

    child, root = _record_spans(build)
    first = map_trace([child], None, Options())
    assert (first.session is not None) is child_in_session
    frozen = first.state.freeze()
    with caplog.at_level(logging.WARNING, logger="otel_maxim"):
        later = map_trace([root], TraceState.thaw(frozen), Options())
    assert [(action, data) for _, _, action, data in later.records[:2]] == [
        ("update", {"name": "turn"}),
        ("update", {"input": "Where is my order?"}),
    ]
    late_session_warned = "which names session conv-42" in caplog.text
    assert late_session_warned is not child_in_session


def test_held_spans_are_capped(caplog: pytest.LogCaptureFixture) -> None:
    def build(provider: TracerProvider, tracer: trace.Tracer) -> None:
        for t in range(3):
            root = tracer.start_span(f"open-{t}")
            with trace.use_span(root):
                for i in range(4):
                    with tracer.start_as_current_span(f"s{t}-{i}"):
                        pass
            # roots never end

    spans = _record_spans(build)
    sink = ListSink()
    exporter = MaximSpanExporter(sink=sink, max_held_spans=5)
    with caplog.at_level(logging.WARNING, logger="otel_maxim"):
        exporter.export(spans)
    # 12 spans held at most 5: the two oldest traces went early, the newest (4 spans) is held.
    assert exporter._assembler.held_spans == 4
    assert "too many spans, traces or bytes held" in caplog.text
    exporter.shutdown()
    records = sink.records()
    assert_parent_first(records)
    assert sum(1 for r in records if r.action == "add-span") == 12


def test_held_spans_are_bounded_in_bytes_as_well(caplog: pytest.LogCaptureFixture) -> None:
    """Few spans with large prompts under roots that stay open: the count bound alone let them grow."""
    prompt = "p" * 100_000

    def build(provider: TracerProvider, tracer: trace.Tracer) -> None:
        for t in range(4):
            root = tracer.start_span(f"open-{t}")
            with trace.use_span(root):
                for i in range(2):
                    with tracer.start_as_current_span(f"s{t}-{i}", attributes={"input.value": prompt}) as span:
                        span.add_event("chunk", {"text": prompt})
            # roots never end

    spans = _record_spans(build)
    sink = ListSink()
    exporter = MaximSpanExporter(sink=sink, max_held_bytes=500_000)  # two traces' worth: 2 x 2 x 200 KB
    with caplog.at_level(logging.WARNING, logger="otel_maxim"):
        for t in range(4):  # a batch per trace: each is held past its batch
            exporter.export([s for s in spans if s.name.startswith(f"s{t}-")])
    # Each span holds its two 100,000-character texts, plus the fixed parts of a span, two attributes
    # and an event, and the short texts: its name, the event's name and the two keys.
    assert held_size(spans[0]) == 200_000 + 2_000 + 2 * 100 + 500 + len("s0-0chunkinput.valuetext")
    # 4 traces of about 405 KB, held at most 500 KB: all but the newest went early, oldest first.
    assert exporter._assembler.held_spans == 2
    assert exporter._assembler.held_bytes == 2 * held_size(spans[0])
    assert "too many spans, traces or bytes held" in caplog.text
    early = [r.data["name"] for r in sink.records() if r.action == "add-span"]
    assert early == ["s0-0", "s0-1", "s1-0", "s1-1", "s2-0", "s2-1"]
    exporter.shutdown()
    assert exporter._assembler.held_bytes == 0
    assert sum(1 for r in sink.records() if r.action == "add-span") == 8


def test_held_size_counts_every_text_a_span_keeps() -> None:
    """Names, status descriptions, event names and links' attributes held as much as attributes do."""
    context = SpanContext(1, 2, is_remote=False, trace_flags=TraceFlags(1))
    bare = held_size(ReadableSpan("", context=context))
    assert bare == 2_000
    assert held_size(ReadableSpan("n" * 1000, context=context)) == bare + 1000
    assert held_size(ReadableSpan("é" * 1000, context=context)) == bare + 4000  # up to 4 bytes a character
    failed = ReadableSpan("", context=context, status=Status(StatusCode.ERROR, "d" * 1000))
    assert held_size(failed) == bare + 1000
    linked = ReadableSpan("", context=context, links=[Link(context, {"k": "v" * 1000})])
    assert held_size(linked) == bare + 500 + 100 + 1 + 1000
    event = ReadableSpan("", context=context, events=[Event("e" * 1000, {"k": ("a" * 10, None, 5)})])
    # The tuple (its header and a reference an item) and the text's object; None and 5 are shared.
    assert held_size(event) == bare + 500 + 1000 + 100 + 1 + 40 + 3 * 8 + 49 + 10


def test_held_size_counts_the_texts_of_nested_attribute_values() -> None:
    """Newer SDKs take mappings and nested sequences as values (``AnyValue``): their texts are held as much."""
    context = SpanContext(1, 2, is_remote=False, trace_flags=TraceFlags(1))
    text = "x" * 100_000
    sizes = {
        label: held_size(ReadableSpan("", context=context, attributes={"payload": value}))
        for label, value in [
            ("flat", text),
            ("mapping", {"content": text}),
            ("nested", [[text]]),
            ("deep", [{"a": [text]}]),
        ]
    }
    assert sizes["flat"] == 2_000 + 100 + len("payload") + 100_000
    # Each container's object and a reference an item (with a dict's entry), and the inner texts' objects.
    assert sizes["mapping"] == sizes["flat"] + 184 + 49 + len("content") + 49
    assert sizes["nested"] == sizes["flat"] + 2 * (40 + 8) + 49
    assert sizes["deep"] == sizes["flat"] + (40 + 8) + 184 + len("a") + (40 + 8) + 49  # "a": a shared object


def test_held_size_counts_every_item_of_a_long_flat_sequence() -> None:
    context = SpanContext(1, 2, is_remote=False, trace_flags=TraceFlags(1))
    many = tuple("xy" for _ in range(200_000))
    size = held_size(ReadableSpan("", context=context, attributes={"k": many}))
    assert size == 2_000 + 100 + 1 + 40 + 200_000 * (8 + 49 + 2)


def _embedding() -> tuple[float, ...]:
    return tuple(i / 7 for i in range(1536))


def _numbers() -> tuple[int, ...]:
    return tuple(range(1_000, 11_000))


def _words() -> tuple[str, ...]:
    return tuple(f"w{i}" for i in range(10_000))


def _documents() -> tuple[dict[str, object], ...]:
    return tuple({"id": f"doc-{i}", "score": i / 3, "rank": 1000 + i} for i in range(2_000))


@pytest.mark.parametrize("make", [_embedding, _numbers, _words, _documents])
def test_held_size_counts_what_the_objects_of_a_sequence_value_take(make: Callable[[], object]) -> None:
    """``max_held_bytes`` bounds real memory: an item of a sequence counted 8 bytes whatever it was, so an
    embedding's 1,536 floats counted 12 KB for the 49 KB they hold, and 10,000 short texts 4x too little."""
    import tracemalloc  # noqa: PLC0415

    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        value = make()
        taken = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    context = SpanContext(1, 2, is_remote=False, trace_flags=TraceFlags(1))
    counted = held_size(ReadableSpan("", context=context, attributes={"k": value})) - 2_000 - 100 - 1
    # A mapping's keys count as objects of their own, as the bridge decodes them; here they are shared literals.
    assert 0.85 * taken <= counted <= (1.6 if make is _documents else 1.1) * taken


def test_held_size_of_a_value_that_refers_to_itself_ends() -> None:
    context = SpanContext(1, 2, is_remote=False, trace_flags=TraceFlags(1))
    loop: list[object] = ["text"]
    loop.append(loop)
    assert held_size(ReadableSpan("", context=context, attributes={"loop": loop})) > 2_000


@pytest.mark.parametrize(
    "odd",
    [
        {"events": None},
        {"events": [Event("e", 5, 1)]},  # type: ignore[arg-type]
        {"events": [Event("e", [("k", "v")], 1)]},  # type: ignore[arg-type]
        {"attributes": {"deep": functools.reduce(lambda inner, _: [inner], range(5000), ["x"])}},
    ],
    ids=["no events", "event attributes a number", "event attributes a list", "an attribute nested deep"],
)
def test_a_span_that_cannot_be_measured_costs_nothing_else(odd: dict[str, object]) -> None:
    """A hand-made span with odd parts, held past its batch, beside a trace complete in the same batch."""

    def span(trace_id: int, span_id: int, parent: int | None, **parts: object) -> ReadableSpan:
        def context(span_id: int) -> SpanContext:
            return SpanContext(trace_id, span_id, is_remote=False, trace_flags=TraceFlags(1))

        return ReadableSpan(
            f"t{trace_id}s{span_id}",
            context=context(span_id),
            parent=None if parent is None else context(parent),
            start_time=1,
            end_time=2,
            **parts,  # type: ignore[arg-type]
        )

    sink = ListSink()
    exporter = MaximSpanExporter(sink=sink)
    assert exporter.export([span(1, 1, None), span(2, 2, 1, **odd)]) is SpanExportResult.SUCCESS
    records = sink.records()  # the complete trace went out, and only it
    assert {(r.entity, r.id) for r in records} == {("trace", format(1, "032x"))}
    assert [r.data["name"] for r in records if r.action == "create"] == ["t1s1"]
    if "attributes" in odd:  # measured all the same, without recursion: 5,001 lists of one item
        assert exporter._assembler.held_bytes == 2_000 + len("t2s2") + 100 + len("deep") + 5_001 * (40 + 8) + 1
    else:
        assert 2_000 <= exporter._assembler.held_bytes < 3_000  # what could be measured, at least the fixed part
    exporter.shutdown()
    assert exporter._assembler.held_bytes == 0


def test_a_trace_that_completes_in_its_batch_is_never_sized(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sizing costs a pass over a span's attributes: only spans held past their batch pay it."""
    sized: list[str] = []
    monkeypatch.setattr("otel_maxim.assembly.held_size", lambda span: sized.append(span.name) or 0)

    def build(provider: TracerProvider, tracer: trace.Tracer) -> None:
        with tracer.start_as_current_span("root"), tracer.start_as_current_span("child"):
            pass
        open_root = tracer.start_span("open")
        with trace.use_span(open_root), tracer.start_as_current_span("waiting"):
            pass

    exporter = MaximSpanExporter(sink=ListSink())
    exporter.export(_record_spans(build))
    assert sized == ["waiting"]
    exporter.shutdown()


def test_odd_traces_have_defined_outcomes(caplog: pytest.LogCaptureFixture) -> None:
    """A span whose parent never arrives, a duplicate span id, a span ending before it starts."""

    def build(provider: TracerProvider, tracer: trace.Tracer) -> None:
        root = tracer.start_span("root")
        lost = tracer.start_span("lost-parent", context=trace.set_span_in_context(root))
        orphan = tracer.start_span("orphan", context=trace.set_span_in_context(lost))
        orphan.end()
        backwards = tracer.start_span("backwards", context=trace.set_span_in_context(root), start_time=2_000_000_000)
        backwards.end(end_time=1_000_000_000)
        root.end()
        # `lost` never ends

    spans = _record_spans(build)
    duplicate = spans[0]
    sink = ListSink()
    exporter = MaximSpanExporter(sink=sink)
    with caplog.at_level(logging.WARNING, logger="otel_maxim"):
        exporter.export([*spans, duplicate])
    exporter.shutdown()
    records = sink.records()
    assert_parent_first(records)
    orphan = next(r for r in records if r.action == "add-span" and r.data["name"] == "orphan")
    assert orphan.entity == "trace"  # attached to the trace, not lost
    backwards = next(r for r in records if r.action == "add-span" and r.data["name"] == "backwards")
    end = next(r for r in records if r.entity == "span" and r.id == backwards.data["id"] and r.action == "end")
    assert end.data["endTimestamp"] == backwards.data["startTimestamp"]  # clamped, never before the start
    assert "second span with the id" in caplog.text


def test_a_trace_exported_in_several_batches_and_late_children() -> None:
    def build(provider: TracerProvider, tracer: trace.Tracer) -> None:
        root = tracer.start_span("root")
        a = tracer.start_span("a", context=trace.set_span_in_context(root))
        root.end()
        b = tracer.start_span("b", context=trace.set_span_in_context(a))
        b.end()
        a.end()

    root, b, a = _record_spans(build)
    sink = ListSink()
    exporter = MaximSpanExporter(sink=sink)
    for batch in ([root], [b], [a]):
        exporter.export(batch)
    exporter.shutdown()
    records = sink.records()
    assert_parent_first(records)
    assert sum(1 for r in records if r.entity == "trace" and r.action == "create") == 1
    assert {str(r.data["name"]) for r in records if r.action == "add-span"} == {"a", "b"}


def test_a_trace_whose_root_stays_open_is_remembered_by_its_newest_spans(monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker loop's trace, sent batch after batch: what is kept of it stays bounded, and a late child
    of a recent span still lands under it; one of a span long forgotten attaches to the trace."""
    monkeypatch.setattr(otel_maxim.mapping._trace, "MAX_CONTAINERS", 8)
    jobs: list[trace.Span] = []

    def build(provider: TracerProvider, tracer: trace.Tracer) -> None:
        loop = tracer.start_span("worker-loop")  # never ends
        for n in range(40):
            job = tracer.start_span(f"job-{n}", context=trace.set_span_in_context(loop))
            job.end()
            jobs.append(job)
        for parent in (jobs[0], jobs[-1]):  # children that come after their parents were sent
            tracer.start_span(f"late-under-{parent.name}", context=trace.set_span_in_context(parent)).end()

    spans = _record_spans(build)
    sink = ListSink()
    exporter = MaximSpanExporter(sink=sink, max_held_spans=2)  # the open trace is sent a batch at a time
    sizes = []
    for n in range(0, 40, 4):
        exporter.export(spans[n : n + 4])
        sizes += [len(state) for state in exporter._sent.values()]
    assert len(sizes) == 10 and max(sizes) == 3 + 3 * 8  # the newest 8 spans, batch after batch
    exporter.export(spans[40:])
    exporter.shutdown()
    records = sink.records()
    assert_parent_first(records)
    ids = {r.data["name"]: r.data["id"] for r in records if r.action == "add-span"}
    late = {r.data["name"]: r for r in records if r.action == "add-span" and str(r.data["name"]).startswith("late")}
    assert late["late-under-job-39"].entity == "span" and late["late-under-job-39"].id == ids["job-39"]
    assert late["late-under-job-0"].entity == "trace"  # its parent was forgotten: attached, not lost


def test_the_sent_traces_remembered_are_bounded_by_their_spans_too(monkeypatch: pytest.MonkeyPatch) -> None:
    """16,384 sent traces of up to 2,048 remembered spans each took gigabytes: the spans remembered in all
    are bounded too (here at 20), the oldest traces forgotten first, the newest always kept."""
    monkeypatch.setattr(otel_maxim.exporter, "_SENT_SPANS", 20, raising=False)

    def build(provider: TracerProvider, tracer: trace.Tracer) -> None:
        for n in range(10):
            with tracer.start_as_current_span(f"root-{n}"):
                for i in range(5):
                    tracer.start_span(f"step-{i}").end()

    spans = _record_spans(build)
    exporter = MaximSpanExporter(sink=ListSink())
    exporter.export(spans)
    remembered = {trace_id: (len(state) - 3) // 3 for trace_id, state in exporter._sent.items()}
    exporter.shutdown()
    newest = spans[-1].context.trace_id
    assert list(remembered.values()) == [6, 6, 6] and list(remembered)[-1] == newest


def test_a_late_batch_that_fails_to_map_leaves_what_was_sent_as_it_was(monkeypatch: pytest.MonkeyPatch) -> None:
    """map_trace works on a copy of a sent trace's state: a failure half way (a bug, simulated) changes nothing."""

    def build(provider: TracerProvider, tracer: trace.Tracer) -> None:
        root = tracer.start_span("root")
        a = tracer.start_span("a", context=trace.set_span_in_context(root))
        root.end()
        tracer.start_span("b", context=trace.set_span_in_context(a)).end()
        a.end()

    root, b, a = _record_spans(build)
    first = map_trace([root], None, Options())
    remembered = dict(first.state.containers)

    def failing_close(*args: object, **kwargs: object) -> list[Record]:
        raise RuntimeError("simulated mapping bug")

    monkeypatch.setattr(otel_maxim.mapping._span, "close_records", failing_close)
    with pytest.raises(RuntimeError):
        map_trace([b, a], first.state, Options())
    assert first.state.containers == remembered
    monkeypatch.undo()
    later = map_trace([b, a], first.state, Options())
    assert {str(data["name"]) for _, _, action, data in later.records if action == "add-span"} == {"a", "b"}
    assert len(later.state.containers) == 3 and len(first.state.containers) == 1


def test_a_sent_trace_is_remembered_as_tuples_the_garbage_collector_stops_tracking() -> None:
    """Thousands of sent traces are remembered: frozen, they add nothing to the collector's full passes."""

    def build(provider: TracerProvider, tracer: trace.Tracer) -> None:
        with tracer.start_as_current_span("root"), tracer.start_as_current_span("agent"):
            tracer.start_span("chat", attributes={"gen_ai.operation.name": "chat"}).end()

    mapped = map_trace(_record_spans(build), None, Options())
    frozen = mapped.state.freeze()
    assert TraceState.thaw(frozen) == mapped.state
    assert len(mapped.state.containers) == 3
    gc.collect(0)  # the youngest generation: where a new state is first looked at
    assert not gc.is_tracked(frozen)

    exporter = MaximSpanExporter(sink=ListSink())
    exporter.export(_record_spans(build))
    gc.collect(0)
    remembered = list(exporter._sent.values())
    assert len(remembered) == 1 and not gc.is_tracked(remembered[0])
    exporter.shutdown()


def test_after_shutdown_export_fails_and_shutdown_is_idempotent(caplog: pytest.LogCaptureFixture) -> None:
    exporter = MaximSpanExporter(sink=ListSink())
    exporter.shutdown()
    exporter.shutdown()
    with caplog.at_level(logging.WARNING, logger="otel_maxim"):
        result = exporter.export([])
    assert result.name == "FAILURE"
    assert "already shut down" in caplog.text


def test_a_broken_sink_fails_the_export_with_a_message_and_raises_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    with provider.get_tracer("t").start_as_current_span("x"):
        pass
    exporter = MaximSpanExporter(output=str(blocker / "records.log"))
    # Called directly: the SDK's processors would catch what export() raised, and hide it.
    with caplog.at_level(logging.ERROR, logger="otel_maxim"):
        assert exporter.export(memory.get_finished_spans()) is SpanExportResult.FAILURE
    assert f"Could not write 2 records to {blocker / 'records.log'}" in caplog.text
    exporter.shutdown()


def test_the_root_span_of_an_incoming_request_completes_its_trace() -> None:
    """A span whose parent is remote is the local root: its trace is sent without waiting."""
    sink = ListSink()
    exporter = MaximSpanExporter(sink=sink)
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    remote = trace.NonRecordingSpan(trace.SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=trace.TraceFlags(1)))
    ctx = trace.set_span_in_context(remote, context.Context())
    with provider.get_tracer("t").start_as_current_span("server", context=ctx):
        pass
    assert [(r.entity, r.action) for r in sink.records()] == [("trace", "create"), ("trace", "end")]
    provider.shutdown()


# --- configuration: argument > environment > default ---------------------------------------------


@pytest.mark.parametrize(
    ("argument", "environment", "expected"),
    [
        (None, None, "maxim-records.log"),
        (None, "from-env.log", "from-env.log"),
        ("from-arg.log", "from-env.log", "from-arg.log"),
        ("-", None, "-"),
    ],
)
def test_output_precedence(
    argument: str | None, environment: str | None, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if environment is not None:
        monkeypatch.setenv("MAXIM_RECORDS_FILE", environment)
    sink = MaximSpanExporter(output=argument).sink
    assert isinstance(sink, FileSink) and sink.path == expected


@pytest.mark.parametrize(
    ("kwargs", "env", "attribute", "expected", "warning"),
    [
        ({}, {}, "timeout", 300.0, None),
        ({}, {"MAXIM_TRACE_TIMEOUT": "2.5"}, "timeout", 2.5, None),
        ({"trace_timeout": 0}, {"MAXIM_TRACE_TIMEOUT": "2.5"}, "timeout", 0, None),  # an explicit 0 counts
        ({}, {"MAXIM_TRACE_TIMEOUT": "soon"}, "timeout", 300.0, "MAXIM_TRACE_TIMEOUT"),
        ({}, {"MAXIM_TRACE_TIMEOUT": "-1"}, "timeout", 300.0, "MAXIM_TRACE_TIMEOUT"),
        ({}, {"MAXIM_TRACE_TIMEOUT": "inf"}, "timeout", 300.0, "MAXIM_TRACE_TIMEOUT"),
        ({}, {"MAXIM_TRACE_TIMEOUT": "1e300"}, "timeout", 300.0, "MAXIM_TRACE_TIMEOUT"),  # no thread waits that long
        ({}, {"MAXIM_MAX_HELD_SPANS": "10"}, "max_spans", 10, None),
        ({}, {"MAXIM_MAX_HELD_SPANS": "1.5"}, "max_spans", 100_000, "MAXIM_MAX_HELD_SPANS"),
        ({}, {}, "max_bytes", 128 * 1024 * 1024, None),
        ({}, {"MAXIM_MAX_HELD_BYTES": "1000000"}, "max_bytes", 1_000_000, None),
        ({"max_held_bytes": 5}, {"MAXIM_MAX_HELD_BYTES": "1000000"}, "max_bytes", 5, None),
        ({}, {"MAXIM_MAX_HELD_BYTES": "lots"}, "max_bytes", 128 * 1024 * 1024, "MAXIM_MAX_HELD_BYTES"),
    ],
)
def test_setting_precedence(
    kwargs: dict[str, object],
    env: dict[str, str],
    attribute: str,
    expected: float,
    warning: str | None,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with caplog.at_level(logging.WARNING):
        exporter = MaximSpanExporter(sink=ListSink(), **kwargs)  # type: ignore[arg-type]
    assert getattr(exporter._assembler, "_" + attribute) == expected
    if warning is None:
        assert caplog.text == ""
    else:
        assert warning in caplog.text


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"trace_timeout": -1}, "trace_timeout"),
        ({"trace_timeout": float("inf")}, "trace_timeout"),
        ({"trace_timeout": 1e300}, "trace_timeout"),
        ({"cross_service_grace": 1e300}, "cross_service_grace"),
        ({"trace_timeout": "5"}, "trace_timeout"),
        ({"max_held_spans": 1.5}, "max_held_spans"),
        ({"max_held_bytes": -1}, "max_held_bytes"),
        ({"capture_content": "yes"}, "capture_content"),
        ({"redact": 42}, "redact"),
    ],
)
def test_bad_arguments_raise_naming_the_argument(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MaximSpanExporter(sink=ListSink(), **kwargs)  # type: ignore[arg-type]


class _Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("not loaded")  # a lazy proxy or ORM object that a redact callback put in


def test_a_record_that_cannot_be_serialized_costs_only_that_record(caplog: pytest.LogCaptureFixture) -> None:
    def redact(record: Record) -> Record:
        if record.entity == "trace" and record.action == "create" and record.data.get("name") == "t2":
            return record._replace(data={**record.data, "tags": {"user": _Unprintable()}})
        return record

    sink = ListSink()
    provider = TracerProvider()
    provider.add_span_processor(otel_maxim.MaximSpanProcessor(MaximSpanExporter(sink=sink, redact=redact)))
    for name in ("t1", "t2", "t3"):
        provider.get_tracer("t").start_span(name).end()
    with caplog.at_level(logging.ERROR, logger="otel_maxim"):
        provider.shutdown()
    created = [r.data["name"] for r in sink.records() if r.entity == "trace" and r.action == "create"]
    assert created == ["t1", "t3"]
    assert "Could not serialize a trace create record; it is not sent (RuntimeError: not loaded)" in caplog.text


def test_runtime_calls_with_odd_arguments_do_not_raise(caplog: pytest.LogCaptureFixture) -> None:
    """What the SDK never passes but an application might: the exporter answers, it does not raise."""
    exporter = MaximSpanExporter(sink=ListSink())
    assert exporter.export(None) is SpanExportResult.FAILURE  # type: ignore[arg-type]
    assert exporter.force_flush(None) is True  # type: ignore[arg-type]
    assert exporter.force_flush(float("nan")) is True
    assert exporter.force_flush(float("inf")) is True
    exporter.shutdown(None)  # type: ignore[arg-type]
    assert exporter.export(iter([])) is SpanExportResult.FAILURE  # type: ignore[arg-type]
    assert "Exporter already shut down; some spans not exported." in caplog.text


def test_a_session_ended_inside_a_request_ends_after_that_request() -> None:
    """The "goodbye" pattern: end_session() inside a request, whose trace ends after the marker."""
    sink = ListSink()
    exporter = MaximSpanExporter(sink=sink)
    provider = TracerProvider()
    provider.add_span_processor(otel_maxim.SessionBaggageProcessor())
    provider.add_span_processor(SimpleSpanProcessor(exporter))  # each span exported as it ends
    tracer = provider.get_tracer("t")
    with otel_maxim.session("bye"), tracer.start_as_current_span("goodbye-request"):
        otel_maxim.end_session("bye", tracer_provider=provider)  # the marker is exported first
        assert not [r for r in sink.records() if r.entity == "session" and r.action == "end"]
    provider.shutdown()
    records = sink.records()
    assert_parent_first(records)
    assert [(r.entity, r.action) for r in records] == [
        ("session", "create"),
        ("trace", "create"),
        ("trace", "end"),
        ("session", "end"),
    ]


def test_a_marker_waiting_for_a_trace_that_never_comes_ends_the_session_after_the_timeout() -> None:
    sink = ListSink()
    exporter = MaximSpanExporter(sink=sink, trace_timeout=0.2)
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    # A request from another service whose spans never reach this exporter (no Collector between them).
    incoming = propagate.extract({"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"})
    token = context.attach(incoming)
    try:
        otel_maxim.end_session("lonely", tracer_provider=provider)
    finally:
        context.detach(token)
    assert sink.lines == []  # waiting for that trace
    deadline = time.monotonic() + 5
    while not [r for r in sink.records() if r.entity == "session"] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert [(r.entity, r.action) for r in sink.records() if r.entity == "session"] == [
        ("session", "create"),
        ("session", "end"),
    ]
    provider.shutdown()


def test_a_span_that_ends_before_it_starts_is_ended_and_failed_at_its_start() -> None:
    """A skewed clock: the span's end record and its error both read its end as never before its
    start (the error used the raw end before)."""
    second = 1_000_000_000

    def build(provider: TracerProvider, tracer: trace.Tracer) -> None:
        root = tracer.start_span("turn", start_time=1_780_308_000 * second)
        with trace.use_span(root, end_on_exit=False):
            child = tracer.start_span("step", start_time=1_780_308_015 * second)
            child.set_status(trace.Status(trace.StatusCode.ERROR, "boom"))
            child.end(end_time=1_780_308_012 * second)  # three seconds before its start
        root.end(end_time=1_780_308_020 * second)

    sink = ListSink()
    exporter = MaximSpanExporter(sink=sink)
    exporter.export(_record_spans(build))
    exporter.shutdown()
    step = [r for r in sink.records() if r.entity == "span"]
    error = next(r for r in step if r.action == "add-error")
    end = next(r for r in step if r.action == "end")
    assert error.data["startTimestamp"] == end.data["endTimestamp"] == "2026-06-01T10:00:15+00:00"
    assert error.data["message"] == "boom"


def _exported(build, **options: Any) -> list[Record]:  # type: ignore[no-untyped-def]
    sink = ListSink()
    exporter = MaximSpanExporter(sink=sink, **options)
    exporter.export(_record_spans(build))
    exporter.shutdown()
    records = sink.records()
    assert_parent_first(records)
    return records


def test_a_span_with_a_float_or_an_impossible_time_costs_nothing_else() -> None:
    """The SDK takes a float time (time.time() * 1e9) and microseconds taken for nanoseconds (the year
    58869): each is written as an ISO 8601 date, and the rest of the trace is sent."""

    def build(provider: TracerProvider, tracer: trace.Tracer) -> None:
        with tracer.start_as_current_span("turn"):
            tracer.start_span("float", start_time=1_780_308_000.5e9).end(end_time=1_780_308_001.5e9)
            future = tracer.start_span("future", start_time=1_780_308_000_000_000_000_000)
            future.add_event("tick", timestamp=1_780_308_000_500_000_000.0)  # type: ignore[arg-type]
            future.end(end_time=1_780_308_000_000_000_000_000)
            tracer.start_span("fine").end()

    records = _exported(build)
    spans = {r.data["name"]: r for r in records if r.action == "add-span"}
    assert list(spans) == ["float", "fine", "future"]  # in start order
    assert spans["float"].data["startTimestamp"] == "2026-06-01T10:00:00.500000+00:00"
    assert spans["future"].data["startTimestamp"] == "9999-12-31T23:59:59.999999+00:00"
    event = next(r for r in records if r.action == "add-event")
    assert event.data["timestamp"] == "2026-06-01T10:00:00.500000+00:00"
    ends = {r.id: r.data["endTimestamp"] for r in records if r.action == "end" and r.entity == "span"}
    assert ends[spans["float"].data["id"]] == "2026-06-01T10:00:01.500000+00:00"
    assert ends[spans["future"].data["id"]] == "9999-12-31T23:59:59.999999+00:00"


def test_a_deeply_nested_attribute_costs_only_its_own_value() -> None:
    """json.dumps raises RecursionError on a value nested past the recursion limit (the SDK keeps it)."""
    deep: object = "leaf"
    for _ in range(sys.getrecursionlimit() + 100):
        deep = {"k": deep}
    context = SpanContext(0x1, 0x2, is_remote=False, trace_flags=TraceFlags(1))
    span = ReadableSpan("odd", context=context, attributes={"payload": deep, "fine": 1}, start_time=1, end_time=2)
    sink = ListSink()
    exporter = MaximSpanExporter(sink=sink)
    exporter.export([span])
    exporter.shutdown()
    metadata = next(r.data["metadata"] for r in sink.records() if r.action == "update" and "metadata" in r.data)
    assert metadata == {"payload": "<a value nested too deeply to write>", "fine": "1"}


def test_an_attribute_set_to_none_is_null_metadata_as_maxim_py_writes_it_and_no_tag() -> None:
    """SDK 1.4x keeps a None value (older ones drop it), and the bridge reads an empty OTLP value as None:
    hand-made spans, so that every SDK version tests the same."""

    def context(span_id: int) -> SpanContext:
        return SpanContext(7, span_id, is_remote=False, trace_flags=TraceFlags(1))

    work = ReadableSpan(
        "work",
        context=context(2),
        parent=context(1),
        attributes={"retry_of": None, "maxim.tags.env": None, "maxim.tags.team": "checkout"},  # type: ignore[dict-item]
        events=[Event("retry", {"previous": None}, 5)],  # type: ignore[dict-item]
        start_time=2,
        end_time=8,
    )
    root = ReadableSpan("turn", context=context(1), start_time=1, end_time=9)
    sink = ListSink()
    exporter = MaximSpanExporter(sink=sink)
    exporter.export([work, root])
    exporter.shutdown()
    records = sink.records()
    (work,) = (r for r in records if r.action == "add-span")
    assert work.data["tags"] == {"team": "checkout"}
    (metadata,) = (r.data["metadata"] for r in records if r.action == "update" and "metadata" in r.data)
    assert metadata == {"retry_of": "null"}
    (event,) = (r for r in records if r.action == "add-event")
    assert event.data["metadata"] == {"previous": "null"}


@pytest.mark.parametrize(
    ("exception", "description", "message", "metadata"),
    [
        # A timeout has no message: the description is the error's message, as a generation's error reads it.
        (
            TimeoutError(),
            "payment provider unavailable after 3 retries",
            "payment provider unavailable after 3 retries",
            {},
        ),
        # A message of its own: the description goes into the error's metadata.
        (
            ConnectionError("connection reset"),
            "payment provider unavailable",
            "connection reset",
            {"otel.status_description": "payment provider unavailable"},
        ),
        (ConnectionError("connection reset"), "connection reset", "connection reset", {}),  # no need to say it twice
        (ConnectionError("connection reset"), None, "connection reset", {}),
    ],
    ids=["no-message", "other-message", "same-message", "no-description"],
)
def test_a_status_description_beside_an_exception_is_kept(
    exception: Exception, description: str | None, message: str, metadata: dict[str, str]
) -> None:
    def build(provider: TracerProvider, tracer: trace.Tracer) -> None:
        with tracer.start_as_current_span("turn"):
            with tracer.start_as_current_span("charge", record_exception=False, set_status_on_exception=False) as span:
                span.record_exception(ValueError("first attempt"))  # a retry before it: its error stays as it was
                span.record_exception(exception)
                span.set_status(Status(StatusCode.ERROR, description))

    records = _exported(build)
    first, last = (r for r in records if r.action == "add-error")
    assert first.data["message"] == "first attempt" and set(first.data["metadata"]) == {"stacktrace"}
    assert last.data["message"] == message
    assert last.data["errorType"] == type(exception).__name__
    assert {k: v for k, v in last.data["metadata"].items() if k != "stacktrace"} == metadata


def _traceloop_workflow(provider: TracerProvider, tracer: trace.Tracer) -> None:
    """A Traceloop @workflow with a @task, an OpenInference CHAIN and a span with maxim.output below it."""
    workflow = {
        "traceloop.span.kind": "workflow",
        "traceloop.entity.input": json.dumps(
            {"inputs": "Where is my order?", "tags": [], "metadata": {}, "kwargs": {}}
        ),
        "traceloop.entity.output": json.dumps({"outputs": "It ships tomorrow.", "kwargs": {}}),
    }
    with tracer.start_as_current_span("support.workflow", attributes=workflow):
        task = {
            "traceloop.span.kind": "task",
            "traceloop.entity.input": '{"order": 42}',
            "traceloop.entity.output": '{"status": "shipped"}',
        }
        tracer.start_span("lookup.task", attributes=task).end()
        chain = {"openinference.span.kind": "CHAIN", "input.value": "hi", "output.value": '{"answer": "hello"}'}
        tracer.start_span("RunnableSequence", attributes=chain).end()
        tracer.start_span("render", attributes={"maxim.output": "Your order ships tomorrow."}).end()
        tracer.start_span("structured", attributes={"output.value": 3, "maxim.metadata.output": "mine"}).end()


def test_span_outputs_are_metadata_and_a_traceloop_root_gives_the_trace_input_and_output() -> None:
    """maxim-py's spans have no output: a span's is its metadata entry "output" (JSON text if it is not
    text; an entry the application named so wins).  The root's Traceloop input and output are the trace's,
    out of the LangChain envelope Traceloop wraps a chain's in."""
    records = _exported(_traceloop_workflow)
    create = next(r for r in records if r.action == "create" and r.entity == "trace")
    assert create.data["input"] == "Where is my order?"
    (output,) = (r.data["output"] for r in records if r.entity == "trace" and "output" in r.data)
    assert output == "It ships tomorrow."
    names = {r.data["id"]: r.data["name"] for r in records if r.action == "add-span"}
    outputs = {
        names[r.id]: r.data["metadata"].get("output") for r in records if r.entity == "span" and "metadata" in r.data
    }
    assert outputs == {
        "lookup.task": '{"status": "shipped"}',
        "RunnableSequence": '{"answer": "hello"}',
        "render": "Your order ships tomorrow.",
        "structured": "mine",
    }
    inputs = {names[r.id]: r.data["input"]["value"] for r in records if r.entity == "span" and "input" in r.data}
    assert inputs == {"lookup.task": '{"order": 42}', "RunnableSequence": "hi"}


def test_without_content_capture_no_input_or_output_is_sent() -> None:
    records = _exported(_traceloop_workflow, capture_content=False)
    assert not [r for r in records if "input" in r.data or "output" in r.data]
    assert not [r for r in records if "output" in r.data.get("metadata", {}) and r.data["metadata"]["output"] != "mine"]


# --- threads: a stuck sink, the reaper, fork ----------------------------------------------------------


class _StuckSink(ListSink):
    """A sink whose writes do not return until released (a pipe nobody reads, a full stdout)."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def write(self, lines: Sequence[str]) -> bool:
        self.entered.set()
        self.release.wait(30)
        return super().write(lines)


def _one_trace() -> list[ReadableSpan]:
    def build(provider: TracerProvider, tracer: trace.Tracer) -> None:
        with tracer.start_as_current_span("root"):
            pass

    return _record_spans(build)


def _in_thread(call: Callable[[], object]) -> tuple[threading.Thread, list[object]]:
    result: list[object] = []
    thread = threading.Thread(target=lambda: result.append(call()), daemon=True)
    thread.start()
    return thread, result


def test_flush_and_shutdown_keep_their_timeouts_while_an_export_is_stuck_in_the_sink(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sink = _StuckSink()
    exporter = MaximSpanExporter(sink=sink)
    worker, _ = _in_thread(lambda: exporter.export(_one_trace()))
    assert sink.entered.wait(10)  # the worker's export now holds the exporter's lock, writing
    try:
        with caplog.at_level(logging.WARNING, logger="otel_maxim"):
            flusher, flushed = _in_thread(lambda: exporter.force_flush(timeout_millis=100))
            flusher.join(10)
            stopper, _ = _in_thread(lambda: exporter.shutdown(timeout_millis=100))
            stopper.join(10)
        assert not flusher.is_alive() and flushed == [False]
        assert not stopper.is_alive()
        assert "Could not flush in time: an export is still writing records." in caplog.text
        assert "Could not shutdown in time" in caplog.text and "the traces still held are not sent" in caplog.text
    finally:
        sink.release.set()
        worker.join(10)
    assert exporter.export(_one_trace()) is SpanExportResult.FAILURE  # shut down, though late


class _SlowClosingSink(ListSink):
    """A sink whose close waits for ``release``: a shutdown under way, delivering what it holds."""

    def __init__(self) -> None:
        super().__init__()
        self.closing = threading.Event()
        self.release = threading.Event()
        self.closed = threading.Event()

    def close(self, timeout: float) -> None:
        self.closing.set()
        self.release.wait(30)
        self.closed.set()


def test_a_second_shutdown_waits_for_the_one_under_way() -> None:
    """Two threads shut the provider down (a signal handler and atexit, say): the second returns when
    the first has delivered or spooled what it holds, not at once, so a process that exits then loses nothing."""
    sink = _SlowClosingSink()
    processor = otel_maxim.MaximSpanProcessor(MaximSpanExporter(sink=sink))
    first, _ = _in_thread(processor.shutdown)
    assert sink.closing.wait(10)
    second, _ = _in_thread(processor.shutdown)
    second.join(0.5)
    assert second.is_alive()  # waiting for the first
    sink.release.set()
    second.join(10)
    first.join(10)
    assert not second.is_alive() and sink.closed.is_set()


_FLUSH_IN_SIGNAL_HANDLER = """
import os, signal, sys, threading, time
from opentelemetry.sdk.trace import TracerProvider
import otel_maxim
from otel_maxim import MaximSpanExporter
from otel_maxim.sinks import FileSink

provider = TracerProvider(shutdown_on_exit=False)
provider.add_span_processor(otel_maxim.MaximSpanProcessor(MaximSpanExporter(sink=FileSink(sys.argv[1]))))
tracer = provider.get_tracer("t")
handled = []
signal.signal(signal.SIGUSR1, lambda *_: handled.append(provider.force_flush(5000)))
done = threading.Event()

def poke():  # "flush now", from another process, at any moment
    while not done.is_set():
        os.kill(os.getpid(), signal.SIGUSR1)
        time.sleep(0.002)

threading.Thread(target=poke, daemon=True).start()
for n in range(600):  # the application's loop: a request, then a flush of its own
    with tracer.start_as_current_span(f"request-{n}"):
        pass
    provider.force_flush(5000)
done.set()
print("rounds done; signals handled:", len(handled), "all flushed:", all(handled), flush=True)
"""


@pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="no SIGUSR1 on this platform")
def test_a_signal_handler_that_flushes_while_the_application_flushes_does_not_hang() -> None:
    """The handler runs on the main thread, possibly while that thread is inside force_flush: the
    flush lock is re-entrant and not held while the flush thread starts, so both flushes finish."""
    done = subprocess.run(
        [sys.executable, "-c", _FLUSH_IN_SIGNAL_HANDLER, os.devnull],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "rounds done" in done.stdout and "all flushed: True" in done.stdout, done.stdout


def test_a_trace_held_for_less_than_the_reapers_sleep_is_sent_when_its_wait_is_over() -> None:
    """The reaper slept until the soonest wait over it had seen (up to 60 s): a trace held after that look,
    whose wait ends sooner (a service's part of a trace, held the cross-service grace), waited it out too."""
    sink = ListSink()
    exporter = MaximSpanExporter(sink=sink, cross_service_grace=0.5)  # the trace timeout: 300 s
    start = 1_700_000_000_000_000_000

    def span(trace_id: int, span_id: int, parent_id: int, remote: bool) -> ReadableSpan:
        return ReadableSpan(
            name=f"span-{span_id}",
            context=SpanContext(trace_id, span_id, False, TraceFlags(1)),
            parent=SpanContext(trace_id, parent_id, remote, TraceFlags(1)),
            start_time=start,
            end_time=start + 1000,
        )

    exporter.export([span(1, 11, 10, remote=False)])  # its root is yet to come: held, the reaper starts
    time.sleep(0.2)  # the reaper has looked: nothing is due before the trace timeout
    exporter.export([span(2, 21, 20, remote=True)])  # its parent is in another service: due after the grace
    deadline = time.monotonic() + 10
    while not any(r.entity == "trace" and r.id == f"{2:032x}" for r in sink.records()) and time.monotonic() < deadline:
        time.sleep(0.05)
    sent_after = time.monotonic() - (deadline - 10)
    exporter.shutdown()
    assert sent_after < 5, f"the trace held for 0.5 s was sent after {sent_after:.1f} s"


def test_an_export_just_as_the_reaper_stops_starts_a_new_reaper() -> None:
    """The reaper stops when nothing is held.  A trace held just after its last look, before it has
    ended, must still be sent when its wait is over (with no further export to start a reaper)."""
    sink = ListSink()
    exporter = MaximSpanExporter(sink=sink, trace_timeout=0.1)
    paused, resume = threading.Event(), threading.Event()
    real_lock = exporter._lock
    reaper_found_nothing = [0]

    class PauseTheStoppingReaper:
        """The exporter's lock.  The reaper leaves it with nothing held twice: after sending the
        held trace, then after the look that finds nothing more; after that look it waits."""

        def __enter__(self) -> None:
            real_lock.acquire()

        def __exit__(self, *_: object) -> None:
            nothing_held = exporter._assembler.held_spans == 0 and not exporter._held_ends
            real_lock.release()
            if threading.current_thread().name == "OtelMaximTraceReaper" and nothing_held:
                reaper_found_nothing[0] += 1
                if reaper_found_nothing[0] == 2:
                    paused.set()
                    resume.wait(10)

        def acquire(self, *args: Any, **kwargs: Any) -> bool:
            return real_lock.acquire(*args, **kwargs)

        def release(self) -> None:
            real_lock.release()

    exporter._lock = PauseTheStoppingReaper()  # type: ignore[assignment]

    def held_child(name: str) -> list[ReadableSpan]:
        def build(provider: TracerProvider, tracer: trace.Tracer) -> None:
            root = tracer.start_span("root-" + name)  # never ends: the child is held until the timeout
            with trace.use_span(root), tracer.start_as_current_span(name):
                pass

        return [s for s in _record_spans(build) if s.name == name]

    exporter.export(held_child("first"))
    assert paused.wait(10)  # "first" was sent; the reaper found nothing held and is leaving
    exporter.export(held_child("second"))
    resume.set()
    deadline = time.monotonic() + 10
    while not any('"second"' in line for line in sink.lines) and time.monotonic() < deadline:
        time.sleep(0.02)
    names = [r.data["name"] for r in sink.records() if r.action == "add-span"]  # before shutdown sends all
    exporter.shutdown()
    assert names == ["first", "second"]


_FORK_SCRIPT = """
import os, sys, threading, time
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from otel_maxim import MaximSpanExporter
from otel_maxim.sinks import FileSink

writing, forked = threading.Event(), threading.Event()

class SlowFileSink(FileSink):
    def write(self, lines):
        writing.set()
        forked.wait(10)  # the fork happens while this export holds the exporter's and the sink's locks
        return super().write(lines)

exporter = MaximSpanExporter(sink=SlowFileSink(sys.argv[1]))
memory = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(memory))
with provider.get_tracer("t").start_as_current_span("before-fork"):
    pass
worker = threading.Thread(target=exporter.export, args=(memory.get_finished_spans(),))
worker.start()
writing.wait(10)
pid = os.fork()
if pid == 0:
    forked.set()  # this process's copy of the event: the child's own writes go straight through
    memory.clear()
    with provider.get_tracer("t").start_as_current_span("in-child"):
        pass
    exporter.export(memory.get_finished_spans())
    exporter.shutdown(timeout_millis=2000)
    os._exit(0)
forked.set()
worker.join()
exporter.shutdown()
_, status = os.waitpid(pid, 0)
print("child exit", os.waitstatus_to_exitcode(status))
"""


def _run_script(script: str, tmp_path: Path) -> tuple[str, list[Record]]:
    """Run ``script`` in a new interpreter with a records file as its argument: its output, and the records."""
    out = tmp_path / "records.log"
    done = subprocess.run(
        [sys.executable, "-c", script, str(out)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout, [parse(line) for line in out.read_text().splitlines()] if out.exists() else []


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork() on this platform")
def test_a_child_forked_during_an_export_exports_and_shuts_down(tmp_path: Path) -> None:
    """A fork copies the locks an export holds; the child gets its own, so it exports and exits."""
    output, records = _run_script(_FORK_SCRIPT, tmp_path)
    assert "child exit 0" in output
    assert {str(r.data.get("name")) for r in records if r.action == "create"} == {"before-fork", "in-child"}


_FORK_SHUTTING_SCRIPT = """
import os, sys, threading, time
from otel_maxim import MaximSpanExporter
from otel_maxim.sinks import FileSink

closing, forked = threading.Event(), threading.Event()

class SlowClosingSink(FileSink):
    def close(self, timeout):
        closing.set()
        forked.wait(10)  # the fork happens while the parent's shutdown is inside close
        super().close(timeout)

exporter = MaximSpanExporter(sink=SlowClosingSink(sys.argv[1]))
shutting = threading.Thread(target=exporter.shutdown)
shutting.start()
closing.wait(10)
pid = os.fork()
if pid == 0:
    started = time.monotonic()
    exporter.shutdown(timeout_millis=30_000)  # the thread that was shutting down is not in the child
    os._exit(0 if time.monotonic() - started < 10 else 3)
forked.set()
shutting.join()
_, status = os.waitpid(pid, 0)
print("child exit", os.waitstatus_to_exitcode(status))
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork() on this platform")
def test_a_child_forked_during_a_shutdown_does_not_wait_for_it(tmp_path: Path) -> None:
    """The parent's shutdown under way on another thread is over in the child: its own returns at once
    instead of waiting its whole budget (30 s here) for a thread the child does not have."""
    output, _ = _run_script(_FORK_SHUTTING_SCRIPT, tmp_path)
    assert "child exit 0" in output


_FORK_HELD_SCRIPT = """
import os, sys
from opentelemetry.sdk.trace import TracerProvider
import otel_maxim

provider = TracerProvider()
provider.add_span_processor(otel_maxim.MaximSpanProcessor(otel_maxim.MaximSpanExporter(output=sys.argv[1])))
tracer = provider.get_tracer("t")
session = otel_maxim.session("conv-2", tracer_provider=provider)
with session, session.trace("turn"):
    with tracer.start_as_current_span("step"):
        pass
    session.end()  # inside its trace: the end waits for the trace
    provider.force_flush()  # the exporter now holds the step (its root is open) and the end
    pid = os.fork()
    if pid == 0:
        provider.shutdown()  # the child has nothing of its own to send
        os._exit(0)
    os.waitpid(pid, 0)
provider.shutdown()
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork() on this platform")
def test_a_forked_child_leaves_what_its_parent_holds_to_the_parent(tmp_path: Path) -> None:
    """Spans of an open trace and a session end waiting for it are sent once, by the parent, whole."""
    _, written = _run_script(_FORK_HELD_SCRIPT, tmp_path)
    records = [(r.entity, r.action, r.data.get("name")) for r in written]
    assert records.count(("session", "end", None)) == 1
    assert [r for r in records if r[:2] == ("trace", "create")] == [("trace", "create", "turn")]
    assert records.index(("session", "end", None)) == len(records) - 1  # after the trace it waited for


_FORK_WORKER_SCRIPT = """
import multiprocessing, os, sys
from opentelemetry.sdk.trace import TracerProvider
import otel_maxim

provider = TracerProvider()
provider.add_span_processor(otel_maxim.MaximSpanProcessor(otel_maxim.MaximSpanExporter(output=sys.argv[1])))
tracer = provider.get_tracer("t")

def work():  # a multiprocessing worker: it flushes, then leaves through os._exit, without exit hooks
    with tracer.start_as_current_span("work in child"):
        with tracer.start_as_current_span("step in child"):
            pass
    print("child flush", provider.force_flush(5000), flush=True)

with otel_maxim.session("conv-3", tracer_provider=provider) as session, session.trace("POST /chat"):
    worker = multiprocessing.get_context("fork").Process(target=work)
    worker.start()
    worker.join()
    with tracer.start_as_current_span("work in parent"):
        pass
provider.shutdown()
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork() on this platform")
def test_a_forked_worker_inside_a_request_sends_its_spans_when_it_flushes(tmp_path: Path) -> None:
    """The request span stays open in the parent, which ends and sends it: the child's spans below it
    are not held for a root that never ends in the child.  The child sends them as spans of that trace
    (creating it, in case its records come first) and leaves the trace's end to the parent."""
    output, written = _run_script(_FORK_WORKER_SCRIPT, tmp_path)
    assert "child flush True" in output
    records = [(r.entity, r.action, r.data.get("name")) for r in written]
    assert ("trace", "add-span", "work in child") in records
    child = next(r for r in written if r.data.get("name") == "work in child" and r.action == "add-span")
    step = next(r for r in written if r.data.get("name") == "step in child")
    assert step.entity == "span" and step.id == child.data["id"]  # the child's tree is kept
    creates = [r for r in written if r.entity == "trace" and r.action == "create"]
    assert {r.id for r in creates} == {child.id} and all(r.data["sessionId"] == "conv-3" for r in creates)
    assert [r.data["name"] for r in creates][-1] == "POST /chat"  # the parent's, sent after the child's
    ends = [r for r in written if r.entity == "trace" and r.action == "end"]
    assert len(ends) == 1  # the parent's: the trace ends with its root
