"""What may leave the system, and in what form (SPEC §4, consent and anonymisation).

- No analytics consent (`consent.analytics` is not true) means nothing goes to Mixpanel or GA4.
- Users in the EU/EEA (outermost regions with their own country codes included), users whose
  country is not known (unless the organization turned that off), and every user of an
  organization set to "anonymise all", are anonymised first: user ids become a keyed hash
  (HMAC-SHA256 with the organization's key, so the same user keeps the same pseudonym and joins
  still work, but it cannot be reversed without the key), the IP address and user agent are
  dropped, free-text personal properties (email, phone, name, address...) are removed at any
  depth of the properties, and the location is coarsened to the country.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
from typing import Any

# Where the GDPR applies, the one list every check reads (ISO 3166-1 alpha-2): the EU member
# states, Iceland, Liechtenstein and Norway, and the parts of the EU that have country codes of
# their own: the French outermost regions (GF, GP, MQ, RE, YT, MF), Åland (AX), and the codes
# ISO reserves for the Canary Islands (IC) and Ceuta and Melilla (EA). Azores and Madeira are
# coded PT.
EU_MEMBER_STATES = frozenset(
    [
        *("AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE"),
        *("IT", "LV", "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE"),
    ]
)
EEA_ONLY = frozenset({"IS", "LI", "NO"})
EU_TERRITORIES_WITH_OWN_CODES = frozenset({"GF", "GP", "MQ", "RE", "YT", "MF", "AX", "IC", "EA"})
EU_EEA = EU_MEMBER_STATES | EEA_ONLY | EU_TERRITORIES_WITH_OWN_CODES
# Property names that carry free-text personal data; matched case-insensitively, and any name
# containing one of the PII_PARTS too (e.g. "contact_email", "billing_phone").
PII_NAMES = frozenset(
    {
        "name",
        "first_name",
        "last_name",
        "full_name",
        "surname",
        "address",
        "postcode",
        "zip",
        "dob",
        "date_of_birth",
        "ip",
        "user_agent",
    }
)
PII_PARTS = ("email", "phone", "mobile_number", "street", "address")
# Properties that point at another user: pseudonymised with the same key.
USER_REFERENCES = frozenset({"supplier_id", "inviter_id", "invitee_id", "referrer_id", "inviter"})


def has_consent(doc: dict[str, Any], purpose: str) -> bool:
    consent = doc.get("consent") or {}
    return consent.get(purpose) is True


def has_analytics_consent(doc: dict[str, Any]) -> bool:
    return has_consent(doc, "analytics")


def needs_anonymisation(
    doc: dict[str, Any], anonymise_all: bool = False, anonymise_unknown: bool = True
) -> bool:
    """EU/EEA users always; users of unknown country unless the organization chose otherwise
    (the default is the safe side: nobody can tell they are not in the EU)."""
    country = (doc.get("context") or {}).get("country")
    if anonymise_all:
        return True
    if not isinstance(country, str) or not country.strip():
        return anonymise_unknown
    return country.strip().upper() in EU_EEA


def pseudonym(key: bytes, value: str) -> str:
    return "anon_" + hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()[:32]


def _is_pii(name: str) -> bool:
    lowered = name.lower()
    return lowered in PII_NAMES or any(part in lowered for part in PII_PARTS)


def anonymise(doc: dict[str, Any], key: bytes) -> dict[str, Any]:
    """A copy of the event document that is safe to send for an EU/EEA user."""
    out = copy.deepcopy(doc)
    for field in ("user_id", "anonymous_id"):
        if out.get(field):
            out[field] = pseudonym(key, str(out[field]))
    context = dict(out.get("context") or {})
    for field in ("ip", "user_agent", "region"):
        context.pop(field, None)
    out["context"] = context
    out["properties"] = _without_pii(out.get("properties") or {}, key)
    return out


def _without_pii(value: Any, key: bytes) -> Any:
    """`value` with personal fields dropped from every object at every depth, and references
    to other users pseudonymised (properties nest at most 32 levels: recursion is bounded)."""
    if isinstance(value, list):
        return [_without_pii(item, key) for item in value]
    if not isinstance(value, dict):
        return value
    kept = {}
    for name, item in value.items():
        if _is_pii(str(name)):
            continue
        is_reference = name in USER_REFERENCES and isinstance(item, str)
        kept[name] = pseudonym(key, item) if is_reference else _without_pii(item, key)
    return kept


def outbound(
    doc: dict[str, Any],
    key: bytes,
    *,
    analytics: bool = False,
    requires: str | None = None,
    anonymise_all: bool = False,
    anonymise_unknown: bool = True,
) -> dict[str, Any] | None:
    """The form of `doc` a destination may receive, or None when it must not receive it.

    `requires` is the consent purpose the destination needs (`analytics` for Mixpanel and GA4,
    a customer webhook's own choice); `analytics=True` is the same as requires="analytics".
    """
    purpose = "analytics" if analytics else requires
    if purpose is not None and not has_consent(doc, purpose):
        return None
    if needs_anonymisation(doc, anonymise_all, anonymise_unknown):
        return anonymise(doc, key)
    return doc
