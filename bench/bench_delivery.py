"""Delivery benchmark: spans per second end to end into a local Maxim fake, and memory while Maxim is down.

Run by hand (from the repository root)::

    python bench/bench_delivery.py            # the numbers for the README
    python bench/bench_delivery.py --quick    # a smoke run (the tests call it)

Three phases, each in a fresh process so their memory figures do not mix; the
fake server (``tests/fake_maxim.py``) runs in its own process too, so it does
not compete with the pipeline for the GIL:

1. ``throughput``: spans made with the real OTel SDK (TracerProvider ->
   MaximSpanProcessor -> MaximSpanExporter -> MaximApiSink), timed from the
   first span to the moment the server has acknowledged every record.  The
   producer waits while more than four batches are queued (a closed loop: the
   pipeline's sustainable pace; see ``phase_throughput``).  ``sdk-only`` makes
   the same spans through the SDK alone, the ceiling of any exporter.  The two
   alternate for ``--rounds`` rounds (5; 1 with ``--quick``), each run in a new
   process, and the medians are reported with every round's figures.
2. ``down``: the same pipeline with nothing listening at the API's address:
   every record goes to the disk spool.  Reports the pace and the process's
   resident memory (sampled as the spans go by, and its peak).  Spans are
   handed to the exporter in batches of 512 on the producing thread (what the
   BatchSpanProcessor's worker does), so the SDK's queue, bounded by
   ``OTEL_BSP_MAX_QUEUE_SIZE`` and not ours, neither drops spans nor blurs the
   figure.  ``down-traced`` runs it again under tracemalloc for the peak of
   Python allocations (tracemalloc slows it down several times).
3. ``replay``: a new process with the same spool directory, the server up:
   the time it takes to deliver the spool.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import requests
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider

ROOT = Path(__file__).resolve().parent.parent
FAKE = ROOT / "tests" / "fake_maxim.py"
KEY = "bench-key"
REPO = "bench-repo"
SPANS_PER_TRACE = 4
#: Most spans the throughput phase lets wait in the SDK's queue (four export batches).
PACED_BACKLOG = 4 * 512
_RSS_UNIT = 2**20 if sys.platform == "darwin" else 2**10  # ru_maxrss is in bytes on macOS, KiB on Linux


class Counting:
    """A sink in front of the real one that counts the record lines it is given."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.lines = 0

    def write(self, lines: Sequence[str]) -> bool:
        self.lines += len(lines)
        return bool(self.inner.write(lines))

    def flush(self, timeout: float) -> bool:
        return bool(self.inner.flush(timeout))

    def close(self, timeout: float) -> None:
        self.inner.close(timeout)


class InlineBatches(SpanProcessor):
    """Hand ended spans to the exporter 512 at a time, on the thread that ends them."""

    def __init__(self, exporter: Any, size: int = 512) -> None:
        self.exporter = exporter
        self.size = size
        self.batch: list[ReadableSpan] = []

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        self.batch.append(span)
        if len(self.batch) >= self.size:
            self.exporter.export(self.batch)
            self.batch = []

    def shutdown(self) -> None:
        self.force_flush()
        self.exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        if self.batch:
            self.exporter.export(self.batch)
            self.batch = []
        return True


def current_rss_mib() -> float:
    """Resident memory now (Linux), else the peak so far."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / _RSS_UNIT


def memory_sample() -> tuple[float, int]:
    """Resident memory (MiB) and the blocks Python's allocator has handed out and not taken back.

    The blocks tell what the process holds from what the C allocator keeps: glibc raises its mmap
    and trim thresholds after a large block is freed (a 5 MB request body, say), and keeps up to
    twice that much freed memory in its heap, so RSS can rise to a plateau while the objects do not.
    """
    return current_rss_mib(), sys.getallocatedblocks()


def produce(
    provider: TracerProvider,
    spans: int,
    samples: list[tuple[float, int]] | None = None,
    pace: Callable[[], None] | None = None,
) -> None:
    """Traces of a root (with a session, input and output) and three children, one of them an LLM call.

    ``samples`` gets (resident MiB, Python's allocated blocks) at 0, 25, 50 and 75 % of the spans.
    ``pace`` is called before each trace (the producer waits there while the pipeline catches up).
    """
    tracer = provider.get_tracer("bench")
    traces = spans // SPANS_PER_TRACE
    for i in range(traces):
        if samples is not None and i % max(1, traces // 4) == 0:
            samples.append(memory_sample())
        if pace is not None:
            pace()
        attributes = {
            "session.id": f"session-{i % 100}",
            "maxim.input": f"Question {i}: where is my order? " * 3,
            "maxim.output": f"Answer {i}: it shipped yesterday. " * 3,
        }
        with tracer.start_as_current_span("turn", attributes=attributes):
            with tracer.start_as_current_span("agent"):
                with tracer.start_as_current_span(
                    "chat gpt-4o-mini",
                    attributes={
                        "gen_ai.operation.name": "chat",
                        "gen_ai.system": "openai",
                        "gen_ai.request.model": "gpt-4o-mini",
                        "gen_ai.usage.input_tokens": 25,
                        "gen_ai.usage.output_tokens": 12,
                    },
                ):
                    pass
                with tracer.start_as_current_span("lookup_order", attributes={"gen_ai.operation.name": "execute_tool"}):
                    pass


def sink_for(port: int, spool: str, **options: Any) -> Any:
    from otel_maxim.sinks.maxim_api import MaximApiSink  # noqa: PLC0415 - after the phase's tracemalloc starts

    url = f"http://127.0.0.1:{port}"
    return MaximApiSink(api_key=KEY, repo_id=REPO, base_url=url, spool_dir=spool, check_repository=False, **options)


def server_stats(port: int) -> dict[str, int]:
    result: dict[str, int] = requests.get(f"http://127.0.0.1:{port}/_fake/stats", timeout=10).json()
    return result


# --- phases (each in its own process) ----------------------------------------------------------


def phase_throughput(spans: int, port: int, spool: str) -> dict[str, Any]:
    from otel_maxim import MaximSpanExporter, MaximSpanProcessor  # noqa: PLC0415

    sink = Counting(sink_for(port, spool))
    exporter = MaximSpanExporter(sink=sink)
    # A queue that could hold the whole run, so no span is dropped, and a producer that waits while
    # more than PACED_BACKLOG spans are queued: the pipeline's sustainable pace, as a closed-loop load
    # generator measures it.  Unpaced, the producer outruns the pipeline, the backlog of live spans grows
    # to the whole run, and the garbage collector's full passes over it (not the pipeline) set the pace.
    processor = MaximSpanProcessor(exporter, max_queue_size=spans + 1, max_export_batch_size=512)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    # The SDK's queue, read for its length only: private, and it moved in SDK 1.34.
    batching = getattr(processor, "_batch_processor", None)
    queue = batching._queue if batching is not None else processor.queue  # type: ignore[attr-defined]

    def pace() -> None:
        while len(queue) > PACED_BACKLOG:
            time.sleep(0.0005)

    before = server_stats(port)  # the server outlives the phase: count only this run's records and POSTs
    started = time.perf_counter()
    produce(provider, spans, pace=pace)
    produced = time.perf_counter() - started
    processor.force_flush(600_000)
    while server_stats(port)["distinct"] - before["distinct"] < sink.lines:
        time.sleep(0.005)
    elapsed = time.perf_counter() - started
    provider.shutdown()
    stats = server_stats(port)
    return {
        "spans": spans,
        "records": sink.lines,
        "seconds": elapsed,
        "spans_per_second": spans / elapsed,
        "records_per_second": sink.lines / elapsed,
        "producing_seconds": produced,
        "posts": stats["posts"] - before["posts"],
    }


def phase_down(spans: int, port: int, spool: str, *, traced: bool = False) -> dict[str, Any]:
    if traced:
        tracemalloc.start()
    from otel_maxim import MaximSpanExporter  # noqa: PLC0415

    inner = sink_for(port, spool, export_timeout=1.0)
    sink = Counting(inner)
    exporter = MaximSpanExporter(sink=sink)
    provider = TracerProvider()
    provider.add_span_processor(InlineBatches(exporter))
    samples: list[tuple[float, int]] = []
    started = time.perf_counter()
    produce(provider, spans, samples)
    provider.force_flush()
    elapsed = time.perf_counter() - started
    samples.append(memory_sample())
    stats = inner.stats()
    _, peak = tracemalloc.get_traced_memory() if traced else (0, 0)
    tracemalloc.stop()
    provider.shutdown()  # the API is still down: close() leaves everything in the spool
    spool_bytes = sum(p.stat().st_size for p in Path(spool).rglob("*.seg"))
    return {
        "spans": spans,
        "records": sink.lines,
        "seconds": elapsed,
        "spans_per_second": spans / elapsed,
        "tracemalloc_peak_mib": peak / 2**20,
        "rss_samples_mib": [rss for rss, _ in samples],
        "block_samples": [blocks for _, blocks in samples],
        "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / _RSS_UNIT,
        "memory_bytes_at_end": stats["memory_bytes"],
        "refused_records": stats["refused_records"],
        "spool_mib": spool_bytes / 2**20,
    }


def phase_sdk_only(spans: int, port: int, spool: str) -> dict[str, Any]:
    """The same spans through the SDK alone (a BatchSpanProcessor, an exporter that does nothing): the ceiling."""
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult  # noqa: PLC0415

    class Nothing(SpanExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    processor = BatchSpanProcessor(Nothing(), max_queue_size=spans + 1, max_export_batch_size=512)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    started = time.perf_counter()
    produce(provider, spans)
    processor.force_flush(600_000)
    elapsed = time.perf_counter() - started
    provider.shutdown()
    return {"spans": spans, "seconds": elapsed, "spans_per_second": spans / elapsed}


def phase_up_memory(spans: int, port: int, spool: str) -> dict[str, Any]:
    """Many spans with the API up, exported 512 at a time on the producing thread, every record delivered.

    The producer waits for the export of each batch (as ``phase_down``), so nothing piles up in
    the SDK's queue and what is measured is the pipeline's own memory as spans flow through it.
    """
    from otel_maxim import MaximSpanExporter  # noqa: PLC0415

    sink = Counting(sink_for(port, spool))
    exporter = MaximSpanExporter(sink=sink)
    provider = TracerProvider()
    provider.add_span_processor(InlineBatches(exporter))
    before = server_stats(port)["distinct"]
    samples: list[tuple[float, int]] = []
    started = time.perf_counter()
    produce(provider, spans, samples)
    provider.force_flush()
    exporter.force_flush(600_000)
    while server_stats(port)["distinct"] - before < sink.lines:
        time.sleep(0.005)
    elapsed = time.perf_counter() - started
    samples.append(memory_sample())
    provider.shutdown()
    return {
        "spans": spans,
        "records": sink.lines,
        "seconds": elapsed,
        "spans_per_second": spans / elapsed,
        "rss_samples_mib": [rss for rss, _ in samples],
        "block_samples": [blocks for _, blocks in samples],
        "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / _RSS_UNIT,
    }


def phase_replay(records: int, port: int, spool: str) -> dict[str, Any]:
    sink = sink_for(port, spool)
    before = server_stats(port)["distinct"]
    started = time.perf_counter()
    flushed = sink.flush(600)
    elapsed = time.perf_counter() - started
    sink.close(10)
    delivered = server_stats(port)["distinct"] - before
    return {
        "records": delivered,
        "expected": records,
        "flushed": flushed,
        "seconds": elapsed,
        "records_per_second": delivered / elapsed,
    }


# --- orchestration ----------------------------------------------------------------------------


def start_server(port: int = 0) -> tuple[subprocess.Popen[str], int]:
    command = [sys.executable, str(FAKE), "--port", str(port), "--api-key", KEY, "--repo", REPO]
    server = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert server.stdout is not None
    first = server.stdout.readline().split()
    if first[:1] != ["PORT"]:
        server.kill()
        raise RuntimeError("the fake server did not start")
    return server, int(first[1])


def stop_server(server: subprocess.Popen[str]) -> None:
    assert server.stdin is not None
    server.stdin.close()
    try:
        server.wait(10)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def run_phase(phase: str, count: int, port: int, spool: str) -> dict[str, Any]:
    command = [sys.executable, __file__, "--phase", phase, "--count", str(count), "--port", str(port), "--spool", spool]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(f"phase {phase} failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def blocks_text(run: dict[str, Any]) -> str:
    blocks = ", ".join(f"{count / 1000:.0f}" for count in run["block_samples"])
    return f"Python's allocated blocks (thousands) at 0/25/50/75/100 %: {blocks}"


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median pace (the upper one of an even number)."""
    return sorted(runs, key=lambda run: run["spans_per_second"])[len(runs) // 2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="otel_maxim delivery benchmark")
    parser.add_argument("--quick", action="store_true", help="a small smoke run")
    parser.add_argument("--spans", type=int, default=None, help="spans for the throughput phase (default 100000)")
    parser.add_argument("--down-spans", type=int, default=None, help="spans while the API is down (default 200000)")
    parser.add_argument(
        "--memory-spans", type=int, default=None, help="spans for the memory run with the API up (default 1000000)"
    )
    parser.add_argument(
        "--rounds",
        type=positive,
        default=None,
        help="alternating rounds of the throughput and SDK-alone runs (default 5)",
    )
    parser.add_argument("--no-tracemalloc", action="store_true", help="skip the (slow) tracemalloc run")
    parser.add_argument(
        "--phase",
        choices=["throughput", "sdk-only", "up-memory", "down", "down-traced", "replay"],
        help=argparse.SUPPRESS,
    )
    parser.add_argument("--count", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--spool", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.phase is not None:
        phases = {
            "throughput": phase_throughput,
            "up-memory": phase_up_memory,
            "sdk-only": phase_sdk_only,
            "down": phase_down,
            "down-traced": lambda n, port, spool: phase_down(n, port, spool, traced=True),
            "replay": phase_replay,
        }
        print(json.dumps(phases[args.phase](args.count, args.port, args.spool)))
        return 0

    spans = args.spans or (2_000 if args.quick else 100_000)
    rounds = args.rounds if args.rounds is not None else (1 if args.quick else 5)
    down_spans = args.down_spans or (4_000 if args.quick else 200_000)
    memory_spans = args.memory_spans or (4_000 if args.quick else 1_000_000)
    print(f"otel_maxim delivery benchmark: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory(prefix="otel-maxim-bench-") as work:
        server, port = start_server()
        try:
            # Alternating rounds, each phase in a new process; the medians are reported.
            ups: list[dict[str, Any]] = []
            ceilings: list[dict[str, Any]] = []
            for round_ in range(rounds):
                ups.append(run_phase("throughput", spans, port, os.path.join(work, f"spool-up-{round_}")))
                ceilings.append(run_phase("sdk-only", spans, port, ""))
            up = median_run(ups)
            ceiling = median_run(ceilings)
            print(
                f"end to end, Maxim up:   {up['spans_per_second']:>9,.0f} spans/s"
                f"  ({up['spans']:,} spans -> {up['records']:,} records acknowledged in {up['seconds']:.2f} s,"
                f" {up['posts']} POSTs; {up['records_per_second']:,.0f} records/s)"
            )
            print(
                f"  the SDK alone, same spans (BatchSpanProcessor, no-op exporter): "
                f"{ceiling['spans_per_second']:,.0f} spans/s, the ceiling of any exporter"
            )
            if rounds > 1:
                print(
                    f"  medians of {rounds} alternating rounds; otel_maxim "
                    + ", ".join(f"{run['spans_per_second']:,.0f}" for run in ups)
                    + " spans/s; the SDK alone "
                    + ", ".join(f"{run['spans_per_second']:,.0f}" for run in ceilings)
                    + " spans/s; share of the SDK alone per round "
                    + ", ".join(f"{u['spans_per_second'] / c['spans_per_second']:.2f}" for u, c in zip(ups, ceilings))
                )
            flowing = run_phase("up-memory", memory_spans, port, os.path.join(work, "spool-memory"))
        finally:
            stop_server(server)
        rss = ", ".join(f"{mib:.0f}" for mib in flowing["rss_samples_mib"])
        print(
            f"memory, Maxim up:       {flowing['spans_per_second']:>9,.0f} spans/s"
            f"  ({flowing['spans']:,} spans -> {flowing['records']:,} records acknowledged in"
            f" {flowing['seconds']:.2f} s, batches exported on the producing thread)"
        )
        print(
            f"  memory while up: max RSS {flowing['max_rss_mib']:.1f} MiB; RSS at 0/25/50/75/100 %: {rss} MiB;"
            f" {blocks_text(flowing)}"
        )
        port = free_port()  # nothing listens there: connection refused, as when Maxim is unreachable
        spool = os.path.join(work, "spool-down")
        down = run_phase("down", down_spans, port, spool)
        print(
            f"Maxim down, spooling:   {down['spans_per_second']:>9,.0f} spans/s"
            f"  ({down['spans']:,} spans -> {down['records']:,} records, {down['spool_mib']:.1f} MiB on disk,"
            f" {down['refused_records']} refused)"
        )
        rss = ", ".join(f"{mib:.0f}" for mib in down["rss_samples_mib"])
        print(
            f"  memory while down: max RSS {down['max_rss_mib']:.1f} MiB; RSS at 0/25/50/75/100 %: {rss} MiB;"
            f" records held in memory by the sink at the end: {down['memory_bytes_at_end']} bytes;"
            f" {blocks_text(down)}"
        )
        if not args.no_tracemalloc:
            traced = run_phase("down-traced", down_spans, free_port(), os.path.join(work, "spool-traced"))
            print(f"  peak of Python allocations (tracemalloc, same run): {traced['tracemalloc_peak_mib']:.1f} MiB")
        server, port = start_server(port)
        try:
            replay = run_phase("replay", down["records"], port, spool)
        finally:
            stop_server(server)
        print(
            f"replay by a new process: {replay['records_per_second']:>8,.0f} records/s"
            f"  ({replay['records']:,} of {replay['expected']:,} records in {replay['seconds']:.2f} s)"
        )
        if replay["records"] != replay["expected"] or not replay["flushed"]:
            print("ERROR: the replay did not deliver everything", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
