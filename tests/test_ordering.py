"""Parent-first order for random trees whose spans finish in any order, in any batches, interleaved."""

from __future__ import annotations

from collections import Counter

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_maxim import MaximSpanExporter
from otel_maxim.mapping._common import span_hex
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
