"""``bwc audit export FILE`` and ``bwc audit verify FILE [--head HASH]`` (R7).

Export reads the chain through the catalogue's auditor API (``GET /api/v1/audit/head`` for the
anchor, then every page of ``GET /api/v1/audit``), so an auditor needs a token, never database
credentials. The file is JSON lines: a header with the anchor, then one line per entry with
``seq``, ``prev_hash``, ``hash`` and ``canonical`` — all that verifying needs.

Verify reads such a file and needs nothing else: no database, no network. It walks the chain
with ``bwc.audit_chain`` (the code the catalogue verifies with) and exits 1 naming the first
broken seq; ``--head`` checks the chain still reaches a head kept earlier (``SEQ:HASH`` or
``HASH`` from ``GET /api/v1/audit/head``), which finds a truncated tail or a rewritten chain.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import httpx

from bwc.audit_chain import (
    Anchor,
    ChainWalker,
    ExportFormatError,
    KeptHead,
    anchor_line,
    entry_line,
    parse_anchor_line,
    parse_entry_lines,
)

PAGE = 1000


def _get(client: httpx.Client, path: str, **params: Any) -> Any:
    response = client.get(path, params=params)
    if response.status_code != 200:
        raise SystemExit(f"bwc audit export: {path}: HTTP {response.status_code}: "
                         f"{response.text[:500]}")
    return response.json()


def export(args: argparse.Namespace) -> int:
    token = args.token or os.environ.get("BWC_TOKEN")
    if not token:
        print("bwc audit export: an auditor token is needed (--token or BWC_TOKEN)",
              file=sys.stderr)
        return 2
    out = Path(args.file)
    written = 0
    with httpx.Client(base_url=args.url.rstrip("/"), timeout=60,
                      headers={"Authorization": f"Bearer {token}"}) as client, \
            out.open("w", encoding="utf-8") as handle:
        head = _get(client, "/api/v1/audit/head")
        start = head["anchor"] or {"seq": 0, "hash": "00" * 32}
        handle.write(anchor_line(Anchor(start["seq"], bytes.fromhex(start["hash"]))) + "\n")
        cursor: str | None = None
        while True:
            page = _get(client, "/api/v1/audit", limit=PAGE,
                        **({"cursor": cursor} if cursor else {}))
            for item in page["items"]:
                handle.write(entry_line(item["seq"], bytes.fromhex(item["prev_hash"]),
                                        bytes.fromhex(item["hash"]),
                                        item["canonical"].encode()) + "\n")
                written += 1
            cursor = page["next_cursor"]
            if cursor is None:
                break
    print(f"exported {written} entries after anchor seq {start['seq']} to {out}; "
          f"head when the export began: {head['seq']}:{head['hash']}")
    return 0


def verify(args: argparse.Namespace) -> int:
    try:
        kept = KeptHead.parse(args.head) if args.head else None
    except ValueError as exc:
        print(f"bwc audit verify: --head must be HASH or SEQ:HASH (hex): {exc}", file=sys.stderr)
        return 2
    try:
        with Path(args.file).open(encoding="utf-8") as handle:
            walker = ChainWalker(parse_anchor_line(handle.readline()), kept)
            batch: list[tuple[int, bytes, bytes, bytes]] = []
            for entry in parse_entry_lines(handle):
                batch.append(entry)
                if len(batch) == 10_000:
                    if not walker.feed(batch):
                        break
                    batch.clear()
            else:
                walker.feed(batch)
    except (OSError, ExportFormatError) as exc:
        print(f"bwc audit verify: {exc}", file=sys.stderr)
        return 2
    broken = walker.finish()
    if broken is not None:
        print(f"BROKEN at seq {broken.seq}: {broken.reason} (expected {broken.expected}, "
              f"found {broken.found or 'nothing'}); {walker.entries} entries before it hold",
              file=sys.stderr)
        return 1
    print(f"ok: {walker.entries} entries from anchor seq {walker.anchor.seq}, "
          f"head {walker.last_seq}:{walker.last_hash.hex()}")
    return 0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("audit", help="export the audit chain or verify an export (R7)")
    commands = parser.add_subparsers(dest="audit_command", required=True)

    out = commands.add_parser("export", help="write the chain as JSON lines (auditor token)")
    out.add_argument("file")
    out.add_argument("--url", default="http://127.0.0.1:8002", help="catalogue base URL")
    out.add_argument("--token", help="auditor token (default: $BWC_TOKEN)")
    out.set_defaults(func=export)

    check = commands.add_parser("verify", help="verify an export offline")
    check.add_argument("file")
    check.add_argument("--head", help="a head kept earlier: SEQ:HASH or HASH")
    check.set_defaults(func=verify)
