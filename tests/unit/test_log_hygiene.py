"""What failures may say in logs and emails: no webhook URLs (their path is a secret), no
email addresses."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError

from success_metrics import aws, slack
from success_metrics.exports import email

SECRET_URL = "https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXXXXXXXXXXXXXX"


def test_a_transport_error_is_described_without_its_url() -> None:
    error = httpx.ConnectError(f"cannot connect to {SECRET_URL}")
    assert slack.describe(error) == "ConnectError"
    assert slack.describe(slack.SlackError("Slack answered 404: no_service")) == (
        "Slack answered 404: no_service"
    )


class RefusingSes:
    def send_raw_email(self, **_: Any) -> dict[str, Any]:
        raise ClientError(
            {
                "Error": {
                    "Code": "MessageRejected",
                    "Message": "Email address is not verified. The following identities failed "
                    "the check in region EU-WEST-1: ops@example.com",
                }
            },
            "SendRawEmail",
        )


def test_an_ses_refusal_does_not_carry_the_addresses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aws, "ses", RefusingSes)
    with pytest.raises(email.EmailError) as refused:
        email.send(["ops@example.com"], "Your export", "text", "<p>html</p>")
    assert str(refused.value) == "SES did not send the message (MessageRejected)"
    assert refused.value.__cause__ is None
    assert refused.value.__suppress_context__
