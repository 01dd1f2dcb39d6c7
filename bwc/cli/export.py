"""``bwc export verify ZIP``: check an evidence package offline (R6, R7, R8).

Needs nothing but the file: every ``SHA256SUMS`` line matches its member, every member is
listed, the media is the recording ``metadata.json`` describes (SHA-256 and size as ingest
recorded them), and the audit trail's entries hash and link (``bwc/evidence.py``). Exit 0: the
package holds; 1: it does not (each problem printed); 2: not a readable zip, or bad usage.
"""

from __future__ import annotations

import argparse
import sys
import zipfile
from pathlib import Path

from bwc.evidence import verify as verify_package


def verify(args: argparse.Namespace) -> int:
    path = Path(args.file)
    try:
        with zipfile.ZipFile(path) as archive:
            try:
                found = verify_package(archive)
            except zipfile.BadZipFile as exc:
                # A member's bytes no longer match the CRC the zip stored: changed afterwards.
                print(f"FAILED: {path}: {exc}", file=sys.stderr)
                return 1
    except (OSError, zipfile.BadZipFile) as exc:
        print(f"bwc export verify: {path}: not a readable zip: {exc}", file=sys.stderr)
        return 2
    if not found.ok:
        for problem in found.problems:
            print(f"FAILED: {problem}", file=sys.stderr)
        return 1
    print(f"ok: recording {found.recording_id}: {found.members} members match SHA256SUMS, "
          f"the media is the recorded one, {found.trail_entries} audit entries hash")
    return 0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("export", help="check an evidence package (R6, R7, R8)")
    commands = parser.add_subparsers(dest="export_command", required=True)
    check = commands.add_parser("verify", help="verify an evidence package offline")
    check.add_argument("file", help="the zip from GET /api/v1/recordings/{id}/export")
    check.set_defaults(func=verify)
