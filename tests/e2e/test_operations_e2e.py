"""Operations on the local stack: an alarm published to the template's AlarmTopic reaches the
operations Slack channel through AlarmQueue and AlarmNotifierFunction."""

from __future__ import annotations

import json
import uuid

from tests.e2e.conftest import RunningStack
from tests.support.local_stack import aws, sink_requests, wait_until


def test_a_cloudwatch_alarm_reaches_the_operations_slack(stack: RunningStack) -> None:
    sns = aws(stack, "sns")
    [topic] = [t["TopicArn"] for t in sns.list_topics()["Topics"] if "AlarmTopic" in t["TopicArn"]]
    name = f"sm-local-DeliveryDeadLetterQueueNotEmptyAlarm-{uuid.uuid4().hex[:6]}"
    alarm = {
        "AlarmName": name,
        "AlarmDescription": "sm-local-DeliveryDeadLetterQueue holds messages",
        "NewStateValue": "ALARM",
        "NewStateReason": "Threshold Crossed: 1 datapoint [3.0] was greater than 0.0",
        "StateChangeTime": "2026-11-28T05:00:00.000+0000",
    }

    sns.publish(TopicArn=topic, Message=json.dumps(alarm))

    [posted] = wait_until(
        lambda: [
            r
            for r in sink_requests(stack)
            if r["path"] == "/services/TOPS/BOPS/alarms" and name in r["body"]
        ],
        60,
        "the alarm in the operations channel",
    )
    body = json.loads(posted["body"])
    assert posted["status"] == 200
    assert ":rotating_light:" in body["blocks"][0]["text"]["text"]
    assert "Threshold Crossed" in body["blocks"][1]["text"]["text"]
