"""The storage helpers that need no emulator: what the mention index records, attribute
serialisation, page cursors."""

from __future__ import annotations

from decimal import Decimal

import pytest

from success_metrics.errors import ValidationFailedError
from success_metrics.stores import items
from success_metrics.stores.mentions import MAX_LENGTH, mentioned


def test_an_event_mentions_id_like_strings_anywhere_in_its_properties() -> None:
    doc = {
        "user_id": "usr_ben",
        "anonymous_id": "dev_1",
        "properties": {
            "inviter_id": "usr_ana",
            "guests": [{"device": "dev_9"}, "gst_2", 7, None, True],
            "note": "two words",
            "self": "usr_ben",
            "long": "x" * (MAX_LENGTH + 1),
            "edge": "y" * MAX_LENGTH,
            "plan": "usr_plan",
            "channel": "referral",
        },
    }
    assert mentioned(doc) == {"usr_ana", "dev_9", "gst_2", "y" * MAX_LENGTH, "dev_1"}


def test_an_anonymous_event_does_not_mention_its_own_anonymous_id() -> None:
    assert mentioned({"anonymous_id": "dev_1", "properties": {"friend": "dev_2"}}) == {"dev_2"}
    assert mentioned({"user_id": "u", "properties": {}}) == set()


def test_attribute_values_round_trip_and_numbers_come_back_plain() -> None:
    values = {"s": "a", "n": 3, "f": Decimal("1.5"), "l": ["x", 2], "m": {"k": 1}, "gone": None}
    serialized = items.serialize(values)
    assert serialized["s"] == {"S": "a"}
    assert serialized["n"] == {"N": "3"}
    assert "gone" not in serialized
    assert items.deserialize(serialized) == {
        "s": "a",
        "n": 3,
        "f": 1.5,
        "l": ["x", 2],
        "m": {"k": 1},
    }


def test_cursors_round_trip_and_anything_else_is_a_400() -> None:
    key = items.serialize({"pk": "org_1", "sk": "dlv_1"})
    cursor = items.encode_cursor(key)
    assert items.decode_cursor(cursor, frozenset({"pk", "sk"})) == key
    for bad in ("", "!!", "e30", "W10", cursor + "x", "A" * 3000):
        with pytest.raises(ValidationFailedError):
            items.decode_cursor(bad, frozenset({"pk", "sk"}))
    with pytest.raises(ValidationFailedError):
        items.decode_cursor(cursor, frozenset({"pk", "sk", "time_sk"}))
    numeric = items.encode_cursor(items.serialize({"pk": "org_1", "sk": 5}))
    with pytest.raises(ValidationFailedError):
        items.decode_cursor(numeric, frozenset({"pk", "sk"}))
