"""Joining and hashing objects of the export bucket with S3's multipart API: big ranges copied
server-side (UploadPartCopy) side by side, small pieces gathered until they make a part; an
object hashed as ranges read a few at a time, in order, in bounded memory."""

from __future__ import annotations

import hashlib
import itertools
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor

from success_metrics.settings import get_settings
from success_metrics.stores.export_files import ExportFiles

COPY_MAX = 5 * 1024**3  # S3's largest UploadPartCopy range
HASH_RANGE = 16 * 1024 * 1024
HASH_AHEAD = 4  # ranges in flight while hashing: at most 64 MiB in memory
_IO = ThreadPoolExecutor(max_workers=8, thread_name_prefix="export-io")


class Assembler:
    """Joins pieces into one multipart upload of `key`."""

    def __init__(
        self, files: ExportFiles, key: str, content_type: str, part_bytes: int | None = None
    ) -> None:
        self.key = key
        self.files = files
        self.part_bytes = part_bytes or get_settings().export_part_bytes
        self.buffer = bytearray()
        # Each part's ETag, or the server-side copy that will give it (they run side by
        # side; only their ETags are needed, at completion).
        self.parts: list[str | Future[str]] = []
        self.upload_id = self.files.start_upload(key, content_type)

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


def size_and_sha256(files: ExportFiles, key: str) -> tuple[int, str]:
    """Size and SHA-256 of an object, read as ranges a few at a time (in order, bounded)."""
    size = files.size(key)
    digest = hashlib.sha256()

    def fetch(start: int) -> bytes:
        return files.read_range(key, start, min(size, start + HASH_RANGE))

    window: deque[Future[bytes]] = deque()
    starts = iter(range(0, size, HASH_RANGE))
    for start in itertools.islice(starts, HASH_AHEAD):
        window.append(_IO.submit(fetch, start))
    while window:
        digest.update(window.popleft().result())
        for start in itertools.islice(starts, 1):
            window.append(_IO.submit(fetch, start))
    return size, digest.hexdigest()
