"""``bwc upload --generate SIZE --count N --parallel P``: a dock emptying N cameras at once.

Each camera uploads one generated recording (``bwc.cli.generated``: streamed, never in memory
whole) over tus with the same client as ``bwc upload FILE`` (tuspy), at most P at a time, each
with its own progress bar. The recording's SHA-256 goes along in ``Upload-Metadata``, so
ingest refuses it if what it stored differs (R6). A chunk that fails (busy, storage trouble,
a replica gone, no answer within ``--chunk-timeout``) is resumed from the server's offset, up
to ``--retries`` times in a row; whatever else goes wrong with one upload is reported for that
upload, never a traceback that ends the others.
The summary gives aggregate throughput, per-chunk latency (p50/p99), the recording ids and
the failures; the exit code is 1 when any upload failed.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from tqdm import tqdm
from tusclient import client as tus_client
from tusclient.exceptions import TusCommunicationError

from bwc import dev_issuer
from bwc.cli.generated import GeneratedRecording, parse_size

MIB = 1024 * 1024


@dataclass
class Result:
    device_id: str
    size: int
    recording_id: str | None = None
    error: str | None = None
    seconds: float = 0.0
    started: float = 0.0
    chunk_seconds: list[float] = field(default_factory=list)
    retries: int = 0


def generated_recording(seed: int, index: int, size: int) -> GeneratedRecording:
    """The ``index``-th recording of a run with ``--seed seed`` (the same bytes every time)."""
    return GeneratedRecording(size, seed=seed * 1_000_003 + index)


def device_ids(prefix: str, count: int) -> list[str]:
    """One camera per recording: ``prefix`` itself for one, ``prefix-001`` … for more."""
    return [prefix] if count == 1 else [f"{prefix}-{i:03d}" for i in range(1, count + 1)]


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..1) of a non-empty list."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


async def register(base_url: str, token: str, devices: list[str], officer: str | None) -> None:
    """Register the cameras (an existing one, 409, is fine)."""
    async with httpx.AsyncClient(timeout=30) as http:
        for device_id in devices:
            body = {"device_id": device_id, "model": "bwc-upload --generate"}
            if officer:
                body["officer_id"] = officer
            response = await http.post(f"{base_url}/api/v1/devices", json=body,
                                       headers={"Authorization": f"Bearer {token}"})
            if response.status_code not in (201, 409):
                raise RuntimeError(f"registering {device_id}: {response.status_code} "
                                   f"{response.text}")


def metadata(args: argparse.Namespace, device_id: str, sha256: str, index: int
             ) -> dict[str, str]:
    recorded_at = args.recorded_at or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    meta = {
        "filename": f"{device_id}-{index:03d}.mp4", "content_type": args.content_type,
        "device_id": device_id, "recorded_at": recorded_at,
        "trigger_reason": args.trigger_reason,
        "announced": "true" if args.announced else "false",
        "imminent_danger": "true" if args.imminent_danger else "false",
        "in_home": "true" if args.in_home else "false", "sha256": sha256,
    }
    if args.officer:
        meta["officer_id"] = args.officer
    return meta


async def upload_one(args: argparse.Namespace, index: int, device_id: str, size: int,
                     slots: asyncio.Semaphore) -> Result:
    result = Result(device_id, size)
    recording = generated_recording(args.seed, index, size)
    sha256 = await asyncio.to_thread(recording.sha256)
    token = args.token or dev_issuer.mint(role="device", sub=device_id,
                                          directory=Path(args.issuer_dir))
    client = tus_client.TusClient(f"{args.url.rstrip('/')}/files/",
                                  headers={"Authorization": f"Bearer {token}"})
    uploader: Any = client.async_uploader(
        file_stream=recording, chunk_size=args.chunk_size, upload_checksum=True,
        metadata=metadata(args, device_id, sha256, index), retries=0)
    async with slots:
        with tqdm(total=size, unit="B", unit_scale=True, unit_divisor=1024, desc=device_id,
                  position=index, leave=True, disable=args.no_progress) as bar:
            result.started = time.perf_counter()
            try:
                await _transfer(args, uploader, result, bar)
            except Exception as exc:  # one camera's failure must not end the dock's run
                result.error = f"at byte {uploader.offset}: unexpected {exc!r}"
            result.seconds = time.perf_counter() - result.started
    if uploader.url:
        result.recording_id = str(uploader.url).rstrip("/").rsplit("/", 1)[-1]
    return result


async def _transfer(args: argparse.Namespace, uploader: Any, result: Result, bar: tqdm[Any]
                    ) -> None:
    failed_in_a_row = 0
    while True:
        try:
            if not uploader.url:
                uploader.set_url(await uploader.create_url())
            if uploader.offset >= result.size:
                return
            before, started = uploader.offset, time.perf_counter()
            try:
                # tuspy sets no timeout of its own (aiohttp's default is five minutes per
                # request), and that TimeoutError is no TusCommunicationError.
                async with asyncio.timeout(args.chunk_timeout):
                    await uploader.upload_chunk()
            except TimeoutError as exc:
                raise TusCommunicationError(  # type: ignore[no-untyped-call]
                    f"no answer within {args.chunk_timeout:g} s") from exc
            result.chunk_seconds.append(time.perf_counter() - started)
            bar.update(uploader.offset - before)
            failed_in_a_row = 0
            continue
        except TusCommunicationError as exc:
            failed_in_a_row += 1
            result.retries += 1
            status = exc.status_code
            # 4xx other than "busy/conflict" will not change by retrying (R1/R2 refusals, auth).
            if failed_in_a_row > args.retries or (
                status is not None and 400 <= status < 500 and status not in (409, 423, 429, 460)
            ):
                result.error = f"at byte {uploader.offset}: {status or 'no answer'}: {exc}"
                return
        await asyncio.sleep(args.retry_delay)
        if uploader.url:
            try:  # HEAD: where the server really is (a tus client's resume)
                offset = await asyncio.to_thread(uploader.get_offset)
            except TusCommunicationError:
                continue
            bar.update(offset - uploader.offset)
            uploader.offset = offset


def summary(results: list[Result]) -> str:
    """Throughput counts from the first upload's start to the last one's end (not the
    hashing of the generated recordings before)."""
    seconds = (max(r.started + r.seconds for r in results) - min(r.started for r in results))
    ok = [r for r in results if r.error is None]
    failed = [r for r in results if r.error is not None]
    sent = sum(r.size for r in ok)
    chunks = [s for r in results for s in r.chunk_seconds]
    lines = [f"uploads: {len(ok)} ok, {len(failed)} failed, {sum(r.retries for r in results)} "
             f"retried chunks",
             f"throughput: {sent / MIB:.1f} MiB in {seconds:.2f} s = "
             f"{sent / MIB / seconds if seconds else 0:.1f} MiB/s aggregate"]
    if chunks:
        lines.append(f"chunk latency: p50 {percentile(chunks, 0.5) * 1000:.0f} ms, "
                     f"p99 {percentile(chunks, 0.99) * 1000:.0f} ms over {len(chunks)} chunks")
    for r in results:
        if r.error is None:
            rate = r.size / MIB / r.seconds if r.seconds else 0
            lines.append(f"ok {r.device_id} {r.size / MIB:.1f} MiB {rate:.1f} MiB/s "
                         f"recording id {r.recording_id}")
        else:
            lines.append(f"FAILED {r.device_id} (upload {r.recording_id or 'not created'}) "
                         f"{r.error}")
    return "\n".join(lines)


async def run(args: argparse.Namespace) -> int:
    try:
        size = parse_size(args.generate)
    except ValueError as exc:
        print(f"bwc upload: --generate: {exc}", file=sys.stderr)
        return 2
    if args.count < 1 or args.parallel < 1:
        print("bwc upload: --count and --parallel must be at least 1", file=sys.stderr)
        return 2
    if not args.chunk_timeout > 0:
        print("bwc upload: --chunk-timeout must be a positive number of seconds",
              file=sys.stderr)
        return 2
    if args.token and args.count > 1:
        print("bwc upload: --token names one device; leave it out with --count > 1 (tokens "
              "are minted per camera by the dev issuer)", file=sys.stderr)
        return 2
    devices = device_ids(args.device, args.count)
    if args.register:
        admin = args.admin_token or dev_issuer.mint(role="admin", sub="bwc-upload",
                                                    directory=Path(args.issuer_dir))
        await register(args.url.rstrip("/"), admin, devices, args.officer)
    slots = asyncio.Semaphore(args.parallel)
    results = await asyncio.gather(*(upload_one(args, i, device_id, size, slots)
                                     for i, device_id in enumerate(devices)))
    print(summary(results))
    return 1 if any(r.error for r in results) else 0


def add_arguments(upload: argparse.ArgumentParser) -> None:
    upload.add_argument("--generate", metavar="SIZE",
                        help="upload generated recordings of SIZE (64MiB, 1GiB …) instead of "
                             "FILE: a dock emptying --count cameras")
    upload.add_argument("--count", type=int, default=1,
                        help="with --generate: cameras (devices DEVICE-001 … when more than 1)")
    upload.add_argument("--parallel", type=int, default=4,
                        help="with --generate: uploads at once")
    upload.add_argument("--register", action="store_true",
                        help="with --generate: register the cameras first (admin token from "
                             "the dev issuer or --admin-token)")
    upload.add_argument("--admin-token")
    upload.add_argument("--retries", type=int, default=5,
                        help="failed chunks in a row before an upload counts as failed")
    upload.add_argument("--retry-delay", type=float, default=2.0, help="seconds")
    upload.add_argument("--chunk-timeout", type=float, default=300.0,
                        help="seconds one chunk's PATCH may take before it counts as failed "
                             "and is resumed")
    upload.add_argument("--seed", type=int, default=0, help="varies the generated bytes")
    upload.add_argument("--no-progress", action="store_true", help="no progress bars")
