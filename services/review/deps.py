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

from fastapi import Depends, Query, Request

from bwc.auth import Principal, Role, require_roles
from bwc.s3 import ObjectStore
from bwc.service import PoolDep as PoolDep  # one for every service
from bwc.text import LongText, not_blank
from services.review.catalog_client import CatalogClient
from services.review.config import ReviewSettings


def get_store(request: Request) -> ObjectStore:
    store: ObjectStore = request.app.state.store
    return store


def get_settings(request: Request) -> ReviewSettings:
    settings: ReviewSettings = request.app.state.settings
    return settings


def get_catalog(request: Request) -> CatalogClient:
    catalog: CatalogClient = request.app.state.catalog
    return catalog


StoreDep = Annotated[ObjectStore, Depends(get_store)]
SettingsDep = Annotated[ReviewSettings, Depends(get_settings)]
#: The catalogue's auditor API, for the audit trail of an evidence package.
CatalogDep = Annotated[CatalogClient, Depends(get_catalog)]

ViewerDep = Annotated[Principal, Depends(require_roles(Role.REVIEWER, Role.SUPERVISOR))]
ReviewerDep = Annotated[Principal, Depends(require_roles(Role.REVIEWER))]
SupervisorDep = Annotated[Principal, Depends(require_roles(Role.SUPERVISOR))]


#: R7: every look at a recording says why. Required; missing or blank is refused (400).
Purpose = Annotated[LongText, not_blank("say why the recording is accessed (R7)"), Query(
    description="why the recording is accessed (R7); written to the audit log")]
