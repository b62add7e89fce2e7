"""Small pure helpers shared by the mapping modules: times, ids, attributes."""

from __future__ import annotations

import base64
import json
import json.scanner
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Generic, TypeVar

from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.util.types import AttributeValue

from otel_maxim import conventions as conv

Attributes = Mapping[str, AttributeValue]

_INF = float("inf")
_INFINITIES = (_INF, -_INF)

# (second, its formatted prefix): one tuple, so a thread never pairs one second with another's text.
_iso_cache: tuple[int, str] = (-1, "")


def iso(ns: int) -> str:
    """UTC ISO-8601 with an explicit offset, byte for byte as maxim-py writes it (``datetime.isoformat``).

    ``1780308000123456789`` -> ``"2026-06-01T10:00:00.123456+00:00"``; a whole second has no
    fraction: ``"2026-06-01T10:00:00+00:00"``.
    """
    global _iso_cache
    seconds, rest = divmod(ns, 1_000_000_000)
    cached_second, prefix = _iso_cache
    if seconds != cached_second:  # one strftime per second of span time, not per timestamp
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
        _iso_cache = (seconds, prefix)
    micros = rest // 1000
    if not micros:
        return prefix + "+00:00"
    # The six digits as two looked-up halves: a third faster than "%06d" (or a format spec).
    return f"{prefix}.{_DIGITS[micros // 1000]}{_DIGITS[micros % 1000]}+00:00"


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


def json_text(value: Any) -> str:
    """``value`` as JSON text, as maxim-py encodes metadata and parameters (``0.2`` -> ``"0.2"``).

    Sequences become lists; NaN and infinities read ``NaN``/``Infinity`` (this is text inside
    a record, not JSON of the record, which stays strict); bytes are base64 (as in OTLP JSON, so a
    span reads the same made here or received over OTLP); unknown objects use ``str()``.
    An integer too long for Python to write in decimal (over 4300 digits) is written in hex
    (``0x...``); a sequence holding one reads as a placeholder.
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
    """``{key: text}`` for every attribute named ``<prefix><key>``."""
    if not attributes:
        return {}
    n = len(prefix)
    return {k[n:]: as_text(v) for k, v in attributes.items() if k.startswith(prefix) and len(k) > n}


def first(attributes: Attributes, keys: Iterable[str]) -> AttributeValue | None:
    for key in keys:
        value = attributes.get(key)
        if value is not None and value != "":
            return value
    return None


def is_consumed(key: str) -> bool:
    return key in conv.CONSUMED or key.startswith(conv.CONSUMED_PREFIXES)
