"""Request dependencies of the catalogue."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from bwc.auth import Principal, Role, require_roles
from bwc.service import PoolDep as PoolDep  # one for every service

#: Officers see the metadata of their own recordings only; the handlers enforce that.
RecordingReaderDep = Annotated[
    Principal, Depends(require_roles(Role.REVIEWER, Role.SUPERVISOR, Role.OFFICER))
]
#: R7: the audit log is readable by auditors only.
AuditorDep = Annotated[Principal, Depends(require_roles(Role.AUDITOR))]
