"""The local stack end to end: signed ingest, admin routes, template coverage, signals."""

from __future__ import annotations

import json
import signal
import socket
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from devstack import demo
from devstack.template import TEMPLATE, functions, load
from success_metrics import signing
from tests.e2e.conftest import ROOT, RunningStack, start_stack
from tests.support.local_stack import aws, wait_until


def count_items(stack: RunningStack, table: str, org_id: str | None = None) -> int:
    """Items of the table (of one organization's, when `org_id` is given: other tests of the
    session create organizations of their own)."""
    scan: dict[str, Any] = {"TableName": table, "Select": "COUNT"}
    if org_id is not None:
        scan["FilterExpression"] = "org_id = :org"
        scan["ExpressionAttributeValues"] = {":org": {"S": org_id}}
    pages = aws(stack, "dynamodb").get_paginator("scan").paginate(**scan)
    return sum(page["Count"] for page in pages)


def webhook_event_ids(stack: RunningStack) -> set[str]:
    found = httpx.get(f"{stack.sink_url}/_sink/requests", params={"path": "/webhooks/demo"}).json()
    return {e["id"] for r in found["requests"] for e in json.loads(r["body"])["events"]}


def test_demo_season_was_loaded_through_the_signed_api(stack: RunningStack) -> None:
    stored = count_items(stack, stack.state["environment"]["EVENTS_TABLE"], stack.org["org_id"])

    # The paying suppliers' subscription book, the season, and 100 events of the last two days.
    assert stored == len(demo.organization_events(300, seed=7)) + 100


def test_signed_event_is_stored_once_and_queued_for_sync(stack: RunningStack) -> None:
    event = json.loads((ROOT / "events/samples/subscription_started.json").read_text())
    event["id"] = "evt_e2e_" + uuid.uuid4().hex
    sample = Path(stack.state_dir) / "one-event.json"
    sample.write_text(json.dumps(event))
    before = count_items(stack, stack.state["environment"]["EVENTS_TABLE"])

    sent = stack.smctl_json("send", str(sample))
    again = stack.smctl_json("send", str(sample))

    assert sent["status"] == 202
    assert sent["response"] == {"accepted": 1, "duplicates": 0, "rejected": []}
    assert again["response"] == {"accepted": 0, "duplicates": 1, "rejected": []}
    assert count_items(stack, stack.state["environment"]["EVENTS_TABLE"]) == before + 1
    # Queued for sync: it comes out of the pipeline at the demo organization's webhook.
    assert event["id"] in wait_until(
        lambda: webhook_event_ids(stack) & {event["id"]}, 60, "the webhook delivery"
    )


def test_sample_batch_file_can_be_sent_again_with_fresh_ids(stack: RunningStack) -> None:
    first = stack.smctl_json("send", "events/samples/batch.json", "--fresh-ids")
    second = stack.smctl_json("send", "events/samples/batch.json", "--fresh-ids")

    assert first["response"]["accepted"] == second["response"]["accepted"] == 2


def test_invalid_signature_is_rejected_with_a_problem_document(
    stack: RunningStack, http: httpx.Client
) -> None:
    body = b'{"id": "evt_x", "type": "user.signed_up"}'
    headers = signing.sign_headers(signing.generate_secret(), "msg_bad", int(time.time()), body)
    headers["content-type"] = "application/json"

    response = http.post(
        f"{stack.api_url}/v1/organizations/{stack.org['org_id']}/events",
        content=body,
        headers=headers,
    )

    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"].endswith("/unauthenticated")


def test_admin_route_goes_through_the_authorizer(stack: RunningStack, http: httpx.Client) -> None:
    url = f"{stack.api_url}/v1/organization"

    ok = http.get(url, headers={"Authorization": f"Bearer {stack.org['api_key']}"})
    no_header = http.get(url)
    bad_key = http.get(url, headers={"Authorization": "Bearer smk.org_x.key_x.nope"})

    assert ok.status_code == 200
    assert ok.json()["org_id"] == stack.org["org_id"]
    assert no_header.status_code == 401
    assert no_header.json() == {"message": "Unauthorized"}  # API Gateway's own answer
    assert bad_key.status_code == 401
    assert bad_key.headers["content-type"] == "application/problem+json"


def test_revoked_key_stops_working(stack: RunningStack, http: httpx.Client) -> None:
    created = stack.smctl_json("key", "create", stack.org["org_id"], "--scope", "metrics:read")
    url = f"{stack.api_url}/v1/organization"
    assert (
        http.get(url, headers={"Authorization": f"Bearer {created['api_key']}"}).status_code == 200
    )

    stack.smctl("key", "revoke", stack.org["org_id"], created["key_id"])

    # The authorizer's cached answer lasts ReauthorizeEvery (60 s) on AWS too; a new header
    # value is not cached, so the revocation shows for this request form at once.
    response = http.get(url, headers={"Authorization": f"Bearer  {created['api_key']}"})
    assert response.status_code == 401
    assert "revoked" in response.json()["detail"]


def template_inventory(path: Path) -> dict[str, set[str]]:
    template = load(path)
    found: dict[str, set[str]] = {
        "functions": set(),
        "routes": set(),
        "pollers": set(),
        "schedules": set(),
    }
    for function in functions(template):
        found["functions"].add(function.logical_id)
        for props in function.events_of("HttpApi").values():
            found["routes"].add(f"{props['Method'].upper()} {props['Path']}")
        for name in function.events_of("SQS"):
            found["pollers"].add(f"{function.logical_id}.{name}")
        for name in function.events_of("Schedule"):
            found["schedules"].add(name)
    return found


def served(stack: RunningStack, http: httpx.Client) -> dict[str, set[str]]:
    status = http.get(stack.state["control_url"] + "/status").json()
    return {
        "functions": set(status["functions"]),
        "routes": {r["route"] for r in status["routes"]},
        "pollers": {p["name"] for p in status["pollers"]},
        "schedules": {s["name"] for s in status["schedules"]},
    }


def test_every_function_route_queue_and_schedule_of_the_template_is_served(
    stack: RunningStack, http: httpx.Client
) -> None:
    assert served(stack, http) == template_inventory(TEMPLATE)


def test_every_table_queue_and_key_of_the_template_exists_on_the_emulator(
    stack: RunningStack,
) -> None:
    resources = load(TEMPLATE)["Resources"]
    tables = {n for n, r in resources.items() if r["Type"] == "AWS::DynamoDB::Table"}
    queues = {n for n, r in resources.items() if r["Type"] == "AWS::SQS::Queue"}
    keys = {n for n, r in resources.items() if r["Type"] == "AWS::KMS::Key"}

    existing_tables = set(aws(stack, "dynamodb").list_tables()["TableNames"])
    existing_queues = {u.rsplit("/", 1)[1] for u in aws(stack, "sqs").list_queues()["QueueUrls"]}

    assert {f"sm-local-{t}" for t in tables} <= existing_tables
    assert {f"sm-local-{q}" for q in queues} <= existing_queues
    assert len(aws(stack, "kms").list_keys()["Keys"]) >= len(keys)
    sqs = aws(stack, "sqs")
    for name in queues:
        redrive = resources[name]["Properties"].get("RedrivePolicy")
        if redrive:
            url = sqs.get_queue_url(QueueName=f"sm-local-{name}")["QueueUrl"]
            attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])[
                "Attributes"
            ]
            policy = json.loads(attributes["RedrivePolicy"])
            assert int(policy["maxReceiveCount"]) == redrive["maxReceiveCount"]
            assert policy["deadLetterTargetArn"].endswith(
                redrive["deadLetterTargetArn"]["Fn::GetAtt"][0]
            )
            assert attributes["VisibilityTimeout"] == str(
                resources[name]["Properties"]["VisibilityTimeout"]
            )


def test_a_failing_function_gives_api_gateways_500(
    probe_stack: RunningStack, http: httpx.Client
) -> None:
    response = http.get(probe_stack.api_url + "/probe/crash")

    assert response.status_code == 500
    assert response.json() == {"message": "Internal Server Error"}


def test_every_route_reaches_its_function(stack: RunningStack, http: httpx.Client) -> None:
    for route in template_inventory(TEMPLATE)["routes"]:
        method, path = route.split(" ", 1)
        concrete = path.replace("{org_id}", stack.org["org_id"]).replace("{", "x").replace("}", "")
        response = http.request(
            method, stack.api_url + concrete, headers={"Authorization": "Bearer x"}
        )
        # A gateway miss is {"message": "Not Found"}; the functions answer problem documents
        # (the public OpenAPI document needs no key: it answers itself).
        if route == "GET /v1/openapi.json":
            assert response.json()["paths"], route
            continue
        if path.startswith("/console"):  # pages, a CSV and static files; never the gateway's
            assert response.headers["content-type"].startswith(("text/", "image/")), route
            continue
        assert response.headers["content-type"] == "application/problem+json", route


def test_another_template_is_served_without_runner_changes(
    probe_stack: RunningStack, http: httpx.Client
) -> None:
    path = ROOT / "tests/e2e/probe/template.yaml"

    assert served(probe_stack, http) == template_inventory(path)
    records = http.get(probe_stack.api_url + "/probe/records").json()
    assert records["event_version"] == "2.0"


def probe_records(stack: RunningStack, http: httpx.Client) -> dict[str, Any]:
    return dict(http.get(stack.api_url + "/probe/records").json()["records"])


def test_schedule_runs_on_demand_through_smctl(
    probe_stack: RunningStack, http: httpx.Client
) -> None:
    ran = probe_stack.smctl_json("schedule", "run", "Nightly")

    assert ran["result"] == {"ran": True, "source": "aws.events"}
    assert probe_records(probe_stack, http)["schedule#Scheduled Event"]["runs"] == "1"


def test_failed_record_alone_is_retried_then_dead_lettered(
    probe_stack: RunningStack, http: httpx.Client
) -> None:
    # Given one message that the handler reports as failed among messages that succeed
    for body in ("ok-1", "fail-1", "ok-2"):
        assert http.post(f"{probe_stack.api_url}/probe/messages/{body}").status_code == 202

    # Then only the failed one is delivered again, until maxReceiveCount (3) sends it to the DLQ
    def settled() -> dict[str, Any] | None:
        records = probe_records(probe_stack, http)
        done = records.get("msg#fail-1", {}).get("deliveries") == "3"
        return records if done and "msg#ok-2" in records else None

    records = wait_until(settled, 60, "the probe records")
    assert records["msg#ok-1"]["deliveries"] == "1"
    assert records["msg#ok-2"]["deliveries"] == "1"
    assert (
        int(records["msg#fail-1"]["remaining_ms"]) > 8000
    )  # the function's 10 s timeout, counting down
    sqs = aws(probe_stack, "sqs")
    dlq = sqs.get_queue_url(QueueName="sm-local-ProbeDeadLetterQueue")["QueueUrl"]
    dead = wait_until(
        lambda: sqs.receive_message(QueueUrl=dlq, WaitTimeSeconds=1).get("Messages"),
        30,
        "the dead letter",
    )
    assert [m["Body"] for m in dead] == ["fail-1"]
    time.sleep(2.5)  # a few more visibility timeouts: nothing is delivered again
    assert probe_records(probe_stack, http)["msg#fail-1"]["deliveries"] == "3"


def test_a_raising_sqs_handler_gets_its_batch_redelivered(
    probe_stack: RunningStack, http: httpx.Client
) -> None:
    assert http.post(f"{probe_stack.api_url}/probe/messages/crash-1").status_code == 202

    wait_until(
        lambda: probe_records(probe_stack, http).get("msg#crash-1", {}).get("deliveries") == "3",
        60,
        "three deliveries of the batch",
    )
    time.sleep(2.5)
    assert probe_records(probe_stack, http)["msg#crash-1"]["deliveries"] == "3"


def test_sigterm_stops_everything_and_frees_the_ports(tmp_path: Path) -> None:
    running = start_stack(tmp_path, "--no-schedules", demo=False)
    ports = [
        int(running.state[k].rsplit(":", 1)[1]) for k in ("api_url", "aws_endpoint", "sink_url")
    ]

    running.process.send_signal(signal.SIGTERM)
    code = running.process.wait(timeout=15)  # the deadline: stopping takes a few seconds

    assert code == 0
    for port in ports:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", port))
    assert not (running.state_dir / "stack.json").exists()
