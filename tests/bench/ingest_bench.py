"""``make bench``: ingest throughput and memory, measured side by side in one run.

For each file size it uploads the same bytes twice: once straight to the S3 endpoint with the
minio client (the baseline the storage allows) and once through the real ingest service with
tuspy (tus PATCHes → S3 multipart → read-back SHA-256 → outbox → Kafka → catalogue). It prints
throughput, the ratio ingest/baseline, the time until the catalogue shows the recording, and
the ingest process's resident memory above its idle level, which must not grow with file size.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx
from tusclient import client as tus_client

from bwc import dev_issuer
from bwc.devstack import infra
from bwc.devstack.stack import Stack, StackConfig
from bwc.s3 import make_client

MIB = 1024 * 1024
#: (file size, tus chunk size) in MiB; the last row shows the cost of chunks below a part.
CASES = [tuple(int(n) for n in case.split("x")) for case in
         os.environ.get("BWC_BENCH_CASES", "20x8,100x8,200x8,20x1").split(",")]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class PeakRss:
    """Samples a process's RSS every 20 ms while the block runs."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self._stop = pid, 0.0, threading.Event()

    def __enter__(self) -> PeakRss:
        self.baseline = rss_mib(self.pid)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss_mib(self.pid))

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def write_file(directory: Path, size: int) -> tuple[Path, str]:
    path, digest = directory / f"bench-{size}.bin", hashlib.sha256()
    with path.open("wb") as handle:
        remaining = size
        while remaining:
            block = os.urandom(min(MIB, remaining))
            digest.update(block)
            handle.write(block)
            remaining -= len(block)
    return path, digest.hexdigest()


def main() -> None:
    var = Path(tempfile.mkdtemp(prefix="bwc-bench-"))
    database = f"bwc_bench_{uuid.uuid4().hex[:8]}"
    stack = Stack(StackConfig.on_free_ports(var, database, extra_env={"BWC_LOG_LEVEL": "WARNING"}))
    try:
        stack.start_infra()
        stack.start_services()
        run(stack, var)
    finally:
        stack.stop()
        if stack.server_url:
            asyncio.run(infra.drop_database(stack.server_url, database))


def run(stack: Stack, var: Path) -> None:
    issuer = var / "dev-issuer"
    admin = dev_issuer.mint(role="admin", sub="bench", directory=issuer)
    reviewer = dev_issuer.mint(role="reviewer", sub="bench", directory=issuer)
    device_id = "cam-bench"
    httpx.post(f"{stack.url('ingest')}/api/v1/devices", json={"device_id": device_id},
               headers={"Authorization": f"Bearer {admin}"}).raise_for_status()
    token = dev_issuer.mint(role="device", sub=device_id, directory=issuer)
    s3 = make_client(stack.env["BWC_S3_ENDPOINT"], access_key=stack.env["BWC_S3_ACCESS_KEY"],
                     secret_key=stack.env["BWC_S3_SECRET_KEY"], region="eu-central-1")
    s3.make_bucket("bench-baseline")
    ingest_pid = stack.services["ingest"].process.pid

    print(f"S3 endpoint: {stack.summary['s3']}; S3 part 5 MiB")
    header = (f"{'size':>8} | {'chunk':>6} | {'S3 direct':>10} | {'ingest':>10} | {'ratio':>5} | "
              f"{'to catalogue':>12} | {'ingest RSS idle':>15} | {'peak above idle':>15}")
    print(header)
    print("-" * len(header))
    for size_mib, chunk_mib in CASES:
        path, sha = write_file(var, size_mib * MIB)

        started = time.perf_counter()
        s3.fput_object("bench-baseline", path.name, str(path), part_size=5 * MIB)
        direct = time.perf_counter() - started
        s3.remove_object("bench-baseline", path.name)

        client = tus_client.TusClient(f"{stack.url('ingest')}/files/",
                                      headers={"Authorization": f"Bearer {token}"})
        uploader = client.uploader(str(path), chunk_size=chunk_mib * MIB, metadata={
            "device_id": device_id, "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                 time.gmtime()),
            "trigger_reason": "bench", "announced": "true", "sha256": sha})
        with PeakRss(ingest_pid) as rss:
            started = time.perf_counter()
            uploader.upload()
            through_ingest = time.perf_counter() - started
        recording_id = str(uploader.url).rsplit("/", 1)[-1]
        while httpx.get(f"{stack.url('catalog')}/api/v1/recordings/{recording_id}",
                        headers={"Authorization": f"Bearer {reviewer}"}).status_code != 200:
            time.sleep(0.05)
        to_catalogue = time.perf_counter() - started
        path.unlink()
        print(f"{size_mib:>4} MiB | {chunk_mib:>2} MiB | {size_mib / direct:>6.1f} MiB/s | "
              f"{size_mib / through_ingest:>6.1f} MiB/s | {direct / through_ingest:>5.2f} | "
              f"{to_catalogue:>10.2f} s | {rss.baseline:>11.0f} MiB | "
              f"{rss.peak - rss.baseline:>11.0f} MiB")
    print("\nratio = ingest throughput / direct S3 throughput (1.00 = no overhead). Ingest also "
          "reads every byte back to hash what is stored (R6).")


if __name__ == "__main__":
    main()
