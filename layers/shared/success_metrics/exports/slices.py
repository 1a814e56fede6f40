"""One slice of an export: rows streamed through the format writer into a part buffer; each
full part (>= 5 MiB, S3's minimum) is uploaded and then the checkpoint saved (`Checkpoint`: the
upload, the parts, bytes and rows so far, the dataset cursor). The rows after the last
checkpoint are read again by whoever continues, and the writers resume from the row count, so
an interrupted slice ends exactly as an uninterrupted one. When its time runs short a worker
raises `Handover` (the slice is queued again); a cancellation is noticed at the next save, which
requires the job to still be running (`Stopped`). The last slice to finish finishes the job."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from success_metrics.exports import datasets, writers
from success_metrics.exports.finish import finish
from success_metrics.exports.layout import (
    Budget,
    Handover,
    Mode,
    Stopped,
    column_names,
    content_type,
    files,
    mode,
    slice_key,
)
from success_metrics.exports.models import Checkpoint, Compression, Dataset, SliceResult, Status
from success_metrics.exports.planner import snapshot
from success_metrics.settings import get_settings
from success_metrics.stores import export_jobs as jobs

CHECK_EVERY = 256  # rows between remaining-time checks


class PartBuffer:
    """Bytes waiting to become the next part; with gzip each part is one gzip member."""

    def __init__(self, gzip: bool, part_bytes: int) -> None:
        self.gzip = gzip
        self.part_bytes = part_bytes
        self._data = bytearray()
        self._z = self._compressor() if gzip else None

    @staticmethod
    def _compressor() -> Any:
        return zlib.compressobj(6, zlib.DEFLATED, 31)

    def add(self, data: bytes) -> None:
        if self._z is not None:
            self._data += self._z.compress(data)
        else:
            self._data += data

    def full(self) -> bool:
        return len(self._data) >= self.part_bytes

    def take(self) -> bytes:
        if self._z is not None:
            self._data += self._z.flush()
            self._z = self._compressor()
        data = bytes(self._data)
        self._data.clear()
        return data


def pump(
    rows: Iterable[tuple[datasets.Row, datasets.Cursor]],
    writer: writers.Writer,
    buffer: PartBuffer,
    part_done: Callable[[bytes, datasets.Cursor], None],
    tick: Callable[[], None] | None = None,
) -> bytes:
    """The streaming core: rows through the writer into parts. `part_done` gets each full part
    with the cursor after its last row; `tick` runs every CHECK_EVERY rows. Returns the last,
    possibly short, part (the writer's closing bytes included)."""
    for count, (row, cursor) in enumerate(rows, 1):
        buffer.add(writer.write(row))
        if buffer.full():
            part_done(buffer.take(), cursor)
        if tick is not None and count % CHECK_EVERY == 0:
            tick()
    buffer.add(writer.finish())
    return buffer.take()


def rows(
    job: jobs.Job, index: int, cursor: datasets.Cursor | None
) -> Iterator[tuple[datasets.Row, datasets.Cursor]]:
    """The slice's rows after `cursor`, each with the cursor after it."""
    assert job.plan is not None
    r = job.request
    as_of = float(job.plan.as_of)
    if r.dataset is Dataset.EVENTS:
        part = job.plan.slices[index]
        return datasets.event_rows(job.org_id, part.start, part.end, r.filters, cursor, as_of)
    if r.dataset is Dataset.ACCESS:
        assert r.subject is not None
        extra = snapshot(job)["extra"]
        return datasets.access_rows(job.org_id, r.subject, extra, cursor, as_of)
    result = snapshot(job)["dataset"]
    return datasets.indexed_rows(datasets.metric_rows(result, r.dataset is Dataset.SUMMARY), cursor)


class _Progress:
    """The slice's checkpoint as it moves, and the sequence number its next save expects."""

    def __init__(self, job: jobs.Job, index: int, checkpoint: Checkpoint, seq: int) -> None:
        self.job = job
        self.index = index
        self.checkpoint = checkpoint
        self.seq = seq

    def save(self, checkpoint: Checkpoint) -> None:
        if not jobs.save_checkpoint(self.job, self.index, checkpoint, self.seq):
            raise Stopped
        self.checkpoint = checkpoint
        self.seq += 1


def run_slice(job: jobs.Job, index: int, budget: Budget) -> None:
    assert job.plan is not None
    state = job.slice(index)
    if state.done is not None:
        _maybe_finish(job)
        return
    r = job.request
    slice_mode = mode(job)
    key = slice_key(job, index)
    if state.checkpoint is not None and state.checkpoint.completing:
        _complete_slice(job, index, key, state.checkpoint, state.seq)
        return
    if state.checkpoint is None:
        upload_id = files().start_upload(key, content_type(job, slice_mode))
        started = Checkpoint(upload_id=upload_id)
        if not jobs.save_checkpoint(job, index, started, state.seq):
            files().abort(key, upload_id)
            raise Stopped
        progress = _Progress(job, index, started, state.seq + 1)
    else:
        progress = _Progress(job, index, state.checkpoint, state.seq)
    resumed_at = progress.seq
    start = progress.checkpoint
    fmt = "ndjson" if slice_mode is Mode.SPOOL else r.format.value
    writer = writers.text_writer(
        fmt, column_names(job), start.rows, framed=slice_mode is Mode.FINAL
    )

    def part_done(data: bytes, cursor: datasets.Cursor) -> None:
        at = progress.checkpoint
        files().upload_part(key, at.upload_id, at.parts + 1, data)
        progress.save(
            Checkpoint(
                upload_id=at.upload_id,
                parts=at.parts + 1,
                rows=writer.rows,
                bytes=at.bytes + len(data),
                cursor=cursor,
            )
        )

    def tick() -> None:
        # Hand over only after saving progress in this invocation, so that every invocation
        # moves the slice forward.
        if progress.seq > resumed_at and budget.short():
            raise Handover

    gzip = r.compression is Compression.GZIP and slice_mode is not Mode.SPOOL
    buffer = PartBuffer(gzip, get_settings().export_part_bytes)
    last = pump(rows(job, index, start.cursor), writer, buffer, part_done, tick)
    at = progress.checkpoint
    parts, size = at.parts, at.bytes
    if last:
        parts += 1
        files().upload_part(key, at.upload_id, parts, last)
        size += len(last)
    # Recorded before completing: S3 forgets the upload id once it is complete, so a worker
    # that dies right after completing must find here that only the bookkeeping is left.
    completing = Checkpoint(
        upload_id=at.upload_id, parts=parts, rows=writer.rows, bytes=size, completing=True
    )
    progress.save(completing)
    _complete_slice(job, index, key, completing, progress.seq)


def _complete_slice(job: jobs.Job, index: int, key: str, checkpoint: Checkpoint, seq: int) -> None:
    """Complete the slice's upload (again, harmlessly, after a crash) and record it done."""
    assert job.plan is not None
    if checkpoint.parts == 0:
        files().abort(key, checkpoint.upload_id)
        files().put(key, b"")
    else:
        files().complete_uploaded(key, checkpoint.upload_id, checkpoint.parts)
    result = SliceResult(
        key=key, rows=checkpoint.rows, bytes=checkpoint.bytes, parts=checkpoint.parts
    )
    done = jobs.finish_slice(job, index, result, seq)
    if done is None:
        raise Stopped
    if done >= len(job.plan.slices):
        current = jobs.find(job.org_id, job.export_id)
        if current is not None:
            finish(current)


def _maybe_finish(job: jobs.Job) -> None:
    assert job.plan is not None
    if job.status is Status.RUNNING and all(
        job.slice(i).done is not None for i in range(len(job.plan.slices))
    ):
        finish(job)
