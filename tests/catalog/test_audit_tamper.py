"""The audit chain cannot be changed unnoticed (R7), on a catalogue of its own (own database, no
broker: the chains here are seeded through the catalogue's append directly, so nothing else
appends while a test tampers).

- a row altered behind the database's back (a superuser with the triggers switched off) is
  found by ``GET /api/v1/audit/verify`` and by ``bwc audit verify`` at its seq;
- a deleted middle row is found at the entry after the gap; a truncated tail against a kept
  head (``--head``), and by the API against the stored head;
- UPDATE, DELETE and TRUNCATE as the service's own role are refused by the database;
- the retention step removes only a prefix older than two years, behind an anchor, and the
  chain stays verifiable from the anchor (API and offline).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from bwc.cli.main import main as bwc
from bwc.devstack.processes import free_port
from bwc.devstack.stack import Stack
from tests.fixtures.audit import as_superuser_bypassing_triggers, reset_chain, seed_chain
from tests.fixtures.clients import auth, mint
from tests.fixtures.services import ExtraService, extra_service

THREE_YEARS_AGO = datetime.now(UTC) - timedelta(days=3 * 365)


@pytest.fixture(scope="module")
async def catalog(stack: Stack) -> AsyncIterator[ExtraService]:
    # No broker at this address: the consumers wait (not a readiness failure), the API serves.
    async with extra_service(stack, "catalog", own_database=True, env={
            "BWC_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}",
            "BWC_CATALOG_AUDIT_RETENTION_INTERVAL": "0.5"}) as service:
        yield service


@pytest.fixture
async def chain_db(catalog: ExtraService) -> AsyncIterator[asyncpg.Connection]:
    """The catalogue's database, as the service's own role, with an empty chain."""
    url = catalog.env["BWC_DATABASE_URL"]
    await reset_chain(url)
    conn = await asyncpg.connect(url)
    try:
        yield conn
    finally:
        await conn.close()


async def _get(http: httpx.AsyncClient, stack: Stack, catalog: ExtraService,
               path: str) -> dict[str, Any]:
    response = await http.get(f"{catalog.url}/api/v1/audit{path}",
                              headers=auth(mint(stack, "auditor", "audrey")))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _export(stack: Stack, catalog: ExtraService, path: Path) -> None:
    token = mint(stack, "auditor", "audrey")
    assert await asyncio.to_thread(
        bwc, ["audit", "export", str(path), "--url", catalog.url, "--token", token]) == 0


async def _offline_verify(path: Path, capsys: pytest.CaptureFixture[str],
                          *extra: str) -> tuple[int, str]:
    capsys.readouterr()
    code = await asyncio.to_thread(bwc, ["audit", "verify", str(path), *extra])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


async def test_an_intact_chain_verifies_by_api_and_offline(
    stack: Stack, http: httpx.AsyncClient, catalog: ExtraService, chain_db: asyncpg.Connection,
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    await seed_chain(chain_db, 30)
    assert await _get(http, stack, catalog, "/verify") == {
        "ok": True, "entries": 30, "first_broken": None,
        "anchor": {"seq": 0, "hash": "00" * 32}}
    head = await _get(http, stack, catalog, "/head")
    assert head["seq"] == 30 and head["anchor"] is None
    await _export(stack, catalog, tmp_path / "chain.jsonl")
    code, out = await _offline_verify(tmp_path / "chain.jsonl", capsys,
                                      "--head", f"{head['seq']}:{head['hash']}")
    assert code == 0, out
    assert f"ok: 30 entries from anchor seq 0, head 30:{head['hash']}" in out


async def test_a_row_altered_behind_the_databases_back_is_found_at_its_seq(
    stack: Stack, http: httpx.AsyncClient, catalog: ExtraService, chain_db: asyncpg.Connection,
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    await seed_chain(chain_db, 20)
    async with as_superuser_bypassing_triggers(catalog.env["BWC_DATABASE_URL"]) as admin:
        await admin.execute(
            "UPDATE catalog.audit_chain SET canonical = convert_to(replace("
            "convert_from(canonical, 'UTF8'), '\"rita\"', '\"mallory\"'), 'UTF8')"
            " WHERE seq = 13")
    verdict = await _get(http, stack, catalog, "/verify")
    assert verdict["ok"] is False and verdict["entries"] == 12
    assert verdict["first_broken"]["seq"] == 13
    stored = await chain_db.fetchval("SELECT hash FROM catalog.audit_chain WHERE seq = 13")
    assert verdict["first_broken"]["found"] == stored.hex()
    await _export(stack, catalog, tmp_path / "chain.jsonl")
    code, out = await _offline_verify(tmp_path / "chain.jsonl", capsys)
    assert code == 1
    assert "BROKEN at seq 13: hash is not SHA-256(prev_hash ‖ canonical)" in out


async def test_a_deleted_middle_row_is_found_at_the_entry_after_it(
    stack: Stack, http: httpx.AsyncClient, catalog: ExtraService, chain_db: asyncpg.Connection,
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    await seed_chain(chain_db, 20)
    async with as_superuser_bypassing_triggers(catalog.env["BWC_DATABASE_URL"]) as admin:
        await admin.execute("DELETE FROM catalog.audit_chain WHERE seq = 9")
    verdict = await _get(http, stack, catalog, "/verify")
    assert verdict["ok"] is False and verdict["first_broken"]["seq"] == 10
    await _export(stack, catalog, tmp_path / "chain.jsonl")
    code, out = await _offline_verify(tmp_path / "chain.jsonl", capsys)
    assert code == 1 and "BROKEN at seq 10: prev_hash is not the previous entry's hash" in out


async def test_a_truncated_tail_is_found_against_the_kept_head(
    stack: Stack, http: httpx.AsyncClient, catalog: ExtraService, chain_db: asyncpg.Connection,
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    await seed_chain(chain_db, 20)
    kept = await _get(http, stack, catalog, "/head")  # what an outside party keeps
    async with as_superuser_bypassing_triggers(catalog.env["BWC_DATABASE_URL"]) as admin:
        await admin.execute("DELETE FROM catalog.audit_chain WHERE seq > 16")
    # The database's own head still names seq 20.
    verdict = await _get(http, stack, catalog, "/verify")
    assert verdict["ok"] is False and verdict["first_broken"]["seq"] == 17
    await _export(stack, catalog, tmp_path / "chain.jsonl")
    # The remaining entries are consistent among themselves: only the kept head shows the cut.
    assert (await _offline_verify(tmp_path / "chain.jsonl", capsys))[0] == 0
    for head in (kept["hash"], f"{kept['seq']}:{kept['hash']}"):
        code, out = await _offline_verify(tmp_path / "chain.jsonl", capsys, "--head", head)
        assert code == 1 and "BROKEN at seq 17: the kept head is not in the chain" in out, out


async def test_update_delete_and_truncate_as_the_service_role_are_refused(
    catalog: ExtraService, chain_db: asyncpg.Connection,
) -> None:
    await seed_chain(chain_db, 3)
    refused = [
        "UPDATE catalog.audit_chain SET appended_at = now() WHERE seq = 2",
        "UPDATE catalog.audit_chain SET canonical = canonical WHERE false",
        "DELETE FROM catalog.audit_chain WHERE seq = 2",
        "DELETE FROM catalog.audit_chain",
        "TRUNCATE catalog.audit_chain",
        "UPDATE catalog.audit_chain_head SET seq = 1",
        "DELETE FROM catalog.audit_chain_head",
    ]
    for statement in refused:
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="R7"):
            await chain_db.execute(statement)
    # An insert must extend the head by one correctly linked entry.
    with pytest.raises(asyncpg.CheckViolationError, match="does not extend the head"):
        await chain_db.execute(
            "INSERT INTO catalog.audit_chain (seq, canonical, prev_hash, hash)"
            " SELECT 2, canonical, prev_hash, hash FROM catalog.audit_chain WHERE seq = 1")
    assert await chain_db.fetchval("SELECT count(*) FROM catalog.audit_chain") == 3


async def test_retention_removes_only_a_prefix_older_than_two_years_behind_an_anchor(
    stack: Stack, http: httpx.AsyncClient, catalog: ExtraService, chain_db: asyncpg.Connection,
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """R7: the supervised retention step (every 0.5 s here) prunes entries older than two
    years; the chain verifies from the stored anchor, by the API and offline."""
    # An old entry after a young one could not be appended (appended_at never decreases), so
    # the old entries are a prefix: seq 1 to 5 three years ago, 6 one year ago, 7 to 9 now.
    await seed_chain(chain_db, 5, appended_at=THREE_YEARS_AGO)
    await seed_chain(chain_db, 1, appended_at=datetime.now(UTC) - timedelta(days=365))
    with pytest.raises(asyncpg.CheckViolationError, match="before the head"):
        await seed_chain(chain_db, 1, appended_at=THREE_YEARS_AGO)
    await seed_chain(chain_db, 3)
    old_hash = await chain_db.fetchval("SELECT hash FROM catalog.audit_chain WHERE seq = 5")
    deadline = asyncio.get_running_loop().time() + 20
    # The step runs while the entries are being seeded, so it may prune seq 1 first and the
    # rest of the old prefix on a later run: wait until the anchor has reached seq 5.
    while ((head := await _get(http, stack, catalog, "/head"))["anchor"] or {}).get("seq") != 5:
        assert asyncio.get_running_loop().time() < deadline, (
            f"the retention step did not prune the old prefix: {head}")
        await asyncio.sleep(0.3)
    assert head["seq"] == 9
    assert (head["anchor"]["seq"], head["anchor"]["hash"]) == (5, old_hash.hex())
    assert [r["seq"] for r in await chain_db.fetch(
        "SELECT seq FROM catalog.audit_chain ORDER BY seq")] == [6, 7, 8, 9]
    verdict = await _get(http, stack, catalog, "/verify")
    assert verdict["ok"] is True and verdict["entries"] == 4
    assert verdict["anchor"] == {"seq": 5, "hash": old_hash.hex()}
    await _export(stack, catalog, tmp_path / "chain.jsonl")
    code, out = await _offline_verify(tmp_path / "chain.jsonl", capsys,
                                      "--head", f"9:{head['hash']}")
    assert code == 0 and "ok: 4 entries from anchor seq 5" in out, out


async def test_the_anchor_cannot_cover_young_entries_nor_move_back(
    catalog: ExtraService, chain_db: asyncpg.Connection,
) -> None:
    await seed_chain(chain_db, 2, appended_at=THREE_YEARS_AGO)
    await seed_chain(chain_db, 2)
    young = await chain_db.fetchval("SELECT hash FROM catalog.audit_chain WHERE seq = 3")
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="younger than two years"):
        await chain_db.execute("INSERT INTO catalog.audit_chain_anchor (seq, hash, pruned_at)"
                               " VALUES (3, $1, now())", young)
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="R7"):
        await chain_db.execute("DELETE FROM catalog.audit_chain WHERE seq = 3")  # young
    assert await chain_db.fetchval("SELECT catalog.audit_chain_prune()") in (0, 2)
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="forward only"):
        await chain_db.execute("UPDATE catalog.audit_chain_anchor SET seq = 1")
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="R7"):
        await chain_db.execute("DELETE FROM catalog.audit_chain_anchor")
    assert await chain_db.fetchval("SELECT seq FROM catalog.audit_chain_anchor") == 2


async def test_an_append_after_the_database_clock_stepped_back_is_chained_not_refused(
    catalog: ExtraService, chain_db: asyncpg.Connection,
) -> None:
    """R7: the head's appended_at ahead of the clock (the server's clock stepped back, e.g. an
    NTP correction) must not make the database refuse appends: the consumer parks a refused
    event in dead_letters, so every access in that window would be missing from the chain."""
    await seed_chain(chain_db, 2)
    async with as_superuser_bypassing_triggers(catalog.env["BWC_DATABASE_URL"]) as admin:
        # What the clock stepping back by an hour leaves behind: the last append's time ahead.
        await admin.execute("UPDATE catalog.audit_chain_head"
                            " SET appended_at = clock_timestamp() + interval '1 hour'")
    ahead = await chain_db.fetchval("SELECT appended_at FROM catalog.audit_chain_head")
    assert await seed_chain(chain_db, 2) == [3, 4]
    # appended_at still never decreases along the chain (the retention step relies on it).
    assert await chain_db.fetchval(
        "SELECT appended_at FROM catalog.audit_chain WHERE seq = 4") == ahead
    # A backdated or future appended_at the caller names is still refused.
    with pytest.raises(asyncpg.CheckViolationError, match="before the head"):
        await seed_chain(chain_db, 1, appended_at=datetime.now(UTC))


#: Migration 006's filter columns, to put one back after a test made it writable.
GENERATED = {
    "recording_id": "uuid GENERATED ALWAYS AS"
                    " (catalog.audit_event_text(canonical, '{data,recording_id}')::uuid) STORED",
    "actor": "text NOT NULL GENERATED ALWAYS AS"
             " (catalog.audit_event_text(canonical, '{data,actor}')) STORED",
    "action": "text NOT NULL GENERATED ALWAYS AS"
              " (catalog.audit_event_text(canonical, '{data,action}')) STORED",
    "occurred_at": "timestamptz NOT NULL GENERATED ALWAYS AS"
                   " (catalog.audit_event_instant(canonical)) STORED",
    "event_id": "text NOT NULL UNIQUE GENERATED ALWAYS AS"
                " (catalog.audit_event_text(canonical, '{id}')) STORED",
}
INDEXED = {"recording_id": "(recording_id, seq) WHERE recording_id IS NOT NULL",
           "actor": "(actor, seq)", "action": "(action, seq)", "occurred_at": "(occurred_at, seq)"}


@pytest.mark.parametrize(("column", "value"), [
    ("recording_id", "'00000000-0000-4000-8000-000000000000'::uuid"),
    ("actor", "'mallory'"),
    ("action", "'search'"),
    ("occurred_at", "occurred_at - interval '1 day'"),
    ("event_id", "'forged-id'"),
])
async def test_a_filter_column_changed_behind_the_databases_back_is_found(
    stack: Stack, http: httpx.AsyncClient, catalog: ExtraService, chain_db: asyncpg.Connection,
    column: str, value: str,
) -> None:
    """R7: the auditors' filters (recording_id, actor, action, from/to) select on columns beside
    the hashed bytes. Changed behind the database's back they would hide an entry from "who
    viewed this recording?": not even a superuser can UPDATE them (generated from canonical);
    made writable by DDL and changed, verify finds the entry."""
    await seed_chain(chain_db, 10)
    url = catalog.env["BWC_DATABASE_URL"]
    async with as_superuser_bypassing_triggers(url) as admin:
        with pytest.raises(asyncpg.GeneratedAlwaysError):
            await admin.execute(f"UPDATE catalog.audit_chain SET {column} = {value}"
                                " WHERE seq = 7")
        await admin.execute(f"ALTER TABLE catalog.audit_chain ALTER COLUMN {column}"
                            " DROP EXPRESSION")
        try:
            await admin.execute(f"UPDATE catalog.audit_chain SET {column} = {value}"
                                " WHERE seq = 7")
            verdict = await _get(http, stack, catalog, "/verify")
        finally:
            await admin.execute(f"ALTER TABLE catalog.audit_chain DROP COLUMN {column},"
                                f" ADD COLUMN {column} {GENERATED[column]}")
            if column in INDEXED:
                await admin.execute(f"CREATE INDEX audit_chain_{column} ON catalog.audit_chain"
                                    f" {INDEXED[column]}")
    assert verdict["ok"] is False, verdict
    assert verdict["first_broken"]["seq"] == 7 and verdict["entries"] == 6
    assert column in verdict["first_broken"]["reason"]


async def test_a_canonical_that_is_no_event_with_its_hashes_recomputed_is_found(
    stack: Stack, http: httpx.AsyncClient, catalog: ExtraService, chain_db: asyncpg.Connection,
) -> None:
    """Bytes that are no JSON event cannot even be written while the filter columns are
    generated from them; with those made writable by DDL and the hashes and head recomputed,
    the links hold, and verify reports the entry (not a 500)."""
    await seed_chain(chain_db, 10)
    garbage = ("UPDATE catalog.audit_chain SET canonical = '\\xff00'::bytea,"
               " hash = sha256(prev_hash || '\\xff00'::bytea) WHERE seq = 10")
    async with as_superuser_bypassing_triggers(catalog.env["BWC_DATABASE_URL"]) as admin:
        with pytest.raises(asyncpg.DataError):
            await admin.execute(garbage)
        for column in GENERATED:
            await admin.execute(f"ALTER TABLE catalog.audit_chain ALTER COLUMN {column}"
                                " DROP EXPRESSION")
        try:
            await admin.execute(garbage)
            await admin.execute("UPDATE catalog.audit_chain_head SET hash ="
                                " (SELECT hash FROM catalog.audit_chain WHERE seq = 10)")
            verdict = await _get(http, stack, catalog, "/verify")
        finally:
            await admin.execute("DELETE FROM catalog.audit_chain WHERE seq = 10")
            for column in GENERATED:
                await admin.execute(f"ALTER TABLE catalog.audit_chain DROP COLUMN {column},"
                                    f" ADD COLUMN {column} {GENERATED[column]}")
            for column, indexed in INDEXED.items():
                await admin.execute(f"CREATE INDEX audit_chain_{column} ON catalog.audit_chain"
                                    f" {indexed}")
    assert verdict["ok"] is False and verdict["entries"] == 9, verdict
    assert verdict["first_broken"]["seq"] == 10
    assert "canonical is not an audit event" in verdict["first_broken"]["reason"]


async def test_a_kept_head_inside_a_moved_anchor_is_not_called_ok(
    stack: Stack, http: httpx.AsyncClient, catalog: ExtraService, chain_db: asyncpg.Connection,
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """R7: an administrator who moves the anchor onto the newest entry and deletes everything
    before it (triggers off) leaves a chain that is consistent from its anchor. A head kept
    outside before that lies below the new anchor: offline verify must not pass it as ok
    (with HASH alone it already fails; SEQ:HASH passed silently)."""
    await seed_chain(chain_db, 20)
    kept = await _get(http, stack, catalog, "/head")
    await seed_chain(chain_db, 5)
    async with as_superuser_bypassing_triggers(catalog.env["BWC_DATABASE_URL"]) as admin:
        await admin.execute(
            "INSERT INTO catalog.audit_chain_anchor (seq, hash, pruned_at)"
            " SELECT seq, hash, now() FROM catalog.audit_chain WHERE seq = 25")
        await admin.execute("DELETE FROM catalog.audit_chain WHERE seq <= 25")
    await _export(stack, catalog, tmp_path / "chain.jsonl")
    code, out = await _offline_verify(tmp_path / "chain.jsonl", capsys, "--head", kept["hash"])
    assert code == 1 and "BROKEN" in out, out
    code, out = await _offline_verify(tmp_path / "chain.jsonl", capsys,
                                      "--head", f"{kept['seq']}:{kept['hash']}")
    assert code == 1 and "BROKEN at seq 20: the kept head lies in the pruned prefix" in out, out
