"""Where serialized records go: the interface, and the local-file sink.

A sink receives wire lines (no trailing newline) in the order they must be
applied, from the exporter's worker thread, never from an application thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from otel_maxim.sinks.file import FileSink

__all__ = ["FileSink", "Sink"]


@runtime_checkable
class Sink(Protocol):
    """A destination for Maxim record lines."""

    def write(self, lines: Sequence[str]) -> bool:
        """Deliver ``lines`` in order, or keep them safe for a later attempt.

        Returns ``False`` when they could be neither delivered nor kept (the sink
        has logged what was lost).  Must not raise.
        """
        ...

    def flush(self, timeout: float) -> bool:
        """Deliver what is buffered within ``timeout`` seconds; ``False`` if some is left."""
        ...

    def close(self, timeout: float) -> None:
        """Flush within ``timeout`` seconds and release resources; idempotent."""
        ...
