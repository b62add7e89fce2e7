"""Rate-limited logging for messages that a failing dependency could repeat thousands of times."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from otel_maxim._fork import reinit_after_fork


class RateLimitedLog:
    """Log one message per ``key`` at most once every ``interval`` seconds, counting what was held back.

    The count of suppressed messages is added to the next one that is let through,
    so a long outage shows up as a few lines that still say how often it happened.
    """

    def __init__(self, logger: logging.Logger, interval: float = 60.0) -> None:
        self._logger = logger
        self._interval = interval
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}
        reinit_after_fork(self)

    def _after_fork(self) -> None:
        self._lock = threading.Lock()

    def admit(self, key: str) -> int | None:
        """Whether a message under ``key`` may be logged now: ``None`` if not (it is counted), else how
        many were held back since the last one."""
        now = time.monotonic()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self._interval:
                self._held[key] = self._held.get(key, 0) + 1
                return None
            if len(self._last) > 1000:  # keys are a small fixed set in practice; stay bounded anyway
                self._last.clear()
                self._held.clear()
            self._last[key] = now
            return self._held.pop(key, 0)

    def log(self, level: int, key: str, msg: str, *args: Any, exc_info: bool = False) -> None:
        held = self.admit(key)
        if held is None:
            return
        if held:
            msg += " (%d similar messages suppressed)"
            args = (*args, held)
        self._logger.log(level, msg, *args, exc_info=exc_info)

    def warning(self, key: str, msg: str, *args: Any) -> None:
        self.log(logging.WARNING, key, msg, *args)

    def error(self, key: str, msg: str, *args: Any, exc_info: bool = False) -> None:
        self.log(logging.ERROR, key, msg, *args, exc_info=exc_info)
