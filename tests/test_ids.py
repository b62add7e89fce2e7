"""The session/trace id mapping rule: deterministic, valid, collision-free, reversible where documented."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from otel_maxim.ids import MAX_ID_LENGTH, maxim_id, unmap_id
from otel_maxim.records import ID_PATTERN


@pytest.mark.parametrize(
    ("given_id", "expected"),
    [
        ("conv-42", "conv-42"),
        ("conv_42", "conv_42"),
        ("user:42", "mx-user_3A42"),
        ("a.b@c.com", "mx-a_2Eb_40c_2Ecom"),
        ("Grüße", "mx-Gr_C3_BC_C3_9Fe"),
        ("mx-abc", "mx-mx-abc"),  # the reserved prefix is escaped, so kept and mapped ids never meet
        ("x_y:z", "mx-x_5Fy_3Az"),
    ],
)
def test_documented_examples(given_id: str, expected: str) -> None:
    assert maxim_id(given_id) == expected


def test_very_long_ids_are_hashed() -> None:
    long_id = "x" * (MAX_ID_LENGTH + 1)
    mapped = maxim_id(long_id)
    assert mapped.startswith("mxh-") and len(mapped) == 4 + 64
    assert unmap_id(mapped) is None


@given(st.text(min_size=1, max_size=60))
def test_mapped_ids_are_valid_and_reversible(value: str) -> None:
    mapped = maxim_id(value)
    assert ID_PATTERN.fullmatch(mapped) and len(mapped) <= MAX_ID_LENGTH + 4
    assert maxim_id(value) == mapped  # deterministic
    if not mapped.startswith("mxh-"):
        assert unmap_id(mapped) == value  # injective: the original can be read back


@given(st.text(min_size=1, max_size=40), st.text(min_size=1, max_size=40))
def test_no_two_ids_share_a_maxim_id(a: str, b: str) -> None:
    if a != b:
        assert maxim_id(a) != maxim_id(b)
