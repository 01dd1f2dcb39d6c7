"""Writing audit entries (R7): the one helper every service calls.

An access or a change is recorded as an ``audit.recorded`` event (``AuditEventV1``) in the
service's own outbox, **inside the transaction of what it records**: the change and its trace
commit together or not at all, and a read commits its entry before the response body is sent.
The outbox relay publishes it on ``audit.v1``; the catalogue appends it to the hash chain.

A handler does::

    async with audit.transaction(pool) as conn:      # a database failure here is 503
        row = await repo.change_something(conn, ...)
        await audit.record(conn, service=AuditService.INGEST, actor=Actor.of(principal, ...),
                           action=AuditAction.DEVICE_CHANGED, subject=..., details={...})
    return row                                       # only after the entry is committed

``record`` refuses to run outside a transaction. If the entry cannot be written, nothing of the
change is kept and nothing of the read is shown: ``transaction`` turns the database error into
503 — never "done (or shown) without a trace".
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from prometheus_client import Counter

from bwc.auth import Principal, Role
from bwc.db import Connection
from bwc.events import AuditAction, AuditEventV1, AuditService, CloudEvent, Topic
from bwc.logs import request_id_var
from bwc.outbox import enqueue
from bwc.problems import Problem

__all__ = ["SYSTEM_ROLE", "Actor", "audit_key", "record", "transaction"]

log = logging.getLogger(__name__)

#: The role of an automatic step (a retention sweep): the actor is the service itself.
SYSTEM_ROLE = "system"

#: How long an audited transaction waits for a lock (the outbox, a row) before it gives up
#: with 503: a locked audit table must not hold requests for the pool's minute.
LOCK_TIMEOUT = timedelta(seconds=5)

ENTRIES = Counter("bwc_audit_entries_total", "Audit entries written to the outbox",
                  ["action"])
UNAVAILABLE = Counter("bwc_audit_unavailable_total",
                      "Audited requests refused with 503 because the entry could not be written")

#: What a database that cannot take the entry raises: server errors (a missing or locked
#: table, a lock timeout) and a lost connection, wherever they happen.
_DATABASE_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError)
#: ``OSError`` (``TimeoutError`` is one) is what acquiring a connection or committing raises
#: when the server is unreachable or slow. Raised by the caller's own block it is not ours to
#: judge: a review handler's object-storage failure must not read "audit log unavailable".

@dataclass(frozen=True)
class Actor:
    """Who acted, in which role: a person's token ``sub``, or a service for its own steps."""

    sub: str
    role: str

    @classmethod
    def of(cls, principal: Principal, *granting: Role) -> Actor:
        """``principal`` acting in the first of ``granting`` it holds: list the roles that
        grant the access, strongest first (a supervisor who is also an officer reads as the
        supervisor)."""
        for role in granting:
            if principal.has(role):
                return cls(principal.sub, role.value)
        raise ValueError(f"{principal.sub} holds none of the roles {[r.value for r in granting]}")

    @classmethod
    def system(cls, service: AuditService) -> Actor:
        """An automatic step (a retention sweep, a janitor): the service is the actor."""
        return cls(service.value, SYSTEM_ROLE)


def audit_key(*, recording_id: uuid.UUID | None, subject: str | None, actor: Actor) -> str:
    """The Kafka key (and CloudEvent subject) of an entry.

    The chain's order is made in the catalogue's database, which serialises appends; the key
    does not have to give one global order. It spreads the entries over the partitions and
    keeps the order that matters to a reader: one recording's entries (viewed, exported, held,
    deleted) in the order they were committed. Entries without a recording keep the order of
    what they are about (a device: registered before changed) or, failing that, of the actor
    (one person's searches). The prefixes keep the three kinds apart; a recording id is a bare
    UUID, like the key of its ``recordings.v1`` events.
    """
    if recording_id is not None:
        return str(recording_id)
    if subject is not None:
        return subject
    return f"actor:{actor.sub}"


async def record(
    conn: Connection,
    *,
    service: AuditService,
    actor: Actor,
    action: AuditAction,
    recording_id: uuid.UUID | None = None,
    subject: str | None = None,
    purpose: str | None = None,
    details: Mapping[str, Any] | None = None,
    request_id: str | None = None,
    schema: str | None = None,
) -> CloudEvent:
    """Write one audit entry into ``schema``'s outbox (default: the service's own schema),
    inside the caller's transaction (R7). ``subject`` names what an entry without a recording
    is about (``device:cam-01``); ``request_id`` defaults to the request being served.
    ``details`` must hold no content of a recording: the entry outlives it (two years)."""
    if not conn.is_in_transaction():
        raise RuntimeError("audit.record must run inside the transaction of the access or "
                           "change it records (R7)")
    data = AuditEventV1(
        actor=actor.sub, role=actor.role, action=action, recording_id=recording_id,
        purpose=purpose, details=dict(details or {}),
        request_id=request_id if request_id is not None else request_id_var.get(),
        occurred_at=datetime.now(UTC), source_service=service,
    )
    key = audit_key(recording_id=recording_id, subject=subject, actor=actor)
    event = CloudEvent.wrap(source=f"/bwc/{service.value}", subject=key, data=data)
    await enqueue(conn, schema=schema or service.value, topic=Topic.AUDIT, key=key, event=event)
    ENTRIES.labels(action.value).inc()
    return event


@asynccontextmanager
async def transaction(
    pool: asyncpg.Pool, *, lock_timeout: timedelta = LOCK_TIMEOUT
) -> AsyncIterator[Connection]:
    """A connection in a transaction for an audited access or change; the entry is committed
    when the block ends. If the database cannot take it — on acquiring, on any statement or on
    the commit — the caller gets 503 and nothing of the change is kept (R7). Problems raised
    inside the block roll it back and pass through unchanged, so a handler that wants an
    attempted access recorded raises its 404 *after* the block."""
    in_block = False
    try:
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute(
                f"SET LOCAL lock_timeout = {int(lock_timeout.total_seconds() * 1000)}")
            in_block = True
            yield conn
            in_block = False
    except (*_DATABASE_ERRORS, OSError) as exc:
        if in_block and not isinstance(exc, _DATABASE_ERRORS):
            raise
        UNAVAILABLE.inc()
        if isinstance(exc, asyncpg.exceptions.LockNotAvailableError):
            # Not an outage: another request (a hold placement talking to S3, say) held a
            # lock this one needs for longer than the lock timeout. Saying "audit log
            # unavailable" here sent operators looking for a broken database.
            log.warning("audited request refused: a lock was held too long",
                        extra={"lock_timeout_s": lock_timeout.total_seconds()})
            raise Problem(503, "Busy: locked by another request",
                          "another request held a lock this one needs (a change of the same "
                          "record, or the audit outbox) for more than "
                          f"{lock_timeout.total_seconds():g} s; nothing was done; try again",
                          headers={"Retry-After": "5"}) from exc
        log.error("audited request refused: the audit entry could not be written",
                  extra={"error": repr(exc)[:500]})
        raise Problem(503, "Audit log unavailable",
                      "the access could not be recorded in the audit log (R7), so it was not "
                      "carried out; try again later", headers={"Retry-After": "5"}) from exc
