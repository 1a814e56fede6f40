"""Finishing an export once its last slice is done: the file (text slices joined server-side
with the glue between them, or the XLSX rendered from the typed spool), its SHA-256, the
manifest beside it, the job's success, one email per notify address; and the cleanup of a job's
uploads and work files, for a cancelled, failed or erased export."""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
import zlib
from typing import Any

from botocore.exceptions import ClientError

from success_metrics.exports import datasets, links, summary_sheet, writers
from success_metrics.exports import email as emails
from success_metrics.exports.layout import (
    Mode,
    column_names,
    content_type,
    file_key,
    file_name,
    files,
    manifest_key,
    mode,
    slice_key,
    work_prefix,
)
from success_metrics.exports.models import (
    Compression,
    Dataset,
    DaySlice,
    ExportFile,
    Manifest,
    ManifestColumn,
    SliceResult,
    Status,
)
from success_metrics.exports.multipart import Assembler, size_and_sha256
from success_metrics.exports.planner import snapshot
from success_metrics.observability import MetricUnit, logger, metrics
from success_metrics.settings import get_settings
from success_metrics.stores import export_jobs as jobs


def done_slices(job: jobs.Job) -> list[SliceResult]:
    assert job.plan is not None
    found = []
    for i in range(len(job.plan.slices)):
        done = job.slice(i).done
        assert done is not None
        found.append(done)
    return found


def _assembler(job: jobs.Job) -> Assembler:
    assembler = Assembler(files(), file_key(job), content_type(job, Mode.FINAL))
    jobs.set_final_upload(job, assembler.upload_id)
    return assembler


def _assemble(job: jobs.Job) -> None:
    """Join the text slices, with glue between them, into the file."""
    slices = done_slices(job)
    pieces = writers.glue(job.request.format.value, column_names(job), [s.rows > 0 for s in slices])
    gzip = job.request.compression is Compression.GZIP
    assembler = _assembler(job)

    def add_glue(piece: bytes) -> None:
        if piece:
            assembler.add(zlib.compress(piece, 6, 31) if gzip else piece)

    for piece, part in zip(pieces, slices, strict=False):
        add_glue(piece)
        assembler.add_object(part.key, part.bytes)
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
        for part in done_slices(job):
            if part.bytes == 0:
                continue
            for line in files().lines(part.key):
                if line:
                    writer.write(json.loads(line))
        writer.finish()
        digest = hashlib.sha256()
        size = 0
        assembler = _assembler(job)
        for block in writer.chunks(settings.export_part_bytes):
            digest.update(block)
            size += len(block)
            assembler.add(block)
        assembler.complete()
        return size, digest.hexdigest()
    finally:
        writer.close()


def sheet_names(rows: int) -> list[str]:
    per = get_settings().export_sheet_rows
    count = max(1, -(-rows // per))
    return ["Data"] + [f"Data {n}" for n in range(2, count + 1)]


def manifest(job: jobs.Job, rows: int, size: int, sha256: str, now: float) -> Manifest:
    r = job.request
    return Manifest(
        export_id=job.export_id,
        org_id=job.org_id,
        file=file_name(job),
        key=file_key(job),
        rows=rows,
        bytes=size,
        sha256=sha256,
        columns=[ManifestColumn(name=c.name, type=c.kind) for c in datasets.columns(r.dataset)],
        dataset=r.dataset,
        format=r.format,
        compression=r.compression,
        range=DaySlice(start=r.start, end=r.end),
        filters=r.filters.model_dump(mode="json", exclude_none=True),
        granularity=r.granularity if r.dataset is Dataset.METRICS else None,
        created_at=int(job.created_at),
        finished_at=int(now),
        expires_at=int(now) + get_settings().export_file_days * 86400,
        sheets=[summary_sheet.TITLE, *sheet_names(rows)] if mode(job) is Mode.SPOOL else None,
    )


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
        size, sha256 = size_and_sha256(files(), file_key(job))
    now = time.time()
    rows = sum(s.rows for s in done_slices(job))
    written = manifest(job, rows, size, sha256, now)
    body = written.model_dump(mode="json", by_alias=True)
    if body["sheets"] is None:  # XLSX only
        del body["sheets"]
    files().put_json(manifest_key(job), body, indent=2)
    file = ExportFile(
        name=written.file,
        key=written.key,
        manifest_key=manifest_key(job),
        rows=rows,
        bytes=size,
        sha256=sha256,
        expires_at=written.expires_at,
    )
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


def notify(job: jobs.Job, summary: dict[str, Any] | None = None) -> None:
    """Email the link to every notify address, then drop the work files (the snapshot that
    holds the summary figures is one of them, so a retried notification still has it)."""
    if job.request.notify and job.file:
        if summary is None:
            with contextlib.suppress(ClientError):
                summary = snapshot(job).get("month")
        base = get_settings().public_api_url
        expires_at = job.file.expires_at
        link = links.url(base, job, expires_at)
        subject, text, body = emails.ready(job, link, expires_at, summary)
        emails.send(job.request.notify, subject, text, body)
    jobs.mark_notified(job)
    files().delete_prefix(work_prefix(job))
    files().abort_uploads(f"exports/{job.org_id}/{job.export_id}/")


def cleanup(job: jobs.Job, keep_file: bool = False) -> None:
    """Abort every upload the job started and delete its work files (and its file)."""
    store = files()
    if job.plan is not None:
        for index in range(len(job.plan.slices)):
            checkpoint = job.slice(index).checkpoint
            if checkpoint is not None and job.slice(index).done is None:
                store.abort(slice_key(job, index), checkpoint.upload_id)
    if job.final_upload:
        store.abort(file_key(job), job.final_upload)
    store.delete_prefix(work_prefix(job))
    if not keep_file:
        store.delete_prefix(f"exports/{job.org_id}/{job.export_id}/")
