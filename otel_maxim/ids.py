"""User-chosen ids (sessions, traces) made into ids that Maxim accepts.

Maxim accepts ids matching ``^[A-Za-z0-9_-]+$``; its SDKs silently drop a
record with any other id.  A session id chosen by a user (``user:42``,
``a.b@c.com``, ``Grüße``) is therefore mapped, never dropped, by this rule:

1. An id of 1 to :data:`MAX_ID_LENGTH` characters from ``[A-Za-z0-9_-]`` that
   does not start with the reserved prefixes ``mx-`` or ``mxh-`` is kept as is.
2. Any other id becomes ``mx-`` followed by its UTF-8 bytes, where ``A-Z``,
   ``a-z``, ``0-9`` and ``-`` stand for themselves and every other byte
   (``_`` included) is written ``_`` plus two upper-case hex digits:
   ``user:42`` -> ``mx-user_3A42``, ``a.b@c.com`` -> ``mx-a_2Eb_40c_2Ecom``.
3. If that is longer than :data:`MAX_ID_LENGTH`, the id becomes ``mxh-`` and
   the 64 hex digits of the SHA-256 of its UTF-8 bytes.

Rules 1 and 2 are injective (the escaping can be undone and the reserved
prefixes keep mapped ids apart from kept ones), so two different ids never
share a Maxim id; rule 3 relies on SHA-256, collision-free in practice.
The mapping is deterministic: every process and every service maps the same
id to the same Maxim id.  The original id is kept as a tag where it changed.
"""

from __future__ import annotations

import hashlib
import re
import threading

from otel_maxim._fork import reinit_after_fork

__all__ = [
    "MAX_ID_LENGTH",
    "MAX_SESSION_ID_LENGTH",
    "maxim_id",
    "session_id_problem",
    "shown_id",
    "unmap_id",
    "open_trace_ids",
]

#: Longest id written as is (longer ones are escaped or hashed).
MAX_ID_LENGTH = 128

_VALID = re.compile(rf"[A-Za-z0-9_-]{{1,{MAX_ID_LENGTH}}}")
_ESCAPED_PREFIX = "mx-"
_HASHED_PREFIX = "mxh-"
_KEPT_BYTES = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-")
_BYTE_FORM = tuple(chr(b) if b in _KEPT_BYTES else f"_{b:02X}" for b in range(256))

#: Longest session id that the span processors read from baggage (baggage comes from the outside world).
MAX_SESSION_ID_LENGTH = 256
_CONTROL_CHARACTER = re.compile("[\x00-\x1f\x7f-\x9f]")


def session_id_problem(session_id: str) -> str | None:
    """Why ``session_id`` is refused as a session id from baggage (``"is empty"``, say), or ``None`` if it is not.

    Refused: an empty id, an id longer than :data:`MAX_SESSION_ID_LENGTH`, and an id with
    control characters (C0, DEL, C1).  Other ids are mapped by :func:`maxim_id`, never refused.
    """
    if not session_id:
        return "is empty"
    if len(session_id) > MAX_SESSION_ID_LENGTH:
        return f"is longer than {MAX_SESSION_ID_LENGTH} characters"
    if _CONTROL_CHARACTER.search(session_id) is not None:
        return "has control characters"
    return None


def shown_id(value: str, limit: int = 40) -> str:
    """``value`` for a log message: its ``repr``, of its first ``limit`` characters and ``...`` if it is longer."""
    return repr(value[:limit]) + ("..." if len(value) > limit else "")


def maxim_id(value: str) -> str:
    """Return the Maxim id for the user-chosen id ``value`` (see the module docstring)."""
    if _VALID.fullmatch(value) is not None and not value.startswith((_ESCAPED_PREFIX, _HASHED_PREFIX)):
        return value
    raw = value.encode("utf-8", "surrogatepass")
    if len(_ESCAPED_PREFIX) + len(raw) <= MAX_ID_LENGTH:  # cheap lower bound before escaping
        escaped = _ESCAPED_PREFIX + "".join([_BYTE_FORM[b] for b in raw])
        if len(escaped) <= MAX_ID_LENGTH:
            return escaped
    return _HASHED_PREFIX + hashlib.sha256(raw).hexdigest()


def unmap_id(mapped: str) -> str | None:
    """Undo rule 1 or 2 of :func:`maxim_id`; ``None`` for a hashed id (rule 3), which cannot be undone."""
    if mapped.startswith(_HASHED_PREFIX):
        return None
    if not mapped.startswith(_ESCAPED_PREFIX):
        return mapped
    body = mapped[len(_ESCAPED_PREFIX) :]
    out = bytearray()
    i = 0
    while i < len(body):
        if body[i] == "_":
            out.append(int(body[i + 1 : i + 3], 16))
            i += 3
        else:
            out.append(ord(body[i]))
            i += 1
    return out.decode("utf-8", "surrogatepass")


class OpenTraceIds:
    """The Maxim ids chosen with ``Session.trace(id=...)`` for the traces whose root is open, by OTel trace id.

    The root carries the chosen id (``maxim.trace.id``), but a trace may be sent before its root
    ends: held past the trace timeout, or let go early to stay under the exporter's memory bounds.
    The exporter of the same process looks the id up here then, so the trace is created under it,
    and the root's records, sent later, go to the same trace.  An id is forgotten when its root
    ends (the root carries it from then on); at most ``limit`` are kept, the newest.
    """

    def __init__(self, limit: int = 65_536) -> None:
        self._ids: dict[int, str] = {}
        self._limit = limit
        self._lock = threading.Lock()
        reinit_after_fork(self)

    def _after_fork(self) -> None:
        self._lock = threading.Lock()  # another thread may have held it at the fork

    def open(self, trace_id: int, chosen: str) -> None:
        with self._lock:
            self._ids[trace_id] = chosen
            if len(self._ids) > self._limit:
                del self._ids[next(iter(self._ids))]

    def close(self, trace_id: int) -> None:
        with self._lock:
            self._ids.pop(trace_id, None)

    def get(self, trace_id: int) -> str | None:
        return self._ids.get(trace_id)


#: The process's (see :class:`OpenTraceIds`).
open_trace_ids = OpenTraceIds()
