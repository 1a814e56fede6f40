"""Standard Webhooks signatures, cross-checked against the reference library both ways."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from success_metrics import signing
from success_metrics.errors import UnauthenticatedError

SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()
# A fixed vector from the Standard Webhooks reference tests' shape: recomputed independently.
BODY = b'{"test": 2432232314}'


def test_reference_library_verifies_what_we_sign() -> None:
    now = int(time.time())
    headers = signing.sign_headers(SECRET, "msg_p5jXN8AQM9LWM0D4loKWxJek", now, BODY)

    Webhook(SECRET).verify(BODY, headers)


def test_we_verify_what_the_reference_library_signs() -> None:
    now = datetime.now(UTC)
    signature = Webhook(SECRET).sign("msg_1", now, BODY.decode())
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
    }

    signed = signing.verify([SECRET], headers, BODY, time.time())

    assert signed.msg_id == "msg_1"


@settings(max_examples=200, deadline=None)
@given(
    body=st.text(max_size=400),
    msg_id=st.from_regex(r"\A[\x21-\x7e]{1,40}\Z"),
    key=st.binary(min_size=24, max_size=64),
)
def test_cross_check_holds_for_any_body_id_and_key(body: str, msg_id: str, key: bytes) -> None:
    secret = "whsec_" + base64.b64encode(key).decode()
    now = int(time.time())
    ours = signing.sign(secret, msg_id, now, body.encode())
    theirs = Webhook(secret).sign(msg_id, datetime.fromtimestamp(now, UTC), body)
    assert ours == theirs
    headers = {"webhook-id": msg_id, "webhook-timestamp": str(now), "webhook-signature": theirs}
    signing.verify([secret], headers, body.encode(), now)


def test_rejects_what_the_reference_library_rejects() -> None:
    now = int(time.time())
    headers = signing.sign_headers(SECRET, "msg_1", now, BODY)
    tampered = BODY.replace(b"2", b"3")
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(tampered, headers)
    with pytest.raises(UnauthenticatedError):
        signing.verify([SECRET], headers, tampered, now)


def test_any_of_several_secrets_and_signatures_passes() -> None:
    other = signing.generate_secret()
    now = int(time.time())
    good = signing.sign(SECRET, "m", now, BODY)
    headers = {
        "webhook-id": "m",
        "webhook-timestamp": str(now),
        "webhook-signature": f"v1,AAAA {good}",
    }

    signing.verify([other, SECRET], headers, BODY, now)


@pytest.mark.parametrize("skew", [-301, 301])
def test_timestamps_outside_tolerance_fail(skew: int) -> None:
    now = int(time.time())
    headers = signing.sign_headers(SECRET, "m", now + skew, BODY)

    with pytest.raises(UnauthenticatedError, match="300 seconds"):
        signing.verify([SECRET], headers, BODY, now)


def test_generated_secrets_have_the_documented_shape() -> None:
    secret = signing.generate_secret()

    assert secret.startswith("whsec_")
    assert len(signing.secret_key(secret)) == 32
    with pytest.raises(ValueError, match="24-64"):
        signing.generate_secret(8)


@pytest.mark.parametrize(
    "bad",
    ["", "whsec_", "whsec_!!!", "sk_" + "A" * 40, "whsec_" + base64.b64encode(b"short").decode()],
)
def test_malformed_secrets_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="webhook secret"):
        signing.secret_key(bad)


header_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=300)


@settings(max_examples=500, deadline=None)
@given(
    headers=st.dictionaries(
        st.sampled_from(["webhook-id", "webhook-timestamp", "webhook-signature", "x-other"]),
        header_text,
    ),
    body=st.binary(max_size=512),
)
def test_malformed_headers_only_ever_raise_unauthenticated(
    headers: dict[str, str], body: bytes
) -> None:
    with pytest.raises(UnauthenticatedError):
        signing.verify([SECRET], headers, body, time.time())


@settings(max_examples=300, deadline=None)
@given(signature=header_text, timestamp=st.integers(min_value=-(10**15), max_value=10**15))
def test_forged_signatures_never_pass(signature: str, timestamp: int) -> None:
    now = int(time.time())
    headers = {
        "webhook-id": "m",
        "webhook-timestamp": str(abs(timestamp)),
        "webhook-signature": signature,
    }
    with pytest.raises(UnauthenticatedError):
        signing.verify([SECRET], headers, BODY, now)
