"""Request dependencies of the review service, and who may call what.

| dependency | roles | used by |
|---|---|---|
| ``ViewerDep`` | reviewer, supervisor | media, export |
| ``ReviewerDep`` | reviewer | placing holds, review outcomes |
| ``SupervisorDep`` | supervisor | releasing holds (R4), judicial confirmations (R8) |

Admins, auditors, officers and devices never get media or exports (DESIGN §4).
"""

from __future__ import annotations

from typing import Annotated

import asyncpg
from fastapi import Depends, Query, Request
from pydantic import AfterValidator

from bwc.auth import Principal, Role, require_roles
from bwc.s3 import ObjectStore
from bwc.text import LongText
from services.review.catalog_client import CatalogClient
from services.review.config import ReviewSettings


def get_pool(request: Request) -> asyncpg.Pool:
    pool: asyncpg.Pool = request.app.state.pool
    return pool


def get_store(request: Request) -> ObjectStore:
    store: ObjectStore = request.app.state.store
    return store


def get_settings(request: Request) -> ReviewSettings:
    settings: ReviewSettings = request.app.state.settings
    return settings


def get_catalog(request: Request) -> CatalogClient:
    catalog: CatalogClient = request.app.state.catalog
    return catalog


PoolDep = Annotated[asyncpg.Pool, Depends(get_pool)]
StoreDep = Annotated[ObjectStore, Depends(get_store)]
SettingsDep = Annotated[ReviewSettings, Depends(get_settings)]
#: The catalogue's auditor API, for the audit trail of an evidence package.
CatalogDep = Annotated[CatalogClient, Depends(get_catalog)]

ViewerDep = Annotated[Principal, Depends(require_roles(Role.REVIEWER, Role.SUPERVISOR))]
ReviewerDep = Annotated[Principal, Depends(require_roles(Role.REVIEWER))]
SupervisorDep = Annotated[Principal, Depends(require_roles(Role.SUPERVISOR))]


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank: say why the recording is accessed (R7)")
    return value


#: R7: every look at a recording says why. Required; missing or blank is refused (400).
Purpose = Annotated[LongText, AfterValidator(_not_blank), Query(
    description="why the recording is accessed (R7); written to the audit log")]
