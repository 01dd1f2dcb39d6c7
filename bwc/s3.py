"""S3 access, made async at one seam.

Whole objects go through the ``minio`` client's public API. Multipart uploads that span many
HTTP requests (the tus ingest) need CreateMultipartUpload, UploadPart, CompleteMultipartUpload
and AbortMultipartUpload as separate calls, which minio-py keeps private; those go through
``botocore`` (AWS's own request layer, already pinned through moto), in ``Multipart``. Both
clients are synchronous (urllib3), so every call runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
from collections.abc import AsyncGenerator, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import botocore.config
import botocore.exceptions
import botocore.session
import urllib3
from minio import Minio
from minio.commonconfig import ENABLED
from minio.deleteobjects import DeleteObject
from minio.error import MinioException, S3Error
from minio.versioningconfig import VersioningConfig

READ_CHUNK = 1024 * 1024
#: Answers that mean "no space left" rather than "not reachable": MinIO answers 507 with
#: ``XMinioStorageFull`` when its drives are full, and a quota refusal is the same to a device.
STORAGE_FULL_CODES = frozenset({"XMinioStorageFull", "XMinioAdminBucketQuotaExceeded",
                                "XMinioBucketQuotaExceeded"})
GONE_CODES = frozenset({"NoSuchKey", "NoSuchVersion", "NoSuchObject"})


class StorageError(Exception):
    """Object storage did not do what was asked; ``full`` when it is out of space."""

    def __init__(self, message: str, *, full: bool = False) -> None:
        super().__init__(message)
        self.full = full


def as_storage_error(exc: BaseException) -> StorageError | None:
    """The storage failure ``exc`` stands for, or ``None`` if it is not one (a bug)."""
    if isinstance(exc, StorageError):
        return exc
    if isinstance(exc, botocore.exceptions.ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return StorageError(f"{code or status}: {exc}",
                            full=status == 507 or code in STORAGE_FULL_CODES)
    if isinstance(exc, S3Error):
        status = exc.response.status if exc.response is not None else None
        return StorageError(f"{exc.code}: {exc.message}",
                            full=status == 507 or exc.code in STORAGE_FULL_CODES)
    if isinstance(exc, MinioException):
        # minio's ServerError (a non-XML answer) says "... status: 507" in its message.
        text = str(exc)
        return StorageError(text, full="507" in text or "StorageFull" in text)
    if isinstance(exc, (botocore.exceptions.BotoCoreError, urllib3.exceptions.HTTPError,
                        ConnectionError, TimeoutError)):
        return StorageError(f"{type(exc).__name__}: {exc}")
    return None


@dataclass(frozen=True)
class UploadedPart:
    number: int
    etag: str
    size: int


def make_client(
    endpoint: str, *, access_key: str, secret_key: str, region: str, ca_file: str | None = None
) -> Minio:
    url = urlparse(endpoint)
    http = urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=5, read=120),
        maxsize=32,
        cert_reqs="CERT_REQUIRED" if url.scheme == "https" else None,
        ca_certs=ca_file,
        retries=urllib3.Retry(total=3, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]),
    )
    return Minio(
        url.netloc,
        access_key=access_key,
        secret_key=secret_key,
        region=region,
        secure=url.scheme == "https",
        http_client=http,
    )


class ObjectStore:
    """The async face of one bucket."""

    def __init__(self, client: Minio, bucket: str) -> None:
        self.client = client
        self.bucket = bucket

    async def _run(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(fn, *args, **kwargs)

    async def ensure_bucket(self) -> None:
        """Create the bucket with object lock (which implies versioning) if it is missing.

        Object lock can only be switched on when a bucket is created (R6 legal holds need it).
        """
        if not await self._run(self.client.bucket_exists, self.bucket):
            try:
                await self._run(self.client.make_bucket, self.bucket, object_lock=True)
            except S3Error as exc:
                if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise
        if not await self.object_lock_enabled():
            # Created by someone else without it; it cannot be switched on later.
            raise RuntimeError(
                f"bucket {self.bucket!r} has no object lock; legal holds on evidence (R6) need "
                "it: create the bucket with object lock enabled")
        versioning = await self._run(self.client.get_bucket_versioning, self.bucket)
        if versioning.status != ENABLED:
            await self._run(
                self.client.set_bucket_versioning, self.bucket, VersioningConfig(ENABLED)
            )

    async def object_lock_enabled(self) -> bool:
        try:
            await self._run(self.client.get_object_lock_config, self.bucket)
        except S3Error as exc:
            if exc.code == "ObjectLockConfigurationNotFoundError":
                return False
            raise
        return True

    async def ping(self) -> None:
        if not await self._run(self.client.bucket_exists, self.bucket):
            raise RuntimeError(f"bucket {self.bucket!r} does not exist")

    # -- whole objects -----------------------------------------------------------------------

    async def stat(self, key: str, version_id: str | None = None) -> Any | None:
        try:
            return await self._run(self.client.stat_object, self.bucket, key, version_id=version_id)
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchVersion", "NoSuchObject"):
                return None
            raise

    async def iter_object(
        self, key: str, version_id: str | None = None, *, chunk: int = READ_CHUNK,
        offset: int = 0, length: int = 0,
    ) -> AsyncGenerator[bytes, None]:
        """The object's bytes in pieces of at most ``chunk`` (memory stays bounded whatever the
        size); from ``offset``, ``length`` bytes (0: to the end) with a Range GET."""
        response = await self._run(self.client.get_object, self.bucket, key, offset, length,
                                   version_id=version_id)
        try:
            while True:
                data: bytes = await self._run(response.read, chunk)
                if not data:
                    break
                yield data
        finally:
            response.close()
            response.release_conn()

    async def put_bytes(
        self, key: str, data: bytes | bytearray | memoryview,
        metadata: Mapping[str, str] | None = None,
    ) -> str | None:
        """Store a small object with user ``metadata``; returns its version id."""
        result = await self._run(
            self.client.put_object, self.bucket, key, io.BytesIO(data), len(data),
            metadata=dict(metadata or {}),
        )
        version_id: str | None = result.version_id
        return version_id

    async def delete_version(self, key: str, version_id: str) -> None:
        """Remove one version outright (no delete marker, no listing)."""
        await self._run(self.client.remove_object, self.bucket, key, version_id=version_id)

    async def delete_versions(self, versions: Iterable[tuple[str, str]]) -> None:
        """Remove these ``(key, version id)`` pairs in batches of 1,000 (DeleteObjects), by
        version: no listing, no delete markers. A version already gone counts as removed."""
        pending = [DeleteObject(key, version_id) for key, version_id in versions]

        def _delete() -> None:
            for start in range(0, len(pending), 1000):
                errors = [e for e in self.client.remove_objects(
                    self.bucket, iter(pending[start:start + 1000])) if e.code not in GONE_CODES]
                if errors:
                    raise StorageError(f"{len(errors)} objects not removed, first: "
                                       f"{errors[0].name} {errors[0].code} {errors[0].message}")

        if pending:
            await self._run(_delete)

    async def delete_key(self, key: str) -> int:
        """Remove every version of exactly ``key`` without listing: HEAD names the newest
        version, which is removed, until nothing answers (for a key whose version ids were
        never learnt, e.g. after a crash)."""
        count = 0
        while (stat := await self.stat(key)) is not None:
            if stat.version_id is None:
                raise StorageError(f"{key}: the bucket does not version objects")
            await self.delete_version(key, stat.version_id)
            count += 1
        return count

    async def read_bytes(self, key: str, length: int, version_id: str | None = None) -> bytes:
        """The first ``length`` bytes of an object (small objects only)."""
        response = await self._run(self.client.get_object, self.bucket, key, 0, length,
                                   version_id=version_id)
        try:
            data: bytes = await self._run(response.read)
        finally:
            response.close()
            response.release_conn()
        if len(data) != length:
            raise RuntimeError(f"{key}: expected {length} bytes, got {len(data)}")
        return data

    async def sha256(self, key: str, version_id: str | None = None) -> tuple[str, int]:
        """SHA-256 and size of the bytes as stored (R6), read back in bounded chunks."""
        digest = hashlib.sha256()
        size = 0
        async for data in self.iter_object(key, version_id):
            digest.update(data)
            size += len(data)
        return digest.hexdigest(), size

    async def delete_all_versions(self, key: str) -> int:
        """Remove every version and delete marker of ``key`` (R5 hard delete)."""
        return await self._delete_versions(key, exact=True)

    async def delete_prefix(self, prefix: str) -> int:
        """Remove every version of every object under ``prefix`` (R5 hard delete)."""
        return await self._delete_versions(prefix, exact=False)

    async def _delete_versions(self, prefix: str, *, exact: bool) -> int:
        def _delete() -> int:
            count = 0
            for obj in self.client.list_objects(
                self.bucket, prefix=prefix, include_version=True, recursive=True
            ):
                if exact and obj.object_name != prefix:
                    continue
                self.client.remove_object(self.bucket, obj.object_name, version_id=obj.version_id)
                count += 1
            return count

        deleted: int = await self._run(_delete)
        return deleted

    # -- versions and legal holds (R3, R6) ---------------------------------------------------

    async def list_versions(
        self, prefix: str, *, exact: bool = False
    ) -> list[tuple[str, str | None]]:
        """``(key, version id)`` of every stored version of exactly ``prefix`` (``exact``) or of
        every key under it; delete markers are left out (they hold no bytes and take no legal
        hold). A listing: moto copies the whole bucket to answer it (DESIGN §5), so only rare
        steps (placing a hold, releasing the last one) call it."""
        def _list() -> list[tuple[str, str | None]]:
            return [
                (obj.object_name, obj.version_id)
                for obj in self.client.list_objects(
                    self.bucket, prefix=prefix, recursive=True, include_version=True)
                if not obj.is_delete_marker and obj.object_name is not None
                and (not exact or obj.object_name == prefix)
            ]

        versions: list[tuple[str, str | None]] = await self._run(_list)
        return versions

    async def set_legal_hold(self, key: str, version_id: str | None, *, enabled: bool) -> None:
        """Switch the object-lock legal hold of one version on or off (R6): while it is on, S3
        refuses to delete that version, whoever asks."""
        call = (self.client.enable_object_legal_hold if enabled
                else self.client.disable_object_legal_hold)
        await self._run(call, self.bucket, key, version_id=version_id)

    async def legal_hold_enabled(self, key: str, version_id: str | None = None) -> bool:
        enabled: bool = await self._run(self.client.is_object_legal_hold_enabled, self.bucket,
                                        key, version_id=version_id)
        return enabled


class Multipart:
    """The four multipart calls minio-py keeps private, through botocore's public client.

    Every part is sent with ``Content-MD5``: S3 (and MinIO) refuses a part whose bytes arrived
    other than they were sent (``BadDigest``), so a part S3 confirmed holds exactly our bytes
    (R6) and the recording need not be read back to be trusted.
    """

    def __init__(self, client: Any, bucket: str) -> None:
        self.client = client
        self.bucket = bucket

    async def _call(self, operation: str, **params: Any) -> dict[str, Any]:
        method = getattr(self.client, operation)
        result: dict[str, Any] = await asyncio.to_thread(method, Bucket=self.bucket, **params)
        return result

    async def create(self, key: str, *, content_type: str, metadata: Mapping[str, str]) -> str:
        result = await self._call("create_multipart_upload", Key=key, ContentType=content_type,
                                  Metadata=dict(metadata))
        return str(result["UploadId"])

    async def upload_part(
        self, key: str, upload_id: str, number: int, data: bytes | bytearray
    ) -> UploadedPart:
        def _send() -> dict[str, Any]:
            # Hashed in the worker thread (hashlib releases the GIL), not on the event loop.
            md5 = base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()
            result: dict[str, Any] = self.client.upload_part(
                Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number,
                Body=data, ContentMD5=md5)
            return result

        result = await asyncio.to_thread(_send)
        return UploadedPart(number, str(result["ETag"]).strip('"'), len(data))

    async def complete(self, key: str, upload_id: str, parts: list[UploadedPart]) -> str | None:
        """Complete the upload; returns the new object's version id."""
        result = await self._call(
            "complete_multipart_upload", Key=key, UploadId=upload_id,
            MultipartUpload={"Parts": [{"PartNumber": p.number, "ETag": f'"{p.etag}"'}
                                       for p in parts]})
        version_id: str | None = result.get("VersionId")
        return version_id

    async def abort(self, key: str, upload_id: str) -> None:
        try:
            await self._call("abort_multipart_upload", Key=key, UploadId=upload_id)
        except botocore.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "NoSuchUpload":
                raise

    async def abort_all(self, key: str) -> int:
        """Abort every multipart upload of exactly ``key``, for when its upload id was never
        recorded (a crash right after creating it). Lists; keep it off hot paths."""
        count = 0
        while True:
            result = await self._call("list_multipart_uploads", Prefix=key)
            mine = [u["UploadId"] for u in result.get("Uploads", []) if u.get("Key") == key]
            for upload_id in mine:
                await self.abort(key, upload_id)
                count += 1
            if not mine or not result.get("IsTruncated"):
                return count


def make_multipart(
    endpoint: str, *, access_key: str, secret_key: str, region: str, bucket: str,
    ca_file: str | None = None,
) -> Multipart:
    config = botocore.config.Config(
        connect_timeout=5, read_timeout=120, max_pool_connections=32,
        retries={"max_attempts": 4, "mode": "standard"},
        # Content-MD5 is computed here (above) and signed with the headers, so S3 refuses a
        # part whose bytes changed on the way, over HTTP too. botocore would otherwise hash
        # every byte a second time (SHA-256) to sign the payload over plain HTTP: on a small
        # machine that pass alone is as costly as the MD5 and sits on each part's critical path.
        s3={"addressing_style": "path", "payload_signing_enabled": False},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    client = botocore.session.get_session().create_client(
        "s3", endpoint_url=endpoint, region_name=region, aws_access_key_id=access_key,
        aws_secret_access_key=secret_key, config=config,
        verify=ca_file or None)
    return Multipart(client, bucket)
