"""Benchmark 1: what the application thread pays per span, MaximSpanProcessor vs the SDK's BatchSpanProcessor.

Run from the repository root::

    python bench/bench_processor.py            # the numbers for the README
    python bench/bench_processor.py --quick    # a smoke run (the tests call it)
    python bench/bench_processor.py --profile  # where the otel_maxim side's time goes

Each iteration starts and ends four spans, as an application in a session does:
a root span, a generation-like span with 15 attributes (``gen_ai.operation.name=chat``,
model, temperature, max_tokens, top_p, input and output messages as JSON, usage, ...),
a tool span (``gen_ai.operation.name=execute_tool``, 6 attributes) and a plain span.
A session (``with otel_maxim.session(...)``) is attached around the whole repetition,
so every span starts with ``session.id``/``session.name`` in its parent context's
baggage; attaching it is outside the timed section, and is the same for both sides.

Only the application thread is timed: ``start_span``/``end`` including every
processor's ``on_start``/``on_end``.  Both processors are BatchSpanProcessors whose
worker sleeps through a repetition (a queue that holds it, a batch size equal to it,
a 10-minute schedule delay); the queue is drained with ``force_flush()`` between
repetitions, outside the timed section.  MaximSpanProcessor feeds a real
MaximSpanExporter with a sink that discards; the baseline feeds an exporter that
does nothing.  The exporters' work is not what this measures (see bench_export.py).
"""

from __future__ import annotations

import sys
from typing import Any

from common import (
    GENERATION_REQUEST,
    GENERATION_RESPONSE,
    TOOL_ATTRIBUTES,
    TOOL_RESULT,
    DiscardSink,
    NoopExporter,
    Side,
    alternate,
    arguments,
    idle_worker_settings,
    machine_info,
    profile,
    report,
    result_of,
)
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Tracer

import otel_maxim

SPANS_PER_ITERATION = 4
ROOT_ATTRIBUTES = {"maxim.input": "Where is my order A-1042?", "http.route": "/chat"}


def iteration(tracer: Tracer) -> None:
    """One turn of a conversation: four spans."""
    with tracer.start_as_current_span("turn", attributes=ROOT_ATTRIBUTES):
        with tracer.start_as_current_span("chat gpt-4o-mini", attributes=GENERATION_REQUEST) as generation:
            generation.set_attributes(GENERATION_RESPONSE)
        with tracer.start_as_current_span("execute_tool get_order", attributes=TOOL_ATTRIBUTES) as tool:
            tool.set_attribute("gen_ai.tool.call.result", TOOL_RESULT)
        with tracer.start_as_current_span("render-answer"):
            pass


class Pipeline:
    """A TracerProvider with one batching processor, and a repetition's worth of iterations."""

    def __init__(self, processor: BatchSpanProcessor, iterations: int) -> None:
        self.processor = processor
        self.provider = TracerProvider(shutdown_on_exit=False)
        self.provider.add_span_processor(processor)
        self.tracer = self.provider.get_tracer("bench")
        self.iterations = iterations
        self.session = otel_maxim.session("bench-session-1", name="Benchmark chat", tracer_provider=self.provider)

    def run(self, _: Any) -> int:
        tracer = self.tracer
        for _ in range(self.iterations):
            iteration(tracer)
        return self.iterations * SPANS_PER_ITERATION

    def prepare(self) -> None:
        self.session.__enter__()

    def finish(self, _: Any) -> None:
        self.session.__exit__(None, None, None)
        self.processor.force_flush()  # drain the queue (the exporters' work), untimed

    def side(self, label: str) -> Side:
        return Side(label, self.run, self.prepare, self.finish)

    def shutdown(self) -> None:
        self.provider.shutdown()


def main(argv: list[str] | None = None) -> int:
    args = arguments(__doc__.splitlines()[0], argv)
    iterations = args.size or (50 if args.quick else 1_500)
    repetitions = args.repetitions or (3 if args.quick else 31)
    warmup = 1 if args.quick else 2
    settings = idle_worker_settings(iterations * SPANS_PER_ITERATION)

    sink = DiscardSink()
    ours = Pipeline(otel_maxim.MaximSpanProcessor(otel_maxim.MaximSpanExporter(sink=sink), **settings), iterations)
    noop = NoopExporter()
    baseline = Pipeline(BatchSpanProcessor(noop, **settings), iterations)
    ours_side = ours.side("MaximSpanProcessor")
    base_side = baseline.side("BatchSpanProcessor + no-op exporter")
    try:
        if args.profile:
            profile(ours_side, repetitions)
            return 0
        print(f"bench_processor: application-thread cost per span ({machine_info()})")
        print(f"{iterations} iterations x {SPANS_PER_ITERATION} spans per repetition, {warmup} warm-up + {repetitions}")
        alternate(ours_side, base_side, repetitions=repetitions, warmup=warmup)
    finally:
        ours.shutdown()
        baseline.shutdown()
    result = result_of(
        "1. application-thread cost per span",
        "span",
        ours_side,
        base_side,
        1.10,
        notes=[
            f"the Maxim side made {sink.lines} records from {noop.spans} spans (exported untimed, between repetitions)",
            "both BatchSpanProcessors' workers sleep through each repetition; only the application thread is timed",
        ],
    )
    report(result, json_path=args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
