"""The wire line: serialize and parse round-trip, and no value can break or forge a line."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from otel_maxim.records import Record, parse, serialize

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


def test_serialize_matches_the_documented_template() -> None:
    record = Record("trace", "4bf92f3577b34da6a3ce929d0e0e4736", "end", {"endTimestamp": "2026-06-01T10:00:01+00:00"})
    line = serialize(record)
    assert line == (
        'trace{id=4bf92f3577b34da6a3ce929d0e0e4736,action=end,data={"endTimestamp": "2026-06-01T10:00:01+00:00"}}'
    )
    assert parse(line) == record


def test_non_ascii_is_escaped_like_maxim_py() -> None:
    line = serialize(Record("trace", "t", "update", {"output": "Grüße \U0001f600"}))
    assert line.isascii()
    assert '"Gr\\u00fc\\u00dfe \\ud83d\\ude00"' in line
    assert parse(line).data["output"] == "Grüße \U0001f600"


@given(entity=st.sampled_from(["session", "trace", "span", "generation", "retrieval", "tool_call"]), data=json_values)
def test_any_data_round_trips_and_stays_one_strict_line(entity: str, data: object) -> None:
    record = Record(entity, "abc_DEF-123", "update", {"value": data, "}{\n": "x}\ny"})
    line = serialize(record)
    assert "\n" not in line and "\r" not in line
    line.encode("utf-8")  # valid UTF-8 (lone surrogates were replaced)
    back = parse(line)
    assert (back.entity, back.id, back.action) == (entity, "abc_DEF-123", "update")
    assert set(back.data) == {"value", "}{\n"}
    json.loads(line[line.index("data=") + 5 : -1], parse_constant=pytest.fail)  # no NaN/Infinity tokens


def test_non_finite_numbers_become_strings() -> None:
    back = parse(serialize(Record("span", "s", "update", {"metrics": {"a": math.nan, "b": -math.inf}})))
    assert back.data == {"metrics": {"a": "NaN", "b": "-Infinity"}}


def test_lone_surrogates_become_replacement_characters() -> None:
    back = parse(serialize(Record("span", "s", "update", {"x": "a\ud800b", "ok": "\U0001f600"})))
    assert back.data == {"x": "a\ufffdb", "ok": "\U0001f600"}


@pytest.mark.parametrize("bad_id", ["", "user:42", "a b", "x}", "abc\n", "é"])
def test_invalid_ids_are_refused(bad_id: str) -> None:
    with pytest.raises(ValueError, match="invalid record id"):
        serialize(Record("session", bad_id, "create", {}))


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


def test_a_circular_record_is_refused_with_a_value_error() -> None:
    """Only a redact callback could build one; the exporter logs a ValueError and goes on."""
    data: dict[str, object] = {"name": "x"}
    data["self"] = data
    with pytest.raises(ValueError, match="circular"):
        serialize(Record("trace", "t1", "update", data))
    # The encoder is shared: the next record is not affected.
    assert serialize(Record("trace", "t1", "update", {"name": "x"})) == 'trace{id=t1,action=update,data={"name": "x"}}'


def test_encoding_is_json_dumps_byte_for_byte() -> None:
    """What maxim-py writes: json.dumps with its defaults, for every kind of value the mapping makes."""
    data = {"s": 'é\n"', "i": -3, "f": 0.1, "b": [True, False, None], "d": {"k": [1.5e300, {}]}, "big": 2**70}
    assert serialize(Record("span", "s1", "update", data)) == f"span{{id=s1,action=update,data={json.dumps(data)}}}"
