"""What the benchmarks share: the A/B timing harness, the report, sinks that discard, the span mix.

The harness measures two sides alternately in one process (A B, then B A, ...), each
repetition timed with ``time.perf_counter_ns`` around the work only, after a
``gc.collect()`` and with the garbage collector disabled; warm-up repetitions are
run and thrown away.  Each side reports its median cost per unit (span or trace),
and the ratio is ``median(ours) / median(baseline)``, so a slow minute on a noisy
machine slows both sides alike instead of tilting the ratio.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as ``python bench/bench_x.py`` from anywhere, package installed or not
    sys.path.insert(0, str(ROOT))

from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult  # noqa: E402

# --- sinks and exporters that discard -------------------------------------------------------------


class DiscardSink:
    """A Maxim sink that drops every line (and counts them, so a run can show records were made)."""

    def __init__(self) -> None:
        self.lines = 0

    def write(self, lines: Sequence[str]) -> bool:
        self.lines += len(lines)
        return True

    def flush(self, timeout: float) -> bool:
        return True

    def close(self, timeout: float) -> None:
        pass


class NoopExporter(SpanExporter):
    """The baseline's exporter: does nothing."""

    def __init__(self) -> None:
        self.spans = 0

    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        self.spans += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


def idle_worker_settings(spans_per_repetition: int) -> dict[str, Any]:
    """BatchSpanProcessor settings under which its worker thread sleeps through a repetition.

    The queue holds a whole repetition and the batch size equals it, so ``on_end`` never
    wakes the worker; the schedule delay (10 minutes) is longer than any run.  The queue
    is drained by ``force_flush()`` between repetitions, outside the timed section.
    """
    size = spans_per_repetition + 16
    return {"max_queue_size": size, "max_export_batch_size": size, "schedule_delay_millis": 600_000}


# --- the span mix ----------------------------------------------------------------------------------

#: What a chat instrumentation records (OTel GenAI semantic conventions), as JSON text.
INPUT_MESSAGES = [
    {"role": "system", "parts": [{"type": "text", "content": "You are a helpful support agent for an online shop."}]},
    {"role": "user", "parts": [{"type": "text", "content": "Where is my order A-1042? It was due on Monday."}]},
]
OUTPUT_MESSAGES = [
    {
        "role": "assistant",
        "parts": [{"type": "text", "content": "Your order A-1042 shipped yesterday and arrives tomorrow."}],
        "finish_reason": "stop",
    }
]
TOOL_ARGUMENTS = {"order_id": "A-1042"}
TOOL_RESULT = '{"status": "shipped", "carrier": "UPS", "eta": "2026-06-02"}'


def generation_request_attributes(input_json: str) -> dict[str, Any]:
    """Set when the LLM call starts (9 attributes)."""
    return {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.request.temperature": 0.2,
        "gen_ai.request.max_tokens": 512,
        "gen_ai.request.top_p": 1.0,
        "gen_ai.input.messages": input_json,
        "server.address": "api.openai.com",
        "server.port": 443,
    }


def generation_response_attributes(output_json: str) -> dict[str, Any]:
    """Set when the answer arrives (6 attributes)."""
    return {
        "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
        "gen_ai.response.id": "chatcmpl-bench",
        "gen_ai.response.finish_reasons": ("stop",),
        "gen_ai.usage.input_tokens": 42,
        "gen_ai.usage.output_tokens": 17,
        "gen_ai.output.messages": output_json,
    }


TOOL_ATTRIBUTES: dict[str, Any] = {
    "gen_ai.operation.name": "execute_tool",
    "gen_ai.tool.name": "get_order",
    "gen_ai.tool.call.id": "call_1",
    "gen_ai.tool.description": "Look an order up by its id",
    "gen_ai.tool.call.arguments": json.dumps(TOOL_ARGUMENTS),
}

INPUT_JSON = json.dumps(INPUT_MESSAGES)
OUTPUT_JSON = json.dumps(OUTPUT_MESSAGES)
GENERATION_REQUEST = generation_request_attributes(INPUT_JSON)
GENERATION_RESPONSE = generation_response_attributes(OUTPUT_JSON)


# --- the harness -----------------------------------------------------------------------------------


@dataclass
class Side:
    """One side of a comparison.

    ``prepare()`` (untimed) returns a state; ``run(state)`` is the timed work and returns how
    many units (spans, traces) it did; ``finish(state)`` (untimed) cleans up after it.
    """

    label: str
    run: Callable[[Any], int]
    prepare: Callable[[], Any] = lambda: None
    finish: Callable[[Any], None] = lambda state: None
    samples: list[float] = field(default_factory=list)  # wall ns per unit, one per measured repetition
    cpu_samples: list[float] = field(default_factory=list)  # the timed thread's CPU ns per unit (a cross-check)

    def once(self) -> tuple[float, float]:
        state = self.prepare()
        gc.collect()
        gc.disable()
        try:
            cpu_started = time.thread_time_ns()
            started = time.perf_counter_ns()
            units = self.run(state)
            elapsed = time.perf_counter_ns() - started
            cpu = time.thread_time_ns() - cpu_started
        finally:
            gc.enable()
        self.finish(state)
        units = max(units, 1)
        return elapsed / units, cpu / units


def alternate(*sides: Side, repetitions: int, warmup: int) -> None:
    """Time every side ``warmup + repetitions`` times, rotating which goes first; keep the last ``repetitions``."""
    for index in range(warmup + repetitions):
        shift = index % len(sides)
        order = sides[shift:] + sides[:shift]
        if index % 2:
            order = order[::-1]
        for side in order:
            wall, cpu = side.once()
            if index >= warmup:
                side.samples.append(wall)
                side.cpu_samples.append(cpu)


@dataclass
class Result:
    """What a benchmark reports: the two medians, their ratio and its target."""

    benchmark: str
    unit: str  # "span" or "trace"
    ours_label: str
    baseline_label: str
    ours_ns: float
    baseline_ns: float
    target: float
    higher_is_better: bool = False
    notes: list[str] = field(default_factory=list)
    ours_samples: list[float] = field(default_factory=list)
    baseline_samples: list[float] = field(default_factory=list)
    ours_cpu_ns: float = 0.0
    baseline_cpu_ns: float = 0.0

    @property
    def ratio(self) -> float:
        return self.ours_ns / self.baseline_ns

    @property
    def met(self) -> bool:
        return self.ratio >= self.target if self.higher_is_better else self.ratio <= self.target

    def target_text(self) -> str:
        return f"{'>=' if self.higher_is_better else '<='} {self.target:.2f}"


def result_of(
    benchmark: str, unit: str, ours: Side, baseline: Side, target: float, notes: Sequence[str] = ()
) -> Result:
    return Result(
        benchmark=benchmark,
        unit=unit,
        ours_label=ours.label,
        baseline_label=baseline.label,
        ours_ns=statistics.median(ours.samples),
        baseline_ns=statistics.median(baseline.samples),
        target=target,
        notes=list(notes),
        ours_samples=list(ours.samples),
        baseline_samples=list(baseline.samples),
        ours_cpu_ns=statistics.median(ours.cpu_samples),
        baseline_cpu_ns=statistics.median(baseline.cpu_samples),
    )


def us(ns: float) -> str:
    return f"{ns / 1000:.2f} µs"


def report(result: Result, *, json_path: str | None = None) -> None:
    """Print the table, the notes, and the ratio last on its own line; optionally write JSON for run_all."""
    rows = [
        (result.ours_label, result.ours_samples, result.ours_ns),
        (result.baseline_label, result.baseline_samples, result.baseline_ns),
    ]
    width = max(len(label) for label, _, _ in rows)
    print(f"| {'side':<{width}} | median / {result.unit:<5} | min        | max        | repetitions |")
    print(f"|{'-' * (width + 2)}|{'-' * 16}|{'-' * 12}|{'-' * 12}|{'-' * 13}|")
    for label, samples, median in rows:
        print(
            f"| {label:<{width}} | {us(median):>14} | {us(min(samples)):>10} | {us(max(samples)):>10} |"
            f" {len(samples):>11} |"
        )
    paired = sorted(a / b for a, b in zip(result.ours_samples, result.baseline_samples))
    print(f"per-repetition ratios: min {paired[0]:.3f}, median {statistics.median(paired):.3f}, max {paired[-1]:.3f}")
    print(
        f"cross-check, CPU time of the timed thread: {us(result.ours_cpu_ns)} vs {us(result.baseline_cpu_ns)}"
        f" per {result.unit}, ratio {result.ours_cpu_ns / result.baseline_cpu_ns:.2f}"
    )
    for note in result.notes:
        print(f"note: {note}")
    if json_path:
        data = asdict(result)
        data.update(ratio=result.ratio, met=result.met, target_text=result.target_text())
        Path(json_path).write_text(json.dumps(data, indent=2), encoding="utf-8")
    print(f"ratio: {result.ratio:.2f} (target {result.target_text()})")


def machine_info() -> str:
    return (
        f"{os.cpu_count()} CPUs, {platform.system()} {platform.release()} {platform.machine()}, "
        f"{platform.python_implementation()} {platform.python_version()}"
    )


def arguments(description: str, argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="a smoke run with tiny sizes (a few seconds)")
    parser.add_argument("--repetitions", type=int, default=None, help="measured repetitions per side")
    parser.add_argument("--size", type=int, default=None, help="units of work per repetition")
    parser.add_argument("--json", metavar="PATH", default=None, help="also write the result as JSON to PATH")
    parser.add_argument(
        "--standard-json",
        action="store_true",
        help="write records with the standard library's json even where orjson (the fast extra) is installed",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="instead of comparing, profile the otel_maxim side (pyinstrument if installed, else cProfile)",
    )
    return parser.parse_args(argv)


def json_style(args: argparse.Namespace) -> tuple[str, bool]:
    """What writes the records' JSON in this run (``--standard-json`` or not): its name, and ``fast_json``."""
    from otel_maxim.records import ORJSON_AVAILABLE  # noqa: PLC0415 - after sys.path is set

    fast = ORJSON_AVAILABLE and not args.standard_json
    return ("orjson" if fast else "json"), fast


def profile(side: Side, repetitions: int) -> None:
    """Run ``side`` under a profiler (only its timed part) and print where the time goes."""
    try:
        from pyinstrument import Profiler  # noqa: PLC0415 - optional
    except ImportError:
        Profiler = None  # noqa: N806
    start: Callable[[], Any]
    stop: Callable[[], Any]
    show: Callable[[], Any]
    if Profiler is not None:
        sampler = Profiler(interval=0.0002)
        start, stop = sampler.start, sampler.stop
        show = lambda: print(sampler.output_text(unicode=False, color=False, show_all=False))  # noqa: E731
    else:
        import cProfile  # noqa: PLC0415
        import pstats  # noqa: PLC0415

        tracer = cProfile.Profile()
        start, stop = tracer.enable, tracer.disable
        show = lambda: pstats.Stats(tracer).sort_stats("tottime").print_stats(25)  # noqa: E731
    for _ in range(repetitions):
        state = side.prepare()
        start()
        side.run(state)
        stop()
        side.finish(state)
    show()
