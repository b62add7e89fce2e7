"""Locks that a ``fork()`` copies while another thread holds them are held for ever in the child.

The child has only the forking thread: a lock that a worker held at that moment (an export in
progress, a log line being written) is never released there.  Objects that own such locks
register here, and the child calls their ``_after_fork()`` before anything else runs, as the
OTel SDK's batch processors and Python's own logging handlers do.
"""

from __future__ import annotations

import os
import weakref
from typing import Protocol


class _Forkable(Protocol):
    def _after_fork(self) -> None: ...


_registered: weakref.WeakSet[_Forkable] = weakref.WeakSet()  # type: ignore[type-var]


def reinit_after_fork(owner: _Forkable) -> None:
    """Call ``owner._after_fork()`` in every child this process forks, while ``owner`` lives."""
    _registered.add(owner)


def _in_child() -> None:
    for owner in list(_registered):
        owner._after_fork()


if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
    os.register_at_fork(after_in_child=_in_child)
