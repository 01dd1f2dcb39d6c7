"""S3 access through the ``minio`` client, made async at one seam.

The minio client is synchronous (urllib3), so every call runs in a worker thread. The tus
ingest needs S3 multipart uploads that span many HTTP requests; minio-py implements those calls
but keeps them private, so this module is the only place that touches them.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import urllib3
from minio import Minio
from minio.commonconfig import ENABLED
from minio.datatypes import Part
from minio.error import S3Error
from minio.versioningconfig import VersioningConfig

READ_CHUNK = 1024 * 1024


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

    # -- multipart uploads spanning many requests --------------------------------------------

    async def create_multipart(self, key: str, *, content_type: str) -> str:
        upload_id: str = await self._run(
            self.client._create_multipart_upload,
            self.bucket,
            key,
            {"Content-Type": content_type},
        )
        return upload_id

    async def upload_part(self, key: str, upload_id: str, number: int, data: bytes) -> str:
        etag: str = await self._run(
            self.client._upload_part, self.bucket, key, data, None, upload_id, number
        )
        return etag

    async def complete_multipart(
        self, key: str, upload_id: str, parts: list[UploadedPart]
    ) -> str | None:
        """Complete the upload; returns the new object's version id."""
        result = await self._run(
            self.client._complete_multipart_upload,
            self.bucket,
            key,
            upload_id,
            [Part(p.number, p.etag) for p in parts],
        )
        version_id: str | None = result.version_id
        return version_id

    async def abort_multipart(self, key: str, upload_id: str) -> None:
        try:
            await self._run(self.client._abort_multipart_upload, self.bucket, key, upload_id)
        except S3Error as exc:
            if exc.code != "NoSuchUpload":
                raise

    async def abort_all_multipart(self, key: str) -> int:
        """Abort every multipart upload of exactly ``key``, for when its upload id was never
        recorded (a crash right after creating it). Lists; keep it off hot paths."""
        def _abort() -> int:
            count = 0
            while True:
                result = self.client._list_multipart_uploads(self.bucket, prefix=key)
                mine = [u.upload_id for u in result.uploads
                        if u.object_name == key and u.upload_id is not None]
                for upload_id in mine:
                    try:
                        self.client._abort_multipart_upload(self.bucket, key, upload_id)
                    except S3Error as exc:
                        if exc.code != "NoSuchUpload":
                            raise
                    count += 1
                if not mine or not result.is_truncated:
                    return count

        aborted: int = await self._run(_abort)
        return aborted

    # -- whole objects -----------------------------------------------------------------------

    async def stat(self, key: str, version_id: str | None = None) -> Any | None:
        try:
            return await self._run(self.client.stat_object, self.bucket, key, version_id=version_id)
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchVersion", "NoSuchObject"):
                return None
            raise

    async def iter_object(
        self, key: str, version_id: str | None = None, *, chunk: int = READ_CHUNK
    ) -> AsyncIterator[bytes]:
        response = await self._run(self.client.get_object, self.bucket, key, version_id=version_id)
        try:
            while True:
                data: bytes = await self._run(response.read, chunk)
                if not data:
                    break
                yield data
        finally:
            response.close()
            response.release_conn()

    async def put_bytes(self, key: str, data: bytes) -> str | None:
        """Store a small object; returns its version id."""
        result = await self._run(
            self.client.put_object, self.bucket, key, io.BytesIO(data), len(data)
        )
        version_id: str | None = result.version_id
        return version_id

    async def delete_version(self, key: str, version_id: str) -> None:
        """Remove one version outright (no delete marker, no listing)."""
        await self._run(self.client.remove_object, self.bucket, key, version_id=version_id)

    async def read_bytes(self, key: str, length: int) -> bytes:
        """The first ``length`` bytes of an object (small objects only)."""
        response = await self._run(self.client.get_object, self.bucket, key, 0, length)
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
