"""`smctl org`: organizations, their limits, privacy, alerts and Slack webhook."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

import click
from pydantic import ValidationError

from smctl.changes import audited, uses_aws
from smctl.options import ON_OFF, POSITIVE, CliError, arguments, command, group, on_off, output
from smctl.resources import configure
from success_metrics import audit
from success_metrics.models.organizations import AlertRule
from success_metrics.stores import organizations

org = group("org", "organizations")


@command(org, help="create an organization; prints its secrets once")
@click.argument("name")
def create(name: str) -> None:
    configure()
    org_id = organizations.new_org_id()
    with audit.cli_operation(org_id, "org create"):
        created = organizations.create_organization(name, org_id=org_id)
    output(
        {
            "org_id": created.org_id,
            "webhook_secret": created.webhook_secret,
            "api_key": created.api_key,
            "key_id": created.key_id,
        },
        f"organization  {created.org_id}  ({created.name})\n"
        f"webhook secret {created.webhook_secret}\n"
        f"admin API key  {created.api_key}\n"
        "These secrets are shown once: store them now.",
    )


@command(org, help="show an organization's settings")
@click.argument("org_id")
@uses_aws
def show(org_id: str) -> None:
    found = organizations.get_organization(org_id, fresh=True)
    data = found.model_dump(mode="json", exclude={"webhook_secrets"})
    data["webhook_secrets"] = len(found.webhook_secrets)
    output(data, "\n".join(f"{k:16} {v}" for k, v in data.items()))


LIMITS = (
    "requests_per_hour",
    "events_per_hour",
    "exports_per_hour",
    "running_exports",
    "retention_days",
    "erasures_per_hour",
)


@command(org, "set-limits", help="change rate limits or retention")
@click.argument("org_id")
@click.option("--requests-per-hour", type=POSITIVE)
@click.option("--events-per-hour", type=POSITIVE)
@click.option("--exports-per-hour", type=POSITIVE)
@click.option("--running-exports", type=POSITIVE, help="exports queued or running at once")
@click.option("--retention-days", type=POSITIVE)
@click.option("--erasures-per-hour", type=POSITIVE, help="GDPR erasures requested per hour")
@audited("org set-limits")
def set_limits(org_id: str, **limits: int | None) -> None:
    if all(limits[name] is None for name in LIMITS):
        raise CliError(
            "give at least one of " + ", ".join("--" + name.replace("_", "-") for name in LIMITS)
        )
    changed = organizations.set_limits(org_id, **limits)
    output(
        {
            "org_id": changed.org_id,
            "limits": changed.limits.model_dump(),
            "retention_days": changed.retention_days,
        },
        f"{changed.org_id}: {changed.limits.model_dump()} retention {changed.retention_days} days",
    )


@command(org, "set-margin", help="set the gross margin used by CLV")
@arguments("org_id", "margin")
@audited("org set-margin")
def set_margin(org_id: str, margin: str) -> None:
    """MARGIN is above 0 and at most 1, e.g. 0.8."""
    try:
        changed = organizations.set_gross_margin(org_id, Decimal(margin))
    except (InvalidOperation, ValidationError) as exc:
        raise CliError("the gross margin is a number above 0 and at most 1 (e.g. 0.8)") from exc
    output(
        {"org_id": changed.org_id, "gross_margin": str(changed.gross_margin)},
        f"{changed.org_id}: gross margin {changed.gross_margin}",
    )


@command(org, "set-slack", help="set the Slack webhook for digest and alerts")
@arguments("org_id", "url")
@audited("org set-slack")
def set_slack(org_id: str, url: str) -> None:
    """URL is an incoming-webhook URL, or 'none' to remove it."""
    # Checked by set_slack_webhook: https, a host in SLACK_ALLOWED_HOSTS, public addresses.
    changed = organizations.set_slack_webhook(org_id, None if url == "none" else url)
    state = "set" if changed.slack_webhook else "removed"
    output(
        {"org_id": changed.org_id, "slack_webhook": state},
        f"{changed.org_id}: Slack webhook {state}",
    )


def _privacy(org_id: str, anonymise_all: bool | None, unknown_country: bool | None) -> None:
    if anonymise_all is None and unknown_country is None:
        raise CliError("give --anonymise-all and/or --anonymise-unknown-country (on or off)")
    changed = organizations.set_privacy(
        org_id, anonymise_all=anonymise_all, anonymise_unknown_country=unknown_country
    )
    output(
        {
            "org_id": changed.org_id,
            "anonymise_all": changed.anonymise_all,
            "anonymise_unknown_country": changed.anonymise_unknown_country,
        },
        f"{changed.org_id}: anonymise all {'on' if changed.anonymise_all else 'off'}, users with "
        f"no country {'anonymised' if changed.anonymise_unknown_country else 'not anonymised'}",
    )


@command(org, "set-privacy", help="who is anonymised before anything leaves")
@click.argument("org_id")
@click.option("--anonymise-all", type=ON_OFF, help="every user, wherever they are")
@click.option(
    "--anonymise-unknown-country",
    type=ON_OFF,
    help="users whose events carry no context.country (on by default)",
)
@audited("org set-privacy")
def set_privacy(
    org_id: str, anonymise_all: str | None, anonymise_unknown_country: str | None
) -> None:
    _privacy(org_id, on_off(anonymise_all), on_off(anonymise_unknown_country))


@command(
    org,
    "set-anonymise-all",
    help="anonymise every user's events before they leave (on), or only EU users' (off)",
)
@click.argument("org_id")
@click.argument("anonymise_all", type=ON_OFF)
@audited("org set-anonymise-all")
def set_anonymise_all(org_id: str, anonymise_all: str) -> None:
    _privacy(org_id, on_off(anonymise_all), None)


@command(org, "set-alert", help="alert when yesterday's METRIC OP VALUE")
@arguments("org_id", "metric")
@click.argument("op", type=click.Choice(["<", "<=", ">", ">="]))
@click.argument("value")
@audited("org set-alert")
def set_alert(org_id: str, metric: str, op: str, value: str) -> None:
    """METRIC is e.g. signups, trial_to_paid, active_users, revenue:GBP, cac:GBP."""
    try:
        rule = AlertRule(metric=metric, op=op, value=Decimal(value))
    except (InvalidOperation, ValidationError) as exc:
        raise CliError(f"not a valid alert: {metric} {op} {value}") from exc
    changed = organizations.set_alert(org_id, rule)
    alerts = [a.model_dump(mode="json") for a in changed.alerts]
    output(
        {"org_id": changed.org_id, "alerts": alerts},
        "\n".join(f"{a['metric']} {a['op']} {a['value']}" for a in alerts),
    )


@command(org, "clear-alerts", help="remove alerts (all, or one metric's)")
@click.argument("org_id")
@click.option("--metric")
@audited("org clear-alerts")
def clear_alerts(org_id: str, metric: str | None) -> None:
    changed = organizations.clear_alerts(org_id, metric)
    output(
        {"org_id": changed.org_id, "alerts": [a.model_dump(mode="json") for a in changed.alerts]},
        f"{changed.org_id}: {len(changed.alerts)} alerts left",
    )
