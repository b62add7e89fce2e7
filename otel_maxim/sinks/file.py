"""The local-file sink: records appended to a file, one wire line each (or written to standard output)."""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Sequence
from typing import TextIO

from otel_maxim._fork import reinit_after_fork
from otel_maxim._log import RateLimitedLog

_logger = logging.getLogger(__name__)
_limited = RateLimitedLog(_logger)

#: ``output`` value that means standard output.
STDOUT = "-"


class FileSink:
    """Append record lines to ``path`` (``"-"``: standard output).

    The file is opened lazily and kept open; every :meth:`write` ends with a
    flush, so a reader (``tail -f``, the demo) sees whole lines at once.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._lock = threading.Lock()
        self._file: TextIO | None = None
        self._closed = False
        reinit_after_fork(self)

    def _after_fork(self) -> None:
        self._lock = threading.Lock()  # a write in another thread at the fork never ends in the child

    def __repr__(self) -> str:
        return f"FileSink({self.path!r})"

    def _open(self) -> TextIO:
        if self._file is None:
            if self.path == STDOUT:
                self._file = sys.stdout
            else:
                directory = os.path.dirname(os.path.abspath(self.path))
                os.makedirs(directory, exist_ok=True)
                self._file = open(self.path, "a", encoding="utf-8", newline="\n")  # noqa: SIM115 - kept open
        return self._file

    def write(self, lines: Sequence[str]) -> bool:
        if not lines:
            return True
        with self._lock:
            if self._closed:
                _limited.warning("closed", "Records file %s is closed; %d records not written.", self.path, len(lines))
                return False
            try:
                out = self._open()
                out.write("\n".join(lines) + "\n")
                out.flush()
                return True
            except (OSError, ValueError) as exc:  # a full disk or a closed stdout must not reach the application
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
            if self._file is not None and self._file is not sys.stdout:
                try:
                    self._file.close()
                except OSError as exc:
                    _logger.error("Could not close %s: %s", self.path, exc)
            self._file = None
        finally:
            self._lock.release()
