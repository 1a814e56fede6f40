"""Dead letters per organization: each consumer, on the receive after which SQS dead-letters a
message, records it for the message's organization (what the console's Dead letters page shows
and replays); the shared dead-letter queue keeps the operator's copy. Real redrive (moto), the
real Lambda handlers under their own roles."""

from __future__ import annotations

import json

import pytest

from devstack.lambda_events import LambdaContext, sqs_record
from devstack.provision import Stack
from smctl.commands.dlq import dead_letter_url
from success_metrics import aws, dead_letters
from success_metrics.errors import ConflictError, NotFoundError
from success_metrics.models.organizations import CreatedOrganization
from tests.support.dead_letters import CONSUMERS, failing_body, receive_until_dead


@pytest.mark.parametrize("queue", sorted(CONSUMERS))
def test_the_last_failed_receive_is_recorded_for_its_organization_only(
    stack: Stack, org: CreatedOrganization, other_org: CreatedOrganization, queue: str
) -> None:
    receives = receive_until_dead(stack, queue, failing_body(queue, org.org_id))
    assert receives == dead_letters.MAX_RECEIVES[queue]  # then SQS moved it
    dead = dead_letter_url(stack.physical[CONSUMERS[queue][0]]["Ref"])
    moved = aws.sqs().receive_message(QueueUrl=dead, AttributeNames=["All"]).get("Messages", [])
    assert len(moved) == 1  # the operator's copy

    mine = dead_letters.listing(org.org_id)
    assert mine["counts"][queue] == 1
    assert sum(mine["counts"].values()) == 1
    (letter,) = mine["dead_letters"]
    assert letter["queue"] == queue
    assert letter["message_id"] == moved[0]["MessageId"]
    assert letter["receives"] == dead_letters.MAX_RECEIVES[queue]
    assert letter["reason"]
    assert "failed on its last receive" not in letter["reason"]
    # the other tenant sees nothing of it, and cannot replay it
    assert dead_letters.listing(other_org.org_id)["dead_letters"] == []
    with pytest.raises(NotFoundError):
        dead_letters.replay(other_org.org_id, queue, letter["message_id"])


def test_a_replay_sends_the_message_once_as_the_one_it_replays(
    stack: Stack, org: CreatedOrganization
) -> None:
    receive_until_dead(stack, "sync", failing_body("sync", org.org_id))
    (letter,) = dead_letters.listing(org.org_id)["dead_letters"]
    replayed = dead_letters.replay(org.org_id, "sync", letter["message_id"])
    assert replayed["replayed_at"]
    with pytest.raises(ConflictError):  # a second click does not send it again
        dead_letters.replay(org.org_id, "sync", letter["message_id"])
    assert dead_letters.replay_all(org.org_id, "sync") == 0
    got = aws.sqs().receive_message(
        QueueUrl=stack.physical["SyncQueue"]["Ref"],
        MessageAttributeNames=["All"],
        MaxNumberOfMessages=10,
    )["Messages"]
    assert len(got) == 1
    assert json.loads(got[0]["Body"]) == failing_body("sync", org.org_id)
    attributes = got[0]["MessageAttributes"]
    assert attributes["replay_of"]["StringValue"] == letter["message_id"]
    assert attributes["org_id"]["StringValue"] == org.org_id
    record = sqs_record(
        "arn", got[0]["MessageId"], "r", got[0]["Body"], message_attributes=attributes
    )
    assert dead_letters.source_id(record) == letter["message_id"]
    listed = dead_letters.listing(org.org_id)
    assert listed["counts"]["sync"] == 0  # replayed: listed, no longer waiting
    assert listed["dead_letters"][0]["replayed_at"] == replayed["replayed_at"]


def test_a_failure_before_the_last_receive_is_not_a_dead_letter(
    stack: Stack, org: CreatedOrganization
) -> None:
    record = sqs_record(
        stack.physical["SyncQueue"]["Arn"], "m-1", "r-1",
        json.dumps(failing_body("sync", org.org_id)),
        attributes={"ApproximateReceiveCount": str(dead_letters.MAX_RECEIVES["sync"] - 1)},
    )  # fmt: skip
    from sync_router import app

    with pytest.raises(Exception, match="All records failed"):  # Powertools, when all do
        app.lambda_handler({"Records": [record]}, LambdaContext("SyncRouterFunction", 60))
    assert dead_letters.listing(org.org_id)["dead_letters"] == []
