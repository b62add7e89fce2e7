"""A per-thread mark of being inside our own work, where user code (a redact callback, a sink) runs.

Such code may call back into what runs it (shut it down, flush it); waiting there for the work
under way would be waiting for this very thread, so the call needs to know.
"""

from __future__ import annotations

import threading

__all__ = ["InsideMark"]


class InsideMark:
    """``with mark:`` marks this thread for the block (blocks may nest); ``mark.on`` says whether it is marked."""

    __slots__ = ("_local",)

    def __init__(self) -> None:
        self._local = threading.local()

    @property
    def on(self) -> bool:
        return getattr(self._local, "depth", 0) > 0

    def __enter__(self) -> None:
        self._local.depth = getattr(self._local, "depth", 0) + 1

    def __exit__(self, *exc_info: object) -> None:
        self._local.depth -= 1
