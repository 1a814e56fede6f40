"""The emulator's own per-request overhead, cut without changing any answer it gives.

Two places, both found by profiling the emulator under `benchmarks/load.py`'s replay:

**The backend lookup.**
moto's server (5.2) finds the backend of every request under one global lock, and for a request
to a plain `host:port` (every call of the local stack) does so by listing moto's package
directory (`os.listdir` and an `isdir` per entry, about 200 of them) and then trying each
service's URL patterns on the host, before inferring the service from the request's
signature. Profiled under `benchmarks/load.py`'s replay, a quarter of the emulator's wall time
went to threads waiting for that lock. Which backend serves a host is a fixed function of the
host and the installed moto, so it is looked up once per host; everything after it (the
service inferred from each request's signature, the backends' logic) is unchanged.

**DynamoDB transactions.** moto backs up each table a transaction touches before applying it,
so that a cancelled transaction leaves nothing behind, but it takes that backup once per
*action*: a 100-action transaction on the metrics table deep-copies the whole table 100 times
(the same unmodified table each time: nothing is applied until the backups are taken). One copy
per table and transaction is the same backup; conditions, cancellation reasons and the rollback
are moto's own, unchanged (`tests/unit/test_devstack_emulator.py` runs the same transactions
with and without it).
"""

from __future__ import annotations

import threading
from typing import Any

_MISSING = object()


def install() -> None:
    """Both changes (idempotent)."""
    _memoize_backend_lookup()
    _one_backup_per_table()


def _memoize_backend_lookup() -> None:
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


class _OneCopyPerTable:
    """`moto.dynamodb.models`' view of the `copy` module: inside a transaction (per thread),
    `deepcopy` of a table answers the copy it already made in that transaction."""

    def __init__(self, real: Any) -> None:
        self._real = real
        self._local = threading.local()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def deepcopy(self, value: Any, memo: Any = None) -> Any:
        from moto.dynamodb.models.table import Table

        copies = getattr(self._local, "copies", None)
        if copies is None or memo is not None or not isinstance(value, Table):
            return self._real.deepcopy(value, memo)
        if id(value) not in copies:  # the table is kept alongside, so its id is not reused
            copies[id(value)] = (value, self._real.deepcopy(value))
        return copies[id(value)][1]

    def transaction(self, original: Any) -> Any:
        def transact_write_items(backend: Any, transact_items: Any) -> Any:
            self._local.copies = {}
            try:
                return original(backend, transact_items)
            finally:
                self._local.copies = None

        transact_write_items._sm_one_backup = True  # type: ignore[attr-defined]
        return transact_write_items


def _one_backup_per_table() -> None:
    import copy

    from moto.dynamodb import models

    original = models.DynamoDBBackend.transact_write_items
    if getattr(original, "_sm_one_backup", False):
        return
    view = _OneCopyPerTable(copy)
    models.copy = view  # type: ignore[assignment]
    models.DynamoDBBackend.transact_write_items = view.transaction(original)  # type: ignore[method-assign]
