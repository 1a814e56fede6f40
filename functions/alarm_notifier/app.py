"""Alarms to Slack: CloudWatch alarm notifications (SNS, delivered raw through AlarmQueue)
become one Block Kit message each in the operations channel."""

from __future__ import annotations

import json
import os
from typing import Any

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from success_metrics import slack, sqs_consumer
from success_metrics.observability import logger

ICONS = {
    "ALARM": ":rotating_light:",
    "OK": ":white_check_mark:",
    "INSUFFICIENT_DATA": ":grey_question:",
}


def message(alarm: dict[str, Any]) -> dict[str, Any]:
    """The Slack message of one CloudWatch alarm notification."""
    state = str(alarm.get("NewStateValue", "ALARM"))
    name = str(alarm.get("AlarmName", "an alarm"))
    text = f"{ICONS.get(state, ':bell:')} *{name}* is {state}"
    details = "\n".join(
        line
        for line in (
            str(alarm.get("AlarmDescription") or ""),
            f"_{alarm.get('NewStateReason', '')}_" if alarm.get("NewStateReason") else "",
            f"since {alarm.get('StateChangeTime')}" if alarm.get("StateChangeTime") else "",
            "Runbook: docs/operations.md",
        )
        if line
    )
    return {
        "text": f"{text}: {alarm.get('AlarmDescription') or ''}".strip(),
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": text}},
            {"type": "section", "text": {"type": "mrkdwn", "text": details[:2900]}},
        ],
    }


def record_handler(record: SQSRecord) -> None:
    url = os.environ.get("OPS_SLACK_WEBHOOK_URL", "")
    try:
        alarm = json.loads(record.body)
    except ValueError:
        alarm = {"AlarmName": "unreadable notification", "NewStateReason": record.body[:500]}
    if not isinstance(alarm, dict):
        alarm = {"AlarmName": "unexpected notification"}
    if not url:
        logger.warning(
            "no OPS_SLACK_WEBHOOK_URL: alarm not posted", extra={"alarm": alarm.get("AlarmName")}
        )
        return
    slack.post(url, message(alarm))  # a failure raises: the record comes back, then the DLQ


lambda_handler = sqs_consumer.handler(record_handler)
