"""Request dependencies of the catalogue."""

from __future__ import annotations

from typing import Annotated

import asyncpg
from fastapi import Depends, Request

from bwc.auth import Principal, Role, require_roles


def get_pool(request: Request) -> asyncpg.Pool:
    pool: asyncpg.Pool = request.app.state.pool
    return pool


PoolDep = Annotated[asyncpg.Pool, Depends(get_pool)]
#: Officers see the metadata of their own recordings only; the handlers enforce that.
RecordingReaderDep = Annotated[
    Principal, Depends(require_roles(Role.REVIEWER, Role.SUPERVISOR, Role.OFFICER))
]
#: R7: the audit log is readable by auditors only.
AuditorDep = Annotated[Principal, Depends(require_roles(Role.AUDITOR))]
