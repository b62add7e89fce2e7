"""A fake of Maxim's log API for tests and benchmarks: a real HTTP server on 127.0.0.1 with a scripted fault plan.

Endpoints (the paths maxim-py 3.14.20 uses)
-------------------------------------------
``POST /api/sdk/v3/log?id=<repo>``
    The body is record lines joined by ``\\n``.  Every line is parsed with
    :func:`otel_maxim.records.parse`; a line that does not parse is a 400 (so a
    bug in our serializer fails loudly).  A ``storage{...process-large-log...}``
    line is resolved to the record uploaded under its key; an ``add-attachment``
    of a file must name an uploaded key, and an ``upload-attachment`` line (the
    SDK's own step, never sent) is a 400.  Then the next
    entry of the fault plan (:meth:`FakeMaxim.plan`) decides the answer, then
    :attr:`FakeMaxim.reject_when`; otherwise the records are *accepted* and
    the answer is ``200 {"data": {"success": true}}``.
``GET /api/sdk/v3/log-repositories?loggerId=<repo>``
    200 with the repository for a known one, else 404 with an ``error``.
``GET /api/sdk/v1/log-repositories/attachments/upload-url?key=&mimeType=&size=``
    200 ``{"data": {"url": <this server>/_storage/<token>}}``, or
    :attr:`FakeMaxim.upload_url_status` with an ``error``.
``PUT /_storage/<token>``
    Stores the body (a large record, a file) under the key it was asked for.
``GET /_fake/stats``
    Counters as JSON (used by the benchmark, whose server runs in another process).

A wrong ``x-maxim-api-key`` is a 401 and an unknown repository a 404, both with
Maxim's ``{"error": {"message": ...}}`` shape.

Faults
------
:meth:`FakeMaxim.plan` queues answers for the next log POSTs, one each:
``Fault.status(503)`` (optionally ``retry_after``), ``Fault.slow(seconds)``
(the records are accepted, as a real server would apply them, but the answer
comes late: after the client's timeout), ``Fault.error_200(message)``.
:meth:`FakeMaxim.go_down` stops listening (connections are refused, open ones
are cut) until :meth:`FakeMaxim.go_up`.

Observations
------------
Every request is kept (:attr:`FakeMaxim.requests`).  :meth:`FakeMaxim.accepted`
lists the accepted lines in order, duplicates included;
:meth:`FakeMaxim.distinct` the distinct ones in order of first acceptance.

Run as a script (``python tests/fake_maxim.py``) it serves until killed and
prints ``PORT <n>`` first; the benchmark uses that.
"""

from __future__ import annotations

import argparse
import json
import secrets
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from otel_maxim.records import parse

LOG_PATH = "/api/sdk/v3/log"
REPOSITORY_PATH = "/api/sdk/v3/log-repositories"
UPLOAD_URL_PATH = "/api/sdk/v1/log-repositories/attachments/upload-url"
STORAGE_PREFIX = "/_storage/"
STATS_PATH = "/_fake/stats"


@dataclass(frozen=True)
class Fault:
    """One scripted answer to a log POST."""

    status: int = 200
    retry_after: str | None = None
    message: str = "scripted fault"
    delay: float = 0.0  # answer this late (the records are accepted first)
    error_200: bool = False  # 200 with {"error": ...}
    location: str | None = None  # a redirect's target

    @staticmethod
    def redirect(location: str, status: int = 307) -> Fault:
        return Fault(status, message="moved", location=location)

    @staticmethod
    def of(status: int, *, retry_after: str | float | None = None, message: str = "scripted fault") -> Fault:
        return Fault(status, None if retry_after is None else str(retry_after), message)

    @staticmethod
    def slow(delay: float) -> Fault:
        return Fault(200, delay=delay)

    @staticmethod
    def error(message: str) -> Fault:
        return Fault(200, message=message, error_200=True)


@dataclass
class Request:
    """One request as the server saw it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes
    at: float = field(default_factory=time.monotonic)
    status: int = 0

    @property
    def lines(self) -> list[str]:
        return self.body.decode("utf-8").split("\n") if self.body else []


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], fake: FakeMaxim) -> None:
        self.fake = fake
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        _share_port(self.socket)  # so that the port is held while the fake is down (see go_down)
        super().server_bind()

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up on a slow answer is expected here

    def cut_connections(self) -> None:
        with self.connections_lock:
            connections = list(self.connections)
            self.connections.clear()
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            with self.server.connections_lock:
                self.server.connections.discard(self.connection)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        request = Request(
            self.command,
            parts.path,
            dict(parse_qsl(parts.query, keep_blank_values=True)),
            {k.lower(): v for k, v in self.headers.items()},
            body,
        )
        status, payload, headers, delay = self.server.fake._answer(request)
        request.status = status
        if delay:
            self.server.fake._stopping.wait(delay)
        data = b"" if payload is None else json.dumps(payload).encode()
        try:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            if payload is not None:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            self.close_connection = True

    do_GET = do_POST = do_PUT = _serve


def _share_port(sock: socket.socket) -> None:
    """Let our listening socket and the socket that holds the port while down share it (same user
    only; without SO_REUSEADDR on the holder, no other socket may bind the port beside it)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)


def _error(message: str) -> dict[str, Any]:
    return {"error": {"message": message}}


class FakeMaxim:
    """Maxim's log API on ``127.0.0.1``, an ephemeral port, answering from a fault plan."""

    def __init__(
        self,
        *,
        api_key: str = "test-key",
        repositories: tuple[str, ...] = ("test-repo",),
        keep_requests: bool = True,
    ) -> None:
        self.api_key = api_key
        self.repositories = set(repositories)
        self.keep_requests = keep_requests
        #: Called with a log POST's lines; a message makes the answer a 400 with that message.
        self.reject_when: Callable[[list[str]], str | None] | None = None
        #: Answer every large-record upload 403, as storage answers a signature it does not take.
        self.refuse_uploads = False
        #: Answer every upload-url call with this status, as Maxim may when uploads are not enabled for the key
        #: (the log POST is not affected).
        self.upload_url_status: int | None = None
        self.requests: list[Request] = []
        self.uploads: dict[str, bytes] = {}
        self._upload_keys: dict[str, tuple[str, str]] = {}  # token -> (key, signature)
        self._plan: list[Fault] = []
        self._accepted: list[str] = []
        self._first: dict[Any, int] = {}
        self._accepted_count = 0
        self._received = 0
        self._posts = 0
        self._cond = threading.Condition()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._held: socket.socket | None = None  # the port, bound and not listening, while down
        self.port = 0

    # --- lifecycle -------------------------------------------------------------------

    def start(self) -> FakeMaxim:
        self._serve_on(self.port)
        return self

    def stop(self) -> None:
        self._stopping.set()
        self.go_down()
        if self._held is not None:
            self._held.close()
            self._held = None

    def __enter__(self) -> FakeMaxim:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _serve_on(self, port: int) -> None:
        server = _Server(("127.0.0.1", port), self)
        self.port = server.server_address[1]
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        self._server, self._thread = server, thread

    def go_down(self) -> None:
        """Stop listening: new connections are refused and open ones are cut.

        The port stays bound (not listening, which refuses connections as a closed port does),
        so that no other program can take it before :meth:`go_up`.
        """
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        if not self._stopping.is_set():
            held = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            _share_port(held)
            held.bind(("127.0.0.1", self.port))
            self._held = held
        server.shutdown()
        server.server_close()
        server.cut_connections()
        if thread is not None:
            thread.join(5)

    def go_up(self) -> None:
        """Listen again, on the same port (held since :meth:`go_down`)."""
        if self._server is None:
            self._serve_on(self.port)
            if self._held is not None:
                self._held.close()
                self._held = None

    # --- the script ------------------------------------------------------------------

    def plan(self, *faults: Fault) -> None:
        """Answer the next log POSTs with these faults, one each, in order."""
        with self._cond:
            self._plan.extend(faults)

    @property
    def plan_left(self) -> int:
        with self._cond:
            return len(self._plan)

    # --- observations ----------------------------------------------------------------

    def accepted(self) -> list[str]:
        with self._cond:
            return list(self._accepted)

    def distinct(self) -> list[str]:
        with self._cond:
            return sorted(self._first, key=self._first.__getitem__)

    def log_posts(self) -> list[Request]:
        with self._cond:
            return [r for r in self.requests if r.method == "POST" and r.path == LOG_PATH]

    def requests_to(self, path: str) -> list[Request]:
        with self._cond:
            return [r for r in self.requests if r.path == path or r.path.startswith(path)]

    def stats(self) -> dict[str, int]:
        with self._cond:
            return {
                "distinct": len(self._first),
                "accepted": len(self._accepted) + self._accepted_count,
                "received": self._received,
                "posts": self._posts,
            }

    def wait_until(self, predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(min(remaining, 0.05))
        return True

    def wait_for_distinct(self, count: int, timeout: float = 10.0) -> bool:
        return self.wait_until(lambda: len(self._first) >= count, timeout)

    # --- answering -------------------------------------------------------------------

    def _answer(self, request: Request) -> tuple[int, dict[str, Any] | None, dict[str, str], float]:
        with self._cond:
            if self.keep_requests:
                self.requests.append(request)
            self._cond.notify_all()
        if request.path == STATS_PATH:
            return 200, self.stats(), {}, 0.0
        if request.method == "PUT" and request.path.startswith(STORAGE_PREFIX):
            return self._store(request)
        if request.headers.get("x-maxim-api-key") != self.api_key:
            return 401, _error("Invalid API key"), {}, 0.0
        if request.method == "GET" and request.path == REPOSITORY_PATH:
            repo = request.query.get("loggerId", "")
            if repo in self.repositories:
                return 200, {"data": {"id": repo, "name": repo}}, {}, 0.0
            return 404, _error(f"Log repository {repo} not found"), {}, 0.0
        if request.method == "GET" and request.path == UPLOAD_URL_PATH:
            if self.upload_url_status is not None:
                return self.upload_url_status, _error("uploads are not enabled for this API key"), {}, 0.0
            # Signed as cloud storage signs: the signature is in the query (GCS's X-Goog-Signature).
            token, signature = secrets.token_hex(8), secrets.token_hex(16)
            with self._cond:
                self._upload_keys[token] = (request.query.get("key", ""), signature)
            query = f"X-Goog-Algorithm=GOOG4-RSA-SHA256&X-Goog-Signature={signature}"
            url = f"{self.base_url}{STORAGE_PREFIX}{token}?{query}"
            return 200, {"data": {"url": url}}, {}, 0.0
        if request.method == "POST" and request.path == LOG_PATH:
            return self._log(request)
        return 404, _error("not found"), {}, 0.0

    def _store(self, request: Request) -> tuple[int, dict[str, Any] | None, dict[str, str], float]:
        token = request.path[len(STORAGE_PREFIX) :]
        provided = request.query.get("X-Goog-Signature", "")
        with self._cond:
            key, signature = self._upload_keys.get(token, ("", None))
            if signature is None or provided != signature or self.refuse_uploads:
                # As storage answers a bad signature: with the signature it was given in the message.
                return 403, _error(f"SignatureDoesNotMatch: the signature {provided!r} is not valid"), {}, 0.0
            del self._upload_keys[token]
            self.uploads[key] = request.body
        return 200, None, {}, 0.0

    def _log(self, request: Request) -> tuple[int, dict[str, Any] | None, dict[str, str], float]:
        if request.query.get("id") not in self.repositories:
            return 404, _error("log repository not found"), {}, 0.0
        lines = request.lines
        resolved: list[str] = []
        for number, line in enumerate(lines, 1):
            try:
                record = parse(line)
                if record.entity == "storage" and record.action == "process-large-log":
                    key = record.data.get("key", "")
                    if not key.endswith("/" + record.id) or key not in self.uploads:
                        raise ValueError(f"unknown large-log key {key!r}")
                    line = self.uploads[key].decode("utf-8")
                    parse(line)
                elif record.action == "upload-attachment":  # the SDK's own step: it never reaches Maxim
                    raise ValueError("upload-attachment is resolved by the SDK, not sent")
                elif record.action == "add-attachment" and record.data.get("type") == "file_data":
                    key = record.data.get("key", "")
                    if key not in self.uploads:
                        raise ValueError(f"attachment key {key!r} was not uploaded")
            except ValueError as exc:
                return 400, _error(f"line {number}: {exc}"), {}, 0.0
            resolved.append(line)
        with self._cond:
            self._posts += 1
            self._received += len(resolved)
            fault = self._plan.pop(0) if self._plan else None
        if fault is not None and fault.status != 200:
            headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
            if fault.location is not None:
                headers["Location"] = fault.location
            return fault.status, _error(fault.message), headers, 0.0
        if fault is not None and fault.error_200:
            return 200, _error(fault.message), {}, 0.0
        reason = self.reject_when(resolved) if self.reject_when is not None else None
        if reason is not None:
            return 400, _error(reason), {}, 0.0
        with self._cond:
            for line in resolved:
                if self.keep_requests:
                    self._first.setdefault(line, len(self._accepted))
                    self._accepted.append(line)
                else:  # the benchmark: count, without keeping hundreds of megabytes of lines
                    self._first.setdefault(hash(line), 0)
                    self._accepted_count += 1
            self._cond.notify_all()
        return 200, {"data": {"success": True}}, {}, fault.delay if fault is not None else 0.0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--api-key", default="test-key")
    parser.add_argument("--repo", default="test-repo")
    args = parser.parse_args(argv)
    fake = FakeMaxim(api_key=args.api_key, repositories=(args.repo,), keep_requests=False)
    fake.port = args.port
    fake.start()
    print(f"PORT {fake.port}", flush=True)
    try:
        sys.stdin.read()  # until the parent closes our stdin (or kills us)
    finally:
        fake.stop()


if __name__ == "__main__":
    main()
