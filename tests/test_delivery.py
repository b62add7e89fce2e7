"""Delivery to Maxim's log API: retries, the disk spool, quarantine, large records, lifecycle, configuration.

Every scenario runs the real pipeline (TracerProvider -> MaximSpanProcessor ->
MaximSpanExporter -> MaximApiSink) against ``tests/fake_maxim.py``, a real HTTP
server on 127.0.0.1, and checks the one property that matters: the distinct
records Maxim acknowledged are exactly the records the exporter produced, in
the order it produced them (so each trace's order is kept).
"""

from __future__ import annotations

import base64
import contextlib
import errno
import json
import logging
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SpanExportResult

from otel_maxim import MaximSpanExporter, MaximSpanProcessor
from otel_maxim import environment_variables as env
from otel_maxim.records import Record, parse, serialize
from otel_maxim.sinks import FileSink
from otel_maxim.sinks._http import ApiClient, Kind, base_url_problem
from otel_maxim.sinks.maxim_api import MaximApiSink, build_sink
from otel_maxim.sinks.spool import (
    MAX_ADOPTED,
    QUARANTINE,
    Segment,
    Spool,
    default_spool_dir,
    destination_dir,
    user_cache_dir,
)
from tests.fake_maxim import STORAGE_PREFIX, UPLOAD_URL_PATH, FakeMaxim, Fault

KEY = "sk-maxim-TEST-5f1c2a9e77d04b1b"  # distinctive, so a leak anywhere is found
REPO = "test-repo"
ROOT = Path(__file__).resolve().parent.parent
MiB = 1024 * 1024


# --- fixtures and helpers ------------------------------------------------------------------


def _api_sink(fake: FakeMaxim, tmp_path: Path, **options: Any) -> MaximApiSink:
    """A sink to the fake Maxim, spooling under ``tmp_path``, with ``options`` beside."""
    return MaximApiSink(api_key=KEY, repo_id=REPO, base_url=fake.base_url, spool_dir=tmp_path / "spool", **options)


def _deliver_spooled(fake: FakeMaxim, spool: Path, produced: list[str], *, repo: str = REPO) -> None:
    """A new sink on ``spool`` (for ``repo``) delivers what waits there: Maxim then holds ``produced``."""
    sink = MaximApiSink(api_key=KEY, repo_id=repo, base_url=fake.base_url, spool_dir=spool, check_repository=False)
    try:
        assert sink.flush(10)
    finally:
        sink.close(5)
    assert_all_delivered(fake, produced)


@pytest.fixture(autouse=True)
def _key_never_leaks(caplog: pytest.LogCaptureFixture, tmp_path: Path) -> Iterator[None]:
    """Whatever a test does, the API key appears in no log line and no file it leaves."""
    caplog.set_level(logging.DEBUG)
    yield
    assert KEY not in caplog.text
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path


@pytest.fixture
def fake() -> Iterator[FakeMaxim]:
    with FakeMaxim(api_key=KEY, repositories=(REPO,)) as server:
        yield server


class Tee:
    """A sink in front of the real one that remembers every line the exporter produced, in order."""

    def __init__(self, inner: MaximApiSink) -> None:
        self.inner = inner
        self.lines: list[str] = []

    def write(self, lines: Sequence[str]) -> bool:
        self.lines.extend(lines)
        return self.inner.write(lines)

    def flush(self, timeout: float) -> bool:
        return self.inner.flush(timeout)

    def close(self, timeout: float) -> None:
        self.inner.close(timeout)


@dataclass
class Pipeline:
    provider: TracerProvider
    processor: MaximSpanProcessor
    exporter: MaximSpanExporter
    sink: MaximApiSink
    tee: Tee
    spool: Path

    def produce(self, traces: int, prefix: str = "t", *, spans: int = 3, **root_attributes: Any) -> None:
        """``traces`` traces of a root and ``spans`` children, in three sessions."""
        tracer = self.provider.get_tracer("tests")
        for i in range(traces):
            attributes = {"session.id": f"s-{i % 3}", **root_attributes}
            with tracer.start_as_current_span(f"{prefix}-{i}", attributes=attributes):
                for j in range(spans):
                    with tracer.start_as_current_span(f"{prefix}-{i}-step-{j}"):
                        pass

    def flush(self, seconds: float = 15) -> bool:
        return self.processor.force_flush(int(seconds * 1000))


@pytest.fixture
def make(fake: FakeMaxim, tmp_path: Path) -> Iterator[Callable[..., Pipeline]]:
    made: list[Pipeline] = []

    def build(*, schedule_delay_millis: float = 20, **options: Any) -> Pipeline:
        spool = tmp_path / "spool"
        settings: dict[str, Any] = {
            "api_key": KEY,
            "repo_id": REPO,
            "base_url": fake.base_url,
            "spool_dir": spool,
            "export_timeout": 2.0,
            "backoff_initial": 0.02,
            "backoff_max": 0.2,
        }
        settings.update(options)
        sink = MaximApiSink(**settings)
        tee = Tee(sink)
        exporter = MaximSpanExporter(sink=tee)
        processor = MaximSpanProcessor(exporter, schedule_delay_millis=schedule_delay_millis, max_export_batch_size=64)
        provider = TracerProvider()
        provider.add_span_processor(processor)
        made.append(Pipeline(provider, processor, exporter, sink, tee, spool))
        return made[-1]

    yield build
    for pipeline in made:
        pipeline.provider.shutdown()


def assert_all_delivered(fake: FakeMaxim, produced: list[str], excluded: Sequence[str] = ()) -> None:
    """Maxim acknowledged every produced record but ``excluded``, once or more, first in production order."""
    skip = set(excluded)
    expected = [line for line in produced if line not in skip]
    assert expected, "the scenario produced nothing"
    assert len(set(expected)) == len(expected)
    acknowledged = fake.distinct()
    missing = set(expected) - set(acknowledged)
    assert not missing, f"{len(missing)} of {len(expected)} records never acknowledged"
    assert set(acknowledged) == set(expected), "acknowledged records that were not produced"
    assert acknowledged == expected, "records acknowledged out of order"


def spool_files(spool: Path, *, quarantine: bool = False) -> list[Path]:
    # The spool makes each process's directory under a hidden name and renames it once locked:
    # a listing that meets it mid-rename (FileNotFoundError from the walk) is taken again.
    for _ in range(100):
        try:
            return sorted(p for p in spool.rglob("*.seg") if (QUARANTINE in p.parts) == quarantine)
        except FileNotFoundError:
            time.sleep(0.001)
    raise AssertionError(f"the spool at {spool} kept changing under the listing")


def spooled_lines(spool: Path) -> list[str]:
    """The records waiting in the spool, in order (in a file, an empty line parts two batches)."""
    return [x for path in spool_files(spool) for x in path.read_text().splitlines() if x]


def assert_private(spool: Path) -> None:
    """Spool files are the owner's only (0600), and the directories we create 0700."""
    for path in spool.rglob("*"):
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), (path, oct(mode))


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def _run_python(script: str, environment: dict[str, str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """``script`` run by a new Python process from the repository root, its output captured."""
    return subprocess.run(
        [sys.executable, "-c", script],
        input=stdin,
        env=environment,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def line(i: int, **data: Any) -> str:
    return serialize(Record("trace", f"t{i}", "create", {"name": f"trace {i}", **data}))


# --- delivery under faults: everything arrives, in order ----------------------------------


def test_bursts_of_503_and_other_retryable_statuses(fake: FakeMaxim, make: Callable[..., Pipeline]) -> None:
    p = make()
    fake.plan(*[Fault.of(503)] * 4, Fault.of(502), Fault.of(504), Fault.of(503))
    p.produce(10)
    time.sleep(0.05)
    p.produce(10, "u")
    assert p.flush()
    assert fake.plan_left == 0
    assert_all_delivered(fake, p.tee.lines)


def test_429_with_retry_after(fake: FakeMaxim, make: Callable[..., Pipeline]) -> None:
    p = make()
    fake.plan(Fault.of(429, retry_after=1), Fault.of(429, retry_after=0))
    p.produce(12)
    assert p.flush()
    assert [r.status for r in fake.log_posts()][:3] == [429, 429, 200]
    assert_all_delivered(fake, p.tee.lines)


def test_connection_refused_for_a_stretch(fake: FakeMaxim, make: Callable[..., Pipeline]) -> None:
    p = make(export_timeout=0.3)
    p.produce(5)
    assert p.flush()
    fake.go_down()
    p.produce(10, "down")
    wait_for(lambda: bool(spool_files(p.spool)))  # not taken by the deadline: on disk, not in memory
    p.produce(5, "later")  # while failing, new batches go straight to disk behind the older ones
    time.sleep(0.1)
    assert p.sink.stats()["memory_bytes"] == 0  # nothing waits in memory while Maxim is unreachable
    assert_private(p.spool)
    fake.go_up()
    assert p.flush()
    assert_all_delivered(fake, p.tee.lines)
    assert spool_files(p.spool) == []  # acknowledged batches leave the disk


def test_responses_slower_than_the_timeout(fake: FakeMaxim, make: Callable[..., Pipeline]) -> None:
    p = make(export_timeout=0.4)
    fake.plan(Fault.slow(1.0), Fault.slow(1.0))
    p.produce(10)
    assert p.flush()
    assert_all_delivered(fake, p.tee.lines)
    assert len(fake.accepted()) > len(fake.distinct())  # at least once: what timed out was sent again


def test_one_batch_answered_400_is_quarantined_and_the_rest_delivered(
    fake: FakeMaxim, make: Callable[..., Pipeline], caplog: pytest.LogCaptureFixture
) -> None:
    p = make(max_rejections=2)
    fake.reject_when = lambda lines: "poisoned record" if any("poison" in line for line in lines) else None
    p.produce(5)
    assert p.flush()
    p.produce(1, "poison")  # a batch of its own
    assert p.flush()
    p.produce(5, "after")
    assert p.flush()
    quarantined = [line for path in spool_files(p.spool, quarantine=True) for line in path.read_text().splitlines()]
    poison = [line for line in p.tee.lines if "poison" in line]
    assert poison and set(poison) <= set(quarantined)
    assert_all_delivered(fake, p.tee.lines, excluded=quarantined)
    assert any("after" in line for line in fake.distinct())  # what came behind it went on
    assert "HTTP 400: poisoned record" in caplog.text
    assert "set aside in" in caplog.text
    assert p.sink.stats()["quarantined_batches"] == 1
    assert_private(p.spool)


def test_batches_set_aside_one_after_another_make_one_error_line(
    fake: FakeMaxim, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fake.reject_when = lambda lines: "this record is not valid"
    sink = _api_sink(fake, tmp_path, max_rejections=1, check_repository=False)
    try:
        for i in range(4):
            assert sink.write([line(i)])
            assert sink.flush(10)  # done: the batch is set aside
    finally:
        sink.close(5)
    assert sink.stats()["quarantined_batches"] == 4
    assert len(spool_files(tmp_path / "spool", quarantine=True)) == 4
    assert [r.levelno for r in caplog.records if "set aside in" in r.getMessage()] == [logging.ERROR]  # rate-limited


def test_a_rejected_batch_costs_only_itself_when_batches_written_in_a_row_share_an_item(
    fake: FakeMaxim, tmp_path: Path
) -> None:
    """Batches written while the sender gathers share one item in memory; Maxim refusing one of them
    splits the item back into its batches, and only that one is set aside."""
    fake.reject_when = lambda lines: "this record is not valid" if any("BAD" in x for x in lines) else None
    sink = _api_sink(
        fake,
        tmp_path,
        max_rejections=2,
        backoff_initial=0.02,
        backoff_max=0.05,
        check_repository=False,
        linger=60.0,  # after the first send, the batches below gather (and share an item) until the flush
    )
    batches = [[line(i, name="BAD" if i == 4 else f"trace {i}")] for i in range(1, 11)]
    try:
        assert sink.write([line(0)])
        assert fake.wait_for_distinct(1)
        for batch in batches:
            assert sink.write(batch)
        assert sink.flush(10)
    finally:
        sink.close(5)
    bad = batches[3]
    assert fake.distinct() == [line(0)] + [x for batch in batches if batch is not bad for x in batch]
    (set_aside,) = spool_files(tmp_path / "spool", quarantine=True)
    assert set_aside.read_text().splitlines() == bad
    assert sink.stats()["quarantined_batches"] == 1


def test_a_flush_whose_records_were_already_on_their_way_leaves_the_next_ones_to_linger(
    fake: FakeMaxim, tmp_path: Path
) -> None:
    """A flush asks for a send now; when the send was already under way, that request is spent with it,
    and records written after the flush wait out the linger as usual instead of going out at once."""
    fake.plan(Fault.slow(0.5))  # the first POST is on its way while the flush is asked for
    sink = _api_sink(fake, tmp_path, linger=60.0, check_repository=False)
    try:
        assert sink.write([line(0)])
        assert fake.wait_until(lambda: len(fake.requests) == 1)  # taken by the sender, not yet answered
        assert sink.flush(10)
        assert sink.write([line(1)])
        time.sleep(0.5)  # long enough for a send that is not held back
        assert [post.lines for post in fake.log_posts()] == [[line(0)]]
    finally:
        sink.close(5)
    assert fake.distinct() == [line(0), line(1)]  # the close sends it


def test_a_spooled_file_of_several_batches_sets_aside_only_the_one_maxim_refuses(
    fake: FakeMaxim, tmp_path: Path
) -> None:
    """A process that exits while batches wait in memory (sharing an item) writes them in one file, their
    bounds kept: the process that adopts it splits it when Maxim refuses one, and sends the others."""
    spool = tmp_path / "spool"
    batches = [[line(i, name="BAD" if i == 4 else f"trace {i}"), line(100 + i)] for i in range(1, 11)]
    script = textwrap.dedent(
        f"""
        import json, os, sys
        from otel_maxim.sinks.maxim_api import MaximApiSink
        sink = MaximApiSink(api_key=os.environ["KEY"], repo_id={REPO!r}, base_url={fake.base_url!r},
                            spool_dir={str(spool)!r}, check_repository=False, linger=60.0)
        assert sink.write([{line(0)!r}]) and sink.flush(10)  # then the sender gathers for 60 s
        for batch in json.loads(sys.stdin.read()):
            assert sink.write(batch)
        sys.exit(0)  # no shutdown: what waits in memory is spooled at exit
        """
    )
    done = _run_python(script, {**os.environ, "KEY": KEY}, stdin=json.dumps(batches))
    assert done.returncode == 0, done.stderr
    assert len(spool_files(spool)) == 1  # ten batches, one file
    assert spooled_lines(spool) == [x for batch in batches for x in batch]
    fake.reject_when = lambda lines: "this record is not valid" if any("BAD" in x for x in lines) else None
    sink = MaximApiSink(
        api_key=KEY,
        repo_id=REPO,
        base_url=fake.base_url,
        spool_dir=spool,
        max_rejections=2,
        backoff_initial=0.02,
        backoff_max=0.05,
        check_repository=False,
    )
    try:
        assert sink.flush(10)
    finally:
        sink.close(5)
    bad = batches[3]
    assert fake.distinct() == [line(0)] + [x for batch in batches if batch is not bad for x in batch]
    (set_aside,) = spool_files(spool, quarantine=True)
    assert set_aside.read_text().splitlines() == bad
    (destination,) = spool.iterdir()  # the directory of this repository and URL
    assert [path.name for path in destination.iterdir()] == [QUARANTINE]  # the adopted directory is gone


@pytest.mark.parametrize(
    "fault",
    [
        Fault.of(401, message="Invalid API key"),
        Fault.of(403, message="this key may not write to the repository"),
        Fault.of(404, message="log repository not found"),
        Fault.redirect("https://elsewhere.example/api/sdk/v3/log", 301),
    ],
    ids=lambda fault: str(fault.status),
)
def test_an_answer_that_is_not_about_the_records_sets_nothing_aside(
    fault: Fault, fake: FakeMaxim, make: Callable[..., Pipeline], caplog: pytest.LogCaptureFixture
) -> None:
    """A refused key, a missing repository, a redirect: the next request gets the same answer whatever it
    carries, so the records wait (as in an outage) for the answer to change, and the log says so once."""
    p = make(max_rejections=1)
    fake.plan(*[fault] * 4)
    p.produce(3)
    time.sleep(0.05)
    p.produce(3, "u")
    assert p.flush()
    assert [r.status for r in fake.log_posts()][:5] == [fault.status] * 4 + [200]
    assert p.sink.stats()["quarantined_batches"] == 0
    assert spool_files(p.spool, quarantine=True) == []
    assert_all_delivered(fake, p.tee.lines)
    errors = [r for r in caplog.records if r.name.startswith("otel_maxim") and r.levelno >= logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    assert f"HTTP {fault.status}" in errors[0].getMessage()


def test_a_revoked_key_keeps_every_record_for_the_next_process(
    fake: FakeMaxim, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Every POST answered 401: nothing is set aside, one ERROR line, and the records wait on disk until a
    process with a key Maxim takes sends them."""
    spool = tmp_path / "spool"
    revoked = "sk-maxim-REVOKED-0c9a1b2d3e4f5a6b"
    produced = [line(i) for i in range(30)]
    sink = MaximApiSink(
        api_key=revoked,
        repo_id=REPO,
        base_url=fake.base_url,
        spool_dir=spool,
        check_repository=False,
        backoff_initial=0.01,
        backoff_max=0.01,
        linger=0,
    )
    try:
        for record in produced:
            assert sink.write([record])
            time.sleep(0.005)
        assert fake.wait_until(lambda: len(fake.log_posts()) >= 10)
    finally:
        sink.close(1)
    assert {r.status for r in fake.log_posts()} == {401}
    assert sink.stats()["quarantined_batches"] == 0
    assert spool_files(spool, quarantine=True) == []
    assert spooled_lines(spool) == produced
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "HTTP 401: Invalid API key" in errors[0].getMessage()
    assert revoked not in caplog.text
    _deliver_spooled(fake, spool, produced)  # a sink with the right key


def test_a_spooled_batch_that_cannot_be_read_stays_until_it_can(
    fake: FakeMaxim, make: Callable[..., Pipeline], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read that fails for a moment (too many open files: not something a test can cause) loses nothing."""
    p = make(max_memory_bytes=0)  # every batch goes through the spool
    real_read = Spool.read
    failures: list[str] = []

    def read_failing_once(spool: Spool, segment: Any) -> list[list[str]]:
        if not failures:
            failures.append(segment.path)
            raise OSError(errno.EMFILE, "Too many open files")
        return real_read(spool, segment)

    monkeypatch.setattr(Spool, "read", read_failing_once)
    p.produce(5)
    assert p.flush()
    assert failures, "no spooled batch was read"
    assert_all_delivered(fake, p.tee.lines)
    assert spool_files(p.spool) == [] and p.sink.stats()["quarantined_batches"] == 0


def test_a_spooled_batch_that_never_reads_is_set_aside_not_deleted(
    fake: FakeMaxim, make: Callable[..., Pipeline], caplog: pytest.LogCaptureFixture
) -> None:
    earlier = make()
    fake.go_down()
    earlier.produce(3, "unreadable")
    earlier.provider.shutdown()  # Maxim is down: the batch is left in the spool
    (head,) = spool_files(earlier.spool)
    kept = head.read_text()
    head.unlink()
    head.mkdir()  # a real read error: a directory where the batch was
    (head / "batch").write_text(kept)
    fake.go_up()
    p = make(max_rejections=2)  # adopts what the earlier one left
    p.produce(3, "behind")
    assert p.flush()
    (set_aside,) = [path for path in (p.spool.rglob("*.seg")) if QUARANTINE in path.parts]
    assert (set_aside / "batch").read_text() == kept  # moved, never deleted
    assert_all_delivered(fake, p.tee.lines, excluded=kept.splitlines())
    assert any("behind" in line for line in fake.distinct())  # what came behind it went on
    assert f"Could not read spooled records {head}" in caplog.text
    assert "could not be read 2 times; the batch is set aside in" in caplog.text
    assert p.sink.stats()["quarantined_batches"] == 1


def test_server_down_at_shutdown_then_a_new_process_delivers_everything(
    fake: FakeMaxim, make: Callable[..., Pipeline]
) -> None:
    p = make()
    p.produce(5)
    assert p.flush()
    fake.go_down()
    p.produce(12, "late")
    p.provider.shutdown()
    assert spool_files(p.spool), "shutdown must leave what Maxim did not take on disk"
    assert_private(p.spool)
    fake.go_up()
    script = textwrap.dedent(
        """
        from otel_maxim import MaximSpanExporter
        exporter = MaximSpanExporter()  # everything from the environment, as under opentelemetry-instrument
        flushed = exporter.force_flush(20_000)
        exporter.shutdown()
        print("FLUSHED" if flushed else "NOT FLUSHED")
        """
    )
    environment = {
        **os.environ,
        env.MAXIM_API_KEY: KEY,
        env.MAXIM_LOG_REPO_ID: REPO,
        env.MAXIM_BASE_URL: fake.base_url,
        env.MAXIM_SPOOL_DIR: str(p.spool),
    }
    done = _run_python(script, environment)
    assert done.returncode == 0, done.stderr
    assert "FLUSHED" in done.stdout, done.stderr
    assert KEY not in done.stdout + done.stderr
    assert_all_delivered(fake, p.tee.lines)
    assert spool_files(p.spool) == []
    assert [p.name for d in p.spool.iterdir() for p in d.iterdir()] == []  # the adopted producer directory is gone too


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork() on this platform")
def test_a_forked_child_delivers_its_own_records(fake: FakeMaxim, tmp_path: Path) -> None:
    """The child starts empty, with its own locks, sender and sockets (the parent keeps what it queued),
    even when another thread of the parent was inside the sink, holding its lock, at the fork."""
    script = textwrap.dedent(
        f"""
        import os, signal, threading
        from otel_maxim.sinks.maxim_api import MaximApiSink
        sink = MaximApiSink(api_key=os.environ["KEY"], repo_id={REPO!r}, base_url={fake.base_url!r},
                            spool_dir={str(tmp_path / "spool")!r}, check_repository=False)
        assert sink.write([{line(0)!r}]) and sink.flush(10)
        inside, leave = threading.Event(), threading.Event()
        def busy():
            with sink._cond:  # as a write in another thread holds it
                inside.set()
                leave.wait(10)
        worker = threading.Thread(target=busy)
        worker.start()
        inside.wait(10)
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGALRM, lambda *_: os._exit(4))  # stuck on a copied lock
            signal.alarm(20)
            ok = sink.write([{line(1)!r}]) and sink.flush(10)
            sink.close(10)
            os._exit(0 if ok else 3)
        leave.set()
        worker.join()
        _, status = os.waitpid(pid, 0)
        sink.close(10)
        print("child exit", os.waitstatus_to_exitcode(status))
        """
    )
    done = _run_python(script, {**os.environ, "KEY": KEY})
    assert done.returncode == 0, done.stderr
    assert "child exit 0" in done.stdout, done.stderr
    assert_all_delivered(fake, [line(0), line(1)])


def test_a_crashed_process_loses_nothing(fake: FakeMaxim, tmp_path: Path) -> None:
    """A process killed after spooling: its lock dies with it, and the next process sends its batches."""
    spool = tmp_path / "spool"
    produced = [line(i) for i in range(40)]
    fake.go_down()
    script = textwrap.dedent(
        f"""
        import json, os, sys
        from otel_maxim.sinks.maxim_api import MaximApiSink
        sink = MaximApiSink(api_key=os.environ["KEY"], repo_id={REPO!r}, base_url={fake.base_url!r},
                            spool_dir={str(spool)!r}, export_timeout=0.2, check_repository=False)
        lines = json.loads(sys.stdin.read())
        for start in range(0, len(lines), 10):
            assert sink.write(lines[start:start + 10])
        assert not sink.flush(0.5)  # the API is down: what is queued goes to disk
        os._exit(9)  # no close(): a crash
        """
    )
    done = _run_python(script, {**os.environ, "KEY": KEY}, stdin=json.dumps(produced))
    assert done.returncode == 9, done.stderr
    assert KEY not in done.stderr
    assert spooled_lines(spool) == produced  # all on disk, in order (batches written in a row may share a file)
    fake.go_up()
    _deliver_spooled(fake, spool, produced)


# --- the spool: whose records, how many directories, what happens to it -----------------------------


def test_spooled_records_wait_for_a_process_that_sends_to_their_own_repository_and_url(tmp_path: Path) -> None:
    """One spool directory serves every program of a user: what waits for repository A, or for the
    staging URL, is not sent by a process configured for B, or for production; A's own next process sends it."""
    spool = tmp_path / "spool"
    with (
        FakeMaxim(api_key=KEY, repositories=("repo-a", "repo-b")) as staging,
        FakeMaxim(api_key=KEY, repositories=("repo-a",)) as production,
    ):
        staging.go_down()
        left = MaximApiSink(
            api_key=KEY, repo_id="repo-a", base_url=staging.base_url, spool_dir=spool, check_repository=False
        )
        assert left.write([line(1), line(2)])
        left.close(0.5)  # Maxim is down: the records wait on disk
        staging.go_up()
        for repo, fake in (("repo-b", staging), ("repo-a", production)):
            other = MaximApiSink(
                api_key=KEY, repo_id=repo, base_url=fake.base_url, spool_dir=spool, check_repository=False
            )
            try:
                assert other.write([line(3)]) and other.flush(10)
            finally:
                other.close(5)
        assert staging.distinct() == [line(3)]
        assert production.distinct() == [line(3)]
        _deliver_spooled(staging, spool, [line(3), line(1), line(2)], repo="repo-a")  # after B's own line(3)


def test_a_backlog_of_many_ended_processes_is_adopted_a_few_directories_at_a_time(
    fake: FakeMaxim, tmp_path: Path
) -> None:
    """Each adopted directory holds a file descriptor until its batches are sent: a service that crashed
    in a loop while Maxim was down left a directory per start, and adopting them all at once ran the
    host out of descriptors.  At most MAX_ADOPTED are held; the rest follow as those are done."""
    spool = tmp_path / "spool"
    left_behind = 3 * MAX_ADOPTED
    for i in range(left_behind):  # what ended processes left: a directory each, not locked
        ended = Spool(destination_dir(spool, fake.base_url, REPO), 1 * MiB)
        ended.append("00000000000000000001", [line(i)])
        ended.release()
    sink = MaximApiSink(api_key=KEY, repo_id=REPO, base_url=fake.base_url, spool_dir=spool, check_repository=False)
    try:
        held_at_start = len(sink._spool._held)
        assert sink.flush(10)
        wait_for(lambda: len(fake.distinct()) == left_behind)
    finally:
        sink.close(5)
    assert held_at_start == MAX_ADOPTED
    assert fake.distinct() == [line(i) for i in range(left_behind)]  # in the order they were left
    assert spool_files(spool) == []


def test_a_backlog_is_adopted_while_the_application_keeps_writing(fake: FakeMaxim, tmp_path: Path) -> None:
    """Adoption waited for an empty queue: under steady traffic, what ended processes left past the
    first MAX_ADOPTED directories waited until the application paused."""
    spool = tmp_path / "spool"
    left_behind = MAX_ADOPTED + 4
    for i in range(left_behind):
        ended = Spool(destination_dir(spool, fake.base_url, REPO), 1 * MiB)
        ended.append("00000000000000000001", [line(i)])
        ended.release()
    fake.plan(*[Fault.slow(0.1)] * 2000)  # a distant API: each POST answered 0.1 s late
    sink = MaximApiSink(api_key=KEY, repo_id=REPO, base_url=fake.base_url, spool_dir=spool, check_repository=False)
    stop = threading.Event()

    def keep_writing() -> None:  # a record every 5 ms: records always wait while a POST is under way
        n = 1000
        while not stop.is_set():
            sink.write([line(n)])
            n += 1
            time.sleep(0.005)

    writer = threading.Thread(target=keep_writing)
    writer.start()
    try:
        wait_for(lambda: {line(i) for i in range(left_behind)} <= set(fake.distinct()), timeout=20)
    finally:
        stop.set()
        writer.join(5)
        sink.close(5)
    assert spool_files(spool) == []


def test_the_same_api_written_two_ways_is_one_destination_and_paths_keep_their_case() -> None:
    """The spool's destination is the API the records go to: a default port, the host's case and a
    trailing slash change nothing; a path (a proxy routing by tenant) does, whatever its case."""
    same = {destination_dir("s", url, "r") for url in ("https://app.getmaxim.ai", "HTTPS://App.GetMaxim.ai:443/")}
    assert len(same) == 1
    tenants = {destination_dir("s", f"https://proxy.example/{t}", "r") for t in ("Tenant-A", "tenant-a")}
    assert len(tenants) == 2
    assert destination_dir("s", "https://app.getmaxim.ai", "r") != destination_dir("s", "https://app.getmaxim.ai", "q")


def test_a_spool_left_by_an_earlier_layout_is_named_in_a_warning(
    fake: FakeMaxim, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Before the destination subdirectories, producers sat right in the spool directory: their records
    name no repository, so they are not sent, and the warning says where to move them to send them."""
    spool = tmp_path / "spool"
    old = Spool(spool, 1 * MiB)  # the old layout: the spool directory itself held the producers
    old.append("00000000000000000001", [line(1)])
    old.release()
    with caplog.at_level(logging.WARNING, logger="otel_maxim"):
        sink = _api_sink(fake, tmp_path, check_repository=False)
        sink.close(5)
    assert fake.distinct() == []
    (warning,) = [r.getMessage() for r in caplog.records if "earlier version" in r.getMessage()]
    assert warning.startswith("1 spool directories in ") and destination_dir(spool, fake.base_url, REPO) in warning


def test_another_users_directory_in_the_spool_is_not_adopted(
    fake: FakeMaxim, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A spool directory others can write to must not let them have this process send their records
    with its key: only this user's directories are adopted (another user is played by changing our uid)."""
    spool = tmp_path / "spool"
    planted = Spool(destination_dir(spool, fake.base_url, REPO), 1 * MiB)
    planted.append("00000000000000000001", [line(666)])
    planted.release()
    monkeypatch.setattr(os, "getuid", lambda: os.geteuid() + 1)
    sink = MaximApiSink(api_key=KEY, repo_id=REPO, base_url=fake.base_url, spool_dir=spool, check_repository=False)
    try:
        assert sink.write([line(1)]) is True
        assert sink.flush(10)
    finally:
        sink.close(5)
    assert fake.distinct() == [line(1)]
    assert len(spool_files(spool)) == 1  # the planted file, untouched


def test_a_spool_directory_removed_while_the_process_runs_is_made_again(fake: FakeMaxim, tmp_path: Path) -> None:
    """A cache cleaner removes the spool during an outage: what is spooled after that goes to a new
    directory and is delivered, instead of waiting in memory and being lost at shutdown."""
    import shutil  # noqa: PLC0415 - only here

    spool = tmp_path / "spool"
    fake.go_down()
    sink = _api_sink(fake, tmp_path, export_timeout=0.2, backoff_initial=0.05, backoff_max=0.1, check_repository=False)
    try:
        assert sink.write([line(1)])
        wait_for(lambda: bool(spool_files(spool)))
        shutil.rmtree(spool)
        assert sink.write([line(2)])
        wait_for(lambda: bool(spool_files(spool)))  # on disk again, in a new directory
        assert sink.stats()["memory_bytes"] == 0
    finally:
        sink.close(0.5)
    fake.go_up()
    _deliver_spooled(fake, spool, [line(2)])


def test_records_lost_at_shutdown_are_counted_and_logged_as_errors(
    fake: FakeMaxim, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Records the spool cannot take at shutdown (full here) are refused records: counted, an ERROR."""
    fake.go_down()
    sink = _api_sink(fake, tmp_path, max_spool_bytes=100, export_timeout=0.2, check_repository=False)
    big = [line(i, padding="x" * 200) for i in range(3)]
    with caplog.at_level(logging.WARNING, logger="otel_maxim"):
        assert sink.write(big)
        sink.close(0.5)
    assert sink.stats()["refused_records"] == 3
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any("3 records could not be sent before shutdown" in m and "full: cap 100 bytes" in m for m in errors)


def test_quarantined_files_never_overwrite_each_other(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Labels repeat (every process numbers its files from 1) and clocks repeat (a coarse clock, a step back)."""
    spool = Spool(tmp_path / "spool" / "to-x", 1 * MiB)
    monkeypatch.setattr(time, "time_ns", lambda: 1_700_000_000_000_000_000)
    first = spool.quarantine("1", lines=[line(1)])
    second = spool.quarantine("1", lines=[line(2)])
    assert first != second
    assert [Path(p).read_text() for p in (first, second)] == [line(1) + "\n", line(2) + "\n"]


# --- bodies and large records ----------------------------------------------------------------


def test_a_batch_over_5_mb_is_split_into_bodies_in_order(fake: FakeMaxim, make: Callable[..., Pipeline]) -> None:
    p = make(schedule_delay_millis=60_000, export_timeout=10.0)  # one export of everything
    for i in range(12):
        p.produce(1, f"big{i}", spans=0, **{"maxim.input": f"{i}:" + "x" * 600_000})
    assert p.flush()
    bodies = [len(r.body) for r in fake.log_posts()]
    assert sum(bodies) > 7_000_000
    assert len(bodies) >= 2
    assert max(bodies) <= 5 * MiB
    assert_all_delivered(fake, p.tee.lines)


def test_a_record_over_900_kb_goes_through_the_large_log_upload(fake: FakeMaxim, make: Callable[..., Pipeline]) -> None:
    p = make(export_timeout=10.0)
    p.produce(1, "huge", **{"maxim.input": "y" * 1_000_000})
    assert p.flush()
    big = [line for line in p.tee.lines if len(line) > 900 * 1024]
    assert len(big) == 1
    (ask,) = fake.requests_to(UPLOAD_URL_PATH)
    assert ask.query["key"].startswith(f"{REPO}/large-logs/")
    assert ask.query["mimeType"] == "text/plain"
    assert ask.query["size"] == str(len(big[0].encode()))
    assert ask.headers["x-maxim-api-key"] == KEY
    (put,) = fake.requests_to(STORAGE_PREFIX)
    assert put.method == "PUT"
    assert put.query["X-Goog-Signature"]  # the signed URL as given, its signature (the query) kept
    assert put.body == big[0].encode()
    assert "x-maxim-api-key" not in put.headers  # the key never goes to the storage host
    (post,) = [r for r in fake.log_posts() if any(x.startswith("storage{") for x in r.lines)]
    file_id = ask.query["key"].rsplit("/", 1)[1]
    storage = f'storage{{id={file_id},action=process-large-log,data={{"key":"{ask.query["key"]}"}}}}'
    assert post.lines[p.tee.lines.index(big[0])] == storage  # in place of the record, order kept
    assert len(post.body) < 100_000
    assert_all_delivered(fake, p.tee.lines)


# --- attachments: files in a generation's messages ------------------------------------------------

#: A 1x1 PNG, as an application would send it to a vision model.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
    "0000000d49444154789c6360000002000001e221bc330000000049454e44ae426082"
)


def _vision_generation(p: Pipeline, parts: list[dict[str, Any]]) -> str:
    """One chat generation whose user message holds ``parts``; its Maxim id."""
    messages = [{"role": "user", "parts": [{"type": "text", "content": "What is in this picture?"}, *parts]}]
    attributes = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.input.messages": json.dumps(messages),
    }
    tracer = p.provider.get_tracer("tests")
    with tracer.start_as_current_span("turn"), tracer.start_as_current_span("chat", attributes=attributes) as span:
        return f"{span.get_span_context().span_id:016x}"


def test_a_file_in_a_message_is_uploaded_and_attached_as_maxim_py_does(
    fake: FakeMaxim, make: Callable[..., Pipeline]
) -> None:
    """An inline image: asked an upload URL under maxim-py's key, PUT with its type, then
    ``add-attachment`` with that key in place of the ``upload-attachment`` line; a URL only gets the key."""
    p = make(export_timeout=10.0)
    encoded = base64.b64encode(PNG).decode()
    generation = _vision_generation(
        p,
        [
            {"type": "uri", "modality": "image", "uri": "https://example.com/cat.png"},
            {"type": "blob", "modality": "image", "mime_type": "image/png", "content": encoded},
        ],
    )
    assert p.flush()
    key = f"{REPO}/generation/{generation}/files/original/{generation}-a1"
    (ask,) = fake.requests_to(UPLOAD_URL_PATH)
    assert ask.query == {"key": key, "mimeType": "image/png", "size": str(len(PNG))}
    (put,) = fake.requests_to(STORAGE_PREFIX)
    assert put.body == PNG
    assert put.headers["content-type"] == "image/png"
    assert "x-maxim-api-key" not in put.headers
    assert fake.uploads[key] == PNG
    sent = [parse(x) for x in fake.accepted() if ",action=add-attachment," in x]
    assert [(r.entity, r.id) for r in sent] == [("generation", generation)] * 2
    url_data, file_data = (r.data for r in sent)
    assert url_data == {
        "id": f"{generation}-a0",
        "type": "url",
        "url": "https://example.com/cat.png",
        "tags": {"attach-to": "input"},
        "key": f"{REPO}/generation/{generation}/files/original/{generation}-a0",
    }
    assert list(file_data) == ["id", "type", "mime_type", "tags", "key", "mimeType"]
    assert file_data["key"] == key and file_data["mimeType"] == "image/png" and file_data["type"] == "file_data"
    # Each in the place of its upload-attachment line: after the generation is announced.
    accepted = fake.accepted()
    announced = next(i for i, x in enumerate(accepted) if ",action=add-generation," in x)
    assert all(
        accepted.index(
            f"generation{{id={generation},action=add-attachment,data={json.dumps(d, separators=(',', ':'))}}}"
        )
        > announced
        for d in (url_data, file_data)
    )
    assert not any(",action=upload-attachment," in x for r in fake.log_posts() for x in r.lines)


def test_a_file_that_is_not_base64_or_that_storage_refuses_costs_only_itself(
    fake: FakeMaxim, make: Callable[..., Pipeline], caplog: pytest.LogCaptureFixture
) -> None:
    p = make(export_timeout=10.0)
    broken = _vision_generation(p, [{"type": "blob", "modality": "image", "mime_type": "image/png", "content": "*%$"}])
    assert p.flush()
    fake.refuse_uploads = True
    refused = _vision_generation(p, [{"type": "blob", "modality": "image", "content": base64.b64encode(PNG).decode()}])
    assert p.flush()
    accepted = fake.accepted()
    for generation in (broken, refused):
        assert any(x.startswith(f"generation{{id={generation},action=end,") for x in accepted)  # the rest went
    assert not any(",action=add-attachment," in x for x in accepted)
    assert f"An attachment of generation {broken} is not a file this can upload" in caplog.text
    assert f"Storage refused an attachment of generation {refused}; it is not sent." in caplog.text
    (ask,) = fake.requests_to(UPLOAD_URL_PATH)  # the broken one never asked
    assert ask.query["mimeType"] == "image/png"  # a file sent with no type: its bytes say it
    assert p.sink.stats()["quarantined_batches"] == 0


@pytest.mark.parametrize("data", [None, 5, ["a"], {"b": 1}, "*%$"])
def test_an_attachment_whose_data_is_not_base64_text_costs_only_itself(
    fake: FakeMaxim, tmp_path: Path, caplog: pytest.LogCaptureFixture, data: object
) -> None:
    """What a redact callback may leave of a file: dropped with a log line; the sender lives on."""
    upload = serialize(
        Record("generation", "g1", "upload-attachment", {"id": "g1-a0", "type": "file_data", "data": data})
    )
    sink = MaximApiSink(api_key=KEY, repo_id=REPO, base_url=fake.base_url, spool_dir=tmp_path / "spool")
    try:
        assert sink.write([upload, line(1)])
        assert sink.flush(5)
        assert sink.write([upload])  # a body of nothing else: acknowledged, nothing posted
        assert sink.flush(5)
        assert sink.write([line(2)])
        assert sink.flush(5)
    finally:
        sink.close(5)
    assert fake.accepted() == [line(1), line(2)]
    assert all(r.lines and r.lines != [""] for r in fake.log_posts())
    assert "An attachment of generation g1 is not a file this can upload" in caplog.text
    assert "stopped unexpectedly" not in caplog.text
    assert sink.stats()["queued_batches"] == 0


def test_a_refused_upload_is_logged_without_the_urls_signature(
    fake: FakeMaxim, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fake.refuse_uploads = True
    sink = MaximApiSink(
        api_key=KEY, repo_id=REPO, base_url=fake.base_url, spool_dir=tmp_path / "spool", max_rejections=1
    )
    try:
        sink.write([line(1, input="z" * 1_000_000)])
        sink.flush(5)
    finally:
        sink.close(5)
    (put,) = fake.requests_to(STORAGE_PREFIX)
    assert put.status == 403
    signature = put.query["X-Goog-Signature"]
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("otel_maxim"))
    assert "SignatureDoesNotMatch: the signature '[signed]' is not valid" in ours
    assert signature not in ours  # (urllib3's own DEBUG lines show the URLs it opens)
    assert sink.stats()["quarantined_batches"] == 1  # set aside, not lost


def _large_record_and_attachment() -> tuple[str, str]:
    """A record over 900 KB (uploaded as a large log) and an ``upload-attachment`` line of a PNG."""
    attachment = {"id": "g1-a0", "type": "file_data", "data": base64.b64encode(PNG).decode()}
    return line(1, input="z" * 1_000_000), serialize(Record("generation", "g1", "upload-attachment", attachment))


@pytest.mark.parametrize("status", [403, 404])
def test_an_upload_url_refused_for_good_costs_only_its_record_or_file(
    status: int, fake: FakeMaxim, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Uploads not enabled for the key (say) while the log push works: not the settings' fault for the
    records. The large record's batch is set aside, the file is dropped, and everything else goes on."""
    fake.upload_url_status = status
    big, upload = _large_record_and_attachment()
    sink = _api_sink(fake, tmp_path, max_rejections=2, backoff_initial=0.02, backoff_max=0.05, check_repository=False)
    try:
        assert sink.write([big])
        assert sink.write([line(2)])
        assert sink.write([upload, line(3)])
        assert sink.flush(10)
    finally:
        sink.close(5)
    assert fake.distinct() == [line(2), line(3)]
    assert {r.status for r in fake.requests_to(UPLOAD_URL_PATH)} == {status}
    (set_aside,) = spool_files(tmp_path / "spool", quarantine=True)
    assert set_aside.read_text().splitlines() == [big]
    assert sink.stats()["quarantined_batches"] == 1
    assert "Storage refused an attachment of generation g1; it is not sent." in caplog.text
    assert f"HTTP {status}: uploads are not enabled for this API key" in caplog.text


def test_an_upload_url_refusing_the_key_makes_the_records_wait(fake: FakeMaxim, tmp_path: Path) -> None:
    """A 401 on the upload-url call refuses the key, not this upload: the large record and the file wait
    (spooled, nothing set aside or dropped) and go once the key is accepted again."""
    fake.upload_url_status = 401
    big, upload = _large_record_and_attachment()
    sink = _api_sink(fake, tmp_path, max_rejections=2, backoff_initial=0.02, backoff_max=0.05, check_repository=False)
    try:
        assert sink.write([upload])  # a body of nothing else: it must not count as delivered
        assert sink.write([big])
        assert not sink.flush(1)
        assert sink.stats()["quarantined_batches"] == 0
        assert fake.distinct() == []
        fake.upload_url_status = None
        assert sink.flush(10)
    finally:
        sink.close(5)
    delivered = fake.distinct()  # (the fake reads a large record back from its storage)
    assert len(delivered) == 2 and "action=add-attachment" in delivered[0] and delivered[1] == big


def test_a_spooled_file_that_cannot_be_split_is_set_aside_whole_not_sent_forever(
    fake: FakeMaxim, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Maxim rejects one batch of a file of several, and the disk refuses the file's parts (full): the
    file counts its rejections as a batch would, is set aside whole, and what is behind it goes on."""
    first = _api_sink(fake, tmp_path, check_repository=False, linger=60.0)
    assert first.write([line(0)]) and first.flush(10)
    for i in range(1, 6):
        assert first.write([line(i, name="BAD" if i == 4 else f"trace {i}")])  # gathering: one item
    fake.go_down()
    first.close(0.5)  # spilled: one file of five batches
    fake.go_up()

    def full_disk(self: Spool, segment: Segment, batches: Sequence[Sequence[str]]) -> list[Segment]:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Spool, "split", full_disk)
    fake.reject_when = lambda lines: "bad record" if any("BAD" in x for x in lines) else None
    second = _api_sink(fake, tmp_path, max_rejections=2, backoff_initial=0.02, backoff_max=0.05, check_repository=False)
    try:
        assert second.write([line(99)])
        assert second.flush(10)
    finally:
        second.close(5)
    assert second.stats()["quarantined_batches"] == 1
    assert fake.distinct() == [line(0), line(99)]


def test_requests_carry_maxims_headers(fake: FakeMaxim, tmp_path: Path) -> None:
    sink = MaximApiSink(api_key=KEY, repo_id=REPO, base_url=fake.base_url, spool_dir=tmp_path / "spool")
    try:
        assert sink.write([line(1)])
        assert sink.flush(5)
    finally:
        sink.close(5)
    (post,) = fake.log_posts()
    assert post.query == {"id": REPO}
    assert post.headers["x-maxim-api-key"] == KEY
    assert post.headers["x-maxim-sdk-version"]
    assert post.headers["user-agent"].startswith("otel-maxim/")
    assert post.body == line(1).encode()  # lines joined by newlines, no trailing one
    wait_for(lambda: bool(fake.requests_to("/api/sdk/v3/log-repositories")))


def test_a_sink_that_never_has_anything_to_send_calls_no_one(fake: FakeMaxim, tmp_path: Path) -> None:
    """Made and closed with nothing written (OTEL_SDK_DISABLED=true builds the exporter all the same):
    no repository check, no request with the key."""
    sink = MaximApiSink(api_key=KEY, repo_id=REPO, base_url=fake.base_url, spool_dir=tmp_path / "spool")
    time.sleep(0.3)  # the check used to start in the constructor, at once
    sink.close(5)
    assert fake.requests == []


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_is_not_followed_so_the_key_stays_with_maxim(
    fake: FakeMaxim, tmp_path: Path, caplog: pytest.LogCaptureFixture, status: int
) -> None:
    with FakeMaxim(api_key=KEY, repositories=(REPO,)) as elsewhere:
        fake.plan(Fault.redirect(f"{elsewhere.base_url}/api/sdk/v3/log?id={REPO}", status))
        sink = MaximApiSink(api_key=KEY, repo_id=REPO, base_url=fake.base_url, spool_dir=tmp_path / "spool")
        try:
            assert sink.write([line(1)])
            sink.flush(5)
            assert fake.wait_for_distinct(1), "the record was not sent again to Maxim itself"
        finally:
            sink.close(5)
        assert elsewhere.requests == []
    assert [post.status for post in fake.log_posts()] == [status, 200]
    assert f"redirected to '127.0.0.1:{elsewhere.port}'; not followed" in caplog.text


def test_a_redirect_to_a_location_that_is_not_a_url_is_not_followed_either(
    fake: FakeMaxim, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fake.plan(Fault.redirect("http://[::1", 302))  # urlsplit raises on it
    sink = MaximApiSink(
        api_key=KEY, repo_id=REPO, base_url=fake.base_url, spool_dir=tmp_path / "spool", backoff_initial=0.02
    )
    try:
        assert sink.write([line(1)])
        assert sink.flush(10)
    finally:
        sink.close(5)
    assert [post.status for post in fake.log_posts()] == [302, 200]
    assert "redirected to 'http://[::1'; not followed" in caplog.text
    assert "stopped unexpectedly" not in caplog.text


# --- lifecycle -------------------------------------------------------------------------------


def test_export_after_shutdown_fails_with_a_warning(
    make: Callable[..., Pipeline], caplog: pytest.LogCaptureFixture
) -> None:
    p = make()
    p.produce(1)
    p.provider.shutdown()
    assert p.exporter.export([]) is SpanExportResult.FAILURE
    assert "already shut down" in caplog.text
    caplog.clear()
    assert p.sink.write([line(1)]) is False
    assert "closed" in caplog.text
    assert [r.levelno for r in caplog.records] == [logging.WARNING]


def test_double_shutdown(fake: FakeMaxim, make: Callable[..., Pipeline]) -> None:
    p = make()
    p.produce(3)
    assert p.flush()
    p.exporter.shutdown()
    p.exporter.shutdown()
    p.sink.close(1)
    p.provider.shutdown()
    assert_all_delivered(fake, p.tee.lines)


def test_shutdown_during_backoff_cuts_it_short(fake: FakeMaxim, make: Callable[..., Pipeline]) -> None:
    p = make(backoff_initial=3600.0, backoff_max=3600.0, export_timeout=120.0)
    fake.plan(*[Fault.of(503)] * 50)
    p.produce(4)
    assert fake.wait_until(lambda: len(fake.log_posts()) >= 1)  # the sender then sleeps in an hour's backoff
    sender = p.sink._sender  # this sink's own thread (another test's could still be winding down)
    assert sender is not None
    p.provider.shutdown()  # within the SDK's 30 s: the sender is left sleeping unless the backoff is cut
    assert not sender.is_alive()
    assert spool_files(p.spool)  # and the records wait on disk


def test_a_non_retryable_status_fails_at_once(
    fake: FakeMaxim, make: Callable[..., Pipeline], caplog: pytest.LogCaptureFixture
) -> None:
    p = make(max_rejections=1)
    fake.plan(Fault.of(422, message="a record is not valid"))
    p.produce(2)
    assert p.flush()
    assert [r.status for r in fake.log_posts()] == [422]  # no retry of the same body
    assert "HTTP 422: a record is not valid" in caplog.text
    assert len(spool_files(p.spool, quarantine=True)) == 1


def test_retry_after_is_honoured(fake: FakeMaxim, make: Callable[..., Pipeline]) -> None:
    p = make()
    fake.plan(Fault.of(429, retry_after=1))
    p.produce(1)
    assert p.flush()
    first, second = fake.log_posts()[:2]
    assert (first.status, second.status) == (429, 200)
    assert second.at - first.at >= 0.9  # backoff alone would have been about 20 ms


def test_a_retry_after_shorter_than_the_backoff_does_not_shorten_it(
    fake: FakeMaxim, make: Callable[..., Pipeline]
) -> None:
    """``Retry-After: 0`` on every 429 is the least to wait, not a licence to retry at once."""
    p = make(backoff_initial=0.25, backoff_max=0.25)
    fake.plan(*[Fault.of(429, retry_after=0)] * 3)
    p.produce(1)
    assert p.flush()
    posts = fake.log_posts()
    assert [post.status for post in posts] == [429, 429, 429, 200]
    assert all(later.at - earlier.at >= 0.19 for earlier, later in zip(posts, posts[1:]))  # 0.25 s -20 % jitter


def test_a_200_with_an_error_in_its_json_is_a_failure(
    fake: FakeMaxim, make: Callable[..., Pipeline], caplog: pytest.LogCaptureFixture
) -> None:
    p = make()
    fake.plan(Fault.error("records could not be processed"))
    p.produce(3)
    assert p.flush()
    assert [r.status for r in fake.log_posts()][:2] == [200, 200]
    assert "HTTP 200: records could not be processed" in caplog.text
    assert_all_delivered(fake, p.tee.lines)


def test_after_a_send_records_gather_for_linger_unless_a_flush_asks(fake: FakeMaxim, tmp_path: Path) -> None:
    sink = _api_sink(
        fake,
        tmp_path,
        check_repository=False,
        linger=60.0,  # far longer than the test: only a flush can end this gathering
    )
    try:
        assert sink.write([line(0)])
        assert fake.wait_for_distinct(1)  # the first send goes at once
        for i in range(1, 4):
            assert sink.write([line(i)])
        time.sleep(0.3)
        assert len(fake.log_posts()) == 1  # gathering: nothing sent since
        assert sink.flush(30)  # a flush does not wait for the gathering
        first, second = fake.log_posts()
        assert second.lines == [line(1), line(2), line(3)]  # gathered into one body
    finally:
        sink.close(5)
    with pytest.raises(ValueError, match="linger"):
        MaximApiSink(api_key=KEY, repo_id=REPO, base_url=fake.base_url, spool_dir=tmp_path, linger=-1)


def test_flush_keeps_its_deadline_and_spools_what_is_left(fake: FakeMaxim, make: Callable[..., Pipeline]) -> None:
    p = make(export_timeout=30.0)
    fake.go_down()
    p.produce(5)
    flushed: list[bool] = []
    flushing = threading.Thread(target=lambda: flushed.append(p.flush(1.0)))
    flushing.start()
    flushing.join(5.0)  # a bound on the wait, far from 1 s: the deadline, not this machine's speed, is tested
    assert flushed == [False], "flush(1.0) did not come back within 5 s"
    assert spool_files(p.spool)
    assert p.sink.stats()["memory_bytes"] == 0


def test_a_flush_out_of_time_spools_memory_in_a_file_per_mib_not_per_batch(fake: FakeMaxim, tmp_path: Path) -> None:
    """The flushing thread (the application's, under force_flush) writes what waits in memory to disk: its
    cost follows the bytes held, not the number of batches, and all of it is on disk when flush returns."""
    spool = tmp_path / "spool"
    produced = [line(i) for i in range(500)]
    fake.plan(Fault.slow(3.0))  # Maxim takes the first body and answers after the sender gave up on it
    sink = MaximApiSink(
        api_key=KEY, repo_id=REPO, base_url=fake.base_url, spool_dir=spool, export_timeout=2.0, check_repository=False
    )
    try:
        assert sink.write(produced[:1])
        assert fake.wait_until(lambda: len(fake.log_posts()) == 1)  # the sender now waits for the answer
        for record in produced[1:]:
            assert sink.write([record])  # a batch each, as a busy exporter writes them
        assert not sink.flush(0.01)
        assert spooled_lines(spool) == produced
        assert len(spool_files(spool)) == 2  # the batch being sent, and the 499 written behind it
        assert sink.flush(30)
    finally:
        sink.close(5)
    assert_all_delivered(fake, produced)


def test_the_spool_cap_refuses_counts_and_says_so(
    fake: FakeMaxim, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fake.go_down()
    sink = _api_sink(fake, tmp_path, max_spool_bytes=3000, max_memory_bytes=0, check_repository=False)
    try:
        results = [sink.write([line(10 * b + i) for i in range(10)]) for b in range(6)]
        assert results[0] is True
        assert results[-1] is False
        refused = sink.stats()["refused_records"]
        assert refused == 10 * results.count(False)
        assert sum(p.stat().st_size for p in spool_files(tmp_path / "spool")) <= 3000
    finally:
        sink.close(0.5)
    assert "Refused 10 records" in caplog.text
    assert f"{refused} records were refused" in caplog.text


def test_our_http_calls_are_not_traced(fake: FakeMaxim, tmp_path: Path) -> None:
    sink = MaximApiSink(
        api_key=KEY, repo_id=REPO, base_url=fake.base_url, spool_dir=tmp_path / "spool", check_repository=False
    )
    seen: list[object] = []

    def hook(response: object, *args: object, **kwargs: object) -> None:
        seen.append(context.get_value(context._SUPPRESS_INSTRUMENTATION_KEY))

    sink._client._session.hooks["response"].append(hook)
    try:
        assert sink.write([line(1)])
        assert sink.flush(5)
    finally:
        sink.close(5)
    assert seen == [True]


def test_the_key_is_in_no_repr_message_or_exception(fake: FakeMaxim, tmp_path: Path) -> None:
    exporter = MaximSpanExporter(api_key=KEY, repo_id=REPO, base_url=fake.base_url, spool_dir=str(tmp_path / "s"))
    try:
        assert isinstance(exporter.sink, MaximApiSink)
        assert KEY not in repr(exporter) and KEY not in repr(exporter.sink)
        assert KEY not in repr(exporter.sink._client)
    finally:
        exporter.shutdown()
    with pytest.raises(ValueError) as bad:
        MaximSpanExporter(api_key=KEY + "\n", repo_id=REPO, base_url=fake.base_url)
    assert KEY not in str(bad.value) and "api_key" in str(bad.value)
    wrong = MaximApiSink(
        api_key="sk-wrong", repo_id=REPO, base_url=fake.base_url, spool_dir=tmp_path / "w", max_rejections=1
    )
    try:
        wrong.write([line(1)])
        wrong.flush(2)
    finally:
        wrong.close(1)
    assert fake.log_posts()[-1].status == 401


@pytest.mark.parametrize("start", [250, 280, 299])  # all of the key before the cut at 300 characters, or part
def test_a_key_that_an_answer_echoes_is_blotted_out_before_the_message_is_cut(
    fake: FakeMaxim, tmp_path: Path, caplog: pytest.LogCaptureFixture, start: int
) -> None:
    echo = "x" * (start - len(" bad key ")) + " bad key " + KEY
    fake.plan(Fault.of(400, message=echo))
    sink = MaximApiSink(api_key=KEY, repo_id=REPO, base_url=fake.base_url, spool_dir=tmp_path / "s", max_rejections=1)
    try:
        sink.write([line(1)])
        sink.flush(5)
    finally:
        sink.close(1)
    assert fake.log_posts()[0].status == 400
    assert "bad key [" in caplog.text  # where the key was, cut or not
    assert not any(KEY[i : i + 6] in caplog.text for i in range(len(KEY) - 5))  # no six characters of it


def test_a_base_url_with_a_password_is_refused_without_showing_it(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    url = "https://maxim:hunter2-secret@proxy.example.com"
    with pytest.raises(ValueError, match="must not carry a user or password") as bad:
        MaximSpanExporter(api_key=KEY, repo_id=REPO, base_url=url)
    assert "hunter2" not in str(bad.value) and "***@proxy.example.com" in str(bad.value)
    monkeypatch.setenv(env.MAXIM_BASE_URL, url)
    exporter = MaximSpanExporter(api_key=KEY, repo_id=REPO, output=tmp_path / "records.log")
    exporter.shutdown()
    assert not isinstance(exporter.sink, MaximApiSink)  # the local file, as for any bad base URL
    assert "must not carry a user or password" in caplog.text and "hunter2" not in caplog.text


def test_a_missing_repository_is_a_clear_warning(
    fake: FakeMaxim, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sink = MaximApiSink(api_key=KEY, repo_id="no-such-repo", base_url=fake.base_url, spool_dir=tmp_path / "spool")
    sink.write([line(1)])  # the check runs when there is first something to send

    def ours() -> list[logging.LogRecord]:  # other loggers (the HTTP client's) may name the repository first
        return [r for r in caplog.records if r.name.startswith("otel_maxim") and "no-such-repo" in r.getMessage()]

    try:
        wait_for(lambda: bool(ours()))
    finally:
        sink.close(1)
    (warning,) = ours()
    assert warning.levelno == logging.WARNING
    assert "was not found" in warning.getMessage() and "MAXIM_LOG_REPO_ID" in warning.getMessage()


# --- configuration -----------------------------------------------------------------------------


def test_api_key_argument_without_repo_id_names_repo_id() -> None:
    with pytest.raises(ValueError, match="repo_id"):
        MaximSpanExporter(api_key=KEY)


def test_environment_key_without_repo_id_warns_once_and_writes_a_file(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    monkeypatch.setenv(env.MAXIM_API_KEY, KEY)
    exporter = MaximSpanExporter(output=str(tmp_path / "records.log"))
    exporter.shutdown()
    assert isinstance(exporter.sink, FileSink)
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and env.MAXIM_LOG_REPO_ID in warnings[0].getMessage()


@pytest.mark.parametrize(
    ("url", "allow", "signed", "refused"),
    [
        ("http://example.com", False, False, True),
        ("http://10.0.0.7:8080", False, False, True),
        ("ftp://example.com", True, False, True),
        ("https://", False, False, True),
        ("https://app.getmaxim.ai", False, False, False),
        ("http://127.0.0.1:9", False, False, False),
        ("http://localhost:9", False, False, False),
        ("http://[::1]:9", False, False, False),
        ("http://example.com", True, False, False),
        # A signed upload URL carries its signature in the query; the base URL has none.
        ("https://storage.googleapis.com/b/k?X-Goog-Signature=ab12", False, True, False),
        ("https://b.s3.amazonaws.com/k?X-Amz-Credential=A%2F1&X-Amz-Signature=ab12", False, True, False),
        ("https://storage.googleapis.com/b/k?X-Goog-Signature=ab12", False, False, True),
        ("https://storage.googleapis.com/b/k#part", False, True, True),
        ("http://storage.googleapis.com/b/k?X-Goog-Signature=ab12", False, True, True),
    ],
)
def test_which_urls_are_refused(url: str, allow: bool, signed: bool, refused: bool) -> None:
    """Plain http only to loopback or when allowed; a query only in a signed upload URL."""
    assert (base_url_problem(url, allow, signed=signed) is not None) is refused


@pytest.mark.parametrize("url", ["https://exa mple.com", "https://a..b.example", "https://a.example\\b.example"])
def test_a_base_url_the_http_client_cannot_use_is_refused_with_the_settings(
    url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    """Refused as any bad base URL is (the local file), not found out at each send and taken for Maxim's no."""
    with pytest.raises(ValueError, match="base_url"):
        MaximSpanExporter(api_key=KEY, repo_id=REPO, base_url=url)
    monkeypatch.setenv(env.MAXIM_BASE_URL, url)
    exporter = MaximSpanExporter(api_key=KEY, repo_id=REPO, output=tmp_path / "records.log")
    exporter.shutdown()
    assert isinstance(exporter.sink, FileSink)
    assert f"{env.MAXIM_BASE_URL}={url!r}" in caplog.text and "writing records to a local file" in caplog.text


def test_a_call_the_http_client_cannot_make_is_not_taken_for_maxims_no() -> None:
    """Should such a URL reach a call, that is about the settings: the records wait, none is set aside."""
    client = ApiClient("https://exa mple.com", KEY, REPO)  # refused by requests before any connection
    try:
        reply = client.post_log(line(1).encode(), 1.0)
    finally:
        client.close()
    assert (reply.kind, reply.status) == (Kind.BLOCKED, None)
    assert "InvalidURL" in reply.message


def test_a_plain_http_base_url_argument_is_a_value_error_and_from_the_environment_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="base_url"):
        MaximSpanExporter(api_key=KEY, repo_id=REPO, base_url="http://example.com")
    monkeypatch.setenv(env.MAXIM_API_KEY, KEY)
    monkeypatch.setenv(env.MAXIM_LOG_REPO_ID, REPO)
    monkeypatch.setenv(env.MAXIM_BASE_URL, "http://example.com")
    exporter = MaximSpanExporter(output=str(tmp_path / "records.log"))
    exporter.shutdown()
    assert isinstance(exporter.sink, FileSink)
    assert env.MAXIM_BASE_URL in caplog.text and "http://" in caplog.text


@pytest.mark.parametrize(
    ("argument", "variable", "expected"),
    [
        (None, None, "default"),
        (None, "env", "env"),
        ("arg", "env", "arg"),
    ],
)
def test_settings_precedence(
    argument: str | None,
    variable: str | None,
    expected: str,
    fake: FakeMaxim,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Argument > environment variable > default, for the spool directory, its cap and the export timeout."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    values = {
        "default": (default_spool_dir(), 256 * MiB, 10.0),
        "env": (str(tmp_path / "env-spool"), 1234, 3.5),
        "arg": (str(tmp_path / "arg-spool"), 4321, 7.25),
    }
    if variable is not None:
        directory, cap, timeout = values[variable]
        monkeypatch.setenv(env.MAXIM_SPOOL_DIR, directory)
        monkeypatch.setenv(env.MAXIM_MAX_SPOOL_BYTES, str(cap))
        monkeypatch.setenv(env.MAXIM_EXPORT_TIMEOUT, str(timeout))
    arguments: dict[str, Any] = {}
    if argument is not None:
        directory, cap, timeout = values[argument]
        arguments = {"spool_dir": directory, "max_spool_bytes": cap, "export_timeout": timeout}
    sink = build_sink(api_key=KEY, key_from_env=False, repo_id=REPO, base_url=fake.base_url, **arguments)
    assert sink is not None
    try:
        assert (sink.spool_dir, sink._spool.max_bytes, sink.export_timeout) == values[expected]
    finally:
        sink.close(1)
    assert default_spool_dir() == os.path.join(user_cache_dir(), "otel-maxim", "spool")
    assert user_cache_dir() == str(tmp_path / "cache")


@pytest.mark.parametrize("timeout", ["-1", "inf", "nan", "1e300"])  # 1e300: no socket or thread waits that long
def test_bad_environment_values_warn_and_use_the_default(
    timeout: str, fake: FakeMaxim, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    """An infinite export timeout once passed, and each send then failed after its POST went out."""
    monkeypatch.setenv(env.MAXIM_MAX_SPOOL_BYTES, "lots")
    monkeypatch.setenv(env.MAXIM_EXPORT_TIMEOUT, timeout)
    sink = build_sink(api_key=KEY, key_from_env=True, repo_id=REPO, base_url=fake.base_url, spool_dir=tmp_path)
    assert sink is not None
    sink.close(1)
    assert (sink._spool.max_bytes, sink.export_timeout) == (256 * MiB, 10.0)
    assert env.MAXIM_MAX_SPOOL_BYTES in caplog.text and env.MAXIM_EXPORT_TIMEOUT in caplog.text
    with pytest.raises(ValueError, match="max_spool_bytes"):
        build_sink(api_key=KEY, key_from_env=False, repo_id=REPO, base_url=fake.base_url, max_spool_bytes=-1)
    with pytest.raises(ValueError, match="export_timeout"):
        build_sink(api_key=KEY, key_from_env=False, repo_id=REPO, base_url=fake.base_url, export_timeout=1e300)
    with pytest.raises(ValueError, match="export_timeout"):
        MaximApiSink(api_key=KEY, repo_id=REPO, base_url=fake.base_url, spool_dir=tmp_path, export_timeout=1e300)


# --- the benchmark still runs ----------------------------------------------------------------


def test_the_benchmark_runs_quick() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "bench_delivery.py"), "--quick", "--rounds", "2", "--no-tracemalloc"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    up = re.search(r"Maxim up: .*\(2,000 spans -> ([\d,]+) records acknowledged in [\d.]+ s, (\d+) POSTs", done.stdout)
    assert up, done.stdout
    records, posts = int(up.group(1).replace(",", "")), int(up.group(2))
    assert 1 <= posts <= records, done.stdout
    assert "medians of 2 alternating rounds" in done.stdout


def test_each_benchmark_round_counts_only_its_own_records_and_posts(tmp_path: Path) -> None:
    """The rounds share one server: a run's figures are what the server took during that run."""
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import bench_delivery  # noqa: PLC0415 - a script of bench/, not a package
    finally:
        sys.path.remove(str(ROOT / "bench"))
    with FakeMaxim(api_key=bench_delivery.KEY, repositories=(bench_delivery.REPO,)) as server:
        port = int(server.base_url.rsplit(":", 1)[1])
        runs = []
        for round_ in range(2):
            posts_before = len(server.log_posts())
            runs.append(bench_delivery.phase_throughput(1000, port, str(tmp_path / f"spool-{round_}")))
            assert runs[-1]["posts"] == len(server.log_posts()) - posts_before >= 1
        assert runs[1]["records"] == runs[0]["records"] == server.stats()["distinct"] // 2


_INTERRUPTED_SHUTDOWN = """
import signal, sys
from opentelemetry.sdk.trace import TracerProvider
import otel_maxim

signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # the usual SIGTERM handler
provider = TracerProvider()
exporter = otel_maxim.MaximSpanExporter(
    api_key="k", repo_id="r", base_url=sys.argv[1], spool_dir=sys.argv[2], export_timeout=5
)
provider.add_span_processor(otel_maxim.MaximSpanProcessor(exporter))
with otel_maxim.session("conv-1", tracer_provider=provider) as s:
    for n in range(3):
        with s.trace(f"turn-{n}"):
            pass
s.end()
print("shutting down", flush=True)
provider.shutdown()
"""


@pytest.mark.parametrize("interrupt", ["SIGTERM", "SIGINT"])
def test_a_shutdown_interrupted_while_maxim_does_not_answer_still_spools_what_it_holds(
    interrupt: str, tmp_path: Path
) -> None:
    """Ctrl-C, or a SIGTERM handler's sys.exit(), while shutdown() waits for a Maxim that takes the
    connection and never answers: the records it held are on disk for the next process."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)  # connections wait in the backlog, unanswered
        port = listener.getsockname()[1]
        spool = tmp_path / "spool"
        child = subprocess.Popen(
            [sys.executable, "-c", _INTERRUPTED_SHUTDOWN, f"http://127.0.0.1:{port}", str(spool)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None and child.stdout.readline().strip() == "shutting down"
        time.sleep(1.0)  # inside shutdown, waiting for the POST's answer
        child.send_signal(getattr(signal, interrupt))
        _, err = child.communicate(timeout=60)
    records = [parse(line) for line in spooled_lines(spool)]
    assert sorted(r.data["name"] for r in records if r.entity == "trace" and r.action == "create") == [
        "turn-0",
        "turn-1",
        "turn-2",
    ], err
    assert [r.action for r in records if r.entity == "session"][-1] == "end"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"output": 5}, "output must be a path"),
        ({"spool_dir": 5, "api_key": "k", "repo_id": "r"}, "spool_dir must be a path"),
        ({"api_key": 5, "repo_id": "r"}, "api_key must be a string, not a int"),
        ({"api_key": "k", "repo_id": "r", "base_url": 5}, "base_url must be a string"),
        ({"sink": 5}, "sink must have write, flush and close methods"),
    ],
)
def test_an_argument_of_the_wrong_type_raises_a_value_error_naming_it(kwargs: dict[str, object], message: str) -> None:
    """They raised TypeError or AttributeError from deep inside (``'int' object has no attribute 'isascii'``),
    or, for a sink, nothing until the first export; the README promises a ValueError naming the argument."""
    with pytest.raises(ValueError, match=message):
        MaximSpanExporter(**kwargs)  # type: ignore[arg-type]


def test_a_base_url_without_a_host_is_told_so() -> None:
    """``https://`` was refused as "must be an https:// URL", which it is."""
    assert base_url_problem("https://", allow_insecure=False) == "has no host (https://<host>)"
    assert base_url_problem("ftp://example.com", allow_insecure=False) == "must be an https:// URL"


# --- answers nobody should send: the HTTP client against raw servers -------------------------------


@contextmanager
def raw_server(handle: Callable[[socket.socket, int], None]) -> Iterator[str]:
    """A server on 127.0.0.1 that runs ``handle(connection, n)`` for its n-th connection (from 0), each in a
    thread; yields its base URL."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve(connection: socket.socket, n: int) -> None:
        with connection:
            with contextlib.suppress(OSError):
                handle(connection, n)

    def accept() -> None:
        n = 0
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=serve, args=(connection, n), daemon=True).start()
            n += 1

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        listener.close()


def read_request(connection: socket.socket, pending: bytes = b"") -> tuple[bytes, bytes] | None:
    """One HTTP request (head and body, by its Content-Length) off ``connection``; ``None`` at its end."""
    while b"\r\n\r\n" not in pending:
        chunk = connection.recv(65536)
        if not chunk:
            return None
        pending += chunk
    head, _, rest = pending.partition(b"\r\n\r\n")
    length = re.search(rb"(?i)content-length:\s*(\d+)", head)
    size = int(length.group(1)) if length else 0
    while len(rest) < size:
        rest += connection.recv(65536)
    return head, rest[:size]


def answer(status: str, body: bytes = b'{"data": {"success": true}}', headers: str = "") -> bytes:
    return f"HTTP/1.1 {status}\r\n{headers}Content-Length: {len(body)}\r\n\r\n".encode() + body


def post(base_url: str, timeout: float = 5.0) -> tuple[Any, float]:
    """One log push with a new client: its reply, and how long it took."""
    client = ApiClient(base_url, KEY, REPO)
    started = time.monotonic()
    try:
        return client.post_log(line(1).encode(), timeout), time.monotonic() - started
    finally:
        client.close()


@pytest.mark.parametrize(
    ("status", "headers", "body", "kind"),
    [
        # A date the standard library cannot turn into a time (OverflowError), on an answer that took the records.
        ("200 OK", "Retry-After: Mon, 01 Jan 99999999999999999999 00:00:00 GMT\r\n", None, Kind.OK),
        # JSON nested deeper than the parser goes (RecursionError) in an error answer.
        ("503 Service Unavailable", "", b"[" * 5000 + b"]" * 5000, Kind.RETRY),
    ],
    ids=["retry-after-year-past-9999", "deeply-nested-json"],
)
def test_an_answer_the_standard_library_cannot_read_is_classified_not_raised(
    status: str, headers: str, body: bytes | None, kind: Kind
) -> None:
    """Each raised out of the client, which ended the sender thread: the batch was neither acknowledged nor
    backed off nor spooled, and each later write started a sender that sent everything again."""

    def handle(connection: socket.socket, _: int) -> None:
        read_request(connection)
        connection.sendall(answer(status, *(() if body is None else (body,)), headers=headers))

    with raw_server(handle) as url:
        reply, _ = post(url)
    assert reply.kind is kind


def test_a_huge_answer_is_not_read_whole() -> None:
    """A 503 page of 64 MiB (a proxy's, say) was read, decoded and searched whole for 300 characters of
    message; at most a few times 64 KiB of it is read now, and the connection is closed on the rest."""
    sent = [0]

    def handle(connection: socket.socket, _: int) -> None:
        read_request(connection)
        piece = b"x" * MiB
        connection.sendall(f"HTTP/1.1 503 Service Unavailable\r\nContent-Length: {64 * MiB}\r\n\r\n".encode())
        for _ in range(64):
            connection.sendall(piece)
            sent[0] += len(piece)

    with raw_server(handle) as url:
        reply, _ = post(url)
    assert (reply.kind, reply.status) == (Kind.RETRY, 503)
    assert len(reply.message) <= 300
    assert sent[0] < 32 * MiB  # what the sockets' buffers took before the client closed its end


def test_an_answer_that_trickles_in_is_cut_at_the_calls_timeout() -> None:
    """``requests`` bounds each read of the socket, not the call: a header sent a byte every 0.2 s held
    the call for as long as the server went on (here 20 s; the test's server stops there)."""

    def handle(connection: socket.socket, _: int) -> None:
        read_request(connection)
        connection.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
        for _ in range(100):
            connection.sendall(b"x")
            time.sleep(0.2)

    with raw_server(handle) as url:
        reply, took = post(url, timeout=1.0)
    assert (reply.kind, reply.message) == (Kind.RETRY, "no whole answer within 1 s")
    assert took < 10


def test_a_kept_alive_connection_the_server_closed_is_not_taken_for_an_outage() -> None:
    """The server takes one request a connection and closes it as the next one arrives (an idle timeout
    crossing the request): the request is made again at once on a new connection, not retried later."""
    requests_seen: list[int] = []

    def handle(connection: socket.socket, n: int) -> None:
        for i in range(2):
            if read_request(connection) is None:
                return
            requests_seen.append(n)
            if i == 1:
                return  # closed under the second request, with no answer
            connection.sendall(answer("200 OK"))

    with raw_server(handle) as url:
        client = ApiClient(url, KEY, REPO)
        try:
            replies = [client.post_log(line(i).encode(), 5.0).kind for i in range(3)]
        finally:
            client.close()
    assert replies == [Kind.OK, Kind.OK, Kind.OK]
    assert requests_seen == [0, 0, 1, 1, 2]


def test_a_proxy_from_the_environment_never_gets_a_loopback_calls_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """Plain http is allowed to a loopback base URL because the key stays on the machine; HTTP_PROXY sent the
    call, key in clear text, to the proxy (which would then call its own loopback)."""
    to_proxy: list[bytes] = []
    to_maxim: list[bytes] = []

    def proxy(connection: socket.socket, _: int) -> None:
        request = read_request(connection)
        to_proxy.append(request[0] if request else b"")
        connection.sendall(answer("502 Bad Gateway", b""))

    def maxim(connection: socket.socket, _: int) -> None:
        request = read_request(connection)
        to_maxim.append(request[0] if request else b"")
        connection.sendall(answer("200 OK"))

    with raw_server(proxy) as proxy_url, raw_server(maxim) as maxim_url:
        for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
            monkeypatch.setenv(name, proxy_url)
        for name in ("NO_PROXY", "no_proxy"):
            monkeypatch.delenv(name, raising=False)
        reply, _ = post(maxim_url)
    assert reply.kind is Kind.OK
    assert to_proxy == [] and len(to_maxim) == 1


def test_a_proxy_refusing_the_tunnels_credentials_blocks_the_log_push(monkeypatch: pytest.MonkeyPatch) -> None:
    """An HTTPS proxy answers CONNECT with 407: ``requests`` raises ProxyError, which was taken for an
    outage ("next try in ..."); it is the settings' fault, as a 407 answer is: the records wait for a fix."""

    def proxy(connection: socket.socket, _: int) -> None:
        read_request(connection)
        connection.sendall(answer("407 Proxy Authentication Required", b""))

    with raw_server(proxy) as proxy_url:
        monkeypatch.setenv("HTTPS_PROXY", proxy_url)
        monkeypatch.setenv("https_proxy", proxy_url)
        for name in ("NO_PROXY", "no_proxy"):
            monkeypatch.delenv(name, raising=False)
        reply, _ = post("https://maxim.invalid")
    assert (reply.kind, reply.status) == (Kind.BLOCKED, 407)
