"""Watching outbound connections in tests."""

from __future__ import annotations

from typing import Any

import pytest

from success_metrics.sync import ssrf


def guarded_hosts(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The hosts the guard checked before connecting (it records, then does its work)."""
    checked: list[str] = []
    connect = ssrf.GuardedBackend.connect_tcp

    def spy(self: ssrf.GuardedBackend, host: str, port: int, *args: Any, **kwargs: Any) -> Any:
        checked.append(host)
        return connect(self, host, port, *args, **kwargs)

    monkeypatch.setattr(ssrf.GuardedBackend, "connect_tcp", spy)
    return checked
