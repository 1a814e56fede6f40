"""Inputs found in review that answered 5xx: each is now a clear 4xx problem document
(SPEC §10), and nothing is stored from it."""

from __future__ import annotations

import json
from typing import Any

from devstack.lambda_events import http_event
from devstack.provision import Stack
from success_metrics.models.events import MAX_PROPERTY_DEPTH
from success_metrics.models.organizations import CreatedOrganization
from tests.integration.conftest import scan_all
from tests.support import invoke_http, post_events, sample_event
from tests.support.api import authorize


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def _admin(handler: Any, authorizer: Any, api_key: str, method: str, path: str, body: bytes) -> Any:
    context = authorize(authorizer, api_key)["context"]
    event = http_event(
        method,
        path,
        route_key=f"{method} /v1/destinations/{{dest_id}}",
        path_parameters={"dest_id": path.rsplit("/", 1)[1]},
        headers={"authorization": f"Bearer {api_key}", "content-type": "application/json"},
        body=body,
        authorizer=context,
    )
    return invoke_http(handler, "AdminApiFunction", event)


def test_properties_nested_too_deeply_are_refused_by_name(
    stack: Stack, org: CreatedOrganization, webhook_handler: Any
) -> None:
    for depth in (MAX_PROPERTY_DEPTH + 1, 255, 900):
        # Given an event whose properties nest deeper than the documented bound
        event = sample_event(properties={"deep": _nested(depth)})
        # When it is posted
        answer = post_events(webhook_handler, org.org_id, org.webhook_secret, event)
        # Then it is a 400 that says why, and nothing is stored
        assert answer.status == 400, (depth, answer)
        assert answer.headers["content-type"] == "application/problem+json"
        assert f"at most {MAX_PROPERTY_DEPTH} levels" in json.dumps(answer.json)
    assert scan_all(stack.physical["EventsTable"]["Ref"]) == []
    # and the bound itself is accepted
    fits = sample_event(properties={"deep": _nested(MAX_PROPERTY_DEPTH - 1)})
    assert post_events(webhook_handler, org.org_id, org.webhook_secret, fits).status == 202


def test_an_admin_body_nested_without_end_is_a_400(
    org: CreatedOrganization, admin_handler: Any, authorizer_handler: Any
) -> None:
    body = b"[" * 100_000 + b"]" * 100_000
    answer = _admin(
        admin_handler, authorizer_handler, org.api_key, "PUT", "/v1/destinations/deep", body
    )
    assert answer.status == 400, answer
    assert "nests too deeply" in answer.json["detail"]


def test_a_malformed_webhook_signing_secret_is_a_400(
    org: CreatedOrganization, admin_handler: Any, authorizer_handler: Any
) -> None:
    for secret in ("whsec_ñññññññññññññññññññññññññññññññ", "whsec_!!!", "nope"):
        body = {
            "name": "hooks",
            "settings": {
                "kind": "webhook",
                "url": "https://hooks.example.com/x",
                "signing_secret": secret,
            },
        }
        answer = _admin(
            admin_handler,
            authorizer_handler,
            org.api_key,
            "PUT",
            "/v1/destinations/hooks",
            json.dumps(body).encode(),
        )
        assert answer.status == 400, (secret, answer)
        assert answer.headers["content-type"] == "application/problem+json"


# Found by the hostile-input fuzzing (tests/e2e/test_fuzz.py): each was a 500, or stored a value
# that is not JSON.
NOT_JSON = [
    ("1" + "0" * 5000, "more than 4,300 digits"),
    ("1e999", "too large for a number"),
    ("NaN", "NaN is not a JSON number"),
    ("-Infinity", "-Infinity is not a JSON number"),
    ('"\\ud800"', "lone UTF-16 surrogate"),
]


def test_numbers_and_text_that_are_not_json_are_a_400_at_ingest(
    stack: Stack, org: CreatedOrganization, webhook_handler: Any
) -> None:
    for raw, fragment in NOT_JSON:
        text = json.dumps(sample_event(properties={"x": "HERE"})).replace('"HERE"', raw)
        answer = post_events(
            webhook_handler, org.org_id, org.webhook_secret, None, body=text.encode()
        )
        assert answer.status == 400, (raw, answer)
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json["type"].endswith("/malformed-json")
        assert fragment in answer.json["detail"], raw
    assert scan_all(stack.physical["EventsTable"]["Ref"]) == []


def test_an_occurred_at_out_of_range_in_utc_is_a_400(
    stack: Stack, org: CreatedOrganization, webhook_handler: Any
) -> None:
    event = sample_event(occurred_at="0001-01-01T00:00:00+14:00")
    answer = post_events(webhook_handler, org.org_id, org.webhook_secret, event)
    assert answer.status == 400, answer
    assert "out of range" in json.dumps(answer.json)


def test_numbers_and_text_that_are_not_json_are_a_400_in_admin_bodies(
    org: CreatedOrganization, admin_handler: Any, authorizer_handler: Any
) -> None:
    for raw, fragment in NOT_JSON:
        body = f'{{"name": "x", "settings": {{"kind": "webhook", "limit": {raw}}}}}'.encode()
        answer = _admin(
            admin_handler, authorizer_handler, org.api_key, "PUT", "/v1/destinations/x", body
        )
        assert answer.status == 400, (raw, answer)
        assert answer.json["type"].endswith("/malformed-json")
        assert fragment in answer.json["detail"], raw
