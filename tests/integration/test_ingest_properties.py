"""Property tests through the real handler: hostile headers and bodies only ever get a 4xx."""

from __future__ import annotations

import json
import time
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devstack.provision import Stack
from success_metrics.models.organizations import CreatedOrganization
from success_metrics.stores import organizations
from tests.support import post_events, signed_headers

fixtures_ok = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=200)


def assert_client_error(response: Any) -> None:
    assert 400 <= response.status < 500, response
    assert response.headers["content-type"] == "application/problem+json"
    assert {"type", "title", "status", "detail"} <= set(response.json)


@fixtures_ok
@given(
    headers=st.dictionaries(
        st.sampled_from(["webhook-id", "webhook-timestamp", "webhook-signature", "content-type"]),
        text,
    )
)
def test_malformed_headers_are_4xx(
    stack: Stack, org: CreatedOrganization, webhook_handler: Any, headers: dict[str, str]
) -> None:
    response = post_events(webhook_handler, org.org_id, "", None, body=b"{}", headers=headers)

    assert_client_error(response)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=30),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(text, children, max_size=6),
    max_leaves=30,
)
event_like = st.fixed_dictionaries(
    {},
    optional={
        "id": text,
        "type": st.sampled_from(["user.signed_up", "payment.succeeded", "custom.x", "bogus"])
        | text,
        "occurred_at": text | st.just("2026-06-01T00:00:00Z"),
        "user_id": text | json_values,
        "user_type": st.sampled_from(["supplier", "couple", "staff"]) | text,
        "properties": json_values,
        "revenue": json_values,
        "context": json_values,
        "consent": json_values,
    },
)


@fixtures_ok
@given(
    body=st.one_of(
        st.binary(max_size=300),
        json_values.map(lambda v: json.dumps(v).encode()),
        st.lists(event_like, max_size=5).map(lambda e: json.dumps({"events": e}).encode()),
    )
)
def test_correctly_signed_garbage_is_4xx_or_partially_accepted(
    stack: Stack, org: CreatedOrganization, webhook_handler: Any, body: bytes
) -> None:
    organizations.set_limits(org.org_id, requests_per_hour=10_000, events_per_hour=100_000)
    headers = signed_headers(org.webhook_secret, body, timestamp=int(time.time()))

    response = post_events(webhook_handler, org.org_id, "", None, body=body, headers=headers)

    if response.status == 202:
        assert response.json["accepted"] + response.json["duplicates"] >= 1
    else:
        assert_client_error(response)
