"""Starting the four service processes with uvicorn and waiting for ``/readyz``."""

from __future__ import annotations

import sys
import urllib.error
import urllib.request
from dataclasses import dataclass

from bwc.devstack.processes import Child, ProcessGroup, wait_until


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    port: int
    #: Names the process and its log file; a second instance of a service needs its own.
    label: str | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


SERVICES = ("ingest", "catalog", "review", "retention")
DEFAULT_PORTS = {"ingest": 8001, "catalog": 8002, "review": 8003, "retention": 8004}


def ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=2) as response:  # noqa: S310
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def start_service(
    group: ProcessGroup, spec: ServiceSpec, env: dict[str, str], *, wait: bool = True,
    timeout: float = 60,
) -> Child:
    child = group.start(spec.label or spec.name, [
        sys.executable, "-m", "bwc.serve", spec.name, "--host", "127.0.0.1",
        "--port", str(spec.port),
    ], env=env)
    if wait:
        wait_for_ready(child, spec, timeout=timeout)
    return child


def wait_for_ready(child: Child, spec: ServiceSpec, *, timeout: float = 60) -> None:
    wait_until(lambda: ready(spec.url), timeout=timeout, what=f"service {spec.name}",
               child=child)
