"""The export worker: plan a job, stream its slices into S3 multipart uploads, finish it.

One SQS message is one unit of work: `plan` (the first), or `slice` n. Planning snapshots the
metrics of the range, estimates the rows from the metric counters and cuts the range into
slices of whole days; slice 0 runs at once and the others go to the queue, so a large export
fans out over as many workers (see docs/exports.md).

A slice streams rows through the format writer into a part buffer; each full part (>= 5 MiB,
S3's minimum) is uploaded and then the checkpoint is saved: the row cursor, the upload id, the
part count and the writer state. The rows after the last checkpoint are simply read again by
whoever continues, and the writers resume byte for byte, so an interrupted slice ends exactly as
an uninterrupted one. When its time runs short a worker queues its slice again and returns; a
crash or redelivery resumes from the checkpoint; a cancellation is noticed at the next save
(which requires the job to still be running), and the upload is aborted.

The last slice to finish finishes the job: text slices are joined server-side (UploadPartCopy)
with the small glue pieces (CSV header, JSON brackets and commas) between them; XLSX slices are a
typed NDJSON spool that is rendered into one workbook under /tmp. Then the SHA-256, the
manifest beside the file, the job's success, and one email per notify address.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import secrets
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum
from typing import Any

from botocore.exceptions import ClientError

from success_metrics import aws
from success_metrics.exports import access, datasets, links, summary_sheet, writers
from success_metrics.exports import email as emails
from success_metrics.exports.models import CONTENT_TYPES, Compression, Dataset, Format, Status
from success_metrics.metrics.periods import Granularity
from success_metrics.observability import MetricUnit, logger, metrics
from success_metrics.settings import get_settings
from success_metrics.stores import export_jobs as jobs
from success_metrics.stores.export_files import ExportFiles, UploadGone

COPY_MAX = 5 * 1024**3  # S3's largest UploadPartCopy range
HASH_RANGE = 16 * 1024 * 1024
HASH_AHEAD = 4  # ranges in flight while hashing: at most 64 MiB in memory
_IO = ThreadPoolExecutor(max_workers=8, thread_name_prefix="export-io")
CHECK_EVERY = 256  # rows between remaining-time checks


class Handover(Exception):
    """Time is short: the slice continues from its checkpoint in a fresh invocation."""


class Stopped(Exception):
    """The job was cancelled, or another worker advanced this slice: stop quietly."""


class ExportFailed(Exception):
    """A failure the caller should read about (the job fails, the email says why)."""


@dataclass
class Budget:
    remaining_ms: Callable[[], int]

    def short(self) -> bool:
        return self.remaining_ms() < get_settings().export_handover_ms


# ------------------------------------------------------------------ names


def files() -> ExportFiles:
    return ExportFiles.default()


def file_name(job: jobs.Job) -> str:
    r = job.request
    name = f"{r.dataset.value}-{r.start.isoformat()}-to-{r.end.isoformat()}.{r.format.value}"
    return name + (".gz" if r.compression is Compression.GZIP else "")


def file_key(job: jobs.Job) -> str:
    return f"exports/{job.org_id}/{job.export_id}/{file_name(job)}"


def manifest_key(job: jobs.Job) -> str:
    return f"exports/{job.org_id}/{job.export_id}/manifest.json"


def work_prefix(job: jobs.Job) -> str:
    return f"work/{job.org_id}/{job.export_id}/"


class Mode(StrEnum):
    """How a job's slices become its file."""

    FINAL = "final"  # one text slice written straight to the file
    SLICES = "slices"  # text slices joined at the end (UploadPartCopy and glue)
    SPOOL = "spool"  # XLSX: slices are typed NDJSON rendered into the workbook at the end


def mode(job: jobs.Job) -> Mode:
    if job.request.format is Format.XLSX:
        return Mode.SPOOL
    assert job.plan is not None
    return Mode.FINAL if len(job.plan["slices"]) == 1 else Mode.SLICES


def slice_key(job: jobs.Job, index: int) -> str:
    if mode(job) is Mode.FINAL:
        return file_key(job)
    suffix = ".ndjson" if mode(job) is Mode.SPOOL else ""
    return f"{work_prefix(job)}slice-{index:05d}{suffix}"


def column_names(job: jobs.Job) -> list[str]:
    return [c.name for c in datasets.columns(job.request.dataset)]


# ------------------------------------------------------------------ entry point


def send(org_id: str, export_id: str, task: str, index: int = 0) -> None:
    body = {"org_id": org_id, "export_id": export_id, "task": task, "slice": index}
    aws.sqs().send_message(QueueUrl=get_settings().export_queue_url, MessageBody=json.dumps(body))


RETRY_CAP_SECONDS = 900


def retry_delay(attempt: int) -> int:
    """Seconds before a failed message's next attempt: EXPORT_RETRY_SECONDS tripled per attempt
    (5, 15, 45, 135 s by default: a deterministic failure ends `failed` within about 3.5 minutes,
    and a passing throttle gets time to pass), with up to 20 % jitter, at most 15 minutes."""
    base = get_settings().export_retry_seconds * 3 ** max(0, attempt - 1)
    jitter = base * 0.2 * secrets.randbelow(1000) / 1000
    return int(min(RETRY_CAP_SECONDS, base + jitter))


def retry_later(receipt_handle: str, attempt: int) -> None:
    """Bring a failed message back after `retry_delay` instead of the queue's visibility
    timeout. If SQS refuses, it still comes back, only later: nothing is lost."""
    delay = retry_delay(attempt)
    try:
        aws.sqs().change_message_visibility(
            QueueUrl=get_settings().export_queue_url,
            ReceiptHandle=receipt_handle,
            VisibilityTimeout=delay,
        )
    except ClientError:
        logger.warning("could not shorten the retry delay", exc_info=True)
        return
    logger.info("export message retried later", extra={"attempt": attempt, "delay_s": delay})


def handle(message: dict[str, Any], budget: Budget, attempt: int, now: float) -> None:
    """Work one message. Transient errors raise (SQS redelivers); the last attempt fails the
    job with a readable error instead, and emails it."""
    org_id, export_id = str(message["org_id"]), str(message["export_id"])
    logger.append_keys(org_id=org_id, export_id=export_id)
    job = jobs.find(org_id, export_id)
    if job is None:
        logger.warning("export message for an unknown job dropped")
        return
    try:
        _work(job, message, budget, now)
    except Handover:
        send(org_id, export_id, "slice", int(message.get("slice", 0)))
        metrics.add_metric(name="ExportHandovers", unit=MetricUnit.Count, value=1)
        logger.info("export handed over", extra={"slice": message.get("slice", 0)})
    except UploadGone as exc:
        current = jobs.find(org_id, export_id)
        if current is not None and current.status is Status.CANCELLED:
            cleanup(current)
        else:
            _fail(
                job,
                "the export's partial upload was discarded (uploads left unfinished for a day "
                "are removed); please request it again",
                now,
            )
            logger.warning("export upload gone", exc_info=exc)
    except Stopped:
        logger.info("export slice stopped", extra={"slice": message.get("slice", 0)})
        current = jobs.find(org_id, export_id)
        if current is not None and current.status is Status.CANCELLED:
            cleanup(current)
    except ExportFailed as exc:
        _fail(job, str(exc), now)
    except Exception as exc:
        if attempt < get_settings().export_attempts:
            raise
        logger.exception("export failed on its last attempt")
        _fail(job, f"{_plain(exc)} (after {attempt} attempts)", now)


def _plain(exc: Exception) -> str:
    if isinstance(exc, emails.EmailError):
        return f"{exc}: the file was written, but the email about it could not be sent"
    if isinstance(exc, ClientError):
        code = exc.response["Error"]["Code"]
        return (
            f"a storage service kept refusing the export ({code}); "
            "this is usually temporary, so please request it again"
        )
    return "the export stopped on an unexpected error; our team has the details in the logs"


def _fail(job: jobs.Job, error: str, now: float) -> None:
    if jobs.fail(job, error, now):
        metrics.add_metric(name="ExportsFailed", unit=MetricUnit.Count, value=1)
        cleanup(job, keep_file=False)
        failed = jobs.find(job.org_id, job.export_id) or job
        if failed.request.notify:
            subject, text, body = emails.failed(failed, error)
            emails.send(failed.request.notify, subject, text, body)


def _work(job: jobs.Job, message: dict[str, Any], budget: Budget, now: float) -> None:
    if job.status is Status.CANCELLED:
        cleanup(job)
        return
    if job.status is Status.FAILED:
        return
    if job.status is Status.SUCCEEDED:
        if not job.notified:
            notify(job)
        return
    if message.get("task") == "plan":
        if job.plan is None:
            planned = plan(job, now)
            if planned is None:
                return
            job = planned
        assert job.plan is not None
        # Also when a planner died after planning: a slice that has not started has no
        # message yet. One sent twice is harmless (the slice's sequence number lets one
        # worker advance it; the other stops at its first save).
        for index in range(1, len(job.plan["slices"])):
            if job.slice(index).seq == 0:
                send(job.org_id, job.export_id, "slice", index)
        run_slice(job, 0, budget)
    else:
        run_slice(job, int(message.get("slice", 0)), budget)


# ------------------------------------------------------------------ plan


def _slices(counts: dict[date, int], first: date, last: date) -> list[dict[str, str]]:
    settings = get_settings()
    total = sum(counts.values())
    wanted = max(1, min(settings.export_max_slices, -(-total // settings.export_slice_rows)))
    per_slice = max(1, -(-total // wanted))
    slices: list[dict[str, str]] = []
    start, running = first, 0
    day = first
    while day <= last:
        running += counts.get(day, 0)
        if running >= per_slice and day < last and len(slices) < wanted - 1:
            slices.append({"from": start.isoformat(), "to": day.isoformat()})
            start, running = day + timedelta(days=1), 0
        day += timedelta(days=1)
    slices.append({"from": start.isoformat(), "to": last.isoformat()})
    return slices


def plan(job: jobs.Job, now: float) -> jobs.Job | None:
    """Snapshot what the export needs besides events, estimate its rows, cut it into slices,
    start it. None if the job was cancelled meanwhile."""
    r = job.request
    snapshot: dict[str, Any] = {}
    whole = [{"from": r.start.isoformat(), "to": r.end.isoformat()}]
    if r.dataset is Dataset.ACCESS:
        assert r.subject is not None
        found = access.gather(job.org_id, r.subject, now)
        snapshot["extra"] = found["rows"]
        estimate = found["events"] + len(found["rows"])
        slices = whole
    else:
        month = datasets.metrics_result(job.org_id, r.start, r.end, Granularity.MONTH, now)
        snapshot["month"] = month
        if r.dataset is Dataset.EVENTS:
            counts = datasets.day_counts(job.org_id, r.start, r.end, r.filters, now)
            estimate = sum(counts.values())
            slices = _slices(counts, r.start, r.end)
            limit = get_settings().export_xlsx_max_rows
            if r.format is Format.XLSX and estimate > limit:
                raise ExportFailed(
                    f"about {estimate:,} rows match, more than the {limit:,} an Excel export "
                    "can hold and render in one go; ask for CSV or NDJSON (gzip keeps it "
                    "small), or a shorter range"
                )
        else:
            result = (
                month
                if r.dataset is Dataset.SUMMARY
                else datasets.metrics_result(job.org_id, r.start, r.end, r.granularity, now)
            )
            snapshot["dataset"] = result
            estimate = sum(1 for _ in datasets.metric_rows(result, r.dataset is Dataset.SUMMARY))
            slices = whole
    key = f"{work_prefix(job)}snapshot-{secrets.token_hex(4)}.json"
    files().put_json(key, snapshot)
    planned = {"as_of": int(now), "estimated_rows": estimate, "slices": slices, "snapshot": key}
    if not jobs.start(job, planned, now):
        current = jobs.find(job.org_id, job.export_id)
        if current is None or current.status is not Status.RUNNING or current.plan is None:
            if current is not None and current.status is Status.CANCELLED:
                cleanup(current)
            return None
        return current  # another worker planned it first: follow its plan
    logger.info("export planned", extra={"slices": len(slices), "estimated_rows": estimate})
    return jobs.find(job.org_id, job.export_id)


def snapshot(job: jobs.Job) -> dict[str, Any]:
    assert job.plan is not None
    loaded: dict[str, Any] = files().read_json(job.plan["snapshot"])
    return loaded


# ------------------------------------------------------------------ slices


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


def _rows(
    job: jobs.Job, index: int, cursor: datasets.Cursor | None
) -> Iterator[tuple[datasets.Row, datasets.Cursor]]:
    assert job.plan is not None
    r = job.request
    if r.dataset is Dataset.EVENTS:
        part = job.plan["slices"][index]
        return datasets.event_rows(
            job.org_id,
            date.fromisoformat(part["from"]),
            date.fromisoformat(part["to"]),
            r.filters,
            cursor,
            float(job.plan["as_of"]),
        )
    if r.dataset is Dataset.ACCESS:
        assert r.subject is not None
        return datasets.access_rows(
            job.org_id,
            r.subject,
            snapshot(job)["extra"],
            cursor,
            float(job.plan["as_of"]),
        )
    result = snapshot(job)["dataset"]
    rows = datasets.metric_rows(result, r.dataset is Dataset.SUMMARY)
    return datasets.indexed_rows(rows, cursor)


def run_slice(job: jobs.Job, index: int, budget: Budget) -> None:
    assert job.plan is not None
    state = job.slice(index)
    if state.done is not None:
        _maybe_finish(job)
        return
    settings = get_settings()
    r = job.request
    slice_mode = mode(job)
    key = slice_key(job, index)
    fmt = "ndjson" if slice_mode is Mode.SPOOL else r.format.value
    gzip = r.compression is Compression.GZIP and slice_mode is not Mode.SPOOL
    checkpoint = dict(state.checkpoint or {})
    seq = state.seq
    if checkpoint.get("completing"):
        _complete_slice(job, index, key, checkpoint, seq)
        return
    if not checkpoint.get("upload_id"):
        upload_id = files().start_upload(key, _content_type(job, slice_mode))
        checkpoint = {"upload_id": upload_id, "parts": 0, "rows": 0, "bytes": 0, "cursor": None}
        if not jobs.save_checkpoint(job, index, checkpoint, seq):
            files().abort(key, upload_id)
            raise Stopped
        seq += 1
    upload_id = checkpoint["upload_id"]
    writer = writers.text_writer(
        fmt, column_names(job), int(checkpoint["rows"]), framed=slice_mode is Mode.FINAL
    )
    done_so_far = {"parts": int(checkpoint["parts"]), "bytes": int(checkpoint["bytes"]), "seq": seq}

    def part_done(data: bytes, cursor: datasets.Cursor) -> None:
        done_so_far["parts"] += 1
        files().upload_part(key, upload_id, done_so_far["parts"], data)
        done_so_far["bytes"] += len(data)
        progress = {
            "upload_id": upload_id,
            "parts": done_so_far["parts"],
            "rows": writer.rows,
            "bytes": done_so_far["bytes"],
            "cursor": cursor,
        }
        if not jobs.save_checkpoint(job, index, progress, done_so_far["seq"]):
            raise Stopped
        done_so_far["seq"] += 1

    def tick() -> None:
        # Hand over only after saving progress in this invocation, so that every
        # invocation moves the slice forward.
        if done_so_far["seq"] > seq and budget.short():
            raise Handover

    data = pump(
        _rows(job, index, checkpoint.get("cursor")),
        writer,
        PartBuffer(gzip, settings.export_part_bytes),
        part_done,
        tick,
    )
    parts, out_bytes, seq = done_so_far["parts"], done_so_far["bytes"], done_so_far["seq"]
    if data:
        parts += 1
        files().upload_part(key, upload_id, parts, data)
        out_bytes += len(data)
    # Recorded before completing: S3 forgets the upload id once it is complete, so a worker
    # that dies right after completing must find here that only the bookkeeping is left.
    checkpoint = {
        "upload_id": upload_id,
        "parts": parts,
        "rows": writer.rows,
        "bytes": out_bytes,
        "cursor": None,
        "completing": True,
    }
    if not jobs.save_checkpoint(job, index, checkpoint, seq):
        raise Stopped
    _complete_slice(job, index, key, checkpoint, seq + 1)


def _complete_slice(
    job: jobs.Job, index: int, key: str, checkpoint: dict[str, Any], seq: int
) -> None:
    """Complete the slice's upload (again, harmlessly, after a crash) and record it done."""
    assert job.plan is not None
    parts = int(checkpoint["parts"])
    if parts == 0:
        files().abort(key, checkpoint["upload_id"])
        files().put(key, b"")
    else:
        files().complete_uploaded(key, checkpoint["upload_id"], parts)
    result = {"key": key, "rows": checkpoint["rows"], "bytes": checkpoint["bytes"], "parts": parts}
    done = jobs.finish_slice(job, index, result, seq)
    if done is None:
        raise Stopped
    if done >= len(job.plan["slices"]):
        current = jobs.find(job.org_id, job.export_id)
        if current is not None:
            finish(current)


def _content_type(job: jobs.Job, slice_mode: Mode) -> str:
    if slice_mode is not Mode.FINAL:
        return "application/octet-stream"
    if job.request.compression is Compression.GZIP:
        return "application/gzip"
    return CONTENT_TYPES[job.request.format]


def _maybe_finish(job: jobs.Job) -> None:
    assert job.plan is not None
    if job.status is Status.RUNNING and all(
        job.slice(i).done is not None for i in range(len(job.plan["slices"]))
    ):
        finish(job)


# ------------------------------------------------------------------ finish


class _Assembler:
    """Joins pieces into one multipart upload: big ranges copied server-side, small pieces
    gathered in a buffer until they make a part."""

    def __init__(self, job: jobs.Job, key: str) -> None:
        self.key = key
        self.files = files()
        self.part_bytes = get_settings().export_part_bytes
        self.buffer = bytearray()
        # Each part's ETag, or the server-side copy that will give it (they run side by
        # side; only their ETags are needed, at completion).
        self.parts: list[str | Future[str]] = []
        self.upload_id = self.files.start_upload(key, _content_type(job, Mode.FINAL))

    def _flush(self) -> None:
        number = len(self.parts) + 1
        self.parts.append(
            self.files.upload_part(self.key, self.upload_id, number, bytes(self.buffer))
        )
        self.buffer.clear()

    def add(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) >= self.part_bytes:
            self._flush()

    def add_object(self, source: str, size: int) -> None:
        offset = 0
        while offset < size:
            if self.buffer:
                take = min(size - offset, self.part_bytes - len(self.buffer))
                self.add(self.files.read_range(source, offset, offset + take))
                offset += take
            elif size - offset >= self.part_bytes:
                take = min(size - offset, COPY_MAX)
                number = len(self.parts) + 1
                self.parts.append(
                    _IO.submit(
                        self.files.copy_part,
                        self.key,
                        self.upload_id,
                        number,
                        source,
                        offset,
                        offset + take,
                    )
                )
                offset += take
            else:
                self.add(self.files.read_range(source, offset, size))
                offset = size

    def complete(self) -> None:
        if self.buffer or not self.parts:
            if not self.parts and not self.buffer:
                self.files.abort(self.key, self.upload_id)
                self.files.put(self.key, b"")
                return
            self._flush()
        etags = [p if isinstance(p, str) else p.result() for p in self.parts]
        self.files.complete(self.key, self.upload_id, etags)


def _done_slices(job: jobs.Job) -> list[dict[str, Any]]:
    assert job.plan is not None
    found = []
    for i in range(len(job.plan["slices"])):
        done = job.slice(i).done
        assert done is not None
        found.append(done)
    return found


def _assemble(job: jobs.Job) -> None:
    """Join the text slices, with glue between them, into the file."""
    slices = _done_slices(job)
    pieces = writers.glue(
        job.request.format.value, column_names(job), [int(s["rows"]) > 0 for s in slices]
    )
    gzip = job.request.compression is Compression.GZIP
    assembler = _Assembler(job, file_key(job))
    jobs.set_final_upload(job, assembler.upload_id)

    def add_glue(piece: bytes) -> None:
        if piece:
            assembler.add(zlib.compress(piece, 6, 31) if gzip else piece)

    for piece, part in zip(pieces, slices, strict=False):
        add_glue(piece)
        assembler.add_object(part["key"], int(part["bytes"]))
    add_glue(pieces[-1])
    assembler.complete()


def _render(job: jobs.Job, summary: dict[str, Any]) -> tuple[int, str]:
    """Render the XLSX from the spool slices; returns (bytes, sha256) of the uploaded file."""
    settings = get_settings()
    kinds = [c.kind for c in datasets.columns(job.request.dataset)]
    writer = writers.XlsxWriter(
        column_names(job), sheet_rows=settings.export_sheet_rows, title="Data", kinds=kinds
    )
    try:
        summary_sheet.add(writer.workbook, summary)
        for part in _done_slices(job):
            if int(part["bytes"]) == 0:
                continue
            for line in files().lines(part["key"]):
                if line:
                    writer.write(json.loads(line))
        writer.finish()
        digest = hashlib.sha256()
        size = 0
        assembler = _Assembler(job, file_key(job))
        jobs.set_final_upload(job, assembler.upload_id)
        for block in writer.chunks(settings.export_part_bytes):
            digest.update(block)
            size += len(block)
            assembler.add(block)
        assembler.complete()
        return size, digest.hexdigest()
    finally:
        writer.close()


def _hash(key: str) -> tuple[int, str]:
    """Size and SHA-256 of an object, read as ranges a few at a time (in order, bounded)."""
    store = files()
    size = store.size(key)
    digest = hashlib.sha256()

    def fetch(start: int) -> bytes:
        return store.read_range(key, start, min(size, start + HASH_RANGE))

    window: deque[Future[bytes]] = deque()
    starts = iter(range(0, size, HASH_RANGE))
    for start in itertools.islice(starts, HASH_AHEAD):
        window.append(_IO.submit(fetch, start))
    while window:
        digest.update(window.popleft().result())
        for start in itertools.islice(starts, 1):
            window.append(_IO.submit(fetch, start))
    return size, digest.hexdigest()


def finish(job: jobs.Job) -> None:
    """Produce the file, its manifest, mark the job succeeded, email the link."""
    if job.status is not Status.RUNNING:
        return
    if job.final_upload:  # a previous finish died half-way: start the file again
        files().abort(file_key(job), job.final_upload)
    data = snapshot(job)
    slice_mode = mode(job)
    if slice_mode is Mode.SPOOL:
        size, sha256 = _render(job, data["month"])
    else:
        if slice_mode is Mode.SLICES:
            _assemble(job)
        size, sha256 = _hash(file_key(job))
    now = time.time()
    expires_at = int(now) + get_settings().export_file_days * 86400
    rows = sum(int(s["rows"]) for s in _done_slices(job))
    r = job.request
    manifest = {
        "export_id": job.export_id,
        "org_id": job.org_id,
        "file": file_name(job),
        "key": file_key(job),
        "rows": rows,
        "bytes": size,
        "sha256": sha256,
        "columns": [{"name": c.name, "type": c.kind} for c in datasets.columns(r.dataset)],
        "dataset": r.dataset.value,
        "format": r.format.value,
        "compression": r.compression.value,
        "range": {"from": r.start.isoformat(), "to": r.end.isoformat()},
        "filters": r.filters.model_dump(mode="json", exclude_none=True),
        "granularity": r.granularity.value if r.dataset is Dataset.METRICS else None,
        "created_at": int(job.created_at),
        "finished_at": int(now),
        "expires_at": expires_at,
    }
    if slice_mode is Mode.SPOOL:
        manifest["sheets"] = [summary_sheet.TITLE, *_sheet_names(rows)]
    files().put_json(manifest_key(job), manifest, indent=2)
    file = {
        "name": file_name(job),
        "key": file_key(job),
        "manifest_key": manifest_key(job),
        "rows": rows,
        "bytes": size,
        "sha256": sha256,
        "expires_at": expires_at,
    }
    if not jobs.succeed(job, file, now):
        current = jobs.find(job.org_id, job.export_id)
        if current is not None and current.status is Status.CANCELLED:
            cleanup(current, keep_file=False)
        return
    metrics.add_metric(name="ExportsSucceeded", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="ExportRows", unit=MetricUnit.Count, value=rows)
    logger.info("export succeeded", extra={"rows": rows, "bytes": size})
    done = jobs.find(job.org_id, job.export_id)
    if done is not None:
        notify(done, data.get("month"))


def _sheet_names(rows: int) -> list[str]:
    per = get_settings().export_sheet_rows
    count = max(1, -(-rows // per))
    return ["Data"] + [f"Data {n}" for n in range(2, count + 1)]


def notify(job: jobs.Job, summary: dict[str, Any] | None = None) -> None:
    """Email the link to every notify address, then drop the work files (the snapshot that
    holds the summary figures is one of them, so a retried notification still has it)."""
    if job.request.notify and job.file:
        if summary is None:
            with contextlib.suppress(ClientError):
                summary = snapshot(job).get("month")
        base = get_settings().public_api_url
        expires_at = int(job.file["expires_at"])
        link = links.url(base, job, expires_at)
        subject, text, body = emails.ready(job, link, expires_at, summary)
        emails.send(job.request.notify, subject, text, body)
    jobs.mark_notified(job)
    files().delete_prefix(work_prefix(job))
    files().abort_uploads(f"exports/{job.org_id}/{job.export_id}/")


# ------------------------------------------------------------------ cleanup


def cleanup(job: jobs.Job, keep_file: bool = False) -> None:
    """Abort every upload the job started and delete its work files (and its file)."""
    store = files()
    if job.plan is not None:
        for index in range(len(job.plan["slices"])):
            checkpoint = job.slice(index).checkpoint or {}
            if checkpoint.get("upload_id") and job.slice(index).done is None:
                store.abort(slice_key(job, index), checkpoint["upload_id"])
    if job.final_upload:
        store.abort(file_key(job), job.final_upload)
    store.delete_prefix(work_prefix(job))
    if not keep_file:
        store.delete_prefix(f"exports/{job.org_id}/{job.export_id}/")
