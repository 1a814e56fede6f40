"""Joining an export's slices and cutting its range, on an in-memory bucket that keeps S3's
multipart rules (`tests/support/fakes.py`): the joined file is the slices and glue in order,
big ranges are copied server-side, every part but the last meets the minimum size; and the
planner's day slices cover the range once, balanced by rows."""

from __future__ import annotations

import hashlib
import itertools
import random
from datetime import date, timedelta
from typing import Any

import pytest

from success_metrics.exports import multipart, planner
from tests.support.fakes import FakeExportFiles

MIN = 1024  # the fake bucket's minimum part size, S3's 5 MiB scaled down


def join(files: FakeExportFiles, pieces: list[tuple[str, Any]]) -> bytes:
    assembler = multipart.Assembler(files, "file", "text/csv", part_bytes=MIN)  # type: ignore[arg-type]
    for kind, value in pieces:
        if kind == "glue":
            assembler.add(value)
        else:
            assembler.add_object(value, files.size(value))
    assembler.complete()
    return files.objects["file"]


@pytest.mark.parametrize("seed", range(20))
def test_joining_slices_and_glue_gives_them_in_order_in_valid_parts(seed: int) -> None:
    rng = random.Random(seed)
    files = FakeExportFiles(min_part=MIN)
    pieces: list[tuple[str, Any]] = []
    expected = b""
    for n in range(rng.randint(1, 8)):
        glue = bytes(rng.choice([0, 1, 3, 40]))
        size = rng.choice([0, 1, 100, MIN - 1, MIN, MIN + 1, 3 * MIN + 17])
        body = rng.randbytes(size)
        files.put(f"slice-{n}", body)
        pieces += [("glue", glue), ("slice", f"slice-{n}")]
        expected += glue + body
    pieces.append(("glue", b"]"))
    expected += b"]"

    assert join(files, pieces) == expected
    assert files.uploads == {}  # completed, nothing left open


def test_big_slices_are_copied_server_side_not_read() -> None:
    files = FakeExportFiles(min_part=MIN)
    files.put("a", b"a" * (4 * MIN))
    files.put("b", b"b" * (4 * MIN))
    assert join(files, [("slice", "a"), ("slice", "b")]) == b"a" * (4 * MIN) + b"b" * (4 * MIN)
    assert files.copies == 2


def test_nothing_to_join_is_an_empty_file() -> None:
    files = FakeExportFiles(min_part=MIN)
    files.put("empty", b"")
    assert join(files, [("slice", "empty")]) == b""
    assert files.uploads == {}


def test_size_and_sha256_read_in_ranges_match_the_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    files = FakeExportFiles()
    body = random.Random(1).randbytes(10 * 1000 + 7)
    files.put("f", body)
    monkeypatch.setattr(multipart, "HASH_RANGE", 1000)
    assert multipart.size_and_sha256(files, "f") == (len(body), hashlib.sha256(body).hexdigest())  # type: ignore[arg-type]


@pytest.mark.parametrize("seed", range(10))
def test_day_slices_cover_the_range_once_and_balance_rows(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EXPORT_SLICE_ROWS", "1000")
    monkeypatch.setenv("EXPORT_MAX_SLICES", "8")
    from success_metrics.settings import reset_settings

    reset_settings()
    rng = random.Random(seed)
    first = date(2026, 1, 1)
    last = first + timedelta(days=rng.randint(0, 200))
    counts = {
        first + timedelta(days=d): rng.choice([0, 0, 5, 50, 400])
        for d in range((last - first).days + 1)
    }
    slices = planner.cut(counts, first, last)
    reset_settings()

    assert slices[0].start == first
    assert slices[-1].end == last
    for before, after in itertools.pairwise(slices):
        assert after.start == before.end + timedelta(days=1)
    total = sum(counts.values())
    assert len(slices) <= max(1, min(8, -(-total // 1000)))
    if total > 3000 and len(counts) > 8:
        assert len(slices) > 1
    # No slice but the last holds much more than its share (a day is the smallest unit).
    share = -(-total // len(slices)) if total else 0
    for part in slices[:-1]:
        rows = sum(v for d, v in counts.items() if part.start <= d <= part.end)
        assert rows < share + 400
