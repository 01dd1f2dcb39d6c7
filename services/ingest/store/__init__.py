"""Where an upload's bytes live: the interface (``interface``) and its S3 backend (``s3``)."""

from services.ingest.store.interface import (
    Chunk,
    Finished,
    Ledger,
    Segment,
    StorageFull,
    StorageUnavailable,
    StoredBytesLost,
    StoredUpload,
    UploadStore,
)
from services.ingest.store.s3 import S3UploadStore

__all__ = ["Chunk", "Finished", "Ledger", "S3UploadStore", "Segment", "StorageFull",
           "StorageUnavailable", "StoredBytesLost", "StoredUpload", "UploadStore"]
