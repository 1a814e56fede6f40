"""smctl against moto in-process: JSON output, errors as one line and a non-zero exit."""

from __future__ import annotations

import json
from typing import Any

import pytest

from devstack.provision import Stack
from smctl import app as cli
from success_metrics.stores import organizations


def smctl(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any, str]:
    code = cli.main([*argv, "--no-local"])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if "--json" in argv and code == 0 else out), err


def test_org_create_prints_credentials_once_as_json(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    code, created, _ = smctl(capsys, "org", "create", "Lakeside Venue", "--json")

    assert code == 0
    assert {"org_id", "webhook_secret", "api_key"} <= set(created)
    assert created["webhook_secret"].startswith("whsec_")
    assert organizations.authenticate(created["api_key"]).org_id == created["org_id"]
    stored = organizations.get_organization(created["org_id"], fresh=True)
    # Only ciphertext is stored, never the secret itself.
    assert created["webhook_secret"] not in stored.model_dump_json()


def test_set_limits_key_lifecycle_and_rotation(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    _, created, _ = smctl(capsys, "org", "create", "Petal Florists", "--json")
    org_id = created["org_id"]

    code, limits, _ = smctl(
        capsys, "org", "set-limits", org_id, "--events-per-hour", "5000", "--json"
    )
    assert code == 0
    assert limits["limits"]["events_per_hour"] == 5000

    code, key, _ = smctl(capsys, "key", "create", org_id, "--scope", "metrics:read", "--json")
    assert code == 0
    assert key["scopes"] == ["metrics:read"]

    code, keys, _ = smctl(capsys, "key", "list", org_id, "--json")
    assert {k["key_id"] for k in keys} == {created["key_id"], key["key_id"]}
    assert all("secret_sha256" not in k for k in keys)

    code, revoked, _ = smctl(capsys, "key", "revoke", org_id, key["key_id"], "--json")
    assert code == 0
    assert revoked["revoked_at"]

    code, rotated, _ = smctl(capsys, "secret", "rotate", org_id, "--json")
    assert code == 0
    assert rotated["webhook_secret"] != created["webhook_secret"]
    org = organizations.get_organization(org_id, fresh=True)
    assert len(org.webhook_secrets) == 2


def test_failures_exit_non_zero_with_one_line(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = smctl(capsys, "org", "show", "org_missing")
    assert code == 1
    assert err.count("\n") == 1
    assert "org_missing does not exist" in err

    code, _, err = smctl(capsys, "org", "set-limits", "org_missing")
    assert code == 1
    assert "give at least one" in err


def test_bad_arguments_are_refused_by_the_parser(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["org", "set-limits", "org_x", "--events-per-hour", "0"])
    assert exc.value.code == 2


def test_set_privacy_turns_anonymise_all_and_unknown_countries_on_and_off(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    org = organizations.create_organization("Privacy First Weddings")
    fresh = organizations.get_organization(org.org_id, fresh=True)
    assert (fresh.anonymise_all, fresh.anonymise_unknown_country) == (False, True)

    code, shown, _ = smctl(
        capsys, "org", "set-privacy", org.org_id, "--anonymise-all", "on", "--json"
    )
    assert code == 0
    assert shown == {"org_id": org.org_id, "anonymise_all": True, "anonymise_unknown_country": True}
    code, shown, _ = smctl(
        capsys, "org", "set-privacy", org.org_id, "--anonymise-unknown-country", "off", "--json"
    )
    assert code == 0
    stored = organizations.get_organization(org.org_id, fresh=True)
    assert (stored.anonymise_all, stored.anonymise_unknown_country) == (True, False)

    code, _, err = smctl(capsys, "org", "set-privacy", org.org_id)
    assert code != 0
    assert "--anonymise-all" in err
