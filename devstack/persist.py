"""`make run ARGS=--persist`: the emulator's data kept across restarts, SIGKILL included.

What is kept is the data, not the wiring. The stack provisions the template afresh on every
start: the IAM roles, the users, the aliases, the event sources. It then puts back, under the
same names, everything the product stored:
- DynamoDB tables, with their items, indexes and TTL settings;
- SQS queues, with their messages, in flight or delayed, and their receive counts;
- S3 buckets, with their objects, multipart uploads and policies;
- KMS keys, so that secrets sealed before the restart still open.

A snapshot is taken at most once a second, and only after a request that may have changed
something. Requests to the emulator wait while it is taken, so it is consistent across
services. It is written to a temporary file and renamed over the last one, so a kill leaves
either the old snapshot or the new one, never half of one. After SIGKILL, at most the last
second of changes is lost, plus the time one snapshot takes to write (`make run` prints it).
"""

from __future__ import annotations

import copyreg
import io
import os
import pickle
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devstack import provision as provisioning

VERSION = 1
SNAPSHOT = "snapshot.pickle"
# Operations that change nothing worth keeping. A message received but not yet deleted is kept
# as it was before the receive: after a kill it is delivered again, as SQS may always do.
READS = (
    "Get", "List", "Describe", "Query", "Scan", "Head", "BatchGet", "TransactGet", "Receive",
)  # fmt: skip


def _rsa_key(der: bytes) -> Any:
    from cryptography.hazmat.primitives import serialization

    return serialization.load_der_private_key(der, None)


def _reduce_rsa(key: Any) -> tuple[Callable[[bytes], Any], tuple[bytes]]:
    from cryptography.hazmat.primitives import serialization

    der = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return _rsa_key, (der,)


def _reduce_lock(lock: Any) -> tuple[type, tuple[()]]:
    return type(lock), ()


def _rlock() -> Any:
    return threading.RLock()


def _reduce_rlock(_: Any) -> tuple[Callable[[], Any], tuple[()]]:
    return _rlock, ()


class _Pickler(pickle.Pickler):
    """The emulator's objects hold locks and native RSA keys: a new lock, the key as DER."""

    dispatch_table = copyreg.dispatch_table.copy()


def _register() -> None:
    from cryptography.hazmat.bindings._rust import openssl

    table = _Pickler.dispatch_table
    table[type(threading.Lock())] = _reduce_lock
    table[type(threading.RLock())] = _reduce_rlock
    table[openssl.rsa.RSAPrivateKey] = _reduce_rsa


class _Gate:
    """Many requests at once, or one snapshot alone."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._active = 0
        self._writer = False

    @contextmanager
    def request(self) -> Iterator[None]:
        with self._lock:
            while self._writer:
                self._lock.wait()
            self._active += 1
        try:
            yield
        finally:
            with self._lock:
                self._active -= 1
                if not self._active:
                    self._lock.notify_all()

    @contextmanager
    def alone(self) -> Iterator[None]:
        with self._lock:
            while self._writer:
                self._lock.wait()
            self._writer = True
            while self._active:
                self._lock.wait()
        try:
            yield
        finally:
            with self._lock:
                self._writer = False
                self._lock.notify_all()


def _backends() -> dict[str, Any]:
    from moto.backends import get_backend

    account, region = provisioning.ACCOUNT, provisioning.REGION
    return {
        "dynamodb": get_backend("dynamodb")[account][region],
        "sqs": get_backend("sqs")[account][region],
        "s3": get_backend("s3")[account]["global"],
        "kms": get_backend("kms")[account][region],
    }


def _data() -> dict[str, dict[str, Any]]:
    found = _backends()
    return {
        "dynamodb": dict(found["dynamodb"].tables),
        "sqs": dict(found["sqs"].queues),
        "s3": dict(found["s3"].buckets),
        "kms": dict(found["kms"].keys),
    }


@dataclass
class Restored:
    tables: int
    items: int
    queues: int
    messages: int
    buckets: int
    objects: int
    keys: int
    taken_at: float
    meta: dict[str, Any]

    def describe(self) -> str:
        age = time.time() - self.taken_at
        return (
            f"{self.tables} tables ({self.items} items), {self.queues} queues "
            f"({self.messages} messages), {self.buckets} buckets ({self.objects} objects), "
            f"{self.keys} keys, from a snapshot taken {age:.0f} s ago"
        )


class Persistence:
    """Snapshots of the emulator's data in `directory`, and their restoring."""

    def __init__(self, directory: Path, interval: float = 1.0) -> None:
        self.directory = directory
        self.interval = interval
        self.gate = _Gate()
        self.meta: dict[str, Any] = {}
        self.last_seconds = 0.0
        self.last_bytes = 0
        self.snapshots = 0
        self.errors = 0
        self.restored: Restored | None = None
        self._dirty = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        _register()

    @property
    def path(self) -> Path:
        return self.directory / SNAPSHOT

    # -- requests

    def install(self) -> None:
        """Every request to the emulator passes the gate; one that may write marks it dirty."""
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication

        original = DomainDispatcherApplication.__call__
        persistence = self

        def gated(app: Any, environ: dict[str, Any], start_response: Any) -> Any:
            with persistence.gate.request():
                if _may_write(environ):
                    persistence._dirty.set()
                return original(app, environ, start_response)

        DomainDispatcherApplication.__call__ = gated  # type: ignore[method-assign]

    # -- snapshots

    def take(self) -> None:
        started = time.monotonic()
        buffer = io.BytesIO()
        with self.gate.alone():
            self._dirty.clear()
            body = {"version": VERSION, "taken_at": time.time(), "meta": self.meta, "data": _data()}
            _Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(body)
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as out:
            out.write(buffer.getbuffer())
            out.flush()
            os.fsync(out.fileno())
        tmp.replace(self.path)
        self.last_seconds = time.monotonic() - started
        self.last_bytes = buffer.tell()
        self.snapshots += 1

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="persist", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            if not self._dirty.is_set():
                continue
            try:
                self.take()
            except Exception as exc:  # keep the stack running; say so once per failure
                self.errors += 1
                print(f"[devstack] persist: the snapshot failed: {type(exc).__name__}: {exc}")

    def stop(self) -> None:
        """The last snapshot, taken after the pollers have stopped."""
        self._stop.set()
        if self._thread:
            self._thread.join(10)
        self.take()

    # -- restoring

    def restore(self, stack: Any, _session: Any) -> None:
        """Put the last snapshot's data back into the freshly provisioned emulator, and make
        the stack use the keys that sealed it (`self.restored` says what came back)."""
        self.meta["keys"] = {
            logical: dict(stack.physical[logical])
            for logical, resource in stack.template["Resources"].items()
            if resource["Type"] == "AWS::KMS::Key" and logical in stack.physical
        }
        self.restored = self._restore()
        if not self.restored:
            return
        # KMS answers Decrypt only for the key a ciphertext names: the template's keys are the
        # old ones again, in the environment and the roles (the local stack makes no aliases).
        old_keys = self.restored.meta.get("keys") or {}
        for logical in self.meta["keys"]:
            if logical in old_keys:
                stack.physical[logical] = old_keys[logical]
        self.meta["keys"] = old_keys

    def _restore(self) -> Restored | None:
        if not self.path.exists():
            return None
        with self.path.open("rb") as source:
            # The stack's own file, in the user's own directory (0700, the file 0600): a
            # snapshot from anyone else is code to run, and docs/local-stack.md says so.
            body = pickle.load(source)  # noqa: S301
        if body.get("version") != VERSION:
            raise RuntimeError(
                f"{self.path} was written by another version of the local stack "
                f"(format {body.get('version')}, this one reads {VERSION}): move it away"
            )
        data = body["data"]
        backends = _backends()
        with self.gate.alone():
            backends["dynamodb"].tables.update(data["dynamodb"])
            backends["sqs"].queues.update(data["sqs"])
            backends["s3"].buckets.update(data["s3"])
            # New keys were made for this start; the old ones, which sealed the data, are
            # put back beside them and named in their place (see `restore`).
            for key_id, key in data["kms"].items():
                backends["kms"].keys.setdefault(key_id, key)
        return Restored(
            tables=len(data["dynamodb"]),
            items=sum(_count_items(t) for t in data["dynamodb"].values()),
            queues=len(data["sqs"]),
            messages=sum(len(getattr(q, "_messages", ())) for q in data["sqs"].values()),
            buckets=len(data["s3"]),
            objects=sum(len(getattr(b, "keys", {})) for b in data["s3"].values()),
            keys=len(data["kms"]),
            taken_at=float(body["taken_at"]),
            meta=dict(body.get("meta") or {}),
        )


def _count_items(table: Any) -> int:
    return sum(1 for _ in table.all_items())


def _may_write(environ: dict[str, Any]) -> bool:
    """Whether a request may change something: anything but a read (by its target or method)."""
    target = str(environ.get("HTTP_X_AMZ_TARGET", ""))
    if target:
        operation = target.rsplit(".", 1)[-1]
        return not operation.startswith(READS)
    # Query-protocol services (SQS's older form, SES) name the action in the form body; the
    # body is not read here, so such a request counts as a possible write.
    return str(environ.get("REQUEST_METHOD", "GET")) not in ("GET", "HEAD")
