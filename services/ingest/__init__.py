"""Ingest: devices push recordings over tus 1.0; bytes stream into S3 multipart uploads."""
