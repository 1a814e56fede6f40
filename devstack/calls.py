"""A log of the AWS calls the stack's functions make, to replay them bare (`benchmarks/load.py`).

`SM_CALL_LOG=<file>` makes the stack write one JSON line per call a function (or the event
source polling for it) makes: the function, the thread it ran on (its lane: one invocation's
calls keep their order), the service, the operation and its parameters as botocore received
them, bytes in base64.
"""

from __future__ import annotations

import base64
import contextvars
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

# The invocation a call belongs to (set by `functions.LocalFunction.invoke`); the event source's
# receive and delete around it have none.
invocation: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "sm_invocation", default=None
)


def _encode(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return {"__b64__": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_encode(v) for v in value]
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__b64__"}:
            return base64.b64decode(value["__b64__"])
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


@dataclass(frozen=True)
class Call:
    at: float
    function: str
    lane: str
    invocation: str | None
    service: str
    operation: str
    params: dict[str, Any]


class CallLog:
    """Appends each call as it leaves a function (thread-safe; flushed on close)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: TextIO = path.open("a", encoding="utf-8")
        self._lock = threading.Lock()

    def write(self, function: str, service: str, operation: str, params: dict[str, Any]) -> None:
        line = json.dumps(
            {
                "at": time.time(),
                "function": function,
                "lane": f"{function}@{threading.current_thread().name}",
                "invocation": invocation.get(),
                "service": service,
                "operation": operation,
                "params": _encode(params),
            },
            separators=(",", ":"),
            default=str,
        )
        with self._lock:
            if not self._file.closed:  # a call made while the stack stops is not logged
                self._file.write(line + "\n")

    def close(self) -> None:
        with self._lock:
            self._file.close()


def read(path: Path) -> Iterator[Call]:
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            raw = json.loads(line)
            yield Call(
                raw["at"],
                raw["function"],
                raw["lane"],
                raw["invocation"],
                raw["service"],
                raw["operation"],
                _decode(raw["params"]),
            )
