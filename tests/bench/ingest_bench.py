"""``make bench``: ingest against direct S3, side by side in one run on the same endpoint.

Cases (issue 10): one upload as a whole-file PATCH, in 8 MiB chunks and in 1 MiB chunks, at
64 MiB and 256 MiB; eight uploads at once (8 MiB chunks) against eight direct uploads at
once; and ingest's resident memory while eight 256 MiB uploads run at once. Each case runs
``BWC_BENCH_REPEAT`` times (direct and ingest alternating, so drift hits both) and the medians
are printed. Every stored object is removed by key and version after its case.

Knobs: ``BWC_BENCH_REPEAT`` (3), ``BWC_BENCH_SIZES`` (MiB, ``64,256``), ``BWC_BENCH_CHUNKS``
(MiB, 0 = whole file, ``0,8,1``), ``BWC_BENCH_CONCURRENT`` (8), ``BWC_BENCH_CONCURRENT_SIZE``
(MiB, 64), ``BWC_BENCH_RSS_SIZE`` (MiB, 256).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
from minio import Minio

from bwc import dev_issuer
from bwc.cli.generated import GeneratedRecording
from bwc.devstack import infra
from bwc.devstack.stack import Stack, StackConfig
from bwc.s3 import make_client
from tests.bench.transfers import (
    Device,
    direct,
    direct_many,
    remove_ingested,
    through_ingest,
)

MIB = 1024 * 1024
REPEAT = int(os.environ.get("BWC_BENCH_REPEAT", "3"))
SIZES = [int(s) for s in os.environ.get("BWC_BENCH_SIZES", "64,256").split(",")]
CHUNKS = [int(c) for c in os.environ.get("BWC_BENCH_CHUNKS", "0,8,1").split(",")]
CONCURRENT = int(os.environ.get("BWC_BENCH_CONCURRENT", "8"))
CONCURRENT_SIZE = int(os.environ.get("BWC_BENCH_CONCURRENT_SIZE", "64"))
RSS_SIZE = int(os.environ.get("BWC_BENCH_RSS_SIZE", "256"))
CONCURRENT_CHUNK = 8
BASELINE_BUCKET = "bench-baseline"
#: Issue 10's targets for ingest / direct.
TARGETS = {0: 0.9, 8: 0.7, 1: 0.4, "concurrent": 0.8}
#: Eight uploads at once get eight write slots (the default is 6 per process).
INGEST_ENV = {"BWC_LOG_LEVEL": "WARNING", "BWC_INGEST_MAX_CONCURRENT_WRITES": "8",
              "BWC_DATABASE_POOL_SIZE": "12"}


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
        self.baseline = self.peak = rss_mib(self.pid)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss_mib(self.pid))

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def growth(self) -> float:
        return self.peak - self.baseline


@dataclass
class Row:
    case: str
    size_mib: int
    target: float
    direct: list[float] = field(default_factory=list)  # MiB/s per run
    ingest: list[float] = field(default_factory=list)
    rss_peak: list[float] = field(default_factory=list)
    rss_growth: list[float] = field(default_factory=list)

    def ratios(self) -> list[float]:
        return [i / d for i, d in zip(self.ingest, self.direct, strict=True)]

    def line(self) -> str:
        ratio = statistics.median(self.ratios())
        mark = "ok" if ratio >= self.target else "below"
        runs = " ".join(f"{r:.2f}" for r in self.ratios())
        return (f"{self.case:<22} {self.size_mib:>4} MiB | direct "
                f"{statistics.median(self.direct):6.1f} MiB/s | ingest "
                f"{statistics.median(self.ingest):6.1f} MiB/s | ingest ratio {ratio:4.2f} "
                f"(target {self.target:.1f}, {mark}; runs {runs}) | ingest RSS peak "
                f"{statistics.median(self.rss_peak):3.0f} MiB")


class Bench:
    def __init__(self, stack: Stack, var: Path) -> None:
        self.stack, self.var = stack, var
        self.ingest_url = stack.url("ingest")
        self.ingest_pid = stack.services["ingest"].process.pid
        self.s3: Minio = make_client(
            stack.env["BWC_S3_ENDPOINT"], access_key=stack.env["BWC_S3_ACCESS_KEY"],
            secret_key=stack.env["BWC_S3_SECRET_KEY"], region="eu-central-1")
        self.seed = 0

    async def setup(self) -> None:
        issuer = self.var / "dev-issuer"
        admin = dev_issuer.mint(role="admin", sub="bench", directory=issuer)
        # One camera per concurrent upload: a device may write only 2 PATCHes at once.
        self.devices = [Device(f"cam-bench-{i}", dev_issuer.mint(
            role="device", sub=f"cam-bench-{i}", directory=issuer)) for i in range(CONCURRENT)]
        async with httpx.AsyncClient(timeout=30) as http:
            for device in self.devices:
                (await http.post(f"{self.ingest_url}/api/v1/devices",
                                 json={"device_id": device.device_id},
                                 headers={"Authorization": f"Bearer {admin}"})
                 ).raise_for_status()
        await asyncio.to_thread(self.s3.make_bucket, BASELINE_BUCKET)
        self.db = await asyncpg.connect(self.stack.env["BWC_DATABASE_URL"])
        self.http = httpx.AsyncClient(timeout=600)
        self.idle_rss = rss_mib(self.ingest_pid)

    async def close(self) -> None:
        await self.http.aclose()
        await self.db.close()

    def recording(self, size_mib: int) -> tuple[GeneratedRecording, str]:
        self.seed += 1
        recording = GeneratedRecording(size_mib * MIB, seed=self.seed)
        return recording, recording.sha256()

    async def single(self, row: Row, chunk_mib: int) -> None:
        recording, sha256 = self.recording(row.size_mib)
        key = f"single-{self.seed}"
        seconds = await asyncio.to_thread(direct, self.s3, BASELINE_BUCKET, key, recording)
        await asyncio.to_thread(self.s3.remove_object, BASELINE_BUCKET, key)
        row.direct.append(row.size_mib / seconds)
        chunk = chunk_mib * MIB or recording.size
        with PeakRss(self.ingest_pid) as rss:
            stored = await through_ingest(self.http, self.ingest_url, self.devices[0],
                                          recording, sha256, chunk)
        row.ingest.append(row.size_mib / stored.seconds)
        row.rss_peak.append(rss.peak)
        row.rss_growth.append(rss.growth)
        await remove_ingested(self.db, self.s3, stored.recording_id)

    async def concurrent(self, row: Row, *, direct_too: bool = True) -> None:
        pairs = [self.recording(row.size_mib) for _ in self.devices]
        recordings = [r for r, _ in pairs]
        if direct_too:
            prefix = f"many-{self.seed}"
            seconds = await direct_many(self.s3, BASELINE_BUCKET, recordings, prefix)
            for i in range(len(recordings)):
                await asyncio.to_thread(self.s3.remove_object, BASELINE_BUCKET,
                                        f"{prefix}-{i}")
            row.direct.append(row.size_mib * len(recordings) / seconds)
        with PeakRss(self.ingest_pid) as rss:
            started = time.perf_counter()
            stored = await asyncio.gather(*(
                through_ingest(self.http, self.ingest_url, device, recording, sha256,
                               CONCURRENT_CHUNK * MIB)
                for device, (recording, sha256) in zip(self.devices, pairs, strict=True)))
            seconds = time.perf_counter() - started
        row.ingest.append(row.size_mib * len(recordings) / seconds)
        row.rss_peak.append(rss.peak)
        row.rss_growth.append(rss.growth)
        for each in stored:
            await remove_ingested(self.db, self.s3, each.recording_id)


def chunk_name(chunk_mib: int) -> str:
    return "whole-file PATCH" if chunk_mib == 0 else f"{chunk_mib} MiB chunks"


async def run(stack: Stack, var: Path) -> None:
    bench = Bench(stack, var)
    await bench.setup()
    try:
        print(f"S3 endpoint: {stack.summary['s3']}; S3 parts 5 MiB (ingest and direct); "
              f"ingest with {INGEST_ENV['BWC_INGEST_MAX_CONCURRENT_WRITES']} write slots")
        print(f"{REPEAT} runs per case (BWC_BENCH_REPEAT), medians shown; every stored object "
              "is removed by key and version after its run. Expect 4 to 8 minutes.",
              flush=True)
        rows: list[Row] = []
        for size in SIZES:
            for chunk in CHUNKS:
                row = Row(chunk_name(chunk), size, TARGETS.get(chunk, 0.0))
                for _ in range(REPEAT):
                    await bench.single(row, chunk)
                print("  " + row.line(), flush=True)
                rows.append(row)
        many = Row(f"{CONCURRENT} uploads at once", CONCURRENT_SIZE, TARGETS["concurrent"])
        for _ in range(REPEAT):
            await bench.concurrent(many)
        print("  " + many.line(), flush=True)
        rows.append(many)
        # Memory: once, ingest only (the ratio is the row above).
        big = Row(f"{CONCURRENT} uploads at once", RSS_SIZE, TARGETS["concurrent"])
        await bench.concurrent(big, direct_too=False)
    finally:
        await bench.close()

    print("\nMiB/s: one upload's size / its time (creation to the last answer, which ingest "
          "sends after verifying and committing the recording); for several at once, all "
          "bytes / wall time. ingest ratio = ingest / direct (1.00 = no overhead). "
          f"ingest RSS peak: the ingest process's resident memory (idle at start: "
          f"{bench.idle_rss:.0f} MiB).")
    print(f"{'case':<22} {'size':>8} | medians of {REPEAT} runs")
    print("-" * 100)
    for row in rows:
        print(row.line())
    print(f"\ningest RSS during {CONCURRENT} uploads of {RSS_SIZE} MiB at once "
          f"({big.ingest[0]:.1f} MiB/s aggregate): peak {big.rss_peak[0]:.0f} MiB, "
          f"+{big.rss_growth[0]:.0f} MiB over the RSS before them; with {CONCURRENT_SIZE} MiB "
          f"each: +{statistics.median(many.rss_growth):.0f} MiB; idle at start "
          f"{bench.idle_rss:.0f} MiB. Target: growth < 150 MiB, flat in file size.")


def main() -> None:
    started = time.perf_counter()
    var = Path(tempfile.mkdtemp(prefix="bwc-bench-"))
    database = f"bwc_bench_{uuid.uuid4().hex[:8]}"
    stack = Stack(StackConfig.on_free_ports(var, database, extra_env=INGEST_ENV))
    try:
        stack.start_infra()
        stack.start_services()
        asyncio.run(run(stack, var))
    finally:
        stack.stop()
        if stack.server_url:
            asyncio.run(infra.drop_database(stack.server_url, database))
    print(f"bench took {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
