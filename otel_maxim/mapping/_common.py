"""Small pure helpers shared by the mapping modules: times, ids, attributes (a rate-limited log aside)."""

from __future__ import annotations

import base64
import datetime
import json
import json.scanner
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Generic, TypeVar

from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.util.types import AttributeValue

from otel_maxim import conventions as conv
from otel_maxim._log import RateLimitedLog

_limited = RateLimitedLog(logging.getLogger(__name__))

Attributes = Mapping[str, AttributeValue]

_INF = float("inf")
_INFINITIES = (_INF, -_INF)

# (second, its formatted prefix): one tuple, so a thread never pairs one second with another's text.
_iso_cache: tuple[int, str] = (-1, "")

#: The first and the last nanosecond of the years 1 to 9999: what ISO 8601's four-digit years, and
#: Python's ``datetime`` that maxim-py writes with, hold (a JS ``Date`` holds them all).
_FIRST_NS = -62_135_596_800 * 1_000_000_000
_LAST_NS = 253_402_300_800 * 1_000_000_000 - 1
#: The seconds that ``strftime`` writes as ``datetime`` does: from the year 1000 (its ``%Y`` writes
#: earlier years without leading zeros) to the end of 9999.
_FIRST_STRFTIME_SECOND = -30_610_224_000
_LAST_STRFTIME_SECOND = _LAST_NS // 1_000_000_000
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def iso(ns: int) -> str:
    """UTC ISO-8601 with an explicit offset, byte for byte as maxim-py writes it (``datetime.isoformat``).

    ``1780308000123456789`` -> ``"2026-06-01T10:00:00.123456+00:00"``; a whole second has no
    fraction: ``"2026-06-01T10:00:00+00:00"``.  Any other time (a float, a year past 9999) is
    written by :func:`_iso_of_other`: one span's odd time must not cost its trace.
    """
    global _iso_cache
    seconds, rest = divmod(ns, 1_000_000_000)
    cached_second, prefix = _iso_cache
    if seconds != cached_second:  # one strftime per second of span time, not per timestamp
        if type(ns) is not int or not _FIRST_STRFTIME_SECOND <= seconds <= _LAST_STRFTIME_SECOND:
            return _iso_of_other(ns)
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
        _iso_cache = (seconds, prefix)
    micros = rest // 1000
    if not micros:
        return prefix + "+00:00"
    try:
        # The six digits as two looked-up halves: a third faster than "%06d" (or a format spec).
        return f"{prefix}.{_DIGITS[micros // 1000]}{_DIGITS[micros % 1000]}+00:00"
    except TypeError:  # a float in a second already cached: the check above is only made per second
        return _iso_of_other(ns)


def _iso_of_other(ns: object) -> str:
    """:func:`iso` of a time that is not a whole number of nanoseconds from the year 1000 to 9999."""
    whole = whole_ns(ns)
    if _FIRST_STRFTIME_SECOND <= whole // 1_000_000_000 <= _LAST_STRFTIME_SECOND:
        return iso(whole)
    return (_EPOCH + datetime.timedelta(microseconds=whole // 1000)).isoformat()


def whole_ns(ns: object) -> int:
    """A span's time as whole nanoseconds from the year 1 to 9999.

    The SDK takes any number as a time: a float (``time.time() * 1e9``) is read as whole
    nanoseconds.  A time out of those years (microseconds taken for nanoseconds: the year
    58869) is no ISO 8601 date: it is clamped to the nearest one, with a warning; what is no
    number at all (NaN) reads as 0, as a span without a time does.
    """
    if type(ns) is int and _FIRST_NS <= ns <= _LAST_NS:
        return ns
    try:
        whole: int = int(ns)  # type: ignore[call-overload]
    except OverflowError:  # an infinity: past one end, clamped below
        whole = _LAST_NS + 1 if ns > 0 else _FIRST_NS - 1  # type: ignore[operator]
    except (TypeError, ValueError):
        _limited.warning("time", "A span time of %r ns is not a number; writing it as 0 (1970).", ns)
        return 0
    clamped = min(max(whole, _FIRST_NS), _LAST_NS)
    if clamped != whole:
        _limited.warning(
            "time",
            "A span time of %r ns is past the years ISO 8601 can write (1 to 9999); writing it as %s.",
            ns,
            "the year 1" if clamped == _FIRST_NS else "the end of 9999",
        )
    return clamped


#: "000" to "999".
_DIGITS = tuple("%03d" % n for n in range(1000))  # noqa: UP031


def attributes_of(span: ReadableSpan) -> Attributes:
    """The span's attributes as a plain mapping, read once.

    ``ReadableSpan.attributes`` wraps the SDK's ``BoundedAttributes`` in a
    ``MappingProxyType``; every lookup through both costs several Python calls.
    The mapping reads each span's attributes dozens of times, so it reads the
    plain dict underneath when there is one (finished spans are no longer
    written to), and falls back to the public property otherwise.
    """
    try:
        plain = span._attributes._dict  # type: ignore[union-attr]
    except AttributeError:
        plain = None
    if type(plain) is dict:
        return plain
    return span.attributes or {}


def events_of(span: ReadableSpan) -> Sequence[Event]:
    """The span's events, read once.

    ``ReadableSpan.events`` copies the SDK's ``BoundedList`` through its lock (a list, then a
    tuple of it) on every read; a finished span's events no longer change, so the deque inside
    is read when there is one, and the public property otherwise.
    """
    try:
        queue = span._events._dq  # type: ignore[attr-defined]
    except AttributeError:
        queue = None
    if type(queue) is deque:
        return tuple(queue)
    return span.events


def trace_hex(trace_id: int) -> str:
    return "%032x" % trace_id  # noqa: UP031 - twice as fast as format() or an f-string


def span_hex(span_id: int) -> str:
    return "%016x" % span_id  # noqa: UP031 - twice as fast as format() or an f-string


def text(value: AttributeValue | None) -> str | None:
    """An attribute as text: strings as they are, anything else JSON-encoded."""
    if value is None or isinstance(value, str):
        return value
    return json_text(value)


def as_text(value: object) -> str:
    """Like :func:`text`, with ``""`` for ``None``: what a text field of a record holds."""
    if type(value) is str:
        return value
    return "" if value is None else json_text(value)


def metadata_text(value: object) -> str:
    """A metadata value as maxim-py writes one: text as it is, anything else as JSON text (``None``: ``"null"``).

    Not :func:`as_text`, whose ``""`` for ``None`` is right for a text field but would make a
    metadata entry set to ``None`` read as an empty string.
    """
    if type(value) is str:
        return value
    return json_text(value)


def json_text(value: Any) -> str:
    """``value`` as JSON text, as maxim-py encodes metadata and parameters (``0.2`` -> ``"0.2"``).

    Sequences become lists; NaN and infinities read ``NaN``/``Infinity`` (this is text inside
    a record, not JSON of the record, which stays strict); bytes are base64 (as in OTLP JSON, so a
    span reads the same made here or received over OTLP); unknown objects use ``str()``.
    An integer too long for Python to write in decimal (over 4300 digits) is written in hex
    (``0x...``); a sequence holding one reads as a placeholder, and so does a value nested
    deeper than Python's recursion limit lets ``json.dumps`` go (the SDK keeps any depth): a
    placeholder, not an exception, which would cost the whole trace.
    """
    kind = type(value)
    try:
        if kind is int:  # the common cases, as json.dumps writes them, without its machinery
            return str(value)
        if kind is bool:
            return "true" if value else "false"
        if kind is float and value == value and value not in _INFINITIES:
            return repr(value)
        if kind is bytes:
            return base64.b64encode(value).decode("ascii")  # as OTLP carries bytes
        if kind is tuple:
            value = list(value)
        return json.dumps(value, default=_unknown_as_text)
    except ValueError:  # sys.get_int_max_str_digits(): the only ValueError these raise
        if kind is int:
            return hex(value)
        return "<a value holding an integer too long to write in decimal>"
    except RecursionError:  # as parse_json reads JSON nested too deeply as no value
        return "<a value nested too deeply to write>"


def _unknown_as_text(value: object) -> str:
    return base64.b64encode(value).decode("ascii") if isinstance(value, bytes) else str(value)


#: The standard library's C scanner: what ``json.loads`` runs, without the Python steps around
#: it (about half the time of parsing a message list); ``None`` where the C module is missing.
_make_scanner: Callable[[json.JSONDecoder], Callable[[str, int], tuple[Any, int]]] | None = getattr(
    json.scanner, "c_make_scanner", None
)
_scan_json = None if _make_scanner is None else _make_scanner(json.JSONDecoder())


def parse_json(raw: str) -> Any:
    """``raw`` parsed as JSON, or ``None`` if it is not JSON (or nests too deeply to parse).

    Attribute values come from the application and the instrumentations: a value that is
    not JSON, or JSON nested deeper than the parser's recursion limit, is read as no value.
    The value is what ``json.loads`` gives: a text that the scanner reads whole is one JSON
    value; anything else (whitespace around it, a byte-order mark, text after it, no JSON
    at all) is left to ``json.loads`` itself.
    """
    try:
        if _scan_json is not None:
            try:
                value, end = _scan_json(raw, 0)
            except StopIteration:
                pass  # not a JSON value at the first character: json.loads decides
            else:
                if end == len(raw):
                    return value
        return json.loads(raw)
    except (ValueError, RecursionError):
        return None


_T = TypeVar("_T")


class PerKeySet(Generic[_T]):
    """``work(keys)`` for a span's attribute keys, worked out once per set of keys and remembered.

    What a span's keys alone decide (which of them to read, and as what) repeats: spans of one
    kind from one instrumentation have the same keys.  Keys in another order are another set.
    Keys come from the application, which may make them up per span, so what is remembered is
    bounded: at most ``limit`` sets, ``max_chars`` characters of keys in all, and no set of more
    than ``max_keys`` keys (worked out every time).  When a new set does not fit, the memory
    starts again empty, so the sets that do repeat are soon remembered again.
    """

    def __init__(
        self,
        work: Callable[[tuple[str, ...]], _T],
        *,
        limit: int = 256,
        max_chars: int = 256 * 1024,
        max_keys: int = 256,
    ) -> None:
        self.work = work
        self.limit = limit
        self.max_chars = max_chars
        self.max_keys = max_keys
        self.known: dict[tuple[str, ...], _T] = {}
        self.chars = 0

    def __call__(self, attributes: Attributes) -> _T:
        keys = tuple(attributes)
        found = self.known.get(keys)
        if found is None:
            found = self.work(keys)
            self._remember(keys, found)
        return found

    def _remember(self, keys: tuple[str, ...], found: _T) -> None:
        if len(keys) > self.max_keys:
            return
        chars = sum(map(len, keys))
        if chars > self.max_chars:
            return
        if len(self.known) >= self.limit or self.chars + chars > self.max_chars:
            self.known = {}  # a new dict, not clear(): a thread reading the old one reads on safely
            self.chars = 0
        self.known[keys] = found
        self.chars += chars


def prefixed(attributes: Attributes, prefix: str) -> dict[str, str]:
    """``{key: text}`` for every attribute named ``<prefix><key>`` (tags): one set to ``None`` is no tag."""
    if not attributes:
        return {}
    n = len(prefix)
    return {k[n:]: as_text(v) for k, v in attributes.items() if k.startswith(prefix) and len(k) > n and v is not None}


def first(attributes: Attributes, keys: Iterable[str]) -> AttributeValue | None:
    for key in keys:
        value = attributes.get(key)
        if value is not None and value != "":
            return value
    return None


def is_consumed(key: str) -> bool:
    return key in conv.CONSUMED or key.startswith(conv.CONSUMED_PREFIXES)
