"""``MaximApiSink``: records to Maxim's log API, with retries and a disk spool, losing nothing.

How records flow
----------------
:meth:`MaximApiSink.write` (called on the exporter's worker thread) only
queues: the batch becomes the last item of one ordered queue, or joins the
last item while that one is in memory, not being sent nor set to be sent alone
(below), and under 1 MiB; an item keeps the bounds of its batches.  An item is
kept in memory while the API answers and written to the disk spool
(:mod:`otel_maxim.sinks.spool`, a file each, an empty line between two of its
batches) when it does not, or when memory already holds ``max_memory_bytes``;
so moving memory to disk (after a failed send, or when a flush or close runs
out of time, on the caller's thread) writes a file, and flushes it to disk,
per MiB held, not per batch, then syncs the directory once.  A sender thread
sends the queue from its head: consecutive items make bodies of at most 5 MB,
and each send has one deadline (``export_timeout``) inside which retryable
failures are retried with backoff (:mod:`otel_maxim.sinks._delivery`).  What
is not delivered by then goes to the spool, with everything queued behind it,
and the sender tries again after the backoff; meanwhile new batches go
straight to disk.  After a delivered send, the sender lets records gather for
``linger`` seconds (0.2) before the next, unless 2 MB of records wait, a flush
or close asks, or the head of the queue is on disk: a busy process sends
fewer, fuller bodies (each request costs the whole process time, not only the
sender's).  An item leaves the queue (and its file the disk) only once Maxim
acknowledged it: order is kept, delivery is at least once, and an acknowledged
body is never sent again.

A body Maxim rejects (a status other than 429/502/503/504 and the blocking
ones below, or a 200 whose JSON carries ``error``; a 413 only once a body of
one line gets it: :mod:`otel_maxim.sinks._delivery` makes bodies smaller
first) is taken apart: each item
it covered and Maxim did not acknowledge is split into its batches (a file
each if it is on disk; a file written by an earlier process too), and each
batch is sent again alone, after a backoff.  A batch rejected alone
``max_rejections`` times is moved to ``<spool dir>/to-<hash>/quarantine`` and logged,
and the batches behind it go on: a refused record costs its own batch only,
whatever it shared an item or a body with.  A large record whose upload is
refused for good (the storage PUT, or the upload-url call with a status other
than those that refuse the settings, 401 and 407: uploads may be refused while
the log push works) is such a rejection; a file
in a message whose upload is refused is dropped and logged, and the records
around it go on.  An answer to the log push that is not about the records (a
refused key, a missing repository, a redirect, a URL the HTTP client cannot
use: ``Kind.BLOCKED``) sets nothing aside: the records wait, spooled, and are
tried again after the backoff, as in an outage.  A spooled file that cannot be
read (too many open files, an I/O error) stays on disk and is tried again
after a backoff; after ``max_rejections`` failed reads it is moved to the
quarantine the same way, whole.  A send that raises (a bug, ours or a
library's) is an attempt that did not get through, not the end of the sender:
logged with its traceback (rate-limited), spilled and tried again after the
backoff.

The spool outlives the process: a batch left on disk at shutdown (or by a
crash) is sent by the next process that uses the same spool directory, before
that process's own records.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import islice

from otel_maxim import environment_variables as env
from otel_maxim._config import LONGEST_WAIT, env_str, resolve_bool, resolve_int, resolve_seconds
from otel_maxim._fork import reinit_after_fork
from otel_maxim._log import RateLimitedLog
from otel_maxim.sinks._delivery import MAX_BODY_BYTES, Backoff, Deliverer, Outcome, Result, lines_size
from otel_maxim.sinks._http import ApiClient, Kind, base_url_problem, header_value_problem, shown_url
from otel_maxim.sinks.spool import Segment, Spool, SpoolFull, default_spool_dir, destination_dir

__all__ = ["DEFAULT_BASE_URL", "MaximApiSink", "build_sink"]

_logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://app.getmaxim.ai"
DEFAULT_EXPORT_TIMEOUT = 10.0
DEFAULT_MAX_SPOOL_BYTES = 256 * 1024 * 1024
DEFAULT_MAX_MEMORY_BYTES = 16 * 1024 * 1024
DEFAULT_MAX_REJECTIONS = 3
#: Seconds the sender lets records gather after a delivered send (see the module docstring).
DEFAULT_LINGER = 0.2
#: Queued bytes in memory that end the gathering at once (bigger bodies only raise the peak of memory).
_GATHER_BYTES = 2 * 1024 * 1024
#: Batches written in a row share one item, in memory, up to this size: spilling memory to disk then
#: costs a file (an fsync) per MiB, not per batch.  The item keeps their bounds: rejected, it is split.
_ITEM_BYTES = 1024 * 1024
#: How often an idle sender looks for batches left by processes that ended meanwhile.
_ADOPT_INTERVAL = 60.0
#: The most a repository check waits for its answer.
_CHECK_TIMEOUT = 10.0


@dataclass(eq=False)
class _Item:
    """Batches written in a row (see ``_ITEM_BYTES``), in memory (``lines``) or on disk (``segment``), never both."""

    size: int
    lines: list[str] | None = None
    segment: Segment | None = None
    batches: list[int] = field(default_factory=list)  # the line count of each batch, in order (on disk: once read)
    name: str = ""  # its spool file's name: the order of writing in this process (of its first batch)
    label: str = ""  # for the quarantine's file name
    rejections: int = 0
    failed_reads: int = 0  # a spooled batch whose file could not be read
    isolate: bool = False  # part of a rejected body: send it alone to find the culprit
    lost: bool = False  # counted and logged as lost (see _count_lost): not counted again


@dataclass(eq=False)
class _Unit:
    """What one send covers: the head items of the queue and their lines."""

    items: list[_Item]
    parts: list[list[str]]
    deadline: float
    lines: list[str] = field(default_factory=list)
    starts: list[int] = field(default_factory=list)
    done: int = 0  # items fully acknowledged
    unreadable: _Item | None = None  # the spooled item the unit stops before: its file could not be read


class MaximApiSink:
    """Deliver record lines to ``POST {base_url}/api/sdk/v3/log?id={repo_id}``.

    ``write`` never touches the network; see the module docstring for the
    flow.  ``flush(timeout)`` waits, at most ``timeout`` seconds, until all is
    delivered; ``close(timeout)`` does the same without backing off, spools
    what is left and releases the spool for the next process.  The keyword
    arguments after ``allow_insecure`` are tuning knobs (tests use small ones).
    """

    def __init__(
        self,
        *,
        api_key: str,
        repo_id: str,
        base_url: str = DEFAULT_BASE_URL,
        spool_dir: str | os.PathLike[str] | None = None,
        max_spool_bytes: int = DEFAULT_MAX_SPOOL_BYTES,
        export_timeout: float = DEFAULT_EXPORT_TIMEOUT,
        allow_insecure: bool = False,
        max_memory_bytes: int = DEFAULT_MAX_MEMORY_BYTES,
        backoff_initial: float = 1.0,
        backoff_max: float = 32.0,
        max_rejections: int = DEFAULT_MAX_REJECTIONS,
        check_repository: bool = True,
        durable: bool = True,
        linger: float = DEFAULT_LINGER,
    ) -> None:
        if not isinstance(api_key, str) or not api_key:
            raise ValueError("api_key must be a non-empty string")
        problem = header_value_problem(api_key)
        if problem is not None:
            raise ValueError(f"api_key {problem}")
        if not isinstance(repo_id, str) or not repo_id:
            raise ValueError("repo_id must be a non-empty string")
        problem = base_url_problem(base_url, allow_insecure)
        if problem is not None:
            raise ValueError(f"base_url {shown_url(base_url)!r} {problem}")
        for name, value in (
            ("export_timeout", export_timeout),
            ("backoff_initial", backoff_initial),
            ("backoff_max", backoff_max),
        ):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= LONGEST_WAIT:
                raise ValueError(f"{name} must be a number above 0 and at most {LONGEST_WAIT}, not {value!r}")
        for name, count in (
            ("max_spool_bytes", max_spool_bytes),
            ("max_memory_bytes", max_memory_bytes),
            ("max_rejections", max_rejections),
        ):
            if isinstance(count, bool) or not isinstance(count, int) or count < (1 if name == "max_rejections" else 0):
                raise ValueError(f"{name} must be a non-negative integer (max_rejections at least 1), not {count!r}")
        if isinstance(linger, bool) or not isinstance(linger, (int, float)) or not 0 <= linger <= LONGEST_WAIT:
            raise ValueError(f"linger must be a number from 0 to {LONGEST_WAIT}, not {linger!r}")

        self._settings = (base_url, api_key, repo_id, allow_insecure)
        self.base_url = base_url.rstrip("/")
        self.repo_id = repo_id
        self.export_timeout = float(export_timeout)
        self._max_memory = max_memory_bytes
        self._max_rejections = max_rejections
        self._linger = float(linger)
        self._backoff_settings = (float(backoff_initial), float(backoff_max))
        self._spool_root = os.path.abspath(spool_dir if spool_dir is not None else default_spool_dir())
        self._spool = Spool(destination_dir(self._spool_root, self.base_url, repo_id), max_spool_bytes, durable=durable)
        self._closed = False
        self._close_finished = False  # set when close() has spilled what was left (see _spill_at_exit)
        # The repository is checked when there is first something to send, not here: a sink that is
        # made and never used (OTEL_SDK_DISABLED=true, a program that records nothing) calls no one.
        self._check_pending = check_repository
        self._delivered = 0
        self._refused = 0
        #: Why the spool last refused a batch: "full (cap N bytes)" or the system's error.
        self._spool_problem = "full"
        self._quarantined = 0
        self._start()
        self._warn_of_unaddressed()
        _SINKS.add(self)
        reinit_after_fork(self)

    def _start(self) -> None:
        """The per-process state (again in a forked child)."""
        base_url, api_key, repo_id, allow_insecure = self._settings
        self._pid = os.getpid()
        self._log = RateLimitedLog(_logger)  # new locks: a parent's thread may have held the old ones at fork
        self._cond = threading.Condition()
        self._items: deque[_Item] = deque()
        self._mem_bytes = 0
        self._seq = 0
        self._in_flight: _Unit | None = None
        self._failing = False
        self._retry_at = 0.0
        self._gather_until = 0.0  # after a delivered send: let records gather until then (see _gathering)
        self._honour = False  # _retry_at comes from Retry-After
        self._kicked = False  # a flush or close wants an attempt now, not after the backoff
        self._flush_deadlines: list[float] = []
        self._closing = False
        self._close_deadline = 0.0
        self._gave_up = False
        self._sender: threading.Thread | None = None
        self._next_adopt = time.monotonic() + _ADOPT_INTERVAL
        self._stop = threading.Event()
        self._client = ApiClient(base_url, api_key, repo_id, allow_insecure=allow_insecure)
        self._backoff = Backoff(*self._backoff_settings)
        self._deliverer = Deliverer(self._client, self._backoff, self._stop, self._log)
        with self._cond:
            self._adopt()

    def _warn_of_unaddressed(self) -> None:
        left = self._spool.unaddressed()
        if left:
            _logger.warning(
                "%d spool directories in %s were left by an earlier version of otel_maxim, which did not note "
                "where their records were bound: they are not sent. To send them to this repository, move "
                "them into %s.",
                len(left),
                self.spool_dir,
                self._spool.directory,
            )

    def _spill_at_exit(self) -> None:
        """At exit with no close (or one that an exception cut short): what memory holds goes to the spool,
        and what cannot go there is counted and logged as lost, as close() does; never silently."""
        if self._close_finished or self._pid != os.getpid():
            return
        if not self._cond.acquire(timeout=1.0):
            _logger.error(
                "At exit, the Maxim sink's lock stayed busy for 1 s: the %d bytes of records it held in memory"
                " were not written to the spool %s by this exit hook and may be lost.",
                self._mem_bytes,  # read without the lock (iterating the queue could meet it changing): a message
                self.spool_dir,
            )
            return
        try:
            if not self._close_finished:
                self._spill_memory()
                self._count_lost("exit (the sink was not closed)")
        finally:
            self._cond.release()

    def _after_fork(self) -> None:
        # The parent owns what is queued and spooled; the child starts empty, with its own locks and sockets.
        self._spool.after_fork()
        self._start()

    def __repr__(self) -> str:
        return f"MaximApiSink(base_url={self.base_url!r}, repo_id={self.repo_id!r}, spool_dir={self.spool_dir!r})"

    @property
    def spool_dir(self) -> str:
        """The spool directory; this sink's records wait in its subdirectory for this repository and URL."""
        return self._spool_root

    def stats(self) -> dict[str, int]:
        """Counters for tests, benchmarks and debugging."""
        with self._cond:
            return {
                "delivered_records": self._delivered,
                "queued_batches": len(self._items),
                "memory_bytes": self._mem_bytes,
                "spool_bytes": self._spool.used_bytes,
                "refused_records": self._refused,
                "quarantined_batches": self._quarantined,
            }

    # --- Sink --------------------------------------------------------------------------

    def write(self, lines: Sequence[str]) -> bool:
        if not lines:
            return True
        batch = list(lines)
        size = lines_size(batch)
        with self._cond:
            if self._closed:
                self._log.warning("closed", "The Maxim sink is closed; %d records were not sent.", len(batch))
                return False
            self._seq += 1
            over = self._mem_bytes + size > self._max_memory
            failing = self._failing or self._backoff.failures > 0  # the sender is retrying right now
            tail = None if failing or over else self._open_tail(size)
            if tail is not None and tail.lines is not None:  # (_open_tail gives only an item in memory)
                tail.lines.extend(batch)
                tail.batches.append(len(batch))
                tail.size += size
                self._mem_bytes += size
            else:
                # Its own list of lines (batches join it), never the caller's.
                item = _Item(size, batch, batches=[len(batch)], name=f"{self._seq:020d}", label=str(self._seq))
                if (failing or over) and not self._to_disk(item) and over:
                    self._refuse(len(batch))
                    return False
                if item.lines is not None:
                    self._mem_bytes += size
                self._items.append(item)
            self._ensure_sender()
            self._cond.notify_all()
        return True

    def flush(self, timeout: float) -> bool:
        deadline = time.monotonic() + max(0.0, timeout)
        with self._cond:
            if not self._items or self._closed:
                return not self._items
            self._flush_deadlines.append(deadline)
            self._kicked = True
            if not self._closed:
                self._ensure_sender()
            self._cond.notify_all()
            try:
                while self._items:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or self._hopeless(deadline):
                        break
                    self._cond.wait(remaining)
                if self._items:
                    self._spill_memory()
                    return False
                # Its records went out (perhaps in a send that was already under way when it asked):
                # the kick is spent, so the next records wait out the linger as usual.
                self._kicked = False
                return True
            finally:
                self._flush_deadlines.remove(deadline)

    def close(self, timeout: float) -> None:
        deadline = time.monotonic() + max(0.0, timeout)
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._closing = True
            self._close_deadline = deadline
            self._kicked = True
            self._stop.set()  # cuts every backoff short
            if self._items:
                self._ensure_sender()
            sender = self._sender
            self._cond.notify_all()
        try:
            if sender is not None and sender is not threading.current_thread():
                sender.join(max(0.0, deadline - time.monotonic()))
        finally:  # Ctrl-C, or a SIGTERM handler's sys.exit(), while waiting: what is held still goes to disk
            self._finish_close(sender)

    def _finish_close(self, sender: threading.Thread | None) -> None:
        with self._cond:
            self._spill_memory()
            on_disk = sum(item.size for item in self._items if item.segment is not None)
            if on_disk:
                _logger.warning(
                    "Maxim's log API did not take everything before shutdown: %d bytes of records wait in %s"
                    " for the next process that uses this spool directory.",
                    on_disk,
                    self.spool_dir,
                )
            self._count_lost("shutdown")
            if self._refused:
                _logger.error(
                    "%d records were refused in all: the spool %s could not take them (%s).",
                    self._refused,
                    self.spool_dir,
                    self._spool_problem,
                )
            self._spool.release()
            self._close_finished = True
            sender_done = sender is None or not sender.is_alive()
        if sender_done:
            self._client.close()

    # --- queueing ----------------------------------------------------------------------

    def _open_tail(self, size: int) -> _Item | None:
        """The last item if a batch of ``size`` bytes may join it (see ``_ITEM_BYTES``), else ``None``."""
        if not self._items:
            return None
        tail = self._items[-1]
        if (
            tail.lines is None
            or tail.size + size > _ITEM_BYTES
            or tail.isolate
            or tail.rejections > 0
            or (self._in_flight is not None and tail in self._in_flight.items)  # its lines are being sent
        ):
            return None
        return tail

    def _to_disk(self, item: _Item) -> bool:
        """Move ``item`` to the spool; ``False`` (logged) if it stays where it is."""
        if item.lines is None:
            return True
        try:
            item.segment = self._spool.append(item.name, item.lines, item.batches)
        except SpoolFull:
            self._spool_problem = f"full: cap {self._spool.max_bytes} bytes"
            self._log.error(
                "spool-full",
                "The spool %s is full (cap %d bytes) while Maxim's log API does not take records.",
                self.spool_dir,
                self._spool.max_bytes,
            )
            return False
        except OSError as exc:
            self._spool_problem = str(exc)
            self._log.error("spool-os", "Could not write records to the spool %s: %s", self.spool_dir, exc)
            return False
        item.lines = None
        return True

    def _spill_memory(self) -> None:
        """Write every batch held in memory to the spool, in order (some may stay if the spool is full): a
        file per item (batches written in a row share one), and one sync of the directory for all of them."""
        spilled = False
        for item in self._items:
            if item.lines is not None and self._to_disk(item):
                self._mem_bytes -= item.size
                spilled = True
        if spilled:
            self._spool.sync()

    def _count_lost(self, when: str) -> None:
        """After the last spill (at ``when``), what memory still holds is lost: count it as refused and log it,
        not rate-limited.  Each item counts once: a close() may follow the exit hook (an atexit handler
        registered before ours shuts the provider down) and find the same records still in memory."""
        lost = 0
        for item in self._items:
            if item.lines is not None and not item.lost:
                item.lost = True
                lost += len(item.lines)
        if lost:
            self._refused += lost
            _logger.error(
                "%d records could not be sent before %s nor written to the spool %s (%s); they are lost.",
                lost,
                when,
                self.spool_dir,
                self._spool_problem,
            )

    def _refuse(self, count: int) -> None:
        self._refused += count
        self._log.error(
            "refused",
            "Refused %d records: Maxim's log API is not taking records and the spool %s cannot take them (%s);"
            " %d records refused so far.",
            count,
            self.spool_dir,
            self._spool_problem,
            self._refused,
        )

    def _adopt(self) -> None:
        try:
            segments = self._spool.adopt()
        except OSError as exc:
            self._log.error("adopt", "Could not read the spool %s: %s", self.spool_dir, exc)
            return
        if not segments:
            return
        for segment in segments:
            name = os.path.basename(segment.path)[:-4]
            self._items.append(_Item(segment.size, segment=segment, name=name, label=name))
        _logger.info(
            "Found %d batches (%d bytes) of records left in %s by an earlier process; sending them.",
            len(segments),
            sum(s.size for s in segments),
            self.spool_dir,
        )
        self._ensure_sender()

    def _hopeless(self, deadline: float) -> bool:
        """Nothing more can happen before ``deadline``: all waits on disk for an attempt after it.

        A kick (a flush asking for an attempt now) brings a backoff's attempt forward, not one that a
        Retry-After put off (see ``_next_unit``): the sender does not take it then, so it is no hope.
        """
        return (
            self._failing
            and self._in_flight is None
            and (not self._kicked or self._honour)
            and self._mem_bytes == 0
            and self._retry_at >= deadline
        )

    def _ensure_sender(self) -> None:
        if self._check_pending:
            self._check_pending = False
            threading.Thread(target=self._check_repository, name="OtelMaximRepositoryCheck", daemon=True).start()
        if self._sender is None or not self._sender.is_alive():
            self._sender = threading.Thread(target=self._run, name="OtelMaximSender", daemon=True)
            self._sender.start()

    # --- the sender thread --------------------------------------------------------------

    def _run(self) -> None:
        pid = os.getpid()
        try:
            while True:
                with self._cond:
                    unit = self._next_unit(pid)
                    if unit is None:
                        return
                    self._in_flight = unit
                result = self._send_or_retry(unit)
                with self._cond:
                    self._in_flight = None
                    self._settle(unit, result)
                    self._cond.notify_all()
        except Exception:  # a daemon thread must not die silently; the next write starts another
            self._log.error("sender-stopped", "The Maxim sender stopped unexpectedly.", exc_info=True)
        finally:
            with self._cond:
                self._in_flight = None
                self._cond.notify_all()
            if self._closing:
                self._client.close()

    def _next_unit(self, pid: int) -> _Unit | None:
        """Wait until the head of the queue may be sent, then take it (``None``: the thread ends)."""
        while True:
            if pid != os.getpid() or (self._closing and (self._gave_up or not self._items)):
                return None
            now = time.monotonic()
            # What ended processes left, also while records keep coming; the rest of a backlog as soon
            # as one of the directories held is done.
            if now >= self._next_adopt or self._spool.can_adopt_more:
                self._next_adopt = now + _ADOPT_INTERVAL
                self._adopt()
                continue
            if not self._items:
                self._cond.wait(self._next_adopt - now)
                continue
            wait = self._retry_at - now
            if wait > 0 and (self._kicked or self._closing) and not self._honour:
                wait = 0  # a flush or close asks for an attempt now; a Retry-After is still obeyed
            if wait > 0:
                if self._closing and self._retry_at >= self._close_deadline:
                    self._gave_up = True
                    continue
                self._cond.wait(wait)
                continue
            if self._gathering(now):
                self._cond.wait(self._gather_until - now)
                continue
            break
        self._kicked = False
        deadline = now + self.export_timeout
        if self._flush_deadlines:
            deadline = min(deadline, *self._flush_deadlines)
        if self._closing:
            deadline = min(deadline, self._close_deadline)
        head = self._items[0]
        items, size = [head], head.size
        if not head.isolate:
            for item in islice(self._items, 1, None):
                if item.isolate or size + item.size > MAX_BODY_BYTES:
                    break
                items.append(item)
                size += item.size
        return _Unit(items, [item.lines or [] for item in items], deadline)

    def _gathering(self, now: float) -> bool:
        """Whether the sender waits for more records before its next send (``linger`` after a delivered one)."""
        return (
            now < self._gather_until
            and not (self._kicked or self._closing or self._flush_deadlines or self._failing)
            and self._items[0].lines is not None  # a spooled backlog goes at once
            and self._mem_bytes < min(_GATHER_BYTES, self._max_memory // 2)
        )

    def _send_or_retry(self, unit: _Unit) -> Result:
        """``_send``, or a RETRY after the backoff if it raised (a bug of ours or of a library, not an answer
        of Maxim's): the unit is then settled as any attempt that did not get through, spilled and tried
        again, and the sender goes on.  A sender that died instead would leave the unit neither acknowledged
        nor backed off, and the next write would start one that sends it all again at once."""
        try:
            return self._send(unit)
        except Exception:
            delay = self._backoff.next_delay()
            self._log.error(
                "sender-error",
                "Sending records to Maxim's log API failed unexpectedly; they wait and are tried again in %.2f s.",
                delay,
                exc_info=True,
            )
            return Result(Outcome.RETRY, None, time.monotonic() + delay)

    def _send(self, unit: _Unit) -> Result:
        for i, item in enumerate(unit.items):
            if item.segment is None:
                continue
            try:
                batches = self._spool.read(item.segment)
                item.batches = [len(lines) for lines in batches]
                unit.parts[i] = [line for lines in batches for line in lines]
            except FileNotFoundError:  # removed by someone else: there is nothing left to send
                self._log.error("gone", "Spooled records %s were removed before they were sent.", item.segment.path)
                unit.parts[i] = []
            except OSError as exc:  # may pass (too many open files, I/O error): the batch stays, for later
                self._log.error(
                    "read", "Could not read spooled records %s (%s); they stay spooled.", item.segment.path, exc
                )
                unit.unreadable = item
                del unit.items[i:], unit.parts[i:]
                break
        if not unit.items:
            return Result(Outcome.RETRY, None, time.monotonic() + self._backoff.next_delay())
        for part in unit.parts:
            unit.starts.append(len(unit.lines))
            unit.lines.extend(part)
        if not unit.lines:
            self._on_ack(unit, 0)
            return Result(Outcome.DELIVERED)
        return self._deliverer.deliver(unit.lines, unit.deadline, lambda n: self._on_ack(unit, n))

    def _on_ack(self, unit: _Unit, acked: int) -> None:
        """Maxim took the first ``acked`` lines of ``unit``: drop the items they cover, trim a partial one."""
        with self._cond:
            self._failing = False
            while unit.done < len(unit.items):
                i = unit.done
                item, start, part = unit.items[i], unit.starts[i], unit.parts[i]
                if acked >= start + len(part):
                    self._forget(item)
                    self._delivered += len(part)
                    unit.done += 1
                    continue
                if acked > start:
                    self._trim(item, part[acked - start :])
                break
            self._cond.notify_all()

    def _forget(self, item: _Item) -> None:
        if self._items and self._items[0] is item:
            self._items.popleft()
        else:
            try:
                self._items.remove(item)
            except ValueError:
                return
        if item.lines is not None:
            self._mem_bytes -= item.size
        if item.segment is not None:
            try:
                self._spool.remove(item.segment)
            except OSError as exc:
                self._log.error("remove", "Could not remove delivered records %s: %s", item.segment.path, exc)

    def _trim(self, item: _Item, rest: list[str]) -> None:
        size = lines_size(rest)
        item.batches = _last_lines(item.batches, len(rest))
        if item.lines is not None:
            self._mem_bytes += size - item.size
            item.lines = rest
        if item.segment is not None:
            try:
                self._spool.rewrite(item.segment, rest, item.batches)
            except OSError as exc:
                self._log.error("rewrite", "Could not update spooled records %s: %s", item.segment.path, exc)
        item.size = size

    def _settle(self, unit: _Unit, result: Result) -> None:
        if unit.unreadable is not None:
            self._read_failed(unit.unreadable)
        if result.outcome is Outcome.DELIVERED:
            self._failing = False
            self._retry_at, self._honour = 0.0, False
            self._gather_until = time.monotonic() + self._linger
            return
        self._failing = True
        if result.outcome is Outcome.RETRY:
            self._retry_at, self._honour = result.retry_at, result.honour
            if self._closing:
                self._gave_up = True
            self._spill_memory()
            return
        # Rejected: find the batch Maxim refuses, then set it aside so the ones behind it can go.
        self._retry_at, self._honour = time.monotonic() + self._backoff.next_delay(), False
        left = unit.items[unit.done :]
        if len(left) > 1 or (left and len(left[0].batches) > 1):
            pieces = [piece for item in left for piece in self._split(item)]
            for piece in pieces:
                piece.isolate = True  # each is sent alone: the one Maxim refuses is set aside alone
            if len(pieces) > 1:
                return
            # One item of several batches that could not be split (its file could not be written, say):
            # its rejections count as a batch's do, so that it is set aside whole rather than sent forever.
        if not left:
            return
        item = left[0]
        item.rejections += 1
        if item.rejections >= self._max_rejections:
            self._quarantine(item, len(unit.parts[unit.done]), result)

    def _split(self, item: _Item) -> list[_Item]:
        """Put an item of several batches back in the queue as an item per batch (one file each if it is on
        disk), in its place; the items it now is (itself if it holds one batch, or cannot be split)."""
        if len(item.batches) <= 1 or item not in self._items:
            return [item]
        lines = item.lines
        if lines is None and item.segment is not None:
            try:
                lines = [line for batch in self._spool.read(item.segment) for line in batch]
            except OSError as exc:
                self._log.error("split", "Could not read spooled records %s: %s", item.segment.path, exc)
                return [item]
        if lines is None or sum(item.batches) != len(lines):
            return [item]
        groups: list[list[str]] = []
        start = 0
        for count in item.batches:
            groups.append(lines[start : start + count])
            start += count
        pieces = [
            _Item(lines_size(group), batches=[len(group)], name=f"{item.name}.{k:06d}", label=f"{item.label}.{k}")
            for k, group in enumerate(groups)
        ]
        if item.segment is None:
            for piece, group in zip(pieces, groups):
                piece.lines = group  # the same bytes in memory as before: _mem_bytes stands
        else:
            try:
                segments = self._spool.split(item.segment, groups)
            except OSError as exc:
                self._log.error("split", "Could not split spooled records %s: %s", item.segment.path, exc)
                return [item]
            for piece, segment in zip(pieces, segments):
                piece.segment, piece.size = segment, segment.size
        position = self._items.index(item)
        del self._items[position]
        for offset, piece in enumerate(pieces):
            self._items.insert(position + offset, piece)
        return pieces

    def _set_aside(self, item: _Item) -> tuple[str, Exception | None]:
        """Move ``item`` to the quarantine and out of the queue: where it went, or why it could not go."""
        try:
            where, error = self._spool.quarantine(item.label, segment=item.segment, lines=item.lines), None
        except (SpoolFull, OSError) as exc:
            where, error = "", exc
        item.segment = None  # moved (the file is the quarantine's now), or left where it was
        self._forget(item)
        self._quarantined += 1
        return where, error

    def _quarantine(self, item: _Item, count: int, result: Result) -> None:
        why = result.reply.describe() if result.reply is not None else "rejected"
        where, error = self._set_aside(item)
        if error is not None:
            self._log.error(
                "quarantine-lost",
                "Maxim's log API rejected a batch of %d records %d times (last: %s); it could not be set aside"
                " (%s) and is lost.",
                count,
                item.rejections,
                why,
                error,
            )
        else:
            self._log.error(
                "quarantine",
                "Maxim's log API rejected a batch of %d records %d times (last: %s); it is set aside in %s"
                " and will not be sent again automatically.",
                count,
                item.rejections,
                why,
                where,
            )

    def _read_failed(self, item: _Item) -> None:
        """A spooled batch could not be read: after ``max_rejections`` times, set it aside (never deleted)."""
        item.failed_reads += 1
        if item.failed_reads < self._max_rejections or item.segment is None:
            return
        path = item.segment.path
        where, error = self._set_aside(item)  # the file stays on disk, the quarantine's or where it was
        if error is not None:
            where = f"{path} (it could not be moved: {error})"
        self._log.error(
            "unreadable",
            "Spooled records %s could not be read %d times; the batch is set aside in %s and will not be sent"
            " again automatically.",
            path,
            item.failed_reads,
            where,
        )

    # --- the repository check -------------------------------------------------------------

    def _check_repository(self) -> None:
        base_url, api_key, repo_id, allow_insecure = self._settings
        client = ApiClient(base_url, api_key, repo_id, allow_insecure=allow_insecure)
        try:
            reply = client.check_repository(min(self.export_timeout, _CHECK_TIMEOUT))
        except Exception:  # a daemon thread: log, never die silently
            _logger.exception("Could not check the Maxim log repository %r.", repo_id)
            return
        finally:
            client.close()
        if reply.kind is Kind.OK:
            _logger.debug("Maxim log repository %r found.", repo_id)
        elif reply.status in (401, 403):
            _logger.warning(
                "Maxim refused the API key while checking log repository %r (%s): check api_key / %s.",
                repo_id,
                reply.describe(),
                env.MAXIM_API_KEY,
            )
        elif reply.kind is not Kind.RETRY and reply.status is not None:
            _logger.warning(
                "Maxim log repository %r was not found at %s (%s): check repo_id / %s; Maxim may drop what is sent.",
                repo_id,
                self.base_url,
                reply.describe(),
                env.MAXIM_LOG_REPO_ID,
            )
        else:
            _logger.info(
                "Could not check Maxim log repository %r (%s); records are spooled until the API answers.",
                repo_id,
                reply.describe(),
            )


def _last_lines(batches: list[int], count: int) -> list[int]:
    """The line counts of the batches that hold the last ``count`` of their lines."""
    kept: list[int] = []
    for size in reversed(batches):
        if count <= 0:
            break
        kept.append(min(size, count))
        count -= size
    return kept[::-1]


#: Live sinks, so that a process ending without a shutdown spills what they hold (see _at_exit).
_SINKS: weakref.WeakSet[MaximApiSink] = weakref.WeakSet()


def _at_exit() -> None:
    """A process that ends without shutting its tracer provider down keeps what was queued: on disk."""
    for sink in list(_SINKS):
        sink._spill_at_exit()


atexit.register(_at_exit)


def build_sink(
    *,
    api_key: str,
    key_from_env: bool,
    repo_id: str,
    base_url: str | None = None,
    spool_dir: str | os.PathLike[str] | None = None,
    max_spool_bytes: int | None = None,
    export_timeout: float | None = None,
    allow_insecure: bool | None = None,
) -> MaximApiSink | None:
    """The API sink for the exporter's settings (argument > environment variable > default).

    A bad argument raises ``ValueError`` naming it; a bad environment value
    logs a warning naming the variable and returns ``None`` (the exporter
    then writes to a local file) when delivery cannot be set up safely.
    """
    problem = header_value_problem(api_key)
    if problem is not None:
        if not key_from_env:
            raise ValueError(f"api_key {problem}")
        _logger.warning("%s %s; writing records to a local file instead.", env.MAXIM_API_KEY, problem)
        return None
    insecure = resolve_bool(allow_insecure, "allow_insecure", env.MAXIM_ALLOW_INSECURE, False)
    url = base_url if base_url is not None else (env_str(env.MAXIM_BASE_URL) or DEFAULT_BASE_URL)
    problem = base_url_problem(url, insecure)
    if problem is not None:
        if base_url is not None:
            raise ValueError(f"base_url {shown_url(url)!r} {problem}")
        _logger.warning(
            "%s=%r %s; writing records to a local file instead.", env.MAXIM_BASE_URL, shown_url(url), problem
        )
        return None
    directory = spool_dir if spool_dir is not None else (env_str(env.MAXIM_SPOOL_DIR) or default_spool_dir())
    cap = resolve_int(max_spool_bytes, "max_spool_bytes", env.MAXIM_MAX_SPOOL_BYTES, DEFAULT_MAX_SPOOL_BYTES, minimum=0)
    timeout = resolve_seconds(
        export_timeout, "export_timeout", env.MAXIM_EXPORT_TIMEOUT, DEFAULT_EXPORT_TIMEOUT, minimum=0.001
    )
    return MaximApiSink(
        api_key=api_key,
        repo_id=repo_id,
        base_url=url,
        spool_dir=directory,
        max_spool_bytes=cap,
        export_timeout=timeout,
        allow_insecure=insecure,
    )
