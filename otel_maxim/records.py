"""The Maxim log record: one line of text per record.

The wire form (what maxim-py 3.14.20 posts to Maxim's log API) is not JSON Lines: it is the literal
template ``<entity>{id=<id>,action=<action>,data=<JSON object>}``, where only
``data`` is JSON.  :func:`serialize` writes that line and :func:`parse` reads it
back; the two round-trip.

Ids must match ``^[A-Za-z0-9_-]+$`` (Maxim's SDKs drop a record whose id does
not); :func:`serialize` refuses such an id with :class:`ValueError` instead of
writing a line that Maxim would silently drop.  User-chosen ids are made valid
beforehand by :func:`otel_maxim.ids.maxim_id`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any, NamedTuple

__all__ = [
    "ENTITIES",
    "ID_PATTERN",
    "ORJSON_AVAILABLE",
    "RawRecord",
    "Record",
    "data_encoder",
    "fit_record",
    "parse",
    "serialize",
]

#: What replaces the end of a truncated text field; the numbers say how much was kept.
TRUNCATION_MARKER = "...[truncated by otel_maxim: kept {kept} of {total} characters]"

#: The entities a record may be addressed to (``storage`` is the large-log pseudo-entity).
ENTITIES = frozenset({"session", "trace", "span", "generation", "retrieval", "tool_call", "storage"})

#: What Maxim accepts as an id.
ID_PATTERN = re.compile(r"[A-Za-z0-9_-]+")

_ACTION_PATTERN = re.compile(r"[a-z][a-z-]*")
_LINE_PATTERN = re.compile(r"([a-z_]+)\{id=([A-Za-z0-9_-]+),action=([a-z][a-z-]*),data=(\{.*\})\}", re.DOTALL)

# Maxim's SDKs write ``data`` in one of two styles, and Maxim reads both: maxim-py with
# ``json.dumps(data)`` (``", "`` and ``": "`` between items, ``\\uXXXX`` escapes), maxim-js with
# ``JSON.stringify(data)`` (no spaces).  The standard library writes maxim-py's bytes; orjson
# (the ``fast`` extra) writes as maxim-js does, except that text stays ASCII here too.  Either
# way every line is plain ASCII, so valid UTF-8 whatever the data holds; each exporter writes
# one style (``MaximSpanExporter(fast_json=...)``, ``MAXIM_FAST_JSON``).
_orjson: ModuleType | None
try:
    import orjson as _orjson
except ImportError:  # the ``fast`` extra is not installed
    _orjson = None

#: ``True`` when orjson can write records' data: installed (the ``fast`` extra, or another
#: package's dependency), and recent enough to have the options used here.
ORJSON_AVAILABLE = _orjson is not None and all(
    hasattr(_orjson, option)
    for option in ("OPT_PASSTHROUGH_SUBCLASS", "OPT_PASSTHROUGH_DATACLASS", "OPT_PASSTHROUGH_DATETIME")
)

_encode = json.JSONEncoder(allow_nan=False).encode  # the length of a string as the line holds it (see fit_record)


def data_encoder(*, fast: bool, compact: bool | None = None) -> Callable[[Any], str]:
    """What :func:`serialize` writes a record's data with: ``data`` -> its JSON text, ASCII only.

    ``fast=False``: the standard library; by default with maxim-py's spaces (``json.dumps``).
    ``fast=True``: orjson (:data:`ORJSON_AVAILABLE` must be true), compact as maxim-js writes.
    ``compact`` overrides the style (the standard library writing maxim-js's style).  What orjson
    writes differently from the standard library is handed to it instead: NaN and infinities
    (orjson writes ``null``; any ``null`` in its output sends the record the standard way),
    non-ASCII text, lone surrogates, integers past 64 bits, non-string keys, subclasses,
    dataclasses and datetimes; enums, which orjson writes as their value, do not occur in the
    mapping's records (an exporter with a ``redact`` callback, the one way to add any object,
    uses the standard library).  Either way NaN and infinities become the strings ``"NaN"``,
    ``"Infinity"`` and ``"-Infinity"``, lone surrogates U+FFFD, other objects ``str()``; data that
    is circular or nested too deeply raises :class:`ValueError`.
    """
    if compact is None:
        compact = fast
    separators = (",", ":") if compact else (", ", ": ")
    checked = json.JSONEncoder(allow_nan=False, separators=separators)
    unchecked = _one_shot_encoder(checked)

    def standard(data: Any) -> str:
        try:
            body = unchecked(data)
        except (ValueError, TypeError, RecursionError):
            try:
                body = checked.encode(_strict(data))
            except RecursionError:
                raise ValueError("record data is circular or nested too deeply") from None
        if "\\ud" in body:
            body = checked.encode(_fix_surrogates(_strict(data)))  # rare: a slow path only for lone surrogates
        return body

    if not fast:
        return standard
    if _orjson is None or not ORJSON_AVAILABLE:
        raise ValueError("fast JSON needs orjson (the 'fast' extra: pip install '.[fast]' in a checkout of otel_maxim)")
    dumps = _orjson.dumps
    # Subclasses, dataclasses and datetimes are left to the standard way, which writes them as
    # the standard library does (orjson would write them its own way).
    options = _orjson.OPT_PASSTHROUGH_SUBCLASS | _orjson.OPT_PASSTHROUGH_DATACLASS | _orjson.OPT_PASSTHROUGH_DATETIME

    def with_orjson(data: Any) -> str:
        try:
            text: str = dumps(data, option=options).decode()
        except TypeError:  # orjson.JSONEncodeError
            return standard(data)
        # Checked on the text, not the bytes: ``in`` on bytes first tries its argument as an
        # integer and pays for the exception, and ``isascii`` of a str is known without a scan.
        if "null" in text or not text.isascii():
            return standard(data)
        return text

    return with_orjson


def _one_shot_encoder(encoder: json.JSONEncoder) -> Callable[[Any], str]:
    """``encoder.encode`` without the C encoder that ``JSONEncoder.encode`` builds anew on every call.

    Building it costs as much as encoding a small record, so it is built once.  It has no
    circular-reference check: the mapping's records cannot hold a cycle, and a record that does
    (only a ``redact`` callback could make one) fails with ``RecursionError`` and takes the
    checked way.  Where the C module is missing, this is ``encoder.encode`` itself.
    """
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return encoder.encode
    c_encoder = make(
        None,  # no cycle check (see above)
        encoder.default,
        json.encoder.encode_basestring_ascii,
        None,  # indent
        encoder.key_separator,
        encoder.item_separator,
        False,  # sort_keys
        False,  # skipkeys
        False,  # allow_nan
    )
    return lambda data: "".join(c_encoder(data, 0))


#: What :func:`serialize` uses unless told otherwise.
_encode_data = data_encoder(fast=ORJSON_AVAILABLE)
#: The actions the mapping writes: these skip the pattern check (any other is checked against it).
_MAPPING_ACTIONS = frozenset(
    {
        *("create", "update", "end", "result", "error"),
        *("add-span", "add-generation", "add-tool-call", "add-retrieval", "add-event", "add-error"),
        *("upload-attachment", "add-attachment"),
    }
)


class Record(NamedTuple):
    """One Maxim log record: ``entity{id=...,action=...,data={...}}``."""

    entity: str
    id: str
    action: str
    data: Mapping[str, Any]


#: A record as the mapping makes it: the plain tuple ``(entity, id, action, data)`` that a
#: :class:`Record` names.  Making a named tuple costs four times as much as a plain one (its
#: ``__new__`` is Python code), and the mapping makes about four records per span: plain tuples
#: took the exporter's work per span down by a twentieth.  What a ``redact`` callback is given is
#: a :class:`Record` (``Record._make(raw)``).
RawRecord = tuple[str, str, str, dict[str, Any]]


def serialize(record: Record | RawRecord, encode: Callable[[Any], str] | None = None) -> str:
    """Return the wire line of ``record`` (no trailing newline); ``encode`` writes its data
    (a :func:`data_encoder`; by default orjson's if available, else the standard library's).

    Raises :class:`ValueError` for an unknown entity, an invalid id or action,
    or data that is not a JSON object.  NaN and infinities never reach the line:
    they are written as the strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"``,
    and lone surrogates become U+FFFD, so the line is strict JSON in valid UTF-8.
    """
    entity, id_, action, data = record
    if entity not in ENTITIES:
        raise ValueError(f"unknown record entity {entity!r}")
    # Hex ids, most of them, pass the quick test (a plain str, ASCII letters and digits only);
    # anything else is checked against the pattern.
    quick = type(id_) is str and id_.isascii() and id_.isalnum()
    if not quick and (not isinstance(id_, str) or ID_PATTERN.fullmatch(id_) is None):
        raise ValueError(f"invalid record id {id_!r}: ids must match ^[A-Za-z0-9_-]+$")
    if action not in _MAPPING_ACTIONS and (not isinstance(action, str) or _ACTION_PATTERN.fullmatch(action) is None):
        raise ValueError(f"invalid record action {action!r}")
    if type(data) is not dict and not isinstance(data, Mapping):
        raise ValueError("record data must be a mapping")
    return mapped_line(record, encode or _encode_data)


def mapped_line(record: RawRecord | Record, encode: Callable[[Any], str]) -> str:
    """The wire line of a record that the mapping made: :func:`serialize` without its checks.

    The mapping's records are valid by construction: their entities and actions are literals,
    and their ids are hex span and trace ids, user-chosen ids made valid by
    :func:`otel_maxim.ids.maxim_id`, and ``<id>-e<n>`` for events.  Checking each of them again
    cost about a twentieth of the exporter's work per span.  A record from anywhere else (what
    a ``redact`` callback returns) goes through :func:`serialize`.
    """
    entity, id_, action, data = record
    return f"{entity}{{id={id_},action={action},data={encode(data)}}}"


def parse(line: str) -> Record:
    """Read one wire line back into a :class:`Record`; :class:`ValueError` if it is not one."""
    match = _LINE_PATTERN.fullmatch(line.rstrip("\r\n"))
    if match is None:
        raise ValueError(f"not a Maxim record line: {line[:80]!r}")
    entity, id_, action, body = match.groups()
    if entity not in ENTITIES:
        raise ValueError(f"unknown record entity {entity!r}")
    try:
        data = json.loads(body, parse_constant=_reject_constant)
    except ValueError as exc:
        raise ValueError(f"record data is not strict JSON: {exc}") from None
    except RecursionError:  # a line is input: any bad one, however deeply nested, is a ValueError
        raise ValueError("record data is nested too deeply") from None
    if not isinstance(data, dict):
        raise ValueError("record data is not a JSON object")
    return Record(entity, id_, action, data)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not strict JSON")


def _strict(value: Any) -> Any:
    """A JSON-safe copy of ``value``: non-finite floats as strings, unknown objects as ``str()``."""
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if value is None or isinstance(value, (str, int)):
        return value
    if isinstance(value, Mapping):
        return {str(k): _strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(v) for v in value]
    return str(value)


_LONE_SURROGATE = re.compile(r"[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]")


def _fix_str(text: str) -> str:
    return _LONE_SURROGATE.sub("\ufffd", text)


def _fix_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        return _fix_str(value)
    if isinstance(value, Mapping):
        return {_fix_str(str(k)): _fix_surrogates(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_fix_surrogates(v) for v in value]
    return value


def fit_record(record: Record, max_bytes: int, encode: Callable[[Any], str] | None = None) -> Record:
    """``record`` with its longest text fields cut (and marked) so that its wire line fits ``max_bytes``.

    Ids, actions and keys are never touched; only string values shrink, longest
    first (down to a common length), each ending in :data:`TRUNCATION_MARKER` so
    the cut is visible in Maxim.  Structure that alone exceeds the limit
    (thousands of keys) is left as it is.
    """
    data = _strict(record.data)

    def size() -> int:
        return len(serialize(Record(record.entity, record.id, record.action, data), encode))

    excess = size() - max_bytes
    if excess <= 0:
        return Record(record.entity, record.id, record.action, data)
    leaves: list[tuple[int, Any, Any]] = []
    _collect_strings(data, leaves)
    originals = [(container, key, container[key], length) for length, container, key in leaves]
    if not originals:
        return Record(record.entity, record.id, record.action, data)
    # The largest cap (in encoded bytes per field) that removes enough, counting each marker's own bytes.
    marker_cost = len(TRUNCATION_MARKER) + 20
    low, high = 0, max(length for *_, length in originals)
    while low < high:
        cap = (low + high + 1) // 2
        saved = sum(length - cap - marker_cost for *_, length in originals if length > cap)
        low, high = (cap, high) if saved >= excess else (low, cap - 1)
    cap = low
    for _ in range(8):
        for container, key, original, length in originals:
            if length > cap:
                keep = len(original) * cap // length  # proportional: escaped characters cost more bytes
                container[key] = original[:keep] + TRUNCATION_MARKER.format(kept=keep, total=len(original))
            else:
                container[key] = original
        if size() <= max_bytes:
            break
        cap = cap * 4 // 5
    return Record(record.entity, record.id, record.action, data)


def _collect_strings(value: Any, out: list[tuple[int, Any, Any]]) -> None:
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        if isinstance(item, str):
            if len(item) > 64:
                out.append((len(_encode(item)) - 2, value, key))
        elif isinstance(item, (dict, list)):
            _collect_strings(item, out)
