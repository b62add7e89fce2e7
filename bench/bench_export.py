"""Benchmark 2: export work per span, MaximSpanExporter vs the standard OTLP protobuf encoding.

Run from the repository root::

    python bench/bench_export.py            # the numbers for the README
    python bench/bench_export.py --quick    # a smoke run (the tests call it)
    python bench/bench_export.py --profile  # where the otel_maxim side's time goes
    python bench/bench_export.py --standard-json  # records written without orjson (the fast extra)

The spans are finished ``ReadableSpan``s made once by the real SDK: traces of six
spans (a root with the session in baggage, the trace's input and output; an agent
span with an event; two chat generations with 15 attributes each, input and output
messages as JSON; a tool call; a plain span), 50 sessions, in the order they end
(children first), cut into batches of 512 as the BatchSpanProcessor hands them over.

ours:     ``MaximSpanExporter(sink=<discards>).export(batch)`` for every batch: the whole
          exporter path up to the sink (assemble traces, map them to records, serialize).
          The exporter keeps state (held traces, sent traces, known sessions), so every
          repetition uses a new exporter, built and shut down outside the timed section.
baseline: ``encode_spans(batch).SerializeToString()`` for the same batches
          (``opentelemetry.exporter.otlp.proto.common.trace_encoder``).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from common import (
    GENERATION_REQUEST,
    GENERATION_RESPONSE,
    TOOL_ATTRIBUTES,
    TOOL_RESULT,
    DiscardSink,
    Side,
    alternate,
    arguments,
    json_style,
    machine_info,
    profile,
    report,
    result_of,
)
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider

import otel_maxim

BATCH = 512
SPANS_PER_TRACE = 6
SESSIONS = 50


class Collect(SpanProcessor):
    """Keeps every finished span, in the order spans end."""

    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        self.spans.append(span)


def make_spans(traces: int) -> list[ReadableSpan]:
    collect = Collect()
    provider = TracerProvider(
        resource=Resource.create({"service.name": "support-bot", "service.version": "1.4.2"}), shutdown_on_exit=False
    )
    provider.add_span_processor(otel_maxim.SessionBaggageProcessor())  # stamps the session, as in an application
    provider.add_span_processor(collect)
    tracer = provider.get_tracer("bench")
    for i in range(traces):
        session = otel_maxim.session(f"session-{i % SESSIONS}", name="Support chat", tracer_provider=provider)
        question = f"Question {i}: where is my order A-{1000 + i}? It was due on Monday."
        with session, tracer.start_as_current_span("turn", attributes={"maxim.input": question, "http.route": "/chat"}):
            with tracer.start_as_current_span("agent", attributes={"agent.name": "support", "agent.step": 1}) as agent:
                agent.add_event("cache.miss", {"cache.key": f"order:A-{1000 + i}"})
                with tracer.start_as_current_span("chat gpt-4o-mini", attributes=GENERATION_REQUEST) as generation:
                    generation.set_attributes(GENERATION_RESPONSE)
                with tracer.start_as_current_span("execute_tool get_order", attributes=TOOL_ATTRIBUTES) as tool:
                    tool.set_attribute("gen_ai.tool.call.result", TOOL_RESULT)
                with tracer.start_as_current_span("chat gpt-4o-mini", attributes=GENERATION_REQUEST) as generation:
                    generation.set_attributes(GENERATION_RESPONSE)
            with tracer.start_as_current_span("render-answer", attributes={"template": "answer.md"}) as root_child:
                root_child.set_attribute("maxim.output", "Your order shipped yesterday and arrives tomorrow.")
    provider.shutdown()
    return collect.spans


def batches_of(spans: Sequence[ReadableSpan]) -> list[Sequence[ReadableSpan]]:
    return [spans[i : i + BATCH] for i in range(0, len(spans), BATCH)]


def main(argv: list[str] | None = None) -> int:
    args = arguments(__doc__.splitlines()[0], argv)
    style, fast_json = json_style(args)
    traces = args.size or (40 if args.quick else 500)
    repetitions = args.repetitions or (3 if args.quick else 31)
    warmup = 1 if args.quick else 2
    spans = make_spans(traces)
    batches = batches_of(spans)
    total = len(spans)
    sinks: list[DiscardSink] = []

    def prepare_ours() -> Any:
        sink = DiscardSink()
        sinks.append(sink)
        return otel_maxim.MaximSpanExporter(sink=sink, fast_json=fast_json)

    def run_ours(exporter: Any) -> int:
        export = exporter.export
        for batch in batches:
            export(batch)
        return total

    def finish_ours(exporter: Any) -> None:
        exporter.shutdown()

    def run_otlp(_: Any) -> int:
        for batch in batches:
            encode_spans(batch).SerializeToString()
        return total

    ours = Side(f"MaximSpanExporter -> discarding sink, {style}", run_ours, prepare_ours, finish_ours)
    otlp = Side("OTLP encode_spans().SerializeToString()", run_otlp)
    if args.profile:
        profile(ours, repetitions)
        return 0
    print(f"bench_export: export work per span ({machine_info()})")
    print(f"{traces} traces x {SPANS_PER_TRACE} = {total} spans, batches of {BATCH}; {warmup} warm-up + {repetitions}")
    alternate(ours, otlp, repetitions=repetitions, warmup=warmup)
    records = sinks[-1].lines
    otlp_bytes = sum(len(encode_spans(batch).SerializeToString()) for batch in batches)
    result = result_of(
        "2. export work per span" + (" (standard json)" if args.standard_json else ""),
        "span",
        ours,
        otlp,
        0.33,
        notes=[
            f"one repetition: {total} spans -> {records} Maxim records; the same spans -> {otlp_bytes:,} OTLP bytes",
            "a new MaximSpanExporter per repetition, built and shut down outside the timed section",
        ],
    )
    report(result, json_path=args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
