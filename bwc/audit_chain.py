"""The audit hash chain's format (R7): canonical encoding, link hash and the verifying walk.

Shared by the catalogue (which appends and verifies in the database) and ``bwc audit verify``
(which verifies an export offline), so both apply one definition; docs/audit.md states it for
an outside party who re-implements it:

- ``canonical`` = the RFC 8785 (JSON Canonicalization Scheme) UTF-8 encoding of the CloudEvent
  JSON object (``rfc8785``, a pure-Python implementation by Trail of Bits);
- entry ``n`` (n ≥ 1) stores ``prev_hash`` = the hash of entry ``n - 1`` and
  ``hash = SHA-256(prev_hash ‖ canonical)`` over the raw 32 bytes of ``prev_hash`` followed by
  the canonical bytes; the genesis ``prev_hash`` (of entry 1) is 32 zero bytes;
- after the retention step removed a prefix (entries older than two years), the *anchor* —
  seq and hash of the last removed entry — takes the genesis' place.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import rfc8785

#: ``prev_hash`` of entry 1: an unpruned chain starts from this anchor at seq 0.
GENESIS_HASH = bytes(32)
#: First line of an export file, so a reader knows what it holds.
EXPORT_FORMAT = "bwc-audit-chain/1"


class NotCanonicalizable(ValueError):
    """The event holds a value RFC 8785 cannot encode (a lone surrogate, an integer beyond
    ±2^53, NaN): no canonical form, so it cannot be chained."""


def canonical(event: Mapping[str, Any]) -> bytes:
    """RFC 8785 bytes of a JSON object (the CloudEvent as the catalogue validated it)."""
    try:
        return rfc8785.dumps(dict(event))
    except rfc8785.CanonicalizationError as exc:
        raise NotCanonicalizable(str(exc)) from exc


def link_hash(prev_hash: bytes, canonical_bytes: bytes) -> bytes:
    return hashlib.sha256(prev_hash + canonical_bytes).digest()


@dataclass(frozen=True)
class Anchor:
    """Where a chain starts: (0, genesis) or the last entry the retention step removed."""

    seq: int
    hash: bytes

    @classmethod
    def genesis(cls) -> Anchor:
        return cls(0, GENESIS_HASH)


@dataclass(frozen=True)
class Break:
    """The first entry that does not hold. ``expected``/``found`` are hex hashes, or seq
    numbers for a gap; ``found`` is None when the entry is missing altogether."""

    seq: int
    expected: str
    found: str | None
    reason: str


@dataclass(frozen=True)
class KeptHead:
    """A head an outside party kept (``GET /api/v1/audit/head``): its hash, and its seq when
    known. Checked after the walk, so a truncated tail or a rewritten chain shows."""

    hash: bytes
    seq: int | None = None

    @classmethod
    def parse(cls, text: str) -> KeptHead:
        """``HASH`` or ``SEQ:HASH`` (hex)."""
        seq_text, _, hash_text = text.strip().rpartition(":")
        digest = bytes.fromhex(hash_text)
        if len(digest) != 32:
            raise ValueError("a head hash is 64 hex digits")
        return cls(digest, int(seq_text) if seq_text else None)


class ChainWalker:
    """Checks entries in seq order, batch by batch (memory stays bounded by the batch).

    For each entry, in this order: its ``prev_hash`` is the previous entry's hash (the link),
    its ``hash`` is ``SHA-256(prev_hash ‖ canonical)``, its seq is the previous seq + 1. The
    first entry failing one of these is ``broken``; a deleted middle row shows at the entry
    after the gap (its link points at the removed entry), an altered row at itself.
    """

    def __init__(self, anchor: Anchor, kept: KeptHead | None = None) -> None:
        self.anchor = anchor
        self.last_seq = anchor.seq
        self.last_hash = anchor.hash
        self.entries = 0
        self.broken: Break | None = None
        self.kept = kept
        self._kept_seen = kept is not None and kept.hash == anchor.hash and \
            kept.seq in (None, anchor.seq)
        self._kept_found: bytes | None = anchor.hash if kept and kept.seq == anchor.seq else None

    def feed(self, rows: Iterable[tuple[int, bytes, bytes, bytes]]) -> bool:
        """Walk ``(seq, prev_hash, hash, canonical)`` rows; ``False`` once broken."""
        if self.broken is not None:
            return False
        last_seq, last_hash, sha256 = self.last_seq, self.last_hash, hashlib.sha256
        kept = self.kept
        entries = 0
        for seq, prev_hash, digest, body in rows:
            if prev_hash != last_hash:
                self.broken = Break(seq, last_hash.hex(), prev_hash.hex(),
                                    "prev_hash is not the previous entry's hash")
            elif (computed := sha256(prev_hash + body).digest()) != digest:
                self.broken = Break(seq, computed.hex(), digest.hex(),
                                    "hash is not SHA-256(prev_hash ‖ canonical)")
            elif seq != last_seq + 1:
                self.broken = Break(seq, str(last_seq + 1), str(seq), "gap in the seq numbers")
            if self.broken is not None:
                break
            entries += 1
            last_seq, last_hash = seq, digest
            if kept is not None:
                if kept.seq == seq:
                    self._kept_found = digest
                if digest == kept.hash:
                    self._kept_seen = True
        self.last_seq, self.last_hash = last_seq, last_hash
        self.entries += entries
        return self.broken is None

    def finish(self) -> Break | None:
        """The first break, including one against the kept head (a truncated tail)."""
        if self.broken is not None or self.kept is None:
            return self.broken
        kept = self.kept
        if kept.seq is not None and kept.seq < self.anchor.seq:
            # Nothing left to compare it with. Calling that "ok" would pass a chain whose
            # anchor was moved behind the database's back onto its newest entry, everything
            # before it deleted: the kept head is the only witness left (R7). An honest prune
            # removes only entries older than two years, so a recent head is not below it.
            self.broken = Break(kept.seq, kept.hash.hex(), None,
                                f"the kept head lies in the pruned prefix (anchor seq "
                                f"{self.anchor.seq}): the entries it vouches for were removed; "
                                f"only a head kept after the prune can be checked")
        elif kept.seq is not None and kept.seq <= self.last_seq:
            if self._kept_found != kept.hash:
                self.broken = Break(kept.seq, kept.hash.hex(),
                                    self._kept_found.hex() if self._kept_found else None,
                                    "the entry at the kept head's seq has another hash: "
                                    "the chain was rewritten")
        elif not self._kept_seen:
            self.broken = Break(self.last_seq + 1, kept.hash.hex(), None,
                                f"the kept head is not in the chain, which ends at seq "
                                f"{self.last_seq}: entries after it were removed")
        return self.broken


# -- export files (JSON lines) -----------------------------------------------------------------


def anchor_line(anchor: Anchor) -> str:
    return json.dumps({"format": EXPORT_FORMAT, "anchor": {
        "seq": anchor.seq, "hash": anchor.hash.hex()}}, separators=(",", ":"))


def entry_line(seq: int, prev_hash: bytes, digest: bytes, canonical_bytes: bytes) -> str:
    return json.dumps({"seq": seq, "prev_hash": prev_hash.hex(), "hash": digest.hex(),
                       "canonical": canonical_bytes.decode()},
                      ensure_ascii=False, separators=(",", ":"))


class ExportFormatError(ValueError):
    """The file is not an audit chain export."""


def parse_anchor_line(line: str) -> Anchor:
    try:
        header = json.loads(line)
        if header.get("format") != EXPORT_FORMAT:
            raise ExportFormatError(f"first line must declare format {EXPORT_FORMAT!r}")
        return Anchor(int(header["anchor"]["seq"]), bytes.fromhex(header["anchor"]["hash"]))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ExportFormatError(f"line 1: not an export header: {exc}") from exc


def parse_entry_lines(
    lines: Iterable[str], *, first_line_number: int = 2
) -> Iterable[tuple[int, bytes, bytes, bytes]]:
    for number, line in enumerate(lines, start=first_line_number):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            yield (int(entry["seq"]), bytes.fromhex(entry["prev_hash"]),
                   bytes.fromhex(entry["hash"]), entry["canonical"].encode())
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ExportFormatError(f"line {number}: not an audit entry: {exc}") from exc
