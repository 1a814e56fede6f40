"""The email outbox: every message sent through the emulator's SES lands in a folder as `.eml`.

The emulator (moto server) runs in this process, so its SES backend's sent messages are read
directly; raw messages are written byte for byte, simple ones are rebuilt as MIME.
"""

from __future__ import annotations

import threading
import time
from email.message import EmailMessage
from pathlib import Path
from typing import Any


def _simple_to_eml(message: Any) -> bytes:
    email = EmailMessage()
    email["From"] = message.source
    destinations = message.destinations or {}
    for header, key in (("To", "ToAddresses"), ("Cc", "CcAddresses")):
        if destinations.get(key):
            email[header] = ", ".join(destinations[key])
    email["Subject"] = getattr(message, "subject", "") or ""
    email["Message-ID"] = f"<{message.id}@local.ses>"
    body = str(getattr(message, "body", "") or "")
    if body.lstrip().startswith("<"):
        email.set_content("(HTML message)")
        email.add_alternative(body, subtype="html")
    else:
        email.set_content(body)
    return bytes(email)


class Outbox:
    def __init__(self, folder: Path, interval: float = 0.3) -> None:
        self.folder = folder
        self.interval = interval
        self._seen: set[str] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._run, name="outbox", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
        self.flush()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.flush()

    def flush(self) -> int:
        """Write every message not yet written; returns how many were new."""
        from moto.ses.models import RawMessage, ses_backends

        written = 0
        for account in list(ses_backends.keys()):
            for region in list(ses_backends[account].keys()):
                for message in list(ses_backends[account][region].sent_messages):
                    message_id = getattr(message, "id", None)
                    if message_id is None or message_id in self._seen:
                        continue
                    self._seen.add(message_id)
                    if isinstance(message, RawMessage):
                        data = message.raw_data
                        raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
                    elif hasattr(message, "subject"):
                        raw = _simple_to_eml(message)
                    else:
                        continue
                    stamp = time.strftime("%Y%m%dT%H%M%S")
                    (self.folder / f"{stamp}-{message_id}.eml").write_bytes(raw)
                    written += 1
        return written
