"""The erasure's steps over our own data, on in-memory stores (`tests/support/fakes.py`): what
they delete, scrub and suppress, and that a run cut short at any save (out of time, or a crash)
ends exactly where an uninterrupted one does."""

from __future__ import annotations

from typing import Any

import pytest

from success_metrics.gdpr import steps
from success_metrics.gdpr.job import Cursor, Erasure, Step, Subject
from success_metrics.gdpr.steps import ERASED, Run
from success_metrics.metrics.contributions import contribution
from success_metrics.models.organizations import Limits, Organization
from success_metrics.stores.claims import fact_group
from tests.support.fakes import FakeClaims, FakeConsent, FakeEvents, FakeMentions, FakeWorld

ORG = Organization(
    org_id="org_fake",
    name="Fake Weddings",
    created_at=0,
    limits=Limits(requests_per_hour=10, events_per_hour=10, exports_per_hour=10),
    retention_days=30,
    webhook_secrets=[],
)
KEY = b"k" * 32
ANA, BEN = "usr_ana", "usr_ben"


def event(n: int, **fields: Any) -> dict[str, Any]:
    return {
        "id": f"evt_{n:04d}",
        "type": "couple.vendor_searched",
        "occurred_at": f"2026-06-01T10:{n // 60 % 60:02d}:{n % 60:02d}Z",
        "user_type": "couple",
        "properties": {},
        "context": {"country": "US"},
        **fields,
    }


def season() -> list[dict[str, Any]]:
    """Ana: 23 events as a user (some from Germany: anonymised on the way out), 4 from two
    devices before she signed in; Ben: 6 events, two of which mention her."""
    devices = {0: "dev_ana_1", 1: "dev_ana_1", 5: "dev_ana_2"}
    docs = [event(n, user_id=ANA, anonymous_id=devices.get(n)) for n in range(20)]
    docs[0]["type"] = "user.signed_up"
    docs += [event(20 + n, user_id=ANA, context={"country": "DE"}) for n in range(3)]
    docs += [event(30 + n, anonymous_id=f"dev_ana_{1 + n % 2}") for n in range(4)]
    docs += [event(40 + n, user_id=BEN) for n in range(4)]
    docs.append(
        event(50, user_id=BEN, type="referral.invited", properties={"invitee_id": ANA, "n": 2})
    )
    docs.append(event(51, user_id=BEN, properties={"seen_device": "dev_ana_2", "note": "hi"}))
    for doc in docs:
        doc["properties"] = {k: v for k, v in doc["properties"].items() if v is not None}
        for name in ("user_id", "anonymous_id"):
            if doc.get(name) is None:
                doc.pop(name, None)
    return docs


def world(docs: list[dict[str, Any]]) -> FakeWorld:
    claims = {f"event|{d['id']}" for d in docs} | {f"once|signup|{ANA}", f"once|signup|{BEN}"}
    # The items their first-in-period facts are packed in (seasons, and one per month).
    claims |= {
        group[0] for d in docs for t in contribution(d).tokens if (group := fact_group(t.key))
    }
    return FakeWorld(
        events=FakeEvents(docs),
        claims=FakeClaims(claims),
        consent=FakeConsent({f"org_fake#{ANA}": 3, "org_fake#dev_ana_1": 1, f"org_fake#{BEN}": 2}),
        mentions=FakeMentions(docs),
    )


def new_job() -> Erasure:
    return Erasure(
        erasure_id="era_1",
        org_id=ORG.org_id,
        key_id="key_1",
        subject_hash="h",
        requested_at=0,
        updated_at=0,
    )


ORDER = {
    Step.EVENTS: (steps.erase_events, Step.CONSENT),
    Step.CONSENT: (steps.erase_consent, Step.REFERENCES),
    Step.REFERENCES: (steps.erase_references, Step.FINISHED),
}


def run_all(fakes: FakeWorld, remaining_ms: Any = lambda: 10**9, page: int = 4) -> int:
    """Run the events, consent and references steps to the end as the worker does: after a
    handover or a crash a fresh invocation starts from the last saved record. Returns the
    invocations it took."""
    for invocation in range(1, 500):
        job, subject = new_job(), Subject(user=ANA)
        if fakes.saved:
            stored, stored_subject = fakes.saved[-1]
            assert stored_subject is not None
            job, subject = stored.model_copy(deep=True), stored_subject.model_copy(deep=True)
        run = Run(
            ORG,
            job,
            subject,
            remaining_ms,
            last_attempt=False,
            stores=fakes.stores(),
            key=KEY,
            save=fakes.save,
            handover_ms=1000,
            page=page,
        )
        try:
            while run.job.step is not Step.FINISHED:
                step, following = ORDER[run.job.step]
                if not step(run):
                    break  # handed over
                run.job.step, run.job.cursor = following, Cursor()
                run.save()
            else:
                return invocation
        except RuntimeError:
            continue  # the invocation died; SQS delivers the job again
    raise AssertionError("no progress")


def test_the_subjects_events_go_other_events_are_scrubbed_and_ids_are_collected() -> None:
    docs = season()
    fakes = world(docs)
    run_all(fakes)

    left = fakes.events.docs
    assert sorted(left) == [f"evt_{n:04d}" for n in (40, 41, 42, 43, 50, 51)]
    assert left["evt_0050"]["properties"]["invitee_id"] == ERASED
    assert left["evt_0050"]["properties"]["n"] == 2
    assert left["evt_0051"]["properties"] == {"seen_device": ERASED, "note": "hi"}
    assert left["evt_0040"] == next(d for d in docs if d["id"] == "evt_0040")
    # Her claims go (the events' and the per-user ones); Ben's stay.
    hers = {d["id"] for d in docs} - set(left)
    assert not {k for k in fakes.claims.keys if ANA in k or k.removeprefix("event|") in hers}
    assert f"once|signup|{BEN}" in fakes.claims.keys
    assert f"facts|active|{BEN}" in fakes.claims.keys  # his packed facts too
    assert fakes.consent.partitions == {f"org_fake#{BEN}": 2}
    receipt, subject = fakes.saved[-1]
    assert receipt.systems["events"].count == 27
    assert receipt.systems["consent"].count == 4
    assert receipt.systems["references"].count == 2
    assert subject is not None
    assert sorted(subject.anonymous_ids) == ["dev_ana_1", "dev_ana_2"]
    # Mixpanel knew her by her id, her devices and, from Germany, by pseudonyms.
    assert ANA in subject.mixpanel_ids
    assert {"$device:dev_ana_1", "$device:dev_ana_2"} <= set(subject.mixpanel_ids)
    assert any(i not in (ANA,) and not i.startswith("$device:") for i in subject.mixpanel_ids)
    # Every other form of her ids is suppressed, so a queued delivery cannot send them.
    assert len(fakes.suppression.entries) >= 4
    # Nothing left in the mention index points at her.
    assert not any(fakes.mentions.index.get(v) for v in (ANA, "dev_ana_1", "dev_ana_2"))


@pytest.mark.parametrize("budget", ["out of time after every page", "crash at every 3rd save"])
def test_a_run_cut_short_anywhere_ends_as_an_uninterrupted_one(budget: str) -> None:
    whole = world(season())
    run_all(whole)

    cut = world(season())
    if budget.startswith("crash"):
        cut.crash_on_save = lambda attempt: attempt % 3 == 0
        invocations = run_all(cut)
    else:
        invocations = run_all(cut, remaining_ms=lambda: 0)

    assert invocations > 5
    assert cut.events.docs == whole.events.docs
    assert cut.claims.keys == whole.claims.keys
    assert cut.consent.partitions == whole.consent.partitions
    assert cut.mentions.index == whole.mentions.index
    done, _ = cut.saved[-1]
    expected, _ = whole.saved[-1]
    for name in ("events", "metric_claims", "consent", "references"):
        if budget.startswith("crash"):
            # A crash between deleting a page and saving it leaves that page uncounted (the
            # data is gone either way): the receipt's counts are a lower bound then.
            assert done.systems[name].count <= expected.systems[name].count, name
        else:
            assert done.systems[name].count == expected.systems[name].count, name


def test_an_anonymous_subject_keeps_the_user_ids_its_events_also_carry() -> None:
    docs = season()
    fakes = world(docs)
    job = new_job().model_copy(update={"subject_kind": "anonymous"})
    subject = Subject(user="dev_ana_1", kind="anonymous", anonymous_ids=["dev_ana_1"])
    run = Run(
        ORG,
        job,
        subject,
        lambda: 10**9,
        last_attempt=False,
        stores=fakes.stores(),
        key=KEY,
        save=fakes.save,
        handover_ms=1000,
        page=3,
    )
    assert steps.erase_events(run)
    assert steps.erase_references(run)

    gone = {d["id"] for d in docs} - set(fakes.events.docs)
    carrying = {d["id"] for d in docs if d.get("anonymous_id") == "dev_ana_1"}
    assert gone == carrying
    # Ana's claims as a user are hers, not the device's.
    assert f"once|signup|{ANA}" in fakes.claims.keys
    assert ANA not in run.subject.mixpanel_ids
    assert run.subject.mixpanel_ids == ["$device:dev_ana_1"]
