"""Request dependencies of the ingest service."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from bwc.auth import Principal, Role, require_roles
from bwc.service import PoolDep as PoolDep  # one for every service
from services.ingest.config import IngestSettings
from services.ingest.store import UploadStore


def get_settings(request: Request) -> IngestSettings:
    settings: IngestSettings = request.app.state.settings
    return settings


def get_store(request: Request) -> UploadStore:
    store: UploadStore = request.app.state.upload_store
    return store


SettingsDep = Annotated[IngestSettings, Depends(get_settings)]
StoreDep = Annotated[UploadStore, Depends(get_store)]
DeviceDep = Annotated[Principal, Depends(require_roles(Role.DEVICE))]
AdminDep = Annotated[Principal, Depends(require_roles(Role.ADMIN))]
