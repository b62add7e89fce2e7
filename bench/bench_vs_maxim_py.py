"""Benchmark 3: what the application thread pays per trace, otel_maxim vs Maxim's own SDK (maxim-py).

Run from the repository root::

    python bench/bench_vs_maxim_py.py            # the numbers for the README
    python bench/bench_vs_maxim_py.py --quick    # a smoke run (the tests call it)
    python bench/bench_vs_maxim_py.py --profile  # where the otel_maxim side's time goes

Both sides record the same thing per iteration: a session, a trace in it, a span in the
trace, a generation with its result (a chat completion with usage) and a tool call with
its result, everything ended, then the session ended.

ours:     ``with otel_maxim.session(...)``, ``session.trace(...)``, a span, a chat span with
          15 GenAI attributes (messages JSON-encoded inside the loop, as an instrumentation
          does), a tool span, ``session.end()``: five spans through a TracerProvider with
          ``MaximSpanProcessor(MaximSpanExporter(sink=<discards>))``.  As in bench_processor.py,
          the processor's worker sleeps through a repetition and its queue is drained with
          ``force_flush()`` between repetitions, untimed.
maxim-py: ``logger.session()``, ``session.trace()``, ``trace.span()``, ``span.generation()``,
          ``generation.result()``, ``span.tool_call()``, ``tool_call.result()``, ``span.end()``,
          ``trace.end()``, ``session.end()``, with the writer pointed at a local HTTP server
          (a child process on 127.0.0.1, so that it does not compete for this process's GIL) that
          accepts everything.  The ids maxim-py needs are
          made before the timed section (ours makes its own ids inside it).

maxim-py's background flushing (``--maxim-py-flush``):

deferred (default): no flush inside the timed section, as for ours.  ``writer.max_in_memory_logs``
          (the queue length past which ``commit()`` flushes, 100) is raised above a repetition's
          logs and the periodic flush thread's interval is set to an hour (maxim-py 3.14 ignores
          ``auto_flush=False``: ``config["auto_flush"] or True``); after each repetition,
          untimed, ``writer.flush(is_sync=True)`` posts everything to the local server.
          This can only flatter maxim-py: its application thread no longer drains its queue
          every 100 logs.
natural:  maxim-py's defaults: ``commit()`` drains the queue every 100 logs and hands the batch
          to its 4-thread executor, whose HTTP posts run while the application thread is timed;
          the 10-second flush thread runs.  After each repetition, untimed, what is left is
          flushed and the in-flight posts are awaited, so they never spill into the next one.

At the end maxim-py is shut down as ``tests/maxim_py_capture.py`` does (its cleanup minus the
2 s sleep, its singleton released, its spill directory removed) and the server is stopped.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from http.server import ThreadingHTTPServer
from typing import Any

from common import (
    GENERATION_REQUEST,
    INPUT_MESSAGES,
    OUTPUT_MESSAGES,
    TOOL_ARGUMENTS,
    TOOL_ATTRIBUTES,
    TOOL_RESULT,
    DiscardSink,
    NoopExporter,
    Side,
    alternate,
    idle_worker_settings,
    machine_info,
    profile,
    report,
    result_of,
)
from opentelemetry.context import Context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Tracer

import otel_maxim
from tests.maxim_py_capture import JsonReplyHandler, close_maxim

API_KEY = "bench-key"
REPO_ID = "bench-repo"
SPANS_PER_TRACE = 5  # root, span, generation, tool call, the session's end marker
LOGS_PER_TRACE = 13  # what maxim-py commits per iteration (counted at run time too)

CHAT_MESSAGES = [
    {"role": "system", "content": INPUT_MESSAGES[0]["parts"][0]["content"]},
    {"role": "user", "content": INPUT_MESSAGES[1]["parts"][0]["content"]},
]
ANSWER = OUTPUT_MESSAGES[0]["parts"][0]["content"]
MODEL_PARAMETERS = {"temperature": 0.2, "max_tokens": 512, "top_p": 1.0}
REQUEST_STATIC = {k: v for k, v in GENERATION_REQUEST.items() if k != "gen_ai.input.messages"}
TOOL_STATIC = {k: v for k, v in TOOL_ATTRIBUTES.items() if k != "gen_ai.tool.call.arguments"}


# --- ours --------------------------------------------------------------------------------------------


def llm_and_tool(tracer: Tracer) -> None:
    """The generation and the tool call, as instrumentations record them (JSON encoded here, in the loop)."""
    dumps = json.dumps
    with tracer.start_as_current_span("chat gpt-4o-mini", attributes=REQUEST_STATIC) as generation:
        generation.set_attribute("gen_ai.input.messages", dumps(INPUT_MESSAGES))
        generation.set_attributes(
            {
                "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
                "gen_ai.response.id": "chatcmpl-bench",
                "gen_ai.response.finish_reasons": ("stop",),
                "gen_ai.usage.input_tokens": 42,
                "gen_ai.usage.output_tokens": 17,
                "gen_ai.output.messages": dumps(OUTPUT_MESSAGES),
            }
        )
    with tracer.start_as_current_span("execute_tool get_order", attributes=TOOL_STATIC) as tool:
        tool.set_attribute("gen_ai.tool.call.arguments", dumps(TOOL_ARGUMENTS))
        tool.set_attribute("gen_ai.tool.call.result", TOOL_RESULT)


class Ours:
    """otel_maxim's API and MaximSpanProcessor; or, with ``floor=True``, the bare OTel SDK doing the same spans.

    The floor is what any design built on OTel SDK spans pays at least: the same five spans
    (``session.id`` set as an attribute, the end marker as a plain span) through a
    BatchSpanProcessor with a no-op exporter, no otel_maxim code at all.
    """

    def __init__(self, iterations: int, *, floor: bool = False) -> None:
        self.iterations = iterations
        self.floor = floor
        self.sink = DiscardSink()
        settings = idle_worker_settings(iterations * SPANS_PER_TRACE)
        if floor:
            self.processor: BatchSpanProcessor = BatchSpanProcessor(NoopExporter(), **settings)
        else:
            self.processor = otel_maxim.MaximSpanProcessor(otel_maxim.MaximSpanExporter(sink=self.sink), **settings)
        self.provider = TracerProvider(shutdown_on_exit=False)
        self.provider.add_span_processor(self.processor)
        self.tracer = self.provider.get_tracer("bench")
        self.repetition = 0

    def prepare(self) -> list[str]:
        self.repetition += 1
        return [f"session-{self.repetition}-{i}" for i in range(self.iterations)]

    def run(self, session_ids: list[str]) -> int:
        return self._run_floor(session_ids) if self.floor else self._run(session_ids)

    def _run(self, session_ids: list[str]) -> int:
        provider = self.provider
        tracer = self.tracer
        for session_id in session_ids:
            with otel_maxim.session(session_id, name="Support chat", tracer_provider=provider) as session:
                with session.trace("turn"), tracer.start_as_current_span("agent"):
                    llm_and_tool(tracer)
            session.end()
        return len(session_ids)

    def _run_floor(self, session_ids: list[str]) -> int:
        tracer = self.tracer
        empty = Context()
        for session_id in session_ids:
            root_attributes = {"session.id": session_id, "session.name": "Support chat"}
            with tracer.start_as_current_span("turn", attributes=root_attributes):
                with tracer.start_as_current_span("agent"):
                    llm_and_tool(tracer)
            marker = tracer.start_span(
                "maxim.session.end", context=empty, attributes={"session.id": session_id, "maxim.session.end": True}
            )
            marker.end()
        return len(session_ids)

    def finish(self, _: Any) -> None:
        self.processor.force_flush()  # the exporter's work, untimed

    def shutdown(self) -> None:
        self.provider.shutdown()


# --- maxim-py ----------------------------------------------------------------------------------------


class AcceptAll:
    """An HTTP server that answers every maxim-py request with 200 and counts the log lines.

    It runs in a child process (``--serve``), so that answering maxim-py's posts does not
    compete with the timed thread for this process's GIL.
    """

    def __init__(self) -> None:
        command = [sys.executable, os.path.abspath(__file__), "--serve"]
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        first = self.process.stdout.readline().split()
        if first[:1] != ["PORT"]:
            self.process.kill()
            raise RuntimeError("the local server did not start")
        self.url = f"http://127.0.0.1:{first[1]}"
        self.lines = self.posts = 0

    def stats(self) -> None:
        with urllib.request.urlopen(f"{self.url}/_stats", timeout=10) as reply:
            data = json.loads(reply.read())
        self.lines, self.posts = data["lines"], data["posts"]

    def stop(self) -> None:
        try:
            self.stats()
        finally:
            assert self.process.stdin is not None
            self.process.stdin.close()  # the server's signal to stop
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def serve() -> int:
    """The child process: serve on an ephemeral port until standard input closes."""
    counts = {"lines": 0, "posts": 0}
    lock = threading.Lock()

    class Handler(JsonReplyHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as Maxim's API

        def reply(self, body: bytes) -> dict[str, Any]:
            if self.command == "POST" and self.path.startswith("/api/sdk/v3/log"):
                with lock:
                    counts["posts"] += 1
                    counts["lines"] += sum(1 for line in body.split(b"\n") if line)
            if self.path == "/_stats":
                with lock:
                    return dict(counts)
            if "log-repositories" in self.path:
                return {"data": {"id": REPO_ID}}
            return {"data": {}}

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    print(f"PORT {server.server_address[1]}", flush=True)
    sys.stdin.read()  # until the parent closes our standard input (or dies)
    server.shutdown()
    server.server_close()
    return 0


class MaximPy:
    def __init__(self, iterations: int, mode: str) -> None:
        from maxim import Maxim  # noqa: PLC0415 - only here

        self.iterations = iterations
        self.mode = mode
        self.server = AcceptAll()
        self.committed = 0
        with contextlib.redirect_stdout(io.StringIO()):  # Maxim() prints a banner
            self.maxim = Maxim({"api_key": API_KEY, "base_url": self.server.url})
        config: dict[str, Any] = {"id": REPO_ID}
        if mode == "deferred":
            config["flush_interval"] = 3600  # one flush at start, then none while we measure
        self.logger = self.maxim.logger(config)
        self.writer = self.logger.writer
        if mode == "deferred":
            self.writer.max_in_memory_logs = iterations * LOGS_PER_TRACE * 2 + 1_000
        commit = self.writer.commit

        def counting_commit(log: Any) -> None:  # counts what the application committed (an int add)
            self.committed += 1
            commit(log)

        self.writer.commit = counting_commit

    def prepare(self) -> list[tuple[str, str, str, str, str]]:
        return [tuple(str(uuid.uuid4()) for _ in range(5)) for _ in range(self.iterations)]  # type: ignore[misc]

    def run(self, ids: list[tuple[str, str, str, str, str]]) -> int:
        logger = self.logger
        for session_id, trace_id, span_id, generation_id, tool_id in ids:
            session = logger.session({"id": session_id, "name": "Support chat"})
            trace = session.trace({"id": trace_id, "name": "turn"})
            span = trace.span({"id": span_id, "name": "agent"})
            generation = span.generation(
                {
                    "id": generation_id,
                    "name": "chat gpt-4o-mini",
                    "provider": "openai",
                    "model": "gpt-4o-mini",
                    "messages": CHAT_MESSAGES,
                    "model_parameters": MODEL_PARAMETERS,
                }
            )
            generation.result(
                {
                    "id": "chatcmpl-bench",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": "gpt-4o-mini-2024-07-18",
                    "choices": [
                        {"index": 0, "message": {"role": "assistant", "content": ANSWER}, "finish_reason": "stop"}
                    ],
                    "usage": {"prompt_tokens": 42, "completion_tokens": 17, "total_tokens": 59},
                }
            )
            tool = span.tool_call(
                {
                    "id": tool_id,
                    "name": "get_order",
                    "description": "Look an order up by its id",
                    "args": json.dumps(TOOL_ARGUMENTS),
                }
            )
            tool.result(TOOL_RESULT)
            span.end()
            trace.end()
            session.end()
        return len(ids)

    def _in_flight(self) -> int:
        return int(getattr(self.writer, "_LogWriter__in_flight", 0))

    def finish(self, _: Any) -> None:
        self.writer.flush(is_sync=True)  # untimed: post what is queued to the local server
        deadline = time.monotonic() + 60
        while self._in_flight() and time.monotonic() < deadline:  # natural mode: earlier posts still running
            time.sleep(0.001)

    def shutdown(self) -> None:
        """What ``Maxim.cleanup`` does, minus its 2 s sleep (as the tests do); stop the server."""
        try:
            close_maxim(self.maxim, self.logger)
        finally:
            self.server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run with tiny sizes (a few seconds)")
    parser.add_argument("--repetitions", type=int, default=None, help="measured repetitions per side")
    parser.add_argument("--size", type=int, default=None, help="traces per repetition")
    parser.add_argument("--json", metavar="PATH", default=None, help="also write the result as JSON to PATH")
    parser.add_argument("--profile", action="store_true", help="profile the otel_maxim side instead of comparing")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--maxim-py-flush",
        choices=["deferred", "natural"],
        default="deferred",
        help="maxim-py's background flushing during the timed section (see the module docstring)",
    )
    args = parser.parse_args(argv)
    if args.serve:
        return serve()
    iterations = args.size or (30 if args.quick else 600)
    repetitions = args.repetitions or (3 if args.quick else 31)
    warmup = 1 if args.quick else 2

    ours = Ours(iterations)
    ours_side = Side("otel_maxim (MaximSpanProcessor)", ours.run, ours.prepare, ours.finish)
    if args.profile:
        try:
            profile(ours_side, repetitions)
        finally:
            ours.shutdown()
        return 0
    maxim_py = MaximPy(iterations, args.maxim_py_flush)
    theirs = Side(f"maxim-py Logger ({args.maxim_py_flush} flush)", maxim_py.run, maxim_py.prepare, maxim_py.finish)
    floor = Ours(iterations, floor=True)
    floor_side = Side("OTel SDK floor (same spans, BatchSpanProcessor + no-op)", floor.run, floor.prepare, floor.finish)
    print(f"bench_vs_maxim_py: application-thread cost per trace ({machine_info()})")
    print(f"{iterations} traces per repetition, {warmup} warm-up + {repetitions}")
    try:
        alternate(ours_side, theirs, floor_side, repetitions=repetitions, warmup=warmup)
    finally:
        ours.shutdown()
        floor.shutdown()
        maxim_py.shutdown()
    floor_ns = statistics.median(floor_side.samples)
    ours_ns, theirs_ns = statistics.median(ours_side.samples), statistics.median(theirs.samples)
    runs = warmup + repetitions
    result = result_of(
        "3. application-thread cost per trace vs maxim-py",
        "trace",
        ours_side,
        theirs,
        0.5,
        notes=[
            f"maxim-py committed {maxim_py.committed} logs ({maxim_py.committed / (runs * iterations):.0f} per trace);"
            f" the local server accepted {maxim_py.server.lines} in {maxim_py.server.posts} POSTs",
            f"otel_maxim made {ours.sink.lines} records ({ours.sink.lines / (runs * iterations):.0f} per trace),"
            " exported untimed between repetitions",
            f"floor, measured in the same rotation: {floor_side.label}: {floor_ns / 1000:.2f} µs/trace,"
            f" {floor_ns / theirs_ns:.2f} x maxim-py"
            " (the bare SDK making these five spans, no otel_maxim code)",
            f"what otel_maxim adds to an application already traced with the OTel SDK (ours - floor):"
            f" {(ours_ns - floor_ns) / 1000:.2f} µs/trace, {(ours_ns - floor_ns) / theirs_ns:.2f} x maxim-py"
            " (not the benchmark's ratio, which counts the SDK's spans too)",
        ],
    )
    report(result, json_path=args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
