"""The emulator's own per-request overhead, cut without changing any answer it gives.

moto's server (5.2) finds the backend of every request under one global lock, and for a request
to a plain `host:port` (every call of the local stack) does so by listing moto's package
directory (`os.listdir` and an `isdir` per entry, about 200 of them) and then trying each
service's URL patterns on the host, before inferring the service from the request's
signature. Profiled under `benchmarks/load.py`'s replay, a quarter of the emulator's wall time
went to threads waiting for that lock. Which backend serves a host is a fixed function of the
host and the installed moto, so it is looked up once per host; everything after it (the
service inferred from each request's signature, the backends' logic) is unchanged.
"""

from __future__ import annotations

import threading
from typing import Any

_MISSING = object()


def install() -> None:
    """Memoize the backend of each host in moto's request dispatcher (idempotent)."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    original = DomainDispatcherApplication.get_backend_for_host
    if getattr(original, "_sm_memoized", False):
        return
    known: dict[str | None, Any] = {}
    lock = threading.Lock()

    def get_backend_for_host(self: Any, host: str | None) -> Any:
        found = known.get(host, _MISSING)
        if found is _MISSING:
            found = original(self, host)
            with lock:
                known[host] = found
        return found

    get_backend_for_host._sm_memoized = True  # type: ignore[attr-defined]
    DomainDispatcherApplication.get_backend_for_host = get_backend_for_host  # type: ignore[method-assign]
