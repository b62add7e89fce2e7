"""Delivery when something goes wrong that is not an outage: a send that raises, a body over a proxy's
size limit (413), an exit without a close, a flush that a Retry-After rules out.

The helpers are ``tests/test_delivery.py``'s, and so is the check that the API key leaks into no log
line and no file (its autouse fixture, imported).
"""

from __future__ import annotations

import logging
import os
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from otel_maxim.sinks.maxim_api import MaximApiSink
from tests.fake_maxim import FakeMaxim, Fault, Request, _error
from tests.test_delivery import (  # noqa: F401 - _key_never_leaks: an autouse fixture, for this module too
    KEY,
    REPO,
    _api_sink,
    _key_never_leaks,
    _run_python,
    line,
    spool_files,
    spooled_lines,
    wait_for,
)


@pytest.fixture
def fake() -> Iterator[FakeMaxim]:
    with FakeMaxim(api_key=KEY, repositories=(REPO,)) as server:
        yield server


def _errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


# --- a send that raises ------------------------------------------------------------------------


def test_a_send_that_raises_is_backed_off_spilled_and_tried_again_by_the_same_sender(
    fake: FakeMaxim, tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An exception in the sender's loop (a fault injected in our own client here) is an attempt that did
    not get through: not the end of the sender, which would leave the records unacknowledged, with no
    backoff, to be sent again at once by the sender that the next write starts."""
    sink = _api_sink(fake, tmp_path, check_repository=False, backoff_initial=0.05, backoff_max=0.1)
    real_post_log = sink._client.post_log
    broken = threading.Event()
    broken.set()
    calls: list[float] = []

    def post_log(body: bytes, timeout: float) -> Any:
        calls.append(time.monotonic())
        if broken.is_set():
            raise RuntimeError("injected fault")
        return real_post_log(body, timeout)

    monkeypatch.setattr(sink._client, "post_log", post_log)
    produced = [line(i) for i in range(3)]
    try:
        assert sink.write(produced)
        wait_for(lambda: len(calls) >= 3)  # with no write or flush to start another sender
        sender = sink._sender
        assert sender is not None and sender.is_alive()
        assert spooled_lines(tmp_path / "spool") == produced  # spilled, as after any attempt that failed
        assert sink.stats()["delivered_records"] == 0
        assert all(later - earlier >= 0.035 for earlier, later in zip(calls, calls[1:3]))  # backed off: 0.05 s -20 %
        broken.clear()
        assert fake.wait_for_distinct(3)
        assert sink._sender is sender
    finally:
        sink.close(5)
    assert fake.distinct() == produced
    assert sink.stats()["delivered_records"] == 3
    failures = [r for r in caplog.records if "failed unexpectedly" in r.getMessage()]
    assert len(failures) == 1, "rate-limited: one line for the several failures"
    assert failures[0].exc_info is not None and failures[0].exc_info[0] is RuntimeError  # with its traceback
    assert "stopped unexpectedly" not in caplog.text


# --- 413: a body over the server's (or a proxy's) size limit ---------------------------------------


class LimitedMaxim(FakeMaxim):
    """Maxim behind a proxy that answers 413 to a body over ``limit`` bytes (nginx's client_max_body_size)."""

    def __init__(self, limit: int, **options: Any) -> None:
        super().__init__(**options)
        self.limit = limit

    def _log(self, request: Request) -> tuple[int, dict[str, Any] | None, dict[str, str], float]:
        if len(request.body) > self.limit:
            return 413, _error("Request Entity Too Large"), {}, 0.0
        return super()._log(request)


LIMIT = 64 * 1024


@pytest.fixture
def limited() -> Iterator[LimitedMaxim]:
    with LimitedMaxim(LIMIT, api_key=KEY, repositories=(REPO,)) as server:
        yield server


def _limited_sink(server: FakeMaxim, tmp_path: Path, **options: Any) -> MaximApiSink:
    return _api_sink(server, tmp_path, check_repository=False, backoff_initial=0.05, backoff_max=0.1, **options)


def test_a_413_halves_the_bodies_for_good_and_refuses_no_record(
    limited: LimitedMaxim, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """One batch of 100 records of 2 KB (200 KB) to a 64 KiB limit: bodies of half, then a quarter, go
    through at once; the next batch is sent in bodies of that size from the start."""
    produced = [line(i, output="x" * 2000) for i in range(100)]
    more = [line(i, output="y" * 2000) for i in range(100, 200)]
    sink = _limited_sink(limited, tmp_path)
    try:
        assert sink.write(produced)
        assert sink.flush(30)
        first = [post.status for post in limited.log_posts()]
        assert sink.write(more)
        assert sink.flush(30)
        stats = sink.stats()
    finally:
        sink.close(5)
    assert limited.distinct() == produced + more
    assert first[:2] == [413, 413] and set(first[2:]) == {200}  # 200 KB, then 100 KB: over; 50 KB bodies go
    later = [post.status for post in limited.log_posts()][len(first) :]
    assert later and set(later) == {200}  # the halved size is kept
    assert (stats["refused_records"], stats["quarantined_batches"], stats["delivered_records"]) == (0, 0, 200)
    assert not spool_files(tmp_path / "spool", quarantine=True)
    sizes = [r for r in caplog.records if "bodies now hold at most" in r.getMessage()]
    assert len(sizes) == 1 and sizes[0].levelno == logging.WARNING  # once, what the size became
    assert not _errors(caplog)  # no record was refused


def test_a_single_record_still_over_the_limit_is_refused_and_costs_only_itself(
    limited: LimitedMaxim, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Halving ends at a body of one line: a record that alone gets a 413 is set aside as any refused one."""
    small, big, after = line(0), line(1, output="x" * (2 * LIMIT)), line(2)
    sink = _limited_sink(limited, tmp_path, max_rejections=1)
    try:
        for batch in ([small], [big], [after]):
            assert sink.write(batch)
        assert sink.flush(30)
        stats = sink.stats()
    finally:
        sink.close(5)
    assert limited.distinct() == [small, after]
    assert stats["quarantined_batches"] == 1
    [quarantined] = spool_files(tmp_path / "spool", quarantine=True)
    assert quarantined.read_text().splitlines() == [big]
    assert any("refused 1 records (HTTP 413" in m for m in _errors(caplog))


# --- an exit without close() -----------------------------------------------------------------------


def _unwritable_spool(tmp_path: Path) -> Path:
    """A spool directory that cannot be made: a file stands where its parent should be."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    return blocker / "spool"


def test_records_the_exit_hook_cannot_spool_are_counted_and_logged_as_lost(
    fake: FakeMaxim, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Maxim down, the spool unwritable, no close(): the exit hook says how many records are lost, as
    close() would; a close that comes after it (another atexit handler's) does not count them again."""
    fake.go_down()
    sink = MaximApiSink(
        api_key=KEY,
        repo_id=REPO,
        base_url=fake.base_url,
        spool_dir=_unwritable_spool(tmp_path),
        export_timeout=0.2,
        check_repository=False,
    )
    try:
        for i in range(5):
            assert sink.write([line(i)])
        sink._spill_at_exit()  # what the atexit hook does for each live sink
        assert sink.stats()["refused_records"] == 5
        assert any(
            "5 records could not be sent before exit" in m and "Not a directory" in m and "they are lost" in m
            for m in _errors(caplog)
        )
    finally:
        sink.close(0.5)
    assert sink.stats()["refused_records"] == 5
    assert not any("could not be sent before shutdown" in m for m in _errors(caplog))


def test_a_process_that_exits_without_close_says_what_it_lost(fake: FakeMaxim, tmp_path: Path) -> None:
    """The real atexit hook, in a process of its own."""
    fake.go_down()
    script = textwrap.dedent(
        f"""
        import os
        from otel_maxim.sinks.maxim_api import MaximApiSink
        sink = MaximApiSink(api_key=os.environ["KEY"], repo_id={REPO!r}, base_url={fake.base_url!r},
                            spool_dir={str(_unwritable_spool(tmp_path))!r}, export_timeout=0.2,
                            check_repository=False)
        for i in range(50):
            assert sink.write([f"trace{{{{id=t{{i}},action=create,data={{{{}}}}}}}}"])
        """
    )
    done = _run_python(script, {**os.environ, "KEY": KEY})
    assert done.returncode == 0, done.stderr
    assert KEY not in done.stderr
    assert "50 records could not be sent before exit" in done.stderr and "they are lost" in done.stderr


def test_an_exit_hook_that_cannot_take_the_lock_says_so(
    fake: FakeMaxim, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fake.go_down()
    sink = _api_sink(fake, tmp_path, check_repository=False, export_timeout=0.2)
    assert sink.write([line(0)])
    taken, release = threading.Event(), threading.Event()

    def hold() -> None:
        with sink._cond:
            taken.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert taken.wait(5)
        sink._spill_at_exit()  # gives up after 1 s
    finally:
        release.set()
        holder.join(5)
        sink.close(0.5)
    assert any("lock stayed busy for 1 s" in m and "may be lost" in m for m in _errors(caplog))


# --- a flush that a Retry-After rules out ------------------------------------------------------------


def test_a_flush_that_a_retry_after_rules_out_returns_at_once(fake: FakeMaxim, tmp_path: Path) -> None:
    """Maxim asks for 600 s: no send can happen before the flush's deadline, so it does not wait for it
    (close() already gives up at once); the records wait on disk."""
    fake.plan(Fault.of(429, retry_after=600))
    sink = _api_sink(fake, tmp_path, check_repository=False)
    try:
        assert sink.write([line(0)])
        wait_for(lambda: sink.stats()["spool_bytes"] > 0)  # the 429 came: the sender waits out the 600 s
        started = time.monotonic()
        assert not sink.flush(8)
        assert time.monotonic() - started < 3, "flush waited for a send it could not have"
        assert len(fake.log_posts()) == 1
    finally:
        sink.close(1)
    assert spooled_lines(tmp_path / "spool") == [line(0)]
    assert sink.stats()["refused_records"] == 0
