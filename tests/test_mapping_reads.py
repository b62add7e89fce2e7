"""The mapping's fast reads agree with the plain ones: a finished span's attributes and events read past
the SDK's copying properties, JSON read by the C scanner, what is remembered per attribute key, and
timestamps and ids written without datetime and format()."""

from __future__ import annotations

import datetime
import json
import logging
import math
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.sdk.trace import Event, ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanContext, TraceFlags

from otel_maxim._log import RateLimitedLog
from otel_maxim.mapping import _span, genai
from otel_maxim.mapping._common import (
    PerKeySet,
    attributes_of,
    events_of,
    iso,
    json_text,
    parse_json,
    prefixed,
    span_hex,
    trace_hex,
)


def _sdk_span() -> ReadableSpan:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    with provider.get_tracer("t").start_as_current_span("s", attributes={"a": 1, "b": ("x", "y")}) as span:
        span.add_event("first", {"k": "v"})
        span.add_event("second")
    (finished,) = memory.get_finished_spans()
    return finished


def _plain_span() -> ReadableSpan:
    """As the bridge builds them from OTLP: a ReadableSpan with a plain dict and a list of events."""
    context = SpanContext(0x1, 0x2, is_remote=False, trace_flags=TraceFlags(1))
    events = [Event("first", {"k": "v"}, timestamp=1), Event("second", timestamp=2)]
    return ReadableSpan("s", context=context, attributes={"a": 1, "b": ("x", "y")}, events=events)


def test_an_sdk_span_is_read_past_its_properties() -> None:
    span = _sdk_span()
    assert type(attributes_of(span)) is dict and attributes_of(span) == dict(span.attributes or {})
    assert type(events_of(span)) is tuple
    assert [(e.name, dict(e.attributes or {})) for e in events_of(span)] == [("first", {"k": "v"}), ("second", {})]
    assert list(events_of(span)) == list(span.events)


def test_a_span_without_the_sdk_layout_is_read_through_its_properties() -> None:
    span = _plain_span()
    assert dict(attributes_of(span)) == {"a": 1, "b": ("x", "y")}
    assert [e.name for e in events_of(span)] == ["first", "second"]
    assert list(events_of(span)) == list(span.events)


_JSON_TEXTS = [
    '[{"role": "user", "parts": [{"type": "text", "content": "Hi"}]}]',
    '{"a": 1, "a": 2}',  # the last one wins, as in json.loads
    " [1] ",  # whitespace around the value
    "[1]\n",
    "\ufeff[1]",  # a byte-order mark: json.loads refuses it
    "[1] [2]",  # text after the value
    "",
    "not json",
    "NaN",
    '{"x": -Infinity}',
    '{"x": 1e400}',
    '"\\ud800"',  # a lone surrogate, escaped
    "123456789012345678901234567890",  # past 64 bits: an int, not a float
    "-0",
    "1" * 5000,  # past the int digits limit: json.loads raises
    "[" * 100_000,  # past the recursion limit
]


@pytest.mark.parametrize("raw", _JSON_TEXTS, ids=range(len(_JSON_TEXTS)))
def test_json_is_read_as_json_loads_reads_it(raw: str) -> None:
    try:
        expected = json.loads(raw)
    except (ValueError, RecursionError):
        assert parse_json(raw) is None
        return
    got = parse_json(raw)
    assert type(got) is type(expected)
    if isinstance(expected, float) and math.isnan(expected):
        assert math.isnan(got)
    else:
        assert got == expected


def test_flattened_messages_are_found_among_keys_seen_before() -> None:
    keys = {f"test.flat.seen.{i}": 1 for i in range(5)}
    assert not genai._has_flat_messages(keys)
    assert not genai._has_flat_messages(keys)  # remembered for this key set
    assert genai._has_flat_messages({**keys, "gen_ai.prompt.0.content": "Hi"})
    assert genai._has_flat_messages({"llm.output_messages.0.message.role": "assistant", **keys})


def test_tags_and_metadata_of_the_same_keys_read_each_span_s_own_values() -> None:
    attributes = {"test.remembered.plain": 1, "maxim.tags.team": "a", "gen_ai.request.model": "m", "session.id": "s"}
    for value in range(3):  # the key set is remembered after the first; the values are each span's
        attributes = {**attributes, "test.remembered.plain": value, "maxim.tags.team": f"t{value}"}
        assert _span.tags_and_metadata(attributes, genai.GENERATION, 128) == (
            {"team": f"t{value}"},
            {"test.remembered.plain": str(value)},
        )
        # On a plain span an instrumentation's own attributes are metadata (same keys, other answer).
        assert _span.tags_and_metadata(attributes, genai.SPAN, 128) == (
            {"team": f"t{value}"},
            {"test.remembered.plain": str(value), "gen_ai.request.model": "m"},
        )


def test_tags_and_metadata_past_the_remembered_key_sets(monkeypatch: pytest.MonkeyPatch) -> None:
    plain = _span._read_keys[True]
    monkeypatch.setattr(plain, "known", {})
    monkeypatch.setattr(plain, "chars", 0)
    monkeypatch.setattr(plain, "limit", 2)
    for i in range(5):
        attributes = {f"test.unremembered.{i}": i, "maxim.metadata.step": "x"}
        assert _span.tags_and_metadata(attributes, genai.SPAN, 128) == (
            {},
            {"step": "x", f"test.unremembered.{i}": str(i)},
        )
        assert len(plain.known) <= 2
    assert len(plain.known) == 1  # full after two: the memory started again with the fifth


def test_what_per_key_set_remembers_is_bounded_in_characters_and_keys() -> None:
    calls: list[tuple[str, ...]] = []
    memo = PerKeySet(lambda keys: calls.append(keys) or len(keys), max_chars=1000, max_keys=10)
    many = {f"k{i}": 1 for i in range(11)}
    assert memo(many) == memo(many) == 11
    assert len(calls) == 2 and not memo.known  # more keys than max_keys: worked out every time
    long_keys = [{"x" * 400 + str(i): 1} for i in range(5)]
    for attributes in long_keys:
        memo(attributes)
        assert memo.chars <= 1000
    assert len(memo.known) == 1  # the fifth 401-character key set started the memory again
    memo(long_keys[-1])
    assert len(calls) == 2 + 5  # the last set is remembered
    assert memo({"y" * 2000: 1}) == 1 and memo.chars == 401  # a set longer than all it may hold: not kept


@given(st.integers(min_value=0, max_value=253_402_300_799_999_999_999))  # up to the last nanosecond of 9999
def test_a_timestamp_is_written_as_datetime_isoformat_writes_it(ns: int) -> None:
    """maxim-py writes ``datetime.isoformat()`` of a UTC time: no fraction on a whole second, else six digits."""
    seconds, rest = divmod(ns, 1_000_000_000)
    expected = datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).replace(microsecond=rest // 1000)
    assert iso(ns) == expected.isoformat()
    assert iso(seconds * 1_000_000_000 + 999) == expected.replace(microsecond=0).isoformat()  # under a microsecond


@given(st.integers(min_value=1, max_value=2**128 - 1))
def test_ids_are_written_as_fixed_width_lower_case_hex(number: int) -> None:
    assert trace_hex(number) == format(number, "032x")
    assert span_hex(number % 2**64) == format(number % 2**64, "016x")


_LAST_INSTANT = "9999-12-31T23:59:59.999999+00:00"
_FIRST_INSTANT = "0001-01-01T00:00:00+00:00"


@pytest.mark.parametrize(
    ("ns", "expected", "warned"),
    [
        (1_780_308_000_123_456_789.0, "2026-06-01T10:00:00.123456+00:00", False),  # time.time() * 1e9: a float
        (1_780_308_000.5e9, "2026-06-01T10:00:00.500000+00:00", False),
        (True, "1970-01-01T00:00:00+00:00", False),  # 1 ns
        (-1, "1969-12-31T23:59:59.999999+00:00", False),
        (-30_610_224_001 * 10**9, "0999-12-31T23:59:59+00:00", False),  # four digits, as datetime writes it
        (253_402_300_800 * 10**9, _LAST_INSTANT, True),  # the year 10000
        (1_780_308_000_123_456_789 * 1000, _LAST_INSTANT, True),  # microseconds taken for nanoseconds
        (-(10**30), _FIRST_INSTANT, True),
        (1e30, _LAST_INSTANT, True),
        (float("inf"), _LAST_INSTANT, True),
        (float("-inf"), _FIRST_INSTANT, True),
        (float("nan"), "1970-01-01T00:00:00+00:00", True),
    ],
    ids=repr,
)
def test_a_time_that_is_not_whole_nanoseconds_of_the_years_1_to_9999_is_still_an_iso_date(
    ns: float, expected: str, warned: bool, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SDK takes any number as a time: a float is read as whole nanoseconds, a time past what ISO 8601
    (and maxim-py's datetime) writes is clamped with a warning; none of them raises, which cost the trace."""
    from otel_maxim.mapping import _common

    limited = RateLimitedLog(logging.getLogger(_common.__name__))  # a fresh one: no case held back by another
    monkeypatch.setattr(_common, "_limited", limited, raising=False)
    for _ in range(2):  # the second time with its second cached, as the first left it
        with caplog.at_level(logging.WARNING, logger="otel_maxim"):
            assert iso(ns) == expected  # type: ignore[arg-type]
    assert datetime.datetime.fromisoformat(expected)
    assert ("ISO 8601" in caplog.text or "not a number" in caplog.text) is warned


def test_a_value_nested_deeper_than_json_dumps_can_go_is_written_as_a_placeholder() -> None:
    deep: object = "leaf"
    for _ in range(sys.getrecursionlimit() + 100):
        deep = {"k": deep}
    assert json_text(deep) == "<a value nested too deeply to write>"
    assert json_text([deep]) == "<a value nested too deeply to write>"
    assert json_text({"k": {"k": "leaf"}}) == '{"k": {"k": "leaf"}}'


def test_an_attribute_set_to_none_is_null_metadata_and_no_tag() -> None:
    """maxim-py writes a metadata value None as "null"; a tag set to None is no tag (the text "" or
    "null" would read as one)."""
    assert _span.tags_and_metadata({"test.none.retry_of": None}, genai.SPAN, 128) == (
        {},
        {"test.none.retry_of": "null"},
    )
    attributes = {"test.none.plain": None, "maxim.tags.env": None, "maxim.tags.team": "a", "maxim.metadata.step": None}
    assert _span.tags_and_metadata(attributes, genai.SPAN, 128) == (
        {"team": "a"},
        {"step": "null", "test.none.plain": "null"},
    )
    assert prefixed({"maxim.session.tags.env": None, "maxim.session.tags.team": "a"}, "maxim.session.tags.") == {
        "team": "a"
    }
