"""Bodies that Python's json module accepts, or fails on with the wrong exception, refused as
400 problems by `strict_json.loads` (each of these was a 5xx or a stored `NaN` before)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from success_metrics import strict_json
from success_metrics.errors import MalformedJsonError


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b'{"n": 1' + b"0" * 5000 + b"}", "more than 4,300 digits"),
        (b'{"n": -' + b"9" * 4301 + b"}", "more than 4,300 digits"),
        (b'{"n": 1e999}', "1e999 is too large for a number"),
        (b'{"n": -1e999}', "-1e999 is too large"),
        (b'{"n": NaN}', "NaN is not a JSON number"),
        (b'{"n": Infinity}', "Infinity is not a JSON number"),
        (b"[-Infinity]", "-Infinity is not a JSON number"),
        (b'{"s": "\\ud800"}', "lone UTF-16 surrogate"),
        (b'{"\\udfff": 1}', "lone UTF-16 surrogate"),
        (b'[["\\udc00x"]]', "lone UTF-16 surrogate"),
        (b"[" * 100_000 + b"]" * 100_000, "nests too deeply"),
        (b"\xff\xfe{}", "not valid JSON"),
        (b'{"a": 1,}', "not valid JSON"),
        (b"", "not valid JSON"),
    ],
)
def test_what_is_not_json_is_a_malformed_json_problem(raw: bytes, fragment: str) -> None:
    with pytest.raises(MalformedJsonError, match=fragment.replace("(", r"\(")) as refused:
        strict_json.loads(raw)
    assert refused.value.status == 400


@pytest.mark.parametrize(
    "raw",
    [
        b'{"emoji": "\\ud83d\\ude00", "plain": "\xf0\x9f\x98\x80"}',  # a surrogate pair is text
        b'{"n": 1' + b"0" * 4299 + b"}",  # at the limit
        b'{"x": 1.7976931348623157e308, "y": 5e-324, "z": -0.0}',
        b'{"c": "\\u0000\\u001f"}',  # control characters are JSON (the writers handle them)
    ],
)
def test_json_at_the_edges_is_accepted_as_json_parses_it(raw: bytes) -> None:
    assert strict_json.loads(raw) == json.loads(raw)


@settings(max_examples=300, deadline=None)
@given(st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(exclude_categories=["Cs"])),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=30,
))  # fmt: skip
def test_every_json_document_reads_back_as_itself(value: object) -> None:
    for ensure_ascii in (True, False):
        raw = json.dumps(value, ensure_ascii=ensure_ascii).encode()
        assert strict_json.loads(raw) == value
