"""The wire line: serialize and parse round-trip, and no value can break or forge a line."""

from __future__ import annotations

import datetime
import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from otel_maxim.records import Record, data_encoder, mapped_line, parse, serialize

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


def test_serialize_matches_the_documented_template(json_style: str) -> None:
    record = Record("trace", "4bf92f3577b34da6a3ce929d0e0e4736", "end", {"endTimestamp": "2026-06-01T10:00:01+00:00"})
    line = serialize(record)
    space = " " if json_style == "standard" else ""  # maxim-py's json.dumps; maxim-js's JSON.stringify
    assert line == (
        "trace{id=4bf92f3577b34da6a3ce929d0e0e4736,action=end,"
        f'data={{"endTimestamp":{space}"2026-06-01T10:00:01+00:00"}}}}'
    )
    assert parse(line) == record


@given(data=st.dictionaries(st.text(max_size=8), json_values, max_size=4))
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_a_mapped_record_is_written_as_serialize_writes_it(json_style: str, data: dict[str, object]) -> None:
    # The exporter writes the mapping's own records without serialize's checks (tests/test_hostile.py
    # checks that every line it writes parses, odd ids included); the line must be the same.
    encode = data_encoder(fast=json_style == "fast")
    for record in (
        Record("session", "mx-user_3A42", "create", data),
        Record("generation", "00f067aa0ba902b7", "result", data),
    ):
        assert mapped_line(record, encode) == serialize(record, encode)


def test_non_ascii_is_escaped_like_maxim_py(json_style: str) -> None:
    line = serialize(Record("trace", "t", "update", {"output": "Grüße \U0001f600"}))
    assert line.isascii()
    assert '"Gr\\u00fc\\u00dfe \\ud83d\\ude00"' in line
    assert parse(line).data["output"] == "Grüße \U0001f600"


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])  # json_style is the same for every example
@given(entity=st.sampled_from(["session", "trace", "span", "generation", "retrieval", "tool_call"]), data=json_values)
def test_any_data_round_trips_and_stays_one_strict_line(json_style: str, entity: str, data: object) -> None:
    record = Record(entity, "abc_DEF-123", "update", {"value": data, "}{\n": "x}\ny"})
    line = serialize(record)
    assert "\n" not in line and "\r" not in line
    line.encode("utf-8")  # valid UTF-8 (lone surrogates were replaced)
    back = parse(line)
    assert (back.entity, back.id, back.action) == (entity, "abc_DEF-123", "update")
    assert set(back.data) == {"value", "}{\n"}
    json.loads(line[line.index("data=") + 5 : -1], parse_constant=pytest.fail)  # no NaN/Infinity tokens


def test_non_finite_numbers_become_strings(json_style: str) -> None:
    back = parse(serialize(Record("span", "s", "update", {"metrics": {"a": math.nan, "b": -math.inf}})))
    assert back.data == {"metrics": {"a": "NaN", "b": "-Infinity"}}


def test_lone_surrogates_become_replacement_characters(json_style: str) -> None:
    back = parse(serialize(Record("span", "s", "update", {"x": "a\ud800b", "ok": "\U0001f600"})))
    assert back.data == {"x": "a\ufffdb", "ok": "\U0001f600"}


@pytest.mark.parametrize("bad_id", ["", "user:42", "a b", "x}", "abc\n", "é", "x\u0663", "\uff21\uff22"])
def test_invalid_ids_are_refused(bad_id: str) -> None:
    with pytest.raises(ValueError, match="invalid record id"):
        serialize(Record("session", bad_id, "create", {}))


class _Claims(str):
    """A str subclass whose character tests say yes: the pattern, not these, decides."""

    def isalnum(self) -> bool:
        return True

    def isascii(self) -> bool:
        return True


def test_an_id_that_is_a_str_subclass_is_checked_against_the_pattern() -> None:
    with pytest.raises(ValueError, match="invalid record id"):
        serialize(Record("session", _Claims("user:42"), "create", {}))
    assert serialize(Record("session", _Claims("user-42"), "create", {})).startswith("session{id=user-42,")


@pytest.mark.parametrize(
    "line",
    [
        "",
        "trace{id=t,action=end,data=[]}",
        "nope{id=t,action=end,data={}}",
        "trace{id=t:1,action=end,data={}}",
        'trace{id=t,action=end,data={"a": NaN}}',
        "trace{id=t,action=end,data={}",
    ],
)
def test_parse_rejects_what_is_not_a_record(line: str) -> None:
    with pytest.raises(ValueError):
        parse(line)


def test_unknown_entity_and_bad_action_are_refused() -> None:
    with pytest.raises(ValueError):
        serialize(Record("user", "x", "create", {}))
    with pytest.raises(ValueError):
        serialize(Record("trace", "x", "create,data={}}", {}))


def test_a_circular_record_is_refused_with_a_value_error(json_style: str) -> None:
    """Only a redact callback could build one; the exporter logs a ValueError and goes on."""
    data: dict[str, object] = {"name": "x"}
    data["self"] = data
    with pytest.raises(ValueError, match="circular"):
        serialize(Record("trace", "t1", "update", data))
    # The encoder is shared: the next record is not affected.
    assert parse(serialize(Record("trace", "t1", "update", {"name": "x"}))).data == {"name": "x"}


#: Every kind of value the mapping makes (and a few that only a redact callback could add).
_EVERY_KIND = {"s": 'é\n"', "i": -3, "f": 0.1, "b": [True, False, None], "d": {"k": [1.5e300, {}]}, "big": 2**70}


@pytest.mark.usefixtures("standard_json")
def test_encoding_is_json_dumps_byte_for_byte() -> None:
    """What maxim-py writes: json.dumps with its defaults."""
    data = _EVERY_KIND
    assert serialize(Record("span", "s1", "update", data)) == f"span{{id=s1,action=update,data={json.dumps(data)}}}"


def test_fast_encoding_is_compact_ascii_json() -> None:
    """What maxim-js writes (JSON.stringify: no spaces), kept ASCII; numbers may be spelled differently."""
    fast = data_encoder(fast=True)
    plain = {"name": "chat gpt-4o", "tags": {"a": "b"}, "n": [1, -2, 3.25], "ok": True, "small": 1e-05}
    assert fast(plain).replace("0.00001", "1e-05") == json.dumps(plain, separators=(",", ":"))
    assert '"small":0.00001' in fast(plain)  # orjson's spelling: orjson wrote it
    assert json.loads(fast(_EVERY_KIND)) == _EVERY_KIND  # null, non-ASCII and a huge int go the standard way
    assert fast(_EVERY_KIND).isascii() and ", " not in fast(_EVERY_KIND)
    exotic = {"when": datetime.datetime(2026, 1, 2, 3, 4, 5), "what": _Custom(), "huge": 2**64, "pair": (1, 2)}
    assert json.loads(fast(exotic)) == json.loads(data_encoder(fast=False)(exotic))


class _Custom:
    def __str__(self) -> str:
        return "custom"


def _typed(value: object) -> object:
    """A parsed JSON value with its types spelled out, so that 1, 1.0 and true do not compare equal."""
    if isinstance(value, dict):
        return {key: _typed(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_typed(item) for item in value]
    return (type(value).__name__, value)


@given(data=json_values)
def test_both_encoders_write_the_same_json(data: object) -> None:
    """Whatever the data, the fast encoder's JSON says what the standard one's says, types included."""
    value = {"value": data}
    standard, fast = data_encoder(fast=False)(value), data_encoder(fast=True)(value)
    assert fast.isascii()
    parsed_fast = json.loads(fast, parse_constant=pytest.fail)
    assert _typed(parsed_fast) == _typed(json.loads(standard, parse_constant=pytest.fail))
