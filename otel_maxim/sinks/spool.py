"""The disk spool: batches of record lines waiting on disk for Maxim's log API.

Layout (directories we create are ``0700``, files ``0600``)::

    <spool dir>/
      <destination>/       one per Maxim repository and API base URL (see :func:`destination_dir`):
                           records wait for a process that sends them where they were meant to go
      <producer>/          one per process that spooled: "<time_ns>-<pid>-<random>"
        lock               locked (flock) by that process for as long as it uses the directory
        <seq>.seg          batches written in a row: each line followed by "\\n", an empty line between
                           two batches; the names sort in sending order (a file split into its batches
                           becomes "<seq>.<n>.seg", n = 000000, 000001, ...)
      quarantine/          batches that Maxim kept rejecting, set aside: "<time_ns>-<pid>-<random>-<label>.seg"

(the producers and the quarantine are in the destination's directory, the :class:`Spool`'s own).
A process writes only into its own producer directory.  A producer directory
whose lock nobody holds was left by a process that ended or crashed: another
process using the same spool directory adopts it (takes its lock), sends its
batches in order and removes it; at most :data:`MAX_ADOPTED` at a time, since
each holds a file descriptor while its batches are sent, and only directories
of this user (a spool directory others can write to must not let them make
this process send their records with its key).  A file is written under a temporary name,
flushed to disk and renamed, so a crash leaves the whole file or nothing.  The
empty lines between batches keep each batch's bounds on disk (a reader that
ignores them sees the lines in order), so that a batch Maxim keeps rejecting
can be set aside alone, also by the process that adopts the file.

Not thread-safe: :class:`~otel_maxim.sinks.maxim_api.MaximApiSink` calls it
under its own lock.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import itertools
import os
import re
import secrets
import stat
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

__all__ = [
    "MAX_ADOPTED",
    "QUARANTINE",
    "Segment",
    "Spool",
    "SpoolFull",
    "default_spool_dir",
    "destination_dir",
    "user_cache_dir",
]

QUARANTINE = "quarantine"
#: A producer directory's name: "<time_ns>-<pid>-<random>".
_PRODUCER = re.compile(r"\d{20}-\d+-[0-9a-f]{8}")
#: Most directories of ended processes held (adopted) at once: each holds its lock's file descriptor.
MAX_ADOPTED = 16
_LOCK = "lock"
_SUFFIX = ".seg"


class SpoolFull(Exception):
    """The batch would take the spool past its size cap."""


@dataclass(eq=False)
class Segment:
    """One batch on disk."""

    path: str
    size: int


def user_cache_dir() -> str:
    """The platform's per-user cache directory (``XDG_CACHE_HOME``, ``~/Library/Caches``, ``%LOCALAPPDATA%``)."""
    if sys.platform == "win32":
        return os.environ.get("LOCALAPPDATA") or os.path.expanduser(os.path.join("~", "AppData", "Local"))
    if sys.platform == "darwin":
        return os.path.expanduser("~/Library/Caches")
    xdg = os.environ.get("XDG_CACHE_HOME")
    return xdg if xdg and os.path.isabs(xdg) else os.path.expanduser("~/.cache")


def default_spool_dir() -> str:
    return os.path.join(user_cache_dir(), "otel-maxim", "spool")


def destination_dir(spool_dir: str | os.PathLike[str], base_url: str, repo_id: str) -> str:
    """Where the records bound for ``repo_id`` at ``base_url`` wait, below ``spool_dir``.

    One spool directory serves every program of a user (it is the default for all of them), and
    a record must only ever go to the repository it was written for: another program, or the same
    one in another environment, sends what its own destination left.  The API key is not part of
    it: records that waited for a revoked key to be replaced go out with the new one.
    """
    identity = f"{_same_api(base_url)}\n{repo_id}".encode()
    return os.path.join(os.fspath(spool_dir), "to-" + hashlib.sha256(identity).hexdigest()[:24])


def _same_api(base_url: str) -> str:
    """``base_url`` written one way for one API: scheme and host in lower case, no default port, no
    trailing ``/`` (the path keeps its case: a proxy may route by it)."""
    parts = urlsplit(base_url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"  # IPv6
    try:
        port = parts.port
    except ValueError:  # refused with the settings before a sink is made; any text will do here
        port = None
    if port is not None and port != {"https": 443, "http": 80}.get(scheme):
        host = f"{host}:{port}"
    return urlunsplit((scheme, host, parts.path.rstrip("/"), parts.query, ""))


def _try_lock(fd: int) -> bool:
    """Take an exclusive lock on ``fd`` without waiting; released when the process ends."""
    if sys.platform == "win32":
        import msvcrt  # noqa: PLC0415 - platform specific

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl  # noqa: PLC0415 - platform specific

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def _close(fd: int | None) -> None:
    if fd is not None:
        with contextlib.suppress(OSError):
            os.close(fd)


class Spool:
    """Batches on disk, this process's own and those adopted from ended processes, under a size cap."""

    def __init__(self, directory: str | os.PathLike[str], max_bytes: int, *, durable: bool = True) -> None:
        self.directory = os.path.abspath(os.fspath(directory))
        self.max_bytes = max_bytes
        self._durable = durable
        self._own: str | None = None
        self._own_fd: int | None = None
        self._held: dict[str, list[int]] = {}  # adopted directory -> [lock fd, segments left]
        self._used = 0
        self._quarantine_counted = False
        #: The last :meth:`adopt` stopped at :data:`MAX_ADOPTED`: more may wait for a slot.
        self.more_to_adopt = False

    def __repr__(self) -> str:
        return f"Spool({self.directory!r}, max_bytes={self.max_bytes})"

    @property
    def used_bytes(self) -> int:
        """Bytes this process holds on disk: its batches, adopted batches, and the quarantine."""
        return self._used

    # --- adopting what ended processes left ------------------------------------------

    def adopt(self) -> list[Segment]:
        """Take over the batches of producer directories nobody holds (up to :data:`MAX_ADOPTED` held at
        once: the rest wait for a later call); in sending order."""
        try:
            names = sorted(os.listdir(self.directory))
        except FileNotFoundError:
            return []
        self._count_quarantine()
        found: list[Segment] = []
        self.more_to_adopt = False
        for name in names:
            if len(self._held) >= MAX_ADOPTED:
                self.more_to_adopt = True
                break
            path = os.path.join(self.directory, name)
            if name == QUARANTINE or path == self._own or path in self._held or not _is_own_dir(path):
                continue
            hidden = name.startswith(".")  # a producer being created, or one that crashed then: nothing in it
            fd = self._lock_dir(path, create=not hidden)
            if fd is None:
                continue  # a live process holds it (or is creating it)
            if hidden:
                self._drop_dir(path, fd)
                continue
            segments = self._segments_in(path)
            if not segments:
                self._drop_dir(path, fd)
                continue
            self._held[path] = [fd, len(segments)]
            self._used += sum(s.size for s in segments)
            found.extend(segments)
        return found

    def _lock_dir(self, path: str, *, create: bool) -> int | None:
        try:
            fd = os.open(os.path.join(path, _LOCK), os.O_RDWR | (os.O_CREAT if create else 0), 0o600)
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE):
                raise  # the process is out of file descriptors: not a directory someone holds
            return None
        if not _try_lock(fd):
            _close(fd)
            return None
        return fd

    def _segments_in(self, path: str) -> list[Segment]:
        segments: list[Segment] = []
        try:
            names = sorted(os.listdir(path))
        except OSError:
            return segments
        for name in names:
            full = os.path.join(path, name)
            if name.startswith(".") and name.endswith(".tmp"):
                with contextlib.suppress(OSError):
                    os.unlink(full)  # a write cut short by a crash
            elif name.endswith(_SUFFIX):
                with contextlib.suppress(OSError):
                    segments.append(Segment(full, os.path.getsize(full)))
        return segments

    def _drop_dir(self, path: str, fd: int) -> None:
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(path, _LOCK))
        with contextlib.suppress(OSError):
            os.rmdir(path)
        _close(fd)

    def _count_quarantine(self) -> None:
        if self._quarantine_counted:
            return
        self._quarantine_counted = True
        try:
            with os.scandir(os.path.join(self.directory, QUARANTINE)) as entries:
                self._used += sum(e.stat().st_size for e in entries if e.is_file())
        except OSError:
            pass

    # --- this process's batches ------------------------------------------------------

    def _make_directory(self) -> None:
        """Make the spool's directory and the one above it, ``0700`` (``makedirs`` gives only the last
        one that mode); refuse one that another user owns (``OSError``)."""
        os.makedirs(os.path.dirname(self.directory), mode=0o700, exist_ok=True)
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        if not _is_own_dir(self.directory):
            raise OSError(f"{self.directory} belongs to another user: records are not written there")

    def _own_dir(self) -> str:
        if self._own is not None:
            return self._own
        self._make_directory()
        self._count_quarantine()
        name = f"{time.time_ns():020d}-{os.getpid()}-{secrets.token_hex(4)}"
        final = os.path.join(self.directory, name)
        # Created under a hidden name and renamed once locked, so no other process can adopt it in between.
        building = final if sys.platform == "win32" else os.path.join(self.directory, "." + name)
        os.mkdir(building, 0o700)
        fd = os.open(os.path.join(building, _LOCK), os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        if not _try_lock(fd):
            _close(fd)
            raise OSError(f"could not lock the new spool directory {building}")
        if building != final:
            os.rename(building, final)
        self._own, self._own_fd = final, fd
        return final

    def append(self, name: str, lines: Sequence[str], batches: Sequence[int] = ()) -> Segment:
        """Write ``lines`` as ``<name>.seg``, ``batches`` (their line counts) marked; raises :class:`SpoolFull`
        past the cap, ``OSError`` if the disk refuses."""
        data = _encode(lines, batches)
        if self._used + len(data) > self.max_bytes:
            raise SpoolFull(f"{self._used} + {len(data)} bytes > {self.max_bytes}")
        path = os.path.join(self._own_dir(), f"{name}{_SUFFIX}")
        try:
            self._write(path, data)
        except FileNotFoundError:
            # The directory was removed under us (a cache cleaner, an operator): a new one, once.
            _close(self._own_fd)
            self._own, self._own_fd = None, None
            path = os.path.join(self._own_dir(), f"{name}{_SUFFIX}")
            self._write(path, data)
        self._used += len(data)
        return Segment(path, len(data))

    def read(self, segment: Segment) -> list[list[str]]:
        """The batches of a file, each a list of lines (a file from before batches were marked: one)."""
        with open(segment.path, "rb") as f:
            text = f.read().decode("utf-8", "replace")
        batches: list[list[str]] = [[]]
        for line in text.split("\n"):
            if line:
                batches[-1].append(line)
            elif batches[-1]:
                batches.append([])
        if not batches[-1]:
            batches.pop()
        return batches

    def rewrite(self, segment: Segment, lines: Sequence[str], batches: Sequence[int] = ()) -> None:
        """Replace a file by what is left of it (its first lines were delivered)."""
        data = _encode(lines, batches)
        self._write(segment.path, data)
        self._used += len(data) - segment.size
        segment.size = len(data)

    def split(self, segment: Segment, batches: Sequence[Sequence[str]]) -> list[Segment]:
        """Replace a file of several batches by a file each, named to sort where it stood; in order.

        A crash before the old file is removed leaves both: its batches are then sent twice (at least
        once), never lost.
        """
        stem = segment.path[: -len(_SUFFIX)]
        parts: list[Segment] = []
        try:
            for number, lines in enumerate(batches):
                data = _encode(lines)
                path = f"{stem}.{number:06d}{_SUFFIX}"
                self._write(path, data)
                parts.append(Segment(path, len(data)))
        except BaseException:
            for part in parts:
                with contextlib.suppress(OSError):
                    os.unlink(part.path)
            raise
        with contextlib.suppress(FileNotFoundError):
            os.unlink(segment.path)
        self._used += sum(part.size for part in parts) - segment.size
        held = self._held.get(os.path.dirname(segment.path))
        if held is not None:  # an adopted directory: it goes once all of its files are done
            held[1] += len(parts) - 1
        return parts

    def sync(self) -> None:
        """Make this process's file names durable (one ``fsync`` of its directory); the data of each file
        was flushed as it was written."""
        if not self._durable or self._own is None or sys.platform == "win32":  # no directory handles there
            return
        try:
            fd = os.open(self._own, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(fd)
        except OSError:
            pass
        finally:
            _close(fd)

    def remove(self, segment: Segment) -> None:
        """Forget a delivered batch."""
        try:
            os.unlink(segment.path)
        except FileNotFoundError:
            pass
        self._used -= segment.size
        self._settle(segment)

    def quarantine(self, label: str, segment: Segment | None = None, lines: Sequence[str] | None = None) -> str:
        """Set a batch aside (a segment is moved, lines are written); returns where it went."""
        self._make_directory()
        directory = os.path.join(self.directory, QUARANTINE)
        os.makedirs(directory, mode=0o700, exist_ok=True)
        self._count_quarantine()
        # The random part: labels repeat across the processes whose files are adopted, and clocks repeat.
        path = os.path.join(directory, f"{time.time_ns():020d}-{os.getpid()}-{secrets.token_hex(4)}-{label}{_SUFFIX}")
        if segment is not None:
            os.replace(segment.path, path)  # still counted in used_bytes: the quarantine is under the cap too
            self._settle(segment)
        else:
            data = _encode(lines or ())
            if self._used + len(data) > self.max_bytes:
                raise SpoolFull(f"{self._used} + {len(data)} bytes > {self.max_bytes}")
            self._write(path, data)
            self._used += len(data)
        return path

    def unaddressed(self) -> list[str]:
        """Producer directories right in the spool directory, as versions before the destination
        subdirectories left them: their records name no repository, so they are not sent."""
        root = os.path.dirname(self.directory)
        return [
            os.path.join(root, name)
            for name in sorted(_listdir(root))
            if _PRODUCER.fullmatch(name) and _is_own_dir(os.path.join(root, name))
        ]

    @property
    def can_adopt_more(self) -> bool:
        """Directories were left for a slot, and one is free."""
        return self.more_to_adopt and len(self._held) < MAX_ADOPTED

    def _settle(self, segment: Segment) -> None:
        """Count a batch of an adopted directory as done; the directory goes when it is empty."""
        directory = os.path.dirname(segment.path)
        held = self._held.get(directory)
        if held is not None:
            held[1] -= 1
            if held[1] <= 0:
                del self._held[directory]
                self._drop_dir(directory, held[0])

    def _write(self, path: str, data: bytes) -> None:
        temporary = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0), 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if self._durable:
                os.fsync(fd)
        except BaseException:
            _close(fd)
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        os.close(fd)
        os.replace(temporary, path)

    # --- the end ---------------------------------------------------------------------

    def release(self) -> None:
        """Let other processes adopt what is left; remove this process's directory if it is empty."""
        if self._own is not None:
            if not any(name.endswith(_SUFFIX) for name in _listdir(self._own)):
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(self._own, _LOCK))
                with contextlib.suppress(OSError):
                    os.rmdir(self._own)
            _close(self._own_fd)
        for fd, _ in self._held.values():
            _close(fd)
        self._own, self._own_fd = None, None
        self._held.clear()

    def after_fork(self) -> None:
        """In a forked child: the parent's locks and batches are not ours (closing our copies keeps its locks)."""
        _close(self._own_fd)
        for fd, _ in self._held.values():
            _close(fd)
        self._own, self._own_fd = None, None
        self._held.clear()
        self._used = 0
        self._quarantine_counted = False


def _encode(lines: Sequence[str], batches: Sequence[int] = ()) -> bytes:
    """``lines``, each followed by a newline, with an empty line after each batch but the last (``batches``:
    their line counts, in order)."""
    if len(batches) > 1:
        ends = set(itertools.accumulate(batches[:-1]))
        text = "".join(line + ("\n\n" if number in ends else "\n") for number, line in enumerate(lines, 1))
    else:
        text = "".join(line + "\n" for line in lines)
    return text.encode("utf-8", "replace")


def _is_own_dir(path: str) -> bool:
    """Whether ``path`` is a directory of this user (of anyone where the platform has no owners)."""
    try:
        info = os.lstat(path)
    except OSError:
        return False
    getuid = getattr(os, "getuid", None)
    return stat.S_ISDIR(info.st_mode) and (getuid is None or info.st_uid == getuid())


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []
