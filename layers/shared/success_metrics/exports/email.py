"""Export emails through SES: one message per notify address, an HTML and a text part.

A finished export's email gives the summary figures of its range, the `/download` link (which
outlives any credential and can be revoked) and the date the file expires; a failed export's
email says what went wrong in plain words.
"""

from __future__ import annotations

import html
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

from botocore.exceptions import ClientError

from success_metrics import aws
from success_metrics.exports.summary_sheet import headline
from success_metrics.observability import logger
from success_metrics.settings import get_settings
from success_metrics.stores import export_jobs as jobs


def _fmt(value: Any, number_format: str | None) -> str:
    if value is None:
        return "n/a"
    if number_format == "0.0%":
        return f"{float(value) * 100:.1f}%"
    if number_format and "0.00" in number_format:
        return f"{float(value):,.2f}"
    if isinstance(value, float):
        return f"{value:,.2f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _date(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, tz=UTC).strftime("%A %d %B %Y, %H:%M UTC")


def size_text(size: int) -> str:
    """A file's size as people read it: 812 bytes, 11.6 KB, 3.4 MB, 1.2 GB."""
    if size < 1024:
        return f"{size:,} bytes"
    value = size / 1024
    for unit in ("KB", "MB"):
        if value < 1024:
            return f"{value:,.1f} {unit}"
        value /= 1024
    return f"{value:,.1f} GB"


def _describe(job: jobs.Job) -> str:
    r = job.request
    text = f"{r.dataset.value} from {r.start.isoformat()} to {r.end.isoformat()}"
    return text + f" as {r.format.value.upper()}"


def ready(
    job: jobs.Job, link: str, expires_at: float, summary: dict[str, Any] | None
) -> tuple[str, str, str]:
    """Subject, text and HTML of a finished export's email."""
    rows_out, size_out, sha256 = (
        (job.file.rows, job.file.bytes, job.file.sha256) if job.file else (0, 0, "")
    )
    facts = headline(summary) if summary else []
    subject = f"Your export is ready: {_describe(job)}"
    size = size_text(size_out)
    lines = [
        f"Your export ({_describe(job)}) is ready.",
        "",
        f"Rows: {rows_out:,}",
        f"Size: {size}",
        f"SHA-256: {sha256}",
        "",
        f"Download: {link}",
        f"The link works until {_date(expires_at)}.",
    ]
    if facts:
        lines += ["", "Summary of the range:"]
        lines += [f"  {label}: {_fmt(value, fmt)}" for label, value, fmt in facts]
    lines += ["", f"Export id: {job.export_id}"]
    rows = "".join(
        f"<tr><td>{html.escape(label)}</td><td style='text-align:right'>"
        f"{html.escape(_fmt(value, fmt))}</td></tr>"
        for label, value, fmt in facts
    )
    body = (
        "<html><body style='font-family:sans-serif'>"
        f"<h2>Your export is ready</h2><p>{html.escape(_describe(job))}</p>"
        f"<p><a href='{html.escape(link, quote=True)}'>Download the file</a> "
        f"(works until {html.escape(_date(expires_at))})</p>"
        f"<p>Rows: {rows_out:,} &middot; Size: {html.escape(size)}<br>"
        f"SHA-256: <code>{html.escape(sha256)}</code></p>"
        + (f"<h3>Summary of the range</h3><table>{rows}</table>" if rows else "")
        + f"<p style='color:#777'>Export id {html.escape(job.export_id)}</p></body></html>"
    )
    return subject, "\n".join(lines) + "\n", body


def failed(job: jobs.Job, error: str) -> tuple[str, str, str]:
    subject = f"Your export failed: {_describe(job)}"
    text = (
        f"Your export ({_describe(job)}) could not be produced.\n\n"
        f"What went wrong: {error}\n\n"
        "Nothing needs cleaning up. You can request the export again; if it keeps failing, "
        f"contact support with the export id {job.export_id}.\n"
    )
    body = (
        "<html><body style='font-family:sans-serif'>"
        f"<h2>Your export failed</h2><p>{html.escape(_describe(job))}</p>"
        f"<p><strong>What went wrong:</strong> {html.escape(error)}</p>"
        "<p>You can request the export again; if it keeps failing, contact support with the "
        f"export id {html.escape(job.export_id)}.</p></body></html>"
    )
    return subject, text, body


class EmailError(Exception):
    """SES did not send a message (the reason without the addresses)."""


def send(to: list[str], subject: str, text: str, body: str) -> list[str]:
    """Send one message per address; the SES message ids."""
    sender = get_settings().email_sender
    sent = []
    for address in to:
        message = EmailMessage()
        message["From"] = sender
        message["To"] = address
        message["Subject"] = subject
        message["Date"] = formatdate(usegmt=True)
        message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
        message.set_content(text)
        message.add_alternative(body, subtype="html")
        try:
            answer = aws.ses().send_raw_email(
                Source=sender, Destinations=[address], RawMessage={"Data": bytes(message)}
            )
        except ClientError as exc:
            # SES names the refused addresses in its message: keep them out of logs and emails.
            code = exc.response.get("Error", {}).get("Code", "error")
            raise EmailError(f"SES did not send the message ({code})") from None
        sent.append(answer["MessageId"])
    logger.info("export email sent", extra={"recipients": len(to), "subject": subject})
    return sent
