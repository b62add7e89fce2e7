"""The local-file sink: records appended to a file, one wire line each (or written to standard output)."""

from __future__ import annotations

import logging
import os
import stat
import sys
import threading
from collections.abc import Sequence

from otel_maxim._fork import reinit_after_fork
from otel_maxim._log import RateLimitedLog

_logger = logging.getLogger(__name__)
_limited = RateLimitedLog(_logger)

#: ``output`` value that means standard output.
STDOUT = "-"


class FileSink:
    """Append record lines to ``path`` (``"-"``: standard output).

    The file is opened lazily (created ``0600``: it holds what the spool holds) and kept open, and
    each batch is one ``write`` to it, so a reader (``tail -f``, the demo) sees whole lines at once.
    Before each batch the path is checked, as ``logging.handlers.WatchedFileHandler`` does: a file
    removed or rotated away (renamed) is closed and the path opened anew.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._lock = threading.Lock()
        self._fd: int | None = None  # the records file; standard output is written through sys.stdout
        self._where = ""  # the absolute path, fixed when first opened: a later chdir does not move the file
        self._identity = (0, 0)  # (device, inode) of the file behind _fd
        self._newline_first = False  # the file ends in part of a line: the next batch starts a new one
        self._closed = False
        reinit_after_fork(self)

    def _after_fork(self) -> None:
        self._lock = threading.Lock()  # a write in another thread at the fork never ends in the child

    def __repr__(self) -> str:
        return f"FileSink({self.path!r})"

    def _open(self) -> int:
        if self._fd is not None:
            try:
                info = os.stat(self._where)
                moved = (info.st_dev, info.st_ino) != self._identity
            except OSError:  # removed: the path is created again below
                moved = True
            if not moved:
                return self._fd
            self._close_file()
        self._where = self._where or os.path.abspath(self.path)
        os.makedirs(os.path.dirname(self._where), exist_ok=True)
        # O_APPEND: every batch goes to the end, whoever else appends (two workers of a service).
        fd = os.open(self._where, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_BINARY", 0), 0o600)
        info = os.fstat(fd)
        self._fd, self._identity = fd, (info.st_dev, info.st_ino)
        # A writer that stopped mid-line (killed, or a disk that filled) left part of a record at the
        # end: the next record must not be glued onto it.
        self._newline_first = stat.S_ISREG(info.st_mode) and info.st_size > 0 and not _ends_with_newline(self._where)
        return fd

    def _close_file(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            try:
                os.close(fd)
            except OSError as exc:
                _logger.error("Could not close %s: %s", self.path, exc)

    def write(self, lines: Sequence[str]) -> bool:
        if not lines:
            return True
        with self._lock:
            if self._closed:
                _limited.warning("closed", "Records file %s is closed; %d records not written.", self.path, len(lines))
                return False
            if self.path == STDOUT:
                return self._write_stdout(lines)
            prefix = data = b""
            written = 0
            try:
                fd = self._open()
                prefix = b"\n" if self._newline_first else b""
                data = prefix + ("\n".join(lines) + "\n").encode()
                # The kernel may take part of a batch (a disk that fills): the loop writes the rest,
                # or raises with ``written`` saying how much of the batch is in the file.
                view = memoryview(data)
                while written < len(data):
                    written += os.write(fd, view[written:])
                self._newline_first = False
                return True
            except (OSError, ValueError) as exc:  # a full disk must not reach the application
                whole = data[len(prefix) : written].count(b"\n")
                if whole:
                    _limited.error(
                        "write",
                        "Could not write the last %d of %d records to %s: %s",
                        len(lines) - whole,
                        len(lines),
                        self.path,
                        exc,
                    )
                else:
                    _limited.error("write", "Could not write %d records to %s: %s", len(lines), self.path, exc)
                # Opened again for the next batch, which looks at how the file ends (part of a record
                # may have gone in) and finds the path anew.
                self._close_file()
                return False

    def _write_stdout(self, lines: Sequence[str]) -> bool:
        try:
            sys.stdout.write("\n".join(lines) + "\n")
            sys.stdout.flush()
            return True
        except (OSError, ValueError) as exc:  # a closed standard output must not reach the application
            _limited.error("write", "Could not write %d records to %s: %s", len(lines), self.path, exc)
            return False

    def flush(self, timeout: float) -> bool:
        return True  # every write is flushed already

    def close(self, timeout: float) -> None:
        # A write that does not return (a pipe nobody reads, a full standard output) holds the lock.
        if not self._lock.acquire(timeout=max(0.0, timeout)):
            _logger.warning("Could not close %s within %.1f s: a write to it has not returned.", self.path, timeout)
            return
        try:
            if self._closed:
                return
            self._closed = True
            self._close_file()
        finally:
            self._lock.release()


def _ends_with_newline(path: str) -> bool:
    """Whether the file at ``path`` ends with a newline; ``True`` if it cannot be read (nothing to mend)."""
    try:
        with open(path, "rb") as f:
            f.seek(-1, os.SEEK_END)
            return f.read(1) == b"\n"
    except OSError:
        return True
