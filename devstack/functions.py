"""Loading and invoking the template's Lambda functions in this process.

Each function is loaded once from its `CodeUri` and `Handler`, as its own module, and invoked
one request at a time (like one Lambda instance), with a context whose remaining time is real.
"""

from __future__ import annotations

import importlib.util
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from devstack import calls, iam
from devstack.lambda_events import LambdaContext
from devstack.template import Function

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Invocation:
    function: str
    started: float
    duration_ms: float
    error: str | None


# Told of every invocation as it ends (the terminal's activity summary).
listeners: list[Callable[[Invocation], None]] = []


@dataclass
class LocalFunction:
    spec: Function
    root: Path = ROOT
    _module: ModuleType | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    invocations: list[Invocation] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.spec.logical_id

    def handler(self) -> Any:
        module_path, _, attribute = self.spec.handler.rpartition(".")
        if self._module is None:
            source = self.root / self.spec.code_uri / (module_path.replace(".", "/") + ".py")
            if not source.is_file():
                raise FileNotFoundError(f"{self.name}: handler module {source} does not exist")
            loaded = importlib.util.spec_from_file_location(f"devstack_fn_{self.name}", source)
            if loaded is None or loaded.loader is None:
                raise ImportError(f"{self.name}: cannot load {source}")
            module = importlib.util.module_from_spec(loaded)
            loaded.loader.exec_module(module)
            self._module = module
        return getattr(self._module, attribute)

    def invoke(self, event: Any) -> Any:
        """Run the handler like Lambda would: one at a time, with the function's timeout."""
        with self._lock:
            handler = self.handler()
            context = LambdaContext(self.name, self.spec.timeout, self.spec.memory)
            started = time.time()
            error: str | None = None
            marker = calls.invocation.set(uuid.uuid4().hex)
            try:
                # Every AWS call of the invocation is the function's own, under its role.
                with iam.acting_as(self.name):
                    return handler(event, context)
            except BaseException as exc:
                error = f"{type(exc).__name__}: {exc}"
                raise
            finally:
                calls.invocation.reset(marker)
                elapsed = (time.time() - started) * 1000
                ended = Invocation(self.name, started, elapsed, error)
                self.invocations.append(ended)
                for listener in listeners:
                    listener(ended)
                del self.invocations[:-1000]
                if elapsed > self.spec.timeout * 1000:
                    print(
                        f"[devstack] {self.name} ran {elapsed:.0f} ms, over its "
                        f"{self.spec.timeout} s timeout (Lambda would have stopped it)"
                    )
