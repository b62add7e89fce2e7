"""Record what the real ``maxim-py`` SDK sends, for use as a golden reference.

``capture(scenario)`` starts a throw-away HTTP server on 127.0.0.1 (ephemeral
port) that answers every request maxim-py makes with HTTP 200 and a JSON body,
points a real ``maxim.Maxim`` client and logger at it (api key ``test-key``,
log repository ``test-repo``), runs ``scenario(logger)``, flushes and shuts
maxim-py down, stops the server and returns the record lines that arrived in
``POST /api/sdk/v3/log`` bodies, in arrival order.

``capture_requests`` does the same but returns every HTTP request (method,
path with query, headers, body), e.g. to look at headers, the repository
check or the large-log upload.

Importing this module has no side effects; ``maxim`` is imported lazily, so
the module can be imported where maxim-py is not installed.

Notes on maxim-py 3.14.x that shape this code:
- ``Maxim`` is a process-wide singleton (``Maxim._instance``, maxim.py:143-149)
  that is never released; we delete it afterwards so captures can repeat.
- ``Maxim.cleanup`` (maxim.py:1064) sleeps 2 s and never sets
  ``has_cleaned_up``; we do its work without the sleep (the scenario has
  returned, so every record is already queued) and unregister its atexit hook.
- ``Logger.cleanup(is_sync=True)`` flushes synchronously and shuts the
  writer's executors down (writer.py:801-813). The writer's periodic flush
  thread and the repository-check thread are daemon threads; the former exits
  within its 10 s interval once ``is_running`` is False.
"""

from __future__ import annotations

import atexit
import contextlib
import io
import json
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

__all__ = ["JsonReplyHandler", "RecordedRequest", "capture", "capture_requests", "close_maxim", "seed_scenario"]

API_KEY = "test-key"
REPO_ID = "test-repo"
LOG_PATH = "/api/sdk/v3/log"
REPO_CHECK_PATH = "/api/sdk/v3/log-repositories"
UPLOAD_URL_PATH = "/api/sdk/v1/log-repositories/attachments/upload-url"
SIGNED_UPLOAD_PATH = "/signed-upload"


@dataclass(frozen=True)
class RecordedRequest:
    """One HTTP request as received by the fake Maxim server."""

    method: str
    path: str  # path including the query string, as sent
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    @property
    def route(self) -> str:
        """The path without the query string."""
        return urlsplit(self.path).path


class _Recorder:
    """Thread-safe list of requests plus a condition to wait on."""

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self.cond = threading.Condition()

    def add(self, request: RecordedRequest) -> None:
        with self.cond:
            self.requests.append(request)
            self.cond.notify_all()

    def wait_for(self, method: str, route: str, timeout: float) -> bool:
        def seen() -> bool:
            return any(r.method == method and r.route == route for r in self.requests)

        with self.cond:
            return self.cond.wait_for(seen, timeout=timeout)


class JsonReplyHandler(BaseHTTPRequestHandler):
    """Answers every request with HTTP 200 and the JSON object that :meth:`reply` returns for it."""

    timeout = 30  # socket timeout, so idle connection threads end

    def reply(self, body: bytes) -> dict[str, Any]:
        return {"data": {}}

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        out = json.dumps(self.reply(self.rfile.read(length) if length else b"")).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name; silence stderr
        pass


def _make_handler(recorder: _Recorder) -> type[BaseHTTPRequestHandler]:
    class Handler(JsonReplyHandler):
        def reply(self, body: bytes) -> dict[str, Any]:
            recorder.add(RecordedRequest(self.command, self.path, dict(self.headers.items()), body))
            url = urlsplit(self.path)
            if url.path == UPLOAD_URL_PATH:
                key = parse_qs(url.query).get("key", [""])[0]
                host, port = self.server.server_address[:2]
                signed = f"http://{host}:{port}{SIGNED_UPLOAD_PATH}?key={quote(key, safe='')}"
                return {"data": {"url": signed}}
            if url.path == REPO_CHECK_PATH:
                return {"data": {"id": REPO_ID}}
            return {"data": {}}

    return Handler


def close_maxim(maxim: Any, logger: Any) -> None:
    """Do what ``Maxim.cleanup`` does (minus its 2 s sleep) and release the singleton."""
    from maxim import Maxim

    atexit.unregister(maxim.cleanup)
    maxim.has_cleaned_up = True  # make any remaining atexit call a no-op
    maxim.is_running = False
    try:
        if logger is not None:
            logger.cleanup(is_sync=True)  # sync flush + executor shutdown
    finally:
        clients = [maxim.maxim_api]
        if logger is not None:
            clients.append(logger.writer.maxim_api)
            # the writer's private spill directory: <tmp>/maxim-sdk/<uuid>/maxim-logs
            shutil.rmtree(os.path.dirname(logger.writer.logs_dir), ignore_errors=True)
        for api in clients:
            api.connection_pool.client.close()
        with Maxim._lock:
            if getattr(Maxim, "_instance", None) is maxim:
                del Maxim._instance


def capture_requests(scenario: Callable[[Any], None], *, timeout: float = 10.0) -> list[RecordedRequest]:
    """Run ``scenario(logger)`` against a fake server; return every request received.

    ``timeout`` bounds the wait for the repository check and for the final flush
    (a ``TimeoutError`` is raised if the flush does not finish in time).
    """
    from maxim import Maxim

    with recording_server(timeout) as (recorder, base_url):
        with contextlib.redirect_stdout(io.StringIO()):  # Maxim() prints a banner
            maxim = Maxim({"api_key": API_KEY, "base_url": base_url})
        logger: Any | None = None
        try:
            logger = maxim.logger({"id": REPO_ID})
            scenario(logger)
        finally:
            # let the (daemon) repository check finish while the server is up
            recorder.wait_for("GET", REPO_CHECK_PATH, timeout)
            closer = threading.Thread(target=close_maxim, args=(maxim, logger), daemon=True)
            closer.start()
            closer.join(timeout)
            if closer.is_alive():
                raise TimeoutError(f"maxim-py did not flush within {timeout} s")
    with recorder.cond:
        return list(recorder.requests)


@contextlib.contextmanager
def recording_server(timeout: float = 10.0) -> Iterator[tuple[_Recorder, str]]:
    """The fake server on 127.0.0.1 (an ephemeral port): its recorder and base URL, for as long as the block runs."""
    recorder = _Recorder()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(recorder))
    server.daemon_threads = True
    server_thread = threading.Thread(target=server.serve_forever, daemon=True)
    server_thread.start()
    host, port = server.server_address[:2]
    try:
        yield recorder, f"http://{host}:{port}"
    finally:
        server.shutdown()
        server.server_close()
        server_thread.join(timeout)


def capture(scenario: Callable[[Any], None], *, timeout: float = 10.0) -> list[str]:
    """Run ``scenario(logger)`` with real maxim-py; return the record lines it sent.

    Lines come from the bodies of ``POST /api/sdk/v3/log`` requests, in arrival
    order, split on ``"\\n"`` with empty strings dropped.
    """
    lines: list[str] = []
    for request in capture_requests(scenario, timeout=timeout):
        if request.method == "POST" and request.route == LOG_PATH:
            lines.extend(x for x in request.body.decode("utf-8").split("\n") if x)
    return lines


def seed_scenario(logger: Any) -> None:
    """The four steps of the public "Sessions" page, with a span in each trace."""
    session = logger.session({"id": "session-id", "name": "session-name"})

    trace = session.trace({"id": "trace-id", "name": "trace-name"})
    span = trace.span({"id": "span-id", "name": "span-name"})
    span.end()
    trace.end()

    trace2 = logger.trace({"id": "trace-id-2", "name": "trace-2", "session_id": "session-id"})
    span2 = trace2.span({"id": "span-id-2", "name": "span-2"})
    span2.end()
    trace2.end()

    session.end()
