"""Helpers for the bridge tests: a bridge served in-process, an exporter that records or blocks, rotel."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sysconfig
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from otel_maxim.bridge import Bridge, BridgeServer


@contextmanager
def running_bridge(
    bridge: Bridge,
    *,
    header_timeout: float | None = None,
    body_timeout: float | None = None,
    max_connections: int | None = None,
) -> Iterator[BridgeServer]:
    """Serve ``bridge`` on 127.0.0.1 at a free port in a thread; stop it (gracefully) on exit."""
    server = BridgeServer(
        bridge,
        "127.0.0.1",
        0,
        header_timeout=header_timeout,
        body_timeout=body_timeout,
        max_connections=max_connections,
    )
    thread = threading.Thread(target=server.run, name="test-bridge", daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started, what="the bridge to start")
        yield server
    finally:
        server.stop()
        thread.join(30)
        assert not thread.is_alive(), "the bridge did not stop"


def wait_for(condition: Callable[[], object], *, timeout: float = 15.0, what: str = "a condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class StreamLines:
    """A process's output stream, read line by line by a thread as it comes, so that a test can wait
    for a line (the address a server announces) and still read everything once the process ends."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._lines: list[bytes] = []
        self._reader = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._reader.start()

    def _read(self, stream: IO[bytes]) -> None:
        with stream:
            for line in iter(stream.readline, b""):
                self._lines.append(line)

    def wait_for(self, pattern: re.Pattern[bytes], timeout: float = 15.0) -> re.Match[bytes]:
        found: list[re.Match[bytes]] = []

        def matched() -> bool:
            reading = self._reader.is_alive()  # asked first: a reader that has ended has read every line
            found.extend(match for match in map(pattern.search, list(self._lines)) if match is not None)
            if not found and not reading:
                raise AssertionError(f"no line matching {pattern.pattern!r} in {b''.join(self._lines)!r}")
            return bool(found)

        wait_for(matched, timeout=timeout, what=f"a line matching {pattern.pattern!r}")
        return found[0]

    def all(self) -> bytes:
        """Everything, once the process has ended (the stream is then at its end)."""
        self._reader.join(10)
        return b"".join(self._lines)


def wait_for_port(port: int, process: subprocess.Popen[bytes] | None = None, timeout: float = 15.0) -> None:
    def accepting() -> bool:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the process exited early with {process.returncode}")
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", port)) == 0

    wait_for(accepting, timeout=timeout, what=f"port {port}")


def stop_process(process: subprocess.Popen[bytes], timeout: float = 15.0) -> int:
    """SIGTERM ``process`` (by its pid), then SIGKILL if it has not exited in ``timeout`` seconds."""
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
    return process.returncode


class RecordingExporter(SpanExporter):
    """Keeps every exported span; ``block`` holds ``export`` until released (a slow destination)."""

    def __init__(self, *, block: bool = False) -> None:
        self.spans: list[ReadableSpan] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        if not block:
            self.release.set()
        self.shut_down = False
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.entered.set()
        self.release.wait(30)
        with self._lock:
            self.spans.extend(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self.release.set()
        self.shut_down = True

    def by_name(self, name: str) -> ReadableSpan:
        with self._lock:
            found = [span for span in self.spans if span.name == name]
        assert len(found) == 1, f"{len(found)} spans named {name!r}"
        return found[0]


def rotel_binary() -> Path:
    """The collector binary that the ``rotel`` wheel ships."""
    import rotel  # noqa: PLC0415 - only the rotel test needs it

    path = Path(rotel.__file__).parent / "rotel-agent"
    assert path.exists(), f"rotel's binary is not at {path}"
    return path


def rotel_environment() -> dict[str, str]:
    """The environment for :func:`rotel_binary`: it links this Python's ``libpython`` (for its
    Python processors), which the loader finds only in a system directory unless told where."""
    environment = dict(os.environ)
    library_dir = sysconfig.get_config_var("LIBDIR")
    if library_dir:
        environment["LD_LIBRARY_PATH"] = os.pathsep.join(
            filter(None, (str(library_dir), environment.get("LD_LIBRARY_PATH")))
        )
    return environment
