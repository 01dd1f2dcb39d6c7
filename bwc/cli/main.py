"""``bwc``: development tokens, a device simulator and schema export.

    bwc token --role reviewer --sub alice
    bwc upload FILE --device cam-01 --trigger-reason "..." --announced
    bwc upload --generate 64MiB --count 8 --parallel 8 --register --device dock-1 \
        --trigger-reason "..." --announced
    bwc schemas --out docs/events
    bwc migrate --service ingest --service catalog ...
    bwc audit export FILE --token $AUDITOR_TOKEN; bwc audit verify FILE --head SEQ:HASH
    bwc export verify recording-ID.zip
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

from bwc import dev_issuer
from bwc.auth import Role
from bwc.cli import audit, dock, export, migrate
from bwc.events import EVENT_DATA_MODELS, CloudEvent


def _token(args: argparse.Namespace) -> int:
    print(dev_issuer.mint(role=args.role, sub=args.sub, directory=Path(args.issuer_dir),
                          ttl_seconds=args.ttl))
    return 0


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1024 * 1024):
            digest.update(block)
    return digest.hexdigest()


def _upload(args: argparse.Namespace) -> int:
    from tqdm import tqdm
    from tusclient import client as tus_client
    from tusclient.exceptions import TusCommunicationError

    if args.generate is not None:
        if args.file is not None:
            print("bwc upload: give FILE or --generate SIZE, not both", file=sys.stderr)
            return 2
        generated: int = asyncio.run(dock.run(args))
        return generated
    if args.file is None:
        print("bwc upload: FILE or --generate SIZE is required", file=sys.stderr)
        return 2
    path = Path(args.file)
    if not path.is_file():
        print(f"bwc upload: {path} is not a file", file=sys.stderr)
        return 2
    token = args.token or dev_issuer.mint(role="device", sub=args.device,
                                          directory=Path(args.issuer_dir))
    recorded_at = args.recorded_at or datetime.now(UTC).isoformat().replace("+00:00", "Z")
    metadata = {
        "filename": path.name,
        "content_type": args.content_type,
        "device_id": args.device,
        "recorded_at": recorded_at,
        "trigger_reason": args.trigger_reason,
        "announced": "true" if args.announced else "false",
        "imminent_danger": "true" if args.imminent_danger else "false",
        "in_home": "true" if args.in_home else "false",
        "sha256": _file_sha256(path),
    }
    if args.officer:
        metadata["officer_id"] = args.officer
    client = tus_client.TusClient(f"{args.url.rstrip('/')}/files/",
                                  headers={"Authorization": f"Bearer {token}"})
    uploader = client.uploader(str(path), chunk_size=args.chunk_size, metadata=metadata,
                               url=args.resume, upload_checksum=True, retries=3, retry_delay=2)
    size = path.stat().st_size
    try:
        with tqdm(total=size, initial=uploader.offset, unit="B", unit_scale=True,
                  unit_divisor=1024, desc=path.name) as bar:
            while uploader.offset < size:
                before = uploader.offset
                uploader.upload_chunk()  # type: ignore[no-untyped-call]
                bar.update(uploader.offset - before)
    except TusCommunicationError as exc:
        print(f"bwc upload: failed at byte {uploader.offset}: {exc} "
              f"(resume with --resume {uploader.url})", file=sys.stderr)
        return 1
    print(f"uploaded: recording id {str(uploader.url).rstrip('/').rsplit('/', 1)[-1]}")
    return 0


def _schemas(args: argparse.Namespace) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "cloudevent.schema.json").write_text(
        json.dumps(CloudEvent.model_json_schema(), indent=2) + "\n")
    for event_type, model in EVENT_DATA_MODELS.items():
        (out / f"{event_type.value}.v1.schema.json").write_text(
            json.dumps(model.model_json_schema(), indent=2) + "\n")
    print(f"wrote {len(EVENT_DATA_MODELS) + 1} schemas to {out}/")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bwc", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--issuer-dir", default=os.environ.get("BWC_DEV_ISSUER_DIR",
                                                              str(dev_issuer.DEFAULT_DIR)))
    sub = parser.add_subparsers(dest="command", required=True)

    token = sub.add_parser("token", help="mint a development token")
    token.add_argument("--role", required=True, choices=[r.value for r in Role])
    token.add_argument("--sub", required=True, help="subject: user name or device id")
    token.add_argument("--ttl", type=int, default=8 * 3600, help="lifetime in seconds")
    token.set_defaults(func=_token)

    upload = sub.add_parser("upload", help="upload a file as a device would (tus)")
    upload.add_argument("file", nargs="?", help="the recording (or --generate SIZE)")
    upload.add_argument("--device", required=True, help="device id (must be registered)")
    upload.add_argument("--url", default="http://127.0.0.1:8001", help="ingest base URL")
    upload.add_argument("--token", help="device token (default: minted by the dev issuer)")
    upload.add_argument("--officer")
    upload.add_argument("--recorded-at", help="RFC 3339 (default: now)")
    upload.add_argument("--trigger-reason", required=True, help="the concrete danger (R1)")
    upload.add_argument("--announced", action="store_true", help="recording was announced")
    upload.add_argument("--imminent-danger", action="store_true",
                        help="announcement skipped: imminent danger (R1)")
    upload.add_argument("--in-home", action="store_true", help="recorded inside a home (R8)")
    upload.add_argument("--content-type", default="video/mp4")
    upload.add_argument("--chunk-size", type=int, default=5 * 1024 * 1024)
    upload.add_argument("--resume", help="upload URL printed by an interrupted run")
    dock.add_arguments(upload)
    upload.set_defaults(func=_upload)

    schemas = sub.add_parser("schemas", help="export the event JSON Schemas")
    schemas.add_argument("--out", default="docs/events")
    schemas.set_defaults(func=_schemas)

    migrate.add_parser(sub)
    audit.add_parser(sub)
    export.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
