"""Independent AWS calls of one invocation, made side by side.

An invocation that writes many items that do not depend on one another (a request's events,
each a conditional put; a message's packed fact items and ledgers) waits for each round trip in
turn when it makes them one after the other. Here they go through a small pool of threads
(boto3 clients are thread-safe; `aws` keeps one per service, with 32 connections), and the
answers come back in the order of the items. The first failure is raised, as a loop would; the
calls already made stay made, which every caller already allows for (a put that is retried
finds its item, a claim finds its claim).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

WORKERS = 8
_POOL = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="sm-io")


def each(call: Callable[[T], R], items: Iterable[T]) -> list[R]:
    """`[call(i) for i in items]`, up to WORKERS at a time. Not for calls that themselves use
    this pool (they would wait for threads held by their callers)."""
    work = list(items)
    if len(work) <= 1:
        return [call(i) for i in work]
    return list(_POOL.map(call, work))
