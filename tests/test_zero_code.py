"""Zero-code setup: ``OTEL_TRACES_EXPORTER=maxim opentelemetry-instrument python app.py`` gives Maxim sessions.

The end-to-end tests run real processes: ``opentelemetry-instrument`` starts a FastAPI app
(instrumented by opentelemetry-instrumentation-fastapi, with no OpenTelemetry setup code),
the test sends it requests with a W3C ``baggage`` header, stops it, and reads the records
file it wrote.

With and without opentelemetry-distro.  The test environment has the distro installed.  The
"without" case tells the loader to use no distro and no configurator: ``OTEL_PYTHON_DISTRO``
and ``OTEL_PYTHON_CONFIGURATOR`` name entry points that nothing registers.  The loader then
takes the same path as when nothing is installed (``DefaultDistro``, no configurator), which
the app checks from inside: ``opentelemetry.distro`` was never imported.  A second virtualenv
without the distro would be as faithful, but building it would take longer than this whole
file.

Processes are always killed (``_Process``); ports are ephemeral (the apps bind port 0 and
print it); no assertion depends on timing.
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest
from opentelemetry import baggage, context, trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_maxim import MaximSpanExporter, SessionBaggageProcessor, auto
from otel_maxim.records import Record, parse
from tests.fake_openai import FakeOpenAIServer
from tests.record_checks import assert_parent_first

ROOT = Path(__file__).resolve().parent.parent
SERVICE = ROOT / "examples" / "service"
BIN = Path(sys.executable).parent
INSTRUMENT = BIN / "opentelemetry-instrument"
#: The longest a process may take to start or stop before the test gives up (a guard, not an assertion).
PATIENCE = 60.0

#: A web app with no OpenTelemetry setup: only the framework, and ``end_session`` on goodbye.
#: Its first line of output says what it runs on, so the test can check the setup it got.
ZERO_CODE_APP = """
import contextlib, json, os, socket, sys

import uvicorn
from fastapi import FastAPI
from opentelemetry import baggage, trace

import otel_maxim

app = FastAPI()


@app.get("/turn")
async def turn() -> dict[str, str]:
    return {"session": str(baggage.get_baggage("session.id"))}


@app.post("/goodbye")
async def goodbye() -> dict[str, str]:
    session_id = str(baggage.get_baggage("session.id"))
    otel_maxim.end_session(session_id)
    return {"ended": session_id}


sock = socket.socket()
sock.bind(("127.0.0.1", 0))
sock.listen(16)
print(json.dumps({
    "port": sock.getsockname()[1],
    "provider": type(trace.get_tracer_provider()).__name__,
    "distro_loaded": "opentelemetry.distro" in sys.modules,
    "metrics_and_logs": [os.environ.get("OTEL_METRICS_EXPORTER"), os.environ.get("OTEL_LOGS_EXPORTER")],
}), flush=True)
with contextlib.suppress(KeyboardInterrupt):  # uvicorn re-raises Ctrl-C once stopped: exit normally
    uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])
"""

#: A script, no server: one span in a context extracted from a ``baggage`` header, then the session's end.
SHORT_APP = """
from opentelemetry import propagate, trace

import otel_maxim

incoming = propagate.extract({"baggage": "session.id=short-1"})
with trace.get_tracer("app").start_as_current_span("request", context=incoming):
    pass
otel_maxim.end_session("short-1")
print(type(trace.get_tracer_provider()).__name__, flush=True)
"""

#: Settings that make the loader take the no-distro path (see the module docstring).
WITHOUT_DISTRO = {"OTEL_PYTHON_DISTRO": "not-installed", "OTEL_PYTHON_CONFIGURATOR": "not-installed"}
#: With the distro, nothing is set either.  It defaults metrics and logs to OTLP/gRPC, whose exporter
#: this environment lacks, as a plain ``pip install opentelemetry-distro`` does; our launcher entry
#: point sets both to ``none`` (otel_maxim/_launcher.py), which the app reports.
WITH_DISTRO: dict[str, str] = {}
#: Spans leave in one batch, when the app stops.  Otherwise the SDK's batching wakes every 5 s, and a
#: wake-up between the end marker (emitted inside the goodbye request) and the end of that request's
#: own spans would send the session's end before the goodbye trace: a real, rare ordering that these
#: tests do not mean to sample.
ONE_BATCH = {"OTEL_BSP_SCHEDULE_DELAY": "600000"}


# --- helpers -----------------------------------------------------------------------------------------


class _Process:
    """A child process whose output lines can be awaited; killed on exit from the ``with`` block if still running."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path) -> None:
        self.stderr_path = cwd / f"stderr-{len(list(cwd.glob('stderr-*')))}.txt"
        self._stderr = open(self.stderr_path, "wb")  # noqa: SIM115 - closed in __exit__
        self.proc = subprocess.Popen(args, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=self._stderr, text=True)
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.output: list[str] = []
        self._pump_thread = threading.Thread(target=self._pump, daemon=True)
        self._pump_thread.start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)
            self.lines.put(line)
        self.lines.put(None)

    def __enter__(self) -> _Process:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(PATIENCE)
        self._pump_thread.join(PATIENCE)  # every line of output is in self.output
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        self._stderr.close()

    @property
    def stderr(self) -> str:
        self._stderr.flush()
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def next_line(self) -> str:
        try:
            line = self.lines.get(timeout=PATIENCE)
        except queue.Empty:
            line = None
        assert line is not None, f"{self.proc.args[-1]} printed nothing; stderr:\n{self.stderr}"
        return line.strip()

    def stop(self, sig: signal.Signals) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(PATIENCE)


def _environment(**settings: str) -> dict[str, str]:
    """The test's environment (conftest removed every OTEL_* and MAXIM_*) plus ``settings``."""
    env = dict(os.environ)
    env.update(settings)
    return env


def _instrumented(script: Path, *args: str) -> list[str]:
    return [str(INSTRUMENT), sys.executable, str(script), *args]


def _request(url: str, *, baggage_header: str | None = None, method: str = "GET") -> Any:
    headers = {"baggage": baggage_header} if baggage_header is not None else {}
    request = urllib.request.Request(url, headers=headers, method=method, data=b"" if method == "POST" else None)
    with urllib.request.urlopen(request, timeout=PATIENCE) as response:
        return json.load(response)


def _records(path: Path) -> list[Record]:
    assert path.exists(), f"no records file at {path}"
    return [parse(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def _traces(records: list[Record]) -> dict[str, Record]:
    return {r.id: r for r in records if r.entity == "trace" and r.action == "create"}


# --- entry points and the hook's decisions (in process) -------------------------------------------------


def test_the_entry_points_load_by_name() -> None:
    (exporter,) = importlib.metadata.entry_points(group="opentelemetry_traces_exporter", name="maxim")
    assert exporter.load() is MaximSpanExporter
    (hook,) = importlib.metadata.entry_points(group="opentelemetry_pre_instrument", name="maxim")
    assert hook.load() is auto.pre_instrument
    (launcher,) = importlib.metadata.entry_points(group="opentelemetry_environment_variables", name="maxim")
    # The launcher offers a flag for each OTEL_* name in these modules: ours must define none, or its
    # flags would clash with the SDK's.
    assert not [name for name in dir(launcher.load()) if name.startswith("OTEL_")]
    # No distro and no configurator of ours: the loader picks one of each, and which one would
    # depend on installation order when opentelemetry-distro is installed too.
    ours = importlib.metadata.distribution("otel-maxim").entry_points
    assert not [ep for ep in ours if ep.group in ("opentelemetry_distro", "opentelemetry_configurator")]


@pytest.mark.parametrize(
    ("traces_exporter", "session_baggage", "exporter_configured", "stamping"),
    [
        (None, None, False, False),
        ("maxim", None, True, True),
        (" console , maxim ", None, True, True),
        ("otlp", None, False, False),
        ("none", None, False, False),
        ("maxim", "false", True, False),
        ("otlp", "true", False, True),
        ("otlp", "1", False, True),
        ("maxim", "maybe", True, True),  # a bad value: a warning, then the default
        ("otlp", "maybe", False, False),
    ],
)
def test_when_the_hook_configures_and_stamps(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    traces_exporter: str | None,
    session_baggage: str | None,
    exporter_configured: bool,
    stamping: bool,
) -> None:
    if traces_exporter is not None:
        monkeypatch.setenv("OTEL_TRACES_EXPORTER", traces_exporter)
    if session_baggage is not None:
        monkeypatch.setenv("MAXIM_SESSION_BAGGAGE", session_baggage)
    configured = auto.EXPORTER_NAME in auto._traces_exporter_names()
    assert configured is exporter_configured
    with caplog.at_level(logging.WARNING):
        assert auto._stamping_wanted(configured) is stamping
    warned = [r.getMessage() for r in caplog.records if "MAXIM_SESSION_BAGGAGE" in r.getMessage()]
    assert bool(warned) is (session_baggage == "maybe")


@pytest.mark.parametrize(
    ("settings", "added"),
    [
        pytest.param({}, {}, id="not-our-exporter"),
        pytest.param({"OTEL_TRACES_EXPORTER": "otlp"}, {}, id="another-exporter"),
        pytest.param(
            {"OTEL_TRACES_EXPORTER": "maxim"},
            {"OTEL_METRICS_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none"},
            id="grpc-default-not-installed",
        ),
        pytest.param(
            {"OTEL_TRACES_EXPORTER": "console,maxim", "OTEL_METRICS_EXPORTER": "console"},
            {"OTEL_LOGS_EXPORTER": "none"},
            id="a-set-variable-is-kept",
        ),
        pytest.param(
            {"OTEL_TRACES_EXPORTER": "maxim", "OTEL_METRICS_EXPORTER": "", "OTEL_LOGS_EXPORTER": "otlp"},
            {},
            id="set-even-if-empty-or-failing",
        ),
        pytest.param(
            {"OTEL_TRACES_EXPORTER": "maxim", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"},
            {},
            id="http-is-installed",
        ),
        pytest.param(
            {"OTEL_TRACES_EXPORTER": "maxim", "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL": "http/protobuf"},
            {"OTEL_METRICS_EXPORTER": "none"},
            id="per-signal-protocol",
        ),
        pytest.param(
            {"OTEL_TRACES_EXPORTER": "maxim", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"},
            {"OTEL_METRICS_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none"},
            id="unsupported-protocol",
        ),
        pytest.param({"OTEL_TRACES_EXPORTER": "maxim", "OTEL_PYTHON_DISTRO": "another"}, {}, id="another-distro"),
        pytest.param(
            {"OTEL_TRACES_EXPORTER": "maxim", "OTEL_PYTHON_DISTRO": "distro"},
            {"OTEL_METRICS_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none"},
            id="distro-by-name",
        ),
    ],
)
def test_what_the_launcher_adds_to_the_environment(settings: dict[str, str], added: dict[str, str]) -> None:
    """Real entry points: opentelemetry-distro and the OTLP/HTTP exporters are installed here, OTLP/gRPC is not."""
    assert not importlib.metadata.entry_points(group="opentelemetry_metrics_exporter", name="otlp_proto_grpc")
    assert auto.launcher_defaults(settings) == added


@pytest.mark.parametrize(
    ("arguments", "found"),
    [
        (["python", "app.py", "--traces_exporter", "otlp"], {}),  # the program's own arguments are not the launcher's
        (["--traces_exporter", "maxim", "python", "app.py"], {"OTEL_TRACES_EXPORTER": "maxim"}),
        (
            ["--traces_exporter=maxim", "--metrics_exporter", "console", "--service_name", "x", "python"],
            {"OTEL_TRACES_EXPORTER": "maxim", "OTEL_METRICS_EXPORTER": "console"},
        ),
        (
            ["--exporter_otlp_protocol", "http/protobuf", "--distro", "distro"],
            {
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                "OTEL_PYTHON_DISTRO": "distro",
            },
        ),
        (["--traces_exporter"], {}),  # no value: the launcher will complain, not us
        # Cut short, as the launcher's argparse allows: the one flag it starts, else (ambiguous) none.
        (
            ["--traces_exp", "maxim", "--metrics_exp=none", "python"],
            {"OTEL_TRACES_EXPORTER": "maxim", "OTEL_METRICS_EXPORTER": "none"},
        ),
        (["--exporter_otlp", "x", "--dis", "y", "python"], {}),
        ([], {}),
    ],
)
def test_the_launcher_flags_read_before_the_launcher_applies_them(arguments: list[str], found: dict[str, str]) -> None:
    assert auto.launcher_flags(arguments) == found


class _AttributesAtExport(InMemorySpanExporter):
    """Keeps each span's attributes as they are when it is exported (a real exporter serializes then)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[dict[str, object]] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.seen.extend(dict(span.attributes or {}) for span in spans)
        return super().export(spans)


def test_stamping_is_added_once_and_only_to_an_sdk_provider(caplog: pytest.LogCaptureFixture) -> None:
    exported = _AttributesAtExport()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exported))  # as the configurator adds it: first
    auto._add_session_stamping(provider)
    auto._add_session_stamping(provider)
    processors = provider._active_span_processor._span_processors  # private, read only to count
    assert sum(isinstance(p, SessionBaggageProcessor) for p in processors) == 1

    token = context.attach(baggage.set_baggage("session.id", "conv-9"))
    try:
        provider.get_tracer("t").start_span("request").end()
        # A long chat evicts the stamp; it is put back before the span reaches the exporter.
        long_chat = provider.get_tracer("t").start_span("llm")
        for n in range(200):
            long_chat.set_attribute(f"llm.input_messages.{n}.message.content", "x")
        long_chat.end()
    finally:
        context.detach(token)
    provider.shutdown()
    assert exported.seen[0] == {"session.id": "conv-9"}
    assert exported.seen[1]["session.id"] == "conv-9"

    with caplog.at_level(logging.WARNING, logger="otel_maxim.auto"):
        auto._add_session_stamping(trace.ProxyTracerProvider())
    assert "not the SDK's TracerProvider" in caplog.text


def test_asked_for_stamping_that_cannot_be_added_is_a_warning() -> None:
    """``MAXIM_SESSION_BAGGAGE=true`` beside another exporter, with no SDK provider: said, not only debugged."""
    script = "import logging; logging.basicConfig(); from otel_maxim import auto; auto.pre_instrument()"
    env = {**os.environ, "MAXIM_SESSION_BAGGAGE": "true", "OTEL_TRACES_EXPORTER": "otlp"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "WARNING:otel_maxim.auto:The global tracer provider is ProxyTracerProvider" in done.stderr


@pytest.mark.parametrize(("propagators", "warned"), [("tracecontext", True), ("tracecontext,baggage", False)])
def test_propagators_that_leave_out_baggage_are_a_warning(propagators: str, warned: bool) -> None:
    """OTEL_PROPAGATORS=tracecontext: a caller's session.id would never reach the spans, without a word."""
    script = (
        "import logging; logging.basicConfig(); from opentelemetry.sdk.trace import TracerProvider; "
        "from otel_maxim import auto; auto._add_session_stamping(TracerProvider())"
    )
    env = {**os.environ, "OTEL_PROPAGATORS": propagators}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert ("do not read the W3C baggage header" in done.stderr) is warned, done.stderr


# --- opentelemetry-instrument, for real --------------------------------------------------------------


def test_opentelemetry_distro_is_installed_here() -> None:
    """The "with distro" cases below are only that if the distro is installed (the test extra pins it)."""
    assert importlib.metadata.version("opentelemetry-distro")
    assert INSTRUMENT.exists(), f"{INSTRUMENT} is missing: install the test extra"


@pytest.mark.parametrize(
    ("setup", "distro"),
    [pytest.param(WITHOUT_DISTRO, False, id="without-distro"), pytest.param(WITH_DISTRO, True, id="with-distro")],
)
def test_sessions_from_the_baggage_header_with_only_environment_variables(
    tmp_path: Path, setup: dict[str, str], distro: bool
) -> None:
    # Only with the distro do metrics and logs need turning off (without it nothing reads those variables).
    metrics_and_logs = ["none", "none"] if distro else [None, None]
    app = tmp_path / "app.py"
    app.write_text(ZERO_CODE_APP, encoding="utf-8")
    # Nothing names the records file: the default, maxim-records.log in the working directory.
    env = _environment(OTEL_TRACES_EXPORTER="maxim", **setup, **ONE_BATCH)
    with _Process(_instrumented(app), env, tmp_path) as process:
        status = json.loads(process.next_line())
        assert status == {
            "port": status["port"],
            "provider": "TracerProvider",
            "distro_loaded": distro,
            "metrics_and_logs": metrics_and_logs,
        }
        url = f"http://127.0.0.1:{status['port']}"
        header = "session.id=zero-code-1,session.name=Zero%20code,maxim.session.tags.channel=web"
        assert _request(f"{url}/turn", baggage_header=header) == {"session": "zero-code-1"}
        assert _request(f"{url}/turn", baggage_header=header) == {"session": "zero-code-1"}
        assert _request(f"{url}/turn") == {"session": "None"}  # no session: a trace of its own
        assert _request(f"{url}/goodbye", baggage_header=header, method="POST") == {"ended": "zero-code-1"}
        # Ctrl-C: uvicorn stops, the program exits normally, and the SDK's exit hook flushes the spans.
        assert process.stop(signal.SIGINT) == 0, process.stderr
        assert "Traceback" not in process.stderr, process.stderr

    records = _records(tmp_path / "maxim-records.log")
    assert_parent_first(records)
    session = [r for r in records if r.entity == "session"]
    assert [(r.id, r.action) for r in session] == [("zero-code-1", "create"), ("zero-code-1", "end")]
    assert session[0].data["name"] == "Zero code"
    assert session[0].data["tags"] == {"channel": "web"}
    traces = _traces(records)
    assert sorted((t.data["name"], t.data.get("sessionId", "-")) for t in traces.values()) == [
        ("GET /turn", "-"),
        ("GET /turn", "zero-code-1"),
        ("GET /turn", "zero-code-1"),
        ("POST /goodbye", "zero-code-1"),
    ]
    # The end comes after every record of the session's traces, and the marker is no trace of its own.
    in_session = {tid for tid, t in traces.items() if t.data.get("sessionId") == "zero-code-1"}
    last_of_session = max(i for i, r in enumerate(records) if r.entity == "trace" and r.id in in_session)
    assert records.index(session[1]) > last_of_session


def test_with_the_distro_and_only_launcher_flags(tmp_path: Path) -> None:
    """``opentelemetry-instrument --traces_exporter maxim python app.py``: the flag form of the variable."""
    app = tmp_path / "app.py"
    app.write_text(SHORT_APP, encoding="utf-8")
    command = [str(INSTRUMENT), "--traces_exporter", "maxim", sys.executable, str(app)]
    with _Process(command, _environment(), tmp_path) as process:
        provider = process.next_line()
        assert process.proc.wait(PATIENCE) == 0, process.stderr
    assert provider == "TracerProvider", process.stderr
    ids = [(r.id, r.action) for r in _records(tmp_path / "maxim-records.log") if r.entity == "session"]
    assert ids == [("short-1", "create"), ("short-1", "end")]


@pytest.mark.parametrize(
    ("settings", "warned", "session_records"),
    [
        pytest.param(
            {"MAXIM_SESSION_BAGGAGE": "maybe", "MAXIM_TRACE_TIMEOUT": "soon"},
            ["MAXIM_SESSION_BAGGAGE", "MAXIM_TRACE_TIMEOUT"],
            True,
            id="bad-values-fall-back",
        ),
        pytest.param({"MAXIM_API_KEY": "key-without-repo"}, ["MAXIM_LOG_REPO_ID"], None, id="missing-repo-id"),
        pytest.param(
            {"OTEL_TRACES_EXPORTER": "maxim,not-an-exporter"}, ["OTEL_TRACES_EXPORTER"], False, id="unknown-exporter"
        ),
    ],
)
def test_start_up_never_crashes(
    tmp_path: Path, settings: dict[str, str], warned: list[str], session_records: bool | None
) -> None:
    app = tmp_path / "app.py"
    app.write_text(SHORT_APP, encoding="utf-8")
    env = _environment(OTEL_TRACES_EXPORTER="maxim", **WITHOUT_DISTRO)
    env.update(settings)
    with _Process(_instrumented(app), env, tmp_path) as process:
        provider = process.next_line()
        assert process.proc.wait(PATIENCE) == 0, process.stderr
        stderr = process.stderr
    # The SDK is set up unless the environment names an exporter that is not installed.
    assert provider == ("ProxyTracerProvider" if session_records is False else "TracerProvider"), stderr
    for name in warned:
        assert name in stderr, stderr
    records_file = tmp_path / "maxim-records.log"
    if session_records is True:  # the bad values fell back to their defaults: sessions work
        ids = [(r.id, r.action) for r in _records(records_file) if r.entity == "session"]
        assert ids == [("short-1", "create"), ("short-1", "end")]
    elif session_records is False:  # the SDK could not be configured: the program ran without it
        assert not records_file.exists()


# --- the example service and client ---------------------------------------------------------------------


@pytest.fixture
def fake_model() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as server:
        yield server


def test_the_example_service_and_client(tmp_path: Path, fake_model: FakeOpenAIServer) -> None:
    records_file = tmp_path / "records.log"
    env = _environment(
        # What examples/service/README.md sets.
        OTEL_TRACES_EXPORTER="maxim",
        OTEL_SERVICE_NAME="example-chat",
        OTEL_SEMCONV_STABILITY_OPT_IN="gen_ai_latest_experimental",
        OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT="span_only",
        OPENAI_BASE_URL=fake_model.base_url,
        OPENAI_API_KEY="fake-key",
        MAXIM_RECORDS_FILE=str(records_file),
        **ONE_BATCH,
    )
    with _Process(_instrumented(SERVICE / "app.py", "--port", "0"), env, tmp_path) as service:
        url = service.next_line().removeprefix("Serving on ")
        client_args = [sys.executable, str(SERVICE / "client.py"), "--url", url, "--session-id", "example-42"]
        with _Process(client_args, _environment(), tmp_path) as client:
            assert client.proc.wait(PATIENCE) == 0, client.stderr
        # SIGTERM, as from `docker stop`: uvicorn shuts down gracefully (the app flushes), then dies of it.
        assert service.stop(signal.SIGTERM) in (0, -signal.SIGTERM), service.stderr
        assert "Traceback" not in service.stderr, service.stderr

    output = "".join(client.output)
    assert "Session example-42 ended." in output
    assert output.count("agent: Fake answer to: ") == 3

    chats = fake_model.requests_to("/chat/completions")
    assert [len(r.json["messages"]) for r in chats] == [2, 4, 6]  # the service keeps the conversation

    records = _records(records_file)
    assert_parent_first(records)
    session = [r for r in records if r.entity == "session"]
    assert [(r.id, r.action) for r in session] == [("example-42", "create"), ("example-42", "end")]
    assert session[0].data["name"] == "Support chat"
    assert session[0].data["tags"] == {"channel": "example-client"}
    assert records[-1] == session[1]
    traces = _traces(records)
    assert sorted(t.data["name"] for t in traces.values()) == ["POST /chat"] * 3 + ["POST /goodbye"]
    assert {t.data.get("sessionId") for t in traces.values()} == {"example-42"}
    generations = [r for r in records if r.action == "add-generation"]
    # opentelemetry-instrument loads every installed OpenAI instrumentation; the test environment has
    # two (openai-v2 and OpenInference's, for the mapping tests), so each model call is recorded by each.
    openai_instrumentations = len(importlib.metadata.entry_points(group="opentelemetry_instrumentor", name="openai"))
    assert openai_instrumentations >= 1
    assert len(generations) == 3 * openai_instrumentations
    assert {r.id for r in generations} <= set(traces)  # each model call is part of its request's trace
    second_turn = [g for g in generations if "Can it go to my office instead of my home?" in json.dumps(g.data)]
    assert len(second_turn) == 2 * openai_instrumentations  # turns 2 and 3 carry it (history), in each
