"""Where an export's objects go in the bucket, and how its slices become its file (`Mode`);
the exceptions that stop a piece of export work early, and the remaining-time budget."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from success_metrics.exports import datasets
from success_metrics.exports.models import CONTENT_TYPES, Compression, Format
from success_metrics.settings import get_settings
from success_metrics.stores import export_jobs as jobs
from success_metrics.stores.export_files import ExportFiles


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
    return Mode.FINAL if len(job.plan.slices) == 1 else Mode.SLICES


def slice_key(job: jobs.Job, index: int) -> str:
    if mode(job) is Mode.FINAL:
        return file_key(job)
    suffix = ".ndjson" if mode(job) is Mode.SPOOL else ""
    return f"{work_prefix(job)}slice-{index:05d}{suffix}"


def column_names(job: jobs.Job) -> list[str]:
    return [c.name for c in datasets.columns(job.request.dataset)]


def content_type(job: jobs.Job, slice_mode: Mode) -> str:
    if slice_mode is not Mode.FINAL:
        return "application/octet-stream"
    if job.request.compression is Compression.GZIP:
        return "application/gzip"
    return CONTENT_TYPES[job.request.format]
