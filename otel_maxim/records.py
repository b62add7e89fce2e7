"""The Maxim log record: one line of text per record.

The wire form (see ``maxim-records.md``) is not JSON Lines: it is the literal
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
from collections.abc import Mapping
from typing import Any, NamedTuple

__all__ = ["ENTITIES", "ID_PATTERN", "Record", "parse", "serialize"]

#: The entities a record may be addressed to (``storage`` is the large-log pseudo-entity).
ENTITIES = frozenset({"session", "trace", "span", "generation", "retrieval", "tool_call", "storage"})

#: What Maxim accepts as an id.
ID_PATTERN = re.compile(r"[A-Za-z0-9_-]+")

_ACTION_PATTERN = re.compile(r"[a-z][a-z-]*")
_LINE_PATTERN = re.compile(r"([a-z_]+)\{id=([A-Za-z0-9_-]+),action=([a-z][a-z-]*),data=(\{.*\})\}", re.DOTALL)

# Maxim's SDK writes ``json.dumps(data)`` with the default separators and
# ``ensure_ascii``: every line is plain ASCII, so it is valid UTF-8 whatever the data holds.
_encode = json.JSONEncoder(allow_nan=False).encode


class Record(NamedTuple):
    """One Maxim log record: ``entity{id=...,action=...,data={...}}``."""

    entity: str
    id: str
    action: str
    data: Mapping[str, Any]


def serialize(record: Record) -> str:
    """Return the wire line of ``record`` (no trailing newline).

    Raises :class:`ValueError` for an unknown entity, an invalid id or action,
    or data that is not a JSON object.  NaN and infinities never reach the line:
    they are written as the strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"``,
    and lone surrogates become U+FFFD, so the line is strict JSON in valid UTF-8.
    """
    entity, id_, action, data = record
    if entity not in ENTITIES:
        raise ValueError(f"unknown record entity {entity!r}")
    if not isinstance(id_, str) or ID_PATTERN.fullmatch(id_) is None:
        raise ValueError(f"invalid record id {id_!r}: ids must match ^[A-Za-z0-9_-]+$")
    if _ACTION_PATTERN.fullmatch(action) is None:
        raise ValueError(f"invalid record action {action!r}")
    if not isinstance(data, Mapping):
        raise ValueError("record data must be a mapping")
    try:
        body = _encode(data)
    except (ValueError, TypeError):
        body = _encode(_strict(data))
    if "\\ud" in body:
        body = _drop_lone_surrogates(body, data)
    return f"{entity}{{id={id_},action={action},data={body}}}"


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


def _drop_lone_surrogates(body: str, data: Mapping[str, Any]) -> str:
    """Re-encode ``data`` with lone surrogates replaced, if the body has any (rare: a slow path)."""
    fixed = _fix_surrogates(_strict(data))
    body = _encode(fixed)
    return body
