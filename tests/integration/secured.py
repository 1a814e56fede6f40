"""The template on in-process moto with IAM enforced, for fixtures that build their own."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from moto import mock_aws

from devstack import iam
from devstack.provision import Stack
from success_metrics import caches


@contextmanager
def secured_stack(
    monkeypatch: pytest.MonkeyPatch, **options: Any
) -> Iterator[tuple[Stack, iam.Enforcement]]:
    """The template on in-process moto with IAM enforced: the test acts as the operator (an
    admin user), each handler as its own function's role (devstack/iam.py)."""
    with mock_aws():
        caches.reset_all()
        created, enforcement, operator = iam.secure("sm-test", **options)
        for name, value in {**operator, **created.all_environment()}.items():
            monkeypatch.setenv(name, value)
        for name in ("AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
            monkeypatch.delenv(name, raising=False)
        caches.reset_all()
        try:
            yield created, enforcement
        finally:
            iam.withdraw(enforcement)
            iam.authorization(False)
    caches.reset_all()
