"""The console's operator pages: exports, deliveries, privacy and API keys. Each one calls the
same functions as the API route that does the same thing (`exports.api`, `admin`, `gdpr`), with
the session's principal, so the scopes and every rule are the API's."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import ValidationError

from success_metrics import admin, clock, dead_letters
from success_metrics.errors import ForbiddenError, NotFoundError, ValidationFailedError
from success_metrics.exports import api as exports
from success_metrics.exports.layout import manifest_key
from success_metrics.exports.models import Compression, Dataset, Format
from success_metrics.gdpr import erasure
from success_metrics.http import Principal
from success_metrics.models.organizations import ALL_SCOPES, AlertRule, Scope
from success_metrics.stores import consent, destinations, export_jobs, organizations
from success_metrics.stores.export_files import ExportFiles
from success_metrics.sync import recovery

DATASETS = [d.value for d in Dataset if d is not Dataset.ACCESS]
FORMATS = [f.value for f in Format]
COMPRESSIONS = [c.value for c in Compression]
SCOPES = [s.value for s in ALL_SCOPES]


def when(iso: str | None) -> str:
    """An ISO time as the page shows it (UTC, to the second); the `<time>` element carries it."""
    if not iso:
        return ""
    return iso.replace("T", " ")[:19] + " UTC"


def when_ts(epoch: float | None) -> str:
    if not epoch:
        return ""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def iso_ts(epoch: float | None) -> str:
    """Epoch seconds as the ISO time a `<time datetime>` carries."""
    if not epoch:
        return ""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class ExportsPage:
    exports: list[dict[str, Any]]
    active: bool
    can_write: bool


def exports_page(principal: Principal, params: dict[str, str]) -> ExportsPage:
    found = exports.list_exports(principal, {"limit": "20"})["exports"]
    return ExportsPage(
        exports=found,
        active=any(e["status"] in ("queued", "running") for e in found),
        can_write=Scope.EXPORTS_WRITE.value in principal.scopes,
    )


def create_export(principal: Principal, form: dict[str, str]) -> str:
    """Create an export from the form; returns its id."""
    body: dict[str, Any] = {
        "dataset": form.get("dataset", ""),
        "format": form.get("format", ""),
        "from": form.get("from", ""),
        "to": form.get("to", ""),
        "compression": form.get("compression") or "none",
    }
    if form.get("granularity"):
        body["granularity"] = form["granularity"]
    if form.get("user_type"):
        body["filters"] = {"user_type": form["user_type"]}
    notify = [a.strip() for a in form.get("notify", "").split(",") if a.strip()]
    if notify:
        body["notify"] = notify
    job, _ = exports.create(principal, body, clock.now())
    return str(job["id"])


def cancel_export(principal: Principal, export_id: str) -> None:
    exports.cancel(principal, export_id, clock.now())


def download_url(principal: Principal, export_id: str) -> str:
    principal.require(Scope.EXPORTS_READ)
    job = export_jobs.get(principal.org_id, export_id)
    return exports.download(job, clock.now())


def export_manifest(principal: Principal, export_id: str) -> dict[str, Any]:
    """The manifest written beside an export's file (rows, bytes, SHA-256, the request), as
    long as the file is there."""
    principal.require(Scope.EXPORTS_READ)
    job = export_jobs.get(principal.org_id, export_id)
    exports.download(job, clock.now())  # the same refusals: no file yet, withdrawn, expired
    manifest: dict[str, Any] = ExportFiles.default().read_json(manifest_key(job))
    return {"export_id": export_id, "manifest": manifest}


@dataclass
class DeliveriesPage:
    deliveries: list[dict[str, Any]]
    filters: dict[str, str]
    event_id: str
    next_cursor: str | None
    destinations: list[str]
    recoveries: list[dict[str, Any]]

    @property
    def status(self) -> str:
        return self.filters.get("status", "")

    @property
    def recovering(self) -> bool:
        return any(r["status"] in recovery.RUNNING for r in self.recoveries)


DELIVERY_FILTERS = ("status", "dest_id", "since", "until")


def deliveries_page(principal: Principal, params: dict[str, str]) -> DeliveriesPage:
    principal.require(Scope.CONFIG_WRITE)
    filters = {k: params[k].strip() for k in DELIVERY_FILTERS if params.get(k, "").strip()}
    dests = sorted(d.dest_id for d in destinations.list_all(principal.org_id))
    recent = recovery.recent(principal.org_id)
    event_id = params.get("event_id", "").strip()
    if event_id:
        found = admin.list_deliveries(principal, {"event_id": event_id})
        return DeliveriesPage(found["destinations"], {}, event_id, None, dests, recent)
    query = {**filters, "limit": "50"}
    if params.get("cursor"):
        query["cursor"] = params["cursor"]
    found = admin.list_deliveries(principal, query)
    return DeliveriesPage(found["deliveries"], filters, "", found["next_cursor"], dests, recent)


def delivery_page(principal: Principal, delivery_id: str) -> dict[str, Any]:
    return admin.get_delivery(principal, delivery_id)


def start_recovery(principal: Principal, form: dict[str, str]) -> str:
    """Queue "retry everything that failed since …" (optionally for one destination)."""
    principal.require(Scope.CONFIG_WRITE)
    since_text = form.get("since", "").strip()
    if not since_text:
        raise ValidationFailedError("since is required: the deliveries failed at or after it")
    since = admin.moment("since", since_text)
    dest_id = form.get("dest_id", "").strip() or None
    if dest_id is not None:
        destinations.get(principal.org_id, dest_id)  # NotFoundError when it does not exist
    job = recovery.start(principal.org_id, principal.key_id, since, dest_id)
    return str(job["recovery_id"])


def retry_delivery(principal: Principal, delivery_id: str) -> None:
    admin.retry_delivery(principal, delivery_id)


QUEUE_LABELS = {
    "sync": "Routing to destinations",
    "delivery": "Deliveries",
    "metrics": "Metrics",
    "export": "Exports",
    "gdpr": "Erasures",
}


@dataclass
class DeadLettersPage:
    counts: dict[str, int]
    dead_letters: list[dict[str, Any]]
    queue: str


def dead_letters_page(principal: Principal, params: dict[str, str]) -> DeadLettersPage:
    principal.require(Scope.CONFIG_WRITE)
    queue = params.get("queue", "")
    if queue and queue not in dead_letters.QUEUES:
        raise ValidationFailedError(f"queue is one of {', '.join(dead_letters.QUEUES)}")
    found = dead_letters.listing(principal.org_id)
    listed = [d for d in found["dead_letters"] if not queue or d["queue"] == queue]
    return DeadLettersPage(found["counts"], listed[:200], queue)


def replay_dead_letter(principal: Principal, queue: str, message_id: str) -> None:
    principal.require(Scope.CONFIG_WRITE)
    dead_letters.replay(principal.org_id, queue, message_id)


def replay_dead_letters(principal: Principal, queue: str) -> int:
    principal.require(Scope.CONFIG_WRITE)
    return dead_letters.replay_all(principal.org_id, queue)


@dataclass
class PrivacyPage:
    consent: dict[str, Any] | None
    user_id: str


def privacy_page(principal: Principal, params: dict[str, str]) -> PrivacyPage:
    principal.require(Scope.GDPR_WRITE)
    user_id = params.get("user_id", "").strip()
    if not user_id:
        return PrivacyPage(None, "")
    try:
        found = consent.view(principal.org_id, user_id, clock.now())
    except NotFoundError:
        found = {"history": []}  # the page says there is none
    return PrivacyPage(found, user_id)


def start_erasure(principal: Principal, form: dict[str, str]) -> str:
    principal.require(Scope.GDPR_WRITE)
    field = "anonymous_id" if form.get("kind") == "anonymous" else "user_id"
    kind, subject = erasure.request({field: form.get("subject", "").strip()})
    org = organizations.get_organization(principal.org_id)
    job, _ = erasure.start(org, principal.key_id, subject, clock.now(), kind)
    return job.erasure_id


def erasure_page(principal: Principal, erasure_id: str) -> dict[str, Any]:
    principal.require(Scope.GDPR_WRITE)
    return erasure.get(principal.org_id, erasure_id).view()


@dataclass
class KeysPage:
    """Settings: the organization, its API keys and (with `audit:read`) its audit log."""

    keys: list[dict[str, Any]]
    scopes: list[str]
    org: dict[str, Any]
    records: list[dict[str, Any]]
    alert_metrics: list[str]


def keys_page(principal: Principal, params: dict[str, str]) -> KeysPage:
    principal.require(Scope.CONFIG_WRITE)
    keys = [
        {
            "key_id": k.key_id,
            "scopes": " ".join(s.value for s in k.scopes),
            "description": k.description,
            "created": datetime.fromtimestamp(k.created_at, UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "revoked": k.revoked_at is not None,
            "current": k.key_id == principal.key_id,
        }
        for k in sorted(organizations.list_api_keys(principal.org_id), key=lambda k: -k.created_at)
    ]
    return KeysPage(
        keys,
        sorted(principal.scopes),
        organization_facts(principal),
        audit_records(principal),
        list(ALERT_METRICS),
    )


def create_key(principal: Principal, form: dict[str, list[str]]) -> str:
    """A new key with some of the caller's own scopes (never more); returns the key, to be
    shown once."""
    principal.require(Scope.CONFIG_WRITE)
    wanted = form.get("scopes") or []
    unknown = set(wanted) - set(SCOPES)
    if unknown or not wanted:
        raise ValidationFailedError("choose at least one scope")
    beyond = set(wanted) - principal.scopes
    if beyond:
        raise ForbiddenError(f"a key cannot grant scopes it lacks: {', '.join(sorted(beyond))}")
    description = (form.get("description") or [""])[0][:200]
    created = organizations.create_api_key(
        principal.org_id,
        [Scope(s) for s in wanted],
        description or f"console {time.strftime('%Y-%m-%d')}",
    )
    return created.api_key


def revoke_key(principal: Principal, key_id: str) -> None:
    principal.require(Scope.CONFIG_WRITE)
    organizations.revoke_api_key(principal.org_id, key_id)


# -- destinations ----------------------------------------------------------------------------


def destinations_page(principal: Principal, params: dict[str, str]) -> list[dict[str, Any]]:
    """Each destination with its health: enabled or why not, failing since, breaker state."""
    from success_metrics.stores import control

    found: list[dict[str, Any]] = admin.list_destinations(principal)["destinations"]
    breakers = control.breaker_persistence()
    for dest in found:
        record = breakers.get_state(f"{principal.org_id}:{dest['dest_id']}")
        dest["breaker"] = str(getattr(record.state, "value", record.state)).lower()
        dest["breaker_failures"] = record.failure_count
        dest["breaker_opened_at"] = when_ts(record.opened_at)
        dest["failing_since_text"] = when_ts(dest.get("failing_since"))
    return found


def set_destination_enabled(principal: Principal, dest_id: str, enabled: bool) -> None:
    from success_metrics.stores import destinations

    principal.require(Scope.CONFIG_WRITE)
    dest = destinations.get(principal.org_id, dest_id)
    update: dict[str, Any] = {"enabled": enabled, "updated_at": int(time.time())}
    if enabled:
        update["disabled_reason"] = None
    destinations.save(dest.model_copy(update=update))


# -- live events -----------------------------------------------------------------------------

LIVE_LIMIT = 25


@dataclass
class LiveEvent:
    doc: dict[str, Any]
    received: str
    where: list[dict[str, Any]]
    text: str  # the stored JSON, indented (the page escapes it)


@dataclass
class LivePage:
    events: list[LiveEvent]
    type: str
    user_id: str
    types: list[str]


def live_page(principal: Principal, params: dict[str, str]) -> LivePage:
    """The organization's latest events (today's and yesterday's, newest first), or a user's
    latest, each with where it was delivered, withheld or skipped and why."""
    import json
    from datetime import timedelta

    from success_metrics.models.events import EVENT_TYPES
    from success_metrics.stores import events as event_store
    from success_metrics.sync import delivery_log

    principal.require(Scope.CONFIG_WRITE)
    event_type = params.get("type", "").strip()
    user_id = params.get("user_id", "").strip()
    if user_id:
        docs = event_store.latest_of_user(principal.org_id, user_id, 100)
    else:
        today = datetime.now(UTC).date()
        docs = event_store.latest(principal.org_id, [today, today - timedelta(days=1)], LIVE_LIMIT)
    if event_type:
        docs = [d for d in docs if d.get("type") == event_type]
    docs.sort(key=lambda d: (d.get("received_at", 0), d.get("occurred_at", "")), reverse=True)
    shown = [
        LiveEvent(
            doc=d,
            received=when_ts(d.get("received_at")),
            where=delivery_log.event_status(principal.org_id, d["id"]),
            text=json.dumps(d, indent=2, sort_keys=True, ensure_ascii=False),
        )
        for d in docs[:LIVE_LIMIT]
    ]
    return LivePage(shown, event_type, user_id, sorted(EVENT_TYPES))


# -- settings: the organization ----------------------------------------------------------------


def organization_facts(principal: Principal) -> dict[str, Any]:
    org = organizations.get_organization(principal.org_id, fresh=True)
    now = time.time()
    secrets = [
        {
            "created": when_ts(s.created_at),
            "valid_until": when_ts(s.valid_until) if s.valid_until else "current",
        }
        for s in org.secrets_valid_at(now)
    ]
    return {
        "name": org.name,
        "limits": org.limits.model_dump(mode="json"),
        "retention_days": org.retention_days,
        "gross_margin": str(org.gross_margin),
        "alerts": [a.model_dump(mode="json") for a in org.alerts],
        "slack": org.slack_webhook is not None,
        "anonymise_all": org.anonymise_all,
        "anonymise_unknown_country": org.anonymise_unknown_country,
        "secrets": secrets,
    }


def rotate_secret(principal: Principal) -> str:
    principal.require(Scope.CONFIG_WRITE)
    return organizations.rotate_webhook_secret(principal.org_id)


def audit_records(principal: Principal) -> list[dict[str, Any]]:
    if Scope.AUDIT_READ.value not in principal.scopes:
        return []
    return list(admin.list_audit(principal, {"limit": "25"})["records"])


def validate_destination(principal: Principal, dest_id: str) -> str:
    """What GA4's validation server says of the destination, in a sentence."""
    from success_metrics.sync import validation

    principal.require(Scope.CONFIG_WRITE)
    status, messages = validation.validate_ga4(principal.org_id, dest_id)
    if status == 200 and not messages:
        return f"GA4 accepts events for {dest_id}"
    said = "; ".join(str(m.get("description", m)) for m in messages) or f"HTTP {status}"
    return f"GA4 refuses events for {dest_id}: {said}"[:300]


def access_request(principal: Principal, form: dict[str, str]) -> str:
    """A JSON export of everything held on one user; returns the export's id."""
    job, _ = exports.access_request(
        principal, {"user_id": form.get("user_id", "").strip()}, clock.now()
    )
    return str(job["id"])


# -- settings: the organization's own choices -------------------------------------------------
# Limits and retention are the platform operator's (`smctl org set-limits`): a tenant's key does
# not raise its own quotas, so the page shows them and says who changes them.

ALERT_METRICS = (
    "signups", "trials_started", "trial_to_paid", "new_paying_suppliers", "active_users",
    "seasonal_conversion", "revenue", "cac", "mrr_end", "net_mrr_churn", "nrr",
)  # fmt: skip


def set_margin(principal: Principal, form: dict[str, str]) -> str:
    principal.require(Scope.CONFIG_WRITE)
    try:
        org = organizations.set_gross_margin(principal.org_id, Decimal(form.get("margin", "")))
    except (InvalidOperation, ValidationError) as exc:
        raise ValidationFailedError(
            "the gross margin is a number above 0 and at most 1 (e.g. 0.8)"
        ) from exc
    return f"gross margin {org.gross_margin}"


def set_slack(principal: Principal, form: dict[str, str]) -> str:
    """Set the Slack incoming webhook (write-only: never shown again), or remove it."""
    principal.require(Scope.CONFIG_WRITE)
    if form.get("remove") == "true":
        organizations.set_slack_webhook(principal.org_id, None)
        return "Slack webhook removed"
    url = form.get("url", "").strip()
    if not url:
        raise ValidationFailedError(
            "paste the Slack incoming-webhook URL (https://hooks.slack.com/…)"
        )
    organizations.set_slack_webhook(principal.org_id, url)
    return "Slack webhook set"


def add_alert(principal: Principal, form: dict[str, str]) -> str:
    principal.require(Scope.CONFIG_WRITE)
    metric = form.get("metric", "").strip()
    currency = form.get("currency", "").strip().upper()
    if currency:
        metric = f"{metric}:{currency}"
    try:
        rule = AlertRule(metric=metric, op=form.get("op", ""), value=Decimal(form.get("value", "")))
    except (InvalidOperation, ValidationError) as exc:
        raise ValidationFailedError(
            "an alert is a metric, one of < <= > >=, and a number (e.g. signups < 10)"
        ) from exc
    if metric.partition(":")[0] not in ALERT_METRICS:
        raise ValidationFailedError(f"{metric} is not a metric an alert can watch")
    organizations.set_alert(principal.org_id, rule)
    return f"alert set: {rule.metric} {rule.op} {rule.value}"


def clear_alert(principal: Principal, form: dict[str, str]) -> str:
    principal.require(Scope.CONFIG_WRITE)
    metric = form.get("metric", "").strip() or None
    organizations.clear_alerts(principal.org_id, metric)
    return f"alerts on {metric} removed" if metric else "every alert removed"


def set_privacy(principal: Principal, form: dict[str, str]) -> str:
    """The same change as `PUT /v1/organization/settings`: the form states both choices."""
    admin.put_settings(
        principal,
        {
            "anonymise_all": form.get("anonymise_all") == "on",
            "anonymise_unknown_country": form.get("anonymise_unknown_country") == "on",
        },
    )
    everyone = "every user" if form.get("anonymise_all") == "on" else "EU users"
    return f"anonymised before anything leaves: {everyone}" + (
        ", and users with no country" if form.get("anonymise_unknown_country") == "on" else ""
    )


# -- destinations: add and edit ----------------------------------------------------------------

DESTINATION_KINDS = ("webhook", "mixpanel", "ga4", "slack")


@dataclass
class FormField:
    name: str
    label: str
    secret: bool  # write-only: shown empty, kept when left blank on an edit
    required: bool
    choices: list[str]  # a select's options (empty: a text input)
    is_list: bool  # comma-separated in the form
    value: str
    is_set: bool  # a secret that has a value


@dataclass
class DestinationForm:
    kind: str
    dest_id: str  # empty for a new destination
    name: str
    enabled: bool
    fields: list[FormField]


def _settings_model(kind: str) -> Any:
    from success_metrics.models.destinations import (
        Ga4Settings,
        MixpanelSettings,
        SlackSettings,
        WebhookSettings,
    )

    models = {
        "webhook": WebhookSettings,
        "mixpanel": MixpanelSettings,
        "ga4": Ga4Settings,
        "slack": SlackSettings,
    }
    if kind not in models:
        raise ValidationFailedError(f"a destination is one of: {', '.join(DESTINATION_KINDS)}")
    return models[kind]


def destination_form(principal: Principal, kind: str, dest_id: str = "") -> DestinationForm:
    """The fields of a destination of `kind`, from its settings model; an existing destination's
    public settings filled in, its secrets never (only whether each is set)."""
    from typing import Literal, get_args, get_origin

    from success_metrics.models.destinations import SECRET_FIELDS
    from success_metrics.stores import destinations

    principal.require(Scope.CONFIG_WRITE)
    public: dict[str, Any] = {}
    secrets_set: list[str] = []
    name, enabled = "", True
    if dest_id:
        dest = destinations.get(principal.org_id, dest_id)
        kind, public, name, enabled = dest.kind, dest.public, dest.name, dest.enabled
        secrets_set = destinations.view(dest).secrets_set
    fields = []
    for field_name, info in _settings_model(kind).model_fields.items():
        if field_name == "kind":
            continue
        annotation = info.annotation
        options = [a for a in get_args(annotation) if a is not type(None)]
        literal = next((o for o in [annotation, *options] if get_origin(o) is Literal), None)
        is_list = get_origin(annotation) is list
        default = None if info.is_required() else info.get_default(call_default_factory=True)
        value = public.get(field_name, default) if dest_id else default
        if isinstance(value, list):
            value = ", ".join(value)
        fields.append(
            FormField(
                name=field_name,
                label=field_name.replace("_", " "),
                secret=field_name in SECRET_FIELDS[kind],
                required=info.is_required(),
                choices=[str(c) for c in get_args(literal)] if literal else [],
                is_list=is_list,
                value="" if value is None or field_name in SECRET_FIELDS[kind] else str(value),
                is_set=field_name in secrets_set,
            )
        )
    return DestinationForm(kind, dest_id, name, enabled, fields)


def save_destination(
    principal: Principal, form: dict[str, str], dest_id: str = ""
) -> tuple[str, str | None]:
    """Create (`dest_id` from the form) or edit a destination through the API's own
    `PUT /v1/destinations/{id}`; a secret left blank on an edit keeps its value. Returns the id
    and a generated webhook signing secret, shown once."""
    from success_metrics.stores import destinations

    principal.require(Scope.CONFIG_WRITE)
    kept: dict[str, str] = {}
    kind: str
    if dest_id:
        existing = destinations.get(principal.org_id, dest_id)
        kind = existing.kind
        kept = destinations.secrets(existing)
    else:
        dest_id = form.get("dest_id", "").strip()
        kind = form.get("kind", "")
        try:
            destinations.get(principal.org_id, dest_id)
        except NotFoundError:
            pass
        else:
            raise ValidationFailedError(f"destination {dest_id} exists already: edit it instead")
    settings: dict[str, Any] = {"kind": kind}
    for f in destination_form(principal, kind).fields:
        raw = form.get(f.name, "").strip()
        if f.secret and not raw:
            if kept.get(f.name):
                settings[f.name] = kept[f.name]
            continue
        if not raw:
            continue  # the model's default, or its "required" error
        settings[f.name] = [v.strip() for v in raw.split(",") if v.strip()] if f.is_list else raw
    body = {
        "name": form.get("name", "").strip() or dest_id,
        "enabled": form.get("enabled") == "on",
        "settings": settings,
    }
    answer = admin.put_destination(principal, dest_id, body)
    return dest_id, answer.get("signing_secret")
