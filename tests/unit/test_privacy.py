"""Consent gates and EU/EEA anonymisation before anything leaves."""

from __future__ import annotations

from typing import Any

from success_metrics.sync import privacy

KEY = b"k" * 32


def event(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "evt_1",
        "type": "couple.vendor_booked",
        "occurred_at": "2026-07-02T18:05:00Z",
        "user_id": "usr_couple_77",
        "user_type": "couple",
        "properties": {
            "supplier_id": "usr_123",
            "vendor_category": "photographer",
            "contact_email": "a@example.com",
            "Phone": "+33 1 23",
            "name": "Amélie",
        },
        "context": {
            "country": "FR",
            "region": "Ile-de-France",
            "device": "desktop",
            "ip": "203.0.113.9",
            "user_agent": "Mozilla/5.0",
            "locale": "fr-FR",
        },
        "consent": {"analytics": True, "marketing": False},
    }
    base.update(changes)
    return base


def test_no_analytics_consent_means_nothing_goes_to_analytics() -> None:
    for consent in ({"analytics": False}, {}, None):
        doc = event(consent=consent)
        assert privacy.outbound(doc, KEY, analytics=True) is None
    assert (
        privacy.outbound(event(consent=None, context={"country": "US"}), KEY, analytics=False)
        is not None
    )


def test_eu_users_are_anonymised_before_leaving() -> None:
    out = privacy.outbound(event(), KEY, analytics=True)

    assert out is not None
    assert out["user_id"] == privacy.pseudonym(KEY, "usr_couple_77")
    assert out["user_id"].startswith("anon_")
    assert "usr_couple_77" not in str(out)
    assert out["context"] == {"country": "FR", "device": "desktop", "locale": "fr-FR"}
    assert out["properties"] == {
        "supplier_id": privacy.pseudonym(KEY, "usr_123"),
        "vendor_category": "photographer",
    }


def test_pseudonyms_are_stable_per_key_and_differ_across_organizations() -> None:
    assert privacy.pseudonym(KEY, "u") == privacy.pseudonym(KEY, "u")
    assert privacy.pseudonym(KEY, "u") != privacy.pseudonym(b"x" * 32, "u")


def test_non_eu_users_leave_unchanged_unless_the_organization_anonymises_all() -> None:
    doc = event(context={"country": "GB", "ip": "203.0.113.9"})

    assert privacy.outbound(doc, KEY, analytics=True) == doc
    assert "ip" not in privacy.outbound(doc, KEY, analytics=True, anonymise_all=True)["context"]


def test_eea_outside_the_eu_counts_and_the_original_is_untouched() -> None:
    doc = event(context={"country": "NO", "ip": "203.0.113.9"})

    out = privacy.outbound(doc, KEY, analytics=True)

    assert out is not None
    assert "ip" not in out["context"]
    assert doc["context"]["ip"] == "203.0.113.9"


def test_personal_fields_are_removed_at_any_depth() -> None:
    doc = event(
        properties={
            "contact": {"email": "a@example.com", "city_note": "kept"},
            "guests": [{"full_name": "Zoë", "table": 4}, {"phone": "+44 1", "table": 5}],
            "deep": {"a": {"b": {"billing_address": "1 Rue", "ok": True}}},
            "supplier_id": "usr_123",
        }
    )
    out = privacy.outbound(doc, KEY, analytics=True)
    assert out is not None
    assert out["properties"] == {
        "contact": {"city_note": "kept"},
        "guests": [{"table": 4}, {"table": 5}],
        "deep": {"a": {"b": {"ok": True}}},
        "supplier_id": privacy.pseudonym(KEY, "usr_123"),
    }
    assert doc["properties"]["contact"]["email"] == "a@example.com"  # the stored copy is intact


def test_eu_territories_with_their_own_codes_are_eu() -> None:
    for country in ("GF", "GP", "MQ", "RE", "YT", "MF", "AX", "IC", "EA", "re", " yt "):
        out = privacy.outbound(
            event(context={"country": country, "ip": "1.2.3.4"}), KEY, analytics=True
        )
        assert out is not None
        assert "ip" not in out["context"], country
        assert out["user_id"].startswith("anon_"), country
    for country in ("GB", "US", "CH", "BL"):  # Saint-Barthélemy is not part of the EU
        assert privacy.outbound(event(context={"country": country}), KEY, analytics=True)[
            "user_id"
        ] == ("usr_couple_77"), country
    assert privacy.EU_MEMBER_STATES <= privacy.EU_EEA
    assert len(privacy.EU_MEMBER_STATES) == 27


def test_events_without_a_country_are_anonymised_unless_the_organization_says_not() -> None:
    for context in ({}, {"country": None}, {"country": ""}, None):
        doc = event(context=context)
        assert privacy.outbound(doc, KEY, analytics=True)["user_id"].startswith("anon_")
        kept = privacy.outbound(doc, KEY, analytics=True, anonymise_unknown=False)
        assert kept["user_id"] == "usr_couple_77"
