"""The export bucket (`ExportsBucket`): export files, manifests, snapshots and the multipart
uploads slices and files are written through. The only module that calls S3 for exports.

Keys (see `exports.worker` for which it uses): `exports/<org>/<export id>/<file>` and
`…/manifest.json` for what is delivered, `work/<org>/<export id>/…` for snapshots and slices,
deleted once the job is done.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

from botocore.exceptions import ClientError

from success_metrics import aws
from success_metrics.settings import get_settings


class UploadGone(Exception):
    """The multipart upload no longer exists (aborted by a cancellation or a cleanup)."""


class ExportFiles:
    def __init__(self, client: Any, bucket: str) -> None:
        self.client = client
        self.bucket = bucket

    @classmethod
    def default(cls) -> ExportFiles:
        """The deployed bucket, through the shared client."""
        return cls(aws.s3(), get_settings().exports_bucket)

    def download_url(self, key: str, name: str, seconds: int) -> str:
        """A presigned GET of one file, saved under `name` by the browser."""
        url: str = self.client.generate_presigned_url(
            "get_object",
            Params={
                "Bucket": self.bucket,
                "Key": key,
                "ResponseContentDisposition": f'attachment; filename="{name}"',
            },
            ExpiresIn=seconds,
        )
        return url

    # -- whole objects

    def put(self, key: str, body: bytes, content_type: str | None = None) -> None:
        extra = {"ContentType": content_type} if content_type else {}
        self.client.put_object(Bucket=self.bucket, Key=key, Body=body, **extra)

    def put_json(self, key: str, value: Any, indent: int | None = None) -> None:
        body = json.dumps(value, default=str, indent=indent).encode()
        self.put(key, body, "application/json")

    def read_json(self, key: str) -> Any:
        return json.loads(self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read())

    def read_range(self, key: str, start: int, end: int) -> bytes:
        """Bytes `start` to `end` (exclusive) of an object."""
        answer = self.client.get_object(
            Bucket=self.bucket, Key=key, Range=f"bytes={start}-{end - 1}"
        )
        data: bytes = answer["Body"].read()
        return data

    def lines(self, key: str) -> Iterator[bytes]:
        body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
        yield from body.iter_lines(chunk_size=1024 * 1024)

    def size(self, key: str) -> int:
        return int(self.client.head_object(Bucket=self.bucket, Key=key)["ContentLength"])

    # -- multipart uploads

    def start_upload(self, key: str, content_type: str) -> str:
        answer = self.client.create_multipart_upload(
            Bucket=self.bucket, Key=key, ContentType=content_type
        )
        return str(answer["UploadId"])

    def upload_part(self, key: str, upload_id: str, number: int, data: bytes) -> str:
        """Upload one part; returns its ETag. Raises UploadGone if the upload was aborted."""
        try:
            answer = self.client.upload_part(
                Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=data
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "NoSuchUpload":
                raise UploadGone from exc
            raise
        return str(answer["ETag"])

    def copy_part(
        self, key: str, upload_id: str, number: int, source: str, start: int, end: int
    ) -> str:
        """Copy bytes `start` to `end` (exclusive) of `source` server-side as part `number`;
        returns its ETag."""
        answer = self.client.upload_part_copy(
            Bucket=self.bucket,
            Key=key,
            UploadId=upload_id,
            PartNumber=number,
            CopySource={"Bucket": self.bucket, "Key": source},
            CopySourceRange=f"bytes={start}-{end - 1}",
        )
        return str(answer["CopyPartResult"]["ETag"])

    def complete(self, key: str, upload_id: str, etags: list[str]) -> None:
        """Complete with these parts' ETags, in part-number order."""
        self.client.complete_multipart_upload(
            Bucket=self.bucket,
            Key=key,
            UploadId=upload_id,
            MultipartUpload={
                "Parts": [{"PartNumber": n, "ETag": e} for n, e in enumerate(etags, start=1)]
            },
        )

    def complete_uploaded(self, key: str, upload_id: str, parts: int) -> None:
        """Complete with parts 1..parts as S3 lists them (a crashed run may have left a later
        one behind); an upload an earlier run completed, and died before recording, is left
        as it is (the object is there)."""
        found: dict[int, str] = {}
        marker = 0
        try:
            while True:
                page = self.client.list_parts(
                    Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumberMarker=marker
                )
                for part in page.get("Parts", []):
                    found[part["PartNumber"]] = part["ETag"]
                if not page.get("IsTruncated"):
                    break
                marker = page["NextPartNumberMarker"]
            missing = [n for n in range(1, parts + 1) if n not in found]
            if missing:
                raise RuntimeError(f"parts {missing[:5]} of the upload are missing")
            self.complete(key, upload_id, [found[n] for n in range(1, parts + 1)])
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "NoSuchUpload":
                raise
            self.client.head_object(Bucket=self.bucket, Key=key)

    def abort(self, key: str, upload_id: str) -> None:
        """Abort an upload (already gone is fine)."""
        with contextlib.suppress(ClientError):
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)

    def abort_uploads(self, prefix: str) -> None:
        """Abort every upload still open under `prefix`."""
        pages = self.client.get_paginator("list_multipart_uploads").paginate(
            Bucket=self.bucket, Prefix=prefix
        )
        for page in pages:
            for upload in page.get("Uploads", []):
                self.abort(upload["Key"], upload["UploadId"])

    def delete_prefix(self, prefix: str) -> None:
        """Delete every object under `prefix`, and abort the uploads open there."""
        self.abort_uploads(prefix)
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix
        )
        for page in pages:
            keys: list[Any] = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                self.client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": keys, "Quiet": True}
                )
