"""Cost of an event on AWS: every request and capacity unit of a realistic day, per function,
counted from the calls the code makes (in-process moto, the real Lambda handlers), priced at
published on-demand list prices.

The day: EVENTS events from the demo generator, posted in a mix of batch sizes (1, 5, 20, 100
events per signed request), to an organization with 4 destinations at the fake platforms
(Mixpanel, GA4, two customer webhooks, one of them for supplier and payment events only) and
Slack alerts (a Slack destination needs a public https URL, which the fakes are not); every queue drained by its consumer as Lambda
would (batch sizes from template.yaml); one events export (CSV) and one erasure.

Counted per function, from botocore's request and response of every call:
- DynamoDB write units: 1 per KB of the item written (its size after the write, read back
  from the emulator for updates), doubled in transactions, plus the same for each global
  secondary index the item is in (the projected size); read units: 1 per 4 KB read, half for
  eventually consistent reads (item sizes from the answers);
- SQS requests (each 64 KB of a payload is one request), and the event source's own
  ReceiveMessage and DeleteMessageBatch per batch;
- KMS requests, S3 requests (PUT/COPY/POST/LIST and GET classes) and bytes stored;
- Lambda requests and GB-seconds: the template's memory size times the measured duration of
  each invocation here (a rough figure: this machine is not Lambda), rounded up to 1 ms;
- CloudWatch Logs: the bytes each invocation logs (structured logs at the template's INFO level
  and EMF metrics), plus Lambda's own START/END/REPORT lines;
- API Gateway HTTP API requests and SES emails.

Prices: AWS list prices for us-east-1 on-demand (checked 2026-12; see docs/cost.md).
"""

from __future__ import annotations

import io
import json
import math
import os
import random
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import bench_env  # noqa: F401 - puts the repository on sys.path first


class Tally(io.TextIOBase):
    """What the functions print (logs, EMF), counted in bytes and thrown away: installed as
    stdout before the package is imported, since the logger keeps the stream it starts with."""

    def __init__(self) -> None:
        self.bytes = 0

    def write(self, text: str) -> int:
        self.bytes += len(text.encode())
        return len(text)


TALLY = Tally()
LAMBDA_OWN_LOG_BYTES = 280  # the START, END and REPORT lines Lambda writes for each invocation
os.environ["POWERTOOLS_LOG_LEVEL"] = "INFO"  # the template's default LogLevel

EVENTS = int(os.environ.get("BENCH_COST_EVENTS", "2000"))
SEED = 11
BATCH_SIZES = ((1, 0.2), (5, 0.3), (20, 0.3), (100, 0.2))  # events per request, share of events

# USD, us-east-1 on-demand list prices
PRICE = {
    "dynamodb_wru": 0.625 / 1e6,
    "dynamodb_rru": 0.125 / 1e6,
    "dynamodb_gb_month": 0.25,
    "lambda_request": 0.20 / 1e6,
    "lambda_gb_s": 0.0000166667,
    "sqs_request": 0.40 / 1e6,
    "kms_request": 0.03 / 1e4,
    "s3_put": 0.005 / 1e3,
    "s3_get": 0.0004 / 1e3,
    "s3_gb_month": 0.023,
    "logs_gb": 0.50,
    "http_api_request": 1.00 / 1e6,
    "ses_email": 0.10 / 1e3,
}
S3_PUT_CLASS = {
    "PutObject", "CopyObject", "CreateMultipartUpload", "UploadPart", "UploadPartCopy",
    "CompleteMultipartUpload", "ListObjectsV2", "ListMultipartUploads", "ListParts",
}  # fmt: skip


def size_of(item: dict[str, Any]) -> int:
    """A DynamoDB item's size in bytes (attribute names and values, low-level form)."""
    total = 0
    for name, value in item.items():
        total += len(name.encode())
        ((kind, raw),) = value.items()
        if kind == "N":
            total += len(str(raw).lstrip("-").replace(".", "")) // 2 + 1
        elif kind == "S":
            total += len(str(raw).encode())
        elif kind == "B":
            total += len(raw)
        elif kind == "M":
            total += 3 + size_of(raw)
        elif kind == "L":
            total += 3 + sum(size_of({"": v}) for v in raw)
        else:
            total += len(json.dumps(raw, default=str).encode())
    return total


@dataclass
class Bill:
    requests: Counter[str] = field(default_factory=Counter)
    wru: float = 0.0
    rru: float = 0.0
    sqs: int = 0
    kms: int = 0
    s3_put: int = 0
    s3_get: int = 0
    invocations: int = 0
    gb_s: float = 0.0
    log_bytes: int = 0
    http: int = 0
    emails: int = 0
    wru_by_table: Counter[str] = field(default_factory=Counter)

    def dollars(self) -> dict[str, float]:
        return {
            "DynamoDB": self.wru * PRICE["dynamodb_wru"] + self.rru * PRICE["dynamodb_rru"],
            "Lambda": self.invocations * PRICE["lambda_request"] + self.gb_s * PRICE["lambda_gb_s"],
            "SQS": self.sqs * PRICE["sqs_request"],
            "KMS": self.kms * PRICE["kms_request"],
            "S3": self.s3_put * PRICE["s3_put"] + self.s3_get * PRICE["s3_get"],
            "Logs": self.log_bytes / 1e9 * PRICE["logs_gb"],
            "API Gateway": self.http * PRICE["http_api_request"],
            "SES": self.emails * PRICE["ses_email"],
        }


class Meter:
    """Prices every call the shared clients make, under the function making it."""

    def __init__(self, template: dict[str, Any], physical: dict[str, Any], raw: Any) -> None:
        from success_metrics import observability

        self.current = observability.current_function
        self.bills: dict[str, Bill] = defaultdict(Bill)
        self.unpriced: Counter[str] = Counter()
        self.raw = raw  # an unmetered client, to read items back
        self.indexes: dict[str, list[tuple[list[str], str]]] = {}
        self.logical = {
            v["Ref"]: k for k, v in physical.items() if isinstance(v, dict) and "Ref" in v
        }
        for logical, resource in template["Resources"].items():
            if resource["Type"] != "AWS::DynamoDB::Table":
                continue
            name = physical[logical]["Ref"]
            self.indexes[name] = [
                (
                    [k["AttributeName"] for k in gsi["KeySchema"]],
                    gsi["Projection"]["ProjectionType"],
                )
                for gsi in resource["Properties"].get("GlobalSecondaryIndexes", [])
            ]
        self.key_names: dict[str, list[str]] = {}

    def bill(self) -> Bill:
        return self.bills[self.current() or "operator"]

    # -- DynamoDB

    def _key_names(self, table: str) -> list[str]:
        if table not in self.key_names:
            schema = self.raw.describe_table(TableName=table)["Table"]["KeySchema"]
            self.key_names[table] = [k["AttributeName"] for k in schema]
        return self.key_names[table]

    def _write(self, table: str, item: dict[str, Any] | None, factor: float = 1.0) -> float:
        units = self._units(table, item) * factor
        self.bill().wru_by_table[self.logical.get(table, table)] += units
        return units

    def _units(self, table: str, item: dict[str, Any] | None) -> float:
        if not item:
            return 1  # a delete or a failed condition: 1 unit
        units = math.ceil(size_of(item) / 1024) or 1
        for keys, projection in self.indexes.get(table, []):
            if all(k in item for k in keys):
                projected = item if projection == "ALL" else {k: item[k] for k in keys}
                units += math.ceil(size_of(projected) / 1024) or 1
        return units

    def _read_back(self, table: str, key: dict[str, Any]) -> dict[str, Any] | None:
        found: dict[str, Any] | None = self.raw.get_item(TableName=table, Key=key).get("Item")
        return found

    def _reads(self, items: list[dict[str, Any]], consistent: bool) -> float:
        kb = sum(size_of(i) for i in items) / 1024
        return (math.ceil(kb / 4) or 1) * (1.0 if consistent else 0.5)

    def dynamodb(self, name: str, params: dict[str, Any], parsed: dict[str, Any]) -> None:
        bill = self.bill()
        consistent = bool(params.get("ConsistentRead"))
        if name == "PutItem":
            bill.wru += self._write(params["TableName"], params["Item"])
        elif name in ("UpdateItem", "DeleteItem"):
            table = params["TableName"]
            after = self._read_back(table, params["Key"]) if name == "UpdateItem" else None
            before = parsed.get("Attributes") if name == "DeleteItem" else None
            bill.wru += self._write(table, after or before or params["Key"])
        elif name == "BatchWriteItem":
            for table, requests in params["RequestItems"].items():
                for request in requests:
                    if "PutRequest" in request:
                        bill.wru += self._write(table, request["PutRequest"]["Item"])
                    else:
                        bill.wru += self._write(table, request["DeleteRequest"]["Key"])
        elif name == "TransactWriteItems":
            for action in params["TransactItems"]:
                ((kind, body),) = action.items()
                table = body["TableName"]
                if kind == "Put":
                    bill.wru += self._write(table, body["Item"], 2)
                elif kind == "Update":
                    bill.wru += self._write(table, self._read_back(table, body["Key"]), 2)
                elif kind == "ConditionCheck":
                    bill.rru += 1  # a transactional read: 2 x half-read units, ~1 for small items
                else:
                    bill.wru += self._write(table, body.get("Key"), 2)
        elif name == "GetItem":
            item = parsed.get("Item")
            bill.rru += self._reads([item] if item else [], consistent)
        elif name in ("Query", "Scan"):
            bill.rru += self._reads(parsed.get("Items", []), consistent)
        elif name == "BatchGetItem":
            for table, found in parsed.get("Responses", {}).items():
                wanted = params["RequestItems"][table]
                for item in found:
                    bill.rru += self._reads([item], bool(wanted.get("ConsistentRead")))
        elif name == "TransactGetItems":
            for item in parsed.get("Responses", []):
                bill.rru += 2 * self._reads([item.get("Item", {})], True)

    # -- the others

    def other(self, service: str, name: str, params: dict[str, Any]) -> None:
        bill = self.bill()
        if service == "sqs":
            if name == "SendMessageBatch":
                size = sum(len(e["MessageBody"].encode()) for e in params["Entries"])
                bill.sqs += max(1, math.ceil(size / 65536))
            elif name == "SendMessage":
                bill.sqs += max(1, math.ceil(len(params["MessageBody"].encode()) / 65536))
            elif name != "GetQueueUrl":
                bill.sqs += 1
        elif service == "kms":
            bill.kms += 1
        elif service == "s3":
            if name in S3_PUT_CLASS:
                bill.s3_put += 1
            elif name in ("GetObject", "HeadObject"):
                bill.s3_get += 1
        elif service == "ses" and name in ("SendRawEmail", "SendEmail"):
            bill.emails += len(params.get("Destinations") or [None])

    def attach(self, client: Any, service: str) -> None:
        def before(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
            context["cost_params"] = params

        def after(model: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
            params = context.get("cost_params", {})
            self.bill().requests[f"{service}:{model.name}"] += 1
            try:
                if service == "dynamodb":
                    self.dynamodb(model.name, params, parsed)
                else:
                    self.other(service, model.name, params)
            except Exception as exc:  # the meter must never change what the code does
                self.unpriced[f"{service}:{model.name}: {type(exc).__name__} {exc}"] += 1

        client.meta.events.register(f"before-parameter-build.{service}", before)
        client.meta.events.register(f"after-call.{service}", after)


def memory_of(template: dict[str, Any]) -> dict[str, int]:
    default = template["Globals"]["Function"].get("MemorySize", 128)
    return {
        name: r["Properties"].get("MemorySize", default)
        for name, r in template["Resources"].items()
        if r["Type"] == "AWS::Serverless::Function"
    }


def main() -> None:
    sys.stdout = TALLY
    from moto import mock_aws

    from devstack import demo
    from devstack.lambda_events import LambdaContext, signed_ingest_event, sqs_record
    from devstack.provision import provision
    from devstack.runner import PLATFORM_URL_SETTINGS
    from devstack.sink import Sink
    from success_metrics import aws, caches
    from success_metrics.models.destinations import DestinationRequest
    from success_metrics.stores import destinations, organizations

    with mock_aws(), Sink() as sink:
        caches.reset_all()
        stack = provision(prefix="cost")
        os.environ.update(stack.all_environment())
        for name in PLATFORM_URL_SETTINGS:
            os.environ[name] = sink.url
        os.environ.update(ALLOW_LOOPBACK_WEBHOOKS="true", SLACK_ALLOWED_HOSTS="127.0.0.1")
        os.environ["POWERTOOLS_METRICS_NAMESPACE"] = "SuccessMetrics"
        caches.reset_all()
        org = organizations.create_organization("Cost of a day")
        organizations.set_limits(org.org_id, requests_per_hour=10**7, events_per_hour=10**9)
        organizations.set_slack_webhook(org.org_id, f"{sink.url}/services/T1/B1/alerts")
        for dest_id, settings in {
            "mixpanel": {"kind": "mixpanel", "project_token": "tok", "api_secret": "s3cr3t"},
            "ga4": {"kind": "ga4", "measurement_id": "G-COST1234", "api_secret": "ga"},
            "hooks": {"kind": "webhook", "url": f"{sink.url}/webhooks/cost"},
            "crm": {"kind": "webhook", "url": f"{sink.url}/webhooks/crm",
                    "event_types": ["supplier.*", "payment.*"]},
        }.items():  # fmt: skip
            request = DestinationRequest.model_validate({"name": dest_id, "settings": settings})
            destinations.put(org.org_id, dest_id, request)

        import boto3

        raw = boto3.client("dynamodb", region_name=os.environ.get("AWS_DEFAULT_REGION"))
        meter = Meter(stack.template, stack.physical, raw)
        for service in ("dynamodb", "sqs", "kms", "s3", "ses"):
            meter.attach(getattr(aws, service)(), service)
        memory = memory_of(stack.template)

        def invoke(function: str, handler: Callable[..., Any], event: dict[str, Any]) -> Any:
            bill = meter.bills[function]
            before = TALLY.bytes
            started = time.perf_counter()
            try:
                answer = handler(event, LambdaContext(function, 900))
            except Exception as exc:  # a whole batch failed: Lambda retries it
                answer = {"error": str(exc)}
            elapsed = time.perf_counter() - started
            bill.invocations += 1
            bill.gb_s += memory.get(function, 512) / 1024 * math.ceil(elapsed * 1000) / 1000
            bill.log_bytes += TALLY.bytes - before + LAMBDA_OWN_LOG_BYTES
            return answer

        def drain(queue: str, module: str, function: str, batch: int) -> None:
            handler = __import__(module, fromlist=["lambda_handler"]).lambda_handler
            sqs = aws.sqs()
            url, arn = stack.physical[queue]["Ref"], stack.physical[queue]["Arn"]
            for _ in range(10_000):
                got: list[dict[str, Any]] = []
                while len(got) < batch:
                    more = sqs.receive_message(
                        QueueUrl=url, MaxNumberOfMessages=min(10, batch - len(got)),
                        VisibilityTimeout=0 if queue == "ExportQueue" else 30,
                        AttributeNames=["All"], MessageAttributeNames=["All"],
                    ).get("Messages", [])  # fmt: skip
                    if not more:
                        break
                    got += more
                if not got:
                    return
                # the event source's own requests: its receives and one delete per batch
                meter.bills[function].sqs += math.ceil(len(got) / 10) + 1
                records = [
                    sqs_record(arn, m["MessageId"], m["ReceiptHandle"], m["Body"],
                               m.get("Attributes"), m.get("MessageAttributes"))
                    for m in got
                ]  # fmt: skip
                answer = invoke(function, handler, {"Records": records})
                failed = {f["itemIdentifier"] for f in answer.get("batchItemFailures", [])}
                for m in got:
                    if m["MessageId"] not in failed and "error" not in answer:
                        sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])

        # -- the day's events, in a mix of batch sizes
        rng = random.Random(SEED)
        today = datetime.now(UTC).date()
        events = demo.generate(EVENTS, seed=SEED, season_start=today, season_end=today)
        now = datetime.now(UTC)
        for i, event in enumerate(events):  # within the last 24 h, so GA4 takes them
            event["occurred_at"] = (now - timedelta(seconds=86_000 * i / len(events))).strftime(
                "%Y-%m-%dT%H:%M:%SZ"
            )
        from webhook_receive import app as receive

        sizes = [s for s, _ in BATCH_SIZES]
        weights = [w / s for s, w in BATCH_SIZES]  # share of events -> share of requests
        start, requests_sent = 0, 0
        while start < len(events):
            size = rng.choices(sizes, weights)[0]
            body = json.dumps({"events": events[start : start + size]}).encode()
            invoke("WebhookReceiveFunction", receive.lambda_handler,
                   signed_ingest_event(org.org_id, org.webhook_secret, body))  # fmt: skip
            meter.bills["WebhookReceiveFunction"].http += 1
            start += size
            requests_sent += 1
            if requests_sent % 50 == 0:
                print(f"  posted {start}/{len(events)} events", file=sys.stderr)
        consumers = (
            ("SyncQueue", "sync_router.app", "SyncRouterFunction", 10),
            ("MetricsQueue", "metrics_aggregate.app", "MetricsAggregateFunction", 10),
            ("DeliveryQueue", "platform_sync.app", "PlatformSyncFunction", 100),
        )
        for queue, module, function, batch in consumers:
            drain(queue, module, function, batch)
            print(f"  drained {queue}", file=sys.stderr)

        # -- one export and one erasure, through their APIs (and the key's authorizer)
        from api_authorizer import app as authorizer
        from export_request import app as export_request

        from tests.support.exports import Exports
        from tests.support.gdpr import call_gdpr

        exports = Exports(export_request.lambda_handler, authorizer.lambda_handler, org.api_key)
        made = exports.create(start=str(today), end=str(today), notify=["ops@example.com"])
        assert made.status == 202, made
        for function in ("ApiAuthorizerFunction", "ExportRequestFunction"):
            meter.bills[function].invocations += 1
            meter.bills[function].http += function == "ExportRequestFunction"
        drain("ExportQueue", "export_worker.app", "ExportWorkerFunction", 1)
        subject = next(e["user_id"] for e in events if e.get("user_id"))
        erased = call_gdpr(authorizer.lambda_handler, org.api_key, "POST",
                               "/v1/gdpr/erasures", "/v1/gdpr/erasures",
                           body={"user_id": subject})  # fmt: skip
        assert erased.status == 202, erased
        for function in ("ApiAuthorizerFunction", "GdprApiFunction"):
            meter.bills[function].invocations += 1
            meter.bills[function].http += function == "GdprApiFunction"
        # the erasure is queued after the profile cache lifetime (30 s), so that no instance
        # still holds the profile from before it
        gdpr_url = stack.physical["GdprQueue"]["Ref"]
        for _ in range(90):
            attributes = aws.sqs().get_queue_attributes(
                QueueUrl=gdpr_url, AttributeNames=["ApproximateNumberOfMessages"]
            )["Attributes"]
            if int(attributes["ApproximateNumberOfMessages"]):
                break
            time.sleep(1)
        drain("GdprQueue", "gdpr_worker.app", "GdprWorkerFunction", 1)
        for queue, module, function, batch in consumers:
            drain(queue, module, function, batch)

        stored_gb = 0.0
        for logical, resource in stack.template["Resources"].items():
            if resource["Type"] == "AWS::DynamoDB::Table":
                pages = raw.get_paginator("scan").paginate(TableName=stack.physical[logical]["Ref"])
                stored_gb += sum(size_of(i) + 100 for p in pages for i in p["Items"]) / 1e9
        delivered = len(sink.requests())

    sys.stdout = sys.__stdout__
    report(meter.bills, len(events), stored_gb, delivered)
    if meter.unpriced:
        print(f"calls the meter could not price: {dict(meter.unpriced)}")


def report(bills: dict[str, Bill], events: int, stored_gb: float, delivered: int) -> None:
    per_million = 1e6 / events
    print(f"cost of a day of {events} events (batches {BATCH_SIZES}), 4 destinations, "
          f"1 export, 1 erasure; {delivered} platform requests")  # fmt: skip
    header = (f"{'function':<26} {'calls':>7} {'WRU/ev':>7} {'RRU/ev':>7} {'SQS/ev':>7} "
              f"{'KMS/ev':>7} {'GB-s/ev':>9} {'log B/ev':>8} {'$/M events':>11}")  # fmt: skip
    print(header)
    totals: Counter[str] = Counter()
    # "operator": the setup, and the receives and deletes of the emulated event sources (which
    # are charged to their functions above, as Lambda's event source makes them)
    for name, bill in sorted((n, b) for n, b in bills.items() if n != "operator"):
        dollars = bill.dollars()
        totals.update(dollars)
        calls = sum(bill.requests.values())
        print(
            f"{name:<26} {calls:7d} {bill.wru / events:7.2f} {bill.rru / events:7.2f} "
            f"{bill.sqs / events:7.2f} {bill.kms / events:7.3f} {bill.gb_s / events:9.5f} "
            f"{bill.log_bytes / events:8.0f} {sum(dollars.values()) * per_million:11.2f}"
        )
    storage = stored_gb / events * 1e6 * PRICE["dynamodb_gb_month"]
    print(f"{'(storage, per month kept)':<26} {'':>7} {'':>7} {'':>7} {'':>7} {'':>7} {'':>9} "
          f"{'':>8} {storage:11.2f}")  # fmt: skip
    print("by service, $ per million events:")
    for service, amount in totals.most_common():
        print(f"  {service:<12} {amount * per_million:9.2f}")
    print("where the write units go, per event (function: table WRU, ...):")
    for name, bill in sorted(bills.items()):
        if name != "operator" and bill.wru / events >= 0.05:
            parts = ", ".join(
                f"{table.removesuffix('Table')} {units / events:.2f}"
                for table, units in bill.wru_by_table.most_common(5)
            )
            top = ", ".join(f"{call} {n / events:.2f}" for call, n in bill.requests.most_common(4))
            print(f"  {name.removesuffix('Function')}: {parts}; requests/event: {top}")
    total = sum(totals.values()) * per_million
    print(f"total {total:.2f} $ per million events, plus {storage:.2f} $ per month of storage")
    wru = sum(b.wru for n, b in bills.items() if n != "operator") / events
    rru = sum(b.rru for n, b in bills.items() if n != "operator") / events
    print(f"DynamoDB: {wru:.2f} WRU and {rru:.2f} RRU per event in all; metrics alone "
          f"{bills['MetricsAggregateFunction'].wru / events:.2f} WRU; ingest requests per event "
          f"{sum(bills['WebhookReceiveFunction'].requests.values()) / events:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
