"""The destination sink: recording, the control API, each platform's answers, and faults."""

from __future__ import annotations

import gzip
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from devstack.sink import (
    GA4_MAX_BACKDATE_S,
    MIXPANEL_MAX_BYTES,
    Fault,
    Sink,
    ga4_validation_messages,
    mixpanel_record_error,
)
from success_metrics.sync.platforms import mixpanel_batches, send_mixpanel

AUTH = ("svc-account.mp-service-account", "secret")
GA4_QUERY = {"measurement_id": "G-TEST123", "api_secret": "s3cret"}
SLACK_PATH = "/services/T000/B000/XXXXXXXX"


@pytest.fixture(scope="module")
def shared_sink() -> Iterator[Sink]:
    with Sink(port=0) as server:
        yield server


@pytest.fixture
def sink(shared_sink: Sink) -> Sink:
    """One server per module (starting one per test costs more than the tests); fresh state."""
    shared_sink.clear()
    shared_sink.set_fault(None)
    shared_sink.mixpanel_max_bytes = MIXPANEL_MAX_BYTES
    return shared_sink


@pytest.fixture(scope="module")
def shared_client(shared_sink: Sink) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=shared_sink.url, timeout=5, trust_env=False) as http:
        yield http


@pytest.fixture
def client(sink: Sink, shared_client: httpx.Client) -> httpx.Client:
    return shared_client


def mp_event(name: str = "Vendor Booked", **properties: Any) -> dict[str, Any]:
    props = {
        "time": int(time.time() * 1000),
        "distinct_id": "couple-42",
        "$insert_id": str(uuid.uuid4()),
        **properties,
    }
    return {"event": name, "properties": props}


def ga4_body(*events: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"client_id": "123.456", "events": list(events) or [{"name": "vendor_booked"}], **fields}


def codes(messages: list[dict[str, str]]) -> list[str]:
    return [m["validationCode"] for m in messages]


# --- recording and control API -------------------------------------------------------------------


def test_webhook_default_answer_is_recorded(sink: Sink, client: httpx.Client) -> None:
    response = client.post(
        "/webhooks/acme?attempt=2", json={"type": "booking.created"}, headers={"X-Sig": "abc"}
    )

    assert response.status_code == 200
    assert response.json() == {"received": True}
    [record] = sink.requests()
    assert record["id"] == 1
    assert record["method"] == "POST"
    assert record["path"] == "/webhooks/acme"
    assert record["query"] == {"attempt": "2"}
    assert record["headers"]["x-sig"] == "abc"
    assert json.loads(record["body"]) == {"type": "booking.created"}
    assert record["body_base64"] is False
    assert record["platform"] == "webhook"
    assert record["status"] == 200
    assert record["fault"] is False
    assert abs(record["time"] - time.time()) < 5


def test_control_api_lists_filters_and_clears(sink: Sink, client: httpx.Client) -> None:
    client.post("/webhooks/a", json={})
    client.post("/webhooks/b", json={})
    client.post("/mp/collect", params=GA4_QUERY, json=ga4_body())

    everything = client.get("/_sink/requests").json()["requests"]
    assert [r["path"] for r in everything] == ["/webhooks/a", "/webhooks/b", "/mp/collect"]
    by_path = client.get("/_sink/requests", params={"path": "/webhooks/b"}).json()["requests"]
    assert [r["path"] for r in by_path] == ["/webhooks/b"]
    by_platform = client.get("/_sink/requests", params={"platform": "ga4"}).json()["requests"]
    assert [r["path"] for r in by_platform] == ["/mp/collect"]
    assert [r["path"] for r in sink.requests("/webhooks/")] == ["/webhooks/a", "/webhooks/b"]

    assert client.delete("/_sink/requests").status_code == 204
    assert client.get("/_sink/requests").json() == {"requests": []}
    assert sink.requests() == []  # control calls themselves are never recorded


def test_binary_body_is_recorded_as_base64(sink: Sink, client: httpx.Client) -> None:
    client.post("/webhooks/bin", content=b"\xff\xfe\x00")

    [record] = sink.requests()
    assert record["body_base64"] is True
    assert record["body"] == "//4A"


def test_recorded_requests_are_bounded() -> None:
    with Sink(port=0, max_recorded=2) as small:
        with httpx.Client(base_url=small.url, trust_env=False) as http:
            for n in range(3):
                http.post(f"/webhooks/{n}", json={})
        assert [r["path"] for r in small.requests()] == ["/webhooks/1", "/webhooks/2"]


def test_stop_frees_the_port() -> None:
    first = Sink(port=0)
    first.start()
    port = int(first.url.rsplit(":", 1)[1])
    with httpx.Client(trust_env=False) as http:
        http.post(f"{first.url}/webhooks/x", json={})
        first.stop()
        with pytest.raises(RuntimeError):
            _ = first.url

        second = Sink(port=port)
        second.start()
        try:
            assert http.post(f"{second.url}/webhooks/x", json={}).status_code == 200
        finally:
            second.stop()


# --- Mixpanel ------------------------------------------------------------------------------------


def test_mixpanel_import_success(sink: Sink, client: httpx.Client) -> None:
    events = [mp_event(), mp_event("Guest Invited")]

    response = client.post(
        "/import", params={"strict": "1", "project_id": "77"}, json=events, auth=AUTH
    )

    assert response.status_code == 200
    assert response.json() == {"code": 200, "num_records_imported": 2, "status": 1}
    [record] = sink.requests(platform="mixpanel")
    assert record["query"] == {"strict": "1", "project_id": "77"}
    assert record["headers"]["authorization"].startswith("Basic ")


def test_mixpanel_gzip_body_is_decoded(sink: Sink, client: httpx.Client) -> None:
    events = [mp_event() for _ in range(3)]
    payload = json.dumps(events).encode()

    response = client.post(
        "/import?strict=1",
        content=gzip.compress(payload),
        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
        auth=AUTH,
    )

    assert response.status_code == 200
    assert response.json()["num_records_imported"] == 3
    assert json.loads(sink.requests()[0]["body"]) == events


def test_mixpanel_ndjson_body(client: httpx.Client) -> None:
    lines = "\n".join(json.dumps(mp_event()) for _ in range(2))

    response = client.post(
        "/import?strict=1",
        content=lines,
        headers={"Content-Type": "application/x-ndjson"},
        auth=AUTH,
    )

    assert response.json()["num_records_imported"] == 2


def test_mixpanel_rejects_more_than_2000_events(client: httpx.Client) -> None:
    event = mp_event()
    response = client.post("/import", json=[event] * 2001, auth=AUTH)

    assert response.status_code == 413
    body = response.json()
    assert body["code"] == 413
    assert "2000" in body["error"]
    assert client.post("/import", json=[event] * 2000, auth=AUTH).status_code == 200


def test_mixpanel_rejects_bodies_over_the_uncompressed_size_limit(
    sink: Sink, client: httpx.Client
) -> None:
    sink.mixpanel_max_bytes = 1000  # the documented 10 MB, scaled down for the test
    events = [mp_event(note="x" * 300) for _ in range(4)]

    response = client.post(
        "/import",
        content=gzip.compress(json.dumps(events).encode()),  # gzip does not raise the limit
        headers={"Content-Encoding": "gzip"},
        auth=AUTH,
    )

    assert response.status_code == 413
    assert response.json()["error"] == "request exceeds max limit of 1000 bytes"


def test_mixpanel_strict_partial_import_lists_failed_records(
    sink: Sink, client: httpx.Client
) -> None:
    good = mp_event()
    no_insert_id = mp_event()
    del no_insert_id["properties"]["$insert_id"]
    future = mp_event(time=int(time.time()) + 2 * 3600)
    placeholder = mp_event(distinct_id="null")
    anonymous = mp_event(distinct_id="")  # documented way to send an event with no user

    response = client.post(
        "/import",
        params={"strict": "1"},
        json=[good, no_insert_id, future, placeholder, anonymous],
        auth=AUTH,
    )

    assert response.status_code == 400
    body = response.json()
    assert body["code"] == 400
    assert body["num_records_imported"] == 2
    failed = {r["index"]: r for r in body["failed_records"]}
    assert set(failed) == {1, 2, 3}
    assert failed[1]["field"] == "properties.$insert_id"
    assert failed[2]["field"] == "properties.time"
    assert failed[2]["insert_id"] == future["properties"]["$insert_id"]
    assert failed[3]["field"] == "properties.distinct_id"
    assert sink.mixpanel_insert_ids() == {
        good["properties"]["$insert_id"]: 1,
        anonymous["properties"]["$insert_id"]: 1,
    }


def test_mixpanel_without_strict_skips_validation(client: httpx.Client) -> None:
    response = client.post("/import", json=[{"event": "x", "properties": {}}], auth=AUTH)

    assert response.status_code == 200
    assert response.json()["num_records_imported"] == 1


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer abc"}, {"Authorization": "Basic OnNlY3JldA=="}],  # ":secret"
    ids=["none", "not-basic", "empty-username"],
)
def test_mixpanel_requires_basic_auth(client: httpx.Client, headers: dict[str, str]) -> None:
    response = client.post("/import", json=[mp_event()], headers=headers)

    assert response.status_code == 401
    assert response.json() == {
        "code": 401,
        "error": "Invalid credentials",
        "status": "Unauthorized",
    }


def test_mixpanel_invalid_json_is_400(client: httpx.Client) -> None:
    response = client.post("/import", content=b"[{not json", auth=AUTH)

    assert response.status_code == 400
    assert response.json()["code"] == 400


def test_mixpanel_counts_each_insert_id(sink: Sink, client: httpx.Client) -> None:
    batch = [mp_event(), mp_event()]
    for _ in range(2):  # a retried batch
        client.post("/import?strict=1&project_id=77", json=batch, auth=AUTH)
    client.post("/import?strict=1&project_id=88", json=[batch[0]], auth=AUTH)

    ids = [e["properties"]["$insert_id"] for e in batch]
    assert sink.mixpanel_insert_ids() == {ids[0]: 3, ids[1]: 2}
    assert sink.mixpanel_insert_ids("88") == {ids[0]: 1}
    over_http = client.get("/_sink/mixpanel/insert-ids", params={"project": "77"}).json()
    assert over_http == {"insert_ids": {ids[0]: 2, ids[1]: 2}}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"event": ""}, "event"),
        ({"properties": None}, "properties"),
        ({"time": 1000}, "properties.time"),
        ({"time": "yesterday"}, "properties.time"),
        ({"$insert_id": "x" * 37}, "properties.$insert_id"),
        ({"$insert_id": "has spaces"}, "properties.$insert_id"),
        ({"distinct_id": "anonymous"}, "properties.distinct_id"),
        ({"many": True}, "properties"),
    ],
)
def test_mixpanel_record_validation(change: dict[str, Any], field: str) -> None:
    record = mp_event()
    for key, value in change.items():
        if key in ("event", "properties"):
            record[key] = value
        elif key == "many":
            record["properties"].update({f"p{n}": n for n in range(255)})
        else:
            record["properties"][key] = value

    error = mixpanel_record_error(record)

    assert error is not None
    assert error[0] == field


def test_mixpanel_time_in_seconds_and_milliseconds_is_valid() -> None:
    assert mixpanel_record_error(mp_event(time=int(time.time()))) is None
    assert mixpanel_record_error(mp_event(time=int(time.time() * 1000))) is None


# --- GA4 -----------------------------------------------------------------------------------------


def test_ga4_collect_answers_204_even_for_invalid_payloads(
    sink: Sink, client: httpx.Client
) -> None:
    bad = client.post("/mp/collect", content=b"{definitely not json")
    good = client.post("/mp/collect", params=GA4_QUERY, json=ga4_body())

    assert bad.status_code == 204
    assert bad.content == b""
    assert good.status_code == 204
    bad_record, good_record = sink.requests(platform="ga4")
    assert bad_record["validation"]  # recorded so tests can still see what was wrong
    assert good_record["validation"] == []


def test_ga4_debug_valid_payload_has_no_messages(client: httpx.Client) -> None:
    body = ga4_body(
        {
            "name": "vendor_booked",
            "params": {
                "vendor_type": "florist",
                "value": 1200,
                "session_id": "1",
                "currency": "EUR",
            },
        },
        user_id="u-1",
        user_properties={"plan": {"value": "premium"}},
        timestamp_micros=int(time.time() * 1_000_000),
    )

    response = client.post("/debug/mp/collect", params=GA4_QUERY, json=body)

    assert response.status_code == 200
    assert response.json() == {"validationMessages": []}


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("x" * 41, "NAME_INVALID"),
        ("1st_booking", "NAME_INVALID"),
        ("vendor-booked", "NAME_INVALID"),
        ("session_start", "NAME_RESERVED"),
        ("google_conversion", "NAME_RESERVED"),
        ("firebase_thing", "NAME_RESERVED"),
    ],
)
def test_ga4_debug_rejects_bad_event_names(client: httpx.Client, name: str, code: str) -> None:
    response = client.post("/debug/mp/collect", params=GA4_QUERY, json=ga4_body({"name": name}))

    messages = response.json()["validationMessages"]
    assert codes(messages) == [code]
    assert messages[0]["fieldPath"] == "events"


def test_ga4_debug_rejects_too_many_params(client: httpx.Client) -> None:
    event = {"name": "guest_invited", "params": {f"p{n}": n for n in range(26)}}

    messages = client.post("/debug/mp/collect", params=GA4_QUERY, json=ga4_body(event)).json()

    assert codes(messages["validationMessages"]) == ["EXCEEDED_MAX_ENTITIES"]


def test_ga4_debug_rejects_too_many_events(client: httpx.Client) -> None:
    events = [{"name": "guest_invited"}] * 26

    messages = client.post("/debug/mp/collect", params=GA4_QUERY, json=ga4_body(*events)).json()

    assert codes(messages["validationMessages"]) == ["EXCEEDED_MAX_ENTITIES"]


def test_ga4_debug_rejects_values_that_are_too_long(client: httpx.Client) -> None:
    event = {
        "name": "guest_invited",
        "params": {"note": "x" * 101, "page_location": "https://x/" + "y" * 900},
    }

    messages = client.post("/debug/mp/collect", params=GA4_QUERY, json=ga4_body(event)).json()

    [message] = messages["validationMessages"]
    assert message["validationCode"] == "VALUE_INVALID"
    assert "[note]" in message["description"]


def test_ga4_debug_requires_query_params_and_client_id(client: httpx.Client) -> None:
    messages = client.post("/debug/mp/collect", json={"events": [{"name": "a"}]}).json()

    by_path = {m["fieldPath"]: m["validationCode"] for m in messages["validationMessages"]}
    assert by_path == {
        "measurement_id": "VALUE_REQUIRED",
        "api_secret": "VALUE_REQUIRED",
        "client_id": "VALUE_REQUIRED",
    }


def test_ga4_validator_other_limits() -> None:
    now = time.time()
    stale = int((now - GA4_MAX_BACKDATE_S - 60) * 1_000_000)
    body = ga4_body(
        {"name": "ok_event", "params": {"_private": 1, "items": [{f"c{n}": n for n in range(11)}]}},
        user_id="u" * 257,
        timestamp_micros=stale,
        user_properties={
            "x" * 25: {"value": "a"},
            "tier": {"value": "y" * 37},
            "first_open_time": {"value": 1},
        },
    )

    messages = ga4_validation_messages(json.dumps(body).encode(), GA4_QUERY, now=now)

    assert sorted((m["fieldPath"], m["validationCode"]) for m in messages) == sorted(
        [
            ("user_id", "VALUE_INVALID"),
            ("timestamp_micros", "VALUE_INVALID"),
            ("user_properties", "NAME_INVALID"),
            ("user_properties", "VALUE_INVALID"),
            ("user_properties", "NAME_RESERVED"),
            ("events.params", "NAME_RESERVED"),
            ("events.params.items", "EXCEEDED_MAX_ENTITIES"),
        ]
    )
    too_big = json.dumps(ga4_body(user_id="z" * 130_000)).encode()
    assert "VALUE_INVALID" in codes(ga4_validation_messages(too_big, GA4_QUERY))


# --- Slack ---------------------------------------------------------------------------------------


def test_slack_accepts_a_message(sink: Sink, client: httpx.Client) -> None:
    response = client.post(SLACK_PATH, json={"text": "New booking :tada:"})

    assert response.status_code == 200
    assert response.text == "ok"
    assert sink.requests()[0]["platform"] == "slack"


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        ({"username": "bot"}, "no_text"),
        ({"text": ""}, "no_text"),
        ([1, 2], "invalid_payload"),
        ({"blocks": [{"type": "divider"}] * 51}, "invalid_blocks"),
        ({"blocks": [{"no": "type"}]}, "invalid_blocks"),
    ],
)
def test_slack_rejects_invalid_payloads(client: httpx.Client, payload: Any, error: str) -> None:
    response = client.post(SLACK_PATH, json=payload)

    assert response.status_code == 400
    assert response.text == error


@pytest.mark.parametrize(
    "content",
    ["payload=%7B%22text%22%3A%22hi%22%7D", '{"text": "hi"}'],
    ids=["payload-field", "raw-json"],
)
def test_slack_accepts_form_encoded_posts(client: httpx.Client, content: str) -> None:
    response = client.post(
        SLACK_PATH, content=content, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )

    assert (response.status_code, response.text) == (200, "ok")


def test_slack_rejects_malformed_json(client: httpx.Client) -> None:
    response = client.post(SLACK_PATH, content=b"{oops")

    assert (response.status_code, response.text) == (400, "invalid_payload")


def test_slack_rate_limits_one_message_per_second_per_webhook(
    sink: Sink, client: httpx.Client
) -> None:
    assert client.post(SLACK_PATH, json={"text": "one"}).status_code == 200

    second = client.post(SLACK_PATH, json={"text": "two"})
    other_webhook = client.post("/services/T000/B111/YYYY", json={"text": "elsewhere"})

    assert second.status_code == 429
    assert second.headers["Retry-After"] == "1"
    assert second.text == "rate_limited"
    assert other_webhook.status_code == 200
    assert [r["status"] for r in sink.requests(SLACK_PATH)] == [200, 429]


# --- faults --------------------------------------------------------------------------------------


def test_count_fault_fails_the_next_n_then_recovers(sink: Sink, client: httpx.Client) -> None:
    sink.set_fault(Fault(status=500, count=2, path_prefix="/import"))

    statuses = [client.post("/import", json=[mp_event()], auth=AUTH).status_code for _ in range(3)]
    unaffected = client.post("/webhooks/x", json={})

    assert statuses == [500, 500, 200]
    assert unaffected.status_code == 200
    assert [(r["status"], r["fault"]) for r in sink.requests("/import")] == [
        (500, True),
        (500, True),
        (200, False),
    ]
    assert sink.fault() is not None
    assert sink.fault()["remaining"] == 0  # type: ignore[index]


def test_rate_fault_with_a_seed_is_reproducible(sink: Sink, client: httpx.Client) -> None:
    def run() -> list[int]:
        sink.set_fault(Fault(status=503, rate=0.5, seed=7))
        return [client.post("/webhooks/r", json={}).status_code for _ in range(20)]

    first, second = run(), run()

    assert first == second
    assert set(first) == {200, 503}


def test_429_fault_carries_retry_after_and_the_platform_shape(client: httpx.Client) -> None:
    fault = {"status": 429, "retry_after": 2, "count": 1, "path_prefix": "/import"}
    assert client.put("/_sink/fault", json=fault).status_code == 200

    limited = client.post("/import", json=[mp_event()], auth=AUTH)

    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "2"
    assert limited.json()["code"] == 429
    assert client.post("/import", json=[mp_event()], auth=AUTH).status_code == 200


def test_latency_fault_delays_answers(client: httpx.Client) -> None:
    client.put("/_sink/fault", json={"latency_ms": 200, "path_prefix": "/webhooks/slow"})

    started = time.monotonic()
    response = client.post("/webhooks/slow", json={})
    elapsed = time.monotonic() - started

    assert response.status_code == 200
    assert elapsed >= 0.2
    assert client.get("/_sink/fault").json()["fault"]["status"] is None


def test_timeout_fault_drops_the_connection(sink: Sink, client: httpx.Client) -> None:
    sink.set_fault(Fault(timeout=True, count=1))

    with pytest.raises(httpx.RemoteProtocolError):
        client.post("/webhooks/t", json={})

    assert client.post("/webhooks/t", json={}).status_code == 200
    assert [r["status"] for r in sink.requests()] == [None, 200]


def test_fault_control_api(client: httpx.Client) -> None:
    assert client.get("/_sink/fault").json() == {"fault": None}

    set_response = client.put("/_sink/fault", json={"status": 502, "rate": 0.3, "seed": 1})
    assert set_response.status_code == 200
    assert set_response.json()["fault"]["status"] == 502
    assert client.get("/_sink/fault").json()["fault"]["rate"] == 0.3

    assert client.delete("/_sink/fault").status_code == 204
    assert client.get("/_sink/fault").json() == {"fault": None}


@pytest.mark.parametrize(
    "fault",
    [{"status": 42}, {"rate": 2}, {"count": -1}, {"bogus": 1}, [1]],
)
def test_invalid_faults_are_rejected(client: httpx.Client, fault: Any) -> None:
    response = client.put("/_sink/fault", json=fault)

    assert response.status_code == 400
    assert "error" in response.json()


# --- GDPR deletion APIs -------------------------------------------------------------------------

MP_DELETIONS = "/api/app/data-deletions/v3.0/"
GA_DELETIONS = "/analytics/v3/userDeletion/userDeletionRequests:upsert"


def test_mixpanel_gdpr_deletion_needs_a_bearer_token_a_project_token_and_ids(
    client: httpx.Client, sink: Sink
) -> None:
    body = {"distinct_ids": ["usr_1", "$device:abc"], "compliance_type": "GDPR"}
    bearer = {"Authorization": "Bearer gdpr-oauth"}
    assert client.post(MP_DELETIONS, params={"token": "t"}, json=body).status_code == 401
    assert client.post(MP_DELETIONS, json=body, headers=bearer).status_code == 400
    too_many = {"distinct_ids": [f"u{i}" for i in range(2001)]}
    answer = client.post(MP_DELETIONS, params={"token": "t"}, json=too_many, headers=bearer)
    assert answer.status_code == 400
    assert "2000" in answer.json()["error"]
    wrong_type = {**body, "compliance_type": "HIPAA"}
    assert (
        client.post(
            MP_DELETIONS, params={"token": "t"}, json=wrong_type, headers=bearer
        ).status_code
        == 400
    )

    answer = client.post(MP_DELETIONS, params={"token": "t"}, json=body, headers=bearer)

    assert answer.status_code == 200
    assert answer.json()["status"] == "ok"
    assert answer.json()["results"]["task_id"]
    [recorded] = [r for r in sink.requests(MP_DELETIONS) if r["status"] == 200]
    assert recorded["platform"] == "mixpanel_gdpr"
    assert recorded["deletion"]["distinct_ids"] == body["distinct_ids"]


def test_google_user_deletion_takes_a_token_from_the_refresh_grant_only(
    client: httpx.Client,
) -> None:
    grant = {
        "grant_type": "refresh_token",
        "client_id": "cid",
        "client_secret": "cs",
        "refresh_token": "rt",
    }
    assert client.post("/token", data={**grant, "grant_type": "password"}).status_code == 400
    missing = client.post("/token", data={k: v for k, v in grant.items() if k != "refresh_token"})
    assert missing.json()["error"] == "invalid_request"
    token = client.post("/token", data=grant).json()
    assert token["token_type"] == "Bearer"
    assert token["scope"].endswith("analytics.user.deletion")
    request = {
        "kind": "analytics#userDeletionRequest",
        "id": {"type": "USER_ID", "userId": "usr_1"},
        "propertyId": "123",
    }

    forged = client.post(GA_DELETIONS, json=request, headers={"Authorization": "Bearer forged"})
    assert forged.status_code == 401
    assert forged.json()["error"]["status"] == "UNAUTHENTICATED"
    auth = {"Authorization": f"Bearer {token['access_token']}"}
    for bad in (
        {**request, "id": {"type": "EMAIL", "userId": "x"}},
        {**request, "id": {"type": "USER_ID", "userId": ""}},
        {**request, "webPropertyId": "UA-1"},  # two targets
        {"kind": request["kind"], "id": request["id"]},  # none
    ):
        answer = client.post(GA_DELETIONS, json=bad, headers=auth)
        assert answer.status_code == 400, bad
        assert answer.json()["error"]["status"] == "INVALID_ARGUMENT"
    answer = client.post(GA_DELETIONS, json=request, headers=auth)
    assert answer.status_code == 200
    assert answer.json()["id"] == request["id"]
    assert answer.json()["deletionRequestTime"].endswith("Z")


# ------------------------------------------------- the Mixpanel client's batches, against the sink


TWO_MB = 2 * 1024 * 1024  # SPEC §4: the client's cap on a request's uncompressed JSON


def stored_doc(index: int, note: str = "") -> dict[str, Any]:
    """A stored event document as the sync path hands it to the Mixpanel client."""
    return {
        "id": f"evt_{index:05d}",
        "type": "couple.vendor_searched",
        "category": "couple",
        "occurred_at": "2026-12-06T10:00:00Z",
        "user_id": f"usr_{index}",
        "user_type": "couple",
        "properties": {"note": note} if note else {},
    }


def deliver(sink: Sink, docs: list[dict[str, Any]]) -> list[list[tuple[str, bytes]]]:
    """Batch the documents as PlatformSync does and send every batch to the sink."""
    batches = list(mixpanel_batches(docs))
    with httpx.Client(timeout=30, trust_env=False) as http:
        for batch in batches:
            outcome = send_mixpanel(http, sink.url, {"api_secret": "s"}, "77", batch)
            assert outcome.status == 200, outcome.error
            assert len(outcome.delivered) == len(batch)
    return batches


def test_the_mixpanel_client_sends_2001_events_as_2000_and_1(sink: Sink) -> None:
    docs = [stored_doc(i) for i in range(2001)]

    batches = deliver(sink, docs)

    assert [len(b) for b in batches] == [2000, 1]
    assert [event_id for b in batches for event_id, _ in b] == [d["id"] for d in docs]
    recorded = sink.requests(platform="mixpanel")
    assert [len(json.loads(r["body"])) for r in recorded] == [2000, 1]


def test_the_mixpanel_client_splits_at_2_mb_of_uncompressed_json(sink: Sink) -> None:
    sink.mixpanel_max_bytes = TWO_MB  # the SPEC's cap: a larger request is refused
    docs = [stored_doc(i, note="x" * 100_000) for i in range(45)]  # about 4.5 MB

    batches = deliver(sink, docs)

    bodies = [b"[" + b",".join(encoded for _, encoded in batch) + b"]" for batch in batches]
    assert len(batches) == 3
    assert all(len(body) <= TWO_MB for body in bodies)
    # Each full request holds as many events as fit: one more would cross 2 MB.
    for body, following in zip(bodies, batches[1:], strict=False):
        assert len(body) + 1 + len(following[0][1]) > TWO_MB
    assert [event_id for b in batches for event_id, _ in b] == [d["id"] for d in docs]
    recorded = sink.requests(platform="mixpanel")
    assert sum(len(json.loads(r["body"])) for r in recorded) == 45
