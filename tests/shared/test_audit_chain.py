"""The audit chain's format (R7, ``bwc.audit_chain``): the canonical encoding and the walk that
finds an altered entry, a removed middle entry, a truncated tail and a rewritten chain."""

from __future__ import annotations

import hashlib

import pytest

from bwc.audit_chain import (
    GENESIS_HASH,
    Anchor,
    ChainWalker,
    KeptHead,
    NotCanonicalizable,
    canonical,
    link_hash,
)

Row = tuple[int, bytes, bytes, bytes]


def chain(n: int, anchor: Anchor | None = None) -> list[Row]:
    start = anchor or Anchor.genesis()
    rows, prev = [], start.hash
    for seq in range(start.seq + 1, start.seq + n + 1):
        body = canonical({"id": str(seq), "data": {"n": seq}})
        digest = link_hash(prev, body)
        rows.append((seq, prev, digest, body))
        prev = digest
    return rows


def test_canonical_is_rfc_8785() -> None:
    # Keys sorted by UTF-16 code units, no whitespace, ECMAScript numbers, UTF-8 output.
    assert canonical({"b": 1.0, "a": "ü", "c": [1e21, 5e-7, 10], "A": None}) == \
        '{"A":null,"a":"ü","b":1,"c":[1e+21,5e-7,10]}'.encode()


def test_a_value_without_a_canonical_form_is_refused() -> None:
    with pytest.raises(NotCanonicalizable):
        canonical({"details": {"n": 2**60}})  # beyond IEEE 754's exact integers


def test_link_is_sha256_of_prev_hash_then_canonical() -> None:
    assert link_hash(GENESIS_HASH, b"{}") == hashlib.sha256(bytes(32) + b"{}").digest()


def test_an_intact_chain_holds() -> None:
    walker = ChainWalker(Anchor.genesis())
    rows = chain(25)
    assert walker.feed(rows[:10]) and walker.feed(rows[10:])
    assert walker.finish() is None and walker.entries == 25 and walker.last_seq == 25


def test_an_altered_entry_is_found_at_its_seq() -> None:
    rows = chain(10)
    seq, prev, digest, body = rows[6]
    rows[6] = (seq, prev, digest, body.replace(b"7", b"8"))
    walker = ChainWalker(Anchor.genesis())
    assert not walker.feed(rows)
    broken = walker.finish()
    assert broken is not None and broken.seq == 7 and broken.found == digest.hex()
    assert broken.expected == link_hash(prev, rows[6][3]).hex()


def test_an_altered_entry_with_a_recomputed_hash_breaks_the_next_link() -> None:
    rows = chain(10)
    seq, prev, _, body = rows[6]
    forged = body.replace(b"7", b"8")
    rows[6] = (seq, prev, link_hash(prev, forged), forged)
    walker = ChainWalker(Anchor.genesis())
    walker.feed(rows)
    broken = walker.finish()
    assert broken is not None and broken.seq == 8 and broken.expected == rows[6][2].hex()


def test_a_removed_middle_entry_is_found_at_the_entry_after_the_gap() -> None:
    rows = chain(10)
    removed = rows.pop(4)  # seq 5
    walker = ChainWalker(Anchor.genesis())
    walker.feed(rows)
    broken = walker.finish()
    assert broken is not None and broken.seq == 6
    assert (broken.expected, broken.found) == (rows[3][2].hex(), removed[2].hex())


def test_a_truncated_tail_is_found_against_a_kept_head() -> None:
    rows = chain(10)
    for kept in (KeptHead(rows[-1][2]), KeptHead(rows[-1][2], 10)):
        walker = ChainWalker(Anchor.genesis(), kept)
        walker.feed(rows[:7])
        broken = walker.finish()
        assert broken is not None and broken.seq == 8 and broken.found is None, kept
    # Without a kept head the shortened chain is consistent: that is why heads are kept.
    walker = ChainWalker(Anchor.genesis())
    walker.feed(rows[:7])
    assert walker.finish() is None


def test_a_rewritten_chain_is_found_at_the_kept_heads_seq() -> None:
    original, rewritten = chain(10), chain(12, Anchor(0, b"\x01" * 32))
    walker = ChainWalker(Anchor(0, b"\x01" * 32), KeptHead(original[9][2], 10))
    walker.feed(rewritten)
    broken = walker.finish()
    assert broken is not None and broken.seq == 10 and broken.found == rewritten[9][2].hex()


def test_a_pruned_chain_verifies_from_its_anchor() -> None:
    rows = chain(20)
    anchor = Anchor(rows[11][0], rows[11][2])
    walker = ChainWalker(anchor, KeptHead(rows[-1][2], 20))
    walker.feed(rows[12:])
    assert walker.finish() is None and walker.entries == 8
    # The first entry after the anchor must link to it.
    walker = ChainWalker(Anchor(12, b"\x02" * 32))
    walker.feed(rows[12:])
    assert walker.finish() is not None and walker.finish().seq == 13  # type: ignore[union-attr]


def test_a_kept_head_below_the_anchor_is_not_ok() -> None:
    """R7: the whole chain up to its newest entry deleted behind a moved anchor is consistent
    in itself; a head kept before must not pass it, with or without its seq."""
    rows = chain(20)
    anchor = Anchor(rows[19][0], rows[19][2])
    for kept in (KeptHead(rows[9][2], 10), KeptHead(rows[9][2])):
        walker = ChainWalker(anchor, kept)
        walker.feed([])
        broken = walker.finish()
        assert broken is not None, kept
    walker = ChainWalker(anchor, KeptHead(rows[9][2], 10))
    walker.feed([])
    broken = walker.finish()
    assert broken is not None and (broken.seq, broken.found) == (10, None)
    assert "pruned prefix" in broken.reason
    # At the anchor itself the kept head is compared with the anchor's hash.
    walker = ChainWalker(anchor, KeptHead(rows[19][2], 20))
    walker.feed([])
    assert walker.finish() is None


def test_kept_head_syntax() -> None:
    digest = "ab" * 32
    assert KeptHead.parse(f"42:{digest}") == KeptHead(bytes.fromhex(digest), 42)
    assert KeptHead.parse(digest) == KeptHead(bytes.fromhex(digest), None)
    for bad in ("42:abcd", "x:" + digest, "zz" * 32):
        with pytest.raises(ValueError):
            KeptHead.parse(bad)
