"""Parent-first order for random trees whose spans finish in any order, in any batches, interleaved;
and for the trees a buggy producer writes (parent cycles)."""

from __future__ import annotations

import logging
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator

from otel_maxim import MaximSpanExporter
from otel_maxim.mapping._common import span_hex
from otel_maxim.records import Record
from tests.record_checks import ListSink, assert_parent_first


@st.composite
def forests(draw: st.DrawFn) -> tuple[list[list[int]], list[tuple[int, int]], list[int]]:
    """Several traces (each a list of parent indices, node 0 the root), an end order across all
    of their spans, and the sizes of the batches the spans arrive in."""
    shapes: list[list[int]] = []
    for _ in range(draw(st.integers(1, 3))):
        size = draw(st.integers(1, 14))
        # A chain prefix guarantees depth >= 4 when the tree is big enough; the rest hang anywhere.
        parents = [-1] + [i - 1 if i < 4 else draw(st.integers(0, i - 1)) for i in range(1, size)]
        shapes.append(parents)
    nodes = [(t, n) for t, shape in enumerate(shapes) for n in range(len(shape))]
    order = draw(st.permutations(nodes))
    batches = draw(st.lists(st.integers(1, 6), min_size=1, max_size=len(nodes)))
    return shapes, list(order), batches


def _build(shapes: list[list[int]], order: list[tuple[int, int]]) -> list[ReadableSpan]:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("ordering")
    spans: dict[tuple[int, int], trace.Span] = {}
    for t, shape in enumerate(shapes):
        for n, parent in enumerate(shape):
            ctx = None if parent < 0 else trace.set_span_in_context(spans[(t, parent)])
            spans[(t, n)] = tracer.start_span(f"t{t}-n{n}", context=ctx)
    for key in order:
        spans[key].end()
    provider.shutdown()
    return list(memory.get_finished_spans())


def _export(finished: list[ReadableSpan], batches: list[int]) -> ListSink:
    sink = ListSink()
    exporter = MaximSpanExporter(sink=sink)
    i = 0
    for size in batches * (len(finished) // len(batches) + 1):
        if i >= len(finished):
            break
        exporter.export(finished[i : i + size])
        i += size
    exporter.shutdown()
    return sink


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(forests())
def test_any_finishing_order_gives_parent_first_records(
    forest: tuple[list[list[int]], list[tuple[int, int]], list[int]],
) -> None:
    shapes, order, batches = forest
    finished = _build(shapes, order)
    records = _export(finished, batches).records()

    assert_parent_first(records)
    # Every non-root span is announced once and ended once; every trace is created and ended once.
    non_roots = {span_hex(s.context.span_id) for s in finished if s.parent is not None}
    announced = Counter(str(r.data["id"]) for r in records if r.action == "add-span")
    assert announced == Counter(non_roots)
    ends = Counter((r.entity, r.id) for r in records if r.action == "end")
    assert all(count == 1 for count in ends.values())
    assert sum(1 for r in records if r.entity == "trace" and r.action == "create") == len(shapes)
    assert sum(1 for r in records if r.entity == "trace" and r.action == "end") == len(shapes)


@settings(max_examples=100, deadline=None)
@given(forests())
def test_children_first_finishing_keeps_the_tree(
    forest: tuple[list[list[int]], list[tuple[int, int]], list[int]],
) -> None:
    """When every span ends before its parent (the normal case), Maxim's tree is the OTel tree."""
    shapes, _, batches = forest
    # Children before parents: a post-order per trace, traces interleaved round-robin.
    per_trace = [sorted(range(len(shape)), key=lambda n: -n) for shape in shapes]
    order = [
        (t, n)
        for step in range(max(map(len, per_trace)))
        for t, ns in enumerate(per_trace)
        if step < len(ns)
        for n in [ns[step]]
    ]
    finished = _build(shapes, order)
    records = _export(finished, batches).records()
    assert_parent_first(records)

    parent_of = {span_hex(s.context.span_id): s.parent for s in finished}
    roots = {span_hex(s.context.span_id) for s in finished if s.parent is None}
    for record in records:
        if record.action != "add-span":
            continue
        otel_parent = parent_of[str(record.data["id"])]
        assert otel_parent is not None
        if span_hex(otel_parent.span_id) in roots:
            assert record.entity == "trace" and "spanId" not in record.data
        else:
            assert record.entity == "span" and record.id == span_hex(otel_parent.span_id)
            assert record.data["spanId"] == record.id


class _FixedIds(IdGenerator):
    """Hands out the given span ids in turn, and one trace id: a producer that can write parent cycles."""

    def __init__(self, trace_id: int, span_ids: list[int]) -> None:
        self._trace_id = trace_id
        self._span_ids = list(span_ids)

    def generate_span_id(self) -> int:
        return self._span_ids.pop(0)

    def generate_trace_id(self) -> int:
        return self._trace_id


def _cycle_records(with_root: bool, caplog: pytest.LogCaptureFixture) -> list[Record]:
    """Spans A <-> B (each the other's parent) and C below A, all in one trace; with a root R if asked."""
    trace_id = 0x4BF92F3577B34DA6A3CE929D0E0E4736
    memory = InMemorySpanExporter()
    provider = TracerProvider(id_generator=_FixedIds(trace_id, [0xA, 0xB, 0xC, 0x1]))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("cycles")

    def under(span_id: int) -> Context:
        return trace.set_span_in_context(
            trace.NonRecordingSpan(trace.SpanContext(trace_id, span_id, False, trace.TraceFlags(1)))
        )

    a = tracer.start_span("A", context=under(0xB))
    b = tracer.start_span("B", context=under(0xA))
    c = tracer.start_span("C", context=under(0xA))
    for span in (c, b, a):
        span.end()
    if with_root:
        tracer.start_span("R", context=Context()).end()
    provider.shutdown()
    with caplog.at_level(logging.WARNING, logger="otel_maxim"):
        records = _export(list(memory.get_finished_spans()), [10]).records()
    assert "3 spans of trace 4bf92f3577b34da6a3ce929d0e0e4736 form a parent cycle" in caplog.text
    return records


@pytest.mark.parametrize("with_root", [True, False], ids=["with-root", "cycle-only"])
def test_a_parent_cycle_hangs_from_the_trace_at_one_of_its_spans(
    with_root: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """A producer's bug (spans that are each other's parents) still gives one trace, created first, ended
    last, with the cycle entered at one span and the rest of it (and what hangs below) in their places."""
    records = _cycle_records(with_root, caplog)
    assert_parent_first(records)
    created = [r for r in records if r.entity == "trace" and r.action == "create"]
    assert len(created) == 1 and created[0].data["name"] == ("R" if with_root else "A")
    placed = {str(r.data["id"]): (r.entity, r.id) for r in records if r.action == "add-span"}
    assert placed == {
        "000000000000000a": ("trace", created[0].id),
        "000000000000000b": ("span", "000000000000000a"),
        "000000000000000c": ("span", "000000000000000a"),
    }
    ends = [(r.entity, r.id) for r in records if r.action == "end"]
    assert len(ends) == len(set(ends)) == (4 if with_root else 3)
    if with_root:
        assert ends[-1] == ("trace", created[0].id)
